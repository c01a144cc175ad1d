"""Placeholder while the Restormer family is being written (replaced by the real module)."""

from torch import nn


class ConStyleRestormer(nn.Module):
    def __init__(self, **kwargs):
        raise NotImplementedError("ConStyleRestormer is not implemented yet")


class Restormer(nn.Module):
    def __init__(self, **kwargs):
        raise NotImplementedError("Restormer is not implemented yet")

"""Placeholder while the Maxim family is being written (replaced by the real module)."""

from torch import nn


class ConStyleMaxim(nn.Module):
    def __init__(self, **kwargs):
        raise NotImplementedError("ConStyleMaxim is not implemented yet")


class Maxim(nn.Module):
    def __init__(self, **kwargs):
        raise NotImplementedError("Maxim is not implemented yet")

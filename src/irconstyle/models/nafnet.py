"""Placeholder while the NAFNet family is being written (replaced by the real module)."""

from torch import nn


class ConStyleNAFNet(nn.Module):
    def __init__(self, **kwargs):
        raise NotImplementedError("ConStyleNAFNet is not implemented yet")


class NAFNet(nn.Module):
    def __init__(self, **kwargs):
        raise NotImplementedError("NAFNet is not implemented yet")

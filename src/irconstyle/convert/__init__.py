"""Foreign weight formats -> irconstyle models: Google's MAXIM TF.js graph models (npm packages)."""

from irconstyle.convert.maxim import convert_maxim_package
from irconstyle.convert.tfjs import GraphModel, PackageError, read_graph_model

__all__ = ["GraphModel", "PackageError", "convert_maxim_package", "read_graph_model"]

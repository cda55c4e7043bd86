"""Training methods, registered by name: `get_method("ours", arch="vgg16")`."""

from . import baseline, control, csgcnn, cw, decoup, iccnn, icnn, ours  # noqa: F401  (registers every method)
from .base import METHODS, Method, TrainData, get_method, register

#: The registered methods by name (`baseline`, `ours_nosync`, `ours`, ...), filled by `register`.
METHODS = METHODS  # documented here, where the API reference looks for it

__all__ = ["METHODS", "Method", "TrainData", "get_method", "register"]

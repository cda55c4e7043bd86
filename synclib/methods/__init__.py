"""Training methods, registered by name: `get_method("ours", arch="vgg16")`."""

from . import baseline, ours  # noqa: F401  (registers baseline, ours_nosync, ours)
from .base import METHODS, Method, get_method, register

__all__ = ["METHODS", "Method", "get_method", "register"]

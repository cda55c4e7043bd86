"""Part datasets: the on-disk format, its loader and the PartWorld generator."""

from .dataset import PartDataset, collate
from .format import FormatError, read_manifest

__all__ = ["PartDataset", "collate", "FormatError", "read_manifest"]

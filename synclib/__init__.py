"""synclib: the reproducible companion to "Synchronization-inspired Interpretable Neural Networks"."""

__version__ = "0.1.0"

"""synclib: the reproducible companion to "Synchronization-inspired Interpretable Neural Networks".

Its modules stand on floors, each importing only from those below (tests/test_layout.py):

    1  schema, files, losses, metrics, verdicts, paper_values, devices, trace
    2  data, models, profile, viz
    3  methods, probe
    4  train, provenance
    5  study, store, evaluate
    6  analysis, executors, notebook
    7  tables, claims, reproduce
    8  cli

Every formula is the book's Specification page's (book/specification.md).
"""

__version__ = "0.1.0"

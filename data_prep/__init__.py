"""Converters from the paper's original data sets to synclib's part-dataset format.

Each is `python -m data_prep.<name> --src DIR --out DIR`; each module's docstring states what
it reads and what it writes. See `synclib.data.format` for the format.
"""

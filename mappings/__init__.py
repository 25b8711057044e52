"""Declarative OME <-> DICOM tables (data, not code), installed as ``bridge.mappings``.

Each ``*.toml`` file here is one table; ``bridge.tables`` loads them. See README.md in this folder.
"""

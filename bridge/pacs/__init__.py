"""Talking to a PACS: DICOMweb (STOW-RS, QIDO-RS, WADO-RS) and DIMSE (C-STORE, C-FIND, C-GET)."""

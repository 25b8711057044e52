"""The conformance suite: checks of DICOM WSI and OME-TIFF beyond per-file validation."""

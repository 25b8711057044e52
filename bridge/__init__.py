"""omedicom: the OME-TIFF ⇄ DICOM whole-slide bridge.

``bridge.convert.convert`` is the one pipeline (any source -> model -> any target);
``bridge.model`` the neutral slide model; ``bridge.cli`` the ``omedicom`` command.
"""

__version__ = "0.1.0"

"""De-identification (issue 14): the PS3.15 Annex E Basic Application Level Confidentiality
Profile and its options, applied to DICOM WSI instances, their annotations and the carriers the
bridge adds (the OME-XML in a private block, the DICOM header JSON inside the OME-XML).

Modules: :mod:`.profile` (Table E.1-1 from ``mappings/deid_profile.toml``), :mod:`.remap`
(UIDs, identifiers and dates, keyed), :mod:`.dataset` (a DICOM dataset), :mod:`.omexml` (an
OME-XML document), :mod:`.audit` (the record beside the output), :mod:`.run` (files and
folders), :mod:`.hooks` (``convert``/``pull --deidentify``), :mod:`.phi` (the PHI scan of
``check --phi``), :mod:`.cli` (``omedicom deidentify``). Nothing is imported here, so that
``omedicom convert`` takes the options cheaply.
"""

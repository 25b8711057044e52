"""The PS3.15 E.3 options by the names the command line uses (no imports: ``omedicom
convert`` builds its parser with them)."""

#: option name (CLI) -> (its column in mappings/deid_profile.toml, or None; the keyword of its
#: CID 7050 code in pydicom's ``codes.DCM``)
OPTION_NAMES: dict[str, tuple[str | None, str]] = {
    "clean-pixel-data": (None, "CleanPixelDataOption"),
    "clean-descriptors": ("clean_descriptors", "CleanDescriptorsOption"),
    "retain-uids": ("retain_uids", "RetainUidsOption"),
    "retain-device-identity": ("retain_device_identity", "RetainDeviceIdentityOption"),
    "retain-full-dates": (
        "retain_full_dates",
        "RetainLongitudinalTemporalInformationFullDatesOption",
    ),
    "retain-modified-dates": (
        "retain_modified_dates",
        "RetainLongitudinalTemporalInformationModifiedDatesOption",
    ),
    "retain-patient-characteristics": (
        "retain_patient_characteristics",
        "RetainPatientCharacteristicsOption",
    ),
}

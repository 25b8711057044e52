"""``omedicom preview``: a PNG of a slide with a scale bar, its annotations and its label
(registered in bridge.cli ``EXTENSIONS``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError

PREVIEW_HELP = """\
Draw a slide as one PNG picture: the whole pyramid from the smallest level that is at least
--size px on its longer side, a scale bar in µm or mm (a round length, from the pixel size),
the annotations over it in their colours with a legend of groups and counts, and the label
beside it. Fluorescence is a composite of the channels' colours (OME Channel Color, else
blue/green/red/magenta... by emission wavelength), each channel windowed between two
percentiles of its values (--window).

SRC is an OME-TIFF, a DICOM file or folder, or with --dicomweb URL the Study Instance UID
of a slide on a DICOMweb server (its frames are fetched, not the whole series).

The PNG also states what it shows, in text chunks (omedicom:scale_bar, omedicom:slide_box,
omedicom:pixel_size_um, omedicom:channels, omedicom:annotations).

examples:
  omedicom preview slide.ome.tiff slide.png
  omedicom preview slide_dicom/ slide.png --size 2048 --no-label
  omedicom preview slide.ome.tiff cells.png --annotations cells.geojson
  omedicom preview stack.ome.tiff stack.png --z 2 --window 1,99.9
  omedicom preview --dicomweb http://localhost:8042/dicom-web 1.2.3.4 slide.png

exit codes: 0 written, 2 unreadable input, 3 unsupported input, 4 output cannot be written.
"""


def _window(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("give two percentiles LO,HI, e.g. 0.5,99.5") from None
    if not 0 <= lo < hi <= 100:
        raise argparse.ArgumentTypeError("percentiles must satisfy 0 <= LO < HI <= 100")
    return lo, hi


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels") from None
    if not 16 <= value <= 16384:
        raise argparse.ArgumentTypeError("give a size between 16 and 16384 px")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preview",
        help="draw a slide as a PNG: scale bar, annotations, channels, label",
        description=PREVIEW_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "src", metavar="SRC", help="OME-TIFF, DICOM file or folder (or a Study UID)"
    )
    parser.add_argument("out", metavar="OUT.png", help="the PNG to write")
    parser.add_argument(
        "--size",
        type=_size,
        default=1024,
        metavar="PX",
        help="longer side of the slide in the picture (default 1024)",
    )
    parser.add_argument(
        "--annotations",
        metavar="FILE.geojson",
        help="also draw the annotations of a GeoJSON file (level-0 pixel coordinates)",
    )
    parser.add_argument("--no-label", action="store_true", help="leave the label out")
    parser.add_argument("--series", metavar="UID", help="the DICOM series to draw")
    parser.add_argument(
        "--image", type=int, metavar="N", help="the pyramid to draw (default: the first)"
    )
    parser.add_argument("--z", type=int, metavar="N", help="focal plane (default: the middle)")
    parser.add_argument(
        "--window",
        type=_window,
        default=(0.5, 99.5),
        metavar="LO,HI",
        help="per-channel contrast window in percentiles (default 0.5,99.5)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    web = parser.add_argument_group("DICOMweb")
    web.add_argument("--dicomweb", metavar="URL", help="read SRC (a Study UID) from this server")
    web.add_argument("--user", metavar="NAME", help="HTTP Basic user; password from env")
    web.add_argument("--password-env", metavar="VAR", help="variable holding the password")
    web.add_argument("--token-env", metavar="VAR", help="variable holding a bearer token")
    web.add_argument("--ca-bundle", metavar="FILE.pem", help="CA certificates to trust")
    web.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS")
    parser.set_defaults(func=run, dimse=None, aet=None, called_aet=None, retries=4, retry_delay=1)


def open_source(args: argparse.Namespace) -> Any:
    """The slide SRC names: a local file or folder, or a series on a DICOMweb server."""
    if not args.dicomweb:
        from ..convert import open_slide

        return open_slide(args.src, series=args.series)
    from ..dicom.reader import read_remote
    from ..pacs.cli import _connect
    from ..pacs.dicomweb import RemoteSeries

    web = _connect(args)
    series = sorted({r.series_uid for r in web.instances(args.src, args.series)})
    if not series:
        raise InputError(f"{web.name} holds no instances of study {args.src}")
    if len(series) > 1:
        raise InputError(
            f"study {args.src} holds {len(series)} series; a preview draws one",
            hint="choose one with --series: " + ", ".join(series),
        )
    remote = RemoteSeries(web, args.src, series[0])
    return read_remote(remote, remote.datasets(), f"{web.name} series {series[0]}")


def run(args: argparse.Namespace) -> int:
    from ..convert import staged_file
    from .render import choose_image, render

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InputError("the preview is a PNG: name it .png", path=out)
    slide = open_source(args)
    from ..errors import BridgeError

    try:
        image = choose_image(slide, args.image)
        groups = tuple(g for g in slide.annotations if g.image_index == image.source_index)
        if args.annotations:
            from ..annotations import read_geojson

            extra, notes = read_geojson(Path(args.annotations))
            for note in notes:
                print(f"omedicom: warning: {note}", file=sys.stderr)
            groups += tuple(dataclasses.replace(g, image_index=image.source_index) for g in extra)
        preview = render(
            slide,
            image=image,
            size=args.size,
            annotations=groups,
            label=not args.no_label,
            z=args.z,
            window=args.window,
        )
        data = preview.png()
    except BridgeError as exc:
        raise exc.at(args.src) from None
    finally:
        if slide.close:
            slide.close()
    with staged_file(out, overwrite=args.overwrite) as tmp:
        tmp.write_bytes(data)
    bar = f", scale bar {preview.scale_bar.text}" if preview.scale_bar else ", no pixel size"
    print(
        f"wrote {out} ({preview.picture.width}×{preview.picture.height} px from level "
        f"{preview.level}{bar}, {preview.drawn_annotations:,} annotation(s))",
        file=sys.stderr,
    )
    return 0

"""Sample media the sandbox serves under ``/_sandbox/media/<name>`` so the demo and the
media pre-check work offline.

The JPEGs in ``static/`` were generated once by ``python meta_sandbox/samples.py`` in a
virtualenv that had Pillow (the project does not depend on it); the MP4 is built here
from hand-written boxes (``ftyp`` + ``moov``, no frames), so it never needs a tool.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

STATIC = Path(__file__).with_name("static")

# name -> (width, height, background RGB, label); aspect ratios the pre-check cares about.
JPEGS: dict[str, tuple[int, int, tuple[int, int, int], str]] = {
    "square.jpg": (1080, 1080, (32, 96, 160), "1:1"),
    "portrait.jpg": (1080, 1350, (160, 64, 48), "4:5"),
    "landscape.jpg": (1080, 566, (40, 128, 72), "1.91:1"),
    "story.jpg": (1080, 1920, (112, 48, 144), "9:16"),
}
VIDEO = "clip.mp4"
VIDEO_SECONDS = 5
VIDEO_SIZE = (1080, 1920)  # 9:16, what Reels and stories ask for
MEDIA = (*JPEGS, VIDEO)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, bytes([version]) + flags.to_bytes(3, "big") + payload)


_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def mp4_bytes(seconds: int = VIDEO_SECONDS, size: tuple[int, int] = VIDEO_SIZE) -> bytes:
    """A structurally valid MP4: ``ftyp`` and a ``moov`` with one video track of
    ``size`` lasting ``seconds`` (empty sample tables: nothing to decode)."""
    scale, duration = 1000, seconds * 1000
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    mvhd = _full(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, scale, duration)
        + struct.pack(">IH", 0x00010000, 0x0100)
        + bytes(10)
        + _MATRIX
        + bytes(24)
        + struct.pack(">I", 2),
    )
    tkhd = _full(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII", 0, 0, 1, 0, duration)
        + bytes(8)
        + struct.pack(">hhhH", 0, 0, 0, 0)
        + _MATRIX
        + struct.pack(">II", size[0] << 16, size[1] << 16),
    )
    mdhd = _full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, scale, duration, 0x55C4, 0))
    hdlr = _full(b"hdlr", 0, 0, struct.pack(">I", 0) + b"vide" + bytes(12) + b"VideoHandler\0")
    vmhd = _full(b"vmhd", 0, 1, bytes(8))
    dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1) + _full(b"url ", 0, 1, b"")))
    empty = struct.pack(">I", 0)
    stbl = _box(
        b"stbl",
        _full(b"stsd", 0, 0, empty)
        + _full(b"stts", 0, 0, empty)
        + _full(b"stsc", 0, 0, empty)
        + _full(b"stsz", 0, 0, empty + empty)
        + _full(b"stco", 0, 0, empty),
    )
    minf = _box(b"minf", vmhd + dinf + stbl)
    trak = _box(b"trak", tkhd + _box(b"mdia", mdhd + hdlr + minf))
    return ftyp + _box(b"moov", mvhd + trak)


def write_samples(target: Path = STATIC) -> list[Path]:  # pragma: no cover - run once by hand
    """Write the JPEGs (needs Pillow) and the MP4 into ``target``."""
    from PIL import Image, ImageDraw

    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (width, height, colour, label) in JPEGS.items():
        image = Image.new("RGB", (width, height), colour)
        draw = ImageDraw.Draw(image)
        light = tuple(min(255, c + 70) for c in colour)
        draw.rectangle((width // 8, height // 8, width * 7 // 8, height * 7 // 8), outline=light, width=12)
        draw.text((width // 2, height // 2), f"Meta sandbox {label}", fill=(255, 255, 255), anchor="mm", font_size=64)
        path = target / name
        image.save(path, "JPEG", quality=60, optimize=True)
        written.append(path)
    path = target / VIDEO
    path.write_bytes(mp4_bytes())
    written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    for written_path in write_samples(Path(sys.argv[1]) if len(sys.argv) > 1 else STATIC):
        print(f"{written_path} {written_path.stat().st_size} bytes")

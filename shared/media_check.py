"""Verdicts of the media pre-check (DESIGN §13.2 "Pre-check", §13.5 Pillow).

Groundwork: nothing calls it yet; a later change runs :func:`precheck` from
``POST /schedule`` when ``MEDIA_PRECHECK=enforce`` (with ``MEDIA_PRECHECK_ALLOW_HOSTS``
as ``allow_hosts``) and answers with :meth:`Verdict.error`.

Each media URL is fetched by :func:`shared.media_fetch.fetch` (first 256 KB only) and
judged from those bytes and the size the server tells:

- images are opened with Pillow for their format, size and EXIF orientation, never
  decoded (no ``load()``, ``LOAD_TRUNCATED_IMAGES`` left alone); one Pillow cannot read
  from its first 256 KB (a size marker beyond them: ``OSError``) or a decompression bomb
  is unreadable;
- Instagram needs JPEG, at most 8 MB, and for feed and carousel items an aspect ratio
  from 4:5 to 1.91:1 after EXIF orientation;
- videos are recognised by their ``ftyp`` box (MP4/MOV brands), at most 1 GB (also
  Facebook's limit for a ``file_url`` upload);
- a size the server does not tell is not held against the media.

Messages are English field messages (``shared.errors`` translates them) naming the
target whose rule is broken.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

from PIL import Image

from shared.errors import AppError
from shared.media_fetch import Fetched, MediaUnreachable, fetch, normal_host

IG_MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_VIDEO_BYTES = 1024 * 1024 * 1024
# Width/height from 4:5 to 1.91:1, as exact fractions.
IG_MIN_RATIO = (4, 5)
IG_MAX_RATIO = (191, 100)
# Formats Facebook takes that Pillow reads (and nothing else of Pillow's many plugins).
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
# ISO base media brands of MP4 and QuickTime (MOV) video.
VIDEO_BRANDS = frozenset(
    {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"qt  ", b"dash", b"MSNV"}
)
_ORIENTATION = 0x0112
_QUARTER_TURNS = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 or 270 degrees

# Field messages (English source text; Indonesian in shared.errors.FIELD_MESSAGES_ID).
IMAGE_UNREADABLE = "Must be an image file that can be read (JPEG, PNG, GIF, WebP, BMP or TIFF)."
VIDEO_UNRECOGNISED = "Must be an MP4 or MOV video."
IG_NOT_JPEG = "Instagram: Must be a JPEG image."
IG_IMAGE_TOO_BIG = "Instagram: The image must be at most 8 MB."
IG_ASPECT_RATIO = "Instagram: The aspect ratio must be between 4:5 (portrait) and 1.91:1 (landscape)."
VIDEO_TOO_BIG = {
    "facebook": "Facebook: The video must be at most 1 GB.",
    "instagram": "Instagram: The video must be at most 1 GB.",
}
UNREACHABLE = {
    "not_https": "Must be an https URL, redirects included.",
    "not_public": "Must be on a public internet address, redirects included.",
    "not_allowed": "Redirects to a host that is not allowed here.",
    "dns": "The host name could not be found.",
    "refused": "The server could not be reached.",
    "tls": "The server's https certificate could not be verified.",
    "timeout": "The server did not answer in time.",
    "redirects": "More than 3 redirects.",
    "bad_response": "The server's answer could not be read.",
}
HTTP_STATUS = "The server answered HTTP {status}."


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int  # as shown, after EXIF orientation
    height: int


def read_image(head: bytes) -> ImageInfo | None:
    """Format and displayed size from an image's first bytes, or None when Pillow cannot tell."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(head), formats=IMAGE_FORMATS) as image:
                width, height = image.size
                image_format = image.format or ""
                raw_exif = image.info.get("exif")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return None  # UnidentifiedImageError and a truncated header are OSErrors
    if _orientation(raw_exif) in _QUARTER_TURNS:
        width, height = height, width
    return ImageInfo(image_format, width, height)


def _orientation(raw_exif: object) -> int | None:
    """The EXIF orientation tag, or None when there is none or the EXIF block is broken.

    Image.getexif() would load() a PNG whose EXIF comes after the pixels: the raw block is
    read instead, and Pillow's EXIF parser raises more than OSError on a truncated one.
    """
    if not isinstance(raw_exif, bytes):
        return None
    exif = Image.Exif()
    try:
        exif.load(raw_exif)
        value = exif.get(_ORIENTATION)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError):
        return None  # a broken EXIF block says nothing about orientation
    return value if isinstance(value, int) else None


def video_brand(head: bytes) -> bytes | None:
    """The MP4/MOV brand of an ``ftyp`` box at the start, or None."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    end = min(size, len(head)) if size >= 16 else 16
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]  # major, then compatible
    return next((brand for brand in brands if brand in VIDEO_BRANDS), None)


def _ratio_ok(width: int, height: int) -> bool:
    (low_w, low_h), (high_w, high_h) = IG_MIN_RATIO, IG_MAX_RATIO
    return width * low_h >= height * low_w and width * high_h <= height * high_w


@dataclass(frozen=True)
class MediaRef:
    """One URL to check: ``field`` is where problems are reported (``media.0.url``, ``cover_url``)."""

    field: str
    url: str
    type: str  # "image" | "video"
    cover: bool = False  # a reel's cover: an image, but not a feed item


def problems(fetched: Fetched, ref: MediaRef, *, targets: Collection[str], post_format: str = "post") -> list[str]:
    """What the targets would refuse about this media (empty when nothing)."""
    size = fetched.total_size
    if ref.type == "video":
        if video_brand(fetched.head) is None:
            return [VIDEO_UNRECOGNISED]
        too_big = size is not None and size > MAX_VIDEO_BYTES
        return [VIDEO_TOO_BIG[target] for target in sorted(targets) if too_big and target in VIDEO_TOO_BIG]
    image = read_image(fetched.head)
    if image is None:
        return [IMAGE_UNREADABLE]
    found: list[str] = []
    if "instagram" in targets:
        if image.format != "JPEG":
            found.append(IG_NOT_JPEG)
        if size is not None and size > IG_MAX_IMAGE_BYTES:
            found.append(IG_IMAGE_TOO_BIG)
        if post_format == "post" and not ref.cover and not _ratio_ok(image.width, image.height):
            found.append(IG_ASPECT_RATIO)
    return found


def unreachable_message(error: MediaUnreachable) -> str:
    if error.reason == "http":
        return HTTP_STATUS.format(status=error.status)
    return UNREACHABLE.get(error.reason, UNREACHABLE["bad_response"])


@dataclass
class Verdict:
    """Field messages by field: media that could not be fetched, and media a target would refuse."""

    unreachable: dict[str, list[str]] = field(default_factory=dict)
    invalid: dict[str, list[str]] = field(default_factory=dict)

    def error(self) -> AppError | None:
        """``422 media_unreachable`` first, then ``422 validation_error``; None when all is well."""
        if self.unreachable:
            return AppError("media_unreachable", fields=self.unreachable)
        if self.invalid:
            return AppError("validation_error", fields=self.invalid)
        return None


Fetcher = Callable[[str], Fetched]


def precheck(
    refs: Sequence[MediaRef],
    *,
    targets: Collection[str],
    post_format: str = "post",
    allow_hosts: Collection[str] = (),
    fetcher: Fetcher | None = None,
) -> Verdict:
    """Fetch every URL (side by side, each within its own 5 s) and judge it for ``targets``.

    With ``allow_hosts`` set (demo and test), URLs on other hosts are accepted unchecked
    and never fetched.
    """
    get = fetcher or partial(fetch, allow_hosts=allow_hosts)
    checked = [ref for ref in refs if not allow_hosts or _host(ref.url) in allow_hosts]
    urls = list(dict.fromkeys(ref.url for ref in checked))
    outcomes: dict[str, Fetched | MediaUnreachable] = {}
    if urls:
        with ThreadPoolExecutor(max_workers=len(urls), thread_name_prefix="media-precheck") as pool:
            for url, outcome in zip(urls, pool.map(partial(_fetch_one, get), urls), strict=True):
                outcomes[url] = outcome
    verdict = Verdict()
    for ref in checked:
        outcome = outcomes[ref.url]
        if isinstance(outcome, MediaUnreachable):
            verdict.unreachable.setdefault(ref.field, []).append(unreachable_message(outcome))
            continue
        found = problems(outcome, ref, targets=targets, post_format=post_format)
        if found:
            verdict.invalid.setdefault(ref.field, []).extend(found)
    return verdict


def _host(url: str) -> str | None:
    try:
        return normal_host(urlsplit(url).hostname or "")
    except MediaUnreachable:
        return None


def _fetch_one(get: Fetcher, url: str) -> Fetched | MediaUnreachable:
    try:
        return get(url)
    except MediaUnreachable as error:
        return error

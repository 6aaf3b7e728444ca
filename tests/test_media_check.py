"""The media pre-check's verdicts (DESIGN §13.2 "Pre-check", §13.5 Pillow).

Images are made with Pillow in memory; the fetcher is replaced by a dictionary of what a
server would have answered, so nothing is fetched.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import zlib

import pytest
from PIL import Image, ImageFile

from shared import media_check
from shared.errors import error_body, field_message
from shared.media_check import (
    IG_ASPECT_RATIO,
    IG_IMAGE_TOO_BIG,
    IG_NOT_JPEG,
    IMAGE_UNREADABLE,
    VIDEO_TOO_BIG,
    VIDEO_UNRECOGNISED,
    MediaRef,
    precheck,
    problems,
    read_image,
)
from shared.media_fetch import MAX_BYTES, Fetched, MediaUnreachable

BOTH = ("facebook", "instagram")


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 160)).save(out, "JPEG", exif=exif)
    return out.getvalue()


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, "PNG")
    return out.getvalue()


def mp4_header(brand: bytes = b"mp42", compatible: tuple[bytes, ...] = (b"mp42", b"isom")) -> bytes:
    ftyp = b"ftyp" + brand + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", len(ftyp) + 4) + ftyp + b"\x00\x00\x00\x08free" + b"\x00" * 64


def png_claiming(width: int, height: int) -> bytes:
    """Just a PNG header declaring ``width`` × ``height`` (a decompression bomb's first bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


def served(head: bytes, size: int | None = None, url: str = "https://cdn.example.com/a") -> Fetched:
    """What the fetcher gives: at most the first 256 KB, and the size if the server told it."""
    return Fetched(url, 206, None, size if size is not None else None, head[:MAX_BYTES])


def image_ref(field: str = "media.0.url", **kwargs) -> MediaRef:
    return MediaRef(field, "https://cdn.example.com/a", "image", **kwargs)


def video_ref(field: str = "media.0.url") -> MediaRef:
    return MediaRef(field, "https://cdn.example.com/v", "video")


@pytest.mark.parametrize(
    "width, height, fits",
    [
        (1080, 1080, True),
        (1080, 1350, True),  # 4:5, the tallest allowed
        (1080, 1351, False),
        (1910, 1000, True),  # 1.91:1, the widest allowed
        (1920, 1000, False),
        (1080, 1920, False),  # 9:16 belongs in stories and reels, not the feed
        (3000, 1000, False),
    ],
)
def test_instagram_feed_images_need_an_aspect_ratio_from_4_5_to_1_91(width, height, fits):
    found = problems(served(jpeg(width, height)), image_ref(), targets=BOTH)
    assert found == ([] if fits else [IG_ASPECT_RATIO])
    assert problems(served(jpeg(width, height)), image_ref(), targets=("facebook",)) == []


def test_exif_orientation_is_applied_before_the_aspect_ratio():
    # Stored landscape 16:9 (fits), but orientation 6 turns it a quarter: shown 9:16.
    assert problems(served(jpeg(1920, 1080)), image_ref(), targets=BOTH) == []
    assert problems(served(jpeg(1920, 1080, orientation=6)), image_ref(), targets=BOTH) == [IG_ASPECT_RATIO]
    # Stored 9:16 (too tall), shown 16:9 after a 270° turn (orientation 8).
    assert problems(served(jpeg(1080, 1920, orientation=8)), image_ref(), targets=BOTH) == []
    # Orientation 3 turns it upside down: the shape stays.
    assert problems(served(jpeg(1080, 1920, orientation=3)), image_ref(), targets=BOTH) == [IG_ASPECT_RATIO]


def test_instagram_needs_a_jpeg_facebook_takes_a_png():
    assert problems(served(png(1080, 1080)), image_ref(), targets=BOTH) == [IG_NOT_JPEG]
    assert problems(served(png(1080, 1080)), image_ref(), targets=("facebook",)) == []


def test_an_image_over_8_mb_is_refused_for_instagram_only_when_the_server_says_so():
    nine_mb = 9 * 1024 * 1024
    assert problems(served(jpeg(1080, 1080), size=nine_mb), image_ref(), targets=BOTH) == [IG_IMAGE_TOO_BIG]
    assert problems(served(jpeg(1080, 1080), size=8 * 1024 * 1024), image_ref(), targets=BOTH) == []
    assert problems(served(jpeg(1080, 1080), size=None), image_ref(), targets=BOTH) == []  # size untold: fine
    assert problems(served(jpeg(1080, 1080), size=nine_mb), image_ref(), targets=("facebook",)) == []


def test_every_broken_instagram_rule_is_named_at_once():
    found = problems(served(png(1080, 1920), size=9 * 1024 * 1024), image_ref(), targets=BOTH)
    assert found == [IG_NOT_JPEG, IG_IMAGE_TOO_BIG, IG_ASPECT_RATIO]


def test_stories_and_reel_covers_are_not_held_to_the_feed_aspect_ratio():
    tall = served(jpeg(1080, 1920))
    assert problems(tall, image_ref(), targets=BOTH, post_format="story") == []
    assert problems(tall, image_ref("cover_url", cover=True), targets=("instagram",), post_format="post") == []
    # ... but Instagram still wants a JPEG of at most 8 MB there.
    assert problems(served(png(1080, 1920)), image_ref(), targets=BOTH, post_format="story") == [IG_NOT_JPEG]
    big_cover = served(jpeg(1080, 1920), size=9 * 1024 * 1024)
    assert problems(big_cover, image_ref("cover_url", cover=True), targets=("instagram",), post_format="reel") == [
        IG_IMAGE_TOO_BIG
    ]


def test_a_jpeg_whose_size_marker_lies_beyond_256_kb_is_unreadable():
    out = io.BytesIO()
    Image.new("RGB", (1080, 1080)).save(out, "JPEG", icc_profile=os.urandom(400_000))  # before the size marker
    whole = out.getvalue()
    assert read_image(whole) is not None  # the whole file is a fine JPEG
    assert problems(served(whole), image_ref(), targets=BOTH) == [IMAGE_UNREADABLE]
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_a_decompression_bomb_is_unreadable():
    assert problems(served(png_claiming(100_000, 100_000)), image_ref(), targets=BOTH) == [IMAGE_UNREADABLE]
    assert read_image(png_claiming(1080, 1350)) == media_check.ImageInfo("PNG", 1080, 1350)


@pytest.mark.parametrize(
    "head",
    [b"", b"<html>Login required</html>", os.urandom(2048), mp4_header(), b"%PDF-1.7\n" + b"0" * 100],
)
def test_what_is_no_image_is_unreadable(head):
    assert problems(served(head), image_ref(), targets=("facebook",)) == [IMAGE_UNREADABLE]


def test_images_are_never_decoded(monkeypatch):
    """Format, size and orientation come from the headers; a full decode would fail here."""

    def no_load(self):
        raise AssertionError("load() called")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    assert read_image(jpeg(1920, 1080, orientation=6)) == media_check.ImageInfo("JPEG", 1080, 1920)
    assert read_image(png(640, 480)) == media_check.ImageInfo("PNG", 640, 480)  # PNG getexif() would load()


@pytest.mark.parametrize(
    "head",
    [
        mp4_header(),
        mp4_header(b"isom", (b"isom", b"iso2", b"avc1", b"mp41")),
        mp4_header(b"qt  ", (b"qt  ",)),  # MOV
        mp4_header(b"XAVC", (b"XAVC", b"mp42")),  # unknown major brand, MP4 compatible
    ],
)
def test_mp4_and_mov_videos_are_recognised_by_their_ftyp_box(head):
    assert problems(served(head), video_ref(), targets=BOTH) == []


@pytest.mark.parametrize(
    "head", [jpeg(100, 100), b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42"[:12], b"RIFF....AVI ", b""]
)
def test_other_files_are_no_video(head):
    assert problems(served(head), video_ref(), targets=BOTH) == [VIDEO_UNRECOGNISED]


def test_a_video_over_1_gb_is_refused_for_each_target_when_the_server_says_so():
    two_gb = 2 * 1024**3
    assert problems(served(mp4_header(), size=two_gb), video_ref(), targets=BOTH) == [
        VIDEO_TOO_BIG["facebook"],
        VIDEO_TOO_BIG["instagram"],
    ]
    assert problems(served(mp4_header(), size=two_gb), video_ref(), targets=("instagram",)) == [
        "Instagram: The video must be at most 1 GB."
    ]
    assert problems(served(mp4_header(), size=1024**3), video_ref(), targets=BOTH) == []
    assert problems(served(mp4_header(), size=None), video_ref(), targets=BOTH) == []


# --- precheck: every URL of a post, side by side ---


class Server:
    """Stands in for the fetcher: what each URL answers, and which URLs were asked for."""

    def __init__(self, answers: dict[str, Fetched | MediaUnreachable], delay: float = 0.0):
        self.answers, self.delay = answers, delay
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, url: str) -> Fetched:
        with self.lock:
            self.asked.append(url)
        time.sleep(self.delay)
        answer = self.answers[url]
        if isinstance(answer, MediaUnreachable):
            raise answer
        return answer


def test_problems_name_the_media_item_and_the_target_in_the_api_shape():
    server = Server(
        {
            "https://cdn.example.com/1.jpg": served(jpeg(1080, 1080)),
            "https://cdn.example.com/2.png": served(png(1080, 1080)),
            "https://cdn.example.com/3.jpg": served(jpeg(1080, 1920)),
        }
    )
    refs = [MediaRef(f"media.{n}.url", url, "image") for n, url in enumerate(server.answers)]
    verdict = precheck(refs, targets=BOTH, fetcher=server)
    assert verdict.unreachable == {}
    assert verdict.invalid == {"media.1.url": [IG_NOT_JPEG], "media.2.url": [IG_ASPECT_RATIO]}
    error = verdict.error()
    assert error is not None and (error.error_code, error.http_status) == ("validation_error", 422)
    assert error_body(error.error_code, "en", error.fields)["fields"] == {
        "media.1.url": ["Instagram: Must be a JPEG image."],
        "media.2.url": ["Instagram: The aspect ratio must be between 4:5 (portrait) and 1.91:1 (landscape)."],
    }
    assert error_body(error.error_code, "id", error.fields)["fields"] == {
        "media.1.url": ["Instagram: harus berupa gambar JPEG."],
        "media.2.url": ["Instagram: rasio aspek gambar harus antara 4:5 (potret) dan 1,91:1 (lanskap)."],
    }


def test_an_unfetchable_url_answers_media_unreachable_naming_the_item():
    server = Server(
        {
            "https://cdn.example.com/ok.jpg": served(jpeg(1080, 1080)),
            "https://cdn.example.com/gone.jpg": MediaUnreachable("http", 404),
            "https://intranet.example.com/a.jpg": MediaUnreachable("not_public"),
            "https://cdn.example.com/wide.png": served(png(3000, 1000)),
        }
    )
    refs = [MediaRef(f"media.{n}.url", url, "image") for n, url in enumerate(server.answers)]
    verdict = precheck(refs, targets=BOTH, fetcher=server)
    error = verdict.error()
    assert error is not None and error.error_code == "media_unreachable" and error.http_status == 422
    body = error_body(error.error_code, "id", error.fields)
    assert body["fields"] == {
        "media.1.url": ["Server menjawab HTTP 404."],
        "media.2.url": ["Harus berada di alamat internet publik, termasuk setelah pengalihan (redirect)."],
    }
    assert body["action"] == "fix_input"
    assert error_body(error.error_code, "en", error.fields)["fields"]["media.1.url"] == [
        "The server answered HTTP 404."
    ]


def test_all_well_is_no_error():
    server = Server({"https://cdn.example.com/v.mp4": served(mp4_header(), size=50 * 1024 * 1024)})
    verdict = precheck(
        [MediaRef("media.0.url", "https://cdn.example.com/v.mp4", "video")], targets=BOTH, fetcher=server
    )
    assert verdict.error() is None


def test_urls_are_fetched_side_by_side_and_each_once():
    url = "https://cdn.example.com/{}.jpg"
    server = Server({url.format(n): served(jpeg(1080, 1080)) for n in range(5)}, delay=0.3)
    refs = [MediaRef(f"media.{n}.url", url.format(n), "image") for n in range(5)]
    refs.append(MediaRef("cover_url", url.format(0), "image", cover=True))
    started = time.monotonic()
    assert precheck(refs, targets=BOTH, post_format="reel", fetcher=server).error() is None
    assert time.monotonic() - started < 1.0  # not 6 × 0.3 s
    assert sorted(server.asked) == sorted(url.format(n) for n in range(5))


def test_with_allowed_hosts_other_hosts_are_accepted_unchecked_and_never_fetched():
    sandbox = "http://127.0.0.1:8001/media/a.png"
    server = Server({sandbox: served(png(100, 100))})
    refs = [
        MediaRef("media.0.url", sandbox, "image"),
        MediaRef("media.1.url", "https://cdn.example.com/not-even-an-image.txt", "image"),
    ]
    verdict = precheck(refs, targets=BOTH, allow_hosts={"127.0.0.1"}, fetcher=server)
    assert server.asked == [sandbox]
    assert verdict.invalid == {"media.0.url": [IG_NOT_JPEG]}


def test_every_message_the_pre_check_gives_has_an_indonesian_translation():
    messages = [IMAGE_UNREADABLE, VIDEO_UNRECOGNISED, IG_NOT_JPEG, IG_IMAGE_TOO_BIG, IG_ASPECT_RATIO]
    messages += list(VIDEO_TOO_BIG.values()) + list(media_check.UNREACHABLE.values())
    messages.append(media_check.unreachable_message(MediaUnreachable("http", 503)))
    for message in messages:
        indonesian = field_message(message, "id")
        assert indonesian != message, message
        assert field_message(message, "en") == message
    assert field_message("The server answered HTTP 503.") == "Server menjawab HTTP 503."


def jpeg_with_a_broken_exif_block(width: int = 1080, height: int = 1080) -> bytes:
    """A good JPEG whose APP1 EXIF block holds only 4 of a TIFF header's 8 bytes."""
    image = jpeg(width, height)
    payload = b"Exif\x00\x00MM\x00*"
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return image[:2] + app1 + image[2:]


def test_a_broken_exif_block_says_nothing_about_orientation_and_is_no_crash() -> None:
    # Pillow's EXIF parser raised struct.error here, past every except: a 500 for a seller's photo.
    head = jpeg_with_a_broken_exif_block(1080, 1350)
    assert media_check.read_image(head) == media_check.ImageInfo("JPEG", 1080, 1350)
    verdict = media_check.precheck(
        [MediaRef("media.0.url", "https://cdn.example.com/a.jpg", "image")],
        targets=["instagram"],
        fetcher=lambda url: Fetched(url, 200, "image/jpeg", len(head), head),
    )
    assert verdict.error() is None

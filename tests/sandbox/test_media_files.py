"""The sandbox's own sample media: served with Content-Length and Range, real JPEG
dimensions, an MP4 whose boxes add up, and usable as media URLs in the sandbox."""

import struct

import pytest

from meta_sandbox.samples import JPEGS, STATIC

from .conftest import IG_1, PAGE_1


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the first SOFn marker of a JPEG."""
    assert data[:2] == b"\xff\xd8"
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise AssertionError("no SOF marker")


def boxes(data: bytes) -> list[tuple[bytes, int]]:
    out, i = [], 0
    while i < len(data):
        size = struct.unpack(">I", data[i : i + 4])[0]
        out.append((data[i + 4 : i + 8], size))
        assert size >= 8
        i += size
    assert i == len(data)
    return out


@pytest.mark.parametrize("name", list(JPEGS))
def test_jpegs_are_small_and_have_their_aspect_ratio(meta, name):
    resp = meta.client.get(f"/_sandbox/media/{name}")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg"
    data = resp.get_data()
    assert int(resp.headers["Content-Length"]) == len(data) < 50_000
    width, height, _, _ = JPEGS[name]
    assert jpeg_size(data) == (width, height)


def test_mp4_is_ftyp_then_moov(meta):
    resp = meta.client.get("/_sandbox/media/clip.mp4")
    assert resp.status_code == 200 and resp.mimetype == "video/mp4"
    data = resp.get_data()
    assert [kind for kind, _ in boxes(data)] == [b"ftyp", b"moov"]
    assert data[8:12] == b"isom" and len(data) < 4096
    mvhd = data.index(b"mvhd")
    timescale, duration = struct.unpack(">II", data[mvhd + 16 : mvhd + 24])
    assert duration / timescale == 5


def test_range_requests_get_206_with_content_range(meta):
    full = meta.client.get("/_sandbox/media/square.jpg").get_data()
    resp = meta.client.get("/_sandbox/media/square.jpg", headers={"Range": "bytes=0-1023"})
    assert resp.status_code == 206
    assert resp.headers["Content-Range"] == f"bytes 0-1023/{len(full)}"
    assert resp.headers["Content-Length"] == "1024" and resp.get_data() == full[:1024]
    assert resp.headers["Accept-Ranges"] == "bytes"
    tail = meta.client.get("/_sandbox/media/clip.mp4", headers={"Range": "bytes=100-"})
    assert tail.status_code == 206 and tail.headers["Content-Range"].startswith("bytes 100-")
    beyond = meta.client.get("/_sandbox/media/square.jpg", headers={"Range": f"bytes={len(full) + 10}-"})
    assert beyond.status_code == 416
    head = meta.client.head("/_sandbox/media/portrait.jpg")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) > 0


def test_unknown_media_and_the_index(meta):
    assert meta.client.get("/_sandbox/media/nope.jpg").status_code == 404
    assert meta.client.get("/_sandbox/media/..%2Fstate").status_code == 404
    items = meta.client.get("/_sandbox/media").get_json()["media"]
    assert {i["name"] for i in items} == {*JPEGS, "clip.mp4"}
    assert all(i["url"].startswith("http://localhost/_sandbox/media/") for i in items)


def test_samples_over_http_from_a_running_sandbox(live):
    import requests

    resp = requests.get(f"{live.url}/_sandbox/media/landscape.jpg", headers={"Range": "bytes=0-99"}, timeout=5)
    assert resp.status_code == 206 and len(resp.content) == 100
    assert resp.headers["Content-Range"] == f"bytes 0-99/{(STATIC / 'landscape.jpg').stat().st_size}"


def test_samples_publish_in_the_sandbox(make_meta):
    meta = make_meta("one_page", SANDBOX_VIDEO_DELAY=0)
    _, page = meta.connect()
    base = "http://localhost/_sandbox/media"
    photo = meta.post(f"/{PAGE_1}/photos", page, url=f"{base}/square.jpg")
    assert photo.status_code == 200
    reel = meta.post(f"/{IG_1}/media", page, media_type="REELS", video_url=f"{base}/clip.mp4").get_json()["id"]
    assert meta.post(f"/{IG_1}/media_publish", page, creation_id=reel).status_code == 200

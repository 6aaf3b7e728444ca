"""The error catalogue of DESIGN §5 and the mapping of Graph API errors onto it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorSpec:
    http_status: int
    message_id: str
    message_en: str
    action: str | None


CATALOGUE: dict[str, ErrorSpec] = {
    "not_admin_page": ErrorSpec(
        403,
        "Akun Facebook ini tidak punya akses admin/editor ke Page yang dipilih.",
        "This Facebook account has no admin/editor access to the selected Page.",
        "switch_account",
    ),
    "instagram_not_connected_to_page": ErrorSpec(
        422,
        "Page Facebook belum terhubung ke Instagram Business.",
        "The Facebook Page is not linked to an Instagram Business account yet.",
        "link_instagram",
    ),
    "token_expired": ErrorSpec(
        409,
        "Koneksi Meta kedaluwarsa. Silakan connect ulang.",
        "The Meta connection has expired. Please connect again.",
        "reconnect",
    ),
    "permissions_missing": ErrorSpec(
        403,
        "Izin Meta belum lengkap untuk auto-posting.",
        "The Meta permissions needed for auto-posting are incomplete.",
        "reconnect",
    ),
    "not_authenticated": ErrorSpec(
        401,
        "Sesi Resellio tidak ditemukan atau sudah berakhir. Silakan masuk lagi.",
        "No valid Resellio session. Please sign in again.",
        "login",
    ),
    "forbidden": ErrorSpec(
        403,
        "Anda tidak punya akses untuk tindakan ini.",
        "You are not allowed to do this.",
        None,
    ),
    "forbidden_origin": ErrorSpec(
        403,
        "Permintaan ditolak karena berasal dari situs yang tidak diizinkan.",
        "The request was refused because it came from a site that is not allowed.",
        None,
    ),
    "invalid_state": ErrorSpec(
        400,
        "Sesi connect tidak valid atau sudah kedaluwarsa. Silakan ulangi connect.",
        "The connect session is invalid or has expired. Please connect again.",
        "reconnect",
    ),
    "selection_expired": ErrorSpec(
        410,
        "Waktu memilih Page sudah habis. Silakan ulangi connect.",
        "The time to choose a Page has run out. Please connect again.",
        "reconnect",
    ),
    "page_not_found": ErrorSpec(
        404,
        "Page tidak ada dalam daftar yang bisa dipilih.",
        "That Page is not in the list you can choose from.",
        "choose_page",
    ),
    "not_connected": ErrorSpec(
        409,
        "Belum ada koneksi Facebook & Instagram yang aktif.",
        "There is no active Facebook & Instagram connection.",
        "connect",
    ),
    "not_found": ErrorSpec(404, "Data tidak ditemukan.", "Not found.", None),
    "not_cancellable": ErrorSpec(
        409,
        "Postingan ini sudah mulai dipublikasikan dan tidak bisa dibatalkan.",
        "This post has started publishing and can no longer be cancelled.",
        None,
    ),
    "idempotency_conflict": ErrorSpec(
        409,
        "Idempotency-Key ini sudah dipakai untuk permintaan yang berbeda.",
        "This Idempotency-Key was already used for a different request.",
        None,
    ),
    "bad_request": ErrorSpec(
        400,
        "Permintaan tidak dapat diproses. Periksa format datanya.",
        "The request could not be processed. Check its format.",
        "fix_input",
    ),
    "validation_error": ErrorSpec(
        422,
        "Ada data yang belum benar. Periksa kembali isian Anda.",
        "Some fields are not valid. Please check your input.",
        "fix_input",
    ),
    "media_invalid": ErrorSpec(
        422,
        "Meta menolak media ini. Pastikan URL gambar publik dan formatnya didukung.",
        "Meta refused this media. Make sure the image URL is public and its format is supported.",
        "fix_input",
    ),
    "publishing_limit_reached": ErrorSpec(
        429,
        "Batas harian posting Instagram sudah tercapai. Postingan akan dicoba lagi nanti.",
        "The daily Instagram publishing limit has been reached. The post will be tried again later.",
        "wait",
    ),
    "rate_limited": ErrorSpec(
        429,
        "Terlalu banyak permintaan. Silakan coba lagi sebentar lagi.",
        "Too many requests. Please try again shortly.",
        "wait",
    ),
    "meta_unavailable": ErrorSpec(
        502,
        "Meta sedang tidak dapat dihubungi. Silakan coba lagi.",
        "Meta cannot be reached right now. Please try again.",
        "retry",
    ),
    "internal_error": ErrorSpec(
        500,
        "Terjadi kesalahan di sistem kami. Silakan coba lagi.",
        "Something went wrong on our side. Please try again.",
        "retry",
    ),
    "account_restricted": ErrorSpec(
        403,
        "Meta membatasi akun Instagram atau Page Facebook ini, jadi postingan tidak bisa diterbitkan. "
        "Periksa pemberitahuan di Facebook/Instagram dan selesaikan di sana.",
        "Meta has restricted this Instagram account or Facebook Page, so the post cannot be published. "
        "Check the notices on Facebook/Instagram and resolve them there.",
        "fix_on_meta",
    ),
    "meta_action_required": ErrorSpec(
        403,
        "Facebook meminta Anda menyelesaikan sesuatu dulu (misalnya verifikasi akun atau otorisasi "
        "publikasi Page). Connect ulang saja tidak cukup.",
        "Facebook needs you to complete something first (for example an account check or the Page "
        "publishing authorization). Reconnecting alone does not help.",
        "fix_on_meta",
    ),
    "media_unreachable": ErrorSpec(
        422,
        "URL media tidak bisa diambil. Pastikan alamatnya https, publik, dan bisa dibuka tanpa login.",
        "The media URL could not be fetched. Make sure it is a public https address that opens without a login.",
        "fix_input",
    ),
    "not_editable": ErrorSpec(
        409,
        "Postingan ini sudah mulai dipublikasikan dan tidak bisa diubah lagi.",
        "This post has started publishing and can no longer be changed.",
        None,
    ),
    "not_retryable": ErrorSpec(
        409,
        "Postingan ini tidak bisa dicoba lagi.",
        "This post cannot be retried.",
        None,
    ),
}


class AppError(Exception):
    """An error the API answers with its catalogue entry."""

    def __init__(
        self,
        error_code: str,
        *,
        fields: dict[str, list[str]] | None = None,
        http_status: int | None = None,
        detail: str | None = None,
    ):
        if error_code not in CATALOGUE:
            raise ValueError(f"unknown error code {error_code!r}")
        super().__init__(detail or error_code)
        self.error_code = error_code
        self.fields = fields
        self.http_status = http_status or CATALOGUE[error_code].http_status
        self.detail = detail

    def fields_in(self, language: str = "id") -> dict[str, list[str]] | None:
        """The field messages in ``language`` (Indonesian unless asked otherwise)."""
        return None if self.fields is None else localised_fields(self.fields, language)


def message_for(error_code: str, language: str = "id") -> str:
    spec = CATALOGUE[error_code]
    return spec.message_en if language == "en" else spec.message_id


def error_body(error_code: str, language: str = "id", fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The documented error shape: ``error_code``, ``message``, ``action`` (+ ``fields``)."""
    spec = CATALOGUE[error_code]
    body: dict[str, Any] = {
        "error_code": error_code,
        "message": message_for(error_code, language),
        "action": spec.action,
    }
    if fields is not None:
        body["fields"] = localised_fields(fields, language)
    return body


# --- Graph API error classification (DESIGN §8 step 6, §13.1) ---
# By numeric code and error_subcode only, never by message text. The (code, subcode)
# pair is looked up first, then the subcode alone (the 2207xxx numbers, 459, 464,
# 1404078 and 4854002 mean the same whatever code carries them), then the code alone.

BACKOFF = "backoff"  # Meta failed: exponential backoff with jitter
WAIT = "wait"  # throttled: Meta's regain time, else backoff
DEFER = "defer"  # daily Instagram quota used: until the window frees
RECREATE = "recreate"  # the container is expired or unusable: make a new one
NEVER = "never"  # not retried


@dataclass(frozen=True)
class GraphRule:
    """What a Graph error means: its catalogue code and how it is retried."""

    error_code: str
    retry: str
    # At least this long before the next try (341: ten minutes).
    min_wait_seconds: float = 0.0
    # Retried on the same Instagram container this many times in all, then a new one is made (2207008).
    recreate_after: int = 0


TOKEN_CODES = {190, 102}
THROTTLE_CODES = {4, 17, 32, 613, 80001, 80002}
TRANSIENT_CODES = {1, 2}
PUBLISHING_LIMIT_SUBCODE = 2207042
NOT_READY_SUBCODE = 2207027

_TRANSIENT = GraphRule("meta_unavailable", BACKOFF)
_RECREATE = GraphRule("meta_unavailable", RECREATE)
_RESTRICTED = GraphRule("account_restricted", NEVER)
_ACT_ON_META = GraphRule("meta_action_required", NEVER)
_MEDIA = GraphRule("media_invalid", NEVER)
_TOKEN = GraphRule("token_expired", NEVER)
_PERMISSIONS = GraphRule("permissions_missing", NEVER)
_THROTTLED = GraphRule("rate_limited", WAIT)

PAIR_RULES: dict[tuple[int, int], GraphRule] = {
    (-1, 2207001): _TRANSIENT,  # Instagram server error
    (-2, 2207003): _TRANSIENT,  # timeout while Meta fetched the media
    (4, 2207051): _RESTRICTED,  # spam protection: the action was blocked
    (190, 459): _ACT_ON_META,  # user checkpointed: log in on Facebook
    (190, 464): _ACT_ON_META,  # unconfirmed user
}
SUBCODE_RULES: dict[int, GraphRule] = {
    2207001: _TRANSIENT,
    2207003: _TRANSIENT,
    2207006: _RECREATE,  # the media could not be found (or a permission error): a new container
    # "Temporary error publishing a container": try again 1-2 times within 30 s to 2 min, then a new container.
    2207008: GraphRule("meta_unavailable", BACKOFF, min_wait_seconds=30, recreate_after=3),
    2207020: _RECREATE,  # container expired
    2207032: _RECREATE,  # create media failed: re-create it
    2207053: _RECREATE,  # unknown error uploading the video: a new container
    2207050: _RESTRICTED,  # the Instagram account is inactive or restricted
    2207051: _RESTRICTED,
    PUBLISHING_LIMIT_SUBCODE: GraphRule("publishing_limit_reached", DEFER),
    459: _ACT_ON_META,
    464: _ACT_ON_META,
    1404078: _ACT_ON_META,  # Page Publishing Authorization not completed
    4854002: _ACT_ON_META,  # identity confirmation needed
    **{sub: _MEDIA for sub in (2207004, 2207005, 2207009, 2207023, 2207026, 2207052)},
}
CODE_RULES: dict[int, GraphRule] = {
    1: _TRANSIENT,
    2: _TRANSIENT,
    341: GraphRule("rate_limited", WAIT, min_wait_seconds=600),  # feed action limit: ten minutes at least
    368: _RESTRICTED,  # the action was deemed abusive or is disallowed
    9004: _MEDIA,
    324: _MEDIA,  # "Requires upload file": Meta could not use the photo URL
    389: _MEDIA,  # "Unable to fetch video file from URL" (/videos)
    6000: _MEDIA,  # "There was a problem uploading your video file" (videos, Reels, video stories)
    10: _PERMISSIONS,
    **{code: _TOKEN for code in TOKEN_CODES},
    **{code: _THROTTLED for code in THROTTLE_CODES},
}


def graph_rule(code: int | None, subcode: int | None = None, http_status: int | None = None) -> GraphRule | None:
    """The rule for a Graph error, or None when the table does not know it."""
    if code is not None and subcode is not None and (code, subcode) in PAIR_RULES:
        return PAIR_RULES[(code, subcode)]
    if subcode is not None and subcode in SUBCODE_RULES:
        return SUBCODE_RULES[subcode]
    if code is not None:
        if code in CODE_RULES:
            return CODE_RULES[code]
        if 200 <= code <= 299:
            return _PERMISSIONS
        if 36000 <= code < 37000:
            return _MEDIA
    if http_status is not None and http_status >= 500:
        return _TRANSIENT
    return None


def classify_graph_error(code: int | None, subcode: int | None = None, http_status: int | None = None) -> str:
    """Map a Graph error to a catalogue code."""
    rule = graph_rule(code, subcode, http_status)
    return rule.error_code if rule is not None else "meta_unavailable"


# --- Field messages (the ``fields`` of a validation_error), in the caller's language ---
# The validators write English (marshmallow's own messages and ours); that text is the key
# of its Indonesian wording here, as gettext keys a translation by its source text. The API
# answers Indonesian unless the caller prefers English, as for the top-level message.

FIELD_MESSAGES_ID: dict[str, str] = {
    # marshmallow's own
    "Missing data for required field.": "Wajib diisi.",
    "Field may not be null.": "Wajib diisi.",
    "Unknown field.": "Kolom ini tidak dikenal.",
    "Invalid value.": "Nilai tidak valid.",
    "Invalid input type.": "Jenis data tidak valid.",
    "Invalid type.": "Jenis data tidak valid.",
    "Not a valid string.": "Harus berupa teks.",
    "Not a valid utf-8 string.": "Harus berupa teks UTF-8 yang valid.",
    "Not a valid integer.": "Harus berupa bilangan bulat.",
    "Not a valid number.": "Harus berupa angka.",
    "Number too large.": "Angka terlalu besar.",
    "Not a valid boolean.": "Harus bernilai true atau false.",
    "Not a valid list.": "Harus berupa daftar.",
    "Not a valid mapping type.": "Harus berupa objek.",
    "Not a valid datetime.": "Waktu tidak valid.",
    "Not a valid aware datetime.": "Waktu tidak valid.",
    # ours (shared/post_schema.py, connect_service/schemas.py and the handlers)
    "Must be an ISO-8601 date and time with a time zone, e.g. 2026-02-20T10:00:00Z.": (
        "Harus berupa tanggal dan waktu ISO-8601 dengan zona waktu, misalnya 2026-02-20T10:00:00Z."
    ),
    "Must include a time zone (Z or an offset such as +07:00).": (
        "Harus menyertakan zona waktu (Z atau selisih seperti +07:00)."
    ),
    "Must not be more than 5 minutes in the past.": "Waktu terbit tidak boleh lebih dari 5 menit yang lalu.",
    "Must be within a year from now.": "Waktu terbit harus dalam satu tahun ke depan.",
    "Must be at most 2200 characters.": "Caption maksimal 2.200 karakter.",
    "Must have at most 30 hashtags.": "Caption maksimal berisi 30 hashtag.",
    "Must have at most 20 @mentions.": "Caption maksimal berisi 20 @mention.",
    "Must be an absolute https URL.": "Harus URL lengkap yang diawali https://.",
    "Must be an absolute https or http URL.": "Harus URL lengkap yang diawali https:// atau http://.",
    "Must not carry a user name or password.": "URL tidak boleh berisi nama pengguna atau kata sandi.",
    "Must have a port from 1 to 65535, or none.": "Port URL harus antara 1 dan 65535, atau tidak ada.",
    "Must be reachable from the internet (Meta fetches it).": (
        "URL harus bisa diakses dari internet, karena Meta mengambilnya langsung."
    ),
    "Must not contain NUL characters.": "Tidak boleh berisi karakter NUL.",
    "Choose at least one target.": "Pilih minimal satu tujuan.",
    "Each target at most once.": "Setiap tujuan hanya boleh dipilih sekali.",
    "Required when instagram is a target.": "Wajib diisi jika Instagram dipilih.",
    "A link is only posted to Facebook.": "Link hanya diposting ke Facebook. Pilih Facebook atau kosongkan link.",
    "A post needs a caption, a media_url or a link.": "Isi caption, URL gambar, atau link.",
    "Must be a Page id.": "Harus berupa id Page.",
    "Must be 1 to 255 printable characters.": "Harus 1 sampai 255 karakter yang dapat dicetak.",
    "Must be a non-empty string of at most 255 printable characters.": (
        "Harus berupa teks tidak kosong, maksimal 255 karakter yang dapat dicetak."
    ),
    "Invalid cursor.": "Cursor tidak valid.",
    # editing a post (shared/post_changes.py; DESIGN §13.3)
    "A post cannot move to another connection; schedule a new one.": (
        "Postingan tidak bisa dipindah ke koneksi lain; jadwalkan postingan baru."
    ),
    # content v2 (shared/post_schema.py, shared/targets.py; DESIGN §13.2)
    "Give either media_url or media, not both.": "Isi media_url atau media, jangan keduanya.",
    "Alt text is only for images.": "Teks alternatif (alt text) hanya untuk gambar.",
    "Must not be blank (leave first_comment out for no comment).": (
        "Tidak boleh kosong (hapus first_comment jika tidak ada komentar)."
    ),
    "The comment must be at most 2200 characters.": "Komentar maksimal 2.200 karakter.",
    "The comment must have at most 30 hashtags.": "Komentar maksimal berisi 30 hashtag.",
    "The comment must have at most 20 @mentions.": "Komentar maksimal berisi 20 @mention.",
    "A story has no caption.": "Story tidak memakai caption. Kosongkan caption.",
    "A story has no first comment.": "Story tidak bisa diberi komentar pertama. Kosongkan first_comment.",
    "A link can only go with format post.": "Link hanya bisa dipakai untuk format post.",
    "A cover is only used where Instagram makes a reel (a reel, or one video posted to Instagram).": (
        "Sampul (cover) hanya dipakai untuk reel Instagram (format reel, atau satu video yang diposting ke Instagram)."
    ),
    "A reel needs exactly one video.": "Reel harus berisi tepat satu video.",
    "A story needs exactly one image or video.": "Story harus berisi tepat satu gambar atau video.",
    "At most 10 media items.": "Maksimal 10 media.",
    "Facebook: Several media in one post must all be images.": (
        "Facebook: jika satu postingan berisi beberapa media, semuanya harus gambar."
    ),
    # the media pre-check (shared/media_check.py)
    "Must be an image file that can be read (JPEG, PNG, GIF, WebP, BMP or TIFF).": (
        "Harus berupa file gambar yang bisa dibaca (JPEG, PNG, GIF, WebP, BMP, atau TIFF)."
    ),
    "Must be an MP4 or MOV video.": "Harus berupa video MP4 atau MOV.",
    "Instagram: Must be a JPEG image.": "Instagram: harus berupa gambar JPEG.",
    "Instagram: The image must be at most 8 MB.": "Instagram: ukuran gambar maksimal 8 MB.",
    "Instagram: The aspect ratio must be between 4:5 (portrait) and 1.91:1 (landscape).": (
        "Instagram: rasio aspek gambar harus antara 4:5 (potret) dan 1,91:1 (lanskap)."
    ),
    "Facebook: The video must be at most 1 GB.": "Facebook: ukuran video maksimal 1 GB.",
    "Instagram: The video must be at most 1 GB.": "Instagram: ukuran video maksimal 1 GB.",
    "Must be an https URL, redirects included.": "Harus URL https, termasuk setelah pengalihan (redirect).",
    "Must be on a public internet address, redirects included.": (
        "Harus berada di alamat internet publik, termasuk setelah pengalihan (redirect)."
    ),
    "Redirects to a host that is not allowed here.": "Mengalihkan ke host yang tidak diizinkan di sini.",
    "The host name could not be found.": "Nama host tidak ditemukan.",
    "The server could not be reached.": "Server tidak dapat dihubungi.",
    "The server's https certificate could not be verified.": "Sertifikat https server tidak dapat diverifikasi.",
    "The server did not answer in time.": "Server tidak menjawab tepat waktu.",
    "More than 3 redirects.": "Lebih dari 3 pengalihan (redirect).",
    "The server's answer could not be read.": "Jawaban server tidak dapat dibaca.",
}

# Why a JSON value handed over on RQ is refused (shared/validation.py UnsafeJSON).
JSON_REASONS_ID: dict[str, str] = {
    "nested deeper than 32 levels": "bersarang lebih dari 32 tingkat",
    "numbers must be finite": "angka harus terhingga",
    "strings must be valid Unicode (no lone surrogates)": "teks harus Unicode yang valid",
    "object keys must not contain NUL characters": "nama kolom tidak boleh berisi karakter NUL",
    "object keys must be strings": "nama kolom harus berupa teks",
}

# marshmallow's messages that carry a value, and ours that carry a reason.
FIELD_PATTERNS_ID: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Longer than maximum length (?P<max>\d+)\."), "Maksimal {max} karakter."),
    (re.compile(r"Shorter than minimum length (?P<min>\d+)\."), "Minimal {min} karakter."),
    (re.compile(r"Length must be between (?P<min>\d+) and (?P<max>\d+)\."), "Panjang harus {min} sampai {max}."),
    (re.compile(r"Must be one of: (?P<choices>.*)\."), "Harus salah satu dari: {choices}."),
    (
        re.compile(r"Must be greater than or equal to (?P<min>\S+) and less than or equal to (?P<max>\S+)\."),
        "Harus antara {min} dan {max}.",
    ),
    (re.compile(r"Must be greater than or equal to (?P<min>\S+)\."), "Minimal {min}."),
    (re.compile(r"Must be less than or equal to (?P<max>\S+)\."), "Maksimal {max}."),
    (re.compile(r"Not acceptable JSON: (?P<reason>.*)\."), "JSON tidak dapat diterima ({reason})."),
    (re.compile(r"The server answered HTTP (?P<status>\d+)\."), "Server menjawab HTTP {status}."),
]


def field_message(message: str, language: str = "id") -> str:
    """One field message in ``language``; English is the source text."""
    if language == "en":
        return message
    if message in FIELD_MESSAGES_ID:
        return FIELD_MESSAGES_ID[message]
    for pattern, wording in FIELD_PATTERNS_ID:
        found = pattern.fullmatch(message)
        if found:
            return wording.format(**{name: _id_value(value) for name, value in found.groupdict().items()})
    return message


def _id_value(text: str) -> str:
    """Whole numbers as Indonesian writes them (2.048), a known reason in Indonesian, else as it is."""
    return f"{int(text):,}".replace(",", ".") if text.isdigit() else JSON_REASONS_ID.get(text, text)


def localised_fields(fields: dict[str, list[str]], language: str = "id") -> dict[str, list[str]]:
    """The ``fields`` of a validation error with each message in ``language``."""
    return {name: [field_message(message, language) for message in messages] for name, messages in fields.items()}

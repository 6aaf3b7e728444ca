"""The error catalogue of DESIGN §5 and the mapping of Graph API errors onto it."""
from __future__ import annotations

from dataclasses import dataclass


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
        401, "Sesi Resellio tidak ditemukan atau sudah berakhir. Silakan masuk lagi.",
        "No valid Resellio session. Please sign in again.", "login",
    ),
    "forbidden": ErrorSpec(
        403, "Anda tidak punya akses untuk tindakan ini.",
        "You are not allowed to do this.", None,
    ),
    "forbidden_origin": ErrorSpec(
        403, "Permintaan ditolak karena berasal dari situs yang tidak diizinkan.",
        "The request was refused because it came from a site that is not allowed.", None,
    ),
    "invalid_state": ErrorSpec(
        400, "Sesi connect tidak valid atau sudah kedaluwarsa. Silakan ulangi connect.",
        "The connect session is invalid or has expired. Please connect again.", "reconnect",
    ),
    "selection_expired": ErrorSpec(
        410, "Waktu memilih Page sudah habis. Silakan ulangi connect.",
        "The time to choose a Page has run out. Please connect again.", "reconnect",
    ),
    "page_not_found": ErrorSpec(
        404, "Page tidak ada dalam daftar yang bisa dipilih.",
        "That Page is not in the list you can choose from.", "choose_page",
    ),
    "not_connected": ErrorSpec(
        409, "Belum ada koneksi Facebook & Instagram yang aktif.",
        "There is no active Facebook & Instagram connection.", "connect",
    ),
    "not_found": ErrorSpec(404, "Data tidak ditemukan.", "Not found.", None),
    "not_cancellable": ErrorSpec(
        409, "Postingan ini sudah mulai dipublikasikan dan tidak bisa dibatalkan.",
        "This post has started publishing and can no longer be cancelled.", None,
    ),
    "idempotency_conflict": ErrorSpec(
        409, "Idempotency-Key ini sudah dipakai untuk permintaan yang berbeda.",
        "This Idempotency-Key was already used for a different request.", None,
    ),
    "bad_request": ErrorSpec(
        400, "Permintaan tidak dapat diproses. Periksa format datanya.",
        "The request could not be processed. Check its format.", "fix_input",
    ),
    "validation_error": ErrorSpec(
        422, "Ada data yang belum benar. Periksa kembali isian Anda.",
        "Some fields are not valid. Please check your input.", "fix_input",
    ),
    "media_invalid": ErrorSpec(
        422, "Meta menolak media ini. Pastikan URL gambar publik dan formatnya didukung.",
        "Meta refused this media. Make sure the image URL is public and its format is supported.",
        "fix_input",
    ),
    "publishing_limit_reached": ErrorSpec(
        429, "Batas harian posting Instagram sudah tercapai. Postingan akan dicoba lagi nanti.",
        "The daily Instagram publishing limit has been reached. The post will be tried again later.",
        "wait",
    ),
    "rate_limited": ErrorSpec(
        429, "Terlalu banyak permintaan. Silakan coba lagi sebentar lagi.",
        "Too many requests. Please try again shortly.", "wait",
    ),
    "meta_unavailable": ErrorSpec(
        502, "Meta sedang tidak dapat dihubungi. Silakan coba lagi.",
        "Meta cannot be reached right now. Please try again.", "retry",
    ),
    "internal_error": ErrorSpec(
        500, "Terjadi kesalahan di sistem kami. Silakan coba lagi.",
        "Something went wrong on our side. Please try again.", "retry",
    ),
}


class AppError(Exception):
    """An error the API answers with its catalogue entry."""

    def __init__(self, error_code: str, *, fields: dict[str, list[str]] | None = None,
                 http_status: int | None = None, detail: str | None = None):
        if error_code not in CATALOGUE:
            raise ValueError(f"unknown error code {error_code!r}")
        super().__init__(detail or error_code)
        self.error_code = error_code
        self.fields = fields
        self.http_status = http_status or CATALOGUE[error_code].http_status
        self.detail = detail


def message_for(error_code: str, language: str = "id") -> str:
    spec = CATALOGUE[error_code]
    return spec.message_en if language == "en" else spec.message_id


def error_body(error_code: str, language: str = "id", fields: dict | None = None) -> dict:
    """The documented error shape: ``error_code``, ``message``, ``action`` (+ ``fields``)."""
    spec = CATALOGUE[error_code]
    body = {"error_code": error_code, "message": message_for(error_code, language), "action": spec.action}
    if fields is not None:
        body["fields"] = fields
    return body


# --- Graph API error classification (numeric code and subcode, never message text) ---

TOKEN_CODES = {190, 102}
THROTTLE_CODES = {4, 17, 32, 613, 80001, 80002}
TRANSIENT_CODES = {1, 2}
# 2207020 (container expired) and 2207032 (re-create media) are not here: the worker makes a new container.
MEDIA_SUBCODES = {2207004, 2207005, 2207009, 2207023, 2207026, 2207052}
PUBLISHING_LIMIT_SUBCODE = 2207042


def classify_graph_error(code: int | None, subcode: int | None = None, http_status: int | None = None) -> str:
    """Map a Graph error to a catalogue code."""
    if subcode == PUBLISHING_LIMIT_SUBCODE:
        return "publishing_limit_reached"
    if subcode in MEDIA_SUBCODES or code == 9004 or (code is not None and 36000 <= code < 37000):
        return "media_invalid"
    if code in TOKEN_CODES:
        return "token_expired"
    if code == 10 or (code is not None and 200 <= code <= 299):
        return "permissions_missing"
    if code in THROTTLE_CODES:
        return "rate_limited"
    if code in TRANSIENT_CODES or (http_status is not None and http_status >= 500):
        return "meta_unavailable"
    if code == 324:
        # "Requires upload file": Meta could not use the photo URL.
        return "media_invalid"
    return "meta_unavailable"


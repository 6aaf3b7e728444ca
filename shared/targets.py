"""What each target publishes for a post (DESIGN §13.2's formats table), one class per target.

The schedule body's validation, the worker's publishers, the API body and the page
all iterate :data:`TARGETS`; adding a target is a new :class:`TargetSpec` here and a
publisher in ``publish_worker.targets``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from shared.errors import message_for
from shared.models import FAILED, FORMAT_REEL, FORMAT_STORY, UNCONFIRMED

IMAGE = "image"
VIDEO = "video"
MAX_MEDIA = 10


@dataclass(frozen=True)
class MediaItem:
    url: str
    type: str  # IMAGE | VIDEO
    alt_text: str | None = None

    @classmethod
    def from_stored(cls, item: dict[str, Any]) -> MediaItem:
        return cls(url=item["url"], type=item.get("type") or IMAGE, alt_text=item.get("alt_text"))


def media_items(stored: Sequence[dict[str, Any]] | None, media_url: str | None = None) -> list[MediaItem]:
    """A post's media: its ``media`` list, or the one image of an earlier post's ``media_url``."""
    if stored:
        return [MediaItem.from_stored(item) for item in stored]
    return [MediaItem(media_url, IMAGE)] if media_url else []


class Refused(Exception):
    """This target cannot publish this combination: ``field`` names what to change."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class TargetSpec:
    """A target's name, the key of its remote id in the API body, and what it publishes."""

    name: ClassVar[str]
    label: ClassVar[str]
    remote_id_key: ClassVar[str]

    def kind(self, post_format: str, media: Sequence[MediaItem]) -> str:
        """What this target publishes (e.g. ``album``, ``carousel``), or :class:`Refused`."""
        raise NotImplementedError

    def makes_reels_container(self, post_format: str, media: Sequence[MediaItem]) -> bool:
        """Whether a reel cover (``cover_url``) applies to what this target publishes."""
        return False


def _single_video(post_format: str, media: Sequence[MediaItem]) -> None:
    if len(media) != 1 or media[0].type != VIDEO:
        raise Refused("media", f"A {post_format} needs exactly one video.")


class FacebookPage(TargetSpec):
    name = "facebook"
    label = "Facebook"
    remote_id_key = "post_id"

    def kind(self, post_format: str, media: Sequence[MediaItem]) -> str:
        if post_format == FORMAT_REEL:
            _single_video(post_format, media)
            return "reel"
        if post_format == FORMAT_STORY:
            return "video_story" if media[0].type == VIDEO else "photo_story"
        if not media:
            return "feed"
        if len(media) == 1:
            return "video" if media[0].type == VIDEO else "photo"
        if any(item.type == VIDEO for item in media):
            raise Refused("media", "Facebook: Several media in one post must all be images.")
        return "album"


class InstagramAccount(TargetSpec):
    name = "instagram"
    label = "Instagram"
    remote_id_key = "media_id"

    def kind(self, post_format: str, media: Sequence[MediaItem]) -> str:
        if post_format == FORMAT_REEL:
            _single_video(post_format, media)
            return "reel"
        if post_format == FORMAT_STORY:
            return "story"
        if not media:
            raise Refused("media_url", "Required when instagram is a target.")
        if len(media) == 1:
            return "reel" if media[0].type == VIDEO else "image"
        return "carousel"

    def makes_reels_container(self, post_format: str, media: Sequence[MediaItem]) -> bool:
        try:
            return self.kind(post_format, media) == "reel"
        except Refused:
            return False


FACEBOOK = FacebookPage()
INSTAGRAM = InstagramAccount()
# In publishing order.
TARGETS: tuple[TargetSpec, ...] = (FACEBOOK, INSTAGRAM)
TARGET_NAMES = tuple(spec.name for spec in TARGETS)


def spec(name: str) -> TargetSpec:
    return next(s for s in TARGETS if s.name == name)


def check_format(post_format: str, media: Sequence[MediaItem]) -> None:
    """The refusals that do not depend on the target (a story is one item, at most 10 items)."""
    if len(media) > MAX_MEDIA:
        raise Refused("media", f"At most {MAX_MEDIA} media items.")
    if post_format == FORMAT_STORY and len(media) != 1:
        raise Refused("media", "A story needs exactly one image or video.")


UNCONFIRMED_MESSAGE = (
    "status posting belum bisa dipastikan. Periksa dulu apakah postingan sudah tayang sebelum memposting ulang."
)


def target_message(status: str, error_code: str | None, stored: str | None) -> str | None:
    """What the seller reads about one target: Meta's words kept with it, else the catalogue's."""
    if status == UNCONFIRMED:
        return UNCONFIRMED_MESSAGE
    if status == FAILED:
        return stored or message_for(error_code or "internal_error")
    return None

"""The pending multi-page selection, kept in Redis for ten minutes.

It holds page ids, names and Instagram ids and the long-lived user token
(encrypted, bound to the user); never the page tokens.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from redis import Redis

from shared.crypto import TokenCipher
from shared.redis_conn import key

SELECTION_TTL_SECONDS = 600


@dataclass
class PageChoice:
    id: str
    name: str
    instagram_business_account_id: str | None = None
    instagram_username: str | None = None
    # What the user may do on the Page, as /me/accounts said (the Page node has no such field).
    tasks: list[str] = field(default_factory=list)

    @property
    def has_instagram(self) -> bool:
        return bool(self.instagram_business_account_id)

    def public(self) -> dict:
        return {"id": self.id, "name": self.name, "has_instagram": self.has_instagram}


@dataclass
class PendingSelection:
    meta_user_id: str
    pages: list[PageChoice]
    scopes_granted: list[str]
    user_token: str = field(repr=False)

    def find(self, page_id: str) -> PageChoice | None:
        return next((p for p in self.pages if p.id == page_id), None)


class SelectionStore:
    def __init__(self, redis: Redis, cipher: TokenCipher):
        self.redis = redis
        self.cipher = cipher

    @staticmethod
    def _key(user_id: str) -> str:
        return key("page_selection", user_id)

    def save(self, user_id: str, selection: PendingSelection) -> None:
        payload = {
            "meta_user_id": selection.meta_user_id,
            "pages": [asdict(p) for p in selection.pages],
            "scopes_granted": selection.scopes_granted,
            "user_token_enc": self.cipher.encrypt(selection.user_token, row_id=f"selection:{user_id}",
                                                  field="user_access_token"),
        }
        self.redis.set(self._key(user_id), json.dumps(payload), ex=SELECTION_TTL_SECONDS)

    def load(self, user_id: str) -> PendingSelection | None:
        raw = self.redis.get(self._key(user_id))
        if raw is None:
            return None
        payload = json.loads(raw)
        return PendingSelection(
            meta_user_id=payload["meta_user_id"],
            pages=[PageChoice(**p) for p in payload["pages"]],
            scopes_granted=payload["scopes_granted"],
            user_token=self.cipher.decrypt(payload["user_token_enc"], row_id=f"selection:{user_id}",
                                           field="user_access_token"),
        )

    def clear(self, user_id: str) -> None:
        self.redis.delete(self._key(user_id))

"""The pending multi-page selection, kept in Redis for ten minutes.

It holds page ids, names and Instagram ids and the long-lived user token
(encrypted, bound to the user); never the page tokens. Selections are keyed by the
Resellio user; a small index (a set per Meta user, named by a keyed hash of the Meta
user id) lets Meta's data deletion find a selection whose connect was never finished.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from redis import Redis, WatchError

from connect_service.meta_erasure import meta_user_hash
from shared.crypto import TokenCipher
from shared.redis_conn import key
from shared.services import Services

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


@dataclass
class PendingSelection:
    meta_user_id: str
    pages: list[PageChoice]
    scopes_granted: list[str]
    user_token: str = field(repr=False)

    def find(self, page_id: str) -> PageChoice | None:
        return next((p for p in self.pages if p.id == page_id), None)


class SelectionStore:
    def __init__(self, redis: Redis, cipher: TokenCipher, app_secret: str):
        self.redis = redis
        self.cipher = cipher
        self.app_secret = app_secret

    @classmethod
    def of(cls, services: Services) -> SelectionStore:
        return cls(services.redis, services.cipher, services.settings.meta_app_secret)

    @staticmethod
    def _key(user_id: str) -> str:
        return key("page_selection", user_id)

    def _meta_index(self, meta_user_id: str) -> str:
        """The index set of one Meta user's selections, named by the same keyed hash that
        stands for an erased Meta user id in the database (so key rotation cannot lose it),
        keeping the Meta user id out of Redis key names."""
        return key("page_selection_meta", meta_user_hash(self.app_secret, meta_user_id))

    def save(self, user_id: str, selection: PendingSelection) -> None:
        payload = {
            "saved_at": int(time.time()),
            "meta_user_id": selection.meta_user_id,
            "pages": [asdict(p) for p in selection.pages],
            "scopes_granted": selection.scopes_granted,
            "user_token_enc": self.cipher.encrypt(
                selection.user_token, row_id=f"selection:{user_id}", field="user_access_token"
            ),
        }
        index = self._meta_index(selection.meta_user_id)
        pipe = self.redis.pipeline()
        pipe.set(self._key(user_id), json.dumps(payload), ex=SELECTION_TTL_SECONDS)
        pipe.sadd(index, user_id)
        pipe.expire(index, SELECTION_TTL_SECONDS)
        pipe.execute()

    def load(self, user_id: str) -> PendingSelection | None:
        raw = self.redis.get(self._key(user_id))
        if raw is None:
            return None
        payload = json.loads(raw)
        return PendingSelection(
            meta_user_id=payload["meta_user_id"],
            pages=[PageChoice(**p) for p in payload["pages"]],
            scopes_granted=payload["scopes_granted"],
            user_token=self.cipher.decrypt(
                payload["user_token_enc"], row_id=f"selection:{user_id}", field="user_access_token"
            ),
        )

    def clear(self, user_id: str) -> None:
        self.redis.delete(self._key(user_id))

    def clear_for_meta_user(self, meta_user_id: str, user_ids=(), *, saved_not_after: int | None = None) -> int:
        """Erase the selections holding ``meta_user_id``; returns how many.

        Looked for under the Meta user's index and under ``user_ids`` (the Resellio users
        whose connections belong to that Meta user). A selection of another Meta user, or
        one saved after ``saved_not_after`` (epoch seconds), is left alone.
        """
        index = self._meta_index(meta_user_id)
        candidates = {m.decode() if isinstance(m, bytes) else m for m in self.redis.smembers(index)}
        erased = 0
        for user_id in sorted(candidates | set(user_ids)):
            if self._erase_if_theirs(user_id, meta_user_id, saved_not_after):
                erased += 1
                self.redis.srem(index, user_id)
        return erased

    def _erase_if_theirs(self, user_id: str, meta_user_id: str, saved_not_after: int | None) -> bool:
        selection_key = self._key(user_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(selection_key)  # a selection saved meanwhile is newer: keep it
                raw = pipe.get(selection_key)
                if raw is None:
                    return False
                payload = json.loads(raw)
                if payload.get("meta_user_id") != meta_user_id:
                    return False
                if saved_not_after is not None and int(payload.get("saved_at") or 0) > saved_not_after:
                    return False
                pipe.multi()
                pipe.delete(selection_key)
                pipe.execute()
                return True
            except WatchError:
                return False

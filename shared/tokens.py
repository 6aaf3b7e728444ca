"""Reading and writing a connection's encrypted tokens, and key rotation."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.crypto import TokenCipher
from shared.models import TOKEN_FIELDS, SocialConnection


def store_tokens(conn: SocialConnection, cipher: TokenCipher, *, page_token: str, user_token: str | None) -> None:
    """Encrypt both tokens into ``conn`` (its id must already be set)."""
    conn.page_access_token_enc = cipher.encrypt(page_token, row_id=conn.id, field="page_access_token_enc")
    conn.user_access_token_enc = (
        cipher.encrypt(user_token, row_id=conn.id, field="user_access_token_enc") if user_token else None
    )
    conn.key_id = cipher.provider.current_key_id()


def page_token(conn: SocialConnection, cipher: TokenCipher) -> str | None:
    if not conn.page_access_token_enc:
        return None
    return cipher.decrypt(conn.page_access_token_enc, row_id=conn.id, field="page_access_token_enc")


def user_token(conn: SocialConnection, cipher: TokenCipher) -> str | None:
    if not conn.user_access_token_enc:
        return None
    return cipher.decrypt(conn.user_access_token_enc, row_id=conn.id, field="user_access_token_enc")


def wipe_tokens(conn: SocialConnection) -> None:
    conn.page_access_token_enc = None
    conn.user_access_token_enc = None
    conn.key_id = None


def reencrypt_all(session: Session, cipher: TokenCipher, batch_size: int = 200) -> int:
    """Re-encrypt every stored token under the current key; returns rows changed.

    Each batch is committed, so an interrupted run can simply be started again.
    """
    current = cipher.provider.current_key_id()
    changed = 0
    while True:
        rows = session.scalars(
            select(SocialConnection)
            .where(SocialConnection.key_id.is_not(None), SocialConnection.key_id != current)
            .where(or_(*(getattr(SocialConnection, f).is_not(None) for f in TOKEN_FIELDS)))
            .order_by(SocialConnection.id)
            .limit(batch_size)
            .with_for_update()
        ).all()
        if not rows:
            return changed
        for conn in rows:
            for field in TOKEN_FIELDS:
                value = getattr(conn, field)
                if value:
                    plain = cipher.decrypt(value, row_id=conn.id, field=field)
                    setattr(conn, field, cipher.encrypt(plain, row_id=conn.id, field=field))
            conn.key_id = current
            changed += 1
        session.commit()

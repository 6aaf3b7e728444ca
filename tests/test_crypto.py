"""Token encryption at rest and key rotation."""

from __future__ import annotations

import base64

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from shared.crypto import DecryptionError, EnvKeyRing, TokenCipher
from shared.models import SocialConnection, new_id
from shared.settings import parse_key_ring
from shared.tokens import page_token, store_tokens, user_token
from tests.conftest import KEY_A, KEY_B


def cipher(*keys: str) -> TokenCipher:
    return TokenCipher(EnvKeyRing(parse_key_ring(",".join(keys))))


def test_round_trip_and_fresh_nonce():
    c = cipher(KEY_A)
    one = c.encrypt("EAAsecret-page-token", row_id="conn_1", field="page_access_token_enc")
    two = c.encrypt("EAAsecret-page-token", row_id="conn_1", field="page_access_token_enc")
    assert one != two  # a fresh nonce every time
    assert one.startswith("v1:k2026a:")
    assert "EAAsecret" not in one
    assert c.decrypt(one, row_id="conn_1", field="page_access_token_enc") == "EAAsecret-page-token"


def test_tampered_ciphertext_is_rejected():
    c = cipher(KEY_A)
    value = c.encrypt("token-value", row_id="conn_1", field="page_access_token_enc")
    prefix, payload = value.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[-1] ^= 0x01
    tampered = prefix + ":" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(DecryptionError):
        c.decrypt(tampered, row_id="conn_1", field="page_access_token_enc")
    with pytest.raises(DecryptionError):
        c.decrypt("garbage", row_id="conn_1", field="page_access_token_enc")


def test_ciphertext_is_bound_to_its_row_and_field():
    c = cipher(KEY_A)
    value = c.encrypt("token-value", row_id="conn_1", field="page_access_token_enc")
    with pytest.raises(DecryptionError):
        c.decrypt(value, row_id="conn_2", field="page_access_token_enc")
    with pytest.raises(DecryptionError):
        c.decrypt(value, row_id="conn_1", field="user_access_token_enc")


def test_unknown_key_id_is_rejected():
    value = cipher(KEY_B).encrypt("t", row_id="r", field="f")
    with pytest.raises(DecryptionError):
        cipher(KEY_A).decrypt(value, row_id="r", field="f")


def test_old_keys_still_decrypt_and_new_values_use_the_first_key():
    old_value = cipher(KEY_A).encrypt("old-token", row_id="r", field="f")
    ring = cipher(KEY_B, KEY_A)
    assert ring.decrypt(old_value, row_id="r", field="f") == "old-token"
    assert ring.encrypt("new", row_id="r", field="f").startswith("v1:k2026b:")


def _stored_connection(db_session, c: TokenCipher, user: str) -> SocialConnection:
    conn = SocialConnection(id=new_id("conn"), user_id_resellio=user, facebook_page_id="1", status="connected")
    store_tokens(conn, c, page_token=f"EAApage-{user}", user_token=f"EAAuser-{user}")
    db_session.add(conn)
    db_session.commit()
    return conn


def test_rotation_command_reencrypts_every_row(db_session, database_url, monkeypatch):
    old = cipher(KEY_A)
    ids = [_stored_connection(db_session, old, f"user-{n}").id for n in range(3)]
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", f"{KEY_B},{KEY_A}")
    from connect_service.cli import main

    result = CliRunner().invoke(main, ["rotate-keys"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 3 connection(s) under key 'k2026b'" in result.output

    db_session.expire_all()
    new_only = cipher(KEY_B)
    for conn in db_session.scalars(select(SocialConnection).where(SocialConnection.id.in_(ids))):
        assert conn.key_id == "k2026b"
        assert conn.page_access_token_enc.startswith("v1:k2026b:")
        assert page_token(conn, new_only) == f"EAApage-{conn.user_id_resellio}"
        assert user_token(conn, new_only) == f"EAAuser-{conn.user_id_resellio}"
    # Running it again changes nothing.
    again = CliRunner().invoke(main, ["rotate-keys"])
    assert "re-encrypted 0 connection(s)" in again.output

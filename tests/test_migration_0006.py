"""Migration 0006 (DESIGN §13.2 "Data", §13.5 Alembic): each post's ``fb_*``/``ig_*`` columns move
to ``post_targets`` rows and its ``media_url`` to a ``media`` list without loss; the downgrade puts
every value back exactly, or refuses, changing nothing, while a post only the new model can express
exists. Also on SQLite, where a table rebuild with ``foreign_keys`` on would empty ``post_targets``.
And the migrations' head matches the models (autogenerate finds nothing to add).
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

import shared.models  # noqa: F401  (every table on the metadata)
from shared.db import Base, make_engine
from shared.migrations import alembic_config, run_migrations
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_reachable

T0 = datetime(2026, 11, 30, 8, 15, 30, 123456, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def fresh_postgres():
    """A database of this test's own, created empty and dropped afterwards."""
    if not _postgres_reachable():
        pytest.skip("PostgreSQL is not reachable")
    import psycopg

    name = f"social_connect_migration_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    try:
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- rows as revision 0005 stores them ---

CONNECTION = {
    "id": "conn_mig",
    "user_id_resellio": "user-1",
    "status": "connected",
    "created_at": T0,
    "updated_at": T0,
}

FB_DEFAULTS = {
    "fb_status": "pending",
    "fb_post_id": None,
    "fb_error_code": None,
    "fb_sent_at": None,
    "fb_published_at": None,
    "fb_tries": 0,
    "fb_not_before": None,
}
IG_DEFAULTS = {
    "ig_status": "pending",
    "ig_container_id": None,
    "ig_media_id": None,
    "ig_error_code": None,
    "ig_container_at": None,
    "ig_publish_sent_at": None,
    "ig_published_at": None,
    "ig_tries": 0,
    "ig_not_before": None,
}


def post_0005(post_id: str, status: str, **values: Any) -> dict[str, Any]:
    """A whole ``scheduled_posts`` row of revision 0005 (every column, so restoring is checkable)."""
    return {
        "id": post_id,
        "connection_id": CONNECTION["id"],
        "user_id_resellio": "user-1",
        "publish_at": at(60),
        "caption": f"Promo {post_id}",
        "media_url": f"https://cdn.example.com/{post_id}.jpg",
        "link": None,
        "targets": ["facebook", "instagram"],
        "status": status,
        **FB_DEFAULTS,
        **IG_DEFAULTS,
        "attempts": 0,
        "next_attempt_at": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "rq_job_id": f"pub-{post_id}-1",
        "enqueue_seq": 1,
        "error_code": None,
        "error_message": None,
        "idempotency_scope": None,
        "idempotency_key": None,
        "request_hash": None,
        "started_at": None,
        "finished_at": None,
        "created_at": at(0),
        "updated_at": at(1),
        "takes": 0,
        **values,
    }


POSTS_0005 = [
    post_0005("job_queued", "queued", ig_tries=1, ig_not_before=at(90), ig_error_code="publishing_limit_reached"),
    post_0005(
        "job_publishing",
        "publishing",
        lease_owner="worker-7:4242",
        lease_expires_at=at(62),
        started_at=at(60.5),
        attempts=2,
        takes=1,
        next_attempt_at=at(61),
        fb_status="published",
        fb_post_id="104000000000001_555",
        fb_sent_at=at(60.6),
        fb_published_at=at(60.7),
        fb_tries=1,
        ig_container_id="17900000000000111",
        ig_container_at=at(60.8),
        ig_tries=2,
        ig_not_before=at(61.5),
        idempotency_scope="scheduler",
        idempotency_key="order-9",
        request_hash="ab" * 32,
    ),
    post_0005(
        "job_published",
        "published",
        fb_status="published",
        fb_post_id="104000000000001_556",
        fb_sent_at=at(61),
        fb_published_at=at(61.1),
        fb_tries=1,
        ig_status="published",
        ig_container_id="17900000000000112",
        ig_container_at=at(61.2),
        ig_media_id="17950000000000222",
        ig_publish_sent_at=at(61.3),
        ig_published_at=at(61.4),
        ig_tries=1,
        finished_at=at(61.5),
    ),
    post_0005(
        "job_partial",
        "partially_published",
        fb_status="published",
        fb_post_id="104000000000001_557",
        fb_sent_at=at(62),
        fb_published_at=at(62.1),
        fb_tries=1,
        ig_status="failed",
        ig_container_id="17900000000000113",
        ig_container_at=at(62.2),
        ig_error_code="media_invalid",
        ig_tries=1,
        error_code="media_invalid",
        error_message="Meta menolak media ini.",
        finished_at=at(62.5),
    ),
    post_0005(
        "job_unconfirmed",
        "unconfirmed",
        targets=["facebook"],
        fb_status="unconfirmed",
        fb_sent_at=at(63),
        fb_error_code="meta_unavailable",
        fb_tries=3,
        ig_status="skipped",
        finished_at=at(64),
    ),
    post_0005(
        "job_failed",
        "failed",
        fb_status="failed",
        fb_error_code="token_expired",
        fb_tries=5,
        fb_not_before=at(70),
        ig_status="failed",
        ig_error_code="token_expired",
        ig_tries=5,
        error_code="token_expired",
        attempts=5,
        finished_at=at(71),
    ),
    post_0005(
        "job_cancelled",
        "cancelled",
        targets=["facebook"],
        media_url=None,
        link="https://shop.example.com/promo",
        ig_status="skipped",
        error_message="Dibatalkan.",
    ),
]

FACEBOOK = {
    "fb_status": "status",
    "fb_post_id": "remote_id",
    "fb_error_code": "error_code",
    "fb_sent_at": "sent_at",
    "fb_published_at": "published_at",
    "fb_tries": "tries",
    "fb_not_before": "not_before",
}
INSTAGRAM = {
    "ig_status": "status",
    "ig_container_id": "container_id",
    "ig_media_id": "remote_id",
    "ig_error_code": "error_code",
    "ig_container_at": "container_at",
    "ig_publish_sent_at": "sent_at",
    "ig_published_at": "published_at",
    "ig_tries": "tries",
    "ig_not_before": "not_before",
}
NEW_ONLY = {
    "children": None,
    "steps": None,
    "error_message": None,
    "comment_status": None,
    "comment_id": None,
    "comment_error_code": None,
    "comment_sent_at": None,
    "comment_tries": 0,
}


def expected_targets(post: dict[str, Any]) -> dict[str, dict[str, Any]]:
    blank = {"container_id": None, "container_at": None}
    return {
        "facebook": {**blank, **NEW_ONLY, **{new: post[old] for old, new in FACEBOOK.items()}},
        "instagram": {**blank, **NEW_ONLY, **{new: post[old] for old, new in INSTAGRAM.items()}},
    }


def insert(conn, table: str, row: dict[str, Any]) -> None:
    """Raw SQL, as rows of that revision exist in a database (JSON given as text)."""
    values = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}
    json_columns = {"targets", "media", "children", "steps", "scopes_granted"}
    placeholders = ", ".join(
        f"CAST(:{name} AS JSONB)" if name in json_columns and conn.dialect.name == "postgresql" else f":{name}"
        for name in values
    )
    conn.execute(text(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({placeholders})"), values)


def rows(conn, query: str) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(text(query)).mappings()]


def revision(conn) -> str:
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def test_upgrade_moves_every_value_and_downgrade_restores_them_exactly(fresh_postgres):
    run_migrations(fresh_postgres, "0005")
    engine = create_engine(fresh_postgres)
    try:
        with engine.begin() as conn:
            insert(conn, "social_connections", CONNECTION)
            for post in POSTS_0005:
                insert(conn, "scheduled_posts", post)
        with engine.connect() as conn:
            before = {row["id"]: row for row in rows(conn, "SELECT * FROM scheduled_posts")}
        assert set(before) == {post["id"] for post in POSTS_0005}
        assert before["job_publishing"]["lease_expires_at"] == at(62)  # microseconds and zone kept

        run_migrations(fresh_postgres, "0006")
        with engine.connect() as conn:
            assert revision(conn) == "0006"
            columns = {c["name"] for c in inspect(conn).get_columns("scheduled_posts")}
            assert not {name for name in columns if name.startswith(("fb_", "ig_"))}
            targets = rows(conn, "SELECT * FROM post_targets")
            posts = {row["id"]: row for row in rows(conn, "SELECT * FROM scheduled_posts")}
        assert len(targets) == 2 * len(POSTS_0005)
        for post in POSTS_0005:
            moved = {row["target"]: row for row in targets if row["post_id"] == post["id"]}
            for name, expected in expected_targets(post).items():
                got = {key: moved[name][key] for key in expected}
                assert got == expected, (post["id"], name)
            upgraded = posts[post["id"]]
            assert upgraded["format"] == "post" and upgraded["first_comment"] is None and upgraded["cover_url"] is None
            media_url = post["media_url"]
            assert upgraded["media"] == ([{"url": media_url, "type": "image"}] if media_url else [])
            unchanged = {k: v for k, v in post.items() if not k.startswith(("fb_", "ig_"))}
            assert {k: upgraded[k] for k in unchanged} == unchanged, post["id"]

        command.downgrade(alembic_config(fresh_postgres), "0005")
        with engine.connect() as conn:
            assert revision(conn) == "0005"
            assert "post_targets" not in inspect(conn).get_table_names()
            after = {row["id"]: row for row in rows(conn, "SELECT * FROM scheduled_posts")}
        assert after == before  # every column of every row, exactly
    finally:
        engine.dispose()


# Posts only the new model can express: the downgrade must refuse while one exists.
BLOCKERS = {
    "job_carousel": (
        {
            "media": [
                {"url": "https://cdn.example.com/1.jpg", "type": "image"},
                {"url": "https://cdn.example.com/2.jpg", "type": "image"},
            ]
        },
        {},
    ),
    "job_reel": ({"format": "reel", "media": [{"url": "https://cdn.example.com/c.mp4", "type": "video"}]}, {}),
    "job_video": ({"media": [{"url": "https://cdn.example.com/c.mp4", "type": "video"}]}, {}),
    "job_alt_text": ({"media": [{"url": "https://cdn.example.com/1.jpg", "type": "image", "alt_text": "Batik"}]}, {}),
    "job_comment": ({"first_comment": "#batik"}, {"comment_status": "pending"}),
    "job_cover": ({"cover_url": "https://cdn.example.com/cover.jpg"}, {}),
    "job_steps": ({}, {"steps": {"upload": {"id": "v1"}}}),
    "job_children": ({}, {"children": [{"container_id": "1790"}]}),
    "job_meta_words": ({}, {"status": "failed", "error_message": "Aspect ratio not supported"}),
}


def new_model_post(conn, post_id: str, post_values: dict[str, Any], target_values: dict[str, Any]) -> None:
    media = [{"url": "https://cdn.example.com/one.jpg", "type": "image"}]
    row = {
        "id": post_id,
        "connection_id": CONNECTION["id"],
        "user_id_resellio": "user-1",
        "publish_at": at(60),
        "caption": "",
        "media_url": "https://cdn.example.com/one.jpg",
        "targets": ["instagram"],
        "status": "queued",
        "attempts": 0,
        "enqueue_seq": 0,
        "created_at": at(0),
        "updated_at": at(0),
        "format": "post",
        "media": media,
        **post_values,
    }
    insert(conn, "scheduled_posts", row)
    insert(conn, "post_targets", {"post_id": post_id, "target": "facebook", "status": "skipped", "tries": 0})
    insert(
        conn,
        "post_targets",
        {"post_id": post_id, "target": "instagram", "status": "pending", "tries": 0, **target_values},
    )


def test_the_downgrade_refuses_while_a_post_needs_the_new_model_and_changes_nothing(fresh_postgres):
    run_migrations(fresh_postgres, "0005")
    engine = create_engine(fresh_postgres)
    try:
        with engine.begin() as conn:
            insert(conn, "social_connections", CONNECTION)
            insert(conn, "scheduled_posts", POSTS_0005[2])  # an ordinary published post
        run_migrations(fresh_postgres, "0006")
        with engine.connect() as conn:
            snapshot = (rows(conn, "SELECT * FROM scheduled_posts"), rows(conn, "SELECT * FROM post_targets"))

        for post_id, (post_values, target_values) in BLOCKERS.items():
            with engine.begin() as conn:
                new_model_post(conn, post_id, post_values, target_values)
            with engine.connect() as conn:
                holding = (rows(conn, "SELECT * FROM scheduled_posts"), rows(conn, "SELECT * FROM post_targets"))
            with pytest.raises(RuntimeError) as refused:
                command.downgrade(alembic_config(fresh_postgres), "0005")
            message = str(refused.value)
            assert post_id in message and "Delete or finish them before downgrading below 0006" in message
            with engine.connect() as conn:
                assert revision(conn) == "0006"
                assert (
                    rows(conn, "SELECT * FROM scheduled_posts"),
                    rows(conn, "SELECT * FROM post_targets"),
                ) == holding
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM scheduled_posts WHERE id = :id"), {"id": post_id})

        with engine.connect() as conn:
            assert (rows(conn, "SELECT * FROM scheduled_posts"), rows(conn, "SELECT * FROM post_targets")) == snapshot
        command.downgrade(alembic_config(fresh_postgres), "0005")  # nothing blocks any more
        with engine.connect() as conn:
            restored = rows(conn, "SELECT * FROM scheduled_posts")
        assert restored == [POSTS_0005[2]]
    finally:
        engine.dispose()


def _differences(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_the_migrations_head_is_the_models(fresh_postgres, tmp_path):
    run_migrations(fresh_postgres)
    assert _differences(fresh_postgres) == []
    sqlite_url = f"sqlite:///{tmp_path / 'head.db'}"
    run_migrations(sqlite_url)
    assert _differences(sqlite_url) == []


# --- SQLite (the demo's database) ---

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores UTCDateTime on SQLite (naive UTC)


def sqlite_row(post: dict[str, Any]) -> dict[str, Any]:
    return {k: v.astimezone(UTC).strftime(SQLITE_TIME) if isinstance(v, datetime) else v for k, v in post.items()}


def migrate_through(engine, target: str, *, down: bool = False) -> None:
    """Run Alembic on a connection of the app's own engine, whose pragma turns ``foreign_keys`` on."""
    config = alembic_config(str(engine.url))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        conn.commit()
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, target)
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # given back as it came


def test_on_sqlite_target_rows_survive_the_table_rebuild_both_ways(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    run_migrations(url, "0005")
    engine = make_engine(url)  # the app's engine: PRAGMA foreign_keys=ON on every connection
    posts = [sqlite_row(post) for post in POSTS_0005]
    try:
        with engine.begin() as conn:
            insert(conn, "social_connections", sqlite_row(CONNECTION))
            for post in posts:
                insert(conn, "scheduled_posts", post)
        with engine.connect() as conn:
            before = rows(conn, "SELECT * FROM scheduled_posts ORDER BY id")

        migrate_through(engine, "0006")
        with engine.connect() as conn:
            targets = rows(conn, "SELECT * FROM post_targets")
            assert revision(conn) == "0006"
        assert len(targets) == 2 * len(posts)  # the rebuild's DROP TABLE did not cascade into them
        for post in posts:
            for name, expected in expected_targets(post).items():
                (row,) = [t for t in targets if t["post_id"] == post["id"] and t["target"] == name]
                assert {key: row[key] for key in expected} == expected, (post["id"], name)

        migrate_through(engine, "0005", down=True)
        with engine.connect() as conn:
            assert rows(conn, "SELECT * FROM scheduled_posts ORDER BY id") == before

        run_migrations(url)  # and up again through the plain path (the CLI's and the demo's)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM post_targets")).scalar() == 2 * len(posts)
    finally:
        engine.dispose()


def test_a_connection_in_a_transaction_with_foreign_keys_on_is_refused_not_migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    run_migrations(url, "0005")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))  # a transaction is open: the pragma cannot change now
            config = alembic_config(url)
            config.attributes["connection"] = conn
            with pytest.raises(RuntimeError, match="foreign_keys=OFF"):
                command.upgrade(config, "head")
            assert revision(conn) == "0005"
    finally:
        engine.dispose()

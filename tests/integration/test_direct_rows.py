"""chalicelib/db/direct.py on real PostgreSQL: the rows it writes are the ones the ORM reads."""

from types import SimpleNamespace

import pytest

from chalicelib.db import direct, transitions
from chalicelib.db.session import session_scope
from chalicelib.db.tables import Image, ProcessingTask


@pytest.fixture
def owner_id(db):
    from chalicelib.db.users import ensure_local_user

    with session_scope() as session:
        return ensure_local_user(session).id


def outcome(**overrides):
    values = {
        "format": "jpeg",
        "content_type": "image/jpeg",
        "width": 640,
        "height": 480,
        "mode": "RGB",
        "sha256": "ab" * 32,
        "phash": -(2**63) + 5,
        "metadata": {"mode": "RGB", "exif": {"Make": "Ünïcode"}},
    }
    return SimpleNamespace(**{**values, **overrides})


def test_connect_kwargs_read_every_url_form_the_engine_accepts():
    assert direct.connect_kwargs("postgresql+pg8000://app:p%40ss%2Fword@db.example:6543/pixelake", environ={}) == {
        "user": "app",
        "password": "p@ss/word",
        "host": "db.example",
        "port": 6543,
        "database": "pixelake",
        "timeout": direct.CONNECT_TIMEOUT_S,
    }
    local = direct.connect_kwargs("postgresql://postgres@/pixelake?unix_sock=/tmp/pg/.s.PGSQL.5432", environ={})
    assert local == {
        "user": "postgres",
        "database": "pixelake",
        "unix_sock": "/tmp/pg/.s.PGSQL.5432",
        "timeout": direct.CONNECT_TIMEOUT_S,
    }
    tls = direct.connect_kwargs("postgresql://u:p@proxy:5432/x", environ={"DATABASE_SSL": "require"})
    assert tls["ssl_context"].verify_mode.name == "CERT_REQUIRED"


def test_an_ingested_image_and_its_analyses_read_back_through_the_orm(owner_id):
    with direct.transaction() as db:
        claimed = direct.claim_image_for_ingest(
            db, owner_id=owner_id, bucket="b", key="uploads/1/a.jpg", size_bytes=10, etag="e1"
        )
        transitions.image_ready(
            db, claimed["id"], outcome(), [{"size": 256, "key": "thumbnails/x/256.jpeg"}], etag="e1", size_bytes=12
        )
        direct.record_finished_analysis(
            db,
            owner_id=owner_id,
            image_id=claimed["id"],
            name="faces",
            data={"predictions": [{"label": "face", "confidence": 0.9}]},
            duration_ms=42,
        )
    with session_scope() as session:
        image = session.get(Image, claimed["id"])
        assert (image.status, image.size_bytes, image.width, image.phash) == ("ready", 12, 640, -(2**63) + 5)
        assert image.metadata_["exif"]["Make"] == "Ünïcode" and image.thumbnails[0]["size"] == 256
        task = session.query(ProcessingTask).filter_by(image_id=image.id).one()
        assert (task.kind, task.operation, task.status, task.duration_ms) == ("analysis", "faces", "succeeded", 42)
        assert [(r.kind, r.label, r.confidence) for r in task.results] == [("analysis", "face", 0.9)]


def test_a_second_claim_of_the_same_object_finds_the_first_row(owner_id):
    with direct.transaction() as db:
        first = direct.claim_image_for_ingest(
            db, owner_id=owner_id, bucket="b", key="uploads/1/b.jpg", size_bytes=1, etag="e"
        )
        transitions.image_failed(db, first["id"], "not an image", etag="e", size_bytes=1)
    with direct.transaction() as db:
        again = direct.claim_image_for_ingest(
            db, owner_id=owner_id, bucket="b", key="uploads/1/b.jpg", size_bytes=1, etag="e"
        )
    assert again == {**first, "status": "failed", "error": "not an image"}
    with session_scope() as session:
        assert session.query(Image).filter_by(key="uploads/1/b.jpg").count() == 1


def test_a_finished_task_is_not_claimed_again_and_results_are_replaced_not_doubled(owner_id):
    from chalicelib.db import tasks

    with direct.transaction() as db:
        image = direct.claim_image_for_ingest(
            db, owner_id=owner_id, bucket="b", key="uploads/1/c.jpg", size_bytes=1, etag="e"
        )
    with session_scope() as session:
        task_id = tasks.create(
            session, owner_id=owner_id, image_id=image["id"], kind="operation", operation="resize", params={"width": 8}
        ).id
    with direct.transaction() as db:
        assert transitions.task_running(db, task_id)["params"] == {"width": 8}
        direct.succeed_task(db, task_id, [direct.ResultRow(kind="image", data={}, output_key="results/1.png")])
        direct.succeed_task(db, task_id, [direct.ResultRow(kind="image", data={}, output_key="results/1.png")])
    with direct.transaction() as db:
        assert transitions.task_running(db, task_id) is None
    with session_scope() as session:
        task = session.get(ProcessingTask, task_id)
        assert (task.status, task.attempts, len(task.results)) == ("succeeded", 1, 1)
        assert task.duration_ms is not None and task.duration_ms >= 0


def test_database_down_raises_and_the_next_transaction_reconnects(owner_id, monkeypatch):
    import pg8000.exceptions

    from chalicelib.config import reset_settings
    from chalicelib.db.session import reset_engine

    monkeypatch.setenv("DATABASE_URL", "postgresql+pg8000://postgres@127.0.0.1:1/unreachable")
    reset_settings()
    reset_engine()
    with pytest.raises(pg8000.exceptions.InterfaceError), direct.transaction():
        pass
    monkeypatch.undo()
    reset_settings()
    reset_engine()
    with direct.transaction() as db:
        assert direct.user_exists(db, owner_id)


def test_a_connection_closed_under_it_is_replaced_before_the_next_transaction(owner_id):
    from sqlalchemy import text

    from chalicelib.db.session import get_engine

    stale = direct.connection()

    with get_engine().begin() as conn:  # another session ends this one's backend, as RDS Proxy may
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": stale.run("SELECT pg_backend_pid()")[0][0]})
    with direct.transaction() as db:
        assert direct.user_exists(db, owner_id)
    assert direct.connection() is not stale

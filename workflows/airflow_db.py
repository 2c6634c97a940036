"""A private, empty Airflow metadata database for one workflow instance.

Each workflow instance (and each replay of it) gets its own SQLite in-memory database: an
unnamed ``:memory:`` connection is private to the connection that opened it, so two workflows
can never see each other's rows and a replay always starts empty. Creating Airflow's 57 tables
costs ~0.15 s, so the schema is built once per process into a template and copied page by page
with SQLite's backup API, which takes about a millisecond.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

_template_lock = threading.Lock()


def _schema_template() -> sqlite3.Connection:
    with _template_lock:
        return _built_schema_template()


@functools.cache
def _built_schema_template() -> sqlite3.Connection:
    """Built once per process (callers hold ``_template_lock``)."""
    from airflow.models import import_all_models
    from airflow.models.base import Base

    import_all_models()  # type: ignore[no-untyped-call]  # Airflow leaves it unannotated
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    engine = create_engine("sqlite://", creator=lambda: connection, poolclass=StaticPool)
    Base.metadata.create_all(engine)
    return connection


def _private_engine(image: bytes | None) -> Engine:
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    if image is None:
        template = _schema_template()
        with _template_lock:
            template.backup(connection)
    else:
        connection.deserialize(zlib.decompress(image))
    return create_engine("sqlite://", creator=lambda: connection, poolclass=StaticPool)


def database_image(session: Session) -> bytes:
    """The whole database as compressed bytes, to be opened again by ``private_airflow_session``.

    SQLite serializes what was committed, and the session never commits while the run goes on.
    """
    session.commit()
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, sqlite3.Connection), "the private database is SQLite"
    return zlib.compress(connection.serialize())


@contextmanager
def private_airflow_session(image: bytes | None = None) -> Iterator[Session]:
    """A session on a private Airflow database that disappears when the block ends: a fresh,
    empty one, or a copy of the one ``image`` was taken of."""
    engine = _private_engine(image)
    try:
        with Session(engine, autoflush=True, expire_on_commit=False) as session:
            yield session
    finally:
        engine.dispose()

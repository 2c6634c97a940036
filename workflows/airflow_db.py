"""A private, empty Airflow metadata database for one workflow instance.

Each workflow instance (and each replay of it) gets its own SQLite in-memory database: an
unnamed ``:memory:`` connection is private to the connection that opened it, so two workflows
can never see each other's rows and a replay always starts empty. Creating Airflow's 57 tables
costs ~0.15 s, so the schema is built once per process into a template and copied page by page
with SQLite's backup API, which takes about a millisecond.

All private databases are opened through one SQLAlchemy engine, which hands each session the
SQLite connection made for it: SQLAlchemy caches compiled SQL per engine, so statements are
compiled once per process instead of once per workflow (that compilation was half the CPU of
creating a run and its first scheduling pass).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, StaticPool

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


# The SQLite connection the shared engine hands out on its next checkout.
_handed_over: ContextVar[sqlite3.Connection] = ContextVar("handed_over")


@functools.cache
def _shared_engine() -> Engine:
    """Opens no connection of its own: each checkout takes the one being handed over, and
    closing it (NullPool) drops that private in-memory database."""
    return create_engine("sqlite://", creator=_handed_over.get, poolclass=NullPool)


def _private_connection(image: bytes | None) -> Connection:
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    if image is None:
        template = _schema_template()
        with _template_lock:
            template.backup(connection)
    else:
        connection.deserialize(zlib.decompress(image))
    token = _handed_over.set(connection)
    try:
        return _shared_engine().connect()
    finally:
        _handed_over.reset(token)


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
    connection = _private_connection(image)
    try:
        with Session(connection, autoflush=True, expire_on_commit=False) as session:
            yield session
    finally:
        connection.close()

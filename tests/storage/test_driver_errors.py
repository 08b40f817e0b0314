"""Work done on the raw driver connection (PostgreSQL's COPY, SQLite's checkpoint pragmas) raises
SQLAlchemy's exception classes like every other statement: the writer tells transient errors
from permanent ones by them, and requests map them to 503."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from execlog.storage.database import describe_database_error, driver_errors_wrapped


def test_driver_errors_are_raised_as_sqlalchemy_errors(any_engine: Engine) -> None:
    with any_engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with pytest.raises(DBAPIError) as caught, driver_errors_wrapped(connection):
            cursor.execute("SELECT * FROM no_such_table_here")
        assert "no_such_table_here" in str(caught.value.orig)
        assert isinstance(caught.value.orig, connection.dialect.loaded_dbapi.Error)
        connection.rollback()


def test_a_constraint_stays_a_permanent_error(any_engine: Engine) -> None:
    with any_engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("CREATE TEMPORARY TABLE execlog_probe (id INTEGER PRIMARY KEY)")
        cursor.execute("INSERT INTO execlog_probe VALUES (1)")
        with pytest.raises(IntegrityError), driver_errors_wrapped(connection):
            cursor.execute("INSERT INTO execlog_probe VALUES (1)")
        connection.rollback()


def test_an_sqlite_error_is_described_with_its_extended_code(tmp_path: Path) -> None:
    """The message names the primary code only; the extended one says which I/O or lock."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            other.execute("INSERT INTO t VALUES (1)")
    finally:
        other.close()
        holder.rollback()
        holder.close()
    assert describe_database_error(caught.value) == "database is locked (SQLITE_BUSY)"
    wrapped = DBAPIError("INSERT INTO t VALUES (?)", ("payload",), caught.value)
    assert describe_database_error(wrapped) == "database is locked (SQLITE_BUSY)"

"""Work done on the raw driver connection (PostgreSQL's COPY, SQLite's checkpoint pragmas) raises
SQLAlchemy's exception classes like every other statement: the writer tells transient errors
from permanent ones by them, and requests map them to 503."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from execlog.storage.database import driver_errors_wrapped


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

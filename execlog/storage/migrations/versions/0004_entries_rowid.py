"""SQLite: the entries table becomes a rowid table; its primary key stays, as a unique index.

A WITHOUT ROWID table is an index b-tree, whose cells hold at most about a quarter of a page:
on 64 KiB pages a row of more than ~16 KB keeps ~8 KB in its leaf and spills the rest into
64 KiB overflow pages, so each 16-64 KB line (tool results, file reads) left up to ~55 KB of a
page empty: 212 MB of 588 MB unused for 300 MB of Claude output. A rowid table's cells hold up
to a page less 35 bytes, and its overflow pages are filled: 376 MB for the same rows, and a
bulk write 18 % faster, as SQLite writes each byte twice (WAL, checkpoint). docs/performance.md.

An existing table is rebuilt once: a new table, its rows copied inside SQLite in key order
(rowids follow the key; memory is SQLite's page cache, whatever the size), the old one dropped,
the new one renamed; all in the migration's transaction, so a failure (a full disk) leaves the
old table as it was. A no-op on PostgreSQL and on a table that has rowids already.

Revision ID: 0004_entries_rowid
Revises: 0003_process_ownership
"""

from __future__ import annotations

import logging
import re
import time

from alembic import op

revision = "0004_entries_rowid"
down_revision = "0003_process_ownership"
branch_labels = None
depends_on = None

_TABLE = "execution_process_log_entries"
_REBUILT = f"{_TABLE}_rebuilt"
_KEY = ("execution_process_id", "channel", "entry_index")
_WITHOUT_ROWID = re.compile(r"\)\s*WITHOUT\s+ROWID\s*$", re.IGNORECASE)
# The start-up runs migrations before it serves: a rebuild of a large file (~12 s per GB of the
# old table, docs/performance.md) says so, instead of a silent wait.
logger = logging.getLogger("execlog.storage.migrate")


def upgrade() -> None:
    _rebuild_sqlite_table(with_rowid=True)


def downgrade() -> None:
    _rebuild_sqlite_table(with_rowid=False)


def _rebuild_sqlite_table(*, with_rowid: bool) -> None:
    """Rebuild the SQLite entries table with or without rowids, unless it is so already."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (_TABLE,)
    ).scalar_one()
    if (_WITHOUT_ROWID.search(sql) is None) == with_rowid:
        return
    # sqlite3 opens a transaction only before a data statement, so a CREATE TABLE as the first
    # statement of a run would commit on its own; begin here, and Alembic's commit (after the
    # version stamp) ends it.
    if not bind.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        bind.exec_driver_sql("BEGIN")
    # A new file (0001 made the table) has nothing to copy, and nothing to say.
    empty = bind.exec_driver_sql(f"SELECT 1 FROM {_TABLE} LIMIT 1").first() is None
    if not empty:
        file_bytes = bind.exec_driver_sql(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
        ).scalar_one()
        logger.warning(
            "rebuilding the entries table %s rowids (migration 0004, once) in a %d MB "
            "database file, about 12 s per GB of entries, before the server starts",
            "with" if with_rowid else "without",
            file_bytes // 1_000_000,
        )
    started = time.monotonic()
    # The table as it stands (columns, constraints), under another name, rowids flipped.
    definition = _WITHOUT_ROWID.sub(")", sql[sql.index("(") :])
    suffix = "" if with_rowid else " WITHOUT ROWID"
    bind.exec_driver_sql(f"CREATE TABLE {_REBUILT} {definition}{suffix}")
    # In key order: the old table's b-tree order (no sort), and new rows and index entries are
    # appended, so pages end up full.
    copied = bind.exec_driver_sql(
        f"INSERT INTO {_REBUILT} SELECT * FROM {_TABLE} ORDER BY {', '.join(_KEY)}"
    ).rowcount
    op.drop_table(_TABLE)
    # SQLite renames the primary key's index with its table (sqlite_autoindex_<table>_1).
    op.rename_table(_REBUILT, _TABLE)
    if not empty:
        logger.warning(
            "rebuilt the entries table: %d entries in %.1f s", copied, time.monotonic() - started
        )

"""The entry store: one row per (process, channel, entry index) in execution_process_log_entries.

Reads are tail-first pages served by the primary-key b-tree, so a page costs the same at 1k and
at 1M stored entries, on PostgreSQL also before its statistics know the process (issue 9).
Writes are idempotent upserts: an update of an entry keeps its index.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any, Final, TypeVar

import psycopg
from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    and_,
    bindparam,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from execlog.protocol import Channel, StoredEntry, decode_raw_content, now_ms
from execlog.storage.database import driver_errors_wrapped, pin_index_plans, run_in_thread
from execlog.storage.tables import execution_process_log_entries as entries_table

__all__ = [
    "ContentQuery",
    "EntryRow",
    "EntryStats",
    "EntryStore",
    "POSTGRES_CHUNK_ROWS",
    "SQLITE_ROWS_PER_STATEMENT",
    "UPSERT_CHUNK_ROWS",
]

# Rows per executemany call: bounds the parameter list built at once, whatever the batch size.
# executemany binds one row at a time, so SQLite's variable limit never comes into play.
UPSERT_CHUNK_ROWS: Final = 5000
# PostgreSQL's chunks are COPY streams, which build nothing at once; larger ones pay the
# savepoint and the end of a COPY less often. 1M rows of 80 bytes, commits of 20,000, plain
# COPY: 366-398k rows/s in chunks of 20,000, 314-357k in chunks of 5,000 (issue 9's ingest).
POSTGRES_CHUNK_ROWS: Final = 20_000
# Rows per SQLite statement: 4 parameters each, far below SQLite's 32,766-variable limit.
SQLITE_ROWS_PER_STATEMENT: Final = 500
# Statement sizes in rows, largest first: any count is a sum of these, and few sizes means few
# cached statements whose bindings must be released after each call.
_SQLITE_STATEMENT_ROWS: Final = (SQLITE_ROWS_PER_STATEMENT, 100, 20, 5, 1)
# The backfill's bulk writes (issue 11): sqlite3 re-takes the GIL after each statement, and with
# the backfill decoding in another thread that wait (up to the 5 ms switch interval) cost about
# as much as a 500-row step; 2,000-row statements pay it a quarter as often (8,002 variables).
_SQLITE_BULK_STATEMENT_ROWS: Final = (2000, *_SQLITE_STATEMENT_ROWS)
# The VALUES clause of the compiled one-row upsert, which the multi-row forms replace.
_SQLITE_UPSERT_VALUES: Final = " VALUES (?, ?, ?, ?, ?, ?)"


@dataclass(frozen=True, slots=True)
class _SqliteRowsForm:
    """A multi-row SQLite upsert: ``INSERT ... <select> FROM (VALUES <row>, ...) WHERE ? ON
    CONFLICT ...``. The values shared by all rows are bound once, as ``?1``...; then each row's
    own values; the final parameter is 1 to insert the rows, 0 to insert nothing."""

    select: str
    shared: int  # values bound once per statement
    per_row: int  # values bound per row

    def sql(self, upsert_sql: str, rows: int) -> str:
        head, values, tail = upsert_sql.partition(_SQLITE_UPSERT_VALUES)
        if not values:  # pragma: no cover - fixed form
            raise RuntimeError(f"unexpected upsert statement: {upsert_sql}")
        row = "(" + ", ".join(["?"] * self.per_row) + ")"
        return f"{head} {self.select} FROM (VALUES {', '.join([row] * rows)}) WHERE ?{tail}"


# Any rows: each row's key and payload, the time stamp once (?1, both time columns). 4 values per
# row instead of 6 shortened the writer thread's binding, which holds the GIL (issue 9's 1 KB
# ingest, docs/performance.md).
_ENTRY_ROWS: Final = _SqliteRowsForm("SELECT column1, column2, column3, column4, ?1, ?1", 1, 4)
# One channel's rows (upsert_channel_rows): channel and time once, each row's process, index and
# payload (issue 11).
_CHANNEL_ROWS: Final = _SqliteRowsForm("SELECT column1, ?1, column2, column3, ?2, ?2", 2, 3)

_t = entries_table.c
_KEY: Final = (_t.execution_process_id == bindparam("pid")) & (_t.channel == bindparam("channel"))
_PAYLOAD: Final = (_t.entry_index, _t.entry_json)


@dataclass(frozen=True, slots=True)
class EntryStats:
    """How many entries a channel holds and the range of their indexes."""

    count: int
    min_index: int | None
    max_index: int | None


@dataclass(slots=True)
class EntryRow:
    """One entry to upsert. Treated as immutable, but not ``frozen``: a frozen dataclass sets
    each field through ``object.__setattr__``, which made constructing one 5x slower (0.57 against
    0.12 us with EntryWrite's fields) and was the largest per-row cost of the writer's producers
    (issue 9's 1 KB ingest: docs/performance.md)."""

    process_id: str
    channel: Channel
    entry_index: int
    entry_json: str

    @property
    def may_be_stored(self) -> bool:
        """Whether a row with this key may already be stored. PostgreSQL copies rows that are
        not straight into the table and upserts the others; a wrong False costs one retry, as
        a key already stored makes the copy fail and the chunk is upserted instead."""
        return True


@dataclass(slots=True)
class _NewEntryRow(EntryRow):
    """An entry its writer knows is not stored yet (``upsert_channel_rows(new=True)``)."""

    @property
    def may_be_stored(self) -> bool:
        return False


# Prebuilt statements: SQLAlchemy caches their compiled form, so each call only binds values.
_TAIL = select(*_PAYLOAD).where(_KEY).order_by(_t.entry_index.desc()).limit(bindparam("limit"))
_TAIL_BEFORE = (
    select(*_PAYLOAD)
    .where(_KEY & (_t.entry_index < bindparam("cursor")))
    .order_by(_t.entry_index.desc())
    .limit(bindparam("limit"))
)
_AFTER = (
    select(*_PAYLOAD)
    .where(_KEY & (_t.entry_index > bindparam("after")))
    .order_by(_t.entry_index)
    .limit(bindparam("limit"))
)
_FROM_START = select(*_PAYLOAD).where(_KEY).order_by(_t.entry_index).limit(bindparam("limit"))
_RANGE = (
    select(*_PAYLOAD)
    .where(_KEY & (_t.entry_index >= bindparam("start")) & (_t.entry_index < bindparam("stop")))
    .order_by(_t.entry_index)
)
_AT_INDEXES = (
    select(*_PAYLOAD)
    .where(_KEY & _t.entry_index.in_(bindparam("indexes", expanding=True)))
    .order_by(_t.entry_index)
)
_UPDATED_SINCE = (
    select(*_PAYLOAD)
    .where(_KEY & (_t.entry_index <= bindparam("upto")) & (_t.updated_at >= bindparam("since")))
    .order_by(_t.entry_index)
)
_ANY_BEFORE = select(literal(1)).where(_KEY & (_t.entry_index < bindparam("index"))).limit(1)
# ORDER BY ... LIMIT 1 rather than min()/max(): a guaranteed single seek in the primary key on
# both dialects, where aggregate shortcuts depend on the planner.
_MAX_INDEX = select(_t.entry_index).where(_KEY).order_by(_t.entry_index.desc()).limit(1)
_MIN_INDEX = select(_t.entry_index).where(_KEY).order_by(_t.entry_index).limit(1)
_COUNT = select(func.count()).select_from(entries_table).where(_KEY)
_STATS_OF_PROCESSES = (
    select(
        _t.execution_process_id,
        _t.channel,
        func.count(),
        func.min(_t.entry_index),
        func.max(_t.entry_index),
    )
    .where(_t.execution_process_id.in_(bindparam("pids", expanding=True)))
    .group_by(_t.execution_process_id, _t.channel)
)

# PostgreSQL bulk writes. New rows (the live appends: nearly all of them) are COPYed straight
# into the table, inside a savepoint: a key that turns out to be stored already makes the COPY
# fail, and the chunk is upserted instead. Measured for 80-byte rows in groups of 2,000 (issue 9,
# item 8): 264k rows/s by direct binary COPY, 102-128k through the staging table, 57k by
# pipelined executemany, 47k by unnest().
_PG_COPY_ENTRIES: Final = (
    "COPY execution_process_log_entries (execution_process_id, channel, entry_index, "
    "entry_json, created_at, updated_at) FROM STDIN (FORMAT BINARY)"
)
_PG_ENTRY_TYPES: Final = ("text", "text", "int8", "text", "int8", "int8")
_PG_COPY_SAVEPOINT: Final = "execlog_copy"
# Rows that may be stored (replaces) go through a staging table that lives per session and
# empties at each commit: COPY into it, then one INSERT ... SELECT ... ON CONFLICT.
_PG_STAGING: Final = "execlog_entry_staging"
_PG_CREATE_STAGING: Final = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_PG_STAGING} (execution_process_id text, "
    "channel text, entry_index bigint, entry_json text) ON COMMIT DELETE ROWS"
)
_PG_COPY_STAGING: Final = (
    f"COPY {_PG_STAGING} (execution_process_id, channel, entry_index, entry_json) "
    "FROM STDIN (FORMAT BINARY)"
)
_PG_UPSERT_FROM_STAGING: Final = (
    "INSERT INTO execution_process_log_entries (execution_process_id, channel, entry_index, "
    "entry_json, created_at, updated_at) SELECT execution_process_id, channel, entry_index, "
    f"entry_json, %(now)s, %(now)s FROM {_PG_STAGING} ON CONFLICT (execution_process_id, "
    "channel, entry_index) DO UPDATE SET entry_json = excluded.entry_json, "
    "updated_at = excluded.updated_at"
)
_PG_STAGING_TYPES: Final = ("text", "text", "int8", "text")
# Several chunks may share a transaction: each after the first empties the table first.
_PG_EMPTY_STAGING: Final = f"TRUNCATE {_PG_STAGING}"

# Indexes bound per IN (...) query: far below SQLite's variable limit.
_INDEXES_PER_QUERY: Final = 500

_R = TypeVar("_R")

# A limit larger than any channel: "no limit" without a second statement shape.
_NO_LIMIT: Final = 2**62

_ASCII_FOLD: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# Printable ASCII that JSON encoders write as itself (quote and backslash are always escaped;
# some encoders escape "/" or, HTML-safe, "<>&'"): text made of these appears verbatim in any
# stored payload, whoever encoded it (legacy imports included).
_VERBATIM_IN_JSON: Final = frozenset(
    string.ascii_letters + string.digits + " !#$%()*+,-.:;=?@[]^_`{|}~"
)


def _fold_ascii(value: str) -> str:
    return value.translate(_ASCII_FOLD)


@dataclass(frozen=True, slots=True)
class ContentQuery:
    """A raw line search: the line contains the needle, ignoring the case of ASCII letters only
    (alike on SQLite, whose lower() folds ASCII only, and PostgreSQL, folded by translate()).

    The database tests each row with a cheap substring test on the stored JSON text first when
    the text is verbatim in any JSON encoding, and only then extracts ``content``; the same
    rule runs in Python for the entries still in memory (``matches``)."""

    folded: str

    @classmethod
    def of(cls, needle: str) -> ContentQuery:
        return cls(_fold_ascii(needle))

    @property
    def prefilter(self) -> str | None:
        return self.folded if set(self.folded) <= _VERBATIM_IN_JSON else None

    def matches(self, entry_json: str) -> bool:
        if self.prefilter is not None and self.prefilter not in _fold_ascii(entry_json):
            return False
        return self.folded in _fold_ascii(decode_raw_content(entry_json))

    def where_clause(self, dialect: str) -> ColumnElement[bool]:
        sqlite = dialect == "sqlite"

        def contains(
            haystack: ColumnElement[Any], needle: ColumnElement[Any]
        ) -> ColumnElement[bool]:
            found = func.instr(haystack, needle) if sqlite else func.strpos(haystack, needle)
            return found > 0

        needle: ColumnElement[str] = bindparam("needle", self.folded)
        content: ColumnElement[Any] = (
            func.json_extract(_t.entry_json, "$.content")
            if sqlite
            else cast(_t.entry_json, JSON)["content"].as_string()
        )
        # lower() folds ASCII only on SQLite (without ICU): the exact rule. On PostgreSQL it folds
        # more, a superset that is cheap; translate() then applies the exact rule to what is left
        # (it costs ~10x lower(): docs/performance.md).
        clause = contains(func.lower(content), func.lower(needle))
        if not sqlite:
            ascii_folded = func.translate(content, string.ascii_uppercase, string.ascii_lowercase)
            clause = and_(clause, contains(ascii_folded, needle))
        if self.prefilter is None:
            return clause
        # A cheap test on the stored text first: most rows fail it and skip the JSON parse.
        prefilter = contains(func.lower(_t.entry_json), bindparam("prefilter", self.prefilter))
        return and_(prefilter, clause)


def _to_entries(rows: Sequence[Any]) -> list[StoredEntry]:
    make = StoredEntry._make
    return [make(row) for row in rows]


class EntryStore:
    """Reads and upserts entry rows. The plain methods block (jobs, the writer's thread); the
    ``a``-prefixed ones are their awaitable forms for the event loop (Django's naming)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._upsert = _build_upsert(engine)
        # On SQLite the upsert goes to the driver as prebuilt SQL with tuples: SQLAlchemy's
        # per-row parameter processing would otherwise cost more than SQLite's own insert.
        self._upsert_sql = str(self._upsert.compile(dialect=engine.dialect))
        self._multi_row_sql_cache: dict[tuple[_SqliteRowsForm, int], str] = {}

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- reads -----------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection for reads, with primary-key plans pinned on PostgreSQL."""
        with self._engine.connect() as connection:
            pin_index_plans(connection)
            yield connection

    def fetch_tail_page(
        self, process_id: str, channel: Channel, limit: int, cursor: int | None = None
    ) -> list[StoredEntry]:
        """The newest ``limit`` entries with index < ``cursor`` (all when None), ascending."""
        params: dict[str, Any] = {"pid": process_id, "channel": channel, "limit": limit}
        if cursor is None:
            statement = _TAIL
        else:
            statement = _TAIL_BEFORE
            params["cursor"] = cursor
        with self._reading() as connection:
            rows = connection.execute(statement, params).all()
        return _to_entries(rows[::-1])

    def fetch_entries_after(
        self, process_id: str, channel: Channel, after: int | None, limit: int | None = None
    ) -> list[StoredEntry]:
        """Entries with index > ``after`` (from the first when None), ascending, up to ``limit``."""
        params: dict[str, Any] = {
            "pid": process_id,
            "channel": channel,
            "limit": _NO_LIMIT if limit is None else limit,
        }
        if after is None:
            statement = _FROM_START
        else:
            statement = _AFTER
            params["after"] = after
        with self._reading() as connection:
            rows = connection.execute(statement, params).all()
        return _to_entries(rows)

    def fetch_range(
        self, process_id: str, channel: Channel, start: int, stop: int
    ) -> list[StoredEntry]:
        """Entries with ``start <= index < stop``, ascending."""
        params = {"pid": process_id, "channel": channel, "start": start, "stop": stop}
        with self._reading() as connection:
            rows = connection.execute(_RANGE, params).all()
        return _to_entries(rows)

    def fetch_indexes(
        self, process_id: str, channel: Channel, indexes: Sequence[int]
    ) -> list[StoredEntry]:
        """The stored entries among ``indexes``, ascending (a resync's replaced entries)."""
        found: list[StoredEntry] = []
        wanted = sorted(set(indexes))
        with self._reading() as connection:
            for start in range(0, len(wanted), _INDEXES_PER_QUERY):
                params = {
                    "pid": process_id,
                    "channel": channel,
                    "indexes": wanted[start : start + _INDEXES_PER_QUERY],
                }
                found += _to_entries(connection.execute(_AT_INDEXES, params).all())
        return found

    def fetch_updated_since(
        self, process_id: str, channel: Channel, upto: int, since_ms: int
    ) -> list[StoredEntry]:
        """Entries with index <= ``upto`` stored or updated at or after ``since_ms``, ascending:
        what a resync re-sends when memory's log of replaced indexes no longer reaches back."""
        params = {"pid": process_id, "channel": channel, "upto": upto, "since": since_ms}
        with self._reading() as connection:
            return _to_entries(connection.execute(_UPDATED_SINCE, params).all())

    def has_entries_before(self, process_id: str, channel: Channel, index: int) -> bool:
        params = {"pid": process_id, "channel": channel, "index": index}
        with self._reading() as connection:
            return connection.execute(_ANY_BEFORE, params).first() is not None

    def fetch_stats(self, process_id: str, channel: Channel) -> EntryStats:
        """Count (a scan of the channel's rows) and the index range (two seeks)."""
        params = {"pid": process_id, "channel": channel}
        with self._reading() as connection:
            count = connection.execute(_COUNT, params).scalar_one()
            if not count:
                return EntryStats(0, None, None)
            min_index = connection.execute(_MIN_INDEX, params).scalar_one()
            max_index = connection.execute(_MAX_INDEX, params).scalar_one()
        return EntryStats(int(count), int(min_index), int(max_index))

    def fetch_stats_of_processes(
        self, process_ids: Sequence[str]
    ) -> dict[tuple[str, Channel], EntryStats]:
        """``fetch_stats`` of every channel of many processes in one grouped query (the
        backfill's groups, issue 11); a channel without entries is absent."""
        if not process_ids:
            return {}
        with self._reading() as connection:
            rows = connection.execute(_STATS_OF_PROCESSES, {"pids": list(process_ids)}).all()
        return {
            (pid, channel): EntryStats(int(count), int(low), int(high))
            for pid, channel, count, low, high in rows
        }

    def next_index(self, process_id: str, channel: Channel) -> int:
        """The index a new entry gets: the stored maximum + 1, or 0 for an empty channel."""
        params = {"pid": process_id, "channel": channel}
        with self._reading() as connection:
            newest = connection.execute(_MAX_INDEX, params).scalar_one_or_none()
        return 0 if newest is None else int(newest) + 1

    def first_index(self, process_id: str, channel: Channel) -> int | None:
        """The lowest stored index (one seek), None for an empty channel."""
        params = {"pid": process_id, "channel": channel}
        with self._reading() as connection:
            oldest = connection.execute(_MIN_INDEX, params).scalar_one_or_none()
        return None if oldest is None else int(oldest)

    def search_raw(
        self, process_id: str, query: ContentQuery, start: int, stop: int, limit: int
    ) -> list[int]:
        """Indexes of raw entries with ``start <= index < stop`` whose line matches ``query``,
        newest first, at most ``limit``. Callers bound the range: the scan is over it."""
        t = _t
        statement = (
            select(t.entry_index)
            .where(_KEY & (t.entry_index >= start) & (t.entry_index < stop))
            .where(query.where_clause(self._engine.dialect.name))
            .order_by(t.entry_index.desc())
            .limit(limit)
        )
        with self._reading() as connection:
            rows = connection.execute(statement, {"pid": process_id, "channel": "raw"}).all()
        return [int(row[0]) for row in rows]

    # --- awaitable reads (the thread boundary is here, not in callers) ---------------------

    async def afetch_tail_page(
        self, process_id: str, channel: Channel, limit: int, cursor: int | None = None
    ) -> list[StoredEntry]:
        return await run_in_thread(self.fetch_tail_page, process_id, channel, limit, cursor)

    async def afetch_entries_after(
        self, process_id: str, channel: Channel, after: int | None, limit: int | None = None
    ) -> list[StoredEntry]:
        return await run_in_thread(self.fetch_entries_after, process_id, channel, after, limit)

    async def afetch_indexes(
        self, process_id: str, channel: Channel, indexes: Sequence[int]
    ) -> list[StoredEntry]:
        return await run_in_thread(self.fetch_indexes, process_id, channel, indexes)

    async def afetch_updated_since(
        self, process_id: str, channel: Channel, upto: int, since_ms: int
    ) -> list[StoredEntry]:
        return await run_in_thread(self.fetch_updated_since, process_id, channel, upto, since_ms)

    async def afetch_range(
        self, process_id: str, channel: Channel, start: int, stop: int
    ) -> list[StoredEntry]:
        return await run_in_thread(self.fetch_range, process_id, channel, start, stop)

    async def ahas_entries_before(self, process_id: str, channel: Channel, index: int) -> bool:
        return await run_in_thread(self.has_entries_before, process_id, channel, index)

    async def afirst_index(self, process_id: str, channel: Channel) -> int | None:
        return await run_in_thread(self.first_index, process_id, channel)

    async def anext_index(self, process_id: str, channel: Channel) -> int:
        return await run_in_thread(self.next_index, process_id, channel)

    async def asearch_raw(
        self, process_id: str, query: ContentQuery, start: int, stop: int, limit: int
    ) -> list[int]:
        return await run_in_thread(self.search_raw, process_id, query, start, stop, limit)

    # --- writes ----------------------------------------------------------------------------

    def upsert_entries(
        self, connection: Connection, rows: Sequence[EntryRow], now_ms: int, *, bulk: bool = False
    ) -> None:
        """Insert or replace entries inside the caller's transaction (``bulk``: the backfill's
        large transactions, in larger statements on SQLite).

        A replaced row gets the new payload and ``updated_at``; ``created_at`` stays. When one
        call names a key several times the last row wins: chunks are written in order, SQLite
        applies a statement's rows in order, and on PostgreSQL, whose multi-row upsert refuses to
        touch a row twice, a chunk's keys are deduplicated before its upsert.
        """
        if not rows:
            return
        staged = False  # whether this transaction has used the staging table yet
        chunk_rows = UPSERT_CHUNK_ROWS if self._sqlite else POSTGRES_CHUNK_ROWS
        for start in range(0, len(rows), chunk_rows):
            chunk = rows[start : start + chunk_rows]
            if self._sqlite:
                self._upsert_sqlite_chunk(connection, chunk, now_ms, bulk=bulk)
            else:
                staged = self._upsert_postgres_chunk(connection, chunk, now_ms, staged=staged)

    def upsert_channel_rows(
        self,
        connection: Connection,
        channel: Channel,
        rows: Sequence[tuple[str, int, str]],
        now_ms: int,
        *,
        new: bool = False,
    ) -> None:
        """``upsert_entries`` for ``(process id, index, payload)`` rows of one channel (the
        backfill's bulk path, one process or many). On SQLite no EntryRow per row (about a fifth
        of its time per line), and statements that bind the channel and time once (``?1``,
        ``?2``) and each row's process, index and payload: the rows' tuples are flattened in C,
        and the writing thread holds the GIL (binding) half as long as with six values per row
        (issue 11). As in ``_upsert_sqlite_chunk``, each size used is executed once more with
        NULLs and no rows, so that no cached statement keeps payloads (issue 9).

        ``new``: no row's key is stored and no two rows share one (raw entries rebuilt into an
        empty channel). PostgreSQL then copies them straight into the table instead of through
        the deduplicating staging table; a wrong claim costs one retry as an upsert."""
        if not self._sqlite:
            make = _NewEntryRow if new else EntryRow
            self.upsert_entries(
                connection, [make(pid, channel, i, p) for pid, i, p in rows], now_ms
            )
            return
        self._execute_sqlite_upserts(
            connection,
            _CHANNEL_ROWS,
            (channel, now_ms),
            rows,
            _add_channel_row_params,
            _SQLITE_BULK_STATEMENT_ROWS,
        )

    def _upsert_sqlite_chunk(
        self, connection: Connection, rows: Sequence[EntryRow], now_ms: int, *, bulk: bool
    ) -> None:
        """Multi-row statements: ``sqlite3`` releases and re-takes the GIL around every step,
        and each re-take waits for the busy event loop; one step per ``SQLITE_ROWS_PER_STATEMENT``
        rows instead of one per row halved the pipeline's time (docs/performance.md). Within a
        statement SQLite applies the rows in order, so a later duplicate still wins.

        Statements come in a few sizes (``_SQLITE_STATEMENT_ROWS``), and before returning each
        size used is executed once more with no rows: ``sqlite3`` caches statements with their
        last bound values, i.e. SQLite's copies of the payloads (issue 9: 1.1 GB held after a
        flood). Re-binding with NULLs frees them while keeping the prepared statements, whose
        preparation would cost 3x the insert."""
        sizes = _SQLITE_BULK_STATEMENT_ROWS if bulk else _SQLITE_STATEMENT_ROWS
        self._execute_sqlite_upserts(
            connection, _ENTRY_ROWS, (now_ms,), rows, _add_entry_row_params, sizes
        )

    def _execute_sqlite_upserts(
        self,
        connection: Connection,
        form: _SqliteRowsForm,
        shared: tuple[object, ...],
        rows: Sequence[_R],
        add_params: Callable[[list[object], Sequence[_R]], None],
        sizes: tuple[int, ...],
    ) -> None:
        """The statements of ``_upsert_sqlite_chunk`` in ``form``: ``shared`` bound once per
        statement, and ``add_params`` appends each row's values of a slice of ``rows``."""
        used: set[int] = set()
        start = 0
        total = len(rows)
        while start < total:
            size = next(n for n in sizes if n <= total - start)
            params = list(shared)
            add_params(params, rows[start : start + size])
            params.append(1)
            connection.exec_driver_sql(self._multi_row_sql(form, size), tuple(params))
            used.add(size)
            start += size
        for size in used:
            released = (None,) * (form.shared + form.per_row * size) + (0,)
            connection.exec_driver_sql(self._multi_row_sql(form, size), released)

    def _upsert_postgres_chunk(
        self, connection: Connection, rows: Sequence[EntryRow], now_ms: int, *, staged: bool
    ) -> bool:
        """New rows by COPY straight into the table; the rest (and all of them, should a key be
        stored already) by COPY into the staging table and one INSERT ... SELECT ... ON
        CONFLICT. One round trip per chunk, not one statement per row (issue 9, item 8: the
        row-by-row upsert ingested 5x slower than SQLite). Returns whether the staging table
        has been used in this transaction.

        A chunk of appends only (a flood's) is copied as it is: its keys are new and distinct,
        and deduplicating them was a fifth of the writer thread's time (issue 9's ingest). Any
        other chunk is deduplicated first (the last row of a key wins): a partial line's final
        write is an append of the key its partial writes restated."""
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with driver_errors_wrapped(connection):
                appends_only = not any(r.may_be_stored for r in rows)
                if not appends_only:
                    rows = _last_of_each_key(rows)
                new = rows if appends_only else [r for r in rows if not r.may_be_stored]
                if new and _copy_new_rows(cursor, new, now_ms):
                    rows = [] if appends_only else [r for r in rows if r.may_be_stored]
                elif appends_only:
                    rows = _last_of_each_key(rows)  # a key was stored already: upsert them all
                if not rows:
                    return staged
                cursor.execute(_PG_EMPTY_STAGING if staged else _PG_CREATE_STAGING)
                with cursor.copy(_PG_COPY_STAGING) as copy:
                    copy.set_types(_PG_STAGING_TYPES)
                    write_row = copy.write_row
                    for r in rows:
                        write_row((r.process_id, r.channel, r.entry_index, r.entry_json))
                cursor.execute(_PG_UPSERT_FROM_STAGING, {"now": now_ms})
                return True
        finally:
            cursor.close()

    def _multi_row_sql(self, form: _SqliteRowsForm, rows: int) -> str:
        sql = self._multi_row_sql_cache.get((form, rows))
        if sql is None:
            sql = self._multi_row_sql_cache[form, rows] = form.sql(self._upsert_sql, rows)
        return sql

    def upsert_entries_now(self, rows: Sequence[EntryRow]) -> None:
        """``upsert_entries`` in a transaction of its own, stamped with the current time."""
        with self._engine.begin() as connection:
            self.upsert_entries(connection, rows, now_ms())


def _add_entry_row_params(params: list[object], rows: Sequence[EntryRow]) -> None:
    for r in rows:  # a plain loop: faster than chaining attrgetter tuples
        params += (r.process_id, r.channel, r.entry_index, r.entry_json)


def _add_channel_row_params(params: list[object], rows: Sequence[tuple[str, int, str]]) -> None:
    params += chain.from_iterable(rows)  # the (process, index, payload) tuples, flattened in C


def _last_of_each_key(rows: Sequence[EntryRow]) -> Sequence[EntryRow]:
    """``rows`` with only the last row of each key, in order of each key's first row."""
    unique = {(r.process_id, r.channel, r.entry_index): r for r in rows}
    return rows if len(unique) == len(rows) else list(unique.values())


def _copy_new_rows(cursor: Any, rows: Sequence[EntryRow], now_ms: int) -> bool:
    """COPY ``rows`` into the entries table inside a savepoint. False, with nothing written,
    when one of their keys is stored already."""
    cursor.execute(f"SAVEPOINT {_PG_COPY_SAVEPOINT}")
    try:
        with cursor.copy(_PG_COPY_ENTRIES) as copy:
            copy.set_types(_PG_ENTRY_TYPES)
            write_row = copy.write_row
            for r in rows:
                write_row((r.process_id, r.channel, r.entry_index, r.entry_json, now_ms, now_ms))
    except psycopg.errors.UniqueViolation:
        cursor.execute(f"ROLLBACK TO SAVEPOINT {_PG_COPY_SAVEPOINT}")
        return False
    cursor.execute(f"RELEASE SAVEPOINT {_PG_COPY_SAVEPOINT}")
    return True


def _build_upsert(engine: Engine) -> Any:
    """INSERT ... ON CONFLICT (key) DO UPDATE of payload and updated_at, in the engine's dialect."""
    dialect_insert: Any
    if engine.dialect.name == "sqlite":
        dialect_insert = sqlite.insert
    elif engine.dialect.name == "postgresql":
        dialect_insert = postgresql.insert
    else:  # pragma: no cover - the configuration only accepts these two
        raise ValueError(f"unsupported database dialect {engine.dialect.name!r}")
    statement = dialect_insert(entries_table)
    return statement.on_conflict_do_update(
        index_elements=[_t.execution_process_id, _t.channel, _t.entry_index],
        set_={
            "entry_json": statement.excluded.entry_json,
            "updated_at": statement.excluded.updated_at,
        },
    )

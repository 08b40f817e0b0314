"""Backfill of legacy JSONL into entry rows (issue 11; CONTRACT.md "Legacy JSONL log format",
"Start-up").

One process (``ProcessBackfill``): the ``Stdout``/``Stderr`` texts, in row order, are split into
lines by the live runner's ``LineSplitter`` (one per stream), so the raw channel is what the
runner would have stored. The normalized channel comes from the ``JsonPatch`` lines (the last
value of each ``/entries/N`` wins); a log without patches goes through the executor's
normalizer instead, so an agent process from a database that never stored patches still gets
its conversation. The JSONL is read page by page and the rows are written in batches: memory
does not grow with the size of the log.

Many processes (``LegacyBackfiller``): on demand before a stored read, at start-up (blocking or
in the background) and from ``execlog backfill``, each process at most once at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import StatementError

from execlog.config import BackfillMode
from execlog.errors import BackfillError
from execlog.protocol import (
    CHANNELS,
    Channel,
    OutputStream,
    encode_normalized_entry,
    encode_raw_entry,
    now_ms,
)
from execlog.runner.executors import EXECUTORS, create_normalizer
from execlog.runner.lines import LineSplitter
from execlog.runner.normalizers.base import EntryPatch, Normalizer, NormalizerEvent, SessionIdSeen
from execlog.runner.pipeline import KEYED_ENTRIES_CAPACITY
from execlog.storage.backfills import BackfillLedger, LedgerRow, LegacyProcess
from execlog.storage.checkpoints import BackgroundCheckpoints
from execlog.storage.database import DATABASE_UNAVAILABLE_ERRORS, run_in_thread
from execlog.storage.entries import EntryStats, EntryStore
from execlog.storage.legacy import (
    JsonPatchMessage,
    LegacyLogStore,
    SessionIdMessage,
    StderrMessage,
    StdoutMessage,
)
from execlog.storage.processes import ProcessRecord, ProcessRepository
from execlog.storage.tables import execution_process_logs as logs_table

__all__ = [
    "PROGRESS_EVERY_BYTES",
    "PROGRESS_EVERY_PROCESSES",
    "BackfillResult",
    "BackfillRun",
    "LegacyBackfiller",
    "ProcessBackfill",
]

logger = logging.getLogger("execlog.backfill")

# CONTRACT.md "Start-up": a progress line every 25 processes or 64 MiB, whichever comes first.
PROGRESS_EVERY_PROCESSES: Final = 25
PROGRESS_EVERY_BYTES: Final = 64 * 1024 * 1024
# Rows per write transaction: large enough that a commit is rare, small enough that the rows
# of one batch (a few MB) are all the backfill holds at once.
_WRITE_BATCH_ROWS: Final = 20_000
_WRITE_BATCH_BYTES: Final = 16 * 1024 * 1024
# Small processes are backfilled in groups, one write transaction each. Their entry rows land at
# random places of the entries table (clustered by process id), so each process dirties pages
# of its own, and a commit writes them (64 KiB each) to the WAL: measured on this machine, 1.5 ms
# per process in groups of 25, 0.7 ms in groups of 200. A group's JSONL is read at once: a few
# MiB of rows and entries in memory; a process of more than ``_ALONE_BYTES`` is streamed alone.
_GROUP_PROCESSES: Final = 200
_GROUP_BYTES: Final = 8 * 1024 * 1024
_ALONE_BYTES: Final = 4 * 1024 * 1024
_CHECKED_CAPACITY: Final = 16_384
_ERROR_TEXT_CHARS: Final = 200

_l = logs_table.c
# Whether the process's JSONL holds any patch: a line starts with it (inside a Stdout text the
# quotes are escaped, so the pattern cannot match there). One scan in the database's own code.
_HAS_PATCH = (
    select(_l.id)
    .where((_l.execution_id == bindparam("pid")) & _l.logs.like('%{"JsonPatch":%'))
    .limit(1)
)


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """What one process's backfill did."""

    process_id: str
    raw_entries: int
    normalized_entries: int
    entries_written: int
    bytes_read: int
    malformed_lines: int
    agent_session_id: str | None


@dataclass(slots=True)
class _ChannelStats:
    """count / min / max of the indexes one rebuild produces in a channel (distinct indexes:
    a patch may restate an index many times, hence the bitmap)."""

    seen: bytearray = field(default_factory=bytearray)
    count: int = 0
    min_index: int | None = None
    max_index: int | None = None
    written: int = 0

    def set_range(self, count: int) -> None:
        """Indexes ``0..count-1``, each once."""
        self.count = count
        self.min_index, self.max_index = (0, count - 1) if count else (None, None)

    def add(self, index: int) -> None:
        byte, bit = divmod(index, 8)
        if byte >= len(self.seen):
            self.seen.extend(bytes(max(byte + 1 - len(self.seen), len(self.seen))))
        mask = 1 << bit
        if self.seen[byte] & mask:
            return
        self.seen[byte] |= mask
        self.count += 1
        if self.min_index is None or index < self.min_index:
            self.min_index = index
        if self.max_index is None or index > self.max_index:
            self.max_index = index

    def matches(self, stored: EntryStats) -> bool:
        return (self.count, self.min_index, self.max_index) == (
            stored.count,
            stored.min_index,
            stored.max_index,
        )


class _StreamText:
    """One output stream's texts → lines, through the live runner's splitter. A character cut
    between two chunks as half a surrogate pair (``\\ud83d`` | ``\\ude00``) is joined again."""

    __slots__ = ("splitter", "_high_surrogate")

    def __init__(self, max_line_bytes: int) -> None:
        self.splitter = LineSplitter(max_line_bytes)
        self._high_surrogate = ""

    @property
    def idle(self) -> bool:
        """Nothing pending: the next text starts a new line."""
        return not self._high_surrogate and self.splitter.idle

    def feed(self, text: str) -> list[str]:
        if self._high_surrogate:
            text = self._high_surrogate + text
            self._high_surrogate = ""
        try:
            data = text.encode()
        except UnicodeEncodeError:
            data = self._encode_with_surrogates(text)
        return self.splitter.feed(data)

    def finish(self) -> list[str]:
        lines = []
        if self._high_surrogate:
            lines = self.splitter.feed("\ufffd".encode())
            self._high_surrogate = ""
        return lines + self.splitter.finish()

    def _encode_with_surrogates(self, text: str) -> bytes:
        if "\ud800" <= text[-1] <= "\udbff":
            self._high_surrogate = text[-1]
            text = text[:-1]
        # UTF-16 round trip joins each pair; a lone half becomes U+FFFD.
        joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return joined.encode()


class _KeyedIndexes:
    """Indexes of a normalizer's keyed entries: a patch with a known key replaces its entry,
    any other appends. Bounded like the live pipeline's bookkeeping."""

    __slots__ = ("_indexes", "next_index")

    def __init__(self) -> None:
        self._indexes: OrderedDict[str, int] = OrderedDict()
        self.next_index = 0

    def index_of(self, key: str | None) -> int:
        if key is not None:
            index = self._indexes.get(key)
            if index is not None:
                self._indexes.move_to_end(key)
                return index
        index = self.next_index
        self.next_index += 1
        if key is not None:
            self._indexes[key] = index
            if len(self._indexes) > KEYED_ENTRIES_CAPACITY:
                self._indexes.popitem(last=False)
        return index


# One channel's rows to write: (process id, index, payload).
_Rows = list[tuple[str, int, str]]


class _Replay:
    """One pass over a process's JSONL: ``chunks()`` yields ``(raw rows, normalized rows)``,
    each a list of ``(process id, index, payload)`` in log order, a few thousand rows or MiB at
    a time."""

    def __init__(
        self,
        legacy: LegacyLogStore,
        process_id: str,
        max_line_bytes: int,
        normalizer: Normalizer | None,
        use_patches: bool,
        rows: Sequence[tuple[str, int]] | None = None,
    ) -> None:
        self.reader = legacy.read_messages(process_id, rows=rows)
        self._pid = process_id
        self._max_line_bytes = max_line_bytes
        self._streams: dict[OutputStream, _StreamText] = {
            "stdout": _StreamText(max_line_bytes),
            "stderr": _StreamText(max_line_bytes),
        }
        self._normalizer = None if use_patches else normalizer
        self._use_patches = use_patches
        self._keyed = _KeyedIndexes()
        self.raw_index = 0
        self.agent_session_id: str | None = None
        self._raw: _Rows = []
        self._normalized: _Rows = []
        # Pieces of a line of several chunks, per stream.
        self._held: dict[OutputStream, list[str]] = {"stdout": [], "stderr": []}

    def chunks(self) -> Iterator[tuple[_Rows, _Rows]]:
        streams = self._streams
        # A text that is exactly one short line after a completed one splits into that line:
        # the splitter would return ``[text[:-1]]``, so skip its encode/decode round trip (a
        # pipe chunk of agent output and execlog's own dual-mode JSONL are nearly all such
        # texts). A line of several chunks (over 8 KiB: half the bytes of agent output) is held
        # as its pieces until the chunk with its newline, then joined. ``short``: at most 4
        # bytes a character, so within the line limit. ``idle``: no partial line in the
        # splitter. A text with lone surrogates (a pipe chunk cut inside an escaped pair) fails
        # to encode and goes through the splitter, which joins the halves.
        short = self._max_line_bytes // 4
        idle = {"stdout": True, "stderr": True}
        held = self._held
        held_chars = {"stdout": 0, "stderr": 0}
        raw_only = self._normalizer is None
        raw = self._raw
        pid = self._pid
        chunk_bytes = 0
        for message in self.reader:
            kind = type(message)
            if kind is StdoutMessage or kind is StderrMessage:
                stream: OutputStream = "stdout" if kind is StdoutMessage else "stderr"
                text: str = message.text  # type: ignore[union-attr]
                chunk_bytes += len(text)
                pieces = held[stream]
                chars = held_chars[stream] + len(text)
                newline = -2  # not looked for: the splitter's case
                if idle[stream] and chars <= short and "\r" not in text:
                    newline = text.find("\n")
                if newline == -1:
                    pieces.append(text)
                    held_chars[stream] = chars
                    continue
                payload = None
                if newline == len(text) - 1:
                    line = "".join([*pieces, text[:-1]]) if pieces else text[:-1]
                    try:
                        payload = encode_raw_entry(stream, line)
                    except UnicodeEncodeError:
                        payload = None
                held_chars[stream] = 0
                if payload is None:
                    for line in self._feed_splitter(stream, text):
                        self._add_line(stream, line)
                    idle[stream] = streams[stream].idle
                elif raw_only:
                    pieces.clear()
                    raw.append((pid, self.raw_index, payload))
                    self.raw_index += 1
                else:
                    pieces.clear()
                    self._add_line(stream, line, payload)
            elif kind is JsonPatchMessage:
                if self._use_patches:
                    for operation in message.operations:  # type: ignore[union-attr]
                        self._normalized.append((pid, operation.entry_index, operation.value_json))
                        chunk_bytes += len(operation.value_json)
            elif kind is SessionIdMessage:
                self._see_session_id(message.agent_session_id)  # type: ignore[union-attr]
            # Normalized rows grow with the bytes read too: rows and bytes bound both lists.
            if chunk_bytes >= _WRITE_BATCH_BYTES or len(raw) >= _WRITE_BATCH_ROWS:
                yield self._take()
                raw = self._raw
                chunk_bytes = 0
        for stream in ("stdout", "stderr"):
            for line in self._feed_splitter(stream, "") + streams[stream].finish():
                self._add_line(stream, line)
        if self._normalizer is not None:
            self._conversation(self._normalizer.finish())
        yield self._take()

    def _feed_splitter(self, stream: OutputStream, text: str) -> list[str]:
        """The splitter's lines for ``text``, after the pieces held for the fast path (they hold
        no newline and fit the limit: feeding them completes nothing)."""
        splitter = self._streams[stream]
        pieces = self._held[stream]
        for piece in pieces:
            splitter.feed(piece)
        pieces.clear()
        return splitter.feed(text) if text else []

    def _take(self) -> tuple[_Rows, _Rows]:
        taken = self._raw, self._normalized
        self._raw, self._normalized = [], []
        return taken

    def _add_line(self, stream: OutputStream, line: str, payload: str | None = None) -> None:
        self._raw.append((self._pid, self.raw_index, payload or encode_raw_entry(stream, line)))
        self.raw_index += 1
        if self._normalizer is not None:
            self._conversation(self._normalizer.feed(stream, line))

    def _conversation(self, events: list[NormalizerEvent]) -> None:
        for event in events:
            if isinstance(event, EntryPatch):
                index = self._keyed.index_of(event.key)
                self._normalized.append((self._pid, index, encode_normalized_entry(event.entry)))
            elif isinstance(event, SessionIdSeen):
                self._see_session_id(event.agent_session_id)

    def _see_session_id(self, agent_session_id: str) -> None:
        if self.agent_session_id is None and agent_session_id:
            self.agent_session_id = agent_session_id


class ProcessBackfill:
    """Rebuilds one ended process's entries from its legacy JSONL (synchronous: run it in a
    thread). Idempotent: channels whose stored (count, min, max) already match are left alone."""

    def __init__(
        self,
        engine: Engine,
        entries: EntryStore,
        legacy: LegacyLogStore,
        repository: ProcessRepository,
        ledger: BackfillLedger,
        *,
        max_line_bytes: int,
    ) -> None:
        self._engine = engine
        self._entries = entries
        self._legacy = legacy
        self._repository = repository
        self._ledger = ledger
        self._max_line_bytes = max_line_bytes

    def run(self, process: ProcessRecord) -> BackfillResult:
        pid = process.id
        executor = _executor_of(process)
        # Without a normalizer, patches are the only source of a conversation: no need to ask
        # whether there are any (one scan of the log saved per raw-only process).
        use_patches = executor not in EXECUTORS or self._log_has_patches(pid)
        stored = {channel: self._entries.fetch_stats(pid, channel) for channel in CHANNELS}
        todo: set[Channel] = set(CHANNELS)
        empty = not any(stats.count for stats in stored.values())
        if not empty:
            # Entries exist (written live, or a backfill that stopped half-way): rebuild the
            # statistics first and rewrite only the channels that differ.
            check = self._replay(pid, executor, use_patches)
            rebuilt = self._consume(check, set(), pid)
            todo = {c for c in CHANNELS if not rebuilt[c].matches(stored[c])}
        replay = self._replay(pid, executor, use_patches)
        stats = self._consume(replay, todo, pid, raw_is_new=empty)
        session_id = replay.agent_session_id
        if session_id is not None:
            self._repository.set_missing_agent_session_id(pid, session_id, now_ms())
        result = BackfillResult(
            process_id=pid,
            raw_entries=stats["raw"].count,
            normalized_entries=stats["normalized"].count,
            entries_written=sum(stats[c].written for c in CHANNELS),
            bytes_read=replay.reader.bytes_read,
            malformed_lines=replay.reader.malformed_lines,
            agent_session_id=session_id,
        )
        self._ledger.record(_ledger_row(result))
        return result

    def _replay(
        self,
        pid: str,
        executor: object,
        use_patches: bool,
        rows: Sequence[tuple[str, int]] | None = None,
    ) -> _Replay:
        # Executors execlog has no normalizer for (an import's amp, gemini, ...): raw only.
        normalizer = create_normalizer(executor) if executor in EXECUTORS else None
        return _Replay(self._legacy, pid, self._max_line_bytes, normalizer, use_patches, rows)

    def prepare_group(self, process_ids: Sequence[str]) -> PreparedGroup:
        """The first half of backfilling many small processes (the start-up pass, issue 11: a
        query round trip per process cost ~2 ms each): their records, their stored entry
        statistics and their JSONL rows in a few grouped queries, and their rebuilt entries in
        memory. A process that already has entries goes alone, like one whose rebuild fails."""
        prepared = PreparedGroup()
        records = self._repository.fetch_processes_by_id(process_ids)
        stored = self._entries.fetch_stats_of_processes(process_ids)
        group: list[ProcessRecord] = []
        for pid in process_ids:
            record = records.get(pid)
            if isinstance(record, ValueError):
                prepared.outcomes[pid] = record
            elif record is None or record.status == "running":
                prepared.outcomes[pid] = None
            elif any((pid, channel) in stored for channel in CHANNELS):
                prepared.alone.append(record)
            else:
                group.append(record)
        agents = [r.id for r in group if _executor_of(r) in EXECUTORS]
        with_patches = self._legacy.processes_with_patches(agents)
        rows_of = self._legacy.read_rows_of_processes([r.id for r in group])
        for record in group:
            pid = record.id
            executor = _executor_of(record)
            use_patches = executor not in EXECUTORS or pid in with_patches
            try:
                replay = self._replay(pid, executor, use_patches, rows_of.pop(pid))
                result, raw, normalized = _rebuild_in_memory(replay, pid)
            except Exception as exc:  # this process only; the group goes on
                prepared.outcomes[pid] = exc
                continue
            prepared.raw += raw
            prepared.normalized += normalized
            prepared.ledger.append(_ledger_row(result))
            if result.agent_session_id is not None:
                prepared.sessions.append((pid, result.agent_session_id))
            prepared.rebuilt[pid] = (record, result)
        return prepared

    def write_group(
        self, prepared: PreparedGroup, checkpoints: BackgroundCheckpoints
    ) -> dict[str, GroupOutcome]:
        """The second half: entries, ledger rows and agent session ids in one transaction. If
        it fails, each process goes alone, so that an error belongs to one process. Never
        raises: each process's outcome is its result, None (nothing to do) or its error."""
        outcomes = dict(prepared.outcomes)
        alone = list(prepared.alone)
        try:
            with checkpoints.writing() as connection:
                # The group's processes have no entries (prepare_group), and raw indexes are
                # distinct: new rows, copied straight into PostgreSQL's table.
                self._entries.upsert_channel_rows(
                    connection, "raw", prepared.raw, now_ms(), new=True
                )
                self._entries.upsert_channel_rows(
                    connection, "normalized", prepared.normalized, now_ms()
                )
                self._ledger.record_many(connection, prepared.ledger)
                self._repository.set_missing_agent_session_ids(
                    connection, prepared.sessions, now_ms()
                )
        except Exception:
            alone += [record for record, _result in prepared.rebuilt.values()]
        else:
            outcomes.update({pid: result for pid, (_r, result) in prepared.rebuilt.items()})
        for record in alone:
            try:
                outcomes[record.id] = self.run(record)
            except Exception as exc:
                outcomes[record.id] = exc
        return outcomes

    def background_checkpoints(self) -> BackgroundCheckpoints:
        """WAL checkpoints beside the writes of a run over many processes (``write_group``)."""
        return BackgroundCheckpoints(self._engine)

    def _log_has_patches(self, pid: str) -> bool:
        with self._engine.connect() as connection:
            return connection.execute(_HAS_PATCH, {"pid": pid}).first() is not None

    def _consume(
        self, replay: _Replay, todo: set[Channel], pid: str, *, raw_is_new: bool = False
    ) -> dict[Channel, _ChannelStats]:
        """Run the replay: count every channel, write the rows of the channels in ``todo``
        (``raw_is_new``: the process has no entries, so its raw rows are new keys).
        Each batch is written in a thread of its own while the replay builds the next one:
        SQLite and the driver work without the GIL, so on two cores the decoding and the
        writing overlap (docs/performance.md, backfill), and a third thread checkpoints the WAL
        (the copy and its fsync) beside them. At most two batches exist at once."""
        stats: dict[Channel, _ChannelStats] = {c: _ChannelStats() for c in CHANNELS}
        normalized = stats["normalized"]
        with (
            ThreadPoolExecutor(1, thread_name_prefix="execlog-backfill-write") as pool,
            BackgroundCheckpoints(self._engine) as checkpoints,
        ):
            writing: Future[None] | None = None
            try:
                for raw_rows, normalized_rows in replay.chunks():
                    for _pid, index, _payload in normalized_rows:
                        normalized.add(index)
                    writes = [
                        (channel, rows)
                        for channel, rows in (("raw", raw_rows), ("normalized", normalized_rows))
                        if rows and channel in todo
                    ]
                    if not writes:
                        continue
                    if writing is not None:
                        writing.result()
                    for channel, rows in writes:
                        stats[channel].written += len(rows)
                    writing = pool.submit(self._write, writes, checkpoints, raw_is_new)
            finally:
                if writing is not None:
                    writing.result()
        # Raw indexes are 0..n-1 by construction: no bitmap needed.
        stats["raw"].set_range(replay.raw_index)
        return stats

    def _write(
        self,
        writes: list[tuple[Channel, _Rows]],
        checkpoints: BackgroundCheckpoints,
        raw_is_new: bool,
    ) -> None:
        with checkpoints.writing() as connection:
            for channel, rows in writes:
                new = raw_is_new and channel == "raw"
                self._entries.upsert_channel_rows(connection, channel, rows, now_ms(), new=new)


GroupOutcome = BackfillResult | Exception | None


@dataclass(slots=True)
class PreparedGroup:
    """Small processes rebuilt in memory, ready for their one write transaction."""

    outcomes: dict[str, GroupOutcome] = field(default_factory=dict)
    alone: list[ProcessRecord] = field(default_factory=list)
    raw: _Rows = field(default_factory=list)
    normalized: _Rows = field(default_factory=list)
    ledger: list[LedgerRow] = field(default_factory=list)
    sessions: list[tuple[str, str]] = field(default_factory=list)
    rebuilt: dict[str, tuple[ProcessRecord, BackfillResult]] = field(default_factory=dict)


def _executor_of(process: ProcessRecord) -> object:
    """The executor whose normalizer rebuilds a conversation: agent processes only."""
    return process.action.get("executor") if process.run_reason == "codingagent" else None


def _ledger_row(result: BackfillResult) -> LedgerRow:
    return LedgerRow(
        result.process_id,
        result.raw_entries,
        result.normalized_entries,
        result.bytes_read,
        result.malformed_lines,
        now_ms(),
    )


def _rebuild_in_memory(replay: _Replay, pid: str) -> tuple[BackfillResult, _Rows, _Rows]:
    """A small process's whole replay as raw and normalized rows (it has no stored entries:
    all are written)."""
    raw: _Rows = []
    normalized: _Rows = []
    stats = _ChannelStats()
    for raw_rows, normalized_rows in replay.chunks():
        raw += raw_rows
        normalized += normalized_rows
        for _pid, index, _payload in normalized_rows:
            stats.add(index)
    result = BackfillResult(
        process_id=pid,
        raw_entries=replay.raw_index,
        normalized_entries=stats.count,
        entries_written=len(raw) + len(normalized),
        bytes_read=replay.reader.bytes_read,
        malformed_lines=replay.reader.malformed_lines,
        agent_session_id=replay.agent_session_id,
    )
    return result, raw, normalized


@dataclass(frozen=True, slots=True)
class BackfillRun:
    """The totals of a run over many processes (the contract's ``complete`` line)."""

    processes: int
    errors: int
    entries: int
    bytes: int
    elapsed_ms: int


ProgressCallback = Callable[[LegacyProcess, BackfillResult | None], None]


def describe_error(exc: BaseException) -> str:
    """A one-line error for the console, without any payload: SQLAlchemy's message carries
    the statement's parameters (log text), so only the driver's own message is kept."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        exc = exc.orig
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = " ".join(text.split())
    return text[:_ERROR_TEXT_CHARS]


class LegacyBackfiller:
    """Backfills processes on demand (the history hook), at start-up and from the command line.
    Concurrent requests for one process share one run; processes found complete are
    remembered (bounded), so later reads cost nothing."""

    def __init__(
        self,
        job: ProcessBackfill,
        ledger: BackfillLedger,
        legacy: LegacyLogStore,
        repository: ProcessRepository,
    ) -> None:
        self._job = job
        self._ledger = ledger
        self._legacy = legacy
        self._repository = repository
        self._checked: OrderedDict[str, None] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[BackfillResult | None]] = {}

    @classmethod
    def create(
        cls,
        engine: Engine,
        *,
        max_line_bytes: int,
        entries: EntryStore | None = None,
        legacy: LegacyLogStore | None = None,
        repository: ProcessRepository | None = None,
    ) -> LegacyBackfiller:
        """The backfiller of one database (the server passes the stores it already has)."""
        entries = entries or EntryStore(engine)
        legacy = legacy or LegacyLogStore(engine)
        repository = repository or ProcessRepository(engine)
        ledger = BackfillLedger(engine)
        job = ProcessBackfill(
            engine, entries, legacy, repository, ledger, max_line_bytes=max_line_bytes
        )
        return cls(job, ledger, legacy, repository)

    @property
    def ledger(self) -> BackfillLedger:
        return self._ledger

    def describe_process(self, process_id: str) -> LegacyProcess:
        """One process's JSONL size, for a run over just that process (``--process``); its
        ledger row is dropped, so the run checks it again."""
        reader = self._legacy.read_messages(process_id)
        self._ledger.forget(process_id)
        self.forget(process_id)
        return LegacyProcess(process_id, reader.total_bytes(), 0)

    async def ensure_backfilled(self, process_id: str) -> None:
        """The history hook: before an ended process is read from the database."""
        if process_id in self._checked:
            self._checked.move_to_end(process_id)
            return
        try:
            await self.backfill_process(process_id)
        except DATABASE_UNAVAILABLE_ERRORS:
            raise  # the database is unavailable: a 503 at the edge, not a failed backfill
        except Exception as exc:
            raise BackfillError(
                f"log history backfill of execution process {process_id} failed: "
                f"{describe_error(exc)}"
            ) from exc

    async def backfill_process(
        self, process_id: str, *, pending: bool = False
    ) -> BackfillResult | None:
        """Backfill one process unless it needs none (no JSONL, running, already checked);
        None then. A second caller for the same process waits for the first one's run.
        ``pending``: the ledger query just listed it (unchecked, with JSONL)."""
        future = self._inflight.get(process_id)
        if future is None:
            check = run_in_thread(self._check_and_run, process_id, pending=pending)
            future = asyncio.ensure_future(check)
            self._inflight[process_id] = future
            future.add_done_callback(lambda _f: self._inflight.pop(process_id, None))
        result = await asyncio.shield(future)
        return result

    def _check_and_run(self, process_id: str, *, pending: bool) -> BackfillResult | None:
        process = self._repository.fetch_process(process_id)
        if process is None or process.status == "running":
            return None  # unknown (the read answers 404) or served from memory
        if pending or (
            self._ledger.fetch(process_id) is None and self._legacy.has_rows(process_id)
        ):
            result = self._job.run(process)
        else:
            result = None
        self._remember(process_id)
        return result

    def _remember(self, process_id: str) -> None:
        # Called from worker threads; OrderedDict operations are atomic enough under the GIL
        # for a cache whose worst case is one redundant ledger lookup.
        self._checked[process_id] = None
        if len(self._checked) > _CHECKED_CAPACITY:
            self._checked.popitem(last=False)

    def forget(self, process_id: str) -> None:
        self._checked.pop(process_id, None)

    def _claim(self, process_ids: list[str]) -> _Claim:
        """Mark a group's processes in flight, so a read of one of them waits for the group
        instead of starting its own run. One that another caller is backfilling is waited for;
        one this backfiller checked since the listing is skipped."""
        loop = asyncio.get_running_loop()
        claim = _Claim()
        for pid in process_ids:
            if pid in self._inflight:
                claim.others[pid] = self._inflight[pid]
            elif pid in self._checked:
                claim.skipped.append(pid)
            else:
                claim.mine[pid] = self._inflight[pid] = loop.create_future()
        return claim

    async def _prepare(self, claim: _Claim) -> PreparedGroup:
        try:
            return await run_in_thread(self._job.prepare_group, list(claim.mine))
        except Exception as exc:  # a grouped query failed: each of its processes did
            return PreparedGroup(outcomes={pid: exc for pid in claim.mine})

    async def _finish(
        self, claim: _Claim, writing: asyncio.Future[dict[str, GroupOutcome]]
    ) -> dict[str, GroupOutcome]:
        """The group's outcomes once its write is done; readers waiting on it are answered."""
        outcomes: dict[str, GroupOutcome] = dict.fromkeys(claim.skipped)
        found = await writing
        self._settle(claim.mine, found)
        outcomes.update(found)
        for pid, future in claim.others.items():
            try:
                outcomes[pid] = await asyncio.shield(future)
            except Exception as exc:
                outcomes[pid] = exc
        return outcomes

    async def _backfill_alone(self, process_id: str) -> dict[str, GroupOutcome]:
        try:
            return {process_id: await self.backfill_process(process_id, pending=True)}
        except Exception as exc:
            return {process_id: exc}

    def _abandon(self, claim: _Claim) -> None:
        """A group the pass left unfinished (it was cancelled): its readers get an error, and
        the next read or start-up backfills those processes again."""
        for pid, future in claim.mine.items():
            if future.done():
                continue
            if self._inflight.get(pid) is future:
                del self._inflight[pid]
            future.set_exception(BackfillError("the backfill pass was cancelled"))
            future.exception()

    def _settle(
        self,
        futures: dict[str, asyncio.Future[BackfillResult | None]],
        found: dict[str, GroupOutcome],
    ) -> None:
        """Hand each waiting reader its process's outcome and end the in-flight marks."""
        for pid, future in futures.items():
            self._inflight.pop(pid, None)
            outcome = found.get(pid)
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
                future.exception()  # retrieved: a group's error is reported by the run
            else:
                future.set_result(outcome)
                self._remember(pid)

    async def run_pending(
        self,
        mode: BackfillMode,
        report: Callable[[str], None],
        on_progress: ProgressCallback | None = None,
        only: list[LegacyProcess] | None = None,
        progress_every_bytes: int = PROGRESS_EVERY_BYTES,
    ) -> BackfillRun:
        """Backfill every ended process whose JSONL no backfill has checked, printing the
        contract's console lines through ``report``; an error in one process is reported
        and the run goes on. ``mode`` is the one the starting line names: a blocking pass
        (start-up, ``execlog backfill``, an import) is ``startup``, CONTRACT.md "Start-up"."""
        pending = only if only is not None else await run_in_thread(self._ledger.fetch_pending)
        total_bytes = sum(p.total_bytes for p in pending)
        report(
            f"log-history backfill starting: processes={len(pending)}, "
            f"total_bytes={total_bytes}, mode={mode}"
        )
        started = time.monotonic()
        counts = _RunCounts()

        def account(group: list[LegacyProcess], outcomes: dict[str, GroupOutcome]) -> None:
            for process in group:
                outcome = outcomes.get(process.process_id)
                result: BackfillResult | None = None
                if isinstance(outcome, Exception):  # that process only: the run goes on
                    counts.errors += 1
                    report(
                        f"log-history backfill error: execution_id={process.process_id}, "
                        f"error={describe_error(outcome)}"
                    )
                else:
                    counts.done += 1
                    result = outcome
                    if result is not None:
                        counts.entries += result.entries_written
                counts.bytes_read += process.total_bytes
                counts.since_processes += 1
                counts.since_bytes += process.total_bytes
                if on_progress is not None:
                    on_progress(process, result)
                if (
                    counts.since_processes >= PROGRESS_EVERY_PROCESSES
                    or counts.since_bytes >= progress_every_bytes
                ):
                    processed = counts.done + counts.errors
                    if processed < len(pending):
                        report(
                            f"log-history backfill progress: processed={processed}, "
                            f"entries={counts.entries}, bytes={counts.bytes_read}, "
                            f"elapsed_ms={_elapsed_ms(started)}"
                        )
                    counts.since_processes = counts.since_bytes = 0

        # Groups overlap: one group's write transaction runs in a worker thread while the next
        # group is read and rebuilt in another (SQLite writes without the GIL); the outcomes
        # are reported in order. A large process goes alone, its log streamed.
        writing: tuple[list[LegacyProcess], _Claim, asyncio.Future[Any]] | None = None
        claims: list[_Claim] = []
        checkpoints = self._job.background_checkpoints()
        try:
            for group in _groups(pending):
                if len(group) == 1:
                    if writing is not None:
                        account(writing[0], await self._finish(writing[1], writing[2]))
                        writing = None
                    account(group, await self._backfill_alone(group[0].process_id))
                    continue
                claim = self._claim([p.process_id for p in group])
                claims.append(claim)
                prepared = await self._prepare(claim)
                # One write at a time: a second one would only wait for SQLite's write lock,
                # in the busy handler's sleeps (1, 2, 5, 10 ms ...), up to 40 ms a group.
                if writing is not None:
                    account(writing[0], await self._finish(writing[1], writing[2]))
                write = asyncio.ensure_future(
                    run_in_thread(self._job.write_group, prepared, checkpoints)
                )
                writing = (group, claim, write)
            if writing is not None:
                account(writing[0], await self._finish(writing[1], writing[2]))
            await run_in_thread(checkpoints.close)
        finally:
            checkpoints.close(copy_rest=False)  # cancelled: the checkpoint ends on its own
            for claim in claims:  # cancelled: no reader is left waiting on a group
                self._abandon(claim)
        run = BackfillRun(
            counts.done, counts.errors, counts.entries, counts.bytes_read, _elapsed_ms(started)
        )
        report(
            f"log-history backfill complete: processes={run.processes}, entries={run.entries}, "
            f"bytes={run.bytes}, elapsed_ms={run.elapsed_ms}"
        )
        return run


@dataclass(slots=True)
class _Claim:
    """A group's processes: marked in flight by this run, in flight elsewhere, or skipped."""

    mine: dict[str, asyncio.Future[BackfillResult | None]] = field(default_factory=dict)
    others: dict[str, asyncio.Future[BackfillResult | None]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _RunCounts:
    done: int = 0
    errors: int = 0
    entries: int = 0
    bytes_read: int = 0
    since_processes: int = 0
    since_bytes: int = 0


def _groups(pending: list[LegacyProcess]) -> Iterator[list[LegacyProcess]]:
    """Consecutive runs of small processes, at most ``_GROUP_PROCESSES`` or ``_GROUP_BYTES`` of
    JSONL each; a larger process alone. A group's progress lines (one per 25 processes) are
    printed when its write is done."""
    group: list[LegacyProcess] = []
    group_bytes = 0
    for process in pending:
        if process.total_bytes > _ALONE_BYTES:
            if group:
                yield group
                group, group_bytes = [], 0
            yield [process]
            continue
        if len(group) >= _GROUP_PROCESSES or group_bytes + process.total_bytes > _GROUP_BYTES:
            yield group
            group, group_bytes = [], 0
        group.append(process)
        group_bytes += process.total_bytes
    if group:
        yield group


def _as_exception(exc: BaseException) -> Exception:
    return exc if isinstance(exc, Exception) else RuntimeError(type(exc).__name__)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

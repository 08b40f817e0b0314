"""The per-process data path: output lines → raw entries → normalizer → conversation entries,
each held in the process's MsgStores and queued for the batched writer.

Every payload is encoded once here. Tool-status overrides (approvals) are applied here too, so
that a later patch from the normalizer cannot undo a decision the user made.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from execlog.live.msg_store import MsgStore
from execlog.protocol import (
    LEGACY_FINISHED_LINE,
    OutputStream,
    encode_legacy_patch_line,
    encode_legacy_session_id_line,
    encode_normalized_entry,
    encode_raw_entry,
    encode_raw_entry_and_legacy_line,
)
from execlog.runner.normalizers.base import (
    EntryPatch,
    Normalizer,
    NormalizerEvent,
    SessionIdSeen,
    SummarySeen,
    error_message_entry,
    with_tool_status,
)
from execlog.storage.writer import EntryWrite, LegacyLineWrite, LogWriter, WriteOp

__all__ = ["KEYED_ENTRIES_CAPACITY", "ProcessPipeline", "TurnCallback"]

TurnCallback = Callable[[str], Awaitable[None]]

# Keys (tool-use ids, streamed message blocks) remembered for later replaces. A replace comes
# soon after its entry (a tool result, the end of a streamed block); 8,192 keys cover the
# longest sub-agent runs between a Task call and its result while costing < 1 MB.
KEYED_ENTRIES_CAPACITY = 8192
_OPEN_TOOL_STATUSES = frozenset({"created", "pending_approval"})

# Statuses that are the user's final word on a tool call (kept over later normalizer patches).
_FINAL_OVERRIDES = frozenset({"denied", "timed_out"})


class ProcessPipeline:
    """Feeds one process's output into its stores and the writer; one instance per process."""

    def __init__(
        self,
        process_id: str,
        raw: MsgStore,
        normalized: MsgStore,
        writer: LogWriter,
        normalizer: Normalizer | None,
        *,
        on_session_id: TurnCallback,
        on_summary: TurnCallback,
    ) -> None:
        self.process_id = process_id
        self.raw = raw
        self.normalized = normalized
        self._writer = writer
        self._normalizer = normalizer
        self._on_session_id = on_session_id
        self._on_summary = on_summary
        self._write_entries = writer.writes_entries
        self._write_legacy = writer.writes_legacy
        # Memory stays bounded however long the agent runs: recently keyed entries map to their
        # index (an LRU), and only tool calls whose status can still change keep their entry
        # (an approval restates it).
        self._indexes: OrderedDict[str, int] = OrderedDict()
        self._open_tools: dict[str, tuple[int, dict[str, Any]]] = {}
        self._overrides: dict[str, dict[str, Any]] = {}
        self._key_added = asyncio.Event()
        self._turn_tasks: set[asyncio.Task[None]] = set()
        self._spawned_updates = 0
        # Raw index of the line each stream shows before its newline: its end replaces it.
        self._partial_lines: dict[OutputStream, int] = {}

    @property
    def tracked_keys(self) -> tuple[int, int]:
        """(keys remembered for replaces, tool calls still open): both bounded."""
        return len(self._indexes), len(self._open_tools)

    # --- child output -----------------------------------------------------------------------

    async def handle_output(self, stream: OutputStream, lines: list[str]) -> None:
        """The child's on_output callback: awaited, so a slow writer back-pressures the child."""
        batch = _WriteBatch(self.process_id)
        pid = self.process_id
        append_raw = self.raw.append
        entries = batch.entries if self._write_entries else None
        legacy = batch.legacy if self._write_legacy else None
        normalizer = self._normalizer
        if self._partial_lines:
            index = self._partial_lines.pop(stream, None)
            if index is not None:
                self._end_partial_line(stream, lines[0], index, batch)
                lines = lines[1:]
        for line in lines:
            if legacy is None:
                payload = encode_raw_entry(stream, line)
            else:
                payload, legacy_line = encode_raw_entry_and_legacy_line(stream, line)
                legacy.append(legacy_line)
            index = append_raw(payload)
            if entries is not None:
                entries.append(EntryWrite(pid, "raw", index, payload))
            if normalizer is not None:
                for event in normalizer.feed(stream, line):
                    self._apply(event, batch)
        await batch.submit(self._writer)

    async def handle_partial_line(self, stream: OutputStream, text: str) -> None:
        """The child's on_partial_line callback: the line still being written is appended as a
        raw entry, then replaced in place as it grows. Entry rows follow it (what a client saw
        is what is stored); the legacy JSONL and the normalizer get the line once it ends."""
        payload = encode_raw_entry(stream, text)
        index = self._partial_lines.get(stream)
        if index is None:
            index = self.raw.append(payload)
            self._partial_lines[stream] = index
        else:
            self.raw.replace(index, payload)
        if self._write_entries:
            await self._writer.submit_many([EntryWrite(self.process_id, "raw", index, payload)])

    def _end_partial_line(
        self, stream: OutputStream, line: str, index: int, batch: _WriteBatch
    ) -> None:
        if self._write_legacy:
            payload, legacy_line = encode_raw_entry_and_legacy_line(stream, line)
            batch.legacy.append(legacy_line)
        else:
            payload = encode_raw_entry(stream, line)
        self.raw.replace(index, payload)
        if self._write_entries:
            batch.entries.append(EntryWrite(self.process_id, "raw", index, payload))
        if self._normalizer is not None:
            for event in self._normalizer.feed(stream, line):
                self._apply(event, batch)

    def _apply(self, event: NormalizerEvent, batch: _WriteBatch) -> None:
        if isinstance(event, EntryPatch):
            self._put_entry(event.key, event.entry, batch)
        elif isinstance(event, SessionIdSeen):
            if self._write_legacy:
                batch.legacy.append(encode_legacy_session_id_line(event.agent_session_id))
            self._spawn_turn_update(self._on_session_id(event.agent_session_id))
        elif isinstance(event, SummarySeen):
            self._spawn_turn_update(self._on_summary(event.summary))

    def _put_entry(self, key: str | None, entry: dict[str, Any], batch: _WriteBatch) -> None:
        if key is not None and key in self._overrides:
            entry = with_tool_status(entry, self._overrides[key])
        payload = encode_normalized_entry(entry)
        if key is None:
            self._write_entry("add", self.normalized.append(payload), payload, batch)
            return
        index = self._indexes.get(key)
        if index is None:
            index = self.normalized.append(payload)
            self._remember(key, index)
            self._write_entry("add", index, payload, batch)
        else:
            self._indexes.move_to_end(key)
            self.normalized.replace(index, payload)
            self._write_entry("replace", index, payload, batch)
        if _is_open_tool(entry):
            self._open_tools[key] = (index, entry)
        else:
            self._open_tools.pop(key, None)

    def _remember(self, key: str, index: int) -> None:
        self._indexes[key] = index
        if len(self._indexes) > KEYED_ENTRIES_CAPACITY:
            self._indexes.popitem(last=False)
        self._key_added.set()

    def _write_entry(
        self, op: Literal["add", "replace"], index: int, payload: str, batch: _WriteBatch
    ) -> None:
        if self._write_entries:
            batch.entries.append(EntryWrite(self.process_id, "normalized", index, payload))
        if self._write_legacy:
            batch.legacy.append(encode_legacy_patch_line(op, index, payload))

    def _spawn_turn_update(self, update: Awaitable[None]) -> None:
        task = asyncio.ensure_future(update)
        self._spawned_updates += 1
        self._turn_tasks.add(task)
        task.add_done_callback(self._turn_tasks.discard)

    # --- entries written by execlog itself ----------------------------------------------------

    async def add_entry(self, entry: dict[str, Any], *, raw_line: str | None = None) -> None:
        """An entry execlog adds (start failure, orphan note): normalized, and raw as STDERR."""
        batch = _WriteBatch(self.process_id)
        if raw_line is not None:
            payload, legacy_line = encode_raw_entry_and_legacy_line("stderr", raw_line)
            index = self.raw.append(payload)
            if self._write_entries:
                batch.entries.append(EntryWrite(self.process_id, "raw", index, payload))
            if self._write_legacy:
                batch.legacy.append(legacy_line)
        self._put_entry(None, entry, batch)
        await batch.submit(self._writer)

    def report_write_error(self, reason: str) -> None:
        """The writer dropped a write of this process after a permanent error (issue 9): an
        error entry says so, in both channels. ``finish`` waits for it like for turn updates."""
        if self.raw.finished:
            return
        self._spawn_turn_update(
            self.add_entry(error_message_entry(f"execlog: {reason}"), raw_line=f"execlog: {reason}")
        )

    async def set_tool_status(
        self, key: str, status: dict[str, Any], *, wait_seconds: float = 10.0
    ) -> bool:
        """Restate the keyed tool call with ``status`` (approvals). Waits briefly for the entry:
        an agent's hook may ask before its tool_use line has been read. False if it never came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while key not in self._open_tools:
            if key in self._indexes:
                return False  # the tool call already ended: nothing left to approve
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._key_added.clear()
            try:
                await asyncio.wait_for(self._key_added.wait(), remaining)
            except TimeoutError:
                return False
        if status.get("status") in _FINAL_OVERRIDES:
            self._overrides[key] = status
        else:
            self._overrides.pop(key, None)
        batch = _WriteBatch(self.process_id)
        self._put_entry(key, with_tool_status(self._open_tools[key][1], status), batch)
        await batch.submit(self._writer)
        return True

    # --- end of the process -----------------------------------------------------------------

    async def finish(self) -> None:
        """Drain the normalizer, wait for turn updates, commit everything, then send
        ``finished`` on both channels: whoever sees the final status can read all history."""
        batch = _WriteBatch(self.process_id)
        if self._normalizer is not None:
            for event in self._normalizer.finish():
                self._apply(event, batch)
        if self._write_legacy:
            batch.legacy.append(LEGACY_FINISHED_LINE)
        await batch.submit(self._writer)
        while True:
            while self._turn_tasks:
                await asyncio.gather(*list(self._turn_tasks), return_exceptions=True)
            spawned = self._spawned_updates
            await self._writer.flush()
            # A write rejected during the flush spawned its error entry (which may even have
            # run already): flush again until nothing new came.
            if self._spawned_updates == spawned:
                break
        self.raw.finish()
        self.normalized.finish()


class _WriteBatch:
    """The writes one chunk of output causes: entry rows, and its legacy JSONL lines as ONE
    write (the writer stores them as one row anyway), in output order."""

    __slots__ = ("process_id", "entries", "legacy")

    def __init__(self, process_id: str) -> None:
        self.process_id = process_id
        self.entries: list[WriteOp] = []
        self.legacy: list[str] = []

    async def submit(self, writer: LogWriter) -> None:
        if self.legacy:
            self.entries.append(LegacyLineWrite(self.process_id, "\n".join(self.legacy)))
        if self.entries:
            await writer.submit_many(self.entries)


def _is_open_tool(entry: dict[str, Any]) -> bool:
    """A tool call whose status can still change (its result or an approval is to come)."""
    entry_type = entry.get("entry_type")
    if not isinstance(entry_type, dict) or entry_type.get("type") != "tool_use":
        return False
    status = entry_type.get("status")
    return isinstance(status, dict) and status.get("status") in _OPEN_TOOL_STATUSES

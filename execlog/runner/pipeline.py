"""The per-process data path: output lines → raw entries → normalizer → conversation entries,
each held in the process's MsgStores and queued for the batched writer. The pipeline does not
know the persistence mode: it submits entry writes and the legacy-only lines (``SessionId``,
``Finished``), and the writer keeps what the mode asks for.

Every payload is encoded once here. Tool-status overrides (approvals) are applied here too, so
that a later patch from the normalizer cannot undo a decision the user made.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from execlog.conversation import (
    NormalizedEntry,
    ToolStatus,
    error_message_entry,
    is_open_tool_call,
    with_tool_status,
)
from execlog.live.msg_store import MsgStore
from execlog.protocol import (
    LEGACY_FINISHED_LINE,
    OutputStream,
    encode_legacy_session_id_line,
    encode_normalized_entry,
    encode_raw_entry,
)
from execlog.runner.normalizers.base import (
    EntryPatch,
    Normalizer,
    NormalizerEvent,
    SessionIdSeen,
    SummarySeen,
)
from execlog.storage.writer import EntryWrite, LegacyLineWrite, LogWriter, WriteOp

__all__ = ["KEYED_ENTRIES_CAPACITY", "ProcessPipeline", "TurnCallback"]

TurnCallback = Callable[[str], Awaitable[None]]

# Keys (tool-use ids, streamed message blocks) remembered for later replaces. A replace comes
# soon after its entry (a tool result, the end of a streamed block); 8,192 keys cover the
# longest sub-agent runs between a Task call and its result while costing < 1 MB.
KEYED_ENTRIES_CAPACITY = 8192

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
        # Memory stays bounded however long the agent runs: recently keyed entries map to their
        # index (an LRU), and only tool calls whose status can still change keep their entry
        # (an approval restates it).
        self._indexes: OrderedDict[str, int] = OrderedDict()
        self._open_tools: dict[str, tuple[int, NormalizedEntry]] = {}
        self._overrides: dict[str, ToolStatus] = {}
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
        batch: list[WriteOp] = []
        pid = self.process_id
        append_raw = self.raw.append
        normalizer = self._normalizer
        if self._partial_lines:
            index = self._partial_lines.pop(stream, None)
            if index is not None:
                self._end_partial_line(stream, lines[0], index, batch)
                lines = lines[1:]
        for line in lines:
            payload = encode_raw_entry(stream, line)
            batch.append(EntryWrite(pid, "raw", append_raw(payload), payload))
            if normalizer is not None:
                for event in normalizer.feed(stream, line):
                    self._apply(event, batch)
        await self._writer.submit_many(batch)

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
        write = EntryWrite(self.process_id, "raw", index, payload, partial=True)
        await self._writer.submit_many([write])

    def _end_partial_line(
        self, stream: OutputStream, line: str, index: int, batch: list[WriteOp]
    ) -> None:
        payload = encode_raw_entry(stream, line)
        self.raw.replace(index, payload)
        batch.append(EntryWrite(self.process_id, "raw", index, payload))
        if self._normalizer is not None:
            for event in self._normalizer.feed(stream, line):
                self._apply(event, batch)

    def _apply(self, event: NormalizerEvent, batch: list[WriteOp]) -> None:
        if isinstance(event, EntryPatch):
            self._put_entry(event.key, event.entry, batch)
        elif isinstance(event, SessionIdSeen):
            line = encode_legacy_session_id_line(event.agent_session_id)
            batch.append(LegacyLineWrite(self.process_id, line))
            self._spawn_turn_update(self._on_session_id(event.agent_session_id))
        elif isinstance(event, SummarySeen):
            self._spawn_turn_update(self._on_summary(event.summary))

    def _put_entry(self, key: str | None, entry: NormalizedEntry, batch: list[WriteOp]) -> None:
        if key is not None and key in self._overrides:
            entry = with_tool_status(entry, self._overrides[key])
        payload = encode_normalized_entry(entry)
        if key is None:
            self._write_entry(self.normalized.append(payload), payload, batch)
            return
        index = self._indexes.get(key)
        if index is None:
            index = self.normalized.append(payload)
            self._remember(key, index)
            self._write_entry(index, payload, batch)
        else:
            self._indexes.move_to_end(key)
            self.normalized.replace(index, payload)
            self._write_entry(index, payload, batch, replace=True)
        if is_open_tool_call(entry):
            self._open_tools[key] = (index, entry)
        else:
            self._open_tools.pop(key, None)

    def _remember(self, key: str, index: int) -> None:
        self._indexes[key] = index
        if len(self._indexes) > KEYED_ENTRIES_CAPACITY:
            self._indexes.popitem(last=False)
        self._key_added.set()

    def _write_entry(
        self, index: int, payload: str, batch: list[WriteOp], *, replace: bool = False
    ) -> None:
        batch.append(EntryWrite(self.process_id, "normalized", index, payload, replace))

    def _spawn_turn_update(self, update: Awaitable[None]) -> None:
        task = asyncio.ensure_future(update)
        self._spawned_updates += 1
        self._turn_tasks.add(task)
        task.add_done_callback(self._turn_tasks.discard)

    # --- entries written by execlog itself ----------------------------------------------------

    async def add_entry(self, entry: NormalizedEntry, *, raw_line: str | None = None) -> None:
        """An entry execlog adds (start failure, orphan note): normalized, and raw as STDERR."""
        batch: list[WriteOp] = []
        if raw_line is not None:
            payload = encode_raw_entry("stderr", raw_line)
            batch.append(EntryWrite(self.process_id, "raw", self.raw.append(payload), payload))
        self._put_entry(None, entry, batch)
        await self._writer.submit_many(batch)

    def report_write_error(self, reason: str) -> None:
        """The writer dropped a write of this process after a permanent error (issue 9): an
        error entry says so, in both channels. ``finish`` waits for it like for turn updates."""
        if self.raw.finished:
            return
        self._spawn_turn_update(
            self.add_entry(error_message_entry(f"execlog: {reason}"), raw_line=f"execlog: {reason}")
        )

    async def set_tool_status(
        self, key: str, status: ToolStatus, *, wait_seconds: float = 10.0
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
        if status["status"] in _FINAL_OVERRIDES:
            self._overrides[key] = status
        else:
            self._overrides.pop(key, None)
        batch: list[WriteOp] = []
        self._put_entry(key, with_tool_status(self._open_tools[key][1], status), batch)
        await self._writer.submit_many(batch)
        return True

    # --- end of the process -----------------------------------------------------------------

    async def finish(self) -> None:
        """Drain the normalizer, wait for turn updates, commit everything, then send
        ``finished`` on both channels: whoever sees the final status can read all history."""
        batch: list[WriteOp] = []
        if self._normalizer is not None:
            for event in self._normalizer.finish():
                self._apply(event, batch)
        batch.append(LegacyLineWrite(self.process_id, LEGACY_FINISHED_LINE))
        await self._writer.submit_many(batch)
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

"""Following one session from the terminal (`execlog run`, `execlog follow-up`): each of its
processes in the order the server starts them, its output drawn as it streams, its approvals
decided as they come.

Driven by the server's event stream (``GET /api/events``), subscribed before the session or
turn is created so nothing is missed: ``process_updated`` says which process started or ended,
``session_updated`` with ``active`` false says the server's chain is over, ``approval_updated``
brings each tool call that waits. The client knows no chain rules (setup must succeed, no
cleanup after a stop, ...): it follows what the server does. Each source runs in a thread that
feeds one queue; the main thread draws, asks and decides, so a prompt never races a redraw.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterable
from contextlib import closing, nullcontext
from dataclasses import dataclass
from typing import Any, Final, TextIO

from execlog.client import (
    ApprovalInfo,
    ClientError,
    ExeclogClient,
    LogTail,
    ProcessInfo,
    ServerEvent,
    StreamFrame,
)
from execlog.console import LogPrinter
from execlog.protocol import Channel
from execlog.terminal.approvals import ApprovalDesk, ApprovalPolicy
from execlog.terminal.conversation import ConversationView, open_view

__all__ = [
    "EXIT_KILLED",
    "STEP_NAMES",
    "FollowOptions",
    "SessionFollower",
    "exit_code_of",
    "show_conversation",
]

EXIT_KILLED: Final = 130
STEP_NAMES: Final = {
    "setupscript": "setup script",
    "codingagent": "coding agent",
    "script": "command",
    "cleanupscript": "cleanup script",
}
_MAIN_STEPS: Final = frozenset({"codingagent", "script"})
_SUBSCRIBE_TIMEOUT_SECONDS: Final = 30.0
_POLL_SECONDS: Final = 0.2  # how often a blocked wait looks up for Ctrl-C


@dataclass(frozen=True, slots=True)
class FollowOptions:
    normalized: bool = False  # a coding agent's conversation instead of its raw output
    quiet: bool = False  # no "execlog: ..." progress lines
    plain: bool = False  # no live redrawing, colours or spinners, even on a terminal
    approvals: ApprovalPolicy = "explain"


@dataclass(frozen=True, slots=True)
class _Event:
    event: ServerEvent


@dataclass(frozen=True, slots=True)
class _Frame:
    process_id: str
    frame: StreamFrame


@dataclass(frozen=True, slots=True)
class _StreamEnd:
    process_id: str


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


_Item = _Event | _Frame | _StreamEnd | _Failure


class SessionFollower:
    """Call ``subscribe()`` before creating the session or turn, then ``follow()``."""

    def __init__(
        self,
        client: ExeclogClient,
        options: FollowOptions,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
        answers: TextIO | None = None,
    ) -> None:
        self._client = client
        self._options = options
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._items: queue.Queue[_Item] = queue.Queue()
        self._view: ConversationView | None = None
        self._desk = ApprovalDesk(
            client,
            options.approvals,
            err=self._err,
            answers=answers or sys.stdin,
            pause=self._paused_view,
        )
        self._session_id = ""
        self._processes: dict[str, ProcessInfo] = {}  # this session's, in start order
        self._chain_active = True
        self._followed: list[ProcessInfo] = []
        self._current: str | None = None
        self._printer = LogPrinter(self._out, self._err)
        self._earlier: set[str] = set()  # a follow-up's session: processes before our turn
        self._subscribe_error: BaseException | None = None
        self._stream_ended: set[str] = set()
        self._interrupted = False

    # --- public -------------------------------------------------------------------------

    def subscribe(self) -> None:
        """Start reading the event stream; returns once the server has subscribed us."""
        connected = threading.Event()

        def read_events() -> None:
            try:
                for event in self._client.iter_events():
                    if event.kind == "connected":
                        connected.set()
                    else:
                        self._items.put(_Event(event))
                raise ClientError("the server closed its event stream")
            except BaseException as exc:  # handed to the main thread, which reports it
                if connected.is_set():
                    self._items.put(_Failure(exc))
                else:
                    self._subscribe_error = exc
                    connected.set()

        threading.Thread(target=read_events, name="execlog-events", daemon=True).start()
        if not connected.wait(_SUBSCRIBE_TIMEOUT_SECONDS):
            raise ClientError("the server did not open its event stream")
        if self._subscribe_error is not None:
            raise self._subscribe_error

    def follow(self, session_id: str, first: ProcessInfo, earlier: Iterable[str] = ()) -> int:
        """Follow from ``first`` until the session's chain is over; the exit code of `run`.
        ``earlier``: processes of the session before ``first`` (a follow-up's), not followed."""
        self._session_id = session_id
        self._earlier = set(earlier)
        self._processes[first.id] = first
        self._offer_pending_approvals()  # asked for before our subscription saw them
        self._start(first)
        while self._more_to_follow():
            try:
                self._handle(self._wait_item())
                self._advance()
            except KeyboardInterrupt:
                self._interrupt()
        return self._exit_code()

    # --- the loop -----------------------------------------------------------------------

    def _more_to_follow(self) -> bool:
        """A process is followed or due, or the server's chain may still start one."""
        return self._current is not None or self._next_process() is not None or self._chain_active

    def _wait_item(self) -> _Item:
        while True:
            try:
                return self._items.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue

    def _handle(self, item: _Item) -> None:
        if isinstance(item, _Failure):
            raise item.error
        if isinstance(item, _Frame):
            if item.process_id == self._current:
                self._render(item.frame)
        elif isinstance(item, _StreamEnd):
            self._stream_ended.add(item.process_id)
        else:
            self._handle_event(item.event)

    def _handle_event(self, event: ServerEvent) -> None:
        if event.kind == "process_updated":
            self._note_process(ProcessInfo.from_json(event.data["process"]))
        elif event.kind in ("session_created", "session_updated"):
            data = event.data["session"]
            if data.get("id") == self._session_id:
                self._chain_active = bool(data.get("active", False))
                for process in data.get("processes", []):
                    self._note_process(ProcessInfo.from_json(process))
        elif event.kind == "approval_updated":
            approval = ApprovalInfo.from_json(event.data["approval"])
            if approval.execution_process_id in self._processes:
                self._desk.offer(approval)
        elif event.kind == "resync":  # events were lost: read the state again
            session = self._client.get_session(self._session_id)
            self._chain_active = session.active
            for process in session.processes:
                self._note_process(process)
            self._offer_pending_approvals()

    def _note_process(self, process: ProcessInfo) -> None:
        if process.session_id == self._session_id and process.id not in self._earlier:
            self._processes[process.id] = process

    def _advance(self) -> None:
        """Once the current process has sent `finished` and ended, move to the next one."""
        current = self._current
        if current is not None:
            process = self._processes[current]
            if current not in self._stream_ended or process.status == "running":
                return
            self._conclude(process)
        following = self._next_process()
        if following is not None:
            self._start(following)

    def _next_process(self) -> ProcessInfo | None:
        if self._current is not None:
            return None
        followed = {p.id for p in self._followed}
        return next((p for p in self._processes.values() if p.id not in followed), None)

    def _start(self, process: ProcessInfo) -> None:
        self._followed.append(process)
        self._current = process.id
        self._note(f"{_step(process)} process {process.id} (session {self._session_id})")
        channel: Channel = (
            "normalized"
            if self._options.normalized and process.run_reason == "codingagent"
            else "raw"
        )
        self._view = (
            open_view(self._out, plain=self._options.plain) if channel == "normalized" else None
        )
        self._printer = LogPrinter(self._out, self._err)  # indexes start again

        def read_stream() -> None:
            try:
                # after=-1: every entry from the first, also when the process has already
                # ended (memory freed) - the stream then reads them from the database.
                frames = self._client.iter_stream(process.id, channel, after=-1)
                for frame in frames:
                    self._items.put(_Frame(process.id, frame))
                self._items.put(_StreamEnd(process.id))
            except BaseException as exc:
                self._items.put(_Failure(exc))

        threading.Thread(target=read_stream, name="execlog-stream", daemon=True).start()

    def _conclude(self, process: ProcessInfo) -> None:
        if self._view is not None:
            self._view.finish()
            self._view = None
        self._current = None
        self._followed[-1] = process
        if process.run_reason not in _MAIN_STEPS and process.status != "completed":
            code = f" (exit code {process.exit_code})" if process.exit_code else ""
            self._note(f"{_step(process)} {process.status}{code}")

    def _interrupt(self) -> None:
        """First Ctrl-C: stop the running process and go on printing its end; the second one
        leaves at once (`execlog run` exits 130)."""
        if self._interrupted or self._current is None:
            raise KeyboardInterrupt
        self._interrupted = True
        self._note(f"stopping process {self._current} (Ctrl-C again to leave it running)")
        self._client.stop(self._current)

    # --- output ---------------------------------------------------------------------------

    def _render(self, frame: StreamFrame) -> None:
        if self._view is not None:
            self._view.show(frame.entry_index, frame.entry)
        else:
            self._printer.print_frame(frame)

    def _paused_view(self) -> Any:
        return self._view.paused() if self._view is not None else nullcontext()

    def _offer_pending_approvals(self) -> None:
        for approval in self._client.list_approvals():
            if approval.execution_process_id in self._processes:
                self._desk.offer(approval)

    def _note(self, text: str) -> None:
        if not self._options.quiet:
            self._err.write(f"execlog: {text}\n")
            self._err.flush()

    def _exit_code(self) -> int:
        """The main process's code; when it never ran, the step that ended the chain's."""
        mains = [p for p in self._followed if p.run_reason in _MAIN_STEPS]
        if mains:
            return exit_code_of(mains[-1])
        failed = [p for p in self._followed if p.status != "completed"]
        return exit_code_of(failed[0]) if failed else EXIT_KILLED


def _step(process: ProcessInfo) -> str:
    return STEP_NAMES.get(process.run_reason, process.run_reason)


def exit_code_of(process: ProcessInfo) -> int:
    """completed → 0; failed → its exit code (1 when it has none, 128+N for signal N);
    killed → 130."""
    if process.status == "completed":
        return 0
    if process.status == "killed":
        return EXIT_KILLED
    code = process.exit_code
    if code is None or code == 0:
        return 1
    return 128 - code if code < 0 else min(code, 255)


def show_conversation(
    client: ExeclogClient,
    process_id: str,
    history: LogTail,
    view: ConversationView,
    *,
    follow: bool,
) -> None:
    """`execlog logs --normalized`: the history tail, then (``follow``) the live stream until
    ``finished``. The stream restarts at the oldest entry shown, so that a change made between
    the history read and the stream's start still arrives; the view shows each state once."""
    try:
        for item in history.entries:
            view.show(item.entry_index, item.entry)
        if not follow:
            return
        if history.entries:
            after = history.entries[0].entry_index - 1
        else:
            after = -1 if history.newest_index is None else history.newest_index
        frames = client.iter_stream(process_id, "normalized", after=after)
        with closing(frames):
            for frame in frames:
                view.show(frame.entry_index, frame.entry)
    finally:
        view.finish()

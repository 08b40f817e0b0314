"""One child process in its own process group: start it with nothing of the server's but the
three pipes it is given, pump stdout and stderr through line splitters into an async handler
(whose slowness back-pressures the child), wait for its end with every line delivered, and stop
it with everything it started (SIGTERM, then SIGKILL after a grace period; runner/descendants).
A line still without its newline after ``PARTIAL_LINE_DELAY`` goes to a second handler, again
at most that often while it grows, so progress bars are visible live (CONTRACT.md).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, ClassVar, Final, Literal

from execlog.errors import ExeclogError
from execlog.protocol import OutputStream
from execlog.runner.descendants import (
    PROCESS_ID_VARIABLE,
    Descendants,
    read_proc_stat,
    recent_processes,
)
from execlog.runner.lines import LineSplitter

__all__ = [
    "ChildExit",
    "ChildProcess",
    "ChildStartError",
    "OutputHandler",
    "PARTIAL_LINE_DELAY",
    "PartialLineHandler",
]

OutputHandler = Callable[[OutputStream, list[str]], Awaitable[None]]
# Receives the text of the line still being written; the next complete line delivered on that
# stream is its end (or, for a line longer than max_line_bytes, its first piece).
PartialLineHandler = Callable[[OutputStream, str], Awaitable[None]]

# CONTRACT.md: "a line still without its newline after 250 ms is appended as an entry".
PARTIAL_LINE_DELAY: Final = 0.25
_PARTIAL_RECHECK_SECONDS: Final = 0.02


READ_SIZE: Final = 65_536
# After the child exits, a stream that stays silent this long while still open is held by a
# background grandchild: stop reading it so the process can finish (its output so far is kept).
ORPHAN_PIPE_GRACE_SECONDS: Final = 2.0
# After SIGKILL and KILL_WAIT_SECONDS (runner/descendants): how long the pipes may take to
# drain before we stop reading whatever still holds them. Together well under the 1 s that
# `POST …/stop` may take beyond the grace period (issue 10).
DRAIN_AFTER_KILL_SECONDS: Final = 0.3
# How often a running child's descendants are learned, so that one orphaned and re-parented
# between two looks is still known when it must be stopped.
TRACK_INTERVAL_SECONDS: Final = 1.0
_WATCH_INTERVAL: Final = 0.1


class ChildStartError(ExeclogError):
    """The command could not be started; the message says why."""

    status = 400


@dataclass(frozen=True, slots=True)
class ChildExit:
    status: Literal["completed", "failed", "killed"]
    exit_code: int | None


class ChildProcess:
    """A running child. Create with ``await ChildProcess.start(...)``."""

    # Pids of children this process waits for itself: an orphan reaper must leave them alone.
    live_pids: ClassVar[set[int]] = set()

    pid: int
    stdin: asyncio.StreamWriter | None

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        readers: dict[OutputStream, tuple[asyncio.StreamReader, asyncio.ReadTransport]],
        stdin: asyncio.StreamWriter,
        on_output: OutputHandler,
        max_line_bytes: int,
        process_id: str | None,
        on_partial_line: PartialLineHandler | None = None,
    ) -> None:
        self._popen = popen
        self._read_transports = {stream: transport for stream, (_, transport) in readers.items()}
        self._on_output = on_output
        self._on_partial_line = on_partial_line
        self._max_line_bytes = max_line_bytes
        self.pid = popen.pid
        self.stdin = stdin
        self.live_pids.add(self.pid)
        stat = read_proc_stat(self.pid)
        self.start_time = None if stat is None else stat.start_time
        self.descendants = Descendants(self.pid, process_id)
        self._stop_requested = False
        self._stop_task: asyncio.Task[None] | None = None
        self._wait_task: asyncio.Task[ChildExit] | None = None
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pidfd: int | None = None
        self._watch_exit()
        # Loop time since which a pump has been waiting for data, or None while it delivers.
        self._idle_since: dict[OutputStream, float | None] = {"stdout": None, "stderr": None}
        self._pumps: dict[OutputStream, asyncio.Task[None]] = {
            stream: asyncio.create_task(
                self._pump(stream, reader), name=f"child-{self.pid}-{stream}"
            )
            for stream, (reader, _) in readers.items()
        }

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        cwd: str | None,
        env: Mapping[str, str] | None,
        on_output: OutputHandler,
        max_line_bytes: int,
        on_partial_line: PartialLineHandler | None = None,
    ) -> ChildProcess:
        """Start ``argv`` in a new session (own process group) with piped stdin/stdout/stderr.

        ``subprocess.Popen`` closes every other descriptor in the child (uvloop's spawn passed
        on every inheritable one, the listening socket included: issue 10)."""
        if not argv:
            raise ChildStartError("empty command")
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                close_fds=True,
                start_new_session=True,
            )
        except (FileNotFoundError, NotADirectoryError) as exc:
            if cwd is not None and not os.path.isdir(cwd):
                raise ChildStartError(f"working directory not found: {cwd}") from exc
            raise ChildStartError(f"command not found: {argv[0]}") from exc
        except PermissionError as exc:
            if cwd is not None and not os.access(cwd, os.X_OK):
                raise ChildStartError(f"working directory not accessible: {cwd}") from exc
            raise ChildStartError(f"permission denied: {argv[0]}") from exc
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ChildStartError(f"cannot start {argv[0]}: {reason}") from exc
        loop = asyncio.get_running_loop()
        assert popen.stdin is not None and popen.stdout is not None and popen.stderr is not None
        readers: dict[OutputStream, tuple[asyncio.StreamReader, asyncio.ReadTransport]] = {}
        pipes: tuple[tuple[OutputStream, IO[bytes]], ...] = (
            ("stdout", popen.stdout),
            ("stderr", popen.stderr),
        )
        for stream, pipe in pipes:
            reader = asyncio.StreamReader(limit=READ_SIZE, loop=loop)
            transport, _ = await loop.connect_read_pipe(
                lambda r=reader: asyncio.StreamReaderProtocol(r, loop=loop),  # type: ignore[misc]
                pipe,
            )
            readers[stream] = (reader, transport)
        stdin = await _connect_stdin(loop, popen.stdin)
        process_id = None if env is None else env.get(PROCESS_ID_VARIABLE)
        return cls(popen, readers, stdin, on_output, max_line_bytes, process_id, on_partial_line)

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> ChildExit:
        """The exit, once the child has exited and both streams are drained and delivered.

        Raises what ``on_output`` raised (the child is then killed, since nobody reads it).
        """
        if self._wait_task is None:
            self._wait_task = asyncio.create_task(self._wait_for_end())
        return await asyncio.shield(self._wait_task)

    async def stop(self, grace_seconds: float) -> None:
        """SIGTERM the child and every descendant, SIGKILL them after ``grace_seconds``, then
        stop reading pipes that something unkillable still holds. Idempotent; returns within
        about ``grace_seconds`` + 0.6 s whatever the children do."""
        self._stop_requested = True
        if self._stop_task is None:
            self._stop_task = asyncio.create_task(self._terminate(grace_seconds))
        await asyncio.shield(self._stop_task)

    # --- internals ------------------------------------------------------------------------

    def _watch_exit(self) -> None:
        """Resolve ``_exited`` when the child exits: a pidfd the loop watches (Linux ≥ 5.3),
        else the watch tick of ``_wait_for_end`` polls."""
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            return
        asyncio.get_running_loop().add_reader(self._pidfd, self._poll_exit)

    def _poll_exit(self) -> bool:
        code = self._popen.poll()
        if code is None:
            return False
        self.live_pids.discard(self.pid)
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if not self._exited.done():
            self._exited.set_result(code)
        return True

    async def _pump(self, stream: OutputStream, reader: asyncio.StreamReader) -> None:
        splitter = LineSplitter(self._max_line_bytes)
        loop = asyncio.get_running_loop()
        on_partial_line = self._on_partial_line
        # Loop time at which the unterminated tail is (again) to be shown; None when not due.
        partial_due: float | None = None
        partial_shown = False  # the current unterminated line has been shown already
        rechecked = False
        try:
            while True:
                if self._idle_since[stream] is None:
                    self._idle_since[stream] = loop.time()
                if partial_due is None:
                    chunk = await reader.read(READ_SIZE)
                else:
                    try:
                        # StreamReader.read is cancellation-safe: data stays in its buffer.
                        async with asyncio.timeout_at(partial_due):
                            chunk = await reader.read(READ_SIZE)
                    except TimeoutError:
                        chunk = None
                if chunk is not None:
                    self._idle_since[stream] = None
                    if not chunk:
                        break
                    lines = splitter.feed(chunk)
                    if lines:
                        partial_shown = False
                        partial_due = None
                        await self._on_output(stream, lines)
                    if on_partial_line is None or not splitter.pending_bytes:
                        partial_due = None
                        continue
                    if partial_due is None:
                        partial_due = loop.time() + PARTIAL_LINE_DELAY
                        rechecked = False
                    if loop.time() < partial_due:
                        continue  # a steady flow never times out the read: check here too
                assert on_partial_line is not None
                if not rechecked:
                    # One more short read first: on a loaded machine the rest of the line may
                    # sit in the pipe while we were not scheduled. Only a line that is really
                    # still unfinished is shown (and frames are not doubled for nothing).
                    rechecked = True
                    partial_due = loop.time() + _PARTIAL_RECHECK_SECONDS
                    continue
                partial_due = None
                text = splitter.pending_text()
                if text or partial_shown:
                    await on_partial_line(stream, text)
                    partial_shown = True
            lines = splitter.finish()
            if lines:
                await self._on_output(stream, lines)
        except Exception:
            # Nobody will read this child any more: do not leave it blocked on a full pipe.
            self._kill_known()
            raise
        finally:
            self._idle_since[stream] = None
            # uvloop keeps a read pipe open after EOF (the protocol asks for half-close):
            # close it, or the loop cannot close.
            self._stop_reading(stream)

    async def _wait_for_end(self) -> ChildExit:
        pending: set[asyncio.Future[Any]] = {self._exited, *self._pumps.values()}
        loop = asyncio.get_running_loop()
        next_track = loop.time() + TRACK_INTERVAL_SECONDS
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=_WATCH_INTERVAL, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                error = None if task is self._exited or task.cancelled() else task.exception()
                if error is not None:
                    await self._abandon()
                    raise error
            if self._poll_exit():
                self._close_pipes_after_exit()
            elif loop.time() >= next_track and not self._stop_requested:
                next_track = loop.time() + TRACK_INTERVAL_SECONDS
                self.descendants.refresh(await recent_processes(TRACK_INTERVAL_SECONDS))
        code = self._exited.result()
        if self._stop_requested:
            return ChildExit("killed", code)
        return ChildExit("completed" if code == 0 else "failed", code)

    async def _abandon(self) -> None:
        """A handler failed: kill the group and let the remaining pump and the exit finish."""
        self._kill_known()
        for pump in self._pumps.values():
            if not pump.done():
                pump.cancel()
        while not self._poll_exit():
            await asyncio.sleep(_WATCH_INTERVAL)
        await asyncio.gather(*self._pumps.values(), return_exceptions=True)

    def _close_pipes_after_exit(self) -> None:
        """The child has exited: close our end of its stdin, and stop reading a stream that a
        background grandchild keeps open and silent."""
        if self.stdin is not None and not self.stdin.is_closing():
            self.stdin.close()
        now = asyncio.get_running_loop().time()
        for stream, idle_since in self._idle_since.items():
            if idle_since is None or now - idle_since < ORPHAN_PIPE_GRACE_SECONDS:
                continue
            self._stop_reading(stream)

    def _stop_reading(self, stream: OutputStream) -> None:
        transport = self._read_transports[stream]
        if not transport.is_closing():
            transport.close()

    async def _terminate(self, grace_seconds: float) -> None:
        await self.descendants.terminate(grace_seconds)
        # Whatever still holds a pipe (a process we may not signal, one stuck in the kernel)
        # must not hold the stop: give the pipes a moment to drain, then stop reading them.
        loop = asyncio.get_running_loop()
        drain_deadline = loop.time() + DRAIN_AFTER_KILL_SECONDS
        while loop.time() < drain_deadline and not all(p.done() for p in self._pumps.values()):
            await asyncio.sleep(0.02)
        for stream in self._pumps:
            self._stop_reading(stream)

    def _kill_known(self) -> None:
        """SIGKILL what is known without a scan (the handler failed: act now)."""
        self.descendants.signal(self.descendants.known(), signal.SIGKILL)


async def _connect_stdin(loop: asyncio.AbstractEventLoop, pipe: IO[bytes]) -> asyncio.StreamWriter:
    protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=loop), loop=loop)
    transport, _ = await loop.connect_write_pipe(lambda: protocol, pipe)
    return asyncio.StreamWriter(transport, protocol, None, loop)

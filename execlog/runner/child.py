"""One child process in its own process group: start it, pump stdout and stderr through line
splitters into an async handler (whose slowness back-pressures the child), wait for its end with
every line delivered, and stop the whole group (SIGTERM, then SIGKILL after a grace period).
A line still without its newline after ``PARTIAL_LINE_DELAY`` goes to a second handler, again
at most that often while it grows, so progress bars are visible live (CONTRACT.md).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from execlog.errors import ExeclogError
from execlog.protocol import OutputStream
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
_WATCH_INTERVAL: Final = 0.1
_STREAM_FDS: Final[dict[OutputStream, int]] = {"stdout": 1, "stderr": 2}


class ChildStartError(ExeclogError):
    """The command could not be started; the message says why."""

    status = 400


@dataclass(frozen=True, slots=True)
class ChildExit:
    status: Literal["completed", "failed", "killed"]
    exit_code: int | None


class ChildProcess:
    """A running child. Create with ``await ChildProcess.start(...)``."""

    pid: int
    stdin: asyncio.StreamWriter | None

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        process: asyncio.subprocess.Process,
        on_output: OutputHandler,
        max_line_bytes: int,
        on_partial_line: PartialLineHandler | None = None,
    ) -> None:
        self._transport = transport
        self._process = process
        self._on_output = on_output
        self._on_partial_line = on_partial_line
        self._max_line_bytes = max_line_bytes
        self.pid = process.pid
        self.stdin = process.stdin
        self._stop_requested = False
        self._stop_task: asyncio.Task[None] | None = None
        self._wait_task: asyncio.Task[ChildExit] | None = None
        # Loop time since which a pump has been waiting for data, or None while it delivers.
        self._idle_since: dict[OutputStream, float | None] = {"stdout": None, "stderr": None}
        self._pumps: dict[OutputStream, asyncio.Task[None]] = {}
        streams: tuple[tuple[OutputStream, asyncio.StreamReader | None], ...] = (
            ("stdout", process.stdout),
            ("stderr", process.stderr),
        )
        for stream, reader in streams:
            assert reader is not None
            self._pumps[stream] = asyncio.create_task(
                self._pump(stream, reader), name=f"child-{self.pid}-{stream}"
            )

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
        """Start ``argv`` in a new session (own process group) with piped stdin/stdout/stderr."""
        if not argv:
            raise ChildStartError("empty command")
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: asyncio.subprocess.SubprocessStreamProtocol(limit=READ_SIZE, loop=loop),
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=dict(env) if env is not None else None,
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
        process = asyncio.subprocess.Process(transport, protocol, loop)
        return cls(transport, process, on_output, max_line_bytes, on_partial_line)

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> ChildExit:
        """The exit, once the child has exited and both streams are drained and delivered.

        Raises what ``on_output`` raised (the child is then killed, since nobody reads it).
        """
        if self._wait_task is None:
            self._wait_task = asyncio.create_task(self._wait_for_end())
        return await asyncio.shield(self._wait_task)

    async def stop(self, grace_seconds: float) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_seconds``. Idempotent."""
        self._stop_requested = True
        if self._stop_task is None:
            self._stop_task = asyncio.create_task(self._terminate_group(grace_seconds))
        await asyncio.shield(self._stop_task)

    # --- internals ------------------------------------------------------------------------

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
            self._signal_group(signal.SIGKILL)
            raise
        finally:
            self._idle_since[stream] = None

    async def _wait_for_end(self) -> ChildExit:
        exit_task = asyncio.ensure_future(self._process.wait())
        pending: set[asyncio.Future[Any]] = {exit_task, *self._pumps.values()}
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=_WATCH_INTERVAL, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                error = None if task is exit_task or task.cancelled() else task.exception()
                if error is not None:
                    await self._abandon(exit_task)
                    raise error
            # asyncio reports the exit only once every pipe is closed, and a background
            # grandchild may hold them open: the transport knows the exit code first.
            if self._transport.get_returncode() is not None:
                self._close_pipes_after_exit()
        code = exit_task.result()
        if self._stop_requested:
            return ChildExit("killed", code)
        return ChildExit("completed" if code == 0 else "failed", code)

    async def _abandon(self, exit_task: asyncio.Future[int]) -> None:
        """A handler failed: kill the group and let the remaining pump and the exit finish."""
        self._signal_group(signal.SIGKILL)
        for pump in self._pumps.values():
            if not pump.done():
                pump.cancel()
        await asyncio.gather(exit_task, *self._pumps.values(), return_exceptions=True)

    def _close_pipes_after_exit(self) -> None:
        """The child has exited: close our end of its stdin, and stop reading a stream that a
        background grandchild keeps open and silent."""
        stdin = self._transport.get_pipe_transport(0)
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        now = asyncio.get_running_loop().time()
        for stream, idle_since in self._idle_since.items():
            if idle_since is None or now - idle_since < ORPHAN_PIPE_GRACE_SECONDS:
                continue
            pipe = self._transport.get_pipe_transport(_STREAM_FDS[stream])
            if pipe is not None and not pipe.is_closing():
                pipe.close()

    async def _terminate_group(self, grace_seconds: float) -> None:
        self._signal_group(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        # Grace ends early once every member of the group is gone (leader and grandchildren).
        while loop.time() < deadline and self._group_alive():
            await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
        self._signal_group(signal.SIGKILL)

    def _group_alive(self) -> bool:
        if self._process.returncode is None:
            return True
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _signal_group(self, signum: signal.Signals) -> None:
        # The child called setsid(): its pid is its process group id.
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

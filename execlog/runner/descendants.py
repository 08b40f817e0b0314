"""Every process a child started, also those that left its process group and session
(``setsid()``) or lost their parent, so that stopping a child stops all of them (issue 10).

Linux only, from ``/proc``: a process is a descendant when its parent chain reaches the child
or a process already known as a descendant (start times guard against reused pids), or when its
environment carries the child's ``EXECLOG_PROCESS_ID``. ``execlog serve`` makes the server a
child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so an orphaned descendant is re-parented to
the server rather than to init and stays in reach; the server then reaps the ones that exit.
docs/reliability.md, "Stop".
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from execlog.storage.database import run_in_thread

__all__ = [
    "PROCESS_ID_VARIABLE",
    "Descendants",
    "ProcStat",
    "become_child_subreaper",
    "is_child_subreaper",
    "reap_orphans_periodically",
    "read_boot_id",
    "read_proc_stat",
    "recent_processes",
    "reap_orphans",
    "scan_processes",
]

_PR_SET_CHILD_SUBREAPER: Final = 36  # <linux/prctl.h>
_PR_GET_CHILD_SUBREAPER: Final = 37
REAP_INTERVAL_SECONDS: Final = 2.0
# After SIGKILL, how long the survivors may take to vanish (well under the 1 s that
# `POST …/stop` may take beyond the grace period).
KILL_WAIT_SECONDS: Final = 0.3
_TERM_POLL_SECONDS: Final = 0.1
# Environment variable every child gets (the supervisor sets it); descendants inherit it.
PROCESS_ID_VARIABLE: Final = "EXECLOG_PROCESS_ID"


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` that identify a process and its family."""

    pid: int
    state: str
    ppid: int
    pgid: int
    sid: int
    start_time: int  # clock ticks after boot: with the pid, names one process for good

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")


def read_proc_stat(pid: int) -> ProcStat | None:
    """The process's stat fields, or None when it does not exist (any more)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ")".
    fields = data[data.rindex(b")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=fields[0].decode("ascii", "replace"),
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        start_time=int(fields[19]),
    )


def scan_processes() -> dict[int, ProcStat]:
    """Every process this one can see (a few ms for a few hundred: call it off the loop)."""
    table: dict[int, ProcStat] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = read_proc_stat(int(name))
            if stat is not None:
                table[stat.pid] = stat
    return table


class _SharedScan:
    """One scan of /proc serves every running child's periodic tracking: with 20 agents, one
    scan a second instead of twenty (a scan costs ~10 ms for ~150 processes here)."""

    table: dict[int, ProcStat] = {}
    taken_at = -1.0
    pending: asyncio.Future[dict[int, ProcStat]] | None = None


async def recent_processes(max_age: float) -> dict[int, ProcStat]:
    """A process table at most ``max_age`` seconds old (shared by concurrent callers)."""
    loop = asyncio.get_running_loop()
    if 0 <= loop.time() - _SharedScan.taken_at <= max_age:  # (another loop's clock: rescan)
        return _SharedScan.table
    if _SharedScan.pending is None or _SharedScan.pending.get_loop() is not loop:
        _SharedScan.pending = asyncio.ensure_future(run_in_thread(scan_processes))
    pending = _SharedScan.pending
    table = await asyncio.shield(pending)
    if _SharedScan.pending is pending:
        _SharedScan.table, _SharedScan.taken_at, _SharedScan.pending = table, loop.time(), None
    return table


def read_boot_id() -> str:
    """This boot's id: pids and start times are only comparable within one boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return ""


def become_child_subreaper() -> bool:
    """Orphaned descendants of this process are re-parented to it (Linux ≥ 3.4)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def is_child_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        flag = ctypes.c_int(0)
        if int(libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)) != 0:
            return False
    except (OSError, AttributeError):
        return False
    return flag.value != 0


async def reap_orphans_periodically(keep: Callable[[], Iterable[int]]) -> None:
    """A subreaper's duty, until cancelled: every few seconds, collect orphans that ended.
    ``keep()`` is read on the event loop right before reaping, so a child started meanwhile
    is never taken from the code that waits for it."""
    while True:
        await asyncio.sleep(REAP_INTERVAL_SECONDS)
        table = await run_in_thread(scan_processes)
        reap_orphans(table, keep())


def reap_orphans(table: dict[int, ProcStat], keep: Iterable[int]) -> int:
    """Collect the exit of re-parented orphans that ended (a subreaper must, or they stay
    zombies); ``keep`` are the children the event loop waits for itself."""
    kept = set(keep)
    me = os.getpid()
    reaped = 0
    for stat in table.values():
        if stat.ppid == me and not stat.alive and stat.pid not in kept:
            try:
                if os.waitpid(stat.pid, os.WNOHANG)[0] == stat.pid:
                    reaped += 1
            except ChildProcessError:
                pass
    return reaped


class Descendants:
    """The processes of one child: the child itself and everything it started."""

    def __init__(
        self, root: int, process_id: str | None, *, expected_start_time: int | None = None
    ) -> None:
        """``expected_start_time``: the root's start time as stored at spawn (an orphan of a
        crashed server); when ``/proc`` now names another process under that pid, only the
        processes carrying ``process_id`` in their environment are ours."""
        self.root = root
        self._tag = None if process_id is None else f"{PROCESS_ID_VARIABLE}={process_id}".encode()
        root_stat = read_proc_stat(root)
        if (
            expected_start_time is not None
            and root_stat is not None
            and root_stat.start_time != expected_start_time
        ):
            root_stat = None
            self.root = 0  # the pid was reused: neither it nor its group is ours
        # pid -> start time of every process known to belong to the child.
        self._members: dict[int, int] = {} if root_stat is None else {root: root_stat.start_time}
        self._seen_root = root_stat is not None
        self._root_start = None if root_stat is None else root_stat.start_time

    def refresh(
        self, table: dict[int, ProcStat], *, by_environment: bool = False
    ) -> list[ProcStat]:
        """Learn new descendants from ``table`` (with ``by_environment``, also the processes
        that carry the child's id, e.g. a double-forked daemon re-parented elsewhere); return
        the ones alive now, the child first."""
        members = self._members
        # Forget members that ended, or whose pid now names another process.
        for pid, start in list(members.items()):
            stat = table.get(pid)
            if stat is None or stat.start_time != start or not stat.alive:
                del members[pid]
        root = table.get(self.root) if self.root else None
        if self.root not in members and root is not None and root.alive and not self._seen_root:
            members[self.root] = root.start_time  # started after __init__ read /proc
            self._root_start = root.start_time
        self._seen_root = True
        if self._root_start is not None and self.root:
            # The child's process group and session, also after the child exited: a pid in use
            # as a group or session id is not reused, and a later one starts later.
            for stat in table.values():
                if (
                    stat.alive
                    and self.root in (stat.pgid, stat.sid)
                    and stat.start_time >= self._root_start
                ):
                    members.setdefault(stat.pid, stat.start_time)
        pending = list(members)
        if by_environment and self._tag is not None:
            for stat in table.values():
                if stat.alive and stat.pid not in members and self._carries_tag(stat.pid):
                    members[stat.pid] = stat.start_time
                    pending.append(stat.pid)
        children: dict[int, list[ProcStat]] = {}
        for stat in table.values():
            if stat.alive:
                children.setdefault(stat.ppid, []).append(stat)
        while pending:
            for stat in children.get(pending.pop(), ()):
                if stat.pid not in members:
                    members[stat.pid] = stat.start_time
                    pending.append(stat.pid)
        return sorted((table[pid] for pid in members), key=lambda s: s.pid != self.root)

    async def refresh_now(self, *, by_environment: bool = False) -> list[ProcStat]:
        table = await run_in_thread(scan_processes)
        return self.refresh(table, by_environment=by_environment)

    async def terminate(self, grace_seconds: float) -> None:
        """SIGTERM every descendant (and those forked meanwhile), SIGKILL what is left after
        ``grace_seconds`` (sooner once all are gone), then wait at most ``KILL_WAIT_SECONDS``
        for them to vanish."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        alive = await self.refresh_now(by_environment=True)
        terminated: set[tuple[int, int]] = set()
        while alive:
            fresh = [stat for stat in alive if (stat.pid, stat.start_time) not in terminated]
            self.signal(fresh, signal.SIGTERM)
            terminated.update((stat.pid, stat.start_time) for stat in fresh)
            if loop.time() >= deadline:
                break
            await asyncio.sleep(min(_TERM_POLL_SECONDS, max(0.0, deadline - loop.time())))
            alive = await self.refresh_now(by_environment=True)
        kill_deadline = loop.time() + KILL_WAIT_SECONDS
        while alive and loop.time() < kill_deadline:
            self.signal(alive, signal.SIGKILL)
            await asyncio.sleep(0.02)
            alive = await self.refresh_now(by_environment=True)

    def known(self) -> list[ProcStat]:
        """The members known so far that still run, without a scan of /proc."""
        known = []
        for pid, start in self._members.items():
            stat = read_proc_stat(pid)
            if stat is not None and stat.start_time == start and stat.alive:
                known.append(stat)
        return known

    def signal(self, alive: list[ProcStat], signum: signal.Signals) -> None:
        """Signal each process that is still the one we recorded (a reused pid never is),
        and the child's process group."""
        for stat in alive:
            current = read_proc_stat(stat.pid)
            if current is None or current.start_time != stat.start_time:
                continue
            try:
                os.kill(stat.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass
        if self.root and self._root_start is not None:
            try:
                os.killpg(self.root, signum)  # the child called setsid(): its pid is its group
            except (ProcessLookupError, PermissionError):
                pass

    def _carries_tag(self, pid: int) -> bool:
        assert self._tag is not None
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                return self._tag in file.read().split(b"\0")
        except OSError:
            return False

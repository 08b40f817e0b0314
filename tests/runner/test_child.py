"""ChildProcess with real children: output capture, exit statuses, start errors, stopping the
whole process group, and streams held open by background grandchildren."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from execlog.protocol import OutputStream
from execlog.runner import child as child_module
from execlog.runner.child import ChildProcess, ChildStartError

SCRIPTS = Path(__file__).parent / "scripts"


class Collector:
    """An output handler that records every delivered line per stream."""

    def __init__(self) -> None:
        self.lines: dict[OutputStream, list[str]] = {"stdout": [], "stderr": []}
        self.calls = 0
        self.changed = asyncio.Event()

    async def __call__(self, stream: OutputStream, lines: list[str]) -> None:
        self.calls += 1
        self.lines[stream].extend(lines)
        self.changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def start_script(
    name: str, *args: str, collector: Collector, max_line_bytes: int = 1_048_576, **kwargs: str
) -> ChildProcess:
    return await ChildProcess.start(
        [sys.executable, str(SCRIPTS / name), *args],
        cwd=kwargs.get("cwd"),
        env=None,
        on_output=collector,
        max_line_bytes=max_line_bytes,
    )


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie nobody reaps (PID 1 in a container) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


async def wait_until_gone(pid: int, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while process_alive(pid):
            await asyncio.sleep(0.02)


async def test_stdout_and_stderr_are_captured_and_exit_zero_completes() -> None:
    collector = Collector()
    child = await start_script(
        "emit.py", "out:first", "err:warning", "out:second", collector=collector
    )
    result = await child.wait()
    assert result.status == "completed"
    assert result.exit_code == 0
    assert collector.lines == {"stdout": ["first", "second"], "stderr": ["warning"]}


async def test_non_zero_exit_fails_with_its_code() -> None:
    collector = Collector()
    child = await start_script("emit.py", "--exit", "3", "err:boom", collector=collector)
    result = await child.wait()
    assert (result.status, result.exit_code) == ("failed", 3)
    assert collector.lines["stderr"] == ["boom"]


async def test_wait_can_be_called_twice() -> None:
    collector = Collector()
    child = await start_script("emit.py", "out:x", collector=collector)
    first, second = await asyncio.gather(child.wait(), child.wait())
    assert first == second
    assert await child.wait() == first


async def test_missing_command_raises_a_clear_start_error() -> None:
    with pytest.raises(ChildStartError, match="command not found: no-such-command-xyz"):
        await ChildProcess.start(
            ["no-such-command-xyz", "--flag"],
            cwd=None,
            env=None,
            on_output=Collector(),
            max_line_bytes=1024,
        )


async def test_missing_working_directory_raises_a_start_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ChildStartError, match="working directory not found"):
        await ChildProcess.start(
            [sys.executable, "-c", "pass"],
            cwd=str(missing),
            env=None,
            on_output=Collector(),
            max_line_bytes=1024,
        )


async def test_non_executable_file_raises_permission_error(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    with pytest.raises(ChildStartError, match="permission denied"):
        await ChildProcess.start(
            [str(script)], cwd=None, env=None, on_output=Collector(), max_line_bytes=1024
        )


async def test_empty_argv_is_refused() -> None:
    with pytest.raises(ChildStartError, match="empty command"):
        await ChildProcess.start([], cwd=None, env=None, on_output=Collector(), max_line_bytes=64)


async def test_environment_and_cwd_reach_the_child(tmp_path: Path) -> None:
    collector = Collector()
    child = await ChildProcess.start(
        [sys.executable, "-c", "import os; print(os.getcwd()); print(os.environ['DEMO_VALUE'])"],
        cwd=str(tmp_path),
        env={**os.environ, "DEMO_VALUE": "42"},
        on_output=collector,
        max_line_bytes=1024,
    )
    assert (await child.wait()).status == "completed"
    assert collector.lines["stdout"] == [os.path.realpath(tmp_path), "42"]


async def test_stdin_is_writable() -> None:
    collector = Collector()
    child = await start_script("emit.py", "echo-stdin", collector=collector)
    assert child.stdin is not None
    child.stdin.write(b"hello\nworld\n")
    await child.stdin.drain()
    child.stdin.close()
    assert (await child.wait()).status == "completed"
    assert collector.lines["stdout"] == ["echo hello", "echo world"]


async def test_invalid_utf8_crlf_and_missing_final_newline() -> None:
    collector = Collector()
    raw = b"bad \xff byte\r\nwindows\r\n" + "caf\u00e9".encode() + b"\nno newline"
    child = await start_script("emit.py", "rawhex:" + raw.hex(), collector=collector)
    assert (await child.wait()).status == "completed"
    assert collector.lines["stdout"] == ["bad \ufffd byte", "windows", "café", "no newline"]


async def test_chunk_boundaries_and_long_lines(tmp_path: Path) -> None:
    lines = [f"line {n} " + "é→" * (n % 50) for n in range(2000)] + ["L" * 5000]
    data = ("\n".join(lines) + "\n").encode()
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    collector = Collector()
    child = await start_script(
        "chunked_writer.py",
        str(source),
        "1",
        "7",
        "300",
        "4096",
        "13",
        collector=collector,
        max_line_bytes=1000,
    )
    assert (await child.wait()).status == "completed"
    received = collector.lines["stdout"]
    assert received[:2000] == lines[:2000]
    assert received[2000:] == ["L" * 1000] * 5


async def test_stop_kills_the_group_including_grandchildren() -> None:
    collector = Collector()
    child = await start_script("spawn_grandchild.py", "--stay", collector=collector)
    await collector.wait_for(lambda: bool(collector.lines["stdout"]))
    grandchild_pid = int(collector.lines["stdout"][0].split()[1])
    assert process_alive(grandchild_pid)
    await child.stop(grace_seconds=5)
    result = await child.wait()
    assert result.status == "killed"
    assert result.exit_code == -15
    await wait_until_gone(grandchild_pid)


async def test_stop_escalates_to_sigkill_after_grace() -> None:
    collector = Collector()
    child = await start_script("emit.py", "--ignore-term", "--sleep", collector=collector)
    await collector.wait_for(lambda: collector.lines["stdout"] == ["ready"])
    await child.stop(grace_seconds=0.3)
    result = await child.wait()
    assert (result.status, result.exit_code) == ("killed", -9)


async def test_stop_is_idempotent_and_safe_after_exit() -> None:
    collector = Collector()
    child = await start_script("emit.py", "--sleep", collector=collector)
    await collector.wait_for(lambda: collector.lines["stdout"] == ["ready"])
    await asyncio.gather(child.stop(5), child.stop(5))
    await child.stop(5)
    assert (await child.wait()).status == "killed"

    finished = await start_script("emit.py", "out:done", collector=Collector())
    assert (await finished.wait()).status == "completed"
    await finished.stop(1)  # already exited: no error


async def test_background_grandchild_holding_stdout_does_not_block_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(child_module, "ORPHAN_PIPE_GRACE_SECONDS", 0.2)
    collector = Collector()
    child = await start_script("spawn_grandchild.py", "--leave", collector=collector)
    try:
        result = await asyncio.wait_for(child.wait(), timeout=10)
        assert (result.status, result.exit_code) == ("completed", 0)
        assert collector.lines["stdout"][0].startswith("grandchild ")
    finally:
        await child.stop(1)
    grandchild_pid = int(collector.lines["stdout"][0].split()[1])
    await wait_until_gone(grandchild_pid)


async def test_failing_handler_kills_the_child_and_surfaces_the_error() -> None:
    async def broken(stream: OutputStream, lines: list[str]) -> None:
        raise RuntimeError("consumer broke")

    child = await ChildProcess.start(
        [sys.executable, str(SCRIPTS / "emit.py"), "out:x", "--sleep"],
        cwd=None,
        env=None,
        on_output=broken,
        max_line_bytes=1024,
    )
    with pytest.raises(RuntimeError, match="consumer broke"):
        await asyncio.wait_for(child.wait(), timeout=10)
    await wait_until_gone(child.pid)


async def test_slow_handler_still_receives_everything() -> None:
    received: list[str] = []

    async def slow(stream: OutputStream, lines: list[str]) -> None:
        received.extend(lines)
        await asyncio.sleep(0)  # yields to the loop per chunk, like a consumer awaiting a queue

    child = await ChildProcess.start(
        [sys.executable, "-c", "import sys\nfor i in range(200000): sys.stdout.write(f'{i}\\n')"],
        cwd=None,
        env=None,
        on_output=slow,
        max_line_bytes=1024,
    )
    assert (await child.wait()).status == "completed"
    assert received == [str(i) for i in range(200_000)]


async def test_a_line_without_newline_is_shown_after_the_delay_then_ended() -> None:
    """A progress bar: shown once it waits PARTIAL_LINE_DELAY for its newline, shown again as it
    grows, and its end is delivered as an ordinary line."""
    collector = Collector()
    partials: list[tuple[float, str]] = []
    loop = asyncio.get_running_loop()

    async def on_partial(stream: OutputStream, text: str) -> None:
        assert stream == "stdout"
        partials.append((loop.time(), text))
        collector.changed.set()

    code = (
        "import sys, time\n"
        "print('head', flush=True)\n"
        "sys.stdout.write('\\r 10%'); sys.stdout.flush()\n"
        "sys.stdin.readline()\n"  # released by the test
        "sys.stdout.write('\\r 20%'); sys.stdout.flush()\n"
        "sys.stdin.readline()\n"
        "sys.stdout.write('\\r100%\\n'); sys.stdout.flush()\n"
    )
    child = await ChildProcess.start(
        [sys.executable, "-c", code],
        cwd=None,
        env=None,
        on_output=collector,
        max_line_bytes=1024,
        on_partial_line=on_partial,
    )
    try:
        await collector.wait_for(lambda: collector.lines["stdout"] == ["head"])
        started = loop.time()
        await collector.wait_for(lambda: len(partials) == 1)
        assert partials[0][1] == "\r 10%"
        # Not before the delay (measured from after "head" arrived, so a lower bound).
        assert partials[0][0] - started >= child_module.PARTIAL_LINE_DELAY * 0.8
        assert child.stdin is not None
        child.stdin.write(b"\n")
        await collector.wait_for(lambda: len(partials) == 2)
        assert partials[1][1] == "\r 10%\r 20%"
        child.stdin.write(b"\n")
        exit_ = await asyncio.wait_for(child.wait(), timeout=10)
        assert exit_.status == "completed"
        assert collector.lines["stdout"] == ["head", "\r 10%\r 20%\r100%"]
        assert len(partials) == 2
    finally:
        await child.stop(1)


async def test_a_steady_flow_without_newline_is_still_shown() -> None:
    """Bytes that keep coming never time out the read: the delay is checked after reads too."""
    partials: list[str] = []

    async def on_partial(stream: OutputStream, text: str) -> None:
        partials.append(text)

    code = (
        "import sys, time\n"
        "end = time.monotonic() + 1.0\n"
        "while time.monotonic() < end:\n"
        "    sys.stdout.write('.'); sys.stdout.flush(); time.sleep(0.01)\n"
        "print()\n"
    )
    collector = Collector()
    child = await ChildProcess.start(
        [sys.executable, "-c", code],
        cwd=None,
        env=None,
        on_output=collector,
        max_line_bytes=1 << 20,
        on_partial_line=on_partial,
    )
    assert (await asyncio.wait_for(child.wait(), timeout=10)).status == "completed"
    # ~1 s of dots, shown at most every PARTIAL_LINE_DELAY: 2 to 4 growing previews.
    assert 2 <= len(partials) <= 5, partials
    assert all(set(text) == {"."} for text in partials)
    assert [len(t) for t in partials] == sorted(len(t) for t in partials)
    assert collector.lines["stdout"][0].startswith(partials[-1])

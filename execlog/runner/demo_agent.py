"""The built-in demo agent (executor ``demo``, ``execlog demo-agent``): a real child process
that needs no account and prints Claude Code's stream-json — streamed thinking and text, tool
calls with results, one tool call that asks the execlog server for approval, a result line.

Output is deterministic for a ``--seed`` (no clock in the content). ``--bulk-bytes`` adds about
that many bytes of extra lines for load runs, limited only by ``--rate``; ``--pace`` delays the
scripted lines. Approval, like a real agent's hook: POST /api/approvals, then GET
/api/approvals/{id}/wait until decided (env EXECLOG_SERVER_URL, EXECLOG_PROCESS_ID and
optionally EXECLOG_AUTH_TOKEN); without a server URL the call proceeds as approved.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from typing import IO, Any, Final

import msgspec

__all__ = ["DemoOptions", "main", "parse_options"]

MODEL: Final = "execlog-demo-1"
TOOLS: Final = ["Task", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "TodoWrite", "WebFetch"]
_FLUSH_BYTES: Final = 256 * 1024
_MODULES: Final = ["parser", "scheduler", "cache", "router", "billing", "exporter", "retry", "auth"]
_WORDS: Final = (
    "the log line stream entry index process agent history page cursor tail event replace "
    "append frame buffer memory writer batch commit session turn output tool result status"
).split()
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class DemoOptions:
    prompt: str
    resume: str | None
    seed: int
    turns: int
    pace: float
    bulk_bytes: int
    line_bytes: int
    rate: float
    approval: bool


def parse_options(argv: list[str]) -> DemoOptions:
    parser = argparse.ArgumentParser(
        prog="execlog demo-agent",
        description="A built-in agent that prints Claude Code stream-json (for demos and load).",
    )
    parser.add_argument("-p", "--print", dest="prompt", required=True, help="the prompt")
    parser.add_argument("--output-format", default="stream-json", choices=["stream-json"])
    parser.add_argument("--verbose", action="store_true", help="accepted, like Claude Code's")
    parser.add_argument("--include-partial-messages", action="store_true", help="accepted")
    parser.add_argument("--resume", metavar="SESSION_ID", help="continue this session")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same output")
    parser.add_argument("--turns", type=_at_least(1, int), default=1, help="scripted rounds")
    parser.add_argument(
        "--pace", type=_at_least(0, float), default=0.05, help="seconds between scripted lines"
    )
    parser.add_argument(
        "--bulk-bytes", type=_at_least(0, int), default=0, help="extra output, in bytes"
    )
    parser.add_argument(
        "--line-bytes", type=_at_least(200, int), default=1000, help="size of a bulk line"
    )
    parser.add_argument(
        "--rate", type=_at_least(0, float), default=0.0, help="lines per second (0 = no limit)"
    )
    parser.add_argument("--no-approval", action="store_true", help="never ask for approval")
    args = parser.parse_args(argv)
    return DemoOptions(
        prompt=args.prompt,
        resume=args.resume,
        seed=args.seed,
        turns=args.turns,
        pace=args.pace,
        bulk_bytes=args.bulk_bytes,
        line_bytes=args.line_bytes,
        rate=args.rate,
        approval=not args.no_approval,
    )


def _at_least(minimum: float, kind: type[int] | type[float]) -> Any:
    def convert(text: str) -> int | float:
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return convert


def main(argv: list[str] | None = None) -> int:
    """Run the demo agent; the exit code is 1 when the approval server could not be reached."""
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse: --help or a usage error
        return exc.code if isinstance(exc.code, int) else 2
    writer = LineWriter(sys.stdout.buffer, pace=options.pace, rate=options.rate)
    try:
        code = DemoRun(options, writer).run()
        writer.flush()
    except BrokenPipeError:
        # The reader went away; make the interpreter's final flush quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


class LineWriter:
    """Buffered stream-json output: flushed per line only when pacing, and held to a rate."""

    def __init__(self, out: IO[bytes], *, pace: float, rate: float) -> None:
        self._out = out
        self._pace = pace
        self._rate = rate
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._lines = 0
        self._started = time.monotonic()
        self.lines_written = 0

    def write(self, value: dict[str, Any]) -> None:
        """A scripted line: paced."""
        self.write_bytes(_encoder.encode(value) + b"\n")
        if self._pace > 0:
            self.flush()
            time.sleep(self._pace)

    def write_bytes(self, line: bytes) -> None:
        """A line (with its newline); bulk lines come here directly, unpaced."""
        self._buffer.append(line)
        self._buffered += len(line)
        self.lines_written += 1
        if self._rate > 0:
            self._hold_rate()
        elif self._buffered >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._out.write(b"".join(self._buffer))
            self._buffer.clear()
            self._buffered = 0
        self._out.flush()

    def _hold_rate(self) -> None:
        due = self._started + self.lines_written / self._rate
        delay = due - time.monotonic()
        if delay > 0.005:
            self.flush()
            time.sleep(delay)
        elif self._buffered >= _FLUSH_BYTES:
            self.flush()


@dataclass(frozen=True, slots=True)
class ApprovalOutcome:
    approved: bool
    note: str | None  # shown in the tool result
    server_failed: bool = False


class ApprovalServerError(Exception):
    pass


class DemoRun:
    """One run of the script: init, ``turns`` rounds of work, bulk lines, the result line."""

    def __init__(self, options: DemoOptions, writer: LineWriter) -> None:
        self._options = options
        self._writer = writer
        self._rng = random.Random(options.seed)
        self.session_id = options.resume or session_id_for_seed(options.seed)
        self._exit_code = 0

    def run(self) -> int:
        options = self._options
        self._write(
            {
                "type": "system",
                "subtype": "init",
                "cwd": os.getcwd(),
                "session_id": self.session_id,
                "tools": TOOLS,
                "mcp_servers": [],
                "model": MODEL,
                "permissionMode": "default",
                "apiKeySource": "none",
                "claude_code_version": "execlog-demo",
            }
        )
        final_text = ""
        for turn in range(options.turns):
            final_text = self._run_turn(turn)
        if options.bulk_bytes:
            self._write_bulk()
        lines = self._writer.lines_written
        self._write(
            {
                "type": "result",
                "subtype": "success" if self._exit_code == 0 else "error_during_execution",
                "is_error": self._exit_code != 0,
                "duration_ms": 1200 + 37 * lines,
                "duration_api_ms": 900 + 29 * lines,
                "num_turns": options.turns,
                "result": final_text,
                "session_id": self.session_id,
                "total_cost_usd": 0.0,
                "usage": {"input_tokens": 40 * lines, "output_tokens": 12 * lines},
            }
        )
        return self._exit_code

    # --- the script ---------------------------------------------------------------------------

    def _run_turn(self, turn: int) -> str:
        rng = self._rng
        module = rng.choice(_MODULES)
        path = f"src/{module}.py"
        if turn == 0:
            opening = f"You asked: {self._options.prompt}. Let me look at the project first."
            if self._options.resume:
                opening = f"Resuming session {self.session_id}. " + opening
        else:
            opening = f"Round {turn + 1}: now the {module} module."
        self._streamed_message(
            thought=f"The {module} module probably mishandles empty input. Check, fix, test.",
            text=opening,
        )
        todos = [
            ("Find the empty-input bug", "in_progress"),
            (f"Fix {path}", "pending"),
            ("Run the tests", "pending"),
        ]
        self._tool_round([("TodoWrite", {"todos": _todo_items(todos)}, _TODO_RESULT, False)])
        listing = "\n".join(f"{name}.py" for name in sorted(set(_MODULES)))
        matches = f"{path}:2:    if not value:\n{path}:7:    # TODO: empty input"
        # Two calls in one message whose results come back in the other order.
        self._tool_round(
            [
                ("Bash", {"command": "ls src", "description": "List sources"}, listing, False),
                ("Grep", {"pattern": "if not value", "path": "src"}, matches, False),
            ],
            reverse_results=True,
        )
        source = _numbered(_SOURCE_TEMPLATE.format(module=module))
        self._tool_round([("Read", {"file_path": path}, source, False)])
        edit = {
            "file_path": path,
            "old_string": "    if not value:\n        return None",
            "new_string": "    if value is None or not value.strip():\n        return None",
        }
        self._tool_round([("Edit", edit, f"The file {path} has been updated.", False)])
        committed = True
        if turn == 0:
            committed = self._approval_round(module)
        passed = 8 + rng.randrange(10)
        tests = f"{passed} passed in 0.{rng.randrange(10, 99)}s"
        self._tool_round(
            [("Bash", {"command": "python -m pytest -q", "description": "Run tests"}, tests, False)]
        )
        done = [(text, "completed") for text, _ in todos]
        self._tool_round([("TodoWrite", {"todos": _todo_items(done)}, _TODO_RESULT, False)])
        outcome = "committed" if committed else "left uncommitted (the commit was not approved)"
        final = f"Done: `{path}` now treats blank input as empty; {tests}. The change is {outcome}."
        self._streamed_message(thought=None, text=final)
        return final

    def _approval_round(self, module: str) -> bool:
        name = "Bash"
        arguments = {
            "command": f'git commit -am "Fix {module} empty input"',
            "description": "Commit",
        }
        message_id, tool_id = self._new_message_id(), self._new_tool_id()
        self._assistant(
            message_id, {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}
        )
        self._writer.flush()  # the server must see the call before it is asked about it
        outcome = (
            request_approval(tool_id, name, arguments)
            if self._options.approval
            else ApprovalOutcome(True, None)
        )
        if outcome.server_failed:
            self._exit_code = 1
        output = f"[demo {self._rng.getrandbits(28):07x}] Fix {module} empty input\n 1 file changed"
        if outcome.approved:
            content = f"{outcome.note}\n{output}" if outcome.note else output
            self._tool_result(tool_id, content, is_error=False)
        else:
            self._tool_result(tool_id, outcome.note or "not approved", is_error=True)
        return outcome.approved

    def _tool_round(
        self, calls: list[tuple[str, dict[str, Any], str, bool]], *, reverse_results: bool = False
    ) -> None:
        """One assistant message with these tool calls (a line per block), then the results."""
        message_id = self._new_message_id()
        ids = []
        for name, arguments, _, _ in calls:
            tool_id = self._new_tool_id()
            ids.append(tool_id)
            self._assistant(
                message_id, {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}
            )
        results = list(zip(ids, calls, strict=True))
        for tool_id, (_, _, output, is_error) in reversed(results) if reverse_results else results:
            self._tool_result(tool_id, output, is_error=is_error)

    def _streamed_message(self, *, thought: str | None, text: str) -> None:
        """A message streamed as partial events, each block then printed whole."""
        message_id = self._new_message_id()
        self._stream_event(
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [],
                },
            }
        )
        blocks: list[tuple[str, str]] = [("thinking", thought)] if thought else []
        blocks.append(("text", text))
        for index, (kind, body) in enumerate(blocks):
            delta_type = "thinking_delta" if kind == "thinking" else "text_delta"
            self._stream_event(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": kind, kind: ""},
                }
            )
            for piece in _pieces(body):
                self._stream_event(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": delta_type, kind: piece},
                    }
                )
            self._stream_event({"type": "content_block_stop", "index": index})
            block: dict[str, Any] = {"type": kind, kind: body}
            if kind == "thinking":
                block["signature"] = hashlib.sha256(body.encode()).hexdigest()[:32]
            self._assistant(message_id, block)
        self._stream_event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}})
        self._stream_event({"type": "message_stop"})

    def _write_bulk(self) -> None:
        """About ``bulk_bytes`` of extra lines: text messages and Bash calls with long output."""
        options = self._options
        sid = self.session_id
        filler_size = max(16, options.line_bytes - 250)
        fillers = [_filler(self._rng, filler_size) for _ in range(8)]
        written = 0
        number = 0
        write = self._writer.write_bytes
        while written < options.bulk_bytes:
            filler = fillers[number % len(fillers)]
            if number % 2 == 0:
                line = (
                    f'{{"type":"assistant","message":{{"id":"msg_bulk_{number:08d}",'
                    f'"type":"message","role":"assistant","model":"{MODEL}","content":'
                    f'[{{"type":"text","text":"Note {number}: {filler}"}}]}},'
                    f'"parent_tool_use_id":null,"session_id":"{sid}"}}\n'
                ).encode()
                write(line)
                written += len(line)
            else:
                tool_id = f"toolu_bulk_{number:08d}"
                call = (
                    f'{{"type":"assistant","message":{{"id":"msg_bulk_{number:08d}",'
                    f'"type":"message","role":"assistant","model":"{MODEL}","content":'
                    f'[{{"type":"tool_use","id":"{tool_id}","name":"Bash","input":'
                    f'{{"command":"cat logs/part-{number}.log"}}}}]}},'
                    f'"parent_tool_use_id":null,"session_id":"{sid}"}}\n'
                ).encode()
                result = (
                    f'{{"type":"user","message":{{"role":"user","content":[{{"type":"tool_result",'
                    f'"tool_use_id":"{tool_id}","content":"{filler}","is_error":false}}]}},'
                    f'"parent_tool_use_id":null,"session_id":"{sid}"}}\n'
                ).encode()
                write(call)
                write(result)
                written += len(call) + len(result)
            number += 1

    # --- lines --------------------------------------------------------------------------------

    def _write(self, value: dict[str, Any]) -> None:
        self._writer.write(value)

    def _assistant(self, message_id: str, block: dict[str, Any]) -> None:
        self._write(
            {
                "type": "assistant",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [block],
                },
                "parent_tool_use_id": None,
                "session_id": self.session_id,
            }
        )

    def _tool_result(self, tool_id: str, content: str, *, is_error: bool) -> None:
        block = {
            "type": "tool_result",
            "tool_use_id": tool_id,
            "content": content,
            "is_error": is_error,
        }
        self._write(
            {
                "type": "user",
                "message": {"role": "user", "content": [block]},
                "parent_tool_use_id": None,
                "session_id": self.session_id,
            }
        )

    def _stream_event(self, event: dict[str, Any]) -> None:
        self._write(
            {
                "type": "stream_event",
                "event": event,
                "parent_tool_use_id": None,
                "session_id": self.session_id,
            }
        )

    def _new_message_id(self) -> str:
        return f"msg_demo{self._rng.getrandbits(64):016x}"

    def _new_tool_id(self) -> str:
        return f"toolu_demo{self._rng.getrandbits(64):016x}"


# --- approval ---------------------------------------------------------------------------------


def request_approval(
    tool_use_id: str, tool_name: str, tool_input: dict[str, Any]
) -> ApprovalOutcome:
    """Ask the execlog server that runs this process, and wait for the decision."""
    server_url = os.environ.get("EXECLOG_SERVER_URL")
    process_id = os.environ.get("EXECLOG_PROCESS_ID")
    if not server_url or not process_id:
        return ApprovalOutcome(
            True, "approved automatically: no execlog server to ask (standalone run)"
        )
    import httpx  # only a run under a server needs it; keeps standalone start-up fast

    token = os.environ.get("EXECLOG_AUTH_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {
        "execution_process_id": process_id,
        "tool_use_id": tool_use_id,
        "tool_name": tool_name,
        "tool_input": tool_input,
    }
    try:
        with httpx.Client(
            base_url=server_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(10.0, read=45.0),
        ) as client:
            data = _approval_data(client.post("/api/approvals", json=body), expected=201)
            approval_id = str(data["id"])
            while data.get("status") == "pending":
                response = client.get(
                    f"/api/approvals/{approval_id}/wait", params={"timeout_seconds": 30}
                )
                data = _approval_data(response, expected=200)
    except httpx.HTTPError as exc:
        return ApprovalOutcome(False, f"approval server unreachable: {exc}", server_failed=True)
    except ApprovalServerError as exc:
        return ApprovalOutcome(False, f"approval request failed: {exc}", server_failed=True)
    status = data.get("status")
    if status == "approved":
        return ApprovalOutcome(True, None)
    if status == "denied":
        reason = data.get("reason")
        return ApprovalOutcome(False, f"denied by user: {reason or 'no reason given'}")
    if status == "timed_out":
        return ApprovalOutcome(False, "approval timed out")
    return ApprovalOutcome(False, f"approval ended as {status!r}")


def _approval_data(response: Any, *, expected: int) -> dict[str, Any]:
    try:
        envelope = response.json()
    except ValueError:
        envelope = None
    if response.status_code != expected or not isinstance(envelope, dict):
        message = envelope.get("message") if isinstance(envelope, dict) else None
        raise ApprovalServerError(f"HTTP {response.status_code}: {message or response.text[:200]}")
    data = envelope.get("data")
    if not isinstance(data, dict) or "id" not in data:
        raise ApprovalServerError("response without approval data")
    return data


# --- content ----------------------------------------------------------------------------------

_TODO_RESULT: Final = "Todos have been modified successfully."
_SOURCE_TEMPLATE: Final = """def parse_{module}(value):
    if not value:
        return None
    return value.strip()


# TODO: empty input
"""


def session_id_for_seed(seed: int) -> str:
    digest = hashlib.sha256(f"execlog-demo-session:{seed}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _todo_items(todos: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"content": text, "status": status, "activeForm": text} for text, status in todos]


def _numbered(text: str) -> str:
    return "\n".join(f"{n:6d}\u2192{line}" for n, line in enumerate(text.splitlines(), start=1))


def _pieces(text: str) -> list[str]:
    """Text as stream deltas of about three words each."""
    words = text.split(" ")
    return [
        " ".join(words[i : i + 3]) + (" " if i + 3 < len(words) else "")
        for i in range(0, len(words), 3)
    ]


def _filler(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Command line: ``execlog serve`` (the default), ``migrate``, ``demo-agent``; the client
commands ``logs``, ``run``, ``follow-up``, ``sessions``, ``show``, ``approve``, ``deny``, ``stop``;
``backfill``, ``cleanup-legacy``, ``import-vibe-kanban``.

Errors become one line on stderr and a non-zero exit; bad settings name the variable."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from execlog.config import BackfillMode, Settings, load_settings
from execlog.errors import ExeclogError
from execlog.runner.executors import EXECUTORS

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from execlog.client import ExeclogClient
    from execlog.console import LogPrinter
    from execlog.protocol import Channel
    from execlog.terminal.approvals import ApprovalPolicy
    from execlog.terminal.follower import FollowOptions

__all__ = ["main"]


def _settings() -> Settings:
    try:
        return load_settings()
    except ExeclogError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(invoke_without_command=True)
@click.version_option(package_name="execlog")
@click.pass_context
def main(ctx: click.Context) -> None:
    """execlog: run coding agents as child processes and serve their logs."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


@main.command()
@click.option(
    "--no-auth",
    is_flag=True,
    help="Serve without a token (loopback only): any local user can then run commands as you.",
)
def serve(no_auth: bool) -> None:
    """Serve the API on EXECLOG_HOST:EXECLOG_PORT (migrations run first)."""
    settings = _server_settings(no_auth)
    from execlog.api.webui import web_ui_url
    from execlog.runner.descendants import become_child_subreaper
    from execlog.server import bind_socket, build_server, server_url, tune_garbage_collector

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {settings.host}:{settings.port} (EXECLOG_HOST/EXECLOG_PORT): {exc}"
        ) from None
    url = server_url(sock)
    server = build_server(settings, sock)
    tune_garbage_collector()
    if not become_child_subreaper():
        click.echo(
            "execlog: WARNING: prctl(PR_SET_CHILD_SUBREAPER) failed: orphaned descendants of "
            "agents go to init and are found by their environment only",
            err=True,
        )
    click.echo(f"execlog listening on {url}", err=False)
    click.echo(f"web UI: {web_ui_url(url, settings.auth_token)}", err=False)
    sys.stdout.flush()
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(1)


def _server_settings(no_auth: bool) -> Settings:
    """The settings ``serve`` runs with: EXECLOG_AUTH_TOKEN, else the saved or generated token,
    else (``--no-auth``) none at all, on loopback only and with a warning."""
    from execlog.auth import load_or_create_token

    settings = _settings()
    try:
        if no_auth:
            if settings.auth_token is not None:
                raise click.UsageError("--no-auth and EXECLOG_AUTH_TOKEN contradict each other")
            click.echo(
                "execlog: WARNING: --no-auth: every local user and process can run commands "
                "as this user through the API",
                err=True,
            )
        elif settings.auth_token is None:
            settings = settings.model_copy(update={"auth_token": load_or_create_token()})
        settings.check_listen_address()
    except ExeclogError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


@main.command()
@click.option(
    "--convert-page-size",
    is_flag=True,
    help="SQLite: rewrite a file made with smaller pages at execlog's page size (VACUUM; "
    "stop the server first, needs free space for a copy of the file)",
)
def migrate(convert_page_size: bool) -> None:
    """Apply database migrations to EXECLOG_DATABASE_URL and exit."""
    from execlog.storage.database import (
        convert_sqlite_page_size,
        create_database_engine,
        is_sqlite,
    )
    from execlog.storage.migrate import current_revision, run_migrations

    settings = _settings()
    try:
        engine = create_database_engine(settings.database_url)
        if convert_page_size and is_sqlite(engine):
            before, after = convert_sqlite_page_size(engine)
            click.echo(f"SQLite page size: {before} -> {after} bytes")
        run_migrations(engine)
        click.echo(f"database at revision {current_revision(engine)}")
        engine.dispose()
    except ExeclogError as exc:
        raise click.ClickException(str(exc)) from None


@main.command(
    name="demo-agent",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def demo_agent(args: tuple[str, ...]) -> None:
    """A built-in agent speaking Claude Code's stream-json (see `execlog demo-agent --help`)."""
    from execlog.runner.demo_agent import main as run_demo

    sys.exit(run_demo(list(args)))


# --- client commands: logs, run (docs/cli.md) ------------------------------------------------

# Ctrl-C: the exit code of `execlog run` for a stopped process, and of any client command.
EXIT_KILLED = 130


def _connection_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--server`` and ``--token``, shared by the commands that talk to a running server."""
    command = click.option(
        "--server",
        envvar="EXECLOG_SERVER_URL",
        show_envvar=True,
        metavar="URL",
        help="Server to talk to [default: http://EXECLOG_HOST:EXECLOG_PORT].",
    )(command)
    return click.option(
        "--token",
        envvar="EXECLOG_AUTH_TOKEN",
        show_envvar=True,
        help=(
            "Sent as `Authorization: Bearer` (HTTP and WebSocket) [default: the token a local "
            "server saved in the user data directory, for a loopback server]."
        ),
    )(command)


def _open_client(server: str | None, token: str | None) -> ExeclogClient:
    from execlog.client import ExeclogClient

    if server is None:
        settings = _settings()
        # A server listening on every address is reached on loopback.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(
            settings.host, settings.host
        )
        server = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"
    if not server.startswith(("http://", "https://")):
        raise click.BadParameter(
            f"{server!r} must start with http:// or https://", param_hint="'--server'"
        )
    if not token and _is_loopback_url(server):
        token = _saved_token()
    return ExeclogClient(server, token or None)


def _is_loopback_url(url: str) -> bool:
    """The saved token goes only to a server on this machine, never to a remote one."""
    from urllib.parse import urlsplit

    from execlog.config import is_loopback_host

    try:
        hostname = urlsplit(url).hostname
    except ValueError:
        return False
    return hostname is not None and is_loopback_host(hostname)


def _saved_token() -> str | None:
    from execlog.auth import read_saved_token

    try:
        return read_saved_token()
    except ExeclogError as exc:
        raise click.ClickException(str(exc)) from None


class _ClientFailure(click.ClickException):
    """A client error, on stderr as ``Error: <message>``, exit 1."""


class _RefusedRequest(_ClientFailure):
    """The server called the request malformed (400): a usage error, exit 2."""

    exit_code = 2


@contextmanager
def _reported_client_errors() -> Iterator[None]:
    """The CLI's edge for client errors, Ctrl-C (exit 130) and a closed stdout pipe."""
    from execlog.client import ApiError, ClientError

    try:
        yield
    except ApiError as exc:
        if exc.status == 400:
            raise _RefusedRequest(exc.message) from None
        raise _ClientFailure(exc.message) from None
    except ClientError as exc:
        raise _ClientFailure(str(exc)) from None
    except KeyboardInterrupt:
        sys.exit(EXIT_KILLED)
    except BrokenPipeError:
        # The reader (`| head`) went away: stop quietly, also at the interpreter's final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _follow(client: ExeclogClient, process_id: str, printer: LogPrinter) -> None:
    """Print the live stream from where ``printer`` left off until ``finished``."""
    frames = client.iter_stream(process_id, printer.channel, after=printer.stream_after)
    with closing(frames):
        for frame in frames:
            printer.print_frame(frame)


@main.command()
@click.argument("process_id")
@click.option("--normalized", is_flag=True, help="The conversation instead of raw output lines.")
@click.option(
    "--tail",
    type=click.IntRange(min=-1),
    default=-1,
    show_default=True,
    metavar="N",
    help="Print only the newest N entries; -1 prints all.",
)
@click.option("-f", "--follow", is_flag=True, help="Then print new entries until the end.")
@click.option(
    "--plain",
    is_flag=True,
    help="--normalized without live redrawing, colours or spinners (as when piped).",
)
@_connection_options
def logs(
    process_id: str,
    normalized: bool,
    tail: int,
    follow: bool,
    plain: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Print the logs of an execution process, like `kubectl logs`.

    Raw output goes to stdout and stderr as the process wrote it; --normalized prints the
    conversation: on a terminal what still streams is redrawn in place, piped each entry is
    printed once complete and a tool call once per status.
    """
    from execlog.console import LogPrinter

    channel: Channel = "normalized" if normalized else "raw"
    with _reported_client_errors(), _open_client(server, token) as client:
        history = client.fetch_tail(process_id, channel, None if tail < 0 else tail)
        if history.history_truncated:
            click.echo("execlog: older entries were lost (history truncated)", err=True)
        if normalized:
            from execlog.terminal.conversation import open_view
            from execlog.terminal.follower import show_conversation

            view = open_view(sys.stdout, plain=plain)
            show_conversation(client, process_id, history, view, follow=follow)
            return
        printer = LogPrinter(sys.stdout, sys.stderr)
        printer.print_tail(history)
        if follow:
            _follow(client, process_id, printer)


def _follow_options(command: Callable[..., None]) -> Callable[..., None]:
    """How `run` and `follow-up` print and decide approvals; the command receives them as one
    ``follow: FollowOptions``."""

    @functools.wraps(command)
    def with_follow_options(
        *args: Any,
        normalized: bool,
        plain: bool,
        approve_all: bool,
        deny_all: bool,
        quiet: bool,
        **kwargs: Any,
    ) -> None:
        from execlog.terminal.follower import FollowOptions

        if approve_all and deny_all:
            raise click.UsageError("--approve-all and --deny-all exclude each other")
        policy: ApprovalPolicy = "ask" if sys.stdin.isatty() else "explain"
        if approve_all or deny_all:
            policy = "approve-all" if approve_all else "deny-all"
        follow = FollowOptions(normalized=normalized, quiet=quiet, plain=plain, approvals=policy)
        command(*args, follow=follow, **kwargs)

    options = [
        click.option(
            "--normalized", is_flag=True, help="Print the agent's conversation, not raw lines."
        ),
        click.option(
            "--plain",
            is_flag=True,
            help="No live redrawing, colours or spinners (as when piped): grep-friendly.",
        ),
        click.option("--approve-all", is_flag=True, help="Approve every tool call without asking."),
        click.option("--deny-all", is_flag=True, help="Deny every tool call without asking."),
        click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr."),
    ]
    decorated: Callable[..., None] = with_follow_options
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


@main.command(context_settings={"allow_interspersed_args": False})
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    help="What runs [default: script when COMMAND is given].",
)
@click.option("--prompt", help="The coding agent's prompt.")
@click.option(
    "--cwd",
    type=click.Path(file_okay=False),
    help="Working directory on the server's machine [default: the current directory].",
)
@click.option("--setup", "setup_script", metavar="SCRIPT", help="Shell script run first.")
@click.option("--cleanup", "cleanup_script", metavar="SCRIPT", help="Shell script run last.")
@_follow_options
@_connection_options
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(
    executor: str | None,
    prompt: str | None,
    cwd: str | None,
    setup_script: str | None,
    cleanup_script: str | None,
    follow: FollowOptions,
    server: str | None,
    token: str | None,
    command: tuple[str, ...],
) -> None:
    """Start a session and print each of its processes in turn: setup, main, cleanup.

    On a terminal each tool call that needs approval is asked (Allow? [y/N]); otherwise a line
    says how to decide with `execlog approve` / `execlog deny`.

    \b
      execlog run -- pytest -q
      execlog run --executor demo --prompt "fix the bug" --normalized

    Exits with the main process's exit code (130 when it was stopped; Ctrl-C stops it).
    """
    executor = executor or "script"
    if command and executor != "script":
        raise click.UsageError("COMMAND is only for --executor script; agents take --prompt")
    from execlog.terminal.follower import SessionFollower

    with _reported_client_errors(), _open_client(server, token) as client:
        follower = SessionFollower(client, follow)
        follower.subscribe()  # before the session exists, so that none of its events is missed
        session = client.create_session(
            executor,
            prompt=prompt,
            command=list(command) or None,
            working_dir=os.path.abspath(cwd or os.getcwd()),
            setup_script=setup_script,
            cleanup_script=cleanup_script,
        )
        sys.exit(follower.follow(session.id, session.processes[0]))


@main.command(name="follow-up")
@click.argument("session_id", metavar="SESSION")
@click.option("--prompt", required=True, help="The new turn's prompt.")
@_follow_options
@_connection_options
def follow_up(
    session_id: str,
    prompt: str,
    follow: FollowOptions,
    server: str | None,
    token: str | None,
) -> None:
    """Start a new agent turn in SESSION (it resumes the agent's session) and follow it like
    `run`: its output, its approvals, then the cleanup script if the session has one."""
    from execlog.terminal.follower import SessionFollower

    with _reported_client_errors(), _open_client(server, token) as client:
        earlier = [p.id for p in client.get_session(session_id).processes]
        follower = SessionFollower(client, follow)
        follower.subscribe()
        process = client.follow_up(session_id, prompt)
        sys.exit(follower.follow(session_id, process, earlier))


@main.command()
@click.option("--running", is_flag=True, help="Only sessions with a process running.")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON (GET /api/sessions).")
@_connection_options
def sessions(running: bool, as_json: bool, server: str | None, token: str | None) -> None:
    """List sessions, newest first: status, executor, age, duration, prompt or command."""
    from execlog.terminal.listing import render_sessions, session_status

    with _reported_client_errors(), _open_client(server, token) as client:
        listed = client.list_sessions()
    if running:
        listed = [s for s in listed if session_status(s) == "running"]
    if as_json:
        click.echo(json.dumps(listed, indent=2))
    else:
        click.echo(render_sessions(listed))


main.add_command(sessions, name="ps")


@main.command()
@click.argument("session_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON (GET /api/sessions/ID).")
@_connection_options
def show(session_id: str, as_json: bool, server: str | None, token: str | None) -> None:
    """Show one session: its processes and the approvals they wait for."""
    from execlog.terminal.listing import render_session

    with _reported_client_errors(), _open_client(server, token) as client:
        session = client.get_session_data(session_id)
        approvals = client.list_approvals()
    if as_json:
        click.echo(json.dumps(session, indent=2))
    else:
        click.echo(render_session(session, approvals))


@main.command()
@click.argument("approval_id", metavar="ID")
@_connection_options
def approve(approval_id: str, server: str | None, token: str | None) -> None:
    """Let a tool call that waits for approval run (ID: its approval id)."""
    with _reported_client_errors(), _open_client(server, token) as client:
        approval = client.respond_approval(approval_id, approved=True)
    click.echo(f"approved {approval.tool_name} ({approval.id})")


@main.command()
@click.argument("approval_id", metavar="ID")
@click.option("--reason", help="Told to the agent.")
@_connection_options
def deny(approval_id: str, reason: str | None, server: str | None, token: str | None) -> None:
    """Refuse a tool call that waits for approval (ID: its approval id)."""
    with _reported_client_errors(), _open_client(server, token) as client:
        approval = client.respond_approval(approval_id, approved=False, reason=reason)
    click.echo(f"denied {approval.tool_name} ({approval.id})")


@main.command()
@click.argument("target_id", metavar="ID")
@_connection_options
def stop(target_id: str, server: str | None, token: str | None) -> None:
    """Stop an execution process, or the running process of a session (ID: either)."""
    from execlog.client import ApiError

    with _reported_client_errors(), _open_client(server, token) as client:
        try:
            stopped = [client.stop(target_id)]
        except ApiError as exc:
            if exc.status != 404:
                raise
            try:
                session = client.get_session(target_id)
            except ApiError as again:
                if again.status == 404:
                    raise _ClientFailure(f"no session or execution process {target_id}") from None
                raise
            stopped = [client.stop(p.id) for p in session.processes if p.status == "running"]
    if not stopped:
        click.echo(f"nothing running in session {target_id}")
    for process in stopped:
        click.echo(f"{process.id} {process.status}")


# --- legacy history: backfill, cleanup, import (docs/migrating.md) ---------------------------


def _open_database(settings: Settings) -> Engine:
    """The configured database, migrated (these commands work without a running server)."""
    from execlog.storage.database import create_database_engine
    from execlog.storage.migrate import run_migrations

    try:
        engine = create_database_engine(settings.database_url)
        run_migrations(engine)
    except ExeclogError as exc:
        raise click.ClickException(str(exc)) from None
    return engine


@main.command()
@click.option("--process", "process_id", metavar="ID", help="Backfill only this execution process.")
def backfill(process_id: str | None) -> None:
    """Turn legacy JSONL history into entry rows, with a progress bar.

    Every ended process whose JSONL no backfill has checked yet; with --process, that one
    (checked again). Prints the same console lines as the server's start-up backfill.
    """
    import asyncio

    from execlog.jobs.backfill import LegacyBackfiller
    from execlog.jobs.progress import JobProgress
    from execlog.storage.processes import ProcessRepository

    settings = _settings()
    engine = _open_database(settings)
    backfiller = LegacyBackfiller.create(engine, max_line_bytes=settings.max_line_bytes)
    only = None
    if process_id is not None:
        pid = _parse_process_id(process_id)
        process = ProcessRepository(engine).fetch_process(pid)
        if process is None:
            raise click.ClickException(f"execution process {pid} not found")
        if process.status == "running":
            raise click.ClickException(f"execution process {pid} is still running")
        only = [backfiller.describe_process(pid)]
    pending = only if only is not None else backfiller.ledger.fetch_pending()
    total = sum(p.total_bytes for p in pending)
    with JobProgress("backfill", total, in_bytes=True) as bar:
        run = asyncio.run(
            backfiller.run_pending(
                BackfillMode.STARTUP,
                click.echo,
                on_progress=lambda process, _result: bar.advance(process.total_bytes),
                only=pending,
            )
        )
    engine.dispose()
    if run.errors:
        raise click.ClickException(f"{run.errors} process(es) could not be backfilled")


def _parse_process_id(value: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an execution process id (a UUID)", param_hint="'--process'"
        ) from None


@main.command(name="cleanup-legacy")
@click.option("--dry-run", is_flag=True, help="Only print what would be deleted.")
def cleanup_legacy(dry_run: bool) -> None:
    """Delete legacy JSONL of processes that ended more than
    EXECLOG_LEGACY_JSONL_RETENTION_DAYS ago and whose entries are complete (the server's
    hourly retention job, once). History stays retrievable from the entries."""
    import asyncio

    from execlog.jobs.backfill import LegacyBackfiller
    from execlog.jobs.retention import LegacyRetention

    settings = _settings()
    days = settings.legacy_jsonl_retention_days
    if days == 0:
        click.echo("retention is off (EXECLOG_LEGACY_JSONL_RETENTION_DAYS=0): nothing deleted")
        return
    engine = _open_database(settings)
    backfiller = LegacyBackfiller.create(engine, max_line_bytes=settings.max_line_bytes)
    retention = LegacyRetention.create(engine, backfiller, days)
    report = asyncio.run(retention.clean(dry_run=dry_run))
    engine.dispose()
    verb = "would delete" if dry_run else "deleted"
    for process in report.deleted:
        click.echo(
            f"{verb}: execution_id={process.process_id}, rows={process.rows}, "
            f"bytes={process.total_bytes}"
        )
    for process_id, reason in report.skipped:
        click.echo(f"kept: execution_id={process_id}, reason={reason}")
    click.echo(
        f"{verb} {report.deleted_rows} JSONL rows ({report.deleted_bytes} bytes) of "
        f"{len(report.deleted)} processes older than {days} days; kept {len(report.skipped)}"
    )


@main.command(name="import-vibe-kanban")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--assets",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    metavar="DIR",
    help="vibe-kanban's asset directory, for the per-process log files of its newest versions.",
)
def import_vibe_kanban(path: Path, assets: Path | None) -> None:
    """Import a vibe-kanban SQLite database (read-only): sessions, execution processes,
    coding-agent turns and their logs, keeping the original ids. Running it again imports
    only what is new. The imported history is then backfilled into entries."""
    import asyncio

    from execlog.jobs.backfill import LegacyBackfiller
    from execlog.jobs.progress import JobProgress
    from execlog.jobs.vibe_kanban import import_vibe_kanban as run_import

    settings = _settings()
    engine = _open_database(settings)
    with JobProgress("import", 0, in_bytes=False) as bar:
        try:
            summary = run_import(
                engine,
                path,
                assets=assets,
                on_total=bar.set_total,
                on_process=lambda _pid: bar.advance(1),
            )
        except ExeclogError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"imported {summary.sessions} sessions, {summary.processes} execution processes, "
        f"{summary.turns} coding-agent turns, {summary.log_rows} log rows "
        f"({summary.log_bytes} bytes, {summary.asset_files} asset files)"
    )
    for reason, count in sorted(summary.skipped.items()):
        click.echo(f"skipped {count} execution processes: {reason}")
    backfiller = LegacyBackfiller.create(engine, max_line_bytes=settings.max_line_bytes)
    imported = set(summary.imported_process_ids)
    pending = [p for p in backfiller.ledger.fetch_pending() if p.process_id in imported]
    run = asyncio.run(backfiller.run_pending(BackfillMode.STARTUP, click.echo, only=pending))
    engine.dispose()
    if run.errors:
        raise click.ClickException(f"{run.errors} imported process(es) could not be backfilled")

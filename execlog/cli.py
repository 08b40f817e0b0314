"""Command line: ``execlog serve`` (the default), ``migrate``, ``demo-agent``, ``logs``, ``run``.

Errors become one line on stderr and a non-zero exit; bad settings name the variable."""

from __future__ import annotations

import logging
import sys

import click

from execlog.config import Settings, load_settings
from execlog.errors import ExeclogError

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
def serve() -> None:
    """Serve the API on EXECLOG_HOST:EXECLOG_PORT (migrations run first)."""
    settings = _settings()
    try:
        settings.check_listen_address()
    except ExeclogError as exc:
        raise click.ClickException(str(exc)) from None
    from execlog.server import bind_socket, build_server, server_url

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {settings.host}:{settings.port} (EXECLOG_HOST/EXECLOG_PORT): {exc}"
        ) from None
    url = server_url(sock)
    server = build_server(settings, sock)
    click.echo(f"execlog listening on {url}", err=False)
    sys.stdout.flush()
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(1)


@main.command()
def migrate() -> None:
    """Apply database migrations to EXECLOG_DATABASE_URL and exit."""
    from execlog.storage.database import create_database_engine
    from execlog.storage.migrate import current_revision, run_migrations

    settings = _settings()
    try:
        engine = create_database_engine(settings.database_url)
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

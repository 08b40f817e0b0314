"""Command line: ``execlog serve`` (default), ``migrate``, ``demo-agent``, ``logs``, ``run``."""

from __future__ import annotations

import click


@click.group(invoke_without_command=True)
@click.pass_context
def main(ctx: click.Context) -> None:
    """execlog: run coding agents and serve their logs."""

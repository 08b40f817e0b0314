"""execlog: run coding agents as child processes and serve their logs tail-first."""

__version__ = "0.1.0"

"""The progress bar of the jobs' commands (``execlog backfill``, ``import-vibe-kanban``), drawn
with rich on stderr so that stdout keeps only the lines a script may read."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = ["JobProgress"]


class JobProgress:
    """A bar over ``total`` units (bytes when ``in_bytes``, else items); a context manager."""

    def __init__(self, description: str, total: int, *, in_bytes: bool) -> None:
        amount = (DownloadColumn(), TransferSpeedColumn()) if in_bytes else (MofNCompleteColumn(),)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            *amount,
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: TaskID = self._progress.add_task(description, total=max(total, 1))

    def advance(self, amount: int, *, note: str | None = None) -> None:
        self._progress.update(self._task, advance=amount, description=note or None)

    def set_total(self, total: int) -> None:
        self._progress.update(self._task, total=max(total, 1))

    def __enter__(self) -> JobProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

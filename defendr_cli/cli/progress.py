"""A rich-backed implementation of core.progress.Reporter for the CLI."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _RichTask:
    def __init__(self, progress: Progress, description: str, total: int | None) -> None:
        self._progress = progress
        self._description = description
        self._id = progress.add_task(description, total=total, fields="")

    def _fields(self, fields: dict[str, Any]) -> str:
        parts = []
        for key, value in fields.items():
            parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
        return " ".join(parts)

    def advance(self, n: int = 1, **fields: Any) -> None:
        if fields:
            self._progress.update(self._id, advance=n, fields=self._fields(fields))
        else:
            self._progress.update(self._id, advance=n)

    def update(self, **fields: Any) -> None:
        self._progress.update(self._id, fields=self._fields(fields))

    def __enter__(self) -> "_RichTask":
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.remove_task(self._id)


class RichReporter:
    """Progress bars on stderr; `note` prints a dim line. Use as a context manager."""

    def __init__(self, console: Console | None = None, *, enabled: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[fields]}"),
            console=self.console,
            transient=True,
            disable=not enabled,
        )

    def __enter__(self) -> "RichReporter":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def task(self, description: str, total: int | None = None) -> _RichTask:
        return _RichTask(self._progress, description, total)

    def note(self, message: str) -> None:
        self._progress.console.print(f"[dim]{message}[/dim]")

"""Progress reporting without a UI dependency.

Core loops take a `Reporter` and call `with reporter.task("attack fgsm", total=n) as task:
task.advance(k, loss=0.3)`. The CLI passes a rich-backed reporter; tests and library users get
`NullReporter` (the default), which does nothing.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Protocol


class Task(Protocol):
    def advance(self, n: int = 1, **fields: Any) -> None: ...

    def update(self, **fields: Any) -> None: ...


class Reporter(Protocol):
    def task(self, description: str, total: int | None = None) -> "TaskContext": ...

    def note(self, message: str) -> None: ...


class TaskContext(Protocol):
    def __enter__(self) -> Task: ...

    def __exit__(self, *exc: object) -> None: ...


class _NullTask:
    def advance(self, n: int = 1, **fields: Any) -> None:
        pass

    def update(self, **fields: Any) -> None:
        pass

    def __enter__(self) -> "_NullTask":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class NullReporter:
    """Reports nothing. Notes are kept in `notes` so tests can inspect them."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def task(self, description: str, total: int | None = None) -> _NullTask:
        return _NullTask()

    def note(self, message: str) -> None:
        self.notes.append(message)


INTERRUPT_ENV = "DEFENDR_TEST_INTERRUPT_AFTER"


def interrupt_for_test(done: int) -> None:
    """Test hook: send this process a real SIGINT (Ctrl-C) once `done` units of work are saved.

    Read only here, and only when $DEFENDR_TEST_INTERRUPT_AFTER is set (to a count, e.g. epochs
    finished by `train`), so interruption tests stop a run at a known point instead of racing a timer.
    """
    wanted = os.environ.get(INTERRUPT_ENV)
    if wanted and wanted.isdigit() and int(wanted) == done:
        # a process started in the background by a shell inherits SIGINT ignored (the suite run under
        # `nohup ... &`): install Python's Ctrl-C handler so the signal interrupts as a user's would
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGINT)


_saved_units = 0


def saved_for_test() -> None:
    """Test hook: count one more unit of work saved by this process (an attack batch written to its
    sets, an evaluate prediction stored, an adaptive model's result saved) and call
    `interrupt_for_test` with the count, so $DEFENDR_TEST_INTERRUPT_AFTER=N stops `attack` or
    `evaluate` right after the N-th saved unit."""
    global _saved_units
    _saved_units += 1
    interrupt_for_test(_saved_units)

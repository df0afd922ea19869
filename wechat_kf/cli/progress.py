"""What a batch shows and remembers while it runs: a progress bar on stderr, and a journal of
each request's outcome so that an interrupted run can say exactly what was done."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wechat_kf import BatchResult, RequestOutcome

from .output import err

# The userids and the department ids of a batch left unprocessed.
Rest = tuple[list[str], list[int]]


@contextmanager
def progress(enabled: bool, label: str) -> Iterator[Callable[[int, int], None]]:
    """A live progress bar on stderr, fed by ``on_progress(done, total)``."""
    if not enabled:
        yield lambda done, total: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err(), transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@attrs.define
class Journal:
    """Every request's outcome as it arrives (an ``on_request`` callback), so that an
    interrupted run can say what was done."""

    outcomes: list[RequestOutcome] = attrs.Factory(list)

    def __call__(self, outcome: RequestOutcome) -> None:
        self.outcomes.append(outcome)

    def result(self, action: str) -> BatchResult:
        """What WeChat answered for the requests of ``action``, so far."""
        return BatchResult(
            [item for o in self.outcomes if o.action == action for item in o.results]
        )

    def failed(self, action: str) -> list[tuple[Exception, list[str], list[int]]]:
        """The requests of ``action`` that failed as a whole: the error and the ids it left."""
        return [
            (o.error, o.userids, o.department_ids)
            for o in self.outcomes
            if o.action == action and o.error is not None
        ]

    def unprocessed(self, action: str, userids: list[str], departments: list[int]) -> Rest:
        """The ids of ``action`` with no answer yet: unsent, failed, or in flight."""
        done = self.result(action).items
        users = {item.userid for item in done}
        depts = {item.department_id for item in done}
        return (
            [u for u in userids if u not in users],
            [d for d in departments if d not in depts],
        )

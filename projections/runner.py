"""Catch-up, rebuild and status of the read models: a pull loop over the notification log.

Each page of events is applied and its tracking position written in one
transaction, so a catch-up killed at any point leaves the read models at the end
of the last committed page, and the next run goes on from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ledger.application import LedgerApp
from projections.view import LedgerView

Progress = Callable[[int, int], None]

PAGE_SIZE = 2000


@dataclass(frozen=True)
class Status:
    name: str
    position: int
    head: int

    @property
    def behind(self) -> int:
        return self.head - self.position


class Projections:
    """The read models of one ledger database."""

    def __init__(self, app: LedgerApp) -> None:
        self.app = app
        self.view = LedgerView(app.factory.datastore)  # type: ignore[attr-defined]
        self.view.create_table()

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def status(self) -> list[Status]:
        head = self.head()
        return [Status("ledger", self.view.position(), head)]

    def catch_up(self, progress: Progress | None = None, page_size: int = PAGE_SIZE) -> int:
        """Apply every event recorded after the read models' position; returns how many."""
        head = self.head()
        applied = 0
        mapper = self.app.mapper
        while True:
            with self.view.transaction(commit=True) as session:
                position = self.view.lock(session)
                if position >= head:
                    break
                notes = self.app.recorder.select_notifications(
                    start=position, limit=page_size, stop=head, inclusive_of_start=False
                )
                if not notes:
                    break
                self.view.apply_page(session, notes, mapper.to_domain_event)
                applied += len(notes)
                last = notes[-1].id
            if progress:
                progress(last, head)
        return applied

    def rebuild(self, progress: Progress | None = None, page_size: int = PAGE_SIZE) -> int:
        """Drop the read models and replay the whole log into them."""
        with self.view.transaction(commit=True) as session:
            self.view.clear(session)
        return self.catch_up(progress, page_size)

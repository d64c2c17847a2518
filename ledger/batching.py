"""Helpers for the ledger's batch jobs (import, payroll, read-model catch-up and rebuild)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch builds one chunk of work.

    A chunk allocates tens of thousands of short-lived objects (events, rows, JSON),
    which reference counting frees; the cyclic collector would otherwise run many
    times over the whole heap meanwhile. It runs as usual again after the chunk.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

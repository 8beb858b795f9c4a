"""Garbage collection for workers whose state is millions of long-lived objects.

The detectors' per-prefix state and the session stats' route tables are
millions of objects that live for hours. CPython's full collection walks all
of them (100 ms+ on a full table: a latency spike every few seconds at 20,000
updates/s, and a large share of a busy worker's CPU). :class:`LongLivedHeap`
keeps young collections automatic, moves what survived into the permanent
generation (``gc.freeze``) whenever the worker says its state settled (after a
checkpoint or a window), and runs one full collection (for cyclic garbage)
every ``full_every_s``.
"""

from __future__ import annotations

import gc
import time

FULL_EVERY_S = 600.0


class LongLivedHeap:
    def __init__(self, full_every_s: float = FULL_EVERY_S) -> None:
        self.full_every_s = full_every_s
        self._last_full = time.monotonic()

    def start(self) -> None:
        """Latency-friendly thresholds: young collections rarely reach the old objects."""
        gc.set_threshold(10_000, 10, 1_000_000)
        self._last_full = time.monotonic()

    def settled(self, collect: bool = False) -> None:
        """The state just grew (or was replaced): freeze it, after a collection if asked."""
        if collect:
            gc.collect()
        gc.freeze()

    def maybe_collect(self) -> None:
        """A full collection once every ``full_every_s``."""
        if time.monotonic() - self._last_full > self.full_every_s:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._last_full = time.monotonic()

"""CPU time of a block for the complexity guards of the detector tests."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cpu_seconds() -> Iterator[list[float]]:
    """``with cpu_seconds() as spent: ...`` then ``spent[0]``: the CPU time of the block
    with the garbage collector paused. A guard against quadratic steps measures the
    algorithm, not other processes' load nor collections of what earlier tests left."""
    spent = [0.0]
    gc.collect()
    gc.disable()
    started = time.process_time()
    try:
        yield spent
    finally:
        spent[0] = time.process_time() - started
        gc.enable()

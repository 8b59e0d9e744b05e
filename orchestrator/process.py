"""What an application tunes in its own process: the cyclic garbage collector's thresholds
(setting ``gc_threshold``, docs/operations.md#the-garbage-collector).

Every durable call makes a few short-lived container objects (futures, records, coroutine
frames); with CPython's default threshold of 700 allocations the collector ran about once per
14 workflows, and its collections of the older generations walked every workflow in flight:
17-20 % of a worker's CPU in the queue benchmark. Raised to 10,000, most of those objects are
freed by reference counting before any collection looks at them. And while many workflows
pile up (100,000 parked in recv), each full collection walks all of them: 53-68 µs per
workflow went to the collector parking 100,000 and 57-62 waking them, though the engine
leaves no cyclic garbage behind (a ``gc.collect()`` after the wake found none); full
collections are considered ten times less often (generation 2's threshold 10 -> 100): 19-20
and 6 µs. Cyclic garbage still goes; it waits a little longer. The change is process-wide,
so it is made only upward (a generation-0 threshold the program set as high, or a disabled
collector, is left as it is, with the rest) and undone when the last application that made
it shuts down.
"""

from __future__ import annotations

import gc
import threading

# Full collections are considered after this many collections of generation 1 (CPython: 10).
OLDEST_THRESHOLD = 100


class _RaisedThreshold:
    """Who holds the raised threshold, and what it was before the first of them raised it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders = 0  # launched applications relying on the raised threshold
        self.previous: tuple[int, int, int] | None = None
        self.raised: tuple[int, int, int] | None = None  # what the first holder set

    def take(self, threshold: int) -> bool:
        with self.lock:
            if self.holders == 0:
                current = gc.get_threshold()
                if threshold <= 0 or not gc.isenabled() or current[0] >= threshold:
                    return False
                self.previous = current
                self.raised = (threshold, current[1], max(current[2], OLDEST_THRESHOLD))
                gc.set_threshold(*self.raised)
            # Later holders change nothing: what the program set since (a lower threshold, a
            # disabled collector) is its own to keep.
            self.holders += 1
            return True

    def release(self) -> None:
        with self.lock:
            if self.holders == 0:
                return
            self.holders -= 1
            if self.holders == 0:
                if self.previous is not None and gc.get_threshold() == self.raised:
                    gc.set_threshold(*self.previous)  # unless the program set its own since
                self.previous = self.raised = None


_raised = _RaisedThreshold()


def raise_gc_threshold(threshold: int) -> bool:
    """Raise the collector's generation-0 threshold to ``threshold`` (and generation 2's to
    OLDEST_THRESHOLD) for this application;
    True if it holds the change (call ``restore_gc_threshold`` at its shutdown). 0, a disabled
    collector or a threshold already as high: nothing changes (False)."""
    return _raised.take(threshold)


def restore_gc_threshold() -> None:
    """An application that raised the threshold shuts down: the last one puts back what was."""
    _raised.release()

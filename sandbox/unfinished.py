"""Sandboxes not yet released, torn down at exit if the event loop that owned them is gone.

A run's sandbox is torn down just after its answer, by the event loop; if the server stops
in between, the loop is gone, and this finishes the job.
"""

from __future__ import annotations

import atexit
import logging
import threading

log = logging.getLogger(__name__)

_boxes: set = set()
_lock = threading.Lock()  # the pool's thread launches sandboxes while loops release theirs
_registered = False


def track(box) -> None:
    global _registered
    with _lock:
        if not _registered:
            _registered = True
            atexit.register(finish)
        _boxes.add(box)


def done(box) -> None:
    with _lock:
        _boxes.discard(box)


def uids() -> set[int]:
    """The host uids of every sandbox not yet released: none may be given to another."""
    with _lock:
        return {box.host.uid(box.spec.slot) for box in _boxes}


def finish() -> None:
    with _lock:
        boxes = list(_boxes)
    for box in boxes:
        try:
            box._teardown_blocking()  # whether or not a destroy() began: its loop is gone
        except Exception as e:  # at exit, each sandbox gets its chance
            log.error("a sandbox could not be torn down at exit: %s", e)

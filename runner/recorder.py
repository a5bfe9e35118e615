"""Storing finished runs off the answer's path.

A run's answer goes out as soon as the program is done. Its record (GET /api/executions/<id>)
is written by one thread, on one long-lived database connection, in batches: once no run has
finished for WRITE_QUIET_SECONDS, or once the oldest waiting record has waited
WRITE_WAIT_MAX_SECONDS. A write done at once would land on the next request of a client that
sends runs back to back (an agent, a test pipeline), and take the GIL from it; batched, it
lands between runs, and one transaction holds many. Until it is written the record is pending
here, where the executions endpoint finds it, so a client that fetches a run right after its
answer sees it. (Another server process sees it once it is written: within half a second.)

flush() waits until everything pending is written: the server calls it at exit, and the
tests when they read the table. With RUNNER_RECORD_IN_BACKGROUND off, runs are written
before their answer instead, by the caller's database thread; the in-process tests do
that, so a run's row belongs to the test's own transaction.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
import time
import uuid
from datetime import datetime

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection

from engine.results import RunResult
from engine.spec import RunSpec

from . import conf
from .models import Execution

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 600
# A batch is written once runs have stopped finishing for this long...
WRITE_QUIET_SECONDS = 0.05
# ...or once its oldest record has waited this long, whatever goes on.
WRITE_WAIT_MAX_SECONDS = 0.5


class Recorder:
    """Stores finished runs in batches, and journals each one before its answer goes out.

    The journal (runs.journal in DATA_DIR) is appended to as a run is recorded, before its
    answer is sent, and emptied once everything in it is in the database: a server killed
    in between (kill -9) loses no answered run, as the next one replays the journal at start.
    An append costs a write to the page cache; a process's death does not undo it.
    """

    def __init__(self):
        self._lock = threading.Condition()
        self._journal: int | None = None
        # Runs not yet written, as Execution.fields_of_run(): the row is made in the writer's thread.
        self._pending: dict[uuid.UUID, dict] = {}
        self._queue: list[dict] = []
        self._writing = 0
        self._flushing = 0  # flush() calls waiting: the batch is written at once
        self._last_record = 0.0  # (time.monotonic())
        self._oldest = 0.0  # when the oldest record in the queue came
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0

    async def record(self, spec: RunSpec, result: RunResult) -> None:
        fields = Execution.fields_of_run(spec, result)
        if not conf.get().record_in_background:
            await sync_to_async(self._write)([Execution(**fields)])
            return
        with self._lock:
            self._journal_append(fields)
            self._pending[fields["id"]] = fields
            self._last_record = time.monotonic()
            first = not self._queue
            if first:
                self._oldest = self._last_record
            self._queue.append(fields)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="run-recorder", daemon=True)
                self._thread.start()
                atexit.register(self.flush)
        if first:
            # The writer, idle, is woken once the answer is out, which the rest of this turn of
            # the loop writes: woken now, it would take the GIL from the answer. It then waits
            # for a quiet moment (_batch()), which later records only put off.
            asyncio.get_running_loop().call_soon(self._wake)

    def _wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def pending(self, id: uuid.UUID) -> Execution | None:
        with self._lock:
            fields = self._pending.get(id)
        return None if fields is None else Execution(**fields)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every pending run is written (or has failed and been logged)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flushing += 1
            try:
                self._lock.notify_all()  # the writer writes what waits, without a quiet moment
                while self._queue or self._writing:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._lock.wait(left)
            finally:
                self._flushing -= 1
        return True

    def _run(self) -> None:
        while True:
            with self._lock:
                batch = self._batch()
                self._writing = len(batch)
            try:
                written = self._write([Execution(**fields) for fields in batch])
            except Exception:  # the thread goes on: it stores everyone's runs
                log.exception("could not store %d run(s)", len(batch))
                written = False
            finally:
                with self._lock:
                    for fields in batch:
                        self._pending.pop(fields["id"], None)
                    self._writing = 0
                    if written and not self._queue and self._journal is not None:
                        os.ftruncate(self._journal, 0)  # all it held is in the database
                    self._lock.notify_all()

    def _batch(self) -> list[dict]:
        """Wait for records, then for a quiet moment (or flush()), and take them all (under the lock)."""
        while True:
            if self._queue:
                now = time.monotonic()
                wait = (
                    min(self._last_record + WRITE_QUIET_SECONDS, self._oldest + WRITE_WAIT_MAX_SECONDS) - now
                )
                if wait <= 0 or self._flushing:
                    batch, self._queue = self._queue, []
                    return batch
                self._lock.wait(wait)
            else:
                self._lock.wait()

    def _write(self, batch: list[Execution], replayed: bool = False) -> bool:
        """Store the batch; False if the database refused it (it stays in the journal)."""
        for attempt in (1, 2):
            try:
                # A replayed run may have been stored already, just before its server died.
                Execution.objects.bulk_create(batch, ignore_conflicts=replayed)
                break
            except DatabaseError as e:
                # A broken connection (a restarted database) is replaced once; then the
                # runs are given up for now, loudly: they stay in the journal for the next start.
                connection.close()
                if attempt == 2:
                    ids = ", ".join(str(execution.id) for execution in batch)
                    log.error("could not store %d run(s) (%s): %s", len(batch), ids, e)
                    return False
            except Exception:
                # Not the database: one record it can't take. It must not cost the others
                # theirs, so they are stored one by one and only the bad one is given up.
                if len(batch) > 1:
                    return all([self._write([execution], replayed) for execution in batch])
                log.exception("run %s can't be stored, and is given up", batch[0].id)
                return True  # no later try could store it either
        if time.monotonic() - self._last_prune > PRUNE_EVERY_SECONDS:
            self._last_prune = time.monotonic()
            try:
                Execution.objects.prune()
            except DatabaseError as e:
                log.error("could not prune old runs: %s", e)
        return True

    def _journal_append(self, fields: dict) -> None:
        if self._journal is None:
            path = conf.get().journal_path
            self._journal = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.write(self._journal, _line(fields))

    def replay(self) -> int:
        """At start: store the runs a killed server answered but had not stored; empty the journal."""
        path = conf.get().journal_path
        try:
            with open(path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return 0
        runs = []
        for line in lines:
            try:
                runs.append(_execution(line))
            except (ValueError, KeyError, TypeError) as e:  # a line cut short by the kill
                log.warning("a journal line could not be read, and is skipped: %s", e)
        if runs and not self._write(runs, replayed=True):
            return 0  # kept for the next start
        os.truncate(path, 0)
        if runs:
            log.info("stored %d answered run(s) a stopped server had not stored", len(runs))
        return len(runs)


def _line(fields: dict) -> bytes:
    data = {**fields, "id": str(fields["id"]), "created_at": fields["created_at"].isoformat()}
    return json.dumps(data).encode() + b"\n"


def _execution(line: bytes) -> Execution:
    data = json.loads(line)
    data["id"], data["created_at"] = uuid.UUID(data["id"]), datetime.fromisoformat(data["created_at"])
    return Execution(**data)


RECORDER = Recorder()

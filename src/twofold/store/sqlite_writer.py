"""Group commit: the SQLite store's one writer thread, one fsync for every write queued.

With ``synchronous=FULL`` each COMMIT waits for an fsync of the WAL (about 300 us of the
~600 us a refresh rotation costs on a quiet machine). A transaction per write makes that
wait once per write, and concurrent writers queue behind each other's fsyncs. So the
writer takes every job queued at the moment it is free (up to ``MAX_BATCH``) and runs
them in ONE ``BEGIN IMMEDIATE`` transaction with one COMMIT: the fsync is shared and the
rate of writes grows with the number of writers instead of staying at one per fsync.

What each caller still gets, as with a transaction of its own:

* **Atomicity, alone.** Each job runs inside its own SAVEPOINT. A job that raises is
  rolled back to its savepoint and only its caller gets the error; its batch-mates commit.
* **Durability before acknowledgement.** No caller's future is resolved before the COMMIT
  has returned: an acknowledged write has been fsynced. If the COMMIT fails, or an error
  takes the whole transaction with it (SQLite rolls back on disk full or an I/O error),
  every job of the batch fails and nothing of it is kept.
* **Isolation.** One thread runs the jobs one after another and BEGIN IMMEDIATE keeps
  other processes out until COMMIT, so a job's read-then-write is not interleaved with
  anyone's; a job sees the writes of the jobs before it in its batch, as it would have
  seen them committed.

Jobs must leave the transaction to the writer: no BEGIN, COMMIT, ROLLBACK or RELEASE of
the writer's savepoint. A job that ends the transaction anyway is found (its savepoint is
gone) and fails with ``RuntimeError``; what the batch did before it is then in doubt, so
its batch-mates fail with ``StoreUnavailable``, never with a success. PRAGMAs that do
nothing or fail inside a transaction (``journal_mode``, ``foreign_keys``) belong in the
connect function, which runs once before any batch. A read-only job (``SELECT 1`` for a
health check) simply rides a batch; a transaction that wrote nothing commits without an
fsync.

Why hand-written: the asyncio SQLite libraries (aiosqlite, SQLAlchemy's aiosqlite
dialect, databases) give each call its own transaction on a worker thread; none groups
independent callers' writes into one commit. The queue, the batch loop and the hand-back
to the event loop fit in this module, and the hand-back is cheaper than
``run_in_executor`` (one ``call_soon_threadsafe`` per batch, not a future chain per call).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from twofold.errors import StoreUnavailable

_T = TypeVar("_T")

#: The most jobs one transaction takes: bounds how long the write lock is held and how
#: much one failed COMMIT can take down (64 refresh rotations are ~5 ms of work).
MAX_BATCH = 64

# Unlikely to clash with a savepoint a job takes for itself (those nest inside it).
_SAVEPOINT = "twofold_write_job"


@dataclass(eq=False, slots=True)
class _Job:
    work: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


@dataclass(eq=False, slots=True)
class _Stop:
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


@dataclass(frozen=True, slots=True)
class _Failed:
    """A job's outcome when it raised (any other outcome is the job's return value)."""

    error: BaseException


class _BatchLost(Exception):
    """The batch's transaction is gone before its COMMIT: every job of it fails."""

    def __init__(self, culprit: BaseException, others: BaseException) -> None:
        super().__init__(str(culprit))
        #: For the job during which it was lost.
        self.culprit = culprit
        #: For its batch-mates, run or not.
        self.others = others


class SQLiteWriter:
    """One thread and one connection that run write jobs in group-committed batches.

    ``connect`` runs on the writer thread (``sqlite3`` connections stay on the thread that
    made them). Use ``run`` from the event loop that called ``start``.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_batch: int = MAX_BATCH,
        name: str = "twofold-sqlite-writer",
    ) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._name = name
        self._queue: queue.SimpleQueue[_Job | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = False

    async def start(self) -> None:
        """Start the thread and open its connection; raises what ``connect`` raised."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        # A daemon: a store never closed must not keep the interpreter alive. Being cut
        # off at exit is a crash, which loses nothing acknowledged.
        self._thread = threading.Thread(
            target=self._serve, args=(loop, ready), name=self._name, daemon=True
        )
        self._thread.start()
        await ready

    async def run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` in the next batch; its result once the batch has committed."""
        if self._thread is None or self._stopping:
            raise StoreUnavailable("The SQLite store is not open.")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._queue.put(_Job(work, future, loop))
        return await future

    async def close(self) -> None:
        """Run the jobs already queued, close the connection, stop the thread."""
        thread = self._thread
        if thread is None or self._stopping:
            return
        self._stopping = True
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Stop(stopped, loop))
        await stopped
        thread.join()

    # -- the writer thread -------------------------------------------------------------

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connect()
        except BaseException as exc:  # handed to start(); the thread waits for close()
            _post(loop, [(ready, _Failed(exc))])
        else:
            _post(loop, [(ready, None)])
        while True:
            jobs, stop = self._take()
            if conn is None:
                unopened = StoreUnavailable("The SQLite store is not open.")
                outcomes: list[object] = [_Failed(unopened)] * len(jobs)
            else:
                # A job cancelled before its batch began is skipped, as an executor skips
                # a cancelled call that has not started.
                jobs = [job for job in jobs if not job.future.cancelled()]
                try:
                    outcomes = _commit(conn, jobs) if jobs else []
                except BaseException as exc:  # a bug here must not strand the callers
                    outcomes = [_Failed(exc)] * len(jobs)
            _hand_back(jobs, outcomes)
            if stop is not None:
                if conn is not None:
                    conn.close()
                _post(stop.loop, [(stop.future, None)])
                return

    def _take(self) -> tuple[list[_Job], _Stop | None]:
        """Wait for a job, then take what else is queued, up to ``max_batch``."""
        jobs: list[_Job] = []
        item = self._queue.get()
        while True:
            if isinstance(item, _Stop):
                return jobs, item
            jobs.append(item)
            if len(jobs) >= self._max_batch:
                return jobs, None
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return jobs, None


def _commit(conn: sqlite3.Connection, jobs: Sequence[_Job]) -> list[object]:
    """Run ``jobs`` in one transaction; one outcome each, all settled by the COMMIT."""
    try:
        if conn.in_transaction:  # never expected; a stale transaction must not absorb ours
            conn.execute("ROLLBACK")
        # IMMEDIATE takes the write lock now (waiting up to busy_timeout), not at the
        # first write, where a deferred transaction could fail half-way with SQLITE_BUSY.
        conn.execute("BEGIN IMMEDIATE")
    except BaseException as exc:
        return [_Failed(exc)] * len(jobs)
    outcomes: list[object] = []
    try:
        for job in jobs:
            outcomes.append(_run_job(conn, job.work))
        conn.execute("COMMIT")
    except _BatchLost as lost:
        _roll_back(conn)
        culprit = len(outcomes)
        return [_Failed(lost.culprit if n == culprit else lost.others) for n in range(len(jobs))]
    except BaseException as exc:  # the COMMIT failed: nothing of the batch is kept
        _roll_back(conn)
        return [_Failed(exc)] * len(jobs)
    return outcomes


def _run_job(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], Any]) -> object:
    """One job inside its savepoint: its result, or ``_Failed`` with its own changes undone."""
    conn.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        result = work(conn)
    except BaseException as exc:
        if not conn.in_transaction:
            # The error rolled the whole transaction back (disk full, I/O error).
            others = exc if isinstance(exc, sqlite3.Error) else _lost(exc)
            raise _BatchLost(exc, others) from exc
        try:
            conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
            conn.execute(f"RELEASE {_SAVEPOINT}")
        except sqlite3.Error as gone:  # the job released our savepoint, then raised
            raise _BatchLost(exc, _lost(gone)) from gone
        return _Failed(exc)
    try:
        # Fails with "no such savepoint" if the job ended the transaction.
        conn.execute(f"RELEASE {_SAVEPOINT}")
    except sqlite3.Error as gone:
        culprit = RuntimeError(
            "A write job ended the writer's transaction; BEGIN, COMMIT and ROLLBACK "
            f"are the writer's ({gone})."
        )
        raise _BatchLost(culprit, _lost(gone)) from gone
    return result


def _lost(cause: BaseException) -> StoreUnavailable:
    return StoreUnavailable(
        f"The SQLite write was lost with its batch's transaction ({type(cause).__name__})."
    )


def _roll_back(conn: sqlite3.Connection) -> None:
    # Disk full and I/O errors have already rolled the transaction back; a failed COMMIT
    # (busy, a deferred constraint) has not. A ROLLBACK that fails leaves the connection
    # in a transaction, which the next batch rolls back before its BEGIN.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _hand_back(jobs: Sequence[_Job], outcomes: Sequence[object]) -> None:
    """Settle each job's future on its own loop: one wake-up per loop, not per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], object]]] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        by_loop.setdefault(job.loop, []).append((job.future, outcome))
    for loop, settled in by_loop.items():
        _post(loop, settled)


def _post(
    loop: asyncio.AbstractEventLoop, settled: list[tuple[asyncio.Future[Any], object]]
) -> None:
    # RuntimeError: the loop is closed, so nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Any], object]]) -> None:
    """On the loop: resolve the futures (a caller that gave up is skipped)."""
    for future, outcome in settled:
        if future.done():
            continue
        if isinstance(outcome, _Failed):
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome)

"""The SQLite store's connections: reads on the event loop, writes on one thread.

SQLAlchemy runs the migrations only. At runtime its per-query cost (statement compilation
and caching, result-row wrapping) is several times that of a primary-key lookup itself, and
the session read sits on every authenticated request, so this module speaks ``sqlite3``.

Reads run on the event-loop thread, on a read connection of their own. In WAL mode a reader
never waits for the writer (it reads the last committed snapshot), and a primary-key lookup
(~10 us measured) is cheaper than a round trip to a worker thread (50-80 us). Writes go
to one dedicated thread with its own connection: they never block the loop, and a single
writer serialises them without SQLite lock contention. That thread group-commits: every
write queued while it is busy runs in the next transaction, each in its own savepoint, and
one fsync'd COMMIT acknowledges them all (``sqlite_writer.py`` says why and how).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from twofold.errors import ConfigurationError, StoreUnavailable
from twofold.store import sqlite_statements as sql
from twofold.store.migrate import head_revision
from twofold.store.sqlite_statements import translate_error
from twofold.store.sqlite_writer import SQLiteWriter

_T = TypeVar("_T")

_MIGRATE_HINT = "run `twofold migrate` to create or upgrade it"

# A WAL reader only meets a lock in rare moments (recovery after a crash, a journal-mode
# change). It waits on the event loop, stalling every request, so it gives up far sooner
# than the writer (busy_timeout_ms, 5 s by default) and the one request fails closed.
_READER_BUSY_TIMEOUT_MS = 200

# FULL, not NORMAL: with NORMAL a commit in WAL mode survives a killed process but not a
# power cut or OS crash. A registration, a logout or a refresh rotation that was
# acknowledged must not come back (a spent refresh token would become usable again), so
# each commit waits for its fsync (shared by all the writes of a batch: group commit).
SYNCHRONOUS = "FULL"


class SQLiteConnection:
    """The two connections to one SQLite file and the ways to use them.

    Use it from the event loop that opened it: the read connection belongs to that thread.
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._reader: sqlite3.Connection | None = None
        self._writer: SQLiteWriter | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open the connections; ``ConfigurationError`` unless the schema is at head."""
        if self._reader is not None:
            return
        try:
            self._reader = self._connect(min(self._busy_timeout_ms, _READER_BUSY_TIMEOUT_MS))
            self._reader.execute("PRAGMA query_only=ON")
            self._check_revision(self._reader)
            # The connection is made on the writer thread, so it keeps sqlite3's
            # same-thread check.
            self._writer = SQLiteWriter(self._connect_writer)
            await self._writer.start()
        except BaseException as exc:
            await self.close()
            mapped = translate_error(exc) if isinstance(exc, sqlite3.Error) else None
            if mapped is None:
                raise
            raise mapped from exc

    async def close(self) -> None:
        """Close both connections and stop the writer thread; closing twice is harmless."""
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        try:
            if writer is not None:
                # The writes already queued run first, so nothing is cut off mid-way.
                await writer.close()
        finally:
            if reader is not None:
                reader.close()

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless both the read side and the writer answer."""
        self._read_one("SELECT 1", ())
        await self._write(lambda conn: conn.execute("SELECT 1").fetchone())

    def _connect(self, busy_timeout_ms: int) -> sqlite3.Connection:
        # mode=rw: never create the file here; a missing database is an operator error.
        uri = self.path.resolve().as_uri() + "?mode=rw"
        try:
            # isolation_level=None: autocommit. Every statement here is its own atomic
            # transaction, and the reader never holds a snapshot open between requests
            # (which would stop checkpoints from recycling the WAL).
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=0)
        except sqlite3.Error as exc:
            if not self.path.exists():
                raise ConfigurationError(
                    f"The database file {self.path} does not exist; {_MIGRATE_HINT}."
                ) from exc
            raise StoreUnavailable(f"The SQLite database cannot be opened ({exc}).") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect(self._busy_timeout_ms)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreUnavailable(f"SQLite refused WAL mode (journal_mode={mode}).")
            conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_revision(self, conn: sqlite3.Connection) -> None:
        try:
            row = conn.execute(sql.SCHEMA_REVISION).fetchone()
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith("no such table"):
                raise StoreUnavailable(f"The SQLite database cannot be read ({exc}).") from exc
            row = None
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"The SQLite database cannot be read ({exc}).") from exc
        expected = head_revision()
        if row is None:
            raise ConfigurationError(f"The database {self.path} is not migrated; {_MIGRATE_HINT}.")
        if row[0] != expected:
            raise ConfigurationError(
                f"The database {self.path} is at schema revision {row[0]!r} but this "
                f"Twofold expects {expected!r}; {_MIGRATE_HINT} (with the matching version)."
            )

    # -- plumbing ----------------------------------------------------------------------

    def _read_one(self, statement: str, params: tuple[Any, ...]) -> Any:
        return self._read(statement, params, sqlite3.Cursor.fetchone)

    def _read_all(self, statement: str, params: tuple[Any, ...]) -> list[Any]:
        return self._read(statement, params, sqlite3.Cursor.fetchall)

    def _read(
        self,
        statement: str,
        params: tuple[Any, ...],
        fetch: Callable[[sqlite3.Cursor], _T],
    ) -> _T:
        reader = self._reader
        if reader is None:
            raise StoreUnavailable("The SQLite store is not open.")
        try:
            # Fetching steps the statement too, so it can fail like execute can.
            return fetch(reader.execute(statement, params))
        except sqlite3.Error as exc:
            mapped = translate_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def _write(
        self, work: Callable[[sqlite3.Connection], _T], conflict: str | None = None
    ) -> _T:
        """Run ``work`` on the writer, atomically (in its own savepoint), and return its
        result once the batch it ran in has committed. ``work`` must not BEGIN, COMMIT or
        ROLLBACK: the writer's transaction is shared with the rest of the batch."""
        writer = self._writer
        if writer is None:
            raise StoreUnavailable("The SQLite store is not open.")
        try:
            return await writer.run(work)
        except sqlite3.Error as exc:
            mapped = translate_error(exc, conflict)
            if mapped is None:
                raise
            raise mapped from exc

    async def _execute(self, statement: str, params: tuple[Any, ...]) -> int:
        """Run one write statement; returns the number of rows it changed."""
        return await self._write(lambda conn: conn.execute(statement, params).rowcount)

    async def _atomic(
        self, work: Callable[[sqlite3.Connection], _T], conflict: str | None = None
    ) -> _T:
        """Run several statements on the writer as one atomic unit.

        The same as ``_write`` (every job has its own savepoint); the name marks the
        callers whose statements must stand or fall together.
        """
        return await self._write(work, conflict)

"""The activities' ledger: an append-only SQLite file that survives a SIGKILL of the app,
so a notebook can prove which steps ran and how often, and hold an activity at a gate."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab_env.core.probes import wait_until
from lab_env.errors import LabEnvError
from lab_env.runtime.apps import DaprApp


@dataclass(frozen=True)
class LedgerRow:
    seq: int
    key: str  # usually the workflow instance id
    step: str
    event: str  # started, done, effect, skipped, ...
    detail: object
    at: float
    pid: int


class Ledger:
    """An append-only record of what activities did, in a SQLite file.

    Every write commits at once, so the file holds everything written before
    a SIGKILL. ``apply_once(effect)`` claims a name: only its first caller
    gets True. ``transaction()`` groups claims and rows into one commit.

    A notebook (or a check) can ``arm_crash(key, step)``: the activity of that
    key and step then SIGKILLs its own process right after its first commit
    past the "started" row, to show what a crash between two writes leaves.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        with self._db() as db:
            # A rollback journal, not WAL: a grader reading the ledger as root beside a sandboxed app (its
            # own uid) would otherwise create the WAL's shared-memory file when it connects first, and the
            # app's writes in that moment fail with "attempt to write a readonly database".
            db.executescript(
                "PRAGMA journal_mode=DELETE;"
                "CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, step TEXT,"
                " event TEXT, detail TEXT, at REAL, pid INTEGER);"
                "CREATE TABLE IF NOT EXISTS effects (effect TEXT PRIMARY KEY, at REAL);"
                "CREATE TABLE IF NOT EXISTS gates (gate TEXT PRIMARY KEY);"
                "CREATE TABLE IF NOT EXISTS held (gate TEXT PRIMARY KEY);"
            )

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def append(self, key: str, step: str, event: str, detail: object = None) -> None:
        with self._db() as db:
            _insert(db, key, step, event, detail)
        if event == "started":  # this thread now runs the activity ``step`` of ``key`` (arm_crash)
            _ACTIVITY.current = (key, step)
        else:
            self._crash_if_armed()

    def apply_once(self, effect: str) -> bool:
        """Claim ``effect``: True the first time, False for every repeat."""
        with self._db() as db:
            claimed = _claim(db, effect)
        self._crash_if_armed()
        return claimed

    @contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        """One SQLite transaction: every claim and row made through it is committed together when
        the block ends, or none is (an exception rolls it back; a SIGKILL before the end loses it all)."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield LedgerTransaction(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        self._crash_if_armed()

    def arm_crash(self, key: str, step: str) -> None:
        """Make the activity ``step`` of ``key`` die (SIGKILL) right after its next commit past "started"."""
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO gates (gate) VALUES (?)", (_crash_gate(key, step),))

    def crashed(self, key: str, step: str) -> bool:
        """True once an armed crash has happened."""
        return self.held(_crash_gate(key, step))

    def _crash_if_armed(self) -> None:
        current = getattr(_ACTIVITY, "current", None)
        if current is None:
            return
        gate = _crash_gate(*current)
        with self._db() as db:
            if db.execute("DELETE FROM gates WHERE gate = ?", (gate,)).rowcount != 1:
                return  # not armed, or already crashed once: the re-run goes through
            db.execute("INSERT OR IGNORE INTO held (gate) VALUES (?)", (gate,))
        os.kill(os.getpid(), signal.SIGKILL)

    def rows(self, key: str | None = None) -> list[LedgerRow]:
        with self._db() as db:
            query = "SELECT seq, key, step, event, detail, at, pid FROM entries"
            found = (
                db.execute(query + " WHERE key = ? ORDER BY seq", (key,))
                if key is not None
                else db.execute(query + " ORDER BY seq")
            )
            return [
                LedgerRow(seq, k, step, event, json.loads(detail), at, pid)
                for seq, k, step, event, detail, at, pid in found
            ]

    def count(self, key: str, step: str, event: str) -> int:
        with self._db() as db:
            return db.execute(
                "SELECT COUNT(*) FROM entries WHERE key = ? AND step = ? AND event = ?", (key, step, event)
            ).fetchone()[0]

    def effects(self, prefix: str = "") -> list[str]:
        with self._db() as db:
            return [
                e
                for (e,) in db.execute(
                    "SELECT effect FROM effects WHERE effect LIKE ? ORDER BY at", (prefix.replace("%", r"\%") + "%",)
                )
            ]

    # A gate lets a notebook hold an activity at a known point (to crash the
    # host while it runs) and release it later.
    def open_gate(self, gate: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO gates (gate) VALUES (?)", (gate,))

    def gate_open(self, gate: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM gates WHERE gate = ?", (gate,)).fetchone() is not None

    def wait_at_gate(self, gate: str, poll: float = 0.05) -> None:
        """Block (in an activity) until the notebook opens ``gate``; ``held``
        tells the notebook that something is waiting there."""
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO held (gate) VALUES (?)", (gate,))
        # No deadline: the gate stays shut until the notebook opens it (or the host is killed).
        wait_until(lambda: self.gate_open(gate), math.inf, f"gate {gate}", interval=poll)

    def held(self, gate: str) -> bool:
        """True once an activity has reached ``gate`` (it may still be waiting)."""
        with self._db() as db:
            return db.execute("SELECT 1 FROM held WHERE gate = ?", (gate,)).fetchone() is not None


class LedgerTransaction:
    """What a ``Ledger.transaction()`` block writes with: claims and rows, committed together."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def claim(self, effect: str) -> bool:
        """Claim ``effect`` (a name): True the first time it is claimed, False for every repeat."""
        return _claim(self._db, effect)

    def append(self, key: str, step: str, event: str, detail: object = None) -> None:
        """Add a row (``event``: "effect", "done", ...) for ``key`` and ``step``."""
        _insert(self._db, key, step, event, detail)


_ACTIVITY = threading.local()  # (key, step) of the activity this thread runs: its "started" row says


def _crash_gate(key: str, step: str) -> str:
    return f"crash:{key}:{step}"


def _claim(db: sqlite3.Connection, effect: str) -> bool:
    return db.execute("INSERT OR IGNORE INTO effects (effect, at) VALUES (?, ?)", (effect, time.time())).rowcount == 1


def _insert(db: sqlite3.Connection, key: str, step: str, event: str, detail: object) -> None:
    db.execute(
        "INSERT INTO entries (key, step, event, detail, at, pid) VALUES (?, ?, ?, ?, ?, ?)",
        (key, step, event, json.dumps(detail), time.time(), os.getpid()),
    )


def ledger(app: DaprApp | None = None) -> Ledger:
    """The ledger of ``app`` (from the notebook), or of this process (inside an app)."""
    path = app.env.get("LAB_LEDGER") if app is not None else os.environ.get("LAB_LEDGER")
    if not path:
        raise LabEnvError("this app has no ledger", "start it with lab_env.runtime.workflows.start_workflow_app")
    return Ledger(path)

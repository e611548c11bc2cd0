"""The activities' ledger: an append-only SQLite file that survives a SIGKILL of the app,
so a notebook can prove which steps ran and how often, and hold an activity at a gate."""

from __future__ import annotations

import json
import math
import os
import sqlite3
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
    a SIGKILL. ``apply_once(effect)`` makes an external effect idempotent:
    only its first caller gets True.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        with self._db() as db:
            db.executescript(
                "PRAGMA journal_mode=WAL;"
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
            db.execute(
                "INSERT INTO entries (key, step, event, detail, at, pid) VALUES (?, ?, ?, ?, ?, ?)",
                (key, step, event, json.dumps(detail), time.time(), os.getpid()),
            )

    def apply_once(self, effect: str) -> bool:
        """Claim ``effect``: True the first time, False for every repeat."""
        with self._db() as db:
            return (
                db.execute("INSERT OR IGNORE INTO effects (effect, at) VALUES (?, ?)", (effect, time.time())).rowcount
                == 1
            )

    def effect_once(self, key: str, step: str, detail: object = None) -> bool:
        """Apply a step's effect (an ``effect`` row) once per key and step.

        The claim and the effect are one SQLite transaction: a process killed
        between "I did it" and "I remember doing it" would otherwise either
        lose the effect or apply it twice on the re-run. True if applied now.
        """
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            claimed = (
                db.execute(
                    "INSERT OR IGNORE INTO effects (effect, at) VALUES (?, ?)", (f"{key}:{step}", time.time())
                ).rowcount
                == 1
            )
            if claimed:
                db.execute(
                    "INSERT INTO entries (key, step, event, detail, at, pid) VALUES (?, ?, ?, ?, ?, ?)",
                    (key, step, "effect", json.dumps(detail), time.time(), os.getpid()),
                )
            db.execute("COMMIT")
            return claimed

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


def ledger(app: DaprApp | None = None) -> Ledger:
    """The ledger of ``app`` (from the notebook), or of this process (inside an app)."""
    path = app.env.get("LAB_LEDGER") if app is not None else os.environ.get("LAB_LEDGER")
    if not path:
        raise LabEnvError("this app has no ledger", "start it with lab_env.runtime.workflows.start_workflow_app")
    return Ledger(path)

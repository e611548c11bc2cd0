"""Run a slow command with a progress bar driven by its own output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from lab_env.errors import LabEnvError


def run_with_progress(
    argv: Sequence[str | os.PathLike[str]],
    desc: str,
    log_path: Path,
    *,
    total: int | None = None,
    counts: Callable[[str], bool] = lambda line: True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    fix: str = "read the log named above",
) -> None:
    """Run ``argv``; each output line for which ``counts`` is true advances the bar.

    The full output goes to ``log_path``; on failure the error names the log
    and quotes its last line.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    last, last_is_error = "", False
    with open(log_path, "w") as log, tqdm(total=total, desc=desc, unit="step", leave=True) as bar:
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            text = line.strip()
            # Report the last error-looking line, else the last line at all.
            if text and ("ERROR" in text or "error" in text or not last_is_error):
                last, last_is_error = text, ("ERROR" in text or "error" in text)
            if counts(line):
                bar.update(1)
        code = proc.wait()
        if code == 0 and total is not None:
            bar.update(max(0, total - bar.n))
    if code != 0:
        raise LabEnvError(f"{desc} failed (exit {code}): {last[:200]} [log: {log_path}]", fix)

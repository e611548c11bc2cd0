"""What the test suite costs, per module and per fixture, from a fresh clone.

    python bench/suite_bench.py run --label before --commit 142887b
    python bench/suite_bench.py run --label after              # HEAD
    python bench/suite_bench.py run --label after-busy --busy  # a busy loop on one core beside it
    python bench/suite_bench.py run --label where --acct       # and CPU by command (BSD process accounting)
    python bench/suite_bench.py report                         # rewrite bench/results/suite.md

`run` clones this repository at the commit into a temporary folder and runs
`bash .ci/run` there, as CI does, with bench/suite_timing.py loaded into every
pytest process (so an old commit is timed by the same plugin). It keeps the
per-test and per-fixture records in bench/results/suite-<label>.json and
rewrites bench/results/suite.md: the runs side by side, then for each run
its modules and fixtures sorted by cost, with ratios against the run
labelled `before` (the reference).

Wall is elapsed seconds; CPU is the machine's busy CPU seconds over the span
(every process, since kernels, sidecars and brokers do the work). With tests
side by side, spans overlap and their CPU is shared, so a module's CPU is an
upper bound there; the run's total CPU is exact.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REFERENCE = "before"
TOP = 25


def _busy_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (user, nice, system, irq, softirq)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields)
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _pytest_seconds(log: str) -> float:
    """The tests' wall: tests/run_suite.py's closing line ('tests: 1162.3 s of wall ...'), which counts
    lanes that overlap once; from an older runner, the sum of each pytest's closing line."""
    said = re.findall(r"^tests: ([0-9.]+) s of wall", log, flags=re.M)
    if said:
        return float(said[-1])
    return sum(float(m) for m in re.findall(r"^=+ .*? in ([0-9.]+)s", log, flags=re.M))


def _cpu_by_command(pacct: Path) -> dict[str, float]:
    """CPU seconds (user + system) of every process that ended during the run, by command name,
    from the kernel's process accounting file (Debian's acct: accton, dump-acct)."""
    dump = subprocess.run(["dump-acct", str(pacct)], capture_output=True, text=True, check=True).stdout
    ticks = os.sysconf("SC_CLK_TCK")
    by: dict[str, float] = defaultdict(float)
    for line in dump.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) > 3:
            by[fields[0]] += (float(fields[2]) + float(fields[3])) / ticks
    return dict(sorted(by.items(), key=lambda kv: -kv[1]))


def run(label: str, commit: str, busy: bool, acct: bool = False) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"suite-bench-{label}-"))
    clone = workdir / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", commit], check=True)
    sha = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    records = workdir / "records.jsonl"
    log_path = workdir / "ci.log"
    env = dict(
        os.environ,
        CI="true",
        SUITE_TIMING_OUT=str(records),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "bench"), os.environ.get("PYTHONPATH")])),
        PYTEST_ADDOPTS=" ".join(filter(None, [os.environ.get("PYTEST_ADDOPTS"), "-p suite_timing"])),
    )
    loop = None
    if busy:  # one core spun flat out for the whole run, as a learner's other work would
        loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    print(f"suite_bench: {label} at {sha} in {clone}; log {log_path}", flush=True)
    pacct = workdir / "pacct"
    if acct:
        pacct.touch()
        subprocess.run(["accton", str(pacct)], check=True, capture_output=True)
    wall0, cpu0 = time.perf_counter(), _busy_cpu()
    try:
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                ["bash", ".ci/run"],
                cwd=clone,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for line in proc.stdout:
                log.write(line)
                sys.stdout.write(line)
            rc = proc.wait()
    finally:
        if loop:
            loop.kill()
        if acct:
            subprocess.run(["accton", "off"], capture_output=True)
    wall, cpu = time.perf_counter() - wall0, _busy_cpu() - cpu0
    text = log_path.read_text()
    summary = [ln.strip("= ") for ln in text.splitlines() if re.match(r"^=+ .* in [0-9.]+s", ln)]
    result = {
        "label": label,
        "commit": sha,
        "busy_loop": busy,
        "exit_code": rc,
        "ci_wall_s": round(wall, 1),
        "ci_cpu_s": round(cpu, 1),
        "pytest_wall_s": round(_pytest_seconds(text), 1),
        "cpu_by_command": {k: round(v, 1) for k, v in _cpu_by_command(pacct).items()} if acct else {},
        "summary": summary,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "records": [json.loads(ln) for ln in records.read_text().splitlines()] if records.exists() else [],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"suite-{label}.json").write_text(json.dumps(result, indent=1) + "\n")
    if rc == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"suite_bench: .ci/run exited {rc}; the clone and its log stay in {workdir}", flush=True)
    return result


def _by_module(records: list[dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for r in records:
        if r["kind"] == "test":
            row = out[r["module"]]
            row[0] += r["wall"]
            row[1] += r["cpu"]
            row[2] += r["phase"] == "call"
    return out


def _by_fixture(records: list[dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for r in records:
        if r["kind"] == "fixture":
            row = out[f"{r['name']} ({r['scope']}, {r['module']})"]
            row[0] += r["wall"]
            row[1] += r["cpu"]
            row[2] += 1
    return out


def _ratio(now: float, ref: float | None) -> str:
    return f"{now / ref:.2f}" if ref else "–"


def report() -> str:
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("suite-*.json"))]
    runs.sort(key=lambda r: (r["label"] != REFERENCE, r["when"]))
    ref = next((r for r in runs if r["label"] == REFERENCE), None)
    lines = [
        "# The test suite's cost",
        "",
        "Made by `bench/suite_bench.py`: each run is `bash .ci/run` in a fresh clone on this machine "
        "(2 cores), with bench/suite_timing.py timing every test phase and fixture. Wall is elapsed "
        "seconds; CPU is the machine's busy CPU seconds over the span (all processes). Ratios are "
        f"against the run labelled `{REFERENCE}`.",
        "",
        "| run | commit | when | busy loop beside it | result | pytest wall (s) | whole .ci/run (s) "
        "| machine CPU (s) | pytest ratio | .ci/run ratio |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        lines.append(
            f"| {r['label']} | {r['commit']} | {r['when']} | {'yes' if r['busy_loop'] else 'no'} "
            f"| {'; '.join(r['summary']) or 'exit ' + str(r['exit_code'])} | {r['pytest_wall_s']:.0f} "
            f"| {r['ci_wall_s']:.0f} | {r['ci_cpu_s']:.0f} "
            f"| {_ratio(r['pytest_wall_s'], ref and ref['pytest_wall_s'])} "
            f"| {_ratio(r['ci_wall_s'], ref and ref['ci_wall_s'])} |"
        )
    ref_mod = _by_module(ref["records"]) if ref else {}
    ref_fix = _by_fixture(ref["records"]) if ref else {}
    for r in runs:
        lines += [
            "",
            f"## {r['label']} ({r['commit']}): test modules by wall time",
            "",
            "| module | tests | wall (s) | CPU (s) | wall vs before |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        mods = sorted(_by_module(r["records"]).items(), key=lambda kv: -kv[1][0])
        for name, (wall, cpu, n) in mods:
            lines.append(f"| {name} | {n} | {wall:.1f} | {cpu:.1f} | {_ratio(wall, ref_mod.get(name, [None])[0])} |")
        lines += [
            "",
            f"### {r['label']}: the {TOP} costliest fixture set-ups",
            "",
            "| fixture (scope, where) | set-ups | wall (s) | CPU (s) | wall vs before |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        fixes = sorted(_by_fixture(r["records"]).items(), key=lambda kv: -kv[1][0])[:TOP]
        for name, (wall, cpu, n) in fixes:
            lines.append(f"| {name} | {n} | {wall:.1f} | {cpu:.1f} | {_ratio(wall, ref_fix.get(name, [None])[0])} |")
        by_command = r.get("cpu_by_command") or {}
        if by_command:
            total = sum(by_command.values())
            lines += [
                "",
                f"### {r['label']}: CPU by command (process accounting, processes that ended during the run)",
                "",
                "| command | CPU (s) | share |",
                "| --- | ---: | ---: |",
                *(f"| {name} | {cpu:.0f} | {cpu / total:.0%} |" for name, cpu in list(by_command.items())[:TOP]),
            ]
    text = "\n".join(lines) + "\n"
    (RESULTS / "suite.md").write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run .ci/run in a fresh clone and record it")
    r.add_argument("--label", required=True)
    r.add_argument("--commit", default="HEAD")
    r.add_argument("--busy", action="store_true", help="spin one core beside the run")
    r.add_argument("--acct", action="store_true", help="CPU by command, from process accounting (root, acct)")
    sub.add_parser("report", help="rewrite bench/results/suite.md from the recorded runs")
    args = parser.parse_args()
    if args.cmd == "run":
        result = run(args.label, args.commit, args.busy, args.acct)
        print(report())
        return result["exit_code"]
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())

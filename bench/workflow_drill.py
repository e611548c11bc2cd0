"""Crash-and-resume drill for Dapr Workflows: kill the host at a random step, N times.

    .venv/bin/python bench/workflow_drill.py [--runs 20] [--seed 4]

Runs lab 04's order workflow (the ``order_workflow.py`` module of
solutions/04_workflows.ipynb, five activities, each step's effect claimed
once per order in the ledger) in one app with its sidecar on the running
stack (`lab-env up`; the stack is used, never stopped). Each run:

1. picks a step at random (seeded) and schedules an order that holds inside
   that step until the bench opens a gate in the ledger;
2. once the ledger shows the step started, SIGKILLs the app and its sidecar
   together (DaprApp.crash), starts both again and waits for the worker;
3. opens the gate and waits for the instance to end.

Per run it records the final status, how often each step started, how often
each step's effect was applied, and the seconds from the restart to the
instance's end. Expected: every run COMPLETED, steps before the killed one
started once, the killed one twice, later ones once, and every effect
exactly once. The reference, in the same run, is the same number of orders
without a crash: the ratio shows what a crash costs.

Exits non-zero if any run fails, loses a step or applies an effect twice.
Prints the table and writes bench/results/workflow_drill.{json,md}. About
2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from lab_env import stop_app, unique_name
from lab_env.core.probes import wait_until
from lab_env.core.versions import pins
from lab_env.notebooks.workspace import app_file_source
from lab_env.runtime import workflows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SOLUTION = ROOT / "solutions" / "04_workflows.ipynb"
STEPS = ["validate", "reserve", "pack", "charge", "ship"]


def one_order(app, order_id: str, hold_at: str | None) -> dict:
    ledger = workflows.ledger(app)
    wf_client = workflows.client(app)
    try:
        order = {"id": order_id, "quantity": 1, **({"hold_at": hold_at} if hold_at else {})}
        instance = wf_client.schedule_new_workflow("order_workflow", input=order, instance_id=order_id)
    finally:
        wf_client.close()
    scheduled = time.monotonic()
    resumed = None
    if hold_at:
        wait_until(lambda: ledger.held(f"{instance}:{hold_at}"), 120, f"{hold_at} to reach its gate")
        app.crash()
        restarted = time.monotonic()
        workflows.restart(app)
        ledger.open_gate(f"{instance}:{hold_at}")
        state = workflows.wait(app, instance, 300, raise_failed=False)
        resumed = time.monotonic() - restarted
    else:
        state = workflows.wait(app, instance, 300, raise_failed=False)
    rows = ledger.rows(instance)
    return {
        "order": order_id,
        "killed_in": hold_at,
        "status": state.runtime_status.name,
        "error": state.failure_details.message if state.failure_details else None,
        "started": dict(Counter(r.step for r in rows if r.event == "started")),
        "effects": dict(Counter(r.step for r in rows if r.event == "effect")),
        "seconds": time.monotonic() - scheduled,
        "restart_to_end_s": resumed,
    }


def verdict(run: dict) -> list[str]:
    problems = []
    if run["status"] != "COMPLETED":
        problems.append(f"{run['status']}: {run['error']}")
    killed = STEPS.index(run["killed_in"]) if run["killed_in"] else -1
    for i, step in enumerate(STEPS):
        expected = 2 if i == killed else 1
        if run["started"].get(step, 0) != expected:
            problems.append(f"{step} started {run['started'].get(step, 0)}x (expected {expected})")
        if run["effects"].get(step, 0) != 1:
            problems.append(f"{step} effect applied {run['effects'].get(step, 0)}x")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    folder = Path(tempfile.mkdtemp(prefix="workflow-drill-"))
    (folder / "order_workflow.py").write_text(app_file_source(SOLUTION, "order_workflow.py"))
    app = workflows.start_workflow_app(unique_name("drill"), "order_workflow", cwd=folder)
    try:
        reference = [one_order(app, f"clean-{i}-{unique_name('o')}", None) for i in range(args.runs)]
        drills = []
        for i in range(args.runs):
            step = rng.choice(STEPS)
            run = one_order(app, f"drill-{i}-{unique_name('o')}", step)
            run["problems"] = verdict(run)
            drills.append(run)
            print(
                f"run {i + 1:>2}/{args.runs}: killed in {step:<8} -> {run['status']:<9} "
                f"{run['restart_to_end_s']:5.2f} s after restart  {'; '.join(run['problems']) or 'ok'}",
                flush=True,
            )
    finally:
        stop_app(app)

    clean_s = statistics.median(r["seconds"] for r in reference)
    crash_s = statistics.median(r["seconds"] for r in drills)
    completed = sum(r["status"] == "COMPLETED" for r in drills)
    lost = sum(1 for r in drills for s in STEPS if r["effects"].get(s, 0) == 0)
    doubled = sum(1 for r in drills for s in STEPS if r["effects"].get(s, 0) > 1)
    reruns = sum(1 for r in drills for s in STEPS if r["started"].get(s, 0) > 1)
    by_step = Counter(r["killed_in"] for r in drills)
    rows = [
        ("runs (host SIGKILLed once each)", f"{args.runs}"),
        ("completed", f"{completed} of {args.runs}"),
        ("steps lost (effect never applied)", f"{lost}"),
        ("effects applied twice", f"{doubled}"),
        ("steps re-executed after the kill (at-least-once)", f"{reruns}"),
        ("killed in step", ", ".join(f"{s} {by_step[s]}" for s in STEPS)),
        ("median restart -> completed", f"{statistics.median(r['restart_to_end_s'] for r in drills):.2f} s"),
        ("max restart -> completed", f"{max(r['restart_to_end_s'] for r in drills):.2f} s"),
        ("median order with a crash", f"{crash_s:.2f} s"),
        ("median order without a crash (reference)", f"{clean_s:.3f} s"),
        ("crash / reference", f"{crash_s / clean_s:.1f}x"),
    ]
    width = max(len(k) for k, _ in rows)
    table = "\n".join(f"| {k:<{width}} | {v} |" for k, v in rows)
    header = f"| {'measure':<{width}} | value |\n|{'-' * (width + 2)}|-------|"
    env = (
        f"daprd {pins().dapr_runtime}, dapr-ext-workflow {pins().dapr_python_sdk}, "
        f"{platform.python_version()}, seed {args.seed}"
    )
    print("\n" + header + "\n" + table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "workflow_drill.json").write_text(
        json.dumps({"env": env, "reference": reference, "drills": drills}, indent=1)
    )
    (RESULTS / "workflow_drill.md").write_text(
        "# Workflow crash-and-resume drill\n\n"
        f"`python bench/workflow_drill.py --runs {args.runs} --seed {args.seed}` on {env}.\n"
        "Each run SIGKILLs the app and its sidecar while a randomly chosen step of lab 04's 5-step order workflow\n"
        "runs, restarts both, and lets the instance finish. Effects are claimed once per order in the ledger.\n\n"
        + header
        + "\n"
        + table
        + "\n"
    )
    failed = [r for r in drills if r["problems"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

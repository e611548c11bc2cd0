"""lab_env.runtime.scale against the real runtime: many actors activated through
their sidecars over several hosts, and `lab-env scale` end to end."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from lab_env import stop_app
from lab_env.errors import LabEnvError
from lab_env.runtime import scale
from lab_env.runtime.actors import actor_type_in

pytestmark = pytest.mark.stack


def test_activations_spread_over_two_hosts_and_every_actor_answers():
    hosts = scale.start_hosts(2, name="t-scale")
    try:
        kind = actor_type_in(hosts[0], "ProductActor")
        samples = scale.activate(hosts, kind, 600, "Stock", in_flight=16, slices=[200, 400], progress=False)
        assert [s.actors for s in samples] == [200, 400, 600]
        assert sum(s.calls for s in samples) == 600
        assert all(s.p50_ms > 0 and s.p99_ms >= s.p50_ms for s in samples)
        assert [len(s.latencies_ms) for s in samples] == [200, 200, 200]
        assert "latencies_ms" not in samples[0].as_dict()
        assert set(samples[-1].rss_mb) == {f"{h.app_id} {role}" for h in hosts for role in ("app", "sidecar")}
        spread = scale.placement_spread(hosts, kind)
        # Each actor is active on exactly one host, and placement used both.
        assert sum(spread.values()) == 600 and all(n > 0 for n in spread.values()), spread
        with pytest.raises(LabEnvError, match="answered 500"):
            scale.run(hosts, scale.actor_calls(kind, range(1), "NoSuchMethod"), in_flight=1)
    finally:
        for host in hosts:
            stop_app(host)


def test_lab_env_scale_reports_rate_memory_and_spread(tmp_path):
    plot = tmp_path / "scale.png"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab_env.cli.main",
            "scale",
            "--actors",
            "500",
            "--hosts",
            "2",
            "--in-flight",
            "16",
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"^500 actors activated in [\d.]+ s: [\d,]+/s, p99 \d+ ms", out.stdout, re.M), out.stdout
    assert len(re.findall(r"active actors \(placement's choice\)", out.stdout)) == 2, out.stdout
    assert plot.stat().st_size > 10_000


def test_actor_hosts_collect_garbage_less_often():
    # In a fresh interpreter: the pytest process keeps Python's defaults.
    code = (
        "import gc; from lab_env.runtime.actors import tune_gc_for_actors, ACTOR_HOST_GC_THRESHOLDS as T; "
        "before = gc.get_threshold(); tune_gc_for_actors(); "
        "print(before, gc.get_threshold() == T, gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(700, 10, 10) True True"

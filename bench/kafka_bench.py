"""Kafka on the lab broker: Python clients next to Kafka's own tools, the
exactly-once loop's throughput, and an exactly-once drill under SIGKILL.

    .venv/bin/python bench/kafka_bench.py [--records 1000000] [--runs 3]
        [--pipeline-records 50000] [--batches 50,500] [--drill-records 5000] [--kills 10]

Measures, in one run on this machine, against the stack's broker (`lab-env up`;
the stack is used, never stopped):

1. Producer throughput, N records of 100 bytes to a fresh 1-partition topic
   per run, acks=all, median of --runs: confluent-kafka's Producer
   (enable.idempotence=true, linger.ms=5, librdkafka's default batching)
   is the reference; next to it Kafka's ProducerPerformance tool with its
   defaults, and with a bigger batch.size. Every run checks that the topic
   ends up holding exactly N records.
2. Consumer throughput, the same N records read back by confluent-kafka's
   Consumer and by Kafka's ConsumerPerformance tool (a fresh group each run),
   counted from subscribe (group join included) and from assignment.
3. The exactly-once consume-transform-produce loop (lab_env.runtime.kafka.streams.run in a
   worker process, this script with --pipeline) from a 3-partition input
   topic to a 3-partition output topic, at two batch sizes (one transaction
   per batch), next to the same loop at-least-once (produce, flush, then
   commit the consumer's offsets) as the reference. Done means the group's
   committed offsets reach the input's end (the input is not transactional,
   so its end offset is its record count); the output is then read back
   read_committed and must hold every input id once. Its end offsets exceed
   that count by the transaction markers (control records), also reported.
4. The exactly-once drill: a worker (one 2 ms step per record, so most of
   its time is inside a transaction) processes --drill-records unique ids;
   --kills times the bench waits for more committed progress, SIGKILLs the
   worker and restarts it. When all input is processed the output is read
   read_committed (must hold each id exactly once) and read_uncommitted
   (also shows the records of the transactions the kills aborted). The same
   drill with the at-least-once loop is the reference: it duplicates.

Exits non-zero if the exactly-once drill loses or duplicates a record.
Prints the tables and writes bench/results/kafka.{json,md}. Deletes the topics
(and, where the broker lets it, the groups) it created, and stops its
workers, also on failure. About 2.5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_env import unique_name  # noqa: E402
from lab_env.errors import LabEnvError  # noqa: E402
from lab_env.runtime import kafka  # noqa: E402
from lab_env.runtime.kafka import streams  # noqa: E402
from lab_env.runtime.workers import Worker, python_command, start_worker, stop_worker, wait_for  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RECORD_SIZE = 100
PY_PRODUCER = {"enable.idempotence": True, "acks": "all", "linger.ms": 5}
JAVA_DEFAULT = ["acks=all"]
JAVA_TUNED = ["acks=all", "linger.ms=5", "batch.size=262144"]
PIPE_PARTITIONS = 3
SLOW_GAP_S = 0.05  # a commit this long after the previous one counts as slow

# Everything this run created, removed in main()'s finally.
TOPICS: list[str] = []
GROUPS: list[str] = []
WORKERS: list[Worker] = []


# --- the worker: this script with --pipeline ---------------------------------


def pipeline_main(args: argparse.Namespace) -> None:
    """Copy each input record to the output (exactly-once or at-least-once),
    printing `batch <records> <time>` after each commit."""
    name = os.environ.get("WORKER_NAME", f"kbench-{os.getpid()}")
    step = args.delay_ms / 1000

    def transform(state: dict, record: kafka.Record) -> list[streams.Emit]:
        if step:
            time.sleep(step)  # the work a record takes
        return [
            streams.Emit(
                args.output, record.key, {"id": record.value["id"], "src": f"{record.partition}:{record.offset}"}
            )
        ]

    def committed(n: int) -> None:
        print(f"batch {n} {time.time():.6f}", flush=True)

    if args.pipeline == "eos":
        streams.run(streams.Processor(name, args.group, [args.input], transform, batch=args.batch), on_batch=committed)
        return

    from confluent_kafka import Consumer, Producer

    kafka.exit_on_sigterm()
    producer = Producer(kafka.config({"enable.idempotence": True, "partitioner": "murmur2_random", "linger.ms": 5}))
    # The consumer settings of lab_env.runtime.kafka.streams.run, minus read_committed (the input has no transactions).
    consumer = Consumer(
        kafka.config(
            {
                "group.id": args.group,
                "client.id": name,
                "group.instance.id": name,
                "session.timeout.ms": 10000,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
    )
    consumer.subscribe(
        [args.input], on_assign=lambda c, ps: print("assigned", sorted(p.partition for p in ps), flush=True)
    )
    try:
        while True:
            msgs = [m for m in consumer.consume(args.batch, 0.5) if not m.error()]
            if not msgs:
                continue
            for msg in msgs:
                for emit in transform({}, kafka.Record.of(msg)):
                    producer.produce(emit.topic, key=emit.key, value=json.dumps(emit.value))
            if producer.flush(30):
                raise RuntimeError("outputs not delivered in 30 s")
            # Outputs first, offsets second: a crash in between repeats the batch.
            consumer.commit(asynchronous=False)
            committed(len(msgs))
    finally:
        consumer.close()


# --- helpers -----------------------------------------------------------------


def new_topic(prefix: str, partitions: int) -> str:
    name = unique_name(prefix)
    TOPICS.append(name)
    kafka.create_topics({name: partitions})
    return name


def new_group(prefix: str) -> str:
    name = unique_name(prefix)
    GROUPS.append(name)
    return name


def total_end(topic: str) -> int:
    return sum(kafka.end_offsets(topic).values())


def processed(group: str, topic: str) -> int:
    """Input records the group has committed (the input is not transactional: offset = count)."""
    return sum(o or 0 for o in kafka.committed_offsets(group, topic).values())


def fill(topic: str, count: int, prefix: str) -> None:
    """``count`` JSON records with unique ids, keyed by id (idempotent producer)."""
    from confluent_kafka import Producer

    producer = Producer(kafka.config(PY_PRODUCER, partitioner="murmur2_random"))
    for i in range(count):
        rid = f"{prefix}-{i:06d}"
        while True:
            try:
                producer.produce(topic, key=rid, value=json.dumps({"id": rid, "n": i}))
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    if producer.flush(60):
        raise LabEnvError(f"filling {topic}: records not delivered", "run `lab-env status`")
    if total_end(topic) != count:
        raise LabEnvError(f"filling {topic}: {total_end(topic)} records, expected {count}", "run `lab-env status`")


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, object]:
    import confluent_kafka
    import psutil

    from lab_env.core.versions import pins

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(psutil.virtual_memory().total / 2**30),
        "kafka": pins().kafka,
        "java": java[0] if java else "?",
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
    }


# --- 1. producers ------------------------------------------------------------


def python_produce(topic: str, n: int) -> dict[str, float]:
    from confluent_kafka import Producer

    payload = bytes(random.Random(1).choices(range(65, 91), k=RECORD_SIZE))  # like the tool's: random letters
    producer = Producer(kafka.config(PY_PRODUCER))
    produce, poll = producer.produce, producer.poll
    start = time.perf_counter()
    for i in range(n):
        while True:
            try:
                produce(topic, payload)
                break
            except BufferError:  # local queue full (100,000 records): let deliveries drain
                poll(0.05)
        if not i % 1000:
            poll(0)
    left = producer.flush(120)
    elapsed = time.perf_counter() - start
    if left:
        raise LabEnvError(f"python producer: {left} records undelivered", "run `lab-env status`")
    return {"records_per_s": n / elapsed, "seconds": elapsed, "wall_s": elapsed}


_PERF_LINE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th"
)


def java_produce(topic: str, n: int, props: list[str]) -> dict[str, float]:
    start = time.perf_counter()
    out = kafka.kafka_tool(
        "producer-perf-test",
        "--topic",
        topic,
        "--num-records",
        str(n),
        "--record-size",
        str(RECORD_SIZE),
        "--throughput",
        "-1",
        "--command-property",
        *props,
    )
    wall = time.perf_counter() - start
    found = _PERF_LINE.findall(out)
    if not found:
        raise LabEnvError(f"producer-perf-test printed no summary: {out[-300:]}", "run it by hand")
    sent, rate, _mb, avg, _max, p50, _p95, p99 = found[-1]
    if int(sent) != n:
        raise LabEnvError(f"producer-perf-test sent {sent} of {n}", "read its output")
    return {
        "records_per_s": float(rate),
        "seconds": n / float(rate),
        "wall_s": wall,
        "avg_latency_ms": float(avg),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
    }


def bench_producers(n: int, runs: int) -> tuple[dict[str, dict], str]:
    kinds = {
        "python": (
            "confluent-kafka Producer",
            "idempotence, acks=all, linger.ms=5, librdkafka batching",
            lambda t: python_produce(t, n),
        ),
        "java_default": ("ProducerPerformance", "defaults, acks=all", lambda t: java_produce(t, n, JAVA_DEFAULT)),
        "java_tuned": (
            "ProducerPerformance",
            "acks=all, linger.ms=5, batch.size=262144",
            lambda t: java_produce(t, n, JAVA_TUNED),
        ),
    }
    out: dict[str, dict] = {k: {"client": c, "settings": s, "runs": []} for k, (c, s, _) in kinds.items()}
    keep = ""
    for i in range(runs):  # interleaved, so a slow moment of the machine hits every kind alike
        for key, (_, _, fn) in kinds.items():
            topic = new_topic(f"kbench-prod-{key.replace('_', '-')}-{i}", 1)
            run = fn(topic)
            if total_end(topic) != n:
                raise LabEnvError(f"{key} run {i}: topic holds {total_end(topic)} records, expected {n}", "")
            out[key]["runs"].append(run)
            keep = keep or topic  # the first python topic feeds the consumers
            print(f"  producer {key} run {i + 1}: {run['records_per_s']:.0f} records/s", flush=True)
    for row in out.values():
        row["records_per_s"] = median([r["records_per_s"] for r in row["runs"]])
        row["wall_s"] = median([r["wall_s"] for r in row["runs"]])
    return out, keep


# --- 2. consumers ------------------------------------------------------------


def python_consume(topic: str, n: int, run: int) -> dict[str, float]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        kafka.config(
            {
                "group.id": new_group(f"kbench-cons-py-{run}"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    assigned: list[float] = []
    count = size = 0
    start = time.perf_counter()
    try:
        consumer.subscribe([topic], on_assign=lambda c, ps: assigned.append(time.perf_counter()))
        deadline = start + 120
        while count < n:
            if time.perf_counter() > deadline:
                raise LabEnvError(f"python consumer read {count} of {n} in 120 s", "run `lab-env status`")
            for msg in consumer.consume(10000, 1.0):
                if msg.error():
                    raise LabEnvError(f"python consumer: {msg.error()}", "run `lab-env status`")
                count += 1
                size += len(msg)
        end = time.perf_counter()
    finally:
        consumer.close()
    if size != n * RECORD_SIZE:
        raise LabEnvError(f"python consumer read {size} bytes, expected {n * RECORD_SIZE}", "")
    return {
        "records_per_s": n / (end - start),
        "fetch_records_per_s": n / (end - assigned[0]),
        "join_s": assigned[0] - start,
        "wall_s": end - start,
    }


def java_consume(topic: str, n: int, run: int) -> dict[str, float]:
    group = new_group(f"kbench-cons-java-{run}")
    start = time.perf_counter()
    out = kafka.kafka_tool(
        "consumer-perf-test", "--topic", topic, "--num-records", str(n), "--group", group, "--timeout", "30000"
    )
    wall = time.perf_counter() - start
    lines = [line for line in out.splitlines() if line.strip()]
    header = [h.strip() for h in lines[-2].split(",")]
    values = dict(zip(header, (v.strip() for v in lines[-1].split(",")), strict=True))
    if int(values["data.consumed.in.nMsg"]) != n:
        raise LabEnvError(f"consumer-perf-test read {values['data.consumed.in.nMsg']} of {n}", "read its output")
    return {
        "records_per_s": float(values["nMsg.sec"]),
        "fetch_records_per_s": float(values["fetch.nMsg.sec"]),
        "join_s": float(values["rebalance.time.ms"]) / 1000,
        "wall_s": wall,
    }


def bench_consumers(topic: str, n: int, runs: int) -> dict[str, dict]:
    kinds = {
        "python": ("confluent-kafka Consumer", "defaults, consume(10000) batches", python_consume),
        "java": ("ConsumerPerformance", "defaults", java_consume),
    }
    out: dict[str, dict] = {k: {"client": c, "settings": s, "runs": []} for k, (c, s, _) in kinds.items()}
    for i in range(runs):
        for key, (_, _, fn) in kinds.items():
            run = fn(topic, n, i)
            out[key]["runs"].append(run)
            print(f"  consumer {key} run {i + 1}: {run['records_per_s']:.0f} records/s", flush=True)
    for row in out.values():
        for field in ("records_per_s", "fetch_records_per_s", "join_s", "wall_s"):
            row[field] = median([r[field] for r in row["runs"]])
    return out


# --- 3. the exactly-once pipeline ------------------------------------------


def start_pipeline(name: str, mode: str, source: str, sink: str, group: str, batch: int, delay_ms: float) -> Worker:
    worker = start_worker(
        name,
        python_command(
            str(Path(__file__).resolve()),
            "--pipeline",
            mode,
            "--input",
            source,
            "--output",
            sink,
            "--group",
            group,
            "--batch",
            str(batch),
            "--delay-ms",
            str(delay_ms),
        ),
        cwd=ROOT,
        ready=r"assigned",
    )
    WORKERS.append(worker)
    return worker


def commits(worker: Worker) -> list[tuple[int, float]]:
    """(records, time) of each commit the worker logged."""
    return [(int(n), float(t)) for n, t in (line.split()[1:3] for line in worker.log_lines(r"^batch \d+ "))]


def pipeline_run(mode: str, source: str, n: int, batch: int) -> dict[str, float]:
    sink = new_topic(f"kbench-pipe-out-{mode}-{batch}", PIPE_PARTITIONS)
    group = new_group(f"kbench-pipe-{mode}-{batch}")
    launched = time.time()
    worker = start_pipeline(unique_name(f"kbench-pipe-{mode}-{batch}"), mode, source, sink, group, batch, 0)
    ready = time.time()
    try:
        wait_for(lambda: processed(group, source) >= n, 300, f"{mode} pipeline (batch {batch}) done", [worker])
    finally:
        stop_worker(worker)
    done = commits(worker)
    (first_n, first_t), last_t = done[0], done[-1][1]
    committed = kafka.read_topic(sink, "read_committed")
    uncommitted = kafka.read_topic(sink, "read_uncommitted")
    ids = {r.value["id"] for r in committed}
    if len(committed) != n or len(ids) != n:
        raise LabEnvError(
            f"{mode} pipeline (batch {batch}): {len(committed)} output records, {len(ids)} ids, expected {n}",
            f"read its log: {worker.log}",
        )
    gaps = [b - a for (_, a), (_, b) in zip(done, done[1:], strict=False)]
    slow = [g for g in gaps if g >= SLOW_GAP_S]
    return {
        "mode": mode,
        "batch": batch,
        "commits": len(done),
        "records_per_commit": n / len(done),
        "gap_p50_ms": 1000 * median(gaps),
        "slow_gaps": len(slow),
        "slow_gaps_s": sum(slow),
        "startup_s": ready - launched,
        "seconds": last_t - launched,
        # steady state: from the first commit to the last
        "records_per_s": (n - first_n) / (last_t - first_t),
        "output_committed": len(committed),
        "output_uncommitted": len(uncommitted),
        "control_records": total_end(sink) - len(uncommitted),
    }


def bench_pipeline(n: int, batches: list[int]) -> list[dict]:
    source = new_topic("kbench-pipe-in", PIPE_PARTITIONS)
    fill(source, n, "r")
    rows = []
    for batch in batches:
        for mode in ("eos", "alo"):
            row = pipeline_run(mode, source, n, batch)
            rows.append(row)
            print(
                f"  pipeline {mode} batch {batch}: {row['records_per_s']:.0f} records/s, {row['commits']} commits",
                flush=True,
            )
    return rows


# --- 4. the drill ------------------------------------------------------------


def drill(mode: str, source: str, n: int, kills: int, batch: int, delay_ms: float, seed: int) -> dict:
    sink = new_topic(f"kbench-drill-out-{mode}", PIPE_PARTITIONS)
    group = new_group(f"kbench-drill-{mode}")
    rng = random.Random(seed)
    started = time.perf_counter()
    worker = start_pipeline(unique_name(f"kbench-drill-{mode}"), mode, source, sink, group, batch, delay_ms)
    per_kill: list[dict] = []
    try:
        last = processed(group, source)
        for k in range(1, kills + 1):
            if last >= n:
                raise LabEnvError(
                    f"{mode} drill: all input processed after {k - 1} kills",
                    "raise --drill-records or --drill-delay-ms",
                )
            # Each kill waits for a share of what is left, so the last kill still comes mid-stream.
            target = last + max(1, (n - last) // (kills - k + 3))
            wait_for(
                lambda target=target: processed(group, source) >= target,
                60,
                f"{mode} drill: progress before kill {k}",
                [worker],
            )
            time.sleep(rng.uniform(0, 0.1))  # land anywhere in a transaction
            at = processed(group, source)
            worker.kill()
            killed = time.time()
            t = time.perf_counter()
            worker.restart()
            per_kill.append(
                {"kill": k, "input_committed": at, "killed_at": killed, "restart_s": time.perf_counter() - t}
            )
            last = processed(group, source)
        wait_for(lambda: processed(group, source) >= n, 300, f"{mode} drill: all input processed", [worker])
    finally:
        stop_worker(worker)
    seconds = time.perf_counter() - started
    committed = kafka.read_topic(sink, "read_committed")
    uncommitted = kafka.read_topic(sink, "read_uncommitted")
    copies: dict[str, list[float]] = {}
    for r in committed:
        copies.setdefault(r.value["id"], []).append(r.timestamp)
    expected = {r.value["id"] for r in kafka.read_topic(source)}
    lost = len(expected - copies.keys())
    extra = sum(len(ts) - 1 for ts in copies.values())
    duplicated_ids = sum(1 for ts in copies.values() if len(ts) > 1)
    unknown = len(copies.keys() - expected)

    # Attribute to a kill what its incarnation left behind: records it wrote before it
    # was killed (producer timestamps, the same clock) that no commit kept, and, at-least-once,
    # the records it had written whose input was processed again after the restart.
    bounds = [k["killed_at"] for k in per_kill]

    def kill_of(ts: float) -> int:  # 1-based kill after which ts lies before; kills + 1 = after the last
        return next((i + 1 for i, b in enumerate(bounds) if ts <= b), len(bounds) + 1)

    kept = {(r.partition, r.offset) for r in committed}
    aborted = [0] * (kills + 2)
    for r in uncommitted:
        if (r.partition, r.offset) not in kept:
            aborted[kill_of(r.timestamp)] += 1
    dups = [0] * (kills + 2)
    for ts in copies.values():
        if len(ts) > 1:
            dups[kill_of(min(ts))] += len(ts) - 1
    for k in per_kill:
        k["aborted"] = aborted[k["kill"]]
        k["duplicates"] = dups[k["kill"]]
    return {
        "mode": mode,
        "input": n,
        "kills": len(per_kill),
        "starts": worker.starts,
        "seconds": seconds,
        "output_committed": len(committed),
        "output_uncommitted": len(uncommitted),
        "aborted": len(uncommitted) - len(committed),
        "lost": lost,
        "duplicates": extra,
        "duplicated_ids": duplicated_ids,
        "unknown_ids": unknown,
        "aborted_after_last_kill": aborted[kills + 1],
        "duplicates_after_last_kill": dups[kills + 1],
        "per_kill": per_kill,
    }


def bench_drill(n: int, kills: int, batch: int, delay_ms: float) -> dict[str, dict]:
    source = new_topic("kbench-drill-in", PIPE_PARTITIONS)
    fill(source, n, "d")
    out = {}
    for seed, mode in enumerate(("eos", "alo")):
        out[mode] = drill(mode, source, n, kills, batch, delay_ms, seed)
        d = out[mode]
        print(f"  drill {mode}: lost {d['lost']}, duplicates {d['duplicates']}, aborted {d['aborted']}", flush=True)
    return out


# --- cleanup -----------------------------------------------------------------


def cleanup() -> dict[str, object]:
    for worker in WORKERS:
        stop_worker(worker)
    left: dict[str, object] = {}
    try:
        kafka.delete_topics(TOPICS)
    except Exception as err:  # noqa: BLE001 -- report it, do not hide the run's own error
        left["topics_error"] = str(err)
    # A static member (group.instance.id) does not leave its group on close, so
    # the broker refuses to delete its group (NON_EMPTY_GROUP) until the
    # member's session (10 s) has timed out: retry that long.
    groups = list(dict.fromkeys(GROUPS))
    deadline = time.monotonic() + 15
    while groups:
        client = kafka.admin()  # keep a reference: the futures never complete if it is collected
        futures = client.delete_consumer_groups(groups, request_timeout=10)
        busy = []
        for group, future in futures.items():
            try:
                future.result(15)
            except Exception as err:  # noqa: BLE001
                if "NON_EMPTY_GROUP" in str(err):
                    busy.append(group)
        groups = busy
        if not groups or time.monotonic() > deadline:
            break
        time.sleep(1)
    left["groups_not_deleted"] = groups
    return left


# --- tables ------------------------------------------------------------------


def tables(r: dict) -> str:
    n, prod, cons = r["records"], r["producer"], r["consumer"]
    ref = prod["python"]["records_per_s"]
    mib = RECORD_SIZE / 2**20

    def runs(row: dict, field: str = "records_per_s") -> str:
        return " / ".join(f"{x[field]:.0f}" for x in row["runs"])

    out = (
        f"## Producer: {n:,} records of {RECORD_SIZE} bytes, 1 partition, acks=all, median of {r['runs']}\n\n"
        "| producer | settings | records/s | MiB/s | runs (records/s) | wall s | vs Python |\n"
        "| --- | --- | ---: | ---: | --- | ---: | ---: |\n"
    )
    for row in prod.values():
        out += (
            f"| {row['client']} | {row['settings']} | {row['records_per_s']:.0f} | "
            f"{row['records_per_s'] * mib:.1f} | {runs(row)} | {row['wall_s']:.2f} | "
            f"{row['records_per_s'] / ref:.2f}x |\n"
        )
    lat = {k: prod[k]["runs"] for k in ("java_default", "java_tuned")}
    out += (
        "\nWall: the Python producer's timed loop (produce + flush); the tool's whole process, "
        "JVM start included, while its records/s is its own measure. ProducerPerformance latency "
        "(median run's avg / p99): "
        + ", ".join(
            f"{prod[k]['settings']}: {median([x['avg_latency_ms'] for x in v]):.0f} / "
            f"{median([x['p99_ms'] for x in v]):.0f} ms"
            for k, v in lat.items()
        )
        + ".\n"
    )

    cref = cons["python"]["records_per_s"]
    out += (
        f"\n## Consumer: the same {n:,} records, fresh group per run, median of {r['runs']}\n\n"
        "| consumer | settings | records/s from subscribe | records/s from assignment | group join s | "
        "runs (records/s) | vs Python |\n| --- | --- | ---: | ---: | ---: | --- | ---: |\n"
    )
    for row in cons.values():
        out += (
            f"| {row['client']} | {row['settings']} | {row['records_per_s']:.0f} | "
            f"{row['fetch_records_per_s']:.0f} | {row['join_s']:.2f} | {runs(row)} | "
            f"{row['records_per_s'] / cref:.2f}x |\n"
        )

    pn = r["pipeline_records"]
    alo = {row["batch"]: row for row in r["pipeline"] if row["mode"] == "alo"}
    out += (
        f"\n## Consume-transform-produce: {pn:,} records, {PIPE_PARTITIONS} partitions in and out, one worker\n\n"
        "| loop | batch | commits | records/commit | ready s | done s (from launch) | records/s (first to last "
        "commit) | commit gap p50 ms | gaps >= 50 ms (their s) | output records (committed) | control records | "
        "vs at-least-once, same batch |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    label = {"eos": "exactly-once (lab_env.runtime.kafka.streams.run)", "alo": "at-least-once (flush, then commit)"}
    for row in r["pipeline"]:
        out += (
            f"| {label[row['mode']]} | {row['batch']} | {row['commits']} | {row['records_per_commit']:.1f} | "
            f"{row['startup_s']:.2f} | {row['seconds']:.1f} | {row['records_per_s']:.0f} | "
            f"{row['gap_p50_ms']:.1f} | {row['slow_gaps']} ({row['slow_gaps_s']:.1f}) | "
            f"{row['output_committed']} | {row['control_records']} | "
            f"{row['records_per_s'] / alo[row['batch']]['records_per_s']:.2f}x |\n"
        )

    out += (
        "\nCommit gap: time between two commits the worker logged (consume, transform, produce and commit of "
        "one batch). Control records: the output's end offsets minus its records (one transaction marker per "
        "partition a transaction wrote to).\n"
    )

    d = r["drill"]
    e, a = d["eos"], d["alo"]
    out += (
        f"\n## Drill: SIGKILL x{r['kills']} mid-transaction, {r['drill_records']:,} unique ids, batch "
        f"{r['drill_batch']}, {r['drill_delay_ms']:g} ms per record\n\n"
        "| loop | kills | output read_committed | read_uncommitted | aborted records (hidden) | lost | "
        "duplicates (ids) | drill s | duplicates vs at-least-once |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    for row in (e, a):
        ratio = f"{row['duplicates'] / a['duplicates']:.2f}x" if a["duplicates"] else "n/a (reference has 0)"
        out += (
            f"| {label[row['mode']]} | {row['kills']} | {row['output_committed']} | {row['output_uncommitted']} | "
            f"{row['aborted']} | {row['lost']} | {row['duplicates']} ({row['duplicated_ids']}) | "
            f"{row['seconds']:.1f} | {ratio} |\n"
        )
    out += (
        "\nPer kill (input committed = the group's committed input offsets when the kill came; aborted = records "
        "that incarnation wrote in the transaction the kill cut, hidden from read_committed readers; duplicates "
        "= extra copies of records whose input was processed again after that kill; restart = until the new "
        "incarnation is assigned its partitions):\n\n"
        "| kill | exactly-once: input committed | aborted | restart s | at-least-once: input committed | "
        "duplicates | restart s |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    for ke, ka in zip(e["per_kill"], a["per_kill"], strict=True):
        out += (
            f"| {ke['kill']} | {ke['input_committed']} | {ke['aborted']} | {ke['restart_s']:.2f} | "
            f"{ka['input_committed']} | {ka['duplicates']} | {ka['restart_s']:.2f} |\n"
        )
    out += (
        f"| total | | {sum(k['aborted'] for k in e['per_kill'])} | "
        f"{sum(k['restart_s'] for k in e['per_kill']):.2f} | | {sum(k['duplicates'] for k in a['per_kill'])} | "
        f"{sum(k['restart_s'] for k in a['per_kill']):.2f} |\n"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000, help="records per producer/consumer run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pipeline-records", type=int, default=50_000)
    parser.add_argument("--batches", default="50,500", help="batch sizes of the pipeline runs")
    parser.add_argument("--drill-records", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--drill-batch", type=int, default=50)
    parser.add_argument("--drill-delay-ms", type=float, default=2.0)
    # worker mode (started by the bench itself)
    parser.add_argument("--pipeline", choices=("eos", "alo"), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--delay-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pipeline:
        pipeline_main(args)
        return

    started = time.perf_counter()
    result: dict[str, object] = {
        "machine": machine(),
        "records": args.records,
        "record_size": RECORD_SIZE,
        "runs": args.runs,
        "pipeline_records": args.pipeline_records,
        "drill_records": args.drill_records,
        "kills": args.kills,
        "drill_batch": args.drill_batch,
        "drill_delay_ms": args.drill_delay_ms,
    }
    phases: dict[str, float] = {}
    load: dict[str, float] = {"start": os.getloadavg()[0]}  # 1-minute load average, at the start and after each phase
    result["phase_s"], result["load1"] = phases, load

    def phase(name: str, fn):
        print(name, flush=True)
        t = time.perf_counter()
        try:
            return fn()
        finally:
            phases[name] = time.perf_counter() - t
            load[name] = os.getloadavg()[0]

    try:
        result["producer"], source = phase("producers", lambda: bench_producers(args.records, args.runs))
        result["consumer"] = phase("consumers", lambda: bench_consumers(source, args.records, args.runs))
        result["pipeline"] = phase(
            "pipeline", lambda: bench_pipeline(args.pipeline_records, [int(b) for b in args.batches.split(",")])
        )
        result["drill"] = phase(
            "drill", lambda: bench_drill(args.drill_records, args.kills, args.drill_batch, args.drill_delay_ms)
        )
    finally:
        result["cleanup"] = phase("cleanup", cleanup)
    result["runtime_s"] = time.perf_counter() - started

    m = result["machine"]
    table = tables(result)
    print(table)
    print(f"runtime {result['runtime_s']:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()) + ")")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kafka.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "kafka.md").write_text(
        f"# Kafka benchmark\n\nMachine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB; the stack's single "
        f"Kafka {m['kafka']} KRaft broker on the same machine; {m['java']}; Python {m['python']}, confluent-kafka "
        f"{m['confluent_kafka']} (librdkafka {m['librdkafka']}). "
        f"Command: `{' '.join(['python bench/kafka_bench.py', *sys.argv[1:]])}`, "
        f"{result['runtime_s']:.0f} s in all (1-minute load average at the start {load['start']:.2f}, "
        f"highest after a phase "
        f"{max(load.values()):.2f}). Ratios are against the reference row of the same run (the Python "
        f"client; the at-least-once loop).\n\n{table}"
    )

    eos = result["drill"]["eos"]
    if eos["lost"] or eos["duplicates"] or eos["unknown_ids"]:
        print(
            f"FAIL: the exactly-once drill lost {eos['lost']} and duplicated {eos['duplicates']} records",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()

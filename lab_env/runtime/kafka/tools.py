"""Kafka's own command-line tools (kafka-<tool>.sh) against the lab broker, and a worker's clean exit."""

from __future__ import annotations

import signal
import subprocess
import sys

from lab_env.errors import LabEnvError
from lab_env.runtime.kafka.admin import bootstrap

# Kafka's CLI tools by the name of their shell script (without .sh).
TOOLS = {
    "topics": "org.apache.kafka.tools.TopicCommand",
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "transactions": "org.apache.kafka.tools.TransactionsCommand",
    "producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
}


def exit_on_sigterm() -> None:
    """Make SIGTERM end the program through SystemExit, so `finally:` blocks
    run and a consumer closes (leaving its group at once) when stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def tool_command(tool: str, *args: str) -> list[str]:
    """The java command line of Kafka's ``tool`` (kafka-<tool>.sh) against the lab broker."""
    from lab_env.stack.provision.kafka import TOOLS_LOG4J2_CONFIG, java_command, kafka_installed

    if tool not in TOOLS:
        raise LabEnvError(f"unknown Kafka tool {tool!r}", f"use one of: {', '.join(TOOLS)}")
    if not kafka_installed():
        raise LabEnvError("Kafka is not installed", "run `lab-env setup`")
    args_list = list(args)
    given = any(a.startswith(("--bootstrap-server", "--broker-list")) or "bootstrap.servers" in a for a in args_list)
    if not given:
        args_list = ["--bootstrap-server", bootstrap(), *args_list]
    return java_command(TOOLS[tool], *args_list, log_config=TOOLS_LOG4J2_CONFIG)


def perf_rate(report: str) -> float:
    """Records per second from the summary line of producer-perf-test's output."""
    import re

    found = re.findall(r"records sent, ([0-9.]+) records/sec", report)
    if not found:
        raise LabEnvError("producer-perf-test printed no summary line", "run it in a terminal to see why")
    return float(found[-1])


def kafka_tool(tool: str, *args: str, check: bool = True) -> str:
    """Run Kafka's ``tool`` (as `kafka-<tool>.sh` would) and return what it printed."""
    proc = subprocess.run(tool_command(tool, *args), capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        last = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise LabEnvError(
            f"kafka {tool} failed: {last[-1][:300] if last else f'exit {proc.returncode}'}",
            f"run `lab-env kafka {tool} --help` for its options",
        )
    return proc.stdout

"""`lab-env reset NN`: remove what lab NN's runs made, and nothing else.

A run is one kernel working on a lab: when one of the lab's checks runs in it,
it keeps its run token with the lab in the progress record (``course.record_run``).
Every app id, actor type, topic, consumer group and cluster a run makes ends
in that token (``unique_name``), and so does every Redis key of its actors and
workflow instances. For each recorded run of the lab, reset does these steps,
in order:

1. ``apps``: its apps and workers stopped, sidecars included;
2. ``clusters``: its native Kubernetes clusters deleted (lab 05);
3. ``state``: its Redis keys deleted (actor state, workflow instances and their history);
4. ``kafka``: its topics and consumer groups deleted;
5. ``files``: its workspace folder deleted (the ``%%app_file`` modules and app logs).

Every step is tried; a run is forgotten only once every step is done for it, so
a reset cut short (the stack down, a kernel still running, Ctrl-C) is finished by
running it again. Shut the lab's kernel down first: its consumers keep their
groups alive, and it would go on making things under its token. Left alone: the
learner's progress (checks passed, hints asked for), other labs' runs, other
learners' runs, and the scheduler's reminders and workflow timers of the
run's actor types, which no app hosts again (each type carries the token).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

from lab_env.errors import LabEnvError


@dataclass
class Removed:
    step: str
    names: list[str] = field(default_factory=list)

    def line(self) -> str:
        shown = ", ".join(self.names[:5]) + (f" and {len(self.names) - 5} more" if len(self.names) > 5 else "")
        return f"{self.step:<9} {len(self.names):>6}  {shown or '-'}"


def of_runs(tokens: list[str]) -> Callable[[str], bool]:
    """Whether a name was made by one of the runs ``tokens``: it holds ``-<token>`` not followed by
    another hex digit (a longer token that starts the same is another run's)."""
    if not tokens:
        return lambda name: False
    pattern = re.compile("-(?:" + "|".join(map(re.escape, tokens)) + ")(?![0-9a-f])")
    return lambda name: pattern.search(name) is not None


def stop_apps(tokens: list[str]) -> list[str]:
    from lab_env.runtime.apps import stop_all_apps

    return [name for token in tokens for name in stop_all_apps(token=token)]


def delete_clusters(tokens: list[str]) -> list[str]:
    from lab_env.runtime.clusters import native

    return [name for token in tokens for name in native.forget_run(token)]


def delete_state(tokens: list[str]) -> list[str]:
    from lab_env.core.profile import current
    from lab_env.core.resp import RedisConnection

    ours = of_runs(tokens)
    prof = current()
    try:
        with RedisConnection(prof.redis_host, prof.redis_port) as redis:
            keys = [key for key in redis.scan("*") if ours(key)]
            for start in range(0, len(keys), 500):
                redis.command("DEL", *keys[start : start + 500])
    except OSError as err:
        raise LabEnvError(
            f"Redis does not answer at {prof.redis_address}: {err}", "run `lab-env up`, then reset again"
        ) from None
    return keys


def delete_kafka(tokens: list[str]) -> list[str]:
    from confluent_kafka import KafkaError, KafkaException

    from lab_env.runtime import kafka

    ours = of_runs(tokens)
    try:
        topics = [t for t in kafka.topic_partitions_all() if ours(t)]
        groups = [g for g in kafka.consumer_groups() if ours(g)]
        kafka.delete_topics(topics)
        kafka.delete_groups(groups)
    except KafkaException as err:
        if err.args and getattr(err.args[0], "code", lambda: None)() == KafkaError.GROUP_ID_NOT_FOUND:
            return topics + [f"group {g}" for g in groups]  # gone with its last member
        if err.args and getattr(err.args[0], "code", lambda: None)() == KafkaError.NON_EMPTY_GROUP:
            raise LabEnvError(
                "a consumer group of the lab still has a member: its kernel runs, or an app of it was killed "
                "less than its session timeout ago (the broker then waits it out)",
                "shut the notebook's kernel down (Kernel > Shut Down Kernel), wait a minute, then reset again",
            ) from None
        raise LabEnvError(f"Kafka did not answer: {err}", "run `lab-env up`, then reset again") from None
    return topics + [f"group {g}" for g in groups]


def delete_files(tokens: list[str]) -> list[str]:
    from lab_env.notebooks.workspace import folder_of_run

    removed = []
    for folder in map(folder_of_run, tokens):
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(folder.name)
    return removed


STEPS: dict[str, Callable[[list[str]], list[str]]] = {
    "apps": stop_apps,
    "clusters": delete_clusters,
    "state": delete_state,
    "kafka": delete_kafka,
    "files": delete_files,
}


@dataclass
class Reset:
    removed: list[Removed]
    failed: dict[str, str]  # step -> why, in one line: its runs are kept, to finish with a second reset


def reset(lab: str) -> Reset:
    """Remove what the recorded runs of ``lab`` made (the steps above), then forget those runs.

    Every step is tried, even after one fails; the runs are forgotten only when none failed."""
    from lab_env.core.names import run_token
    from lab_env.labs.course import forget_runs, lab_named, runs_of

    lab = lab_named(lab).number  # one line naming the labs there are, for a wrong number; "2" -> "02"
    tokens = [t for t in runs_of(lab) if t != run_token()]  # never the process doing the reset
    done = Reset([], {})
    for step, run in STEPS.items() if tokens else ():
        try:
            done.removed.append(Removed(step, run(tokens)))
        except LabEnvError as err:
            done.failed[step] = str(err)
        except Exception as err:  # a subprocess timeout, a refused connection: said in one line
            done.failed[step] = f"{type(err).__name__}: {err}"
    if tokens and not done.failed:
        forget_runs(lab, tokens)
    return done

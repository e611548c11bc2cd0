"""What grading writes: gradebook.csv, junit.xml, feedback/<learner>.md."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

from lab_env.grading.run import Graded
from lab_env.grading.spec import LabSpec
from lab_env.labs.hints import hint_call


def write_gradebook(results: list[Graded], spec: LabSpec, path: Path) -> None:
    names = [c.name for c in spec.checks]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["learner", "lab", "status", *names, "hint_deduction", "total", "max", "reason"])
        for r in results:
            earned = {c.name: c.earned for c in r.checks}
            row = [r.learner, r.lab, r.status, *(earned.get(n, 0) for n in names), r.deducted, r.total]
            writer.writerow([*row, spec.max_points, r.reason])


def write_hints(results: list[Graded], spec: LabSpec, path: Path) -> None:
    """hints.csv: each hint a learner's notebook shows they asked for, at its deepest level."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["learner", "lab", "hint", "level", "levels"])
        for r in results:
            for n, (level, total) in sorted(r.hints.items()):
                writer.writerow([r.learner, r.lab, hint_call(spec.number, n), level, total])


def write_junit(results: list[Graded], spec: LabSpec, path: Path) -> None:
    suites = ET.Element("testsuites", name=f"lab {spec.lab}")
    for r in results:
        failures = sum(1 for c in r.checks if not c.passed)
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=r.learner,
            tests=str(max(len(r.checks), 1)),
            failures=str(failures),
            errors="0" if r.status == "graded" else "1",
        )
        if r.status != "graded":
            case = ET.SubElement(suite, "testcase", classname=f"{spec.lab}.{r.learner}", name="submission")
            ET.SubElement(case, "error", message=r.reason)
        for c in r.checks:
            case = ET.SubElement(suite, "testcase", classname=f"{spec.lab}.{r.learner}", name=c.name)
            if not c.passed:
                ET.SubElement(case, "failure", message=c.message).text = c.hint
    ET.indent(suites)
    ET.ElementTree(suites).write(path, encoding="unicode", xml_declaration=True)


def feedback_markdown(r: Graded, spec: LabSpec) -> str:
    lines = [f"# Lab {spec.lab}: feedback for {r.learner}", ""]
    if r.status != "graded":
        lines += [f"**Not graded:** {r.reason}", "", f"Score: 0 / {spec.max_points}", ""]
        return "\n".join(lines)
    lines += [
        f"Score: **{r.total} / {spec.max_points}**",
        "",
        "| check | points | result | what the check said |",
        "| --- | ---: | --- | --- |",
    ]
    for c in r.checks:
        label = c.name + (" (instructor check)" if c.hidden else "")
        said = c.message if c.passed else c.message + (f" *Hint: {c.hint}*" if c.hint else "")
        lines.append(
            f"| {label} | {c.earned}/{c.points} | {'pass' if c.passed else 'FAIL'} | {said.replace('|', '/')} |"
        )
    if r.hints:
        asked = [
            f"`{hint_call(spec.number, n)}` to level {level} of {total}" + (" (the last)" if level >= total else "")
            for n, (level, total) in sorted(r.hints.items())
        ]
        lines += ["", "Hints asked for (from hint() in the notebook): " + "; ".join(asked) + "."]
        if r.deducted:
            lines.append(
                f"{r.deducted} point(s) off for hints shown at their last level, which may show the code "
                "(the total never goes below zero)."
            )
    if r.notes:
        lines += ["", "Also:", *(f"- {note}" for note in r.notes)]
    lines.append("")
    return "\n".join(lines)


def write_feedback(results: list[Graded], spec: LabSpec, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for r in results:
        (folder / f"{r.learner}.md").write_text(feedback_markdown(r, spec))


def summary_table(results: list[Graded], spec: LabSpec) -> str:
    width = max([len(r.learner) for r in results] + [7])
    rows = [f"{'learner':<{width}}  score   status"]
    for r in results:
        status = "graded" if r.status == "graded" else f"not graded: {r.reason}"
        rows.append(f"{r.learner:<{width}}  {r.total:>2}/{spec.max_points:<3}  {status}")
    return "\n".join(rows)

"""The report of scripts/gpu_check.sh: DIR/report.json and DIR/report.md from what the check left
in DIR. Standard library only: it also runs where .venv is missing or has no torch.

    python3 scripts/gpu_report.py DIR --total-seconds S [--skipped REASON | --failed REASON]

Reads, each when present:
    DIR/phases.tsv          name, status, seconds, note of each phase (gpu_check.sh writes it)
    DIR/nvidia-smi.csv      name, driver, memory of each GPU (nvidia-smi --query-gpu)
    DIR/torch.json          the torch build, its CUDA version, what it sees
    DIR/pytest.xml          JUnit XML of the tests marked `gpu`
    DIR/generate.json       benchmarks/gpu_generate.py's tokens/s and peak memory allocated
    DIR/memory.csv          GPU memory used (MiB), sampled by nvidia-smi during the GPU phases
    DIR/run/manifest.json   the shortened gpu run: its stages, their status and seconds
Status: "skipped" (no CUDA GPU), "failed" (a phase failed, or --failed) or "passed". Prints a
summary and exits 1 when the check failed, else 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

PHASES = ("setup", "tests", "run", "generate")
"""The check's phases, in order (gpu_check.sh)."""
BUDGET_S = 480
"""The whole check should take at most this long on one GPU machine (issue #21)."""


def read_phases(out: Path, skipped: bool) -> list[dict]:
    """One entry per phase; a phase the check did not reach is "skipped" (no GPU) or "not run"."""
    found = {}
    path = out / "phases.tsv"
    if path.exists():
        for line in path.read_text().splitlines():
            name, status, seconds, note = (line.split("\t") + ["", "", ""])[:4]
            found[name] = {"name": name, "status": status, "seconds": float(seconds or 0), "note": note}
    missing = {"status": "skipped", "note": "no CUDA GPU"} if skipped else {"status": "not run", "note": ""}
    return [found.get(name, {"name": name, "seconds": 0.0, **missing}) for name in PHASES]


def read_gpus(out: Path) -> list[dict]:
    path = out / "nvidia-smi.csv"
    if not path.exists():
        return []
    rows = csv.reader(line for line in path.read_text().splitlines() if line.strip())
    return [{"name": row[0].strip(), "driver": row[1].strip(), "memory": row[2].strip()}
            for row in rows if len(row) >= 3]


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_pytest(out: Path) -> dict | None:
    """Counts and one entry per test of the JUnit XML."""
    try:
        root = ET.parse(out / "pytest.xml").getroot()
    except (OSError, ET.ParseError):
        return None
    cases = []
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = {"failure": "failed", "error": "error"}.get(tag, tag)
                message = (found.get("message") or "").strip().split("\n")[0][:300]
                break
        cases.append({"name": f"{case.get('classname', '')}::{case.get('name', '')}", "outcome": outcome,
                      "seconds": round(float(case.get("time") or 0), 1), "message": message})
    counts = {name: sum(c["outcome"] == name for c in cases) for name in ("passed", "failed", "error", "skipped")}
    return {"tests": len(cases), **counts, "cases": cases}


def read_peak_used(out: Path) -> float | None:
    """The largest GPU memory use (MiB, any GPU) nvidia-smi sampled during the GPU phases."""
    try:
        values = [float(v) for v in (out / "memory.csv").read_text().split() if v.replace(".", "", 1).isdigit()]
    except OSError:
        return None
    return max(values) if values else None


def read_run(out: Path) -> dict | None:
    manifest = read_json(out / "run" / "manifest.json")
    if manifest is None:
        return None
    stages = {name: {"status": s.get("status"), "seconds": s.get("seconds")}
              for name, s in manifest.get("stages", {}).items()}
    return {"folder": str(out / "run"), "profile": manifest.get("profile"), "stages": stages,
            "total_seconds": manifest.get("total_seconds")}


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def build_report(out: Path, total_s: float, skipped: str | None, failed: str | None) -> dict:
    phases = read_phases(out, skipped is not None)
    if skipped is not None:
        status, reason = "skipped", f"no CUDA GPU: {skipped}"
    elif failed is not None:
        status, reason = "failed", failed
    else:
        bad = [p for p in phases if p["status"] not in ("passed", "skipped")]
        status = "failed" if bad else "passed"
        reason = "; ".join(f"{p['name']} {p['status']}" for p in bad) or None
    generate = read_json(out / "generate.json")
    allocated = [generate[d]["peak_memory_gib"] for d in ("float32", "bfloat16")] if generate else []
    return {
        "status": status,
        "reason": reason,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "total_s": total_s,
        "budget_s": BUDGET_S,
        "within_budget": total_s <= BUDGET_S,
        "machine": {"gpus": read_gpus(out), "cpus": os.cpu_count(), **(read_json(out / "torch.json") or {})},
        "phases": phases,
        "pytest": read_pytest(out),
        # a run folder left by an earlier check is not this check's
        "run": read_run(out) if phases[PHASES.index("run")]["status"] not in ("skipped", "not run") else None,
        "generate": generate,
        "peak_gpu_memory": {
            "allocated_gib": max((v for v in allocated if v is not None), default=None),
            "used_mib": read_peak_used(out),
        },
    }


def shown(value) -> str:
    return "n/a" if value is None else str(value)


def markdown(report: dict) -> str:
    machine, lines = report["machine"], []
    lines.append(f"# GPU check: {report['status']}\n")
    if report["reason"]:
        lines.append(f"{report['reason']}\n")
    gpus = machine.get("gpus") or []
    gpu = (f"{len(gpus)} x {gpus[0]['name']} (driver {gpus[0]['driver']}, {gpus[0]['memory']})" if gpus
           else "no GPU found by nvidia-smi")
    torch = (f"torch {machine['torch']}, CUDA {machine.get('cuda') or 'none'}" if machine.get("torch")
             else "torch not checked")
    commit = (report["commit"] or "?")[:10]
    lines.append(f"{report['finished']}, commit {commit}: {gpu}, {machine['cpus']} CPUs; {torch}.")
    over = "" if report["within_budget"] else f", over the {report['budget_s']} s budget"
    lines.append(f"Total {report['total_s']:.0f} s{over}.\n")
    lines += ["| phase | status | seconds | note |", "| --- | --- | --- | --- |"]
    lines += [f"| {p['name']} | {p['status']} | {p['seconds']:.0f} | {p['note']} |" for p in report["phases"]]

    tests = report["pytest"]
    if tests:
        lines.append(f"\n## Tests marked gpu\n\n{tests['tests']} tests: {tests['passed']} passed, "
                     f"{tests['failed']} failed, {tests['error']} errors, {tests['skipped']} skipped.\n")
        lines += ["| test | outcome | seconds | message |", "| --- | --- | --- | --- |"]
        lines += [f"| {c['name']} | {c['outcome']} | {c['seconds']} | {c['message'].replace('|', '/')} |"
                  for c in tests["cases"]]
    run = report["run"]
    if run:
        lines.append(f"\n## The shortened gpu run ({run['folder']})\n")
        lines += ["| stage | status | seconds |", "| --- | --- | --- |"]
        lines += [f"| {name} | {s['status']} | {s['seconds']} |" for name, s in run["stages"].items()]
    gen = report["generate"]
    if gen:
        lines.append(f"\n## Generation\n\n{gen['model']} ({gen['parameters_m']} M parameters) on {gen['device']}: "
                     f"{gen['batch_size']} prompts of {gen['prompt_tokens']} tokens, "
                     f"{gen['max_new_tokens']} new tokens each.\n")
        lines += ["| dtype | tokens/s | peak memory allocated (GiB) |", "| --- | --- | --- |"]
        lines += [f"| {d} | {gen[d]['tokens_per_s']} | {shown(gen[d]['peak_memory_gib'])} |"
                  for d in ("float32", "bfloat16")]
        lines.append(f"\nbf16 / float32: {gen['ratio_bf16_float32']}x")
    peak = report["peak_gpu_memory"]
    if peak["allocated_gib"] is not None or peak["used_mib"] is not None:
        lines.append("\n## Peak GPU memory\n\n"
                     f"allocated by the generation benchmark (torch.cuda.max_memory_allocated): "
                     f"{shown(peak['allocated_gib'])} GiB; used on the device during the GPU phases "
                     f"(nvidia-smi, all processes): {shown(peak['used_mib'])} MiB")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the check's folder")
    parser.add_argument("--total-seconds", type=float, required=True, help="wall time of the whole check")
    parser.add_argument("--skipped", default=None, help="why the GPU parts did not run")
    parser.add_argument("--failed", default=None, help="why the check stopped early")
    args = parser.parse_args()
    report = build_report(args.out, args.total_seconds, args.skipped, args.failed)
    write_atomic(args.out / "report.json", json.dumps(report, indent=2) + "\n")
    write_atomic(args.out / "report.md", markdown(report))
    summary = ", ".join(f"{p['name']} {p['status']} ({p['seconds']:.0f} s)" for p in report["phases"])
    print(f"gpu_check: {report['status']} in {report['total_s']:.0f} s: {summary}")
    print(f"gpu_check: report in {args.out / 'report.md'} and {args.out / 'report.json'}")
    return 1 if report["status"] == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())

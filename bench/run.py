"""Benchmarks of the studio against the simulator, as ratios measured side by side.

    python bench/run.py [--quick] [--only P1,P3] [--json out.json] [--out table.md]

Prints a Markdown table (date, machine, one row per measure: goal, measured, pass/miss).
See bench/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import measures  # noqa: E402
from bench.measures import Row  # noqa: E402


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine() -> dict:
    import gradio

    return {"nproc": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
            "gradio": gradio.__version__}


def table(rows: list[Row], info: dict) -> str:
    m = info["machine"]
    lines = [
        f"# Benchmarks — {info['date']}",
        "",
        f"Machine: {m['nproc']} CPUs, {m['cpu']}; Python {m['python']}; Gradio {m['gradio']}. "
        f"Load average at start {info['load_start']}, at end {info['load_end']}. "
        f"Mode: {'quick' if info['quick'] else 'full'}; took {info['seconds']:.0f} s. "
        "Simulator, studio and baselines each in their own process; medians of interleaved rounds.",
        "",
        "| # | measure | goal | measured | result |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "info" if r.ok is None else ("pass" if r.ok else "**MISS**")
        lines.append(f"| {r.id} | {r.measure} | {r.goal} | {r.measured} | {verdict} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer rounds (about 3 minutes)")
    p.add_argument("--only", default="", help="comma-separated ids, e.g. P1,P3 (also API)")
    p.add_argument("--json", dest="json_out", help="write every number to this JSON file")
    p.add_argument("--out", help="also write the table to this Markdown file")
    p.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    args = p.parse_args(argv)

    wanted = [x.strip().upper() for x in args.only.split(",") if x.strip()] or list(measures.ALL)
    unknown = [w for w in wanted if w not in measures.ALL]
    if unknown:
        p.error(f"unknown id(s) {unknown}; choose from {list(measures.ALL)}")

    started = time.monotonic()
    info = {"date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(),
            "load_start": load(), "quick": args.quick}
    workdir = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    rows: list[Row] = []
    servers = None
    try:
        servers = measures.Servers(workdir)
        for key, fn in measures.ALL.items():  # a fixed order: P5 first, while nothing else runs
            if key not in wanted:
                continue
            t0 = time.monotonic()
            print(f"[bench] {key} …", file=sys.stderr, flush=True)
            try:
                servers.admin.reset()
                rows += fn(servers, args.quick)
            except Exception as exc:
                traceback.print_exc()
                rows.append(Row(key, f"{key} failed to run", "-", f"error: {exc}"[:300], False))
            print(f"[bench] {key} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        if servers is not None:
            servers.close()
        if args.keep:
            print(f"[bench] work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    info["seconds"] = time.monotonic() - started
    info["load_end"] = load()
    text = table(rows, info)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {**info, "rows": [r.__dict__ for r in rows]}, indent=2, default=str), encoding="utf-8")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

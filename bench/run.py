"""Run the benchmark cases against the local brokers and report them.

Usage (from the repository top, with bench/.venv's Python; 'make bench'
does this after building and starting the brokers):

  python bench/run.py [--cases NAME,...] [--quick] [--profile] [--out DIR]

Each case runs cello and its peers in turn, ``runs`` times, every client
in a process of its own (worker.py), and records medians and ratios.
Writes DIR/results.json, the table in DIR/README.md and DIR/ratios.png;
DIR is bench/ for full runs and bench/.quick/ for quick ones.

Environment: BENCH_QUICK=1 is --quick (short runs, once each, small sizes,
to check the harness); BENCH_CASES is --cases.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import report
from cases import CaseBuilder
from harness import BENCH, REPO, Case, Client, ClientUnavailable, RunFailed, Settings

# Seconds to wait before running a failed run again.
RETRY_DELAY = 20.0
# Any failure of one run (a worker, the Java tools, or creating and deleting
# topics and queues) is recorded and the benchmark goes on with the next.
RUN_ERRORS = (Exception,)

PEER_DISTRIBUTIONS = ["confluent-kafka", "aiokafka", "faststream", "aio-pika", "aiormq",
                      "aiobotocore", "botocore", "matplotlib"]


def main() -> None:
    args = parse_args()
    settings = Settings.quick_settings() if args.quick else Settings()
    if args.out:
        out = Path(args.out)
    elif args.quick:
        out = BENCH / ".quick"
    else:
        out = BENCH
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = BENCH / ".logs" / stamp
    logs.mkdir(parents=True, exist_ok=True)

    builder = CaseBuilder(settings)
    cases = select(builder.build(), args.cases)
    print(f"{len(cases)} cases, {settings.runs} runs each, at least {settings.duration:g} s a run; "
          f"logs in {logs.relative_to(REPO)}", flush=True)

    if args.profile:
        try:
            profile_cases(cases, out / "profiles", logs)
        finally:
            builder.cleanup()
        return

    document: dict[str, Any] = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": settings.quick,
        "settings": settings.__dict__,
        "machine": machine_info(),
        "versions": versions(),
        "cases": [],
    }
    started = time.monotonic()
    try:
        for case in cases:
            document["cases"].append(run_case(case, settings, logs))
            write_json(out / "results.json", document)
    finally:
        builder.cleanup()
    document["machine"]["load_average_end"] = os.getloadavg()
    document["total_seconds"] = round(time.monotonic() - started, 1)
    write_json(out / "results.json", document)
    report.write_all(document, out)
    print(f"done in {document['total_seconds']:.0f} s; wrote {out.relative_to(REPO)}/results.json, "
          "README.md and ratios.png", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark cello against its peers on the local brokers.")
    parser.add_argument("--cases", default=os.environ.get("BENCH_CASES", ""),
                        help="comma-separated case names or parts of them (default: all)")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1",
                        help="short runs, once each, to check the harness")
    parser.add_argument("--profile", action="store_true",
                        help="run each cello client once under cProfile, counting its calls into Go")
    parser.add_argument("--out", help="output folder (default: bench/, or bench/.quick/ with --quick)")
    return parser.parse_args()


def select(cases: list[Case], patterns: str) -> list[Case]:
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    if not wanted:
        return cases
    chosen = [case for case in cases if any(p in case.name for p in wanted)]
    if not chosen:
        sys.exit(f"no case matches {patterns!r}; cases: {', '.join(c.name for c in cases)}")
    return chosen


# -- running a case -------------------------------------------------------


def run_case(case: Case, settings: Settings, logs: Path) -> dict[str, Any]:
    """Run every client of a case ``settings.runs`` times, in turn."""
    print(f"\n== {case.name}: {case.title}", flush=True)
    entries = {client.name: {"name": client.name, "role": client.role, "available": True,
                             "note": client.note, "runs": [], "errors": []}
               for client in case.clients}
    for client in case.clients:
        if client.precheck is None:
            continue
        try:
            client.precheck(logs / f"{case.name}--{_slug(client.name)}--check.log")
        except ClientUnavailable as exc:
            mark_unavailable(entries[client.name], str(exc))

    for index in range(settings.runs):
        for client in case.clients:
            entry = entries[client.name]
            if not entry["available"]:
                continue
            log = logs / f"{case.name}--{_slug(client.name)}--run{index + 1}.log"
            try:
                record = run_with_retry(client, index, log)
            except ClientUnavailable as exc:
                mark_unavailable(entry, str(exc))
                continue
            except RUN_ERRORS as exc:
                entry["errors"].append(f"run {index + 1}: {exc}")
                print(f"  {client.name} run {index + 1} failed again: {exc}", flush=True)
                continue
            add_rates(record)
            entry["runs"].append(record)
            print(f"  run {index + 1}/{settings.runs} {client.name:26} {describe(record, case.unit)}", flush=True)

    clients = [summarize(entry) for entry in entries.values()]
    return {"name": case.name, "title": case.title, "unit": case.unit, "params": case.params,
            "clients": clients, "ratios": ratios(clients)}


def run_with_retry(client: Client, index: int, log: Path) -> dict[str, Any]:
    """Run once, and after a failure wait and try once more.

    Other developers' tests restart the shared brokers now and then, and a
    run that meets a restart fails through no fault of its client.
    """
    try:
        return client.run(index, log)
    except ClientUnavailable:
        raise
    except RUN_ERRORS as exc:
        print(f"  {client.name} run {index + 1} failed: {exc}; trying again in {RETRY_DELAY:.0f} s", flush=True)
    time.sleep(RETRY_DELAY)
    return client.run(index, log.with_name(f"{log.stem}-retry{log.suffix}"))


def mark_unavailable(entry: dict[str, Any], reason: str) -> None:
    entry["available"] = False
    entry["note"] = f"not available yet: {reason}"
    print(f"  {entry['name']}: not available yet ({reason})", flush=True)


def add_rates(record: dict[str, Any]) -> None:
    messages, seconds = record["messages"], record["seconds"]
    record["per_second"] = messages / seconds if seconds > 0 else 0.0
    record["cpu_us_per_message"] = record["cpu_seconds"] * 1e6 / messages if messages else None


def describe(record: dict[str, Any], unit: str) -> str:
    cpu = record["cpu_us_per_message"]
    cpu_text = "n/a" if cpu is None else (f"{cpu * 1000:,.0f} ns CPU/call" if unit == "calls"
                                          else f"{cpu:,.1f} us CPU/msg")
    text = (f"{record['per_second']:>12,.0f} {unit}/s  {cpu_text}  "
            f"({record['messages']:,} in {record['seconds']:.1f} s)")
    if record.get("stopped_idle"):
        text += f"; stopped early, no message within the idle timeout, {record['missing']:,} missing"
    return text


def summarize(entry: dict[str, Any]) -> dict[str, Any]:
    runs = entry["runs"]
    if runs:
        entry["median_per_second"] = statistics.median(r["per_second"] for r in runs)
        cpu = [r["cpu_us_per_message"] for r in runs if r["cpu_us_per_message"] is not None]
        entry["median_cpu_us_per_message"] = statistics.median(cpu) if cpu else None
        if all("rss_start_kib" in r for r in runs):
            entry["median_rss_start_kib"] = statistics.median(r["rss_start_kib"] for r in runs)
            entry["median_rss_end_kib"] = statistics.median(r["rss_end_kib"] for r in runs)
            entry["median_rss_peak_kib"] = statistics.median(r["rss_peak_kib"] for r in runs)
    return entry


def ratios(clients: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Return cello's median throughput and CPU per message relative to each other client.

    throughput > 1 means cello moved more messages per second; cpu_per_message
    < 1 means cello spent less CPU per message.
    """
    cello = next((c for c in clients if c["role"] == "cello" and c["runs"]), None)
    if cello is None:
        return {}
    out: dict[str, dict[str, float | None]] = {}
    for other in clients:
        if other is cello or not other["runs"]:
            continue
        cpu_cello, cpu_other = cello.get("median_cpu_us_per_message"), other.get("median_cpu_us_per_message")
        out[other["name"]] = {
            "throughput": cello["median_per_second"] / other["median_per_second"],
            "cpu_per_message": cpu_cello / cpu_other if cpu_cello and cpu_other else None,
        }
    return out


# -- profiling ------------------------------------------------------------


def profile_cases(cases: list[Case], folder: Path, logs: Path) -> None:
    """Run each cello client once under cProfile and count its calls into Go."""
    import pstats

    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        for client in case.clients:
            if client.role != "cello":
                continue
            stats_path = folder / f"{case.name}.prof"
            log = logs / f"{case.name}--profile.log"
            env = {"BENCH_COUNT_CROSSINGS": "1", "BENCH_CPROFILE": str(stats_path)}
            print(f"\n== profiling {case.name} ({client.name})", flush=True)
            try:
                record = _with_worker_env(env, lambda: client.run(0, log))
            except (ClientUnavailable, RunFailed, RuntimeError) as exc:
                print(f"  failed: {exc}", flush=True)
                continue
            add_rates(record)
            print(f"  {describe(record, case.unit)}", flush=True)
            crossings = record.get("crossings", {})
            total = sum(crossings.values())
            per_message = total / record["messages"] if record["messages"] else 0.0
            print(f"  calls into Go in the timed section: {total:,} ({per_message:.4f} per message): "
                  + ", ".join(f"{name} {count:,}" for name, count in sorted(crossings.items())), flush=True)
            text_path = folder / f"{case.name}.txt"
            with open(text_path, "w", encoding="utf-8") as text:
                text.write(f"{case.name}: {describe(record, case.unit)}\n")
                text.write(f"calls into Go: {json.dumps(crossings)} ({per_message:.4f} per message)\n\n")
                stats = pstats.Stats(str(stats_path), stream=text)
                stats.sort_stats("tottime").print_stats(30)
                stats.sort_stats("cumulative").print_stats(30)
            print(f"  wrote {text_path.relative_to(REPO)}", flush=True)


def _with_worker_env(env: dict[str, str], action: Any) -> Any:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return action()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- machine and versions -------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "nproc": _output(["nproc"]).strip(),
        "cpu_model": model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_start": os.getloadavg(),
        "date": datetime.date.today().isoformat(),
    }


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in PEER_DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    commit = _output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).strip()
    changed = _output(["git", "-C", str(REPO), "status", "--porcelain", "--", "core", "bridge", "python"]).strip()
    found["cello"] = commit + (" with uncommitted changes in core/, bridge/ or python/" if changed else "")
    found["go"] = _output(["go", "version"]).strip()
    found["java"] = (_output(["java", "-version"], stderr=True).splitlines() or [""])[0]
    found["brokers"] = [line.strip() for line in
                        _output([str(REPO / "scripts" / "brokers.sh"), "status"]).splitlines() if line.strip()]
    return found


def _output(command: list[str], stderr: bool = False) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stderr if stderr else completed.stdout


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


if __name__ == "__main__":
    main()

"""Kafka's own Java perf tools, the ceiling of the Kafka cases.

They run through ``scripts/brokers.sh kafka-run``, which execs java with
the broker's jars, so the JVM is a direct child of this process. Its CPU
time comes from ``getrusage(RUSAGE_CHILDREN)`` around the run, which
includes the JVM's start-up and JIT compilation, because the tools
cannot report their own.
"""

from __future__ import annotations

import re
import resource
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BROKERS_SH = REPO / "scripts" / "brokers.sh"

# ProducerPerformance's closing line, for example
# "2000000 records sent, 288558.6 records/sec (27.52 MB/sec), ...".
_PRODUCER_TOTAL = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec", re.MULTILINE)


class JavaToolError(RuntimeError):
    """A Java tool exited with an error or printed no result."""


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tool(args: list[str], log_path: Path, timeout: float) -> tuple[str, float]:
    """Run a class from the Kafka jars; return its stdout and its CPU seconds."""
    cpu_before = _children_cpu_seconds()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join([str(BROKERS_SH), "kafka-run", *args]) + "\n")
        log.flush()
        completed = subprocess.run(
            [str(BROKERS_SH), "kafka-run", *args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            timeout=timeout,
            check=False,
        )
        log.write(completed.stdout)
    cpu = _children_cpu_seconds() - cpu_before
    if completed.returncode != 0:
        raise JavaToolError(f"{args[0]} exited with code {completed.returncode}; see {log_path}")
    return completed.stdout, cpu


def produce(bootstrap: str, topic: str, count: int, value_size: int, log_path: Path,
            extra_props: list[str] | None = None) -> dict[str, Any]:
    """Produce ``count`` records with acks=all and return the run record."""
    props = [f"bootstrap.servers={bootstrap}", "acks=all", "client.id=bench-java", *(extra_props or [])]
    args = [
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic,
        "--num-records", str(count),
        "--record-size", str(value_size),
        "--throughput", "-1",
        "--producer-props", *props,
    ]
    out, cpu = run_tool(args, log_path, timeout=600)
    totals = _PRODUCER_TOTAL.findall(out)
    if not totals:
        raise JavaToolError(f"ProducerPerformance printed no total; see {log_path}")
    sent, rate = int(totals[-1][0]), float(totals[-1][1])
    return {"messages": sent, "seconds": sent / rate, "cpu_seconds": cpu, "cpu_includes_jvm_start": True}


def consume(bootstrap: str, topic: str, group: str, count: int, log_path: Path) -> dict[str, Any]:
    """Consume ``count`` records with a new group and return the run record.

    The tool's own elapsed time runs from its subscription to the last
    record, the group's join included, like the Python consumers' clock.
    """
    args = [
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server", bootstrap,
        "--topic", topic,
        "--group", group,
        "--messages", str(count),
        "--timeout", "30000",
    ]
    out, cpu = run_tool(args, log_path, timeout=600)
    lines = [line for line in out.splitlines() if line.strip()]
    header_index = next((i for i, line in enumerate(lines) if line.startswith("start.time")), None)
    if header_index is None or header_index + 1 >= len(lines):
        raise JavaToolError(f"ConsumerPerformance printed no result row; see {log_path}")
    header = [name.strip() for name in lines[header_index].split(",")]
    row = dict(zip(header, (value.strip() for value in lines[header_index + 1].split(","))))
    consumed = int(row["data.consumed.in.nMsg"])
    rate = float(row["nMsg.sec"])
    return {
        "messages": consumed,
        "seconds": consumed / rate,
        "cpu_seconds": cpu,
        "cpu_includes_jvm_start": True,
        "rebalance_ms": int(row.get("rebalance.time.ms", "0")),
    }

"""Measure one benchmark run from inside the client's own process.

Each client runs in a subprocess of its own, so the CPU time that
``getrusage(RUSAGE_SELF)`` reports covers that client alone: its Python
code, its native threads (librdkafka, the Go runtime) and nothing else.
"""

from __future__ import annotations

import resource
import time
from collections import Counter
from typing import Any

# Calls into cello's Go core per export name, set by worker.py when
# BENCH_COUNT_CROSSINGS=1; a Meter then records the calls of its section.
crossing_counts: Counter[str] | None = None


class Unavailable(Exception):
    """Raised by a client that the cello build in the repository cannot run."""


def cpu_seconds() -> float:
    """Return the user plus system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kib() -> int:
    """Return the resident set size of this process now, in KiB."""
    return _status_kib("VmRSS")


def peak_rss_kib() -> int:
    """Return the largest resident set size of this process so far, in KiB.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forked
    parent's memory across exec, so a small child of a large parent would
    report the parent's size.
    """
    return _status_kib("VmHWM")


class Meter:
    """Wall time, CPU time and memory of one timed section.

    ``start()`` opens the section; ``stop(messages)`` closes it and returns
    the run record that the orchestrator aggregates.
    """

    def __init__(self) -> None:
        self.started_at = 0.0
        self.cpu_at_start = 0.0
        self.rss_at_start = 0
        self.crossings_at_start: Counter[str] = Counter()
        self.record: dict[str, Any] | None = None

    def start(self) -> None:
        if crossing_counts is not None:
            self.crossings_at_start = Counter(crossing_counts)
        self.rss_at_start = rss_kib()
        self.cpu_at_start = cpu_seconds()
        self.started_at = time.perf_counter()

    def elapsed(self) -> float:
        """Return the seconds since start()."""
        return time.perf_counter() - self.started_at

    def stop(self, messages: int, end: float | None = None, **extra: Any) -> dict[str, Any]:
        """Close the section; ``end`` (a perf_counter time) ends its wall time early."""
        seconds = (time.perf_counter() if end is None else end) - self.started_at
        cpu = cpu_seconds() - self.cpu_at_start
        self.record = {
            "messages": messages,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "rss_start_kib": self.rss_at_start,
            "rss_end_kib": rss_kib(),
            "rss_peak_kib": peak_rss_kib(),
            **extra,
        }
        if crossing_counts is not None:
            self.record["crossings"] = dict(Counter(crossing_counts) - self.crossings_at_start)
        return self.record

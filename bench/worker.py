"""Run one benchmark client in this process and print its run record.

Usage: worker.py MODULE:FUNCTION PARAMS_JSON

FUNCTION (sync or async) takes the params dict and returns the run record
of ``measure.Meter.stop``. The record is printed as one line starting with
``BENCH-RESULT``, which the orchestrator (run.py) reads. A client that
raises ``measure.Unavailable`` prints ``BENCH-UNAVAILABLE`` and the reason.

Environment:
  BENCH_COUNT_CROSSINGS=1  count calls into cello's Go core by export name;
                           the record's "crossings" has those of the timed
                           section
  BENCH_CPROFILE=PATH      run the client under cProfile and write the
                           statistics to PATH
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib
import inspect
import json
import os
import sys
import threading
from collections import Counter
from typing import Any

import measure

RESULT_PREFIX = "BENCH-RESULT "
UNAVAILABLE_PREFIX = "BENCH-UNAVAILABLE "


class CountingLibrary:
    """Wrapper of cello's loaded ctypes library that counts calls per export."""

    def __init__(self, cdll: Any) -> None:
        self._cdll = cdll
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        function = getattr(self._cdll, name)

        def counted(*args: Any) -> Any:
            with self._lock:
                self.counts[name] += 1
            return function(*args)

        return counted


def count_crossings() -> CountingLibrary:
    """Load cello's core library and route its calls through a counter."""
    from cello import _native

    library = _native.library()
    counter = CountingLibrary(library.lib)
    library.lib = counter
    return counter


def run(target: str, params: dict[str, Any]) -> dict[str, Any]:
    module_name, function_name = target.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    if os.environ.get("BENCH_COUNT_CROSSINGS") == "1":
        measure.crossing_counts = count_crossings().counts

    def call() -> dict[str, Any]:
        if inspect.iscoroutinefunction(function):
            return asyncio.run(function(params))
        return function(params)  # type: ignore[no-any-return]

    profile_path = os.environ.get("BENCH_CPROFILE")
    if profile_path:
        profiler = cProfile.Profile()
        record = profiler.runcall(call)
        profiler.dump_stats(profile_path)
    else:
        record = call()
    return record


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: worker.py MODULE:FUNCTION PARAMS_JSON")
    try:
        record = run(sys.argv[1], json.loads(sys.argv[2]))
    except measure.Unavailable as exc:
        sys.stdout.write(UNAVAILABLE_PREFIX + json.dumps(str(exc)) + "\n")
        return
    sys.stdout.write(RESULT_PREFIX + json.dumps(record) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Cost of one call from Python into cello's Go core.

``cello_handles_live`` takes no argument and returns an int64 read under a
mutex, so a loop of calls to it through ctypes measures the crossing
itself: ctypes argument handling, releasing and taking back the GIL, and
cgo's entry into and exit from Go. The same loop over libc's ``rand``,
which also takes no argument and returns an int, is the baseline of a
ctypes call without cgo.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Callable

from measure import Meter

# Calls between two checks of the clock.
CHUNK = 100_000


def _time_calls(function: Callable[[], Any], duration: float) -> dict[str, Any]:
    meter = Meter()
    calls = 0
    meter.start()
    while meter.elapsed() < duration:
        for _ in range(CHUNK):
            function()
        calls += CHUNK
    return meter.stop(calls)


def cello_handles_live(params: dict[str, Any]) -> dict[str, Any]:
    from cello import _native

    export = _native.library().lib.cello_handles_live
    export()
    return _time_calls(export, params["duration"])


def libc_rand(params: dict[str, Any]) -> dict[str, Any]:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    function = libc.rand
    function.argtypes = []
    function.restype = ctypes.c_int
    return _time_calls(function, params["duration"])

"""The core library's loading rules: ABI check and the fork guard."""

from __future__ import annotations

import os

import pytest

from cello import KafkaConfig, _native
from cello.messaging import ClosedError, InternalError


def test_abi_version_matches() -> None:
    lib = _native.library()
    assert lib.lib.cello_abi_version() == _native.ABI_VERSION


def test_use_after_fork_raises_clear_error() -> None:
    KafkaConfig.local()  # make sure the library is loaded in this process
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what using the library does, then exit
        try:
            KafkaConfig.local()
            message = b"no error"
        except InternalError as exc:
            message = str(exc).encode()
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            message = repr(exc).encode()
        os.write(write_end, message)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    os.waitpid(pid, 0)
    assert "cannot run after fork()" in output


def test_unknown_handle_is_closed_error() -> None:
    lib = _native.library()
    with pytest.raises(ClosedError) as info:
        lib.call("cello_consumer_poll", 987654321, 0, 0, 1)
    assert "consumer handle 987654321 is unknown or closed" in str(info.value)

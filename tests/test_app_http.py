"""App routing served over real HTTP by the Go core; no broker involved."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from cello import App, Request, Response
from conftest import RunningApp


def _call(url: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


async def call(app: App, path: str, method: str = "GET", body: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(_call, f"http://{app.address}{path}", method, body, headers)


def make_app() -> App:
    app = App(shutdown_timeout=5)

    @app.get("/items/{item_id}")
    def get_item(request: Request) -> dict[str, Any]:
        return {"id": request.path_params["item_id"], "q": request.query_params.get("q"),
                "agent": request.headers.get("x-agent")}

    @app.post("/items")
    async def create_item(request: Request) -> tuple[dict[str, Any], int]:
        return {"created": request.json()}, 201

    @app.put("/text")
    def put_text(request: Request) -> str:
        return request.text.upper()

    @app.delete("/items/{item_id}")
    def delete_item(request: Request) -> None:
        return None

    @app.patch("/custom")
    def custom(request: Request) -> Response:
        return Response(b"raw", status=202, headers={"X-Custom": "yes"})

    @app.get("/boom")
    def boom(request: Request) -> None:
        raise RuntimeError("secret detail")

    return app


async def test_routes_over_http() -> None:
    app = make_app()
    async with RunningApp(app):
        status, headers, body = await call(app, "/items/a%20b?q=x", headers={"X-Agent": "t"})
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"id": "a b", "q": "x", "agent": "t"}

        status, _, body = await call(app, "/items", "POST", b'{"n": 1}')
        assert status == 201
        assert json.loads(body) == {"created": {"n": 1}}

        status, headers, body = await call(app, "/text", "PUT", "é".encode())
        assert status == 200
        assert body == "É".encode()
        assert headers["Content-Type"].startswith("text/plain")

        status, _, body = await call(app, "/items/1", "DELETE")
        assert status == 204
        assert body == b""

        status, headers, body = await call(app, "/custom", "PATCH")
        assert (status, headers["X-Custom"], body) == (202, "yes", b"raw")


async def test_errors_over_http() -> None:
    app = make_app()
    async with RunningApp(app):
        status, _, body = await call(app, "/nowhere")
        assert status == 404
        assert json.loads(body) == {"error": "no route for /nowhere"}

        status, headers, _ = await call(app, "/items", "GET")
        assert status == 405
        assert headers["Allow"] == "POST"

        status, _, body = await call(app, "/items", "POST", b"{not json")
        assert status == 400
        assert "not valid JSON" in json.loads(body)["error"]

        status, _, body = await call(app, "/boom")
        assert status == 500
        assert b"secret detail" not in body


def test_route_path_must_start_with_slash() -> None:
    app = App()
    with pytest.raises(ValueError, match="route path must be a str starting with '/'"):
        app.get("items")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"shutdown_timeout": 0}, "shutdown_timeout must be a number of seconds"),
        ({"shutdown_timeout": "5"}, "shutdown_timeout must be a number of seconds"),
        ({"workers": 0}, "workers must be an int >= 1"),
        ({"max_body_bytes": 1.5}, "max_body_bytes must be an int >= 1"),
    ],
)
def test_app_arguments_checked(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        App(**kwargs)


def test_sigint_during_startup_stops_promptly(tmp_path: Any) -> None:
    """Ctrl-C while connecting to an unreachable broker stops at once, not after the connect timeout."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = tmp_path / "app.py"
    script.write_text(
        "import logging\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from cello import App, KafkaConfig\n"
        "app = App()\n"
        "app.enable_messaging(KafkaConfig(brokers='127.0.0.1:1', connect_timeout_ms=60000))\n"
        "app.run(port=0)\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root / "python"))
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - start < 10, err
    assert "received SIGINT" in err
    assert "stopping before startup finished" in err

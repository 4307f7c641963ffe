"""`alerte run`: the whole service on one machine, with embedded defaults.

Starts (and stops together) the action server, the Rasa server, the worker, the
training worker (the console's retraining) and the web server; an embedded Redis when REDIS_URL is unset; an SQLite file when
DATABASE_URL is unset. Production runs each process separately (see docs/DEPLOY.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from bot import rasa_project
from service import stack

DEFAULT_SQLITE = f"sqlite:///{stack.VAR / 'alerte.db'}"


def main(argv: list[str] | None = None) -> int:
    stack.VAR.mkdir(parents=True, exist_ok=True)
    logs = stack.VAR / "log"
    redis_server = None
    if not os.environ.get("REDIS_URL"):
        redis_server, os.environ["REDIS_URL"] = stack.embedded_redis()
        print(f"[run] embedded Redis at {os.environ['REDIS_URL']}", flush=True)
    os.environ.setdefault("DATABASE_URL", DEFAULT_SQLITE)
    web_port = int(os.environ.get("PORT", "8000"))
    rasa_port = int(os.environ.get("RASA_PORT", "5005"))
    actions_port = int(os.environ.get("ACTIONS_PORT", "5055"))
    os.environ.setdefault("RASA_URL", f"http://127.0.0.1:{rasa_port}")
    os.environ.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{web_port}")
    os.environ.setdefault("ACTIONS_URL", f"http://127.0.0.1:{actions_port}")

    subprocess.run([sys.executable, "-m", "service.cli", "db", "upgrade"], check=True)
    model = rasa_project.model_to_serve()
    endpoints = stack.write_endpoints(stack.VAR / "endpoints.yml",
                                      f"http://127.0.0.1:{actions_port}/webhook", os.environ["REDIS_URL"])
    env = stack.child_env()
    procs = {
        "actions": stack.start_actions(actions_port, logs / "actions.log", env),
        "rasa": stack.start_rasa(model, endpoints, rasa_port, logs / "rasa.log", env,
                                 token=os.environ.get("RASA_TOKEN")),
        "worker": stack._spawn([sys.executable, "-m", "service.cli", "worker"], logs / "worker.log", env),
        # the console's retraining (minutes a job) on a worker of its own: replies never wait
        "trainer": stack._spawn([sys.executable, "-m", "service.cli", "worker", "--queues", "training"],
                                logs / "trainer.log", env),
        "web": stack._spawn([sys.executable, "-m", "gunicorn", "-w", os.environ.get("WEB_WORKERS", "2"),
                             "-b", f"127.0.0.1:{web_port}", "--access-logfile", "-",
                             "service.app:create_app()"], logs / "web.log", env),
    }
    stopping = False

    def shutdown(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        print(f"[run] logs in {logs}; waiting for Rasa to load the model...", flush=True)
        token = f"?token={os.environ['RASA_TOKEN']}" if os.environ.get("RASA_TOKEN") else ""
        stack.wait_http(f"http://127.0.0.1:{rasa_port}/status{token}", 300, procs["rasa"], ok=stack.rasa_ready)
        stack.wait_http(f"http://127.0.0.1:{web_port}/healthz", 60, procs["web"], ok=lambda r: r.status_code == 200)
        print(f"[run] ready: SMS webhook {os.environ['PUBLIC_BASE_URL']}/webhooks/twilio/sms ; "
              f"try it with: .venv/bin/alerte chat", flush=True)
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"[run] {name} exited ({proc.returncode}); see {logs / (name + '.log')}", flush=True)
                    stopping = True
            time.sleep(1)
    except (TimeoutError, RuntimeError) as exc:
        print(f"[run] {exc}; see {logs}", flush=True)
        return 1
    finally:
        for proc in procs.values():
            stack.stop(proc)
        if redis_server is not None:
            redis_server.shutdown()
    return 0


def cli(parser):
    """`alerte run`: the whole service on this machine (embedded defaults)."""
    return lambda args: main([])


if __name__ == "__main__":
    sys.exit(main())

"""`alerte <command>`: one table of subcommands, so adding one is one function and one line.

Each command is ``(help, add_arguments, run)``; ``run(args) -> int`` is the exit code.
Other modules register theirs with ``command(name, help)`` (see the end of this file).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable

COMMANDS: dict[str, tuple[str, Callable, Callable]] = {}
# Commands that live in other modules, imported when present: name -> "module:function".
# The function gets the argparse sub-parser and returns the run(args) callable.
EXTERNAL = {
    "run": "service.run:cli",
    "actions": "service.actions:cli",
    "train": "bot.rasa_project:cli",
    "chat": "service.chat:cli",
    "places": "bot.gazetteer_import:cli",
    "keys": "service.keys:cli",
    "smpp": "service.channels.smpp_link:cli",
    "subscribers": "service.subscribers:cli",
    "prompts": "service.prompts:cli",
    "operators": "service.accounts:cli",
    "locales": "service.locales_sync:cli",
}


def command(name: str, help: str, arguments: Callable = lambda parser: None):
    """Decorator: register `run(args)` as the subcommand `name`."""
    def register(run: Callable) -> Callable:
        COMMANDS[name] = (help, arguments, run)
        return run
    return register


@command("web", "serve the webhooks and the API (gunicorn; --dev for Flask's server)",
         lambda p: (p.add_argument("--bind", default="127.0.0.1:8000"),
                    p.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2"))),
                    p.add_argument("--dev", action="store_true")))
def web(args) -> int:
    from service.app import create_app

    app = create_app()  # fails early on an unsafe production configuration
    if args.dev:
        host, _, port = args.bind.rpartition(":")
        app.run(host=host or "127.0.0.1", port=int(port), threaded=True)
        return 0
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", args.bind,
                               "--access-logfile", "-", "service.app:create_app()"])
    return 0  # not reached


@command("worker", "run the job worker (pending messages, sends, broadcasts, the sweep every minute)",
         lambda p: (p.add_argument("--burst", action="store_true", help="stop when the queue is empty"),
                    p.add_argument("--queues", choices=["all", "replies", "broadcasts", "training"],
                                   default="all",
                                   help="replies: reporters' turns and replies (and the sweep); broadcasts: "
                                        "broadcasts only; all (default): replies first, then broadcasts; "
                                        "training: the console's retraining only (minutes per job)")))
def worker(args) -> int:
    from service import scheduler
    from service.app import create_app

    roles = scheduler.ROLES if args.queues == "all" else (args.queues,)
    scheduler.work(create_app(), burst=args.burst, roles=roles)
    return 0


@command("db", "database schema: `db upgrade [revision]`",
         lambda p: (p.add_argument("action", choices=["upgrade"]),
                    p.add_argument("revision", nargs="?", default="head"),
                    p.add_argument("--database-url", help="default: DATABASE_URL")))
def database(args) -> int:
    from service import config, db

    db.upgrade(args.database_url or config.load()["DATABASE_URL"], args.revision)
    return 0


def _load_external(subparsers) -> None:
    for name, target in EXTERNAL.items():
        if name in COMMANDS:
            continue
        module_name, function = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        if hasattr(module, function):
            parser = subparsers.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0]
                                           if module.__doc__ else None)
            parser.set_defaults(run=getattr(module, function)(parser))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="alerte", description="Community alert line: SMS service")
    subparsers = root.add_subparsers(dest="command", required=True)
    for name, (help_text, arguments, run) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text)
        arguments(sub)
        sub.set_defaults(run=run)
    _load_external(subparsers)
    return root


def main(argv: list[str] | None = None) -> int:
    from service.config import ConfigError

    args = parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except ConfigError as exc:  # a clear refusal, not a traceback
        print(f"alerte: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

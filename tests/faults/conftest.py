"""Fault injection against the real service: one stack of throwaway processes per session.

The stack (tests/faults/harness.py) is private: its own redis-server, its own PostgreSQL
cluster (made with initdb, run as the postgres user), a trained Rasa server, the
action server, the worker and gunicorn, on free loopback ports. It never touches the
machine's shared Redis or PostgreSQL. Without PostgreSQL binaries the stack runs on
SQLite and the PostgreSQL-only cases are skipped with the reason.

Each test starts from empty tables, an empty Redis, a clear stand-in and a fresh worker.
Settings: FAULTS_CONVERGE_TIMEOUT (s, default 60) bounds every wait for recovery.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.faults import harness

CONVERGE = float(os.environ.get("FAULTS_CONVERGE_TIMEOUT", "60"))


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: kills, pauses and restarts the service's real processes")


def pytest_collection_modifyitems(items):
    for item in items:
        if f"{os.sep}faults{os.sep}" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def fault_model() -> Path:
    from bot import rasa_project

    return rasa_project.train()  # reuses the model trained for these inputs


@pytest.fixture(scope="session")
def fault_stack(fault_model):
    workdir = Path(tempfile.mkdtemp(prefix="alerte-faults-"))
    reason = harness.postgres_missing()
    stack = harness.Stack(workdir, postgres=reason is None)
    stack.postgres_skip = reason
    try:
        stack.start(fault_model)
    except BaseException:
        logs = stack.logs_tail(3000)
        stack.stop()
        raise RuntimeError(f"the fault stack did not start; logs in {workdir}\n{logs}")
    yield stack
    stack.stop()
    if not os.environ.get("FAULTS_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def service(fault_stack):
    """The stack, cleaned for this case; resumed and restarted afterwards if a case
    left something paused or down."""
    fault_stack.reset()
    yield fault_stack
    fault_stack.standin.delay = fault_stack.standin.hang = 0.0


@pytest.fixture
def on_postgres(service):
    if service.postgres is None:
        pytest.skip(f"needs PostgreSQL: {service.postgres_skip}")
    return service

"""A real PostgreSQL server on loopback for the deployment tests (``deploy/ci/local_postgres.py``).

- server binaries absent and ``CI`` unset: the tests that need the server are skipped, with the reason;
- server binaries absent and ``CI`` set: they fail (CI installs them, so absence is a CI bug);
- binaries present but the server does not start: they fail with the reason and the server's log.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _load_local_postgres():
    # deploy/ is not a package (it is copied into images and charts as plain files).
    name = "pov_deploy_local_postgres"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DEPLOY / "ci" / "local_postgres.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


local_postgres = _load_local_postgres()
PostgresServer = local_postgres.PostgresServer


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server on 127.0.0.1 with an empty database ``dagster``."""
    bindir = local_postgres.find_postgres_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL server binaries not found (initdb/pg_ctl under /usr/lib/postgresql/*/bin, "
            "$POV_PG_BINDIR or PATH); install them with deploy/ci/install_services.sh"
        )
        if _truthy(os.environ.get("CI")):
            pytest.fail(f"CI is set and {reason}", pytrace=False)
        pytest.skip(reason)
    manager = local_postgres.postgres_server(bindir)
    try:
        server = manager.__enter__()
    except Exception as exc:
        pytest.fail(f"PostgreSQL from {bindir} did not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        manager.__exit__(None, None, None)

"""Throw-away PostgreSQL servers on loopback, for tests and local measurements.

Uses the server binaries of the Debian package ``postgresql`` (``deploy/ci/install_services.sh``):
``initdb`` in a fresh folder, password authentication on a free 127.0.0.1 port, stopped and
deleted on exit. As root the server runs as the ``postgres`` system user (Postgres refuses root).

Run it directly to get a server for manual work; it prints the variables that
``deploy/postgres/dagster.yaml`` reads and stops on Ctrl-C::

    python deploy/ci/local_postgres.py
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_USER = "pov"
PG_PASSWORD = "pov-test-password"
PG_DB = "dagster"
#: Postgres refuses to run as root; as root the server runs as this system user.
PG_SYSTEM_USER = "postgres"
COMMAND_TIMEOUT_S = 60


@dataclass(frozen=True)
class PostgresServer:
    """Where the test server listens and how to log in."""

    host: str
    port: int
    user: str
    password: str
    db_name: str
    data_dir: Path

    def env(self) -> dict[str, str]:
        """The variables that ``deploy/postgres/dagster.yaml`` reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db_name,
        }

    def connect(self, db_name: str | None = None):
        """A psycopg2 connection (autocommit) to ``db_name``, by default the test database."""
        import psycopg2

        con = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=db_name or self.db_name,
            connect_timeout=10,
        )
        con.autocommit = True
        return con


def find_postgres_bindir() -> Path | None:
    """The newest folder holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``$POV_PG_BINDIR`` wins; then Debian's ``/usr/lib/postgresql/<major>/bin``; then ``PATH``.
    """
    needed = ("initdb", "pg_ctl", "postgres")
    candidates: list[Path] = []
    if os.environ.get("POV_PG_BINDIR"):
        candidates.append(Path(os.environ["POV_PG_BINDIR"]))

    def major(path: str) -> int:
        version = Path(path).parent.name
        return int(version) if version.isdigit() else -1

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if all((folder / name).is_file() and os.access(folder / name, os.X_OK) for name in needed):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root and `runuser` is missing: cannot drop to the postgres user")
    return [runuser, "-u", PG_SYSTEM_USER, "--", *command]


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            _as_server_user(command),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{what} timed out after {COMMAND_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


@contextlib.contextmanager
def postgres_server(bindir: Path) -> Iterator[PostgresServer]:
    """Start a throw-away server from ``bindir``; stop and delete it on exit."""
    # Under /tmp, not pytest's tmp_path: the server user must be able to reach the folder, and
    # pytest's base folder is private to the current user. The socket lives in the folder too.
    root = Path(tempfile.mkdtemp(prefix="pov-pg-"))
    data, log, pwfile = root / "data", root / "server.log", root / "pwfile"
    pwfile.write_text(PG_PASSWORD + "\n")
    if os.geteuid() == 0:
        try:
            server_user = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(
                f"running as root and there is no `{PG_SYSTEM_USER}` system user "
                "(deploy/ci/install_services.sh creates it)"
            ) from exc
        os.chown(root, server_user.pw_uid, server_user.pw_gid)
        os.chown(pwfile, server_user.pw_uid, server_user.pw_gid)
    started = False
    try:
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                PG_USER,
                f"--pwfile={pwfile}",
                # TCP logins need the password: the same path the dagster.yaml profile takes.
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        last_error: Exception | None = None
        for _attempt in range(3):  # another process may take the free port before the server does
            port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
                # Throw-away data: durability is not under test, speed is welcome.
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
            )
            try:
                _run(
                    [
                        str(bindir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-l",
                        str(log),
                        "-w",
                        "-t",
                        "30",
                        "-o",
                        options,
                        "start",
                    ],
                    "pg_ctl start",
                )
                started = True
                break
            except RuntimeError as exc:
                last_error = RuntimeError(f"{exc}\nserver log:\n{log.read_text() if log.exists() else ''}")
        if not started:
            raise last_error  # type: ignore[misc]
        server = PostgresServer("127.0.0.1", port, PG_USER, PG_PASSWORD, PG_DB, data)
        _create_database(server)
        yield server
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"],
                    "pg_ctl stop",
                )
        shutil.rmtree(root, ignore_errors=True)


def _create_database(server: PostgresServer) -> None:
    con = server.connect("postgres")
    try:
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{server.db_name}"')
    finally:
        con.close()


def main() -> None:
    """Start a server, print its environment, wait for Ctrl-C."""
    import signal

    bindir = find_postgres_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found; run deploy/ci/install_services.sh")
    with postgres_server(bindir) as server:
        for key, value in server.env().items():
            print(f"export {key}={value}")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()

"""A real S3 API on loopback for the tests: moto's server in a subprocess on a free port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto_server(log_file: Path, timeout_s: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Start ``moto_server`` on a free loopback port; fail (not skip) with the reason if it cannot."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        pytest.fail(f"{exe} not found: install the dev extra (moto[server]) with `make install`")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(log_file, "wb") as log:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/reset", data=b"", timeout=2):
                return proc, endpoint
        except OSError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(
                    f"moto_server did not start on {endpoint} ({exc}); its log:\n"
                    + log_file.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.1)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)

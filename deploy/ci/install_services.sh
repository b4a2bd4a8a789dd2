#!/usr/bin/env bash
# Installs the services the deployment tests start themselves: the PostgreSQL server binaries
# (Debian/Ubuntu package `postgresql`). Idempotent and quick when they are already there.
# The tests run initdb/pg_ctl in a temporary folder; no system cluster is started or needed.
set -euo pipefail

have_server() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null
}

if have_server && id postgres >/dev/null 2>&1; then
    echo "postgresql: server binaries present: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "postgresql: no apt-get on this machine; install the PostgreSQL server binaries yourself" \
         "(initdb, pg_ctl, postgres) and set POV_PG_BINDIR to their folder" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# The package creates the `postgres` system user; the tests run the server as that user when root.
id postgres >/dev/null
have_server
echo "postgresql: installed $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"

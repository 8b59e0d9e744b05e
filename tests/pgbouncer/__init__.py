"""Tests through PgBouncer in transaction pooling mode: a private pgbouncer process per test
(its own config file and free port, ``auth_type = trust``, every database forwarded to the
test server), skipped with the reason when the binary is absent (CI installs it, .ci/run).

The helper configures the pooled database the way docs/operations.md#pgbouncer tells users
to: the role's ``search_path`` in that database set to the store's schema.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from orchestrator.cli.ports import free_port

PGBOUNCER_PATHS = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
START_SECONDS = 10.0  # the process answering on its port (it takes ~50 ms)
POOL_SIZE = 8  # server connections per database: fewer than the clients, so they share them


def pgbouncer_binary() -> str:
    """The pgbouncer executable; the test is skipped, saying why, when there is none."""
    found = shutil.which("pgbouncer") or next(
        (path for path in PGBOUNCER_PATHS if os.access(path, os.X_OK)), None
    )
    if found is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; CI installs it)")
    return found


class PgBouncer:
    """A pgbouncer process of the test's own, ``pool_mode = transaction``, in front of the
    server of ``server_url`` (its user must log in there without a password prompt)."""

    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        self.server_url = server_url
        self.user = parts.username or "postgres"
        self.host = parts.hostname or "127.0.0.1"
        self.server_port = parts.port or 5432
        self.port = 0
        # pgbouncer will not run as root: it switches to this user, who must read its files
        # (pytest's tmp_path is private to root), hence a directory of its own under /tmp.
        self.run_as = _unprivileged_user() if os.geteuid() == 0 else None
        self.directory = Path(tempfile.mkdtemp(prefix="orch-pgbouncer-"))
        self.directory.chmod(0o755)
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        """The URL of ``database`` through the pooler."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def pooled(self, direct_url: str) -> str:
        """``direct_url``'s database through the pooler."""
        return self.url(urlsplit(direct_url).path.lstrip("/"))

    def start(self) -> None:
        """Start the process on a free port; return once it accepts connections."""
        binary = pgbouncer_binary()
        for _ in range(3):  # another process may take the free port first
            self.port = free_port()
            config = self._write_config()
            command = [binary, str(config)]
            if self.run_as is not None:
                command += ["-u", self.run_as]
            with (self.directory / "pgbouncer.log").open("ab") as log:
                self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return
        raise RuntimeError(f"pgbouncer did not start:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM (immediate shutdown), SIGKILL if it lingers; remove its files."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def show(self, what: str) -> list[dict[str, object]]:
        """``SHOW <what>`` on the admin console (``STATS``, ``POOLS``, ``CLIENTS``...)."""
        with psycopg.connect(self.url("pgbouncer"), autocommit=True) as conn:
            conn.prepare_threshold = None
            cursor = conn.execute(sql.SQL("SHOW {}").format(sql.SQL(what)))
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _write_config(self) -> Path:
        users = self.directory / "userlist.txt"
        users.write_text(f'"{self.user}" ""\n')
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={self.host} port={self.server_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            f"admin_users = {self.user}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {POOL_SIZE}\n"
            "max_client_conn = 500\n"
            "idle_transaction_timeout = 5\n"
        )
        for path in (users, config):
            path.chmod(0o644)
        return config

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.02)
        self.process.kill()
        self.process.wait()
        return False


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    pytest.skip("pgbouncer refuses to run as root and there is no postgres or nobody user")


def set_search_path(direct_url: str, schema: str = "orchestrator") -> None:
    """What docs/operations.md#pgbouncer asks of users: the role's search_path in the
    database, which every server session PgBouncer opens then starts with."""
    parts = urlsplit(direct_url)
    query = sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = {}").format(
        sql.Identifier(parts.username or "postgres"),
        sql.Identifier(parts.path.lstrip("/")),
        sql.Identifier(schema),
    )
    with psycopg.connect(direct_url, autocommit=True) as conn:
        conn.execute(query)

"""A private PostgreSQL cluster for the chaos run: the harness restarts it (a fault the shared
server of the test suite must never see). Made with Debian's initdb and pg_ctl, run as the
``postgres`` user when this process is root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from orchestrator.cli.ports import free_port

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def postgres_binary(name: str) -> str | None:
    """The newest installed PostgreSQL's ``name`` (initdb, pg_ctl, pg_basebackup...), or None."""
    for directory in BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


def available() -> str | None:
    """None if a private cluster can be made here, else why not."""
    if postgres_binary("initdb") is None or postgres_binary("pg_ctl") is None:
        return "initdb/pg_ctl not found (Debian: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run PostgreSQL as"
    return None


def cluster_directory(prefix: str) -> Path:
    """A new directory for a cluster's files, in memory (/dev/shm) where there is one: initdb
    writes about a thousand files and the test deletes them again, which on a disk costs seconds
    of kernel time (ext4 without a journal scans past recently deleted inodes for each new
    file). A process crash, not an OS crash, is what these clusters live through. Else under
    the system's temporary folder; either way one the ``postgres`` user can reach (not below a
    root-only folder)."""
    shared_memory = Path("/dev/shm")
    if shared_memory.is_dir() and os.access(shared_memory, os.W_OK | os.X_OK):
        return Path(tempfile.mkdtemp(prefix=prefix, dir=shared_memory))
    return Path(tempfile.mkdtemp(prefix=prefix))


class Cluster:
    """initdb in a directory of its own (``cluster_directory``), trust auth, fsync off (a process
    crash, not an OS crash, is what the chaos run simulates); started on a free loopback port."""

    def __init__(self) -> None:
        self.directory = cluster_directory("chaos-pg-")
        self.data = self.directory / "data"
        self.port = free_port()
        self.log = self.directory / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=120, cwd=self.directory
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    def create(self) -> None:
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.directory, postgres.pw_uid, postgres.pw_gid)
        initdb = postgres_binary("initdb")
        assert initdb is not None
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = (
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.directory}'\nfsync = off\n"
            "full_page_writes = off\nmax_connections = 300\nshared_buffers = 128MB\n"
        )
        config = self.data / "postgresql.conf"
        self._run("sh", "-c", f"cat >> '{config}' <<'EOF'\n{options}EOF\n")

    def start(self) -> None:
        pg_ctl = postgres_binary("pg_ctl")
        assert pg_ctl is not None
        self._run(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        self.wait_ready()

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast``: sessions ended cleanly; ``immediate``: as if it crashed) and start."""
        pg_ctl = postgres_binary("pg_ctl")
        assert pg_ctl is not None
        self._run(pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.start()

    def stop(self, *, keep: bool = False) -> None:
        """Stop it and delete its files (``keep``: leave them, to look at after a failure)."""
        pg_ctl = postgres_binary("pg_ctl")
        if pg_ctl is not None and self.data.exists():
            self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "stop", check=False)
        if not keep:
            shutil.rmtree(self.directory, ignore_errors=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL on port {self.port} did not start: see {self.log}")

"""A primary and its synchronous streaming replica: two private PostgreSQL clusters on this
machine (tests/chaos/cluster.py's), the replica cloned with ``pg_basebackup -R``. The primary
waits for the replica to flush every commit (``synchronous_standby_names = '*'``,
``synchronous_commit = on``), so a commit it acknowledged survives its loss; ``fail_over()``
stops it hard and promotes the replica. Workers reach whichever is the primary through one
multi-host URL with ``target_session_attrs=read-write``."""

from __future__ import annotations

import os
import pwd

from orchestrator.cli.ports import free_port
from tests.chaos.cluster import Cluster, available, cluster_directory, postgres_binary

__all__ = ["ReplicatedPair", "tools_missing"]

PRIMARY_OPTIONS = (
    "synchronous_standby_names = '*'\n"  # any connected standby: the one we make
    "synchronous_commit = on\n"  # a commit returns once the standby flushed it
    "wal_level = replica\nmax_wal_senders = 4\nwal_keep_size = '64MB'\n"
    "shared_buffers = 32MB\n"
)


class Standby(Cluster):
    """A cluster cloned from ``primary`` by pg_basebackup (``-R``: it starts as a standby
    streaming from it), on a port and socket folder of its own."""

    def __init__(self) -> None:
        self.directory = cluster_directory("replica-pg-")
        self.data = self.directory / "data"
        self.port = free_port()
        self.log = self.directory / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def clone(self, primary: Cluster) -> None:
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.directory, postgres.pw_uid, postgres.pw_gid)
        basebackup = postgres_binary("pg_basebackup")
        assert basebackup is not None, "pg_basebackup not found"
        self._run(
            basebackup, "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", str(self.data), "-R", "-X", "stream", "--no-sync", "-c", "fast",
        )  # fmt: skip
        # The configuration came with the copy: its port, socket folder and the primary's
        # synchronous_standby_names (harmless on a standby; a promoted one has no standby
        # left, so it is cleared to keep commits from waiting for one).
        options = (
            f"port = {self.port}\nunix_socket_directories = '{self.directory}'\n"
            "synchronous_standby_names = ''\nhot_standby = on\n"
        )
        config = self.data / "postgresql.conf"
        self._run("sh", "-c", f"cat >> '{config}' <<'EOF'\n{options}EOF\n")

    def promote(self) -> None:
        pg_ctl = postgres_binary("pg_ctl")
        assert pg_ctl is not None
        self._run(pg_ctl, "-D", str(self.data), "-w", "-t", "60", "promote")


class ReplicatedPair:
    """The primary and the standby; ``url`` names both hosts (the writable one is chosen)."""

    def __init__(self) -> None:
        self.primary = Cluster()
        self.standby = Standby()

    @property
    def url(self) -> str:
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
            "/postgres?target_session_attrs=read-write"
        )

    @property
    def read_url(self) -> str:
        """The replica alone (a read-only listing's URL)."""
        return self.standby.url

    def start(self) -> None:
        self.primary.create()
        config = self.primary.data / "postgresql.conf"
        self.primary._run("sh", "-c", f"cat >> '{config}' <<'EOF'\n{PRIMARY_OPTIONS}EOF\n")
        self.primary.start()
        self.standby.clone(self.primary)
        self.standby.start()

    def kill_primary(self) -> None:
        """Stop the primary as a crash would (``-m immediate``: no shutdown checkpoint, every
        session cut); it stays down."""
        pg_ctl = postgres_binary("pg_ctl")
        assert pg_ctl is not None
        self.primary._run(pg_ctl, "-D", str(self.primary.data), "-m", "immediate", "-w", "stop")

    def promote(self) -> None:
        self.standby.promote()

    def stop(self, *, keep: bool = False) -> None:
        self.standby.stop(keep=keep)
        self.primary.stop(keep=keep)


def tools_missing() -> str | None:
    """None if a replicated pair can be made here, else why not."""
    reason = available()
    if reason is None and postgres_binary("pg_basebackup") is None:
        return "pg_basebackup not found (Debian: apt-get install postgresql)"
    return reason

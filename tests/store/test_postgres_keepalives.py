"""Every PostgreSQL connection of a store (the pool's, the LISTEN connection) carries TCP
keepalives and a TCP user timeout, read back from the sockets themselves; a URL's own value
wins. Real connections on loopback: the server names each session's client port
(pg_stat_activity), and this process's socket with that local port is asked its options."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from orchestrator.store import PostgresStore
from orchestrator.store.postgres_keepalives import (
    DEFAULTS,
    KEEPALIVES_COUNT,
    KEEPALIVES_IDLE_SECONDS,
    KEEPALIVES_INTERVAL_SECONDS,
    TCP_USER_TIMEOUT_MS,
    keepalive_kwargs,
)

pytestmark = pytest.mark.postgres


def with_query(url: str, query: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="&".join(q for q in (parts.query, query) if q)))


def socket_options(local_ports: set[int]) -> dict[int, tuple[int, int, int, int, int]]:
    """(SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT) of this
    process's TCP sockets bound to ``local_ports``, by port."""
    found: dict[int, tuple[int, int, int, int, int]] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue  # not a socket
        with sock:
            if sock.family is not socket.AF_INET or sock.type is not socket.SOCK_STREAM:
                continue
            port = sock.getsockname()[1]
            if port in local_ports:
                found[port] = (
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
                )
    return found


async def store_sockets(url: str, application_name: str) -> dict[int, tuple[int, ...]]:
    """Open a store on ``url`` (two pooled connections and the LISTEN connection) and read
    its sockets' options."""
    store = PostgresStore(url, min_size=2, max_size=2)
    await store.open()
    try:
        await store.listen(lambda kind, detail: None)
        await store.now_ms()  # a pooled connection in use
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            for _ in range(200):  # the pool opens its connections in the background
                cursor = await admin.execute(
                    "SELECT client_port FROM pg_stat_activity"
                    " WHERE application_name = %s AND pid <> pg_backend_pid()",
                    (application_name,),
                )
                ports = {int(row[0]) for row in await cursor.fetchall()}
                if len(ports) >= 3:  # 2 pooled + LISTEN
                    break
                await asyncio.sleep(0.05)
        return dict(socket_options(ports))
    finally:
        await store.close()


async def test_pool_and_listen_connections_carry_the_default_keepalives(
    postgres_url: str,
) -> None:
    name = f"keepalive-{uuid.uuid4().hex[:8]}"
    found = await store_sockets(with_query(postgres_url, f"application_name={name}"), name)
    assert len(found) >= 3
    expected = (
        1,
        KEEPALIVES_IDLE_SECONDS,
        KEEPALIVES_INTERVAL_SECONDS,
        KEEPALIVES_COUNT,
        TCP_USER_TIMEOUT_MS,
    )
    assert set(found.values()) == {expected}


async def test_a_parameter_of_the_url_wins(postgres_url: str) -> None:
    name = f"keepalive-{uuid.uuid4().hex[:8]}"
    url = with_query(
        postgres_url, f"application_name={name}&keepalives_idle=7&tcp_user_timeout=12000"
    )
    found = await store_sockets(url, name)
    assert len(found) >= 3
    expected = (1, 7, KEEPALIVES_INTERVAL_SECONDS, KEEPALIVES_COUNT, 12000)
    assert set(found.values()) == {expected}


def test_keepalive_kwargs_leave_out_what_the_url_sets() -> None:
    assert keepalive_kwargs("postgresql://u@h/db") == DEFAULTS
    assert keepalive_kwargs("host=h dbname=db keepalives=0") == {
        k: v for k, v in DEFAULTS.items() if k != "keepalives"
    }
    # A URL that does not parse gets them all (connecting reports the URL's own error).
    assert keepalive_kwargs("postgresql://h/db?no_such_option=1") == DEFAULTS

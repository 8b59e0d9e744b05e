"""TCP keepalives and a TCP user timeout on every PostgreSQL connection (the pool's, the
LISTEN connection, the migration lock's): a host that vanishes without closing its sockets (a
primary powered off, a network partition, a failover that moves an address) is noticed in
about half a minute instead of the kernel's default (two hours idle, about fifteen minutes of
retransmissions), so the call fails, is retried, and finds the new primary.

The connection URL wins: a parameter it sets (``?keepalives_idle=60``, or ``keepalives=0``)
is left as it is. libpq ignores all of them on a Unix-domain socket, and ``tcp_user_timeout``
outside Linux (docs/operations.md#failover)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

KEEPALIVES_IDLE_SECONDS = 10  # idle time before the first probe
KEEPALIVES_INTERVAL_SECONDS = 5  # between two unanswered probes
KEEPALIVES_COUNT = 3  # unanswered probes before the connection is dropped: 10 + 3 * 5 = 25 s
# Sent data unacknowledged this long drops the connection (a statement or commit sent to a
# host that is gone), the same 25 s the probes take to find an idle one gone.
TCP_USER_TIMEOUT_MS = 25_000

DEFAULTS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": KEEPALIVES_IDLE_SECONDS,
    "keepalives_interval": KEEPALIVES_INTERVAL_SECONDS,
    "keepalives_count": KEEPALIVES_COUNT,
    "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
}


def keepalive_kwargs(url: str) -> dict[str, Any]:
    """The keepalive parameters to pass with a connection to ``url``: the defaults that
    ``url`` does not set itself (a keyword argument would override the URL's value). A URL
    that does not parse gets them all; connecting then fails with the URL's own error."""
    try:
        given = conninfo_to_dict(url)
    except psycopg.Error:
        given = {}
    return {name: value for name, value in DEFAULTS.items() if name not in given}

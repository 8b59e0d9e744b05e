"""Which ports `saga up` can listen on, and, for a taken one, which process holds it.

A port is probed the way uvicorn binds it: with ``SO_REUSEADDR``, so a port whose last
connections linger in TIME_WAIT (a server stopped a moment ago) counts as free, as it is for
uvicorn; only a socket still bound to it makes it taken.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

from orchestrator.errors import ConfigurationError

_LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp
_LOWEST = 10_000  # ports picked for servers start here (below: well-known and registered ones)
_TRIES = 64


def can_bind(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (as uvicorn binds: ``SO_REUSEADDR``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    """The first port of the kernel's range for outgoing connections (Linux: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1", preferred: int | None = None) -> int:
    """``preferred`` if it can be bound on ``host`` now, else a free port below the kernel's
    range for outgoing connections, else (that range covers almost every port) one the OS picks.

    Why not simply the OS's pick (bind to port 0): it comes from the range the kernel also
    takes the local ports of outgoing connections from. Between choosing a port and the child
    binding it, any connection the machine opens (to PostgreSQL, say) may take it, and the child
    fails with "address already in use"; seen in the test suite, where thousands of connections
    open beside `saga up`. Below that range no outgoing connection takes a port.
    """
    if preferred and can_bind(host, preferred):
        return preferred
    below = _ephemeral_low()
    if below - _LOWEST >= 1000:
        for port in random.sample(range(_LOWEST, below), _TRIES):
            if can_bind(host, port):
                return port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            raise ConfigurationError(f"no free port on {host}") from None
        return int(probe.getsockname()[1])


def port_owner(port: int) -> str | None:
    """``pid 123 (python -m orchestrator.cli up)``: the process listening on ``port``, when
    Linux's /proc tells (processes of other users stay unknown); None otherwise."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and fields[1].endswith(f":{port:04X}"):
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                continue
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        command = " ".join(part.decode(errors="replace") for part in argv if part)
        return f"pid {pid} ({command[:120]})"
    return None


def check_port(host: str, port: int, option: str = "--port") -> None:
    """Raise ConfigurationError, in one line saying who holds it and what to do, when
    ``host:port`` cannot be listened on."""
    if can_bind(host, port):
        return
    owner = port_owner(port)
    held = f"by {owner}" if owner else "by another program"
    raise ConfigurationError(
        f"port {port} on {host} is already in use {held}. Is `saga up` (make demo) running "
        f"already? Stop it (Ctrl-C in its terminal), or pick another port: {option} "
        f"{port + 100} (make demo ARGS='{option} {port + 100}'), or {option} 0 for any.",
        host=host,
        port=port,
    )

"""`saga up`'s ports: a port left in TIME_WAIT is reused, a taken one is a one-line error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli.ports import can_bind, check_port, free_port, port_owner
from orchestrator.errors import ConfigurationError
from tests.e2e.stack import ROOT, saga_up


def _time_wait_port() -> int:
    """A port a server listened on and closed, its accepted connection closed by the server
    first: the connection's server side lingers in TIME_WAIT on that port (about a minute)."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = int(server.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server closes first: its side goes to TIME_WAIT
        assert client.recv(1) == b""  # the client saw the close
        client.close()
    return port


def _in_time_wait(port: int) -> bool:
    listing = subprocess.run(
        ["ss", "-Htan", "state", "time-wait", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    )
    return listing.returncode != 0 or bool(listing.stdout.strip())  # no ss: assume it is


def test_a_port_in_time_wait_is_free_as_uvicorn_would_reuse_it() -> None:
    port = _time_wait_port()
    assert _in_time_wait(port)
    # What the old check did (no SO_REUSEADDR) fails here:
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert can_bind("127.0.0.1", port)
    assert free_port("127.0.0.1", preferred=port) == port
    check_port("127.0.0.1", port)


def test_a_listening_port_is_taken_and_its_owner_named() -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = int(server.getsockname()[1])
        assert not can_bind("127.0.0.1", port)
        assert free_port("127.0.0.1", preferred=port) != port
        assert port_owner(port) == f"pid {os.getpid()} ({' '.join(_argv())[:120]})"
        with pytest.raises(ConfigurationError, match=f"port {port} on 127.0.0.1 is already in"):
            check_port("127.0.0.1", port)


def _argv() -> list[str]:
    return [a.decode() for a in Path("/proc/self/cmdline").read_bytes().split(b"\0") if a]


@pytest.mark.slow
def test_a_second_saga_up_on_the_same_port_says_so_in_one_line(tmp_path: Path) -> None:
    first = saga_up(tmp_path / "first", "--port", "0")
    try:
        port = first.urls["orchestrator"].rsplit(":", 1)[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "ORCHESTRATOR_"))}
        env["ORCHESTRATOR_DATA_DIR"] = str(tmp_path / "second")
        second = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "up", "--port", port],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        assert first.interrupt() == 0, "\n".join(first.output)
    assert second.returncode == 1
    assert second.stdout == ""
    lines = second.stderr.splitlines()
    assert len(lines) == 1, second.stderr
    assert f"port {port} on 127.0.0.1 is already in use by pid {first.process.pid}" in lines[0]
    assert "orchestrator.cli up" in lines[0] and "--port" in lines[0]
    assert not (tmp_path / "second" / "shop.db").exists()  # nothing started


def test_a_port_picked_for_a_server_lies_below_the_range_of_outgoing_connections() -> None:
    """An outgoing connection (to PostgreSQL, say) never takes a port `saga up` picked for a
    child between the pick and the child's bind: the kernel takes those from its own range."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(10_000 <= port < low for port in ports), ports
    assert all(can_bind("127.0.0.1", port) for port in ports)

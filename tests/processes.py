"""Real processes in tests: wait until a server answers, and stop one (SIGKILL if it lingers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]  # the repository: the cwd of every child process


def wait_healthy(url: str, process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """Until ``url``/healthz answers 2xx; fail with the process's output if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.communicate()  # (None, None) when it writes to a file
            raise RuntimeError(f"{url}: the process exited with {process.returncode}: {output}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy within {timeout} s")


def stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` (SIGTERM: a graceful stop), wait up to 15 s, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_ready(module: str, *args: str) -> subprocess.Popen[str]:
    """``python -m module args...`` from the repository root, its output piped, once it has
    printed its first line, ``ready`` (fail with what it wrote to stderr otherwise)."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", (
        process.stderr.read() if process.stderr else ""
    )
    return process


def run_module(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m module args...`` from the repository root, to its end, output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )

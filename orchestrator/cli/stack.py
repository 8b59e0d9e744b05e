"""What `saga up` runs: the HTTP service of an Orchestrator, plus routes and child processes.

``saga up MODULE:ATTR`` accepts an Orchestrator, or a function ``(UpContext) -> Stack`` that
describes a whole application: webhook sources, extra routes (a web page), and programs to run
beside the service (e.g. the microservices its steps call), each stopped with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import APIRouter

from orchestrator.app import Orchestrator
from orchestrator.cli.ports import free_port

if TYPE_CHECKING:
    from orchestrator.http.webhooks import WebhookSource


@dataclass(frozen=True)
class ChildProcess:
    """A program run beside the service, started first and stopped last.

    Args:
        name: shown in messages (``inventory exited with code 1``).
        argv: the command line.
        env: added to this process's environment.
        url: its base URL, printed; with ``health_path`` the service starts once it answers.
        health_path: polled until it answers 2xx (None: do not wait).
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    health_path: str | None = "/healthz"


@dataclass(frozen=True)
class Stack:
    """An Orchestrator's service with everything around it.

    Args:
        orchestrator: the application whose API is served (and launched).
        webhooks: sources served at ``POST /webhooks/{name}``.
        routers: extra routes of the service (e.g. a shop page).
        processes: programs run beside it.
        links: more URLs to print once up (name -> URL), e.g. the page to open first.
    """

    orchestrator: Orchestrator
    webhooks: Sequence[WebhookSource] = ()
    routers: Sequence[APIRouter] = ()
    processes: Sequence[ChildProcess] = ()
    links: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UpContext:
    """Where the service will listen, handed to a stack factory before anything starts."""

    host: str
    port: int  # never 0: a free port was chosen already

    @property
    def url(self) -> str:
        """The service's base URL (loopback when it binds every interface)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def child_host(self) -> str:
        """Where child processes should bind: loopback unless the service is public."""
        return self.host if self.host in ("0.0.0.0", "::") else "127.0.0.1"

    def free_port(self, preferred: int | None = None) -> int:
        """A port for a child: ``preferred`` when free (and not the service's), else any."""
        port = free_port(self.child_host, None if preferred == self.port else preferred)
        return port if port != self.port else free_port(self.child_host)


StackFactory = Callable[[UpContext], Stack]

__all__ = ["ChildProcess", "Stack", "StackFactory", "UpContext", "free_port"]

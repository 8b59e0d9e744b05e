"""ServiceClient: the management API of a running service, for `saga … --url` and scripts."""

from __future__ import annotations

import json as json_text
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from orchestrator import errors
from orchestrator.http import error_types  # noqa: F401  (its codes are found by _error_class)

DEFAULT_TIMEOUT_SECONDS = 30.0


class ServiceError(errors.OrchestratorError):
    """The service could not be reached, or answered something that is not its error shape."""

    http_status = 502
    code = "service_error"


def _subclasses(cls: type[errors.OrchestratorError]) -> Iterator[type[errors.OrchestratorError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _error_class(code: str) -> type[errors.OrchestratorError]:
    """The error class whose ``code`` the service reported (ServiceError when unknown)."""
    for cls in _subclasses(errors.OrchestratorError):
        if cls.code == code and "code" in vars(cls):
            return cls
    return ServiceError


class ServiceClient:
    """Talks to a service made by ``create_app`` (``saga up``): the same management calls as
    the Orchestrator's, answered as the service's JSON.

    Errors come back as the ``orchestrator.errors`` class the service reported (its ``code``):
    ``WorkflowNotFoundError`` for a 404 ``workflow_not_found``, and so on; a service that
    cannot be reached, or answers outside its error shape, raises ``ServiceError``.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000`` (a mount prefix included, if any).
        api_key: the service's bearer key, when it has one.
        timeout: seconds per request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
        actor: str | None = None,
        surface: str | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise errors.InvalidArgumentError(
                f"the service URL must start with http:// or https://, got {base_url!r}"
            )
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if actor:  # who the audit log records for the actions taken (X-Actor)
            headers["X-Actor"] = actor
        if surface:
            headers["X-Orchestrator-Surface"] = surface
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: str | None = None,
        headers: dict[str, str | None] | None = None,
    ) -> Any:
        """One call; the decoded JSON answer, or the reported error raised. Parameters and
        headers whose value is None are left out."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        extra = {k: v for k, v in (headers or {}).items() if v is not None}
        try:
            response = await self._http.request(
                method, path, params=clean, json=json, content=content, headers=extra
            )
        except httpx.HTTPError as exc:
            raise ServiceError(
                f"cannot reach the service at {self.base_url}: {exc}. Is `saga up` running "
                "there (check --url)?",
                url=self.base_url,
            ) from None
        if response.is_success:
            return response.json() if response.content else None
        raise self._error(response)

    def _error(self, response: httpx.Response) -> errors.OrchestratorError:
        try:
            body = response.json()
            code, message = str(body["error"]), str(body["message"])
            detail = body.get("detail")
        except (ValueError, KeyError, TypeError):
            return ServiceError(
                f"the service answered {response.status_code} without its JSON error body: "
                f"{response.text[:200]!r}",
                status=response.status_code,
            )
        error = _error_class(code)(message, **(detail if isinstance(detail, dict) else {}))
        if not isinstance(detail, dict) and detail is not None:
            error.detail["errors"] = detail
        return error

    async def list_workflows(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        queue: str | None = None,
        app_version: str | None = None,
        stranded: bool = False,
        attributes: Mapping[str, str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Workflows, newest first (``GET /workflows``); ``attributes``: all must match."""
        page = await self.request(
            "GET",
            "/workflows",
            params={
                "status": status,
                "name": name,
                "queue": queue,
                "app_version": app_version,
                "stranded": "true" if stranded else None,
                "attribute": [f"{k}:{v}" for k, v in (attributes or {}).items()] or None,
                "limit": limit,
                "offset": offset,
            },
        )
        return list(page["items"])

    async def get_workflow(self, workflow_id: str) -> dict[str, Any]:
        """One workflow (``GET /workflows/{id}``)."""
        return dict(await self.request("GET", f"/workflows/{_segment(workflow_id)}"))

    async def list_steps(self, workflow_id: str) -> list[dict[str, Any]]:
        """A workflow's steps (``GET /workflows/{id}/steps``)."""
        return list(await self.request("GET", f"/workflows/{_segment(workflow_id)}/steps"))

    async def export_history(self, workflow_id: str) -> dict[str, Any]:
        """A workflow's history document (``GET /workflows/{id}/history``)."""
        return dict(await self.request("GET", f"/workflows/{_segment(workflow_id)}/history"))

    async def cancel(
        self,
        workflow_id: str,
        *,
        compensate: bool = False,
        children: bool = True,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Cancel (and optionally roll back) a workflow, and its running children."""
        path = f"/workflows/{_segment(workflow_id)}/cancel"
        body = {"compensate": compensate, "children": children, "reason": reason}
        return dict(await self.request("POST", path, json=body))

    async def delete_workflow(
        self, workflow_id: str, *, children: bool = True, reason: str | None = None
    ) -> None:
        """Delete a finished workflow (and its children unless ``children=False``)."""
        path = f"/workflows/{_segment(workflow_id)}"
        params = {"children": "true" if children else "false", "reason": reason}
        await self.request("DELETE", path, params=params)

    async def resume(self, workflow_id: str, *, reason: str | None = None) -> dict[str, Any]:
        """Run a cancelled or failed workflow again, in the service's process."""
        path = f"/workflows/{_segment(workflow_id)}/resume"
        return dict(await self.request("POST", path, json={"reason": reason}))

    async def retry_compensation(
        self, workflow_id: str, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Retry the failed compensation of a COMPENSATION_FAILED saga."""
        path = f"/workflows/{_segment(workflow_id)}/retry-compensation"
        return dict(await self.request("POST", path, json={"reason": reason}))

    async def skip_compensation(
        self, workflow_id: str, *, step: int, reason: str
    ) -> dict[str, Any]:
        """Give up undoing forward step ``step`` of a COMPENSATION_FAILED saga."""
        path = f"/workflows/{_segment(workflow_id)}/skip-compensation"
        return dict(await self.request("POST", path, json={"step": step, "reason": reason}))

    async def bulk(
        self,
        action: str,
        filters: dict[str, Any],
        *,
        dry_run: bool = False,
        compensate: bool = False,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """A bulk action (``cancel``, ``resume``, ``retry-compensation``, ``delete``) by
        filter."""
        body = {
            "filter": {k: v for k, v in filters.items() if v is not None},
            "dry_run": dry_run,
            "compensate": compensate,
            "reason": reason,
        }
        return dict(await self.request("POST", f"/admin/bulk/{_segment(action)}", json=body))

    async def send(
        self,
        workflow_id: str,
        message: Any,
        topic: str,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Send ``message`` (any JSON value) into a workflow's mailbox on ``topic``
        (POST /workflows/{id}/messages/{topic}); the same ``idempotency_key`` stores it once."""
        path = f"/workflows/{_segment(workflow_id)}/messages/{_segment(topic)}"
        return await self._send(path, message, idempotency_key, None)

    async def send_to_key(
        self,
        key: str,
        message: Any,
        topic: str,
        *,
        idempotency_key: str | None = None,
        keep_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Send ``message`` to the workflow holding the business key ``key`` (``name:value``),
        or keep it ``keep_seconds`` (default: the service's setting) for the first workflow to
        start with it (POST /messages/by-key/{key}/{topic}). The answer says which:
        ``delivered`` and ``workflow_id``, or ``expires_at``; ``repeat`` for a used
        ``idempotency_key``."""
        path = f"/messages/by-key/{_segment(key)}/{_segment(topic)}"
        return await self._send(path, message, idempotency_key, keep_seconds)

    async def _send(
        self, path: str, message: Any, idempotency_key: str | None, keep_seconds: float | None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
        try:
            body = json_text.dumps(message)  # null too (httpx sends no body for json=None)
        except (TypeError, ValueError) as exc:
            raise errors.InvalidArgumentError(f"the message is not JSON: {exc}") from None
        answer = await self.request(
            "POST", path, params={"keep_seconds": keep_seconds}, content=body, headers=headers
        )
        return dict(answer)

    async def erase_subject(self, subject: str, *, reason: str | None = None) -> bool:
        """Delete a subject's data key (POST /admin/subjects/{subject}/erase)."""
        path = f"/admin/subjects/{_segment(subject)}/erase"
        return bool((await self.request("POST", path, json={"reason": reason}))["erased"])

    async def list_audit(
        self, *, workflow_id: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The operator audit log, newest first."""
        params = {"workflow_id": workflow_id, "action": action, "limit": limit}
        return list((await self.request("GET", "/admin/audit", params=params))["items"])

    async def fork(
        self,
        workflow_id: str,
        from_step: int = 1,
        *,
        new_workflow_id: str | None = None,
        app_version: str | None = None,
    ) -> dict[str, Any]:
        """A new workflow with the same input, reusing the steps before ``from_step`` (run by
        a worker of ``app_version`` when given)."""
        params = {
            "from_step": from_step,
            "new_workflow_id": new_workflow_id,
            "app_version": app_version,
        }
        path = f"/workflows/{_segment(workflow_id)}/fork"
        return dict(await self.request("POST", path, params=params))

    async def list_versions(self) -> list[dict[str, Any]]:
        """Application versions that have run (``GET /admin/versions``)."""
        return list(await self.request("GET", "/admin/versions"))

    async def move_workflows(self, workflow_ids: list[str], app_version: str) -> list[str]:
        """Move unfinished workflows to ``app_version``; the ids moved."""
        path = f"/admin/versions/{_segment(app_version)}/workflows"
        answer = await self.request("POST", path, json={"workflow_ids": workflow_ids})
        return list(answer["moved"])

    async def queue_stats(self) -> list[dict[str, Any]]:
        """Depth, running count and recent starts per queue."""
        return list(await self.request("GET", "/admin/queues"))

    async def list_schedules(self) -> list[dict[str, Any]]:
        """Stored cron schedules."""
        return list(await self.request("GET", "/admin/schedules"))


def _segment(value: str) -> str:
    """``value`` as one path segment (ids may hold ``/`` or ``?``)."""
    return quote(value, safe="")

"""deploy/ and docker-compose.yml, checked without Docker: parsed, cross-referenced, consistent."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"orchestrator": 8000, "inventory": 8001, "payments": 8002, "shipping": 8003}


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _k8s() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _module_exists(target: str) -> bool:
    module = target.split(":", maxsplit=1)[0]
    path = ROOT / Path(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _port_of(command: list[str]) -> int:
    return int(command[command.index("--port") + 1])


def test_dockerfile_copies_only_what_exists_and_runs_saga_up() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(.+)$", dockerfile, flags=re.MULTILINE)
    assert copies
    for line in copies:
        *sources, _destination = shlex.split(line)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY source {source} does not exist"
    cmd = re.search(r"^CMD\s+(\[.*\])$", dockerfile, flags=re.MULTILINE)
    assert cmd is not None
    command = yaml.safe_load(cmd.group(1))
    assert command[:3] == ["saga", "up", "sagas.shop:stack"]
    assert _module_exists(command[2])
    uv_version = re.search(r"uv==([\d.]+)", dockerfile)
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert uv_version is not None and uv_version.group(1) in bootstrap


def test_compose_wires_every_service() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "jaeger", *APP_SERVICES}
    jaeger = services["jaeger"]
    assert {"16686:16686", "4318:4318"} <= set(jaeger["ports"])
    for name, port in APP_SERVICES.items():
        service = services[name]
        env = service["environment"]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).exists()
        assert _port_of(service["command"]) == port
        assert f"{port}:{port}" in service["ports"]
        target = next(part for part in service["command"] if ":" in part and "." in part)
        assert _module_exists(target), target
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert env["OTEL_SERVICE_NAME"] == name
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_urls_and_secrets_agree() -> None:
    services = _compose()["services"]
    orchestrator = services["orchestrator"]["environment"]
    for name in ("inventory", "payments", "shipping"):
        assert orchestrator[f"SHOP_{name.upper()}_URL"] == f"http://{name}:{APP_SERVICES[name]}"
        assert name in services["orchestrator"]["depends_on"]
    assert "ORCHESTRATOR_API_KEY" in orchestrator  # it listens on 0.0.0.0
    payments = services["payments"]["environment"]
    assert payments["PAYMENTS_WEBHOOK_URL"] == "http://orchestrator:8000/webhooks/payments"
    assert payments["PAYMENTS_WEBHOOK_SECRET"] == orchestrator["PAYMENTS_WEBHOOK_SECRET"]
    assert payments["PAYMENTS_WEBHOOK_SECRET"].startswith("whsec_")


def test_k8s_manifests_are_well_formed_and_selectors_match() -> None:
    docs = _k8s()
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        assert doc["metadata"]["name"]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert set(deployments) == set(services) == set(APP_SERVICES)
    assert deployments["orchestrator"]["spec"]["replicas"] >= 2
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        assert services[name]["spec"]["selector"].items() <= labels.items()
        container = spec["template"]["spec"]["containers"][0]
        port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert port_names["http"] == APP_SERVICES[name] == _port_of(container["command"])
        service_port = services[name]["spec"]["ports"][0]
        assert service_port["targetPort"] in port_names
        assert service_port["port"] == APP_SERVICES[name]


def test_k8s_env_comes_from_existing_config() -> None:
    docs = _k8s()
    named = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    config = named[("ConfigMap", "shop-config")]["data"]
    secrets = named[("Secret", "shop-secrets")]["stringData"]
    for name in ("inventory", "payments", "shipping"):
        assert config[f"SHOP_{name.upper()}_URL"] == f"http://{name}:{APP_SERVICES[name]}"
    assert config["PAYMENTS_WEBHOOK_URL"] == "http://orchestrator:8000/webhooks/payments"
    assert {"DATABASE_URL", "ORCHESTRATOR_API_KEY", "PAYMENTS_WEBHOOK_SECRET"} <= set(secrets)
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        container = doc["spec"]["template"]["spec"]["containers"][0]
        for source in container.get("envFrom", []):
            kind, ref = (
                ("ConfigMap", "configMapRef")
                if "configMapRef" in source
                else (
                    "Secret",
                    "secretRef",
                )
            )
            assert (kind, source[ref]["name"]) in named
    orchestrator = named[("Deployment", "orchestrator")]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in orchestrator["containers"][0]["env"]}
    # Each replica is its own executor: two live processes must never share an id.
    assert env["ORCHESTRATOR_EXECUTOR_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.name"
    )


@pytest.mark.parametrize("document", ["README.md", "docs/shop.md"])
def test_docs_name_the_ports_the_deploy_files_use(document: str) -> None:
    text = (ROOT / document).read_text()
    assert "docs/shop.md" in text or document == "docs/shop.md"
    if document == "docs/shop.md":
        for port in [*APP_SERVICES.values(), 16686, 4318]:
            assert str(port) in text, f"{document} does not mention port {port}"
        for variable in ("PAYMENTS_WEBHOOK_SECRET", "SHOP_INVENTORY_URL", "DATABASE_URL"):
            assert variable in text

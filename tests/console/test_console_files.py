"""The console's files as the service serves them: routes, headers, no inline script, every
module import resolvable, nothing outside the static directory reachable."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from orchestrator import Orchestrator
from orchestrator.http import create_app
from orchestrator.http.console import CONTENT_SECURITY_POLICY
from orchestrator.http.console.pages import ASSETS, STATIC_DIR

IMPORT = re.compile(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s+["'](\./[^"']+)["']""", re.M)
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    database = tmp_path_factory.mktemp("console") / "orch.db"
    app = Orchestrator("console-files", f"sqlite:///{database}")
    api = create_app(app, allowed_hosts=["testserver"])
    # not entered as a context manager: the pages need no launched Orchestrator
    yield TestClient(api, follow_redirects=False)


def test_root_and_bare_prefix_redirect_to_the_console(client: TestClient) -> None:
    for path in ("/", "/console"):
        answer = client.get(path)
        assert answer.status_code == 307
        assert answer.headers["location"] == "/console/"


@pytest.mark.parametrize("path", ["/console/", "/console/login"])
def test_pages_carry_a_strict_policy(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert answer.headers["x-frame-options"] == "DENY"
    for attributes, body in SCRIPT.findall(answer.text):
        assert "src=" in attributes and not body.strip(), "no inline script"
    assert " style=" not in answer.text and "<style" not in answer.text
    assert not re.search(r"<[^>]+\son\w+\s*=", answer.text), "no inline event handlers"


def test_static_files_are_served_with_their_types(client: TestClient) -> None:
    javascript = client.get("/console/static/app.js")
    assert javascript.status_code == 200
    assert javascript.headers["content-type"].startswith("text/javascript")
    assert client.get("/console/static/style.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    "name", ["nope.js", "..%2Fpages.py", "%2E%2E%2F__init__.py", "pages.py", "__init__.py"]
)
def test_only_listed_static_files_are_served(client: TestClient, name: str) -> None:
    assert client.get(f"/console/static/{name}").status_code == 404


def test_every_module_import_and_page_reference_resolves() -> None:
    for path in STATIC_DIR.glob("*.js"):
        for target in IMPORT.findall(path.read_text()):
            assert target[2:] in ASSETS, f"{path.name} imports missing {target}"
    for page in ("index.html", "login.html"):
        for target in re.findall(r'(?:src|href)="static/([^"]+)"', (STATIC_DIR / page).read_text()):
            assert target in ASSETS, f"{page} references missing {target}"


def test_no_script_writes_html() -> None:
    """Values reach the page through textContent only: stored inputs are user data."""
    for path in STATIC_DIR.glob("*.js"):
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{path.name} uses {sink}"


def test_the_wheel_ships_the_static_files() -> None:
    """hatchling packages every file under orchestrator/ (none of these is git-ignored)."""
    root = Path(__file__).resolve().parents[2]
    config = (root / "pyproject.toml").read_text()
    assert 'packages = ["orchestrator"]' in config
    assert {"index.html", "login.html", "app.js", "style.css"} <= set(ASSETS)

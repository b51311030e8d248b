"""``openapi`` suites through ``greenlight run`` against a loopback service with an OpenAPI
document, one of whose operations violates it."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.functional.test_cli import greenlight
from tests.helpers import each, http_server, reply

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "shop", "version": "1.5.0"},
    "paths": {
        "/items": {
            "get": {
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 50},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "the catalog",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Item"},
                                }
                            }
                        },
                    }
                },
            }
        },
        "/items/{id}": {
            "get": {
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "one item",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}
                        },
                    },
                    "404": {"description": "no such item"},
                },
            }
        },
        "/orders": {
            "post": {
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"201": {"description": "ordered"}},
            }
        },
    },
    "components": {
        "schemas": {
            "Item": {
                "type": "object",
                "required": ["id", "price"],
                "properties": {"id": {"type": "integer"}, "price": {"type": "number"}},
            }
        }
    },
}


def shop(broken: bool) -> tuple[Any, list[str]]:
    """The shop: items above 1000 are priced ``"free"`` (a string) in the broken release."""
    seen: list[str] = []

    def handle(handler: Any) -> None:
        seen.append(f"{handler.command} {handler.path}")
        path = handler.path.split("?")[0]
        if path == "/openapi.json":
            reply(handler, 200, DOCUMENT)
        elif path == "/items":
            reply(handler, 200, [{"id": 1, "price": 3}])
        elif path.startswith("/items/"):
            item = path.removeprefix("/items/")
            if not item.isdigit():
                reply(handler, 404, {"error": "no such item"})
            elif broken and int(item) > 1000:
                reply(handler, 200, {"id": int(item), "price": "free"})
            else:
                reply(handler, 200, {"id": int(item), "price": 3})
        else:
            reply(handler, 404, {})

    return handle, seen


def write(tmp_path: Path, text: str) -> Path:
    suites = tmp_path / "suites"
    suites.mkdir(exist_ok=True)
    (suites / "contract.yaml").write_text(text)
    return suites


SUITE = "kind: openapi\nname: contract\nschema: /openapi.json\nmax_examples: 25\n"


def run(tmp_path: Path, text: str, broken: bool) -> dict[str, Any]:
    suites = write(tmp_path, text)
    report = tmp_path / "report.json"
    handle, seen = shop(broken)
    with http_server(handle) as url:
        args = ["run", "--url", url, "--suites-dir", str(suites), "--suite", "contract"]
        done = greenlight(*args, "--json", str(report))
    output = done.stdout + done.stderr
    assert report.exists(), output
    data = json.loads(report.read_text())
    (suite,) = data["suites_detail"]
    return {
        "exit": done.returncode,
        "output": output,
        "checks": {c["name"]: c for c in suite["checks"]},
        "seen": seen,
        "url": url,
    }


def test_a_service_that_keeps_its_contract_passes(tmp_path: Path) -> None:
    result = run(tmp_path, SUITE, broken=False)
    assert result["exit"] == 0, result["output"]
    checks = result["checks"]
    assert set(checks) == {"GET /items", "GET /items/{id}"}  # POST is left out: unsafe
    assert all(c["status"] == "passed" for c in each(checks.values()))
    assert "generated requests conformed to the schema" in checks["GET /items/{id}"]["message"]
    assert not [r for r in result["seen"] if r.startswith("POST")]


def test_an_operation_that_violates_the_document_fails_with_a_curl_line(tmp_path: Path) -> None:
    result = run(tmp_path, SUITE, broken=True)
    assert result["exit"] == 1
    checks = result["checks"]
    assert checks["GET /items"]["status"] == "passed"
    failed = checks["GET /items/{id}"]
    assert failed["status"] == "failed"
    assert "Response violates schema" in failed["message"]
    assert '"free" is not of type "number"' in failed["message"]
    curl = failed["evidence"]["request"]
    assert curl.startswith(f"curl -X GET {result['url']}/items/")
    # the line reproduces the failure against the same service
    item = int(shlex.split(curl)[-1].rsplit("/", 1)[1])
    assert item > 1000


def test_the_document_may_be_a_file_beside_the_suite_and_operations_chosen(
    tmp_path: Path,
) -> None:
    suites = write(tmp_path, "")
    (suites / "shop-api.yaml.json").write_text(json.dumps(DOCUMENT))
    text = (
        "kind: openapi\nname: contract\nschema: shop-api.yaml.json\n"
        "operations: ['GET /items*']\nexclude: ['GET /items/{id}']\n"
    )
    result = run(tmp_path, text, broken=True)
    assert result["exit"] == 0, result["output"]
    assert set(result["checks"]) == {"GET /items"}
    assert "GET /openapi.json" not in result["seen"]


def test_unsafe_operations_run_only_when_allowed(tmp_path: Path) -> None:
    text = SUITE + "allow_unsafe: true\noperations: ['POST /orders']\n"
    result = run(tmp_path, text, broken=False)
    assert set(result["checks"]) == {"POST /orders"}
    assert any(r.startswith("POST /orders") for r in result["seen"])


@pytest.mark.parametrize(
    ("text", "status", "message"),
    [
        (
            "kind: openapi\nname: contract\nschema: /nowhere.json\n",
            "error",
            "cannot use the OpenAPI document '/nowhere.json': GET http://",
        ),
        (
            "kind: openapi\nname: contract\nschema: /openapi.json\noperations: ['DELETE /*']\n",
            "failed",
            "no operation of '/openapi.json' is selected",
        ),
    ],
)
def test_a_document_that_cannot_be_used_fails_the_gate(
    tmp_path: Path, text: str, status: str, message: str
) -> None:
    result = run(tmp_path, text, broken=False)
    assert result["exit"] == 1
    (check,) = result["checks"].values()
    assert check["status"] == status
    assert message in check["message"]


@pytest.mark.timing
def test_without_schemathesis_the_suite_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file still loads (unplanned, it costs nothing); running it says what to add."""
    from hooks.core.deadline import Deadline
    from hooks.core.lifecycle import LifecycleEvent
    from hooks.core.target import Target
    from hooks.process.runner import run_suites
    from hooks.suites.base import DeploymentInfo
    from hooks.suites.openapi import OpenApiSuite, OpenApiSuiteKind
    from hooks.suites.registry import discover

    suites = write(tmp_path, SUITE)
    monkeypatch.setitem(sys.modules, "schemathesis", None)  # import raises ImportError
    (loaded,) = OpenApiSuiteKind().load(suites / "contract.yaml")
    assert isinstance(loaded, OpenApiSuite)
    assert (loaded.schema, loaded.max_examples, loaded.budget) == ("/openapi.json", 25, 60.0)
    catalog = discover(suites)
    assert not catalog.broken
    (suite,) = [s for s in catalog.suites if s.name == "contract"]
    info = DeploymentInfo("d-1", "e-1", LifecycleEvent.AFTER_ALLOW_TEST_TRAFFIC)
    result = run_suites(
        [suite],
        target=Target("http://127.0.0.1:9"),
        deployment=info,
        deadline=Deadline.in_seconds(10),
    )
    (ran,) = result.suites
    (check,) = ran.checks
    assert check.status.value == "error"
    assert check.message.startswith(
        "the openapi kind needs Schemathesis: pip install 'greenlight-hooks[openapi]'"
    )
    assert not ran.passed


@pytest.mark.timing
def test_an_operation_nothing_can_be_generated_for_fails(tmp_path: Path) -> None:
    """Passing needs generated requests that conformed: none generated is a failure."""
    import time

    from hypothesis import strategies as st

    from hooks.suites.openapi import OpenApiSuite

    suite = OpenApiSuite(data={"name": "c", "schema": "/x"}, path=tmp_path / "c.yaml", budget=10)

    class Operation:
        def as_strategy(self) -> Any:
            return st.nothing()

    class Context:
        session = None

    result = suite._check(
        Context(),  # type: ignore[arg-type]
        "GET /x",
        Operation(),
        "http://127.0.0.1:9",
        time.monotonic() + 10,
    )
    assert result.status.value == "failed"
    assert "Cannot generate test cases" in result.message


def test_a_document_on_another_origin_is_fetched_without_the_plans_headers(
    tmp_path: Path,
) -> None:
    """GIVEN a plan header (a credential for green) and an OpenAPI document on another host
    WHEN the suite fetches the document and tests green
    THEN green receives the header; the document's host never does."""
    other_seen: list[str] = []

    def other(handler: Any) -> None:
        other_seen.append(str(handler.headers))
        reply(handler, 200, DOCUMENT)

    with http_server(other) as other_url:
        suites = write(
            tmp_path, f"kind: openapi\nname: contract\nschema: {other_url}/openapi.json\n"
        )
        (suites / "greenlight.yaml").write_text(
            "version: 1\ndefaults:\n  headers:\n    X-Plan: plan-credential-1234\n"
        )
        green_seen: list[str] = []
        handle, _ = shop(broken=False)

        def green(handler: Any) -> None:
            green_seen.append(str(handler.headers))
            handle(handler)

        with http_server(green) as url:
            done = greenlight(
                "run", "--url", url, "--suites-dir", str(suites), "--suite", "contract"
            )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not any("plan-credential-1234" in seen for seen in each(other_seen))
    assert all("plan-credential-1234" in seen for seen in each(green_seen))


def test_a_yaml_document_beside_its_suite_is_data_not_a_suite(tmp_path: Path) -> None:
    """GIVEN the README's form: an OpenAPI document in YAML beside the suite that names it
    WHEN the folder is run and validated, and the document validated alone
    THEN it is no suite anywhere: the run passes and both validations agree."""
    import yaml

    suites = write(tmp_path, "kind: openapi\nname: contract\nschema: shop-api.yaml\n")
    (suites / "shop-api.yaml").write_text(yaml.safe_dump(DOCUMENT))
    handle, _ = shop(broken=False)
    with http_server(handle) as url:
        done = greenlight("run", "--url", url, "--suites-dir", str(suites))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "info" not in done.stdout + done.stderr
    folder = greenlight("validate", str(suites))
    alone = greenlight("validate", str(suites / "shop-api.yaml"))
    assert (folder.returncode, alone.returncode) == (0, 0), folder.stdout + alone.stdout
    assert "ok  contract" in folder.stdout
    assert "shop-api" not in folder.stdout.replace(str(suites), "")
    assert "an OpenAPI document: data, not a suite" in alone.stdout

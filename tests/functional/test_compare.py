"""Blue versus green: a YAML check's ``compare`` against two real loopback services that
differ in one field, in noise only, in status, in latency — through ``greenlight run``."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hooks.suites.http.compare import differences, judge_latency, pattern, pointer
from tests.functional.test_cli import greenlight
from tests.helpers import each, http_server, reply

_counter = itertools.count()


def app(price: int = 10, status: int = 200, delay: float = 0.0, text: str | None = None) -> Any:
    """A catalog service: its `generated_at` and `request_id` change on every answer."""

    def handle(handler: Any) -> None:
        if delay:
            time.sleep(delay)
        if text is not None:
            handler.send_response(status)
            body = text.encode()
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        reply(
            handler,
            status,
            {
                "items": [{"sku": "a-1", "price": price, "updated_at": time.time()}],
                "meta": {"request_id": next(_counter), "generated_at": time.time()},
            },
            headers={"X-Version": "2" if price != 10 else "1"},
        )

    return handle


@contextmanager
def pair(blue: Callable[..., Any], green: Callable[..., Any]) -> Iterator[tuple[str, str]]:
    with http_server(blue) as blue_url, http_server(green) as green_url:
        yield blue_url, green_url


def run(tmp_path: Path, compare: str, blue: Any, green: Any, prod: bool = True) -> dict[str, Any]:
    suites = tmp_path / "suites"
    suites.mkdir(exist_ok=True)
    (suites / "diff.yaml").write_text(
        "name: diff\nchecks:\n  - name: catalog\n    request: {path: /catalog}\n"
        f"    compare: {compare}\n"
    )
    report = tmp_path / "report.json"
    with pair(blue, green) as (blue_url, green_url):
        args = ["run", "--url", green_url, "--suites-dir", str(suites), "--suite", "diff"]
        args += ["--prod-url", blue_url] if prod else []
        done = greenlight(*args, "--json", str(report))
    data: dict[str, Any] = json.loads(report.read_text())
    (suite,) = data["suites_detail"]
    (check,) = suite["checks"]
    check["exit"] = done.returncode
    check["output"] = done.stdout + done.stderr
    return check


def test_the_same_release_passes_its_noise_learned_from_blue(tmp_path: Path) -> None:
    check = run(tmp_path, "{}", app(), app())
    assert check["status"] == "passed", check
    assert check["exit"] == 0
    assert "noisy field(s) ignored" in check["message"]
    assert "/meta/generated_at" in check["message"]


def test_without_learning_noise_the_timestamps_differ(tmp_path: Path) -> None:
    check = run(tmp_path, "{learn_noise: false}", app(), app())
    assert check["status"] == "failed"
    assert any(f.startswith("body /meta/generated_at: blue ") for f in check["failures"])


def test_a_changed_field_is_one_readable_line(tmp_path: Path) -> None:
    check = run(tmp_path, "{headers: [X-Version]}", app(price=10), app(price=12))
    assert check["status"] == "failed"
    assert "body /items/0/price: blue 10, green 12" in check["failures"]
    assert "header X-Version: blue '1', green '2'" in check["failures"]
    assert check["exit"] == 1
    assert "blue: GET http://127.0.0.1:" in check["evidence"]["request"]


@pytest.mark.parametrize(
    "ignore",
    ["['/items/*/price']", "['items[*].price']", "['/items']"],
    ids=["pointer", "dotted", "subtree"],
)
def test_ignore_rules_leave_a_field_out(ignore: str, tmp_path: Path) -> None:
    check = run(tmp_path, f"{{ignore: {ignore}}}", app(price=10), app(price=12))
    assert check["status"] == "passed", check


def test_a_different_status_fails(tmp_path: Path) -> None:
    check = run(tmp_path, "{}", app(), app(status=503))
    assert check["status"] == "failed"
    assert "status: blue 200, green 503" in check["failures"]


def test_text_bodies_are_compared_as_text(tmp_path: Path) -> None:
    check = run(tmp_path, "{}", app(text="hello blue"), app(text="hello green"))
    assert check["status"] == "failed"
    assert check["failures"] == ['body line 1 (not JSON): blue "hello blue", green "hello green"']


@pytest.mark.timing
def test_a_slower_green_fails_the_latency_budget(tmp_path: Path) -> None:
    """300 ms against an instant blue, and 200 ms against 200 ms: far enough apart that a
    busy machine's scheduling noise cannot turn one into the other (the exact arithmetic is
    ``judge_latency``'s unit test)."""
    slow = run(tmp_path, "{latency: 1.5, samples: 3}", app(), app(delay=0.3))
    assert slow["status"] == "failed"
    assert any(f.startswith("latency: green's median") for f in slow["failures"])
    same = run(tmp_path, "{latency: 1.5, samples: 3}", app(delay=0.2), app(delay=0.2))
    assert same["status"] == "passed", same


def test_without_a_production_url_the_check_says_so(tmp_path: Path) -> None:
    check = run(tmp_path, "{}", app(), app(), prod=False)
    assert check["status"] == "failed"
    assert check["message"].startswith("compare needs the production URL")


def test_an_unsafe_method_is_refused_when_the_suite_loads(tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "diff.yaml").write_text(
        "name: diff\nchecks:\n  - name: order\n    request: {path: /orders, method: POST}\n"
        "    compare: {}\n"
    )
    done = greenlight("validate", str(suites))
    assert done.returncode == 2
    assert "diff.yaml:5" in done.stderr + done.stdout
    assert "POST is not a safe method" in done.stderr + done.stdout


def test_differences_and_patterns() -> None:
    blue = {"a": [1, {"b": 2}], "c": "x"}
    green = {"a": [1, {"b": 3}, 4], "d": None}
    found = {pointer(p): (b, g) for p, b, g in differences(blue, green)}
    assert set(found) == {"/a/1/b", "/a/2", "/c", "/d"}
    assert pattern("items[*].price") == ("items", "*", "price")
    assert pattern("/a~1b/*") == ("a/b", "*")
    with pytest.raises(ValueError, match="use a JSON Pointer"):
        pattern("items..price")


@pytest.mark.parametrize(
    ("blues", "greens", "ratio", "slack", "failure"),
    [
        # 1 ms against 6 ms is six times slower, and noise: within the 10 ms slack
        ([1, 1, 2], [6, 6, 5], 1.5, 10, None),
        # a slack of 0 judges the ratio alone
        ([1, 1, 2], [6, 6, 5], 1.5, 0, "green's median 6 ms is over 1.5 x blue's 1 ms"),
        # the ratio governs once it is the larger limit: 150 ms against 100 ms at 1.2
        ([100, 100, 90], [150, 150, 400], 1.2, 10, "green's median 150 ms is over 1.2 x"),
        ([100, 100, 90], [119, 120, 400], 1.2, 10, None),
        # medians: one slow outlier of three moves nothing
        ([10, 10, 10], [10, 900, 10], 1.2, 0, None),
    ],
)
def test_latency_is_judged_on_medians_against_the_ratio_or_the_slack(
    blues: list[float], greens: list[float], ratio: float, slack: float, failure: str | None
) -> None:
    found = judge_latency(ratio, slack, blues, greens)
    if failure is None:
        assert found is None
    else:
        assert found is not None
        assert failure in found
        assert f"{slack:g} ms of slack" in found


def test_a_comparisons_evidence_is_greens_body_not_the_differences_again(tmp_path: Path) -> None:
    """The failures list the differences; the evidence's excerpt is what green answered."""

    def blue(handler: Any) -> None:
        reply(handler, 200, {"price": 10, "name": "tea"})

    def green(handler: Any) -> None:
        reply(handler, 200, {"price": 12, "name": "tea"})

    with http_server(blue) as prod, http_server(green) as url:
        suites = tmp_path / "suites"
        suites.mkdir()
        (suites / "same.yaml").write_text(
            "name: same\nchecks:\n  - name: price\n    request: {path: /item}\n"
            "    compare: {body: true, samples: 1}\n"
        )
        report = tmp_path / "r.json"
        done = greenlight(
            "run",
            "--url",
            url,
            "--prod-url",
            prod,
            "--suites-dir",
            str(suites),
            "--suite",
            "same",
            "--json",
            str(report),
        )
    assert done.returncode == 1, done.stdout + done.stderr
    (check,) = json.loads(report.read_text())["suites_detail"][0]["checks"]
    assert "body /price: blue 10, green 12" in check["failures"]
    assert json.loads(check["evidence"]["body"]) == {"price": 12, "name": "tea"}


def varying(
    body: Callable[[int], Any], headers: Callable[[int], dict[str, str]] | None = None
) -> Any:
    """A service whose n-th answer is ``body(n)`` (JSON, or text when a string)."""
    count = itertools.count()

    def handle(handler: Any) -> None:
        n = next(count)
        value = body(n)
        extra = headers(n) if headers else {}
        if isinstance(value, str):
            data = value.encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "text/plain")
            for name, text in extra.items():
                handler.send_header(name, text)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        reply(handler, 200, value, headers=extra)

    return handle


ORDERS = [{"id": i, "sku": f"s-{i}"} for i in range(4)]


def test_a_named_header_that_varies_on_blue_is_learned_as_noise(tmp_path: Path) -> None:
    same = varying(lambda n: {"ok": True}, lambda n: {"X-Request-Id": f"req-{n}"})
    check = run(tmp_path, "{headers: [X-Request-Id]}", same, same)
    assert check["status"] == "passed", check
    gone = run(tmp_path, "{headers: [X-Request-Id]}", same, varying(lambda n: {"ok": True}))
    assert gone["failures"] == ["header X-Request-Id: blue sends it (it varies), green does not"]


def test_a_list_whose_order_varies_on_blue_compares_as_a_multiset(tmp_path: Path) -> None:
    def shuffled(n: int) -> Any:
        return {"orders": ORDERS[n % 4 :] + ORDERS[: n % 4]}

    check = run(tmp_path, "{}", varying(shuffled), varying(lambda n: {"orders": ORDERS[::-1]}))
    assert check["status"] == "passed", check
    changed = [*ORDERS[:3], {"id": 3, "sku": "s-X"}]
    worse = run(tmp_path, "{}", varying(shuffled), varying(lambda n: {"orders": changed}))
    assert worse["status"] == "failed"
    assert any("s-X" in f for f in each(worse["failures"])), worse


def test_a_text_body_with_a_timestamp_compares_line_by_line(tmp_path: Path) -> None:
    def page(version: str) -> Callable[[int], str]:
        return lambda n: f"shop {version}\ngenerated at 2026-12-02T11:{n:02d}:00Z\nok\n"

    check = run(tmp_path, "{}", varying(page("1.4")), varying(page("1.4")))
    assert check["status"] == "passed", check
    newer = run(tmp_path, "{}", varying(page("1.4")), varying(page("1.5")))
    assert newer["failures"] == ['body line 1 (not JSON): blue "shop 1.4", green "shop 1.5"']


def test_a_noisy_field_still_fails_when_it_changes_type_or_vanishes(tmp_path: Path) -> None:
    blue = varying(lambda n: {"stamp": 1000 + n, "ok": True})
    typed = run(tmp_path, "{}", blue, varying(lambda n: {"stamp": "soon", "ok": True}))
    assert typed["failures"] == [
        "body /stamp: blue's is always a number (its value varies), green's is a string"
    ]
    gone = run(tmp_path, "{}", blue, varying(lambda n: {"ok": True}))
    assert gone["failures"] == [
        "body /stamp: blue always has it (its value varies), green has none"
    ]


def test_more_blue_samples_learn_what_two_cannot(tmp_path: Path) -> None:
    """A field that changes on every third answer: two samples see it still, four do not."""
    blue = varying(lambda n: {"bucket": n // 3, "ok": True})
    green = varying(lambda n: {"bucket": 99, "ok": True})
    assert run(tmp_path, "{}", blue, green)["status"] == "failed"  # two answers: 0 and 0
    blue = varying(lambda n: {"bucket": n // 3, "ok": True})
    assert run(tmp_path, "{noise_samples: 4}", blue, green)["status"] == "passed"

"""The tests themselves: no assertion that passes on nothing, none that accepts either of two
answers. Read with ``ast``, so a new test that breaks a rule fails here, naming its line."""

from __future__ import annotations

import ast

from tests.helpers import ROOT

TESTS = sorted((ROOT / "tests").rglob("*.py"))


def _asserts(tree: ast.AST) -> list[ast.Assert]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Assert)]


def _vacuous(test: ast.expr) -> bool:
    """``all(g)`` or ``not any(g)`` over an iterable that may be empty (then it is true).

    Checked iterables: ``each(...)`` (which asserts it holds something), non-empty literals.
    """
    name = "all"
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test, name = test.operand, "any"
    if not (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Name)
        and test.func.id == name
        and test.args
        and isinstance(test.args[0], ast.GeneratorExp)
    ):
        return False
    iterable = test.args[0].generators[0].iter
    if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name):
        return iterable.func.id != "each"
    if isinstance(iterable, ast.List | ast.Tuple | ast.Set):
        return not iterable.elts
    return True


def _either(test: ast.expr) -> bool:
    """``assert "a" in out or "b" in out``: passes for a bug that prints the other one."""
    return (
        isinstance(test, ast.BoolOp)
        and isinstance(test.op, ast.Or)
        and all(
            isinstance(v, ast.Compare) and any(isinstance(o, ast.In) for o in v.ops)
            for v in test.values
        )
    )


def _found(rule: object) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in TESTS
        for node in _asserts(ast.parse(path.read_text(), str(path)))
        if rule(node.test)  # type: ignore[operator]
    ]


def test_every_all_or_not_any_over_results_first_asserts_they_exist() -> None:
    found = _found(_vacuous)
    assert found == [], "wrap the iterable in tests.helpers.each(): " + ", ".join(found)


def test_no_assertion_accepts_either_of_two_messages() -> None:
    found = _found(_either)
    assert found == [], "assert the one message the code gives: " + ", ".join(found)


def test_the_rules_catch_what_they_name() -> None:
    tree = ast.parse(
        "assert all(x for x in xs)\n"
        "assert not any(x for x in xs)\n"
        "assert all(x for x in each(xs))\n"
        "assert all(x for x in (1, 2))\n"
        "assert 'a' in out or 'b' in out\n"
        "assert ok or 'b' in out\n"
        "assert any(x for x in xs)\n"
    )
    nodes = _asserts(tree)
    assert [n.lineno for n in nodes if _vacuous(n.test)] == [1, 2]
    assert [n.lineno for n in nodes if _either(n.test)] == [5]

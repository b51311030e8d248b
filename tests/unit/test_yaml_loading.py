"""The YAML loader: PyYAML's safe loading, item by item, with lines and alias limits."""

from __future__ import annotations

import textwrap
import tracemalloc
from pathlib import Path

import pytest
import yaml

from hooks.core.exceptions import ConfigError
from hooks.core.yamlfile import MAX_EXPANDED_NODES, load_document

DOCUMENTS = {
    "suite": """
        name: s
        checks:
          - {name: a, request: {path: /a}}
          - name: b
            request: {path: /b}
        """,
    "anchors shared between items": """
        defaults: &d {retry: 2, headers: {X-A: '1'}}
        checks:
          - &first {name: a, request: {path: /a}, <<: *d}
          - {name: b, request: *d}
          - *first
        """,
    "a merge key at the top level": """
        base: &base {name: from-merge, checks: [{name: merged}]}
        <<: *base
        checks:
          - {name: own}
        """,
    "a merged list only": """
        base: &base {checks: [{name: merged}]}
        <<: *base
        """,
    "an anchored top-level list": """
        checks: &all
          - {name: a}
          - {name: b}
        again: *all
        """,
    "an explicitly tagged list": """
        checks: !!seq
          - {name: a}
        """,
    "scalars of every kind": """
        ints: [1, 0x1f, -3]
        floats: [1.5, .inf, 1e3]
        other: [true, no, null, ~, 2024-01-02, '007', "x\\ty"]
        """,
    "a top-level list": """
        - 1
        - [2, 3]
        """,
    "a scalar document": "just text\n",
    "an empty document": "",
    "an anchored top-level mapping": """
        &root
        name: r
        checks: [{name: a}]
        """,
    "a complex key": """
        ? [a, b]
        : value
        checks: [1]
        """,
}


@pytest.mark.parametrize("text", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_data_is_what_pyyaml_safe_load_gives(tmp_path: Path, text: str) -> None:
    text = textwrap.dedent(text)
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    try:
        expected = yaml.safe_load(text)
    except yaml.constructor.ConstructorError:  # unhashable key: refused by both
        with pytest.raises(ConfigError):
            load_document(path)
        return
    assert load_document(path).data == expected


def test_each_item_of_each_top_level_list_has_its_line(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(
        "name: s\n"  # 1
        "checks:\n"  # 2
        "  - {name: a}\n"  # 3
        "  # a comment\n"  # 4
        "  - name: b\n"  # 5
        "    request: {path: /}\n"  # 6
        "tags: [x, y]\n"  # 7
        "other: &o\n"  # 8
        "  - 1\n"  # 9
    )
    lines = load_document(path).item_lines
    assert lines == {"checks": [3, 5], "tags": [7, 7], "other": [9]}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("checks:\n  - {name: a\n  - b\n", 4),  # where the flow mapping was found open
        ("name: s\n---\nname: t\n", 2),
        ("checks:\n  - *undefined\n", 2),
    ],
    ids=["unclosed", "two documents", "unknown alias"],
)
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_document(path)
    assert str(error.value).startswith(f"{path}:{line}: YAML syntax error")


def _bomb(levels: int, spread: int = 1) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append("checks:")
    lines += [f"  - *a{levels - 1}"] * spread
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("spread", [1, 50], ids=["one item", "across items"])
def test_an_alias_bomb_is_refused_before_it_is_used(tmp_path: Path, spread: int) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(6, spread))  # each reference expands to 10^6 values
    with pytest.raises(ConfigError, match="expands to more than"):
        load_document(path)


def test_aliases_within_the_limit_are_loaded(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(_bomb(3, spread=10))  # 10 x ~1,111 values: under the limit
    assert MAX_EXPANDED_NODES > 10 * 1111
    assert len(load_document(path).data["checks"]) == 10


def test_a_large_list_is_never_held_as_one_tree_of_nodes(tmp_path: Path) -> None:
    # Each check as YAML nodes costs ~5 KB; as data well under 1 KB. Holding all the nodes
    # at once makes the peak several times the data; item by item it stays near it.
    count = 3000
    path = tmp_path / "big.yaml"
    path.write_text(
        "name: big\nchecks:\n"
        + "".join(
            f"  - {{name: c{i}, request: {{path: /r{i}}}, assert: [{{status: 200}}]}}\n"
            for i in range(count)
        )
    )
    tracemalloc.start()
    try:
        document = load_document(path)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(document.data["checks"]) == count
    assert peak < 2 * kept, (peak, kept)

"""The package's public names: all importable from ``hooks``, none imported before use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hooks
from tests.helpers import ROOT


def test_every_public_name_is_listed_and_resolves() -> None:
    assert set(hooks.__all__) == {*hooks._WHERE, "__version__"}
    for name in hooks.__all__:
        value = getattr(hooks, name)
        assert name == "__version__" or value.__name__ == name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        hooks.NoSuchThing  # noqa: B018


def test_importing_the_package_imports_none_of_its_modules() -> None:
    # The handler and the worker start their processes before importing the rest.
    script = "import sys, hooks; print(sorted(m for m in sys.modules if m.startswith('hooks')))"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "['hooks', 'hooks.version']"

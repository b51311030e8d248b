"""Sealed state: opened only when its signature holds and its binding is the reader's own."""

from __future__ import annotations

import pytest

from hooks.aws import signing
from hooks.aws.signing import open_sealed, seal
from hooks.core.exceptions import ConfigError, SealError

KEY = b"k" * 32
BINDING = {"deployment_id": "d-1", "execution_id": "e-1", "shard": 0}
CONTENT = {"suites": [{"name": "a", "policy": {"failure_limit": 0}}]}


def test_what_is_sealed_opens_with_the_same_key_purpose_and_binding() -> None:
    sealed = seal(KEY, "p", BINDING, CONTENT)
    assert open_sealed(KEY, "p", BINDING, sealed) == CONTENT


def _altered_content(sealed: dict) -> None:  # type: ignore[type-arg]
    sealed["content"]["suites"][0]["policy"]["failure_limit"] = 99


def _altered_binding(sealed: dict) -> None:  # type: ignore[type-arg]
    sealed["binding"]["shard"] = 1


def _unsigned(sealed: dict) -> None:  # type: ignore[type-arg]
    del sealed["sig"]


def _future_version(sealed: dict) -> None:  # type: ignore[type-arg]
    sealed["v"] = 2


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_altered_content, "signature does not verify"),
        (_altered_binding, "signature does not verify"),
        (_unsigned, "not signed"),
        (_future_version, "unknown version 2"),
    ],
)
def test_an_altered_seal_does_not_open(change: object, why: str) -> None:
    sealed = seal(KEY, "p", BINDING, CONTENT)
    change(sealed)  # type: ignore[operator]
    with pytest.raises(SealError, match=why):
        open_sealed(KEY, "p", BINDING, sealed)


def test_another_key_or_purpose_does_not_open_it() -> None:
    sealed = seal(KEY, "p", BINDING, CONTENT)
    with pytest.raises(SealError, match="signature does not verify"):
        open_sealed(b"x" * 32, "p", BINDING, sealed)
    with pytest.raises(SealError, match="signature does not verify"):
        open_sealed(KEY, "another purpose", BINDING, sealed)


def test_a_seal_for_another_call_is_refused_naming_what_differs() -> None:
    sealed = seal(KEY, "p", {**BINDING, "execution_id": "e-0"}, CONTENT)
    with pytest.raises(SealError, match="belongs to another execution_id"):
        open_sealed(KEY, "p", BINDING, sealed)


@pytest.mark.parametrize("value", [None, "x", [], {"sig": 1}])
def test_what_is_not_a_seal_is_refused(value: object) -> None:
    with pytest.raises(SealError):
        open_sealed(KEY, "p", BINDING, value)


def test_a_laptop_gets_a_key_of_its_own_and_lambda_must_be_given_one() -> None:
    assert signing.key_from_env({}) == signing.key_from_env({})
    assert len(signing.key_from_env({})) == 32
    with pytest.raises(ConfigError, match="GREENLIGHT_SIGNING_KEY is not set"):
        signing.key_from_env({"AWS_LAMBDA_FUNCTION_NAME": "CodeDeployHook_x"})


def test_digests_are_stable_and_tell_plans_apart() -> None:
    assert signing.digest({"a": [1, 2]}) == signing.digest({"a": [1, 2]})
    assert signing.digest({"a": [1, 2]}) != signing.digest({"a": [2, 1]})

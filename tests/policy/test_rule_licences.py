"""The licences rule: allow and deny lists, SPDX expressions, required licences and agreements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelsign._internal.signature.verifiers import KeyVerifier
from tests.helpers.signing import KeyPair
from tests.policy.helpers import (
    MODES,
    assert_fails,
    assert_passes,
    judge,
    key_sign,
    rule_of,
    rule_policy,
    with_card,
)


def test_licences_allow_list_passes(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier
) -> None:
    for allow in (["apache-2.0"], ["MIT", "Apache-2.0"]):
        policy = rule_policy(tmp_path, "licences", "enforce", allow=allow)
        assert_passes(signed_st, policy, "licences", verifier=release_verifier)


@pytest.mark.parametrize("mode", MODES)
def test_licences_not_in_allow_list(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    policy = rule_policy(tmp_path, "licences", mode, allow=["MIT", "BSD-3-Clause"])
    assert_fails(
        signed_st,
        policy,
        "licences",
        mode,
        ["licence Apache-2.0: Apache-2.0 is not in the allowed list"],
        verifier=release_verifier,
    )


@pytest.mark.parametrize("mode", MODES)
def test_licences_deny_list(
    tmp_path: Path, signed_gguf: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    policy = rule_policy(tmp_path, "licences", mode, deny=["Apache-2.0"])
    assert_fails(
        signed_gguf,
        policy,
        "licences",
        mode,
        ["licence Apache-2.0: Apache-2.0 is denied"],
        verifier=release_verifier,
    )
    other = rule_policy(tmp_path, "licences", mode, deny=["GPL-3.0-only"])
    assert_passes(signed_gguf, other, "licences", verifier=release_verifier)


@pytest.mark.parametrize(
    ("expression", "spec", "reasons"),
    [
        pytest.param("Apache-2.0 OR MIT", {"allow": ["MIT"]}, [], id="or-one-allowed"),
        pytest.param("Apache-2.0 OR MIT", {"deny": ["MIT"]}, [], id="or-one-denied"),
        pytest.param(
            "Apache-2.0 OR MIT",
            {"deny": ["MIT", "apache-2.0"]},
            ["licence Apache-2.0 OR MIT: Apache-2.0 is denied; MIT is denied"],
            id="or-both-denied",
        ),
        pytest.param(
            "Apache-2.0 OR MIT",
            {"allow": ["BSD-3-Clause"]},
            [
                "licence Apache-2.0 OR MIT: Apache-2.0 is not in the allowed list; "
                "MIT is not in the allowed list"
            ],
            id="or-none-allowed",
        ),
        pytest.param("Apache-2.0 AND MIT", {"allow": ["MIT", "Apache-2.0"]}, [], id="and-all"),
        pytest.param(
            "Apache-2.0 AND MIT",
            {"allow": ["MIT"]},
            ["licence Apache-2.0 AND MIT: Apache-2.0 is not in the allowed list"],
            id="and-one-missing",
        ),
        pytest.param(
            "GPL-2.0-only WITH Classpath-exception-2.0",
            {"allow": ["GPL-2.0-only"]},
            [],
            id="with-exception-matches-base",
        ),
    ],
)
def test_licences_expressions(
    tmp_path: Path,
    release: KeyPair,
    expression: str,
    spec: dict[str, Any],
    reasons: list[str],
) -> None:
    model = with_card(tmp_path / "m", json.dumps(expression))
    key_sign(model, release)
    policy = rule_policy(tmp_path, "licences", "enforce", **spec)
    result, err = judge(model, policy, verifier=release.verifier)
    r = rule_of(result, "licences")
    assert r.reasons == reasons
    assert (r.status, err is None) == (("fail", False) if reasons else ("pass", True))


@pytest.mark.parametrize("mode", MODES)
def test_licences_required(tmp_path: Path, release: KeyPair, mode: str) -> None:
    model = with_card(tmp_path / "m", None)
    key_sign(model, release)
    verifier = release.verifier
    policy = rule_policy(tmp_path, "licences", mode)
    assert_fails(
        model,
        policy,
        "licences",
        mode,
        ["no licence found (model card, GGUF metadata or LICENSE file)"],
        verifier=verifier,
    )
    optional = rule_policy(tmp_path, "licences", mode, require=False, allow=["MIT"])
    assert_passes(model, optional, "licences", verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_licences_require_agreement(
    tmp_path: Path, release: KeyPair, tiny_model: Path, mode: str
) -> None:
    model = with_card(
        tmp_path / "m", "mit", licence_text=(tiny_model / "LICENSE").read_text()
    )  # card MIT, LICENSE Apache
    key_sign(model, release)
    verifier = release.verifier
    assert_fails(
        model,
        rule_policy(tmp_path, "licences", mode, require_agreement=True),
        "licences",
        mode,
        ["licence sources disagree: LICENSE=Apache-2.0, README.md:license=MIT"],
        verifier=verifier,
    )
    # Without require_agreement the card's licence is the one judged.
    assert_passes(
        model, rule_policy(tmp_path, "licences", mode, allow=["MIT"]), "licences", verifier=verifier
    )
    # The example's card and LICENSE agree.
    key_sign(tiny_model, release)
    assert_passes(
        tiny_model,
        rule_policy(tmp_path, "licences", mode, require_agreement=True),
        "licences",
        verifier=verifier,
    )

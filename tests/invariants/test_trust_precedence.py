"""Trust precedence: the caller's trust is always enforced, and a policy never loosens it.

One rule (``modelsign._trust.Trust``) at every entry point — the CLI, ``verify()``,
the loaders, the guard, the inventory and ``watch``: a key or verifier the
caller gives must verify; a policy's own signer list must also hold (as its
mode says); a warn-mode policy never turns a failure of the caller's trust
into a warning.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import safetensors.numpy
import yaml
from click.testing import CliRunner

from modelsign import _trust as trust_module
from modelsign import guard
from modelsign._internal.signature.verifiers import KeyVerifier
from modelsign.cli import cli
from modelsign.errors import VerificationError
from modelsign.inventory import scan
from modelsign.load import load_safetensors
from modelsign.policy import Policy
from modelsign.verify import verify
from modelsign.watch import Event, Watcher
from tests.helpers.signing import KeyPair, MakeKeyPair, flip_byte

WEIGHTS = "model.safetensors"
TENSOR = "lm_head.weight"


@pytest.fixture(scope="module")
def k1(keypair: KeyPair) -> KeyPair:
    return keypair


@pytest.fixture(scope="module")
def k2(make_keypair: MakeKeyPair) -> KeyPair:
    return make_keypair("other")


def write_policy(path: Path, key: KeyPair, mode: str) -> Path:
    doc = {"version": 1, "mode": mode, "signers": {"keys": [{"pem": key.pem}]}, "formats": {}}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture
def model(signed: Path) -> Path:
    """The example model, signed with K1."""
    return signed


@pytest.fixture
def only_k2(tmp_path: Path, k2: KeyPair) -> Path:
    """An enforce-mode policy whose signer list is K2 alone."""
    return write_policy(tmp_path / "only-k2.yaml", k2, "enforce")


@pytest.fixture
def warn_k1(tmp_path: Path, k1: KeyPair) -> Path:
    """A warn-mode (report-only) policy listing K1."""
    return write_policy(tmp_path / "warn.yaml", k1, "warn")


@pytest.fixture
def tampered(model: Path) -> Path:
    flip_byte(model / WEIGHTS, tensor=TENSOR)
    return model


def cli_verify(model: Path, key: KeyPair, policy: Path) -> int:
    args = ["verify", str(model), "--key", str(key.pub_path), "--policy", str(policy), "--json"]
    return CliRunner().invoke(cli, args).exit_code


def guarded_load(path: Path, policy: Path, verifier: KeyVerifier) -> Any:
    guard.install(policy=policy, verifier=verifier)
    try:
        return safetensors.numpy.load_file(path)
    finally:
        guard.uninstall()


def first_event(model: Path, policy: Path, verifier: KeyVerifier) -> Event:
    events: list[Event] = []
    watcher = Watcher(
        [str(model)],
        policy=Policy.load(policy),
        on_event=events.append,
        verifier=verifier,
        use_events=False,
    )
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watcher.stop()
    assert events
    return events[0]


def refused(call: Callable[[], object]) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        call()
    return info.value


# -- caller K1, an enforce-mode policy listing only K2: fails everywhere --------------------


def test_cli_verify_caller_key_does_not_replace_the_policy_signers(
    model: Path, k1: KeyPair, only_k2: Path
) -> None:
    assert cli_verify(model, k1, only_k2) == 1


def test_verify_caller_key_does_not_replace_the_policy_signers(
    model: Path, k1: KeyPair, only_k2: Path
) -> None:
    err = refused(lambda: verify(model, verifier=k1.verifier, policy=Policy.load(only_k2)))
    assert err.code == "SIGNER_NOT_TRUSTED"


def test_load_safetensors_caller_key_does_not_replace_the_policy_signers(
    model: Path, k1: KeyPair, only_k2: Path
) -> None:
    policy = Policy.load(only_k2)
    refused(lambda: load_safetensors(model, verifier=k1.verifier, policy=policy))


def test_guard_caller_key_does_not_replace_the_policy_signers(
    model: Path, k1: KeyPair, only_k2: Path
) -> None:
    refused(lambda: guarded_load(model / WEIGHTS, only_k2, k1.verifier))


def test_inventory_caller_key_does_not_replace_the_policy_signers(
    model: Path, k1: KeyPair, only_k2: Path
) -> None:
    inv = scan(
        [model],
        default_stores=False,
        policy=Policy.load(only_k2),
        verifier=k1.verifier,
    )
    (entry,) = inv.models
    assert entry.status == "signed-untrusted" and entry.blocked and inv.blocked


def test_watch_caller_key_does_not_replace_the_policy_signers(
    model: Path, k1: KeyPair, only_k2: Path
) -> None:
    event = first_event(model, only_k2, k1.verifier)
    assert event["event"] == "tampered" and "signers" in event["failed_rules"]


# -- the caller's verifier, a warn-mode policy, a tampered file: refused, not a warning -----


def test_cli_verify_warn_policy_does_not_soften_the_caller_key(
    tampered: Path, k1: KeyPair, warn_k1: Path
) -> None:
    assert cli_verify(tampered, k1, warn_k1) == 1


def test_verify_warn_policy_does_not_soften_the_caller_verifier(
    tampered: Path, k1: KeyPair, warn_k1: Path
) -> None:
    policy = Policy.load(warn_k1)
    err = refused(lambda: verify(tampered, verifier=k1.verifier, policy=policy))
    assert err.result is not None
    codes = {(p.code, p.severity) for p in err.result.problems}
    assert ("TENSOR_MODIFIED", "error") in codes


def test_load_safetensors_warn_policy_does_not_soften_the_caller_verifier(
    tampered: Path, k1: KeyPair, warn_k1: Path
) -> None:
    policy = Policy.load(warn_k1)
    err = refused(lambda: load_safetensors(tampered, verifier=k1.verifier, policy=policy))
    assert TENSOR in {p.tensor for p in err.findings}


def test_guard_warn_policy_does_not_soften_the_caller_verifier(
    tampered: Path, k1: KeyPair, warn_k1: Path
) -> None:
    refused(lambda: guarded_load(tampered / WEIGHTS, warn_k1, k1.verifier))


def test_inventory_warn_policy_does_not_soften_the_caller_verifier(
    tampered: Path, k1: KeyPair, warn_k1: Path
) -> None:
    inv = scan(
        [tampered],
        default_stores=False,
        policy=Policy.load(warn_k1),
        verifier=k1.verifier,
    )
    (entry,) = inv.models
    assert entry.status == "tampered" and entry.blocked and inv.blocked


def test_watch_warn_policy_does_not_soften_the_caller_verifier(
    tampered: Path, k1: KeyPair, warn_k1: Path
) -> None:
    event = first_event(tampered, warn_k1, k1.verifier)
    assert (event["event"], event["verdict"]) == ("tampered", "failed")


# -- what a warn-mode policy still softens: its own signer list -----------------------------


def test_warn_policy_signers_only_warn_beside_a_passing_caller_key(
    model: Path, k1: KeyPair, tmp_path: Path, k2: KeyPair
) -> None:
    policy = Policy.load(write_policy(tmp_path / "warn-k2.yaml", k2, "warn"))
    result = verify(model, verifier=k1.verifier, policy=policy)
    assert result.verdict == "verified"
    assert result.policy is not None
    signers = result.policy.rules[0]
    assert (signers.rule, signers.mode, signers.status) == ("signers", "enforce", "warn")
    assert [(p.code, p.severity) for p in result.problems] == [("SIGNER_NOT_TRUSTED", "warning")]


def test_both_trusts_hold(model: Path, k1: KeyPair, tmp_path: Path) -> None:
    policy = Policy.load(write_policy(tmp_path / "k1.yaml", k1, "enforce"))
    assert verify(model, verifier=k1.verifier, policy=policy).problems == []
    trust = trust_module.Trust(k1.verifier, policy)
    assert trust.enforce and trust.caller_given


def test_warn_policy_alone_only_reports(warn_k1: Path) -> None:
    """Without the caller's trust, a warn-mode policy's signers report and do not block."""
    policy = Policy.load(warn_k1)
    assert not trust_module.Trust(None, policy).enforce


@pytest.fixture(autouse=True)
def _no_guard_left() -> Iterator[None]:
    yield
    assert not guard.installed()

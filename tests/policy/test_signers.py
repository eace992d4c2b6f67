"""The signers rule: keys, certificate roots and Sigstore identities a policy trusts, in both modes,
and how it combines with the verifier a caller gives.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modelsign._internal.signature import keys
from modelsign._internal.signature.signers import KeySigner
from modelsign._trust import PolicyVerifier, Trust
from modelsign.errors import InputError, VerificationError
from modelsign.policy import parse_policy
from modelsign.sign import sign
from modelsign.verify import verify
from tests.helpers.pki import build_pki, write_pki
from tests.helpers.signing import KeyPair
from tests.policy.helpers import (
    GH_IDENTITY,
    GH_REF,
    GH_REPO,
    GH_WORKFLOW,
    MODES,
    NO_TIME,
    assert_fails,
    assert_passes,
    judge,
    load,
    rule_of,
    sigstore_policy,
    statuses,
)
from tests.sigstore_standin import DEFAULT_IDENTITY, DEFAULT_ISSUER, GITHUB_ISSUER, SigstoreStandin


@pytest.mark.parametrize("mode", MODES)
def test_signers_trusted_key_file(
    tmp_path: Path, signed_st: Path, release: KeyPair, mode: str
) -> None:
    policy = load(tmp_path, {"mode": mode, "signers": {"keys": [{"file": str(release.pub_path)}]}})
    result = assert_passes(signed_st, policy, "signers")
    assert result.signer is not None
    assert (result.signer.kind, result.signer.key_hint) == ("key", release.hint)
    assert rule_of(result, "signers").mode == mode
    assert result.problems == []


def test_signers_key_file_is_relative_to_the_policy(
    tmp_path: Path, signed_st: Path, release: KeyPair
) -> None:
    (tmp_path / "keys").mkdir()
    shutil.copy(release.pub_path, tmp_path / "keys" / "release.pub")
    policy = load(tmp_path, {"signers": {"keys": [{"file": "keys/release.pub"}]}})
    result = assert_passes(signed_st, policy, "signers")
    assert result.files_verified == 4 and result.tensors_verified == 21


def test_signers_inline_pem(tmp_path: Path, signed_st: Path, release: KeyPair) -> None:
    policy = load(tmp_path, {"signers": {"keys": [{"pem": release.pem}]}})
    result = assert_passes(signed_st, policy, "signers")
    assert result.signer is not None and result.signer.key_hint == release.hint


def test_signers_any_listed_key_verifies(
    tmp_path: Path, signed_gguf: Path, release: KeyPair, stranger: KeyPair
) -> None:
    spec = {"keys": [{"file": str(stranger.pub_path)}, {"pem": release.pem}]}
    policy = load(tmp_path, {"signers": spec})
    result = assert_passes(signed_gguf, policy, "signers")
    assert result.signer is not None and result.signer.key_hint == release.hint


def test_signers_pinned_fingerprint_right(
    tmp_path: Path, signed_st: Path, release: KeyPair
) -> None:
    spec = {"keys": [{"file": str(release.pub_path), "fingerprint": release.hint}]}
    assert_passes(signed_st, load(tmp_path, {"signers": spec}), "signers")


@pytest.mark.parametrize("mode", MODES)
def test_signers_pinned_fingerprint_wrong_is_a_policy_error(
    tmp_path: Path, signed_st: Path, release: KeyPair, mode: str
) -> None:
    wrong = "0" * 64
    spec = {"mode": mode, "keys": [{"file": str(release.pub_path), "fingerprint": wrong}]}
    with pytest.raises(InputError) as info:
        verify(signed_st, policy=load(tmp_path, {"signers": spec}))
    assert info.value.code == "POLICY_INVALID"
    assert info.value.message == (
        f"policy key {release.pub_path} does not have fingerprint {wrong} "
        f"(it has {keys.key_hint(release.public)})"
    )


@pytest.mark.parametrize("mode", MODES)
def test_signers_untrusted_key(
    tmp_path: Path, signed_st: Path, release: KeyPair, stranger: KeyPair, mode: str
) -> None:
    spec = {"mode": mode, "keys": [{"file": str(stranger.pub_path)}]}
    policy = load(tmp_path, {"signers": spec, "licences": {}, "formats": {}})
    message = (
        "no signer the policy trusts verifies this signature: "
        f"signed by key {release.hint}, which the policy does not list"
    )
    result = assert_fails(signed_st, policy, "signers", mode, [f"SIGNER_NOT_TRUSTED: {message}"])
    assert result.signer is None
    (problem,) = result.problems
    assert (problem.code, problem.message) == ("SIGNER_NOT_TRUSTED", message)
    assert problem.severity == ("error" if mode == "enforce" else "warning")
    # The other rules are judged from the model on disk.
    assert statuses(result) == {
        "signers": "fail" if mode == "enforce" else "warn",
        "licences": "pass",
        "formats": "pass",
    }


def test_signers_untrusted_key_error_code(
    tmp_path: Path, signed_st: Path, stranger: KeyPair
) -> None:
    policy = load(tmp_path, {"signers": {"keys": [{"pem": stranger.pem}]}})
    with pytest.raises(VerificationError) as info:
        verify(signed_st, policy=policy)
    assert info.value.code == "SIGNER_NOT_TRUSTED"
    assert info.value.message == (
        "verification failed: 1 problem; policy rule failed: signers; first: SIGNER_NOT_TRUSTED"
    )


def test_signers_tampered_model_fails_and_is_judged_on_disk(
    tmp_path: Path, copy_signed: Path, release: KeyPair
) -> None:
    (copy_signed / "README.md").write_text("---\nlicense: mit\n---\n")
    policy = load(
        tmp_path,
        {"signers": {"keys": [{"pem": release.pem}]}, "licences": {"require_agreement": True}},
    )
    result, err = judge(copy_signed, policy)
    # The card got shorter: refused by its size, unread.
    assert err is not None and err.code == "FILE_SIZE_MISMATCH"
    signers = rule_of(result, "signers")
    assert signers.status == "fail"
    assert [r.split(":")[0] for r in signers.reasons] == ["FILE_SIZE_MISMATCH"]
    assert signers.reasons[0].startswith("FILE_SIZE_MISMATCH: README.md: file is ")
    # Judged from disk: the edited card (MIT) now disagrees with the Apache LICENSE.
    licences = rule_of(result, "licences")
    assert licences.status == "fail"
    assert licences.reasons == [
        "licence sources disagree: LICENSE=Apache-2.0, README.md:license=MIT"
    ]


def test_signers_certificate_roots(tmp_path: Path, tiny_model: Path) -> None:
    pki = write_pki(build_pki(), tmp_path / "pki")
    signer = KeySigner.from_files(str(pki.leaf_key), cert=str(pki.leaf), chain=[str(pki.chain)])
    sign(tiny_model, signer=signer, env={})
    policy = load(tmp_path, {"signers": {"certificate_roots": ["pki/root.pem"]}})
    result = assert_passes(tiny_model, policy, "signers")
    assert result.signer is not None and result.signer.kind == "certificate"
    assert result.signer.subject is not None and "Model Publisher" in result.signer.subject


@pytest.mark.parametrize("mode", MODES)
def test_signers_certificate_from_another_root(tmp_path: Path, tiny_model: Path, mode: str) -> None:
    pki = write_pki(build_pki(), tmp_path / "pki")
    other = write_pki(build_pki(root_common_name="Other Root CA"), tmp_path / "other")
    signer = KeySigner.from_files(str(pki.leaf_key), cert=str(pki.leaf), chain=[str(pki.chain)])
    sign(tiny_model, signer=signer, env={})
    policy = load(tmp_path, {"signers": {"mode": mode, "certificate_roots": [str(other.root)]}})
    result, _ = judge(tiny_model, policy)
    reasons = rule_of(result, "signers").reasons
    assert len(reasons) == 1
    assert reasons[0].startswith(
        "SIGNER_NOT_TRUSTED: no signer the policy trusts verifies this signature: "
        "certificate roots: "
    )
    assert_fails(tiny_model, policy, "signers", mode, reasons)


def test_signers_certificate_bundle_against_keys_only(
    tmp_path: Path, tiny_model: Path, release: KeyPair
) -> None:
    pki = write_pki(build_pki(), tmp_path / "pki")
    signer = KeySigner.from_files(str(pki.leaf_key), cert=str(pki.leaf), chain=[str(pki.chain)])
    sign(tiny_model, signer=signer, env={})
    policy = load(tmp_path, {"signers": {"keys": [{"pem": release.pem}]}})
    result, err = judge(tiny_model, policy)
    assert err is not None and err.code == "SIGNER_NOT_TRUSTED"
    (reason,) = rule_of(result, "signers").reasons
    assert reason.startswith(
        "SIGNER_NOT_TRUSTED: no signer the policy trusts verifies this signature: "
        f"key {release.hint[:16]}: the bundle is signed with the certificate method, not key"
    )


@pytest.mark.parametrize(
    "identity",
    [
        pytest.param({"identity": DEFAULT_IDENTITY}, id="exact"),
        pytest.param({"identity_regex": r"^signer@example\.(com|org)$"}, id="regex"),
    ],
)
def test_signers_sigstore_identity(
    tmp_path: Path, standin: SigstoreStandin, keyless: Path, identity: dict[str, str]
) -> None:
    policy = sigstore_policy(tmp_path, standin, {**identity, "issuer": DEFAULT_ISSUER})
    result = assert_passes(keyless, policy, "signers")
    assert result.signer is not None
    assert (result.signer.kind, result.signer.identity, result.signer.oidc_issuer) == (
        "sigstore",
        DEFAULT_IDENTITY,
        DEFAULT_ISSUER,
    )
    assert result.signer.signed_at is not None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("identity", "why"),
    [
        pytest.param(
            {"identity": "someone@example.com", "issuer": DEFAULT_ISSUER},
            "certificate identity ['signer@example.com'] does not match 'someone@example.com'",
            id="other-identity",
        ),
        pytest.param(
            {"identity_regex": r"^signer@example\.org$", "issuer": DEFAULT_ISSUER},
            "certificate identity ['signer@example.com'] does not match "
            r"/^signer@example\.org$/",
            id="regex-miss",
        ),
        pytest.param(
            {"identity": DEFAULT_IDENTITY, "issuer": GITHUB_ISSUER},
            f"certificate OIDC issuer is '{DEFAULT_ISSUER}', expected '{GITHUB_ISSUER}'",
            id="other-issuer",
        ),
    ],
)
def test_signers_sigstore_identity_mismatch(
    tmp_path: Path,
    standin: SigstoreStandin,
    keyless: Path,
    identity: dict[str, str],
    why: str,
    mode: str,
) -> None:
    policy = sigstore_policy(tmp_path, standin, identity, mode=mode)
    result, _ = judge(keyless, policy)
    (reason,) = rule_of(result, "signers").reasons
    label = identity.get("identity") or identity["identity_regex"]
    assert reason.startswith(
        "SIGNER_NOT_TRUSTED: no signer the policy trusts verifies this signature: "
        f"{label}: Sigstore verification failed: "
    )
    assert why in reason
    assert_fails(keyless, policy, "signers", mode, [reason])


def test_signers_sigstore_second_identity_matches(
    tmp_path: Path, standin: SigstoreStandin, keyless: Path
) -> None:
    policy = sigstore_policy(
        tmp_path,
        standin,
        {"identity": "someone@example.com", "issuer": DEFAULT_ISSUER},
        {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER},
    )
    assert_passes(keyless, policy, "signers")


def test_signers_sigstore_github_claims(
    tmp_path: Path, standin: SigstoreStandin, gh_keyless: Path
) -> None:
    claims = {
        "identity": GH_IDENTITY,
        "issuer": GITHUB_ISSUER,
        "github_repository": GH_REPO,
        "github_ref": GH_REF,
        "github_workflow": GH_WORKFLOW,
    }
    result = assert_passes(gh_keyless, sigstore_policy(tmp_path, standin, claims), "signers")
    assert result.signer is not None and result.signer.identity == GH_IDENTITY
    assert result.signer.extensions["source_repository_uri"] == f"https://github.com/{GH_REPO}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("claim", "why"),
    [
        pytest.param(
            {"github_repository": "evil/models"},
            "certificate source repository is 'https://github.com/acme/models', "
            "expected 'evil/models'",
            id="repository",
        ),
        pytest.param(
            {"github_ref": "refs/tags/v2.0"},
            "certificate source ref is 'refs/tags/v1.0', expected 'refs/tags/v2.0'",
            id="ref",
        ),
        pytest.param(
            {"github_workflow": ".github/workflows/nightly.yml"},
            "is not workflow '.github/workflows/nightly.yml'",
            id="workflow",
        ),
    ],
)
def test_signers_sigstore_github_claim_mismatch(
    tmp_path: Path,
    standin: SigstoreStandin,
    gh_keyless: Path,
    claim: dict[str, str],
    why: str,
    mode: str,
) -> None:
    spec = {"identity_regex": r"^https://github\.com/acme/.*$", "issuer": GITHUB_ISSUER, **claim}
    policy = sigstore_policy(tmp_path, standin, spec, mode=mode)
    result, _ = judge(gh_keyless, policy)
    (reason,) = rule_of(result, "signers").reasons
    assert why in reason
    assert_fails(gh_keyless, policy, "signers", mode, [reason])


def test_signers_sigstore_bundle_but_no_sigstore_identity(
    tmp_path: Path, keyless: Path, release: KeyPair
) -> None:
    policy = load(tmp_path, {"signers": {"keys": [{"pem": release.pem}]}})
    result, err = judge(keyless, policy)
    assert err is not None
    assert rule_of(result, "signers").reasons == [
        "SIGNER_NOT_TRUSTED: a Sigstore signature, but the policy trusts no Sigstore identity"
    ]


def test_signers_key_bundle_against_sigstore_only(
    tmp_path: Path, standin: SigstoreStandin, signed_st: Path, release: KeyPair
) -> None:
    policy = sigstore_policy(
        tmp_path, standin, {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER}
    )
    result, err = judge(signed_st, policy)
    assert err is not None
    assert rule_of(result, "signers").reasons == [
        "SIGNER_NOT_TRUSTED: no signer the policy trusts verifies this signature: "
        f"signed by key {release.hint}, which the policy does not list"
    ]


def test_signers_sigstore_from_another_instance(
    tmp_path: Path, standin: SigstoreStandin, keyless: Path
) -> None:
    with SigstoreStandin(tmp_path / "other") as other:
        policy = sigstore_policy(
            tmp_path, other, {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER}
        )
    result, err = judge(keyless, policy)
    assert err is not None
    (reason,) = rule_of(result, "signers").reasons
    assert reason.startswith(
        "SIGNER_NOT_TRUSTED: no signer the policy trusts verifies this signature: "
        f"{DEFAULT_IDENTITY}: Sigstore verification failed"
    )


def test_signers_missing_signature_enforced(
    tmp_path: Path, tiny_model: Path, release: KeyPair
) -> None:
    policy = load(tmp_path, {"signers": {"keys": [{"pem": release.pem}]}, "licences": {}})
    sig = tiny_model / "model.sig"
    result, err = judge(tiny_model, policy)
    assert err is not None and err.code == "SIGNATURE_NOT_FOUND"
    assert result.verdict == "failed"
    assert rule_of(result, "signers").status == "fail"
    assert rule_of(result, "signers").reasons == [
        f"SIGNATURE_NOT_FOUND: {sig}: no signature file here"
    ]
    assert rule_of(result, "licences").status == "pass"  # judged from disk


def test_signers_missing_signature_warn_judges_the_model_on_disk(
    tmp_path: Path, pickle_model: Path, release: KeyPair
) -> None:
    policy = load(
        tmp_path,
        {
            "mode": "warn",
            "signers": {"keys": [{"pem": release.pem}]},
            "licences": {},
            "provenance": {"require": ["base_model"]},
            "formats": {},
            "quantization": {"allow_unquantized": False},
            "coverage": {},
            "freshness": {"max_age": "30d"},
        },
    )
    result, err = judge(pickle_model, policy)
    assert err is None and result.verdict == "verified"
    assert result.signer is None
    (problem,) = result.problems
    assert (problem.code, problem.severity) == ("SIGNATURE_NOT_FOUND", "warning")
    assert {r.rule: (r.status, r.reasons) for r in result.policy.rules} == {  # type: ignore[union-attr]
        "signers": (
            "warn",
            [f"SIGNATURE_NOT_FOUND: {pickle_model / 'model.sig'}: no signature file here"],
        ),
        "licences": ("pass", []),
        "provenance": ("warn", ["no base model recorded"]),
        "formats": ("warn", ["pytorch_model.bin: format pickle is denied"]),
        "quantization": ("warn", ["the model is not quantized"]),
        "coverage": ("skip", ["no trusted signed manifest to judge coverage by"]),
        "freshness": ("warn", [NO_TIME]),
    }


def test_signers_from_the_verifier_are_always_enforced(
    tmp_path: Path, signed_st: Path, stranger: KeyPair
) -> None:
    policy = load(tmp_path, {"mode": "warn", "formats": {}})
    with pytest.raises(VerificationError) as info:
        verify(signed_st, verifier=stranger.verifier, policy=policy)
    result = info.value.result
    assert result is not None and result.policy is not None
    signers = result.policy.rules[0]
    assert (signers.rule, signers.mode, signers.status) == ("signers", "enforce", "fail")
    assert signers.reasons[0].startswith("KEY_HINT_MISMATCH: ")
    assert rule_of(result, "formats").status == "pass"


def test_policy_verifier_directly(signed_st: Path, release: KeyPair) -> None:
    from modelsign._internal.signature.bundle import read_bundle

    policy = parse_policy(
        f"version: 1\nsigners:\n  keys:\n    - pem: {json.dumps(release.pem)}\n", "p.yaml"
    )
    envelope = read_bundle((signed_st / "model.sig").read_bytes())
    info = PolicyVerifier(policy).verify_envelope(envelope)
    assert (info.kind, info.key_hint) == ("key", release.hint)
    assert isinstance(Trust(None, policy).listed, PolicyVerifier)

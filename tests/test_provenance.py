"""SLSA provenance: the statement, its signature, the subject check, policies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelsign import (
    KeySigner,
    KeyVerifier,
    Policy,
    SigstoreSigner,
    SigstoreVerifier,
    VerificationError,
    sign,
    verify,
)
from modelsign._internal.metadata.provenance import parse_source
from modelsign._internal.signature import keys
from modelsign.provenance import (
    BUILD_TYPE,
    LOCAL_BUILDER,
    SLSA_PREDICATE,
    attest_provenance,
)
from tests.helpers.signing import payload_of, shared_key
from tests.sigstore_standin import SigstoreStandin

KEY = shared_key()
SIGNER = KeySigner(KEY)
VERIFIER = KeyVerifier(KEY.public_key())
COMMIT = "c" * 40
GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "acme/models",
    "GITHUB_WORKFLOW_REF": "acme/models/.github/workflows/release.yml@refs/tags/v1.0",
    "GITHUB_REF": "refs/tags/v1.0",
    "GITHUB_SHA": "d" * 40,
    "GITHUB_RUN_ID": "42",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_SERVER_URL": "https://github.com",
}


def test_statement_from_a_github_release(tiny_model: Path) -> None:
    res = attest_provenance(
        tiny_model, signer=SIGNER, env=GITHUB, source=parse_source(f"acme/tiny@{COMMIT}")
    )
    assert res.path == str(tiny_model / "model.provenance.sig")
    st = payload_of(Path(res.path))
    assert st["predicateType"] == SLSA_PREDICATE
    assert {s["name"]: s["digest"]["sha256"] for s in st["subject"]} == {
        f.path: f.sha256 for f in res.manifest.files
    }
    build = st["predicate"]["buildDefinition"]
    run = st["predicate"]["runDetails"]
    assert build["buildType"] == BUILD_TYPE
    assert build["externalParameters"]["source"] == f"acme/tiny@{COMMIT}"
    assert build["externalParameters"]["workflow"] == {
        "ref": "refs/tags/v1.0",
        "repository": "acme/models",
        "path": ".github/workflows/release.yml",
    }
    deps = {d["name"]: d for d in build["resolvedDependencies"]}
    assert deps["source"]["digest"] == {"gitCommit": COMMIT}
    assert deps["base_model:modelsign-examples/tiny-base"]["annotations"] == {
        "relation": "finetune"
    }
    assert run["builder"]["id"] == (
        "https://github.com/acme/models/.github/workflows/release.yml@refs/tags/v1.0"
    )
    assert run["metadata"]["invocationId"] == (
        "https://github.com/acme/models/actions/runs/42/attempts/2"
    )
    assert run["byproducts"][0]["digest"]["sha256"] == res.manifest.digest().split(":")[1]


def test_verify_with_provenance(tiny_model: Path) -> None:
    attest_provenance(tiny_model, signer=SIGNER, env=GITHUB)
    sign(tiny_model, signer=SIGNER, env={})  # order does not matter: each leaves the other out
    r = verify(tiny_model, verifier=VERIFIER, provenance=True)
    assert r.provenance is not None and r.provenance.builder_id.endswith(
        "release.yml@refs/tags/v1.0"
    )
    assert r.provenance.signer.key_hint == keys.key_hint(KEY.public_key())


def test_provenance_for_other_files_is_refused(
    tiny_model: Path, tiny_models: tuple[Path, Path]
) -> None:
    attest_provenance(tiny_model, signer=SIGNER, env={})
    (tiny_model / "README.md").write_text("edited after the attestation\n")
    sign(tiny_model, signer=SIGNER, env={})  # the model signature covers the edit
    with pytest.raises(VerificationError) as e:
        verify(tiny_model, verifier=VERIFIER, provenance=True)
    assert [p.code for p in e.value.findings] == ["PROVENANCE_SUBJECT_MISMATCH"]


def test_provenance_signed_by_another_key_or_missing(tiny_model: Path) -> None:
    attest_provenance(tiny_model, signer=KeySigner(shared_key("other")), env={})
    sign(tiny_model, signer=SIGNER, env={})
    with pytest.raises(VerificationError) as e:
        verify(tiny_model, verifier=VERIFIER, provenance=True)
    assert [p.code for p in e.value.findings] == ["KEY_HINT_MISMATCH"]
    (tiny_model / "model.provenance.sig").unlink()
    with pytest.raises(VerificationError) as e:
        verify(tiny_model, verifier=VERIFIER, provenance=True)
    assert [p.code for p in e.value.findings] == ["PROVENANCE_NOT_FOUND"]
    # without asking for it, a model signature alone verifies
    verify(tiny_model, verifier=VERIFIER)


def test_local_builder_and_policy(tiny_model: Path, tmp_path: Path) -> None:
    res = attest_provenance(tiny_model, signer=SIGNER, env={})
    assert payload_of(Path(res.path))["predicate"]["runDetails"]["builder"]["id"] == LOCAL_BUILDER
    sign(tiny_model, signer=SIGNER, env={})
    pem = keys.public_key_pem(KEY.public_key()).decode()
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(
        json.dumps(
            {
                "version": 1,
                "signers": {"keys": [{"pem": pem}]},
                "provenance": {
                    "require_attestation": True,
                    "builder_ids": ["https://github.com/acme/*"],
                },
            }
        )
    )
    with pytest.raises(VerificationError) as e:
        verify(tiny_model, policy=Policy.load(policy_file))
    rule = next(r for r in e.value.result.policy.rules if r.rule == "provenance")
    assert rule.status == "fail" and "not an allowed builder" in rule.reasons[0]
    attest_provenance(tiny_model, signer=SIGNER, env=GITHUB, force=True)
    r = verify(tiny_model, policy=Policy.load(policy_file))
    assert {x.rule: x.status for x in r.policy.rules}["provenance"] == "pass"  # type: ignore[union-attr]
    (tiny_model / "model.provenance.sig").unlink()
    with pytest.raises(VerificationError) as e:
        verify(tiny_model, policy=Policy.load(policy_file))
    assert any(p.code == "PROVENANCE_NOT_FOUND" for p in e.value.findings)


def test_cli(tiny_model: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from modelsign.cli import cli

    prefix = tmp_path / "k"
    keys.write_keypair(str(prefix), KEY, password=None)
    r = CliRunner().invoke(
        cli, ["attest", "provenance", str(tiny_model), "--key", f"{prefix}.key"], env=GITHUB
    )
    assert r.exit_code == 0, r.stderr
    assert "builder: https://github.com/acme/models/" in r.stderr
    r = CliRunner().invoke(cli, ["sign", str(tiny_model), "--key", f"{prefix}.key"], env={})
    assert r.exit_code == 0, r.stderr
    r = CliRunner().invoke(
        cli, ["verify", str(tiny_model), "--key", f"{prefix}.pub", "--provenance"]
    )
    assert r.exit_code == 0 and "provenance: built by https://github.com/acme/models" in r.stdout


# -- a builder is certified only by a keyless CI certificate -------------------------------------


def _keyless(standin: SigstoreStandin, token: str) -> SigstoreSigner:
    from sigstore.oidc import IdentityToken

    return SigstoreSigner(standin.trust_config(), IdentityToken(token))


def _keyless_verifier(standin: SigstoreStandin, identity: str, issuer: str) -> SigstoreVerifier:
    return SigstoreVerifier(standin.trusted_root(), identity=identity, issuer=issuer)


GH_CLAIMS = {"repository": "acme/models", "ref": "refs/tags/v1.0", "sha": "d" * 40}
GH_IDENTITY = "https://github.com/acme/models/.github/workflows/release.yml@refs/tags/v1.0"
GH_ISSUER = "https://token.actions.githubusercontent.com"


def test_a_keyless_ci_signature_certifies_the_builder(
    standin: SigstoreStandin, tiny_model: Path
) -> None:
    signer = _keyless(standin, standin.token(github=GH_CLAIMS))
    sign(tiny_model, signer=signer, env=GITHUB)
    res = attest_provenance(tiny_model, signer=signer, env=GITHUB)
    r = verify(
        tiny_model,
        verifier=_keyless_verifier(standin, GH_IDENTITY, GH_ISSUER),
        provenance=res.path,
    )
    assert r.verdict == "verified" and r.provenance is not None
    assert r.provenance.builder_certified


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({**GITHUB, "GITHUB_REPOSITORY": "evil/models"}, id="other-repository"),
        pytest.param({**GITHUB, "GITHUB_SHA": "e" * 40}, id="other-commit"),
        pytest.param(
            {**GITHUB, "GITHUB_WORKFLOW_REF": "acme/models/.github/workflows/x.yml@refs/tags/v1.0"},
            id="other-workflow",
        ),
    ],
)
def test_a_builder_the_certificate_contradicts_fails(
    standin: SigstoreStandin, tiny_model: Path, claims: dict[str, str]
) -> None:
    signer = _keyless(standin, standin.token(github=GH_CLAIMS))
    sign(tiny_model, signer=signer, env=claims)
    with pytest.raises(VerificationError) as e:
        verify(tiny_model, verifier=_keyless_verifier(standin, GH_IDENTITY, GH_ISSUER))
    assert [p.code for p in e.value.findings] == ["BUILDER_MISMATCH"]


def test_a_laptop_posing_as_ci_is_caught(standin: SigstoreStandin, tiny_model: Path) -> None:
    """GITHUB_ACTIONS=true on a laptop, signing keylessly as a person."""
    from modelsign.provenance import verify_provenance
    from tests.sigstore_standin.oidc import DEFAULT_ISSUER

    signer = _keyless(standin, standin.token("dev@example.com"))
    sign(tiny_model, signer=signer, env=GITHUB)
    verifier = _keyless_verifier(standin, "dev@example.com", DEFAULT_ISSUER)
    with pytest.raises(VerificationError) as e:
        verify(tiny_model, verifier=verifier)
    assert [p.code for p in e.value.findings] == ["BUILDER_MISMATCH"]
    res = attest_provenance(tiny_model, signer=signer, env=GITHUB)
    resources = payload_of(tiny_model / "model.sig")["predicate"]["resources"]
    files = {r["name"]: r["digest"] for r in resources}
    with pytest.raises(VerificationError) as ex:
        verify_provenance(res.path, verifier=verifier, files=files)
    assert ex.value.code == "BUILDER_MISMATCH"


def test_a_key_signature_builder_is_self_reported(tiny_model: Path, tmp_path: Path) -> None:
    from modelsign.policy import explain

    sign(tiny_model, signer=SIGNER, env=GITHUB)
    attest_provenance(tiny_model, signer=SIGNER, env=GITHUB)
    assert (
        verify(tiny_model, verifier=VERIFIER, provenance=True).provenance.builder_certified is False
    )  # type: ignore[union-attr]
    pem = keys.public_key_pem(KEY.public_key()).decode()
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(
        json.dumps(
            {
                "version": 1,
                "signers": {"keys": [{"pem": pem}]},
                "provenance": {
                    "require": ["builder"],
                    "builder_ids": ["https://github.com/acme/*"],
                    "require_certified_builder": True,
                },
            }
        )
    )
    policy = Policy.load(policy_file)
    with pytest.raises(VerificationError) as e:
        verify(tiny_model, policy=policy)
    rule = next(r for r in e.value.result.policy.rules if r.rule == "provenance")
    assert rule.status == "fail" and any("self-reported" in x for x in rule.reasons)
    assert "self-reported" in explain(policy)


def test_provenance_leaves_out_what_sign_leaves_out(tiny_model: Path) -> None:
    # A file of the folder signed on its own: its signature and claims are modelsign's
    # own, signed by neither the folder's signature nor its provenance.
    one = sorted(tiny_model.glob("*.safetensors"))[0]
    sign(one, signer=SIGNER, env={})
    signed = sign(tiny_model, signer=SIGNER, env={})
    res = attest_provenance(tiny_model, signer=SIGNER, env={})
    assert res.manifest.digest() == signed.manifest.digest()
    r = verify(tiny_model, verifier=VERIFIER, provenance=True)
    assert r.provenance is not None

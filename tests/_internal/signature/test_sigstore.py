"""Sigstore keyless signing and verification, end to end, with no network.

Signing goes through the real ``modelsign`` command line against the local Sigstore
stand-in (Fulcio, CT log, Rekor v1/v2, TSA and an OIDC token signer on 127.0.0.1);
verification through the command line and, for the tamper matrix, the Python API.
Real bundles from the public Sigstore instance (``../shared/conformance``) verify
offline against the trusted root shipped with ``sigstore``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelsign._internal.check.compare import Problem
from modelsign._internal.signature.signers import KeySigner
from modelsign._internal.signature.sigstore import (
    TOKEN_ENV,
    SigstoreVerifier,
    load_trusted_root,
    shipped_trusted_root,
)
from modelsign._internal.signature.statement import PREDICATE_V1, STATEMENT_TYPE
from modelsign.cli import cli as cli_group
from modelsign.errors import VerificationError
from modelsign.sign import sign
from modelsign.verify import verify
from tests.helpers.examples import build_example
from tests.helpers.paths import CONFORMANCE, ROOT
from tests.helpers.signing import KeyPair, flip_byte, manifest_of, payload_bytes, shared_key
from tests.sigstore_standin import (
    DEFAULT_IDENTITY,
    DEFAULT_ISSUER,
    GITHUB_ISSUER,
    SigstoreStandin,
    tamper,
)

VECTORS = CONFORMANCE / "oms-vectors"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IBM_IDENTITY = "stefanb@us.ibm.com"
IBM_ISSUER = "https://sigstore.verify.ibm.com/oauth2"

#: The stand-in's default signer, as ``verify`` options.
STANDIN_SIGNER = ("--identity", DEFAULT_IDENTITY, "--issuer", DEFAULT_ISSUER)
IBM_SIGNER = ("--identity", IBM_IDENTITY, "--issuer", IBM_ISSUER)

GH_REPO = "octo-org/octo-repo"
GH_REF = "refs/tags/v1.0"
GH_WORKFLOW = ".github/workflows/release.yml"
GH_IDENTITY = f"https://github.com/{GH_REPO}/{GH_WORKFLOW}@{GH_REF}"

# Whatever could make a subprocess reach the network or find an identity token by itself.
_AMBIENT = {
    "MODELSIGN_IDENTITY_TOKEN",
    "SIGSTORE_ID_TOKEN",
    "GITHUB_ACTIONS",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "GOOGLE_SERVICE_ACCOUNT_NAME",
}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without proxies and ambient credentials, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k not in _AMBIENT}
    return env | extra


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m modelsign ARGS`` with stdin not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "modelsign", *map(str, args)],
        env=clean_env() if env is None else env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def cli_many(
    calls: Sequence[tuple[str | Path, ...]], env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Independent CLI runs, two at a time (start-up dominates their cost)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda args: cli(*args, env=env), calls))


def result_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.stdout, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def codes(result: dict[str, Any]) -> list[str]:
    return [p["code"] for p in result["problems"] if p["severity"] == "error"]


def copy_model(src: Path, dest: Path, *, keep_signature: bool = True) -> Path:
    ignore = None if keep_signature else shutil.ignore_patterns("model.sig", "claims.jsonl")
    shutil.copytree(src, dest, ignore=ignore)
    for p in [dest, *dest.rglob("*")]:  # the shared vectors are read-only
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dest


def build_model(folder: Path) -> Path:
    """A fresh copy of the example safetensors model (``tiny-model``)."""
    return build_example(folder)[0]


def verify_args(model: Path, root: Path, *extra: str | Path) -> tuple[str | Path, ...]:
    return ("verify", model, "--trusted-root", root, "--json", *extra)


def cli_sign(model: Path, standin: SigstoreStandin, token: str) -> subprocess.CompletedProcess[str]:
    """``modelsign sign MODEL --sigstore`` against ``standin`` with ``token``."""
    trust = standin.trust_config_path
    return cli("sign", model, "--sigstore", "--identity-token", token, "--trust-config", trust)


def sigstore_verifier(root: object, policy: dict[str, str], **defaults: str) -> SigstoreVerifier:
    """A verifier for ``policy`` over ``defaults`` (an identity regex replaces the identity)."""
    kw = defaults | policy
    if "identity_regex" in policy:
        kw.pop("identity", None)
    return SigstoreVerifier(root, **kw)


def standin_verifier(root_path: Path, policy: dict[str, str]) -> SigstoreVerifier:
    root = load_trusted_root(str(root_path), offline=True)
    return sigstore_verifier(root, policy, identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER)


def sigstore_errors(
    model: Path,
    root_path: Path,
    policy: dict[str, str] | None = None,
    *,
    signature: Path | None = None,
) -> list[Problem]:
    """Verify through the API; the error problems (the verification must fail)."""
    verifier = standin_verifier(root_path, policy or {})
    with pytest.raises(VerificationError) as info:
        verify(model, verifier=verifier, signature=signature)
    assert info.value.result is not None
    errors: list[Problem] = info.value.result.errors
    return errors


def sigstore_verifies(model: Path, root_path: Path, **policy: str) -> str | None:
    """Verify through the API (must pass); the signer identity."""
    verifier = standin_verifier(root_path, policy)
    result = verify(model, verifier=verifier)
    assert result.verdict == "verified"
    assert result.signer is not None
    return result.signer.identity


# -- fixtures: one stand-in, one signed model, shared by the module (read-only) ---------------


@pytest.fixture(scope="module")
def other_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigstoreStandin]:
    """An independent instance: its keys and roots are not trusted by ``standin``'s root."""
    with SigstoreStandin(tmp_path_factory.mktemp("other-standin")) as running:
        yield running


@pytest.fixture(scope="module")
def keyless_signed(standin: SigstoreStandin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example model, signed keylessly through the CLI. Do not modify: copy it."""
    model = build_model(tmp_path_factory.mktemp("signed"))
    proc = cli_sign(model, standin, standin.token())
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {model / 'model.sig'}" in proc.stderr
    return model


@pytest.fixture(scope="module")
def gh_signed(standin: SigstoreStandin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example model signed with a GitHub Actions token (release workflow, tag v1.0)."""
    model = build_model(tmp_path_factory.mktemp("gh-signed"))
    token = standin.token(github={"repository": GH_REPO, "ref": GH_REF})
    proc = cli_sign(model, standin, token)
    assert proc.returncode == 0, proc.stderr
    return model


# -- 1. keyless signing through the CLI ---------------------------------------------------------


@pytest.mark.slow
def test_sign_and_verify_through_the_cli(keyless_signed: Path, standin: SigstoreStandin) -> None:
    proc = cli(*verify_args(keyless_signed, standin.trusted_root_path), *STANDIN_SIGNER)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = result_json(proc)
    assert result["verdict"] == "verified" and result["problems"] == []
    assert result["predicate_type"] == PREDICATE_V1
    assert result["subject"]["name"] == "tiny-model"
    assert (result["files_verified"], result["tensors_verified"]) == (4, 21)
    signer = result["signer"]
    assert signer["kind"] == "sigstore"
    assert signer["identity"] == DEFAULT_IDENTITY
    assert signer["oidc_issuer"] == DEFAULT_ISSUER
    assert signer["issuer"] == "CN=standin-fulcio-intermediate,O=sigstore-standin.test"
    assert signer["signed_at"] is not None
    assert (signer["key_hint"], signer["fingerprint"]) == (None, None)

    # The human summary names the identity and the issuer.
    proc = cli(
        "verify", keyless_signed, "--trusted-root", standin.trusted_root_path, *STANDIN_SIGNER
    )
    assert proc.returncode == 0, proc.stderr
    assert f"signed by {DEFAULT_IDENTITY} via {DEFAULT_ISSUER}" in proc.stdout


def test_the_attestation_shares_the_signing_certificate(keyless_signed: Path) -> None:
    """One identity token, one Fulcio certificate for the OMS bundle and the attestation."""
    oms_material = json.loads((keyless_signed / "model.sig").read_text())["verificationMaterial"]
    (line,) = (keyless_signed / "claims.jsonl").read_text().splitlines()
    att_material = json.loads(line)["verificationMaterial"]
    assert att_material["certificate"] == oms_material["certificate"]
    assert len(att_material["tlogEntries"]) == 1
    assert manifest_of(keyless_signed / "model.sig")["name"] == "tiny-model"


@pytest.mark.slow
def test_an_attestation_by_another_identity_is_not_bound(
    keyless_signed: Path, standin: SigstoreStandin, tmp_path: Path
) -> None:
    model = copy_model(keyless_signed, tmp_path / "tiny-model")
    line = (model / "claims.jsonl").read_text()
    payload = base64.b64decode(json.loads(line)["dsseEnvelope"]["payload"])
    forged = standin.sign_dsse(payload, standin.token("mallory@example.com"))
    (model / "claims.jsonl").write_text(forged.to_json().replace("\n", "") + "\n")
    proc = cli(*verify_args(model, standin.trusted_root_path), *STANDIN_SIGNER)
    assert proc.returncode == 1, proc.stderr
    assert codes(result_json(proc)) == ["ATTESTATION_UNBOUND"]


def test_bundle_is_oms_v1_and_carries_the_key_signing_statement(
    keyless_signed: Path, tmp_path: Path
) -> None:
    bundle = json.loads((keyless_signed / "model.sig").read_text())
    assert bundle["mediaType"] == BUNDLE_TYPE
    assert bundle["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    material = bundle["verificationMaterial"]
    assert "certificate" in material and "publicKey" not in material
    (entry,) = material["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert {"inclusionProof", "inclusionPromise"} <= entry.keys()
    assert len(material["timestampVerificationData"]["rfc3161Timestamps"]) == 1

    sigstore_payload = payload_bytes(keyless_signed / "model.sig")
    statement = json.loads(sigstore_payload)
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_V1
    assert statement["subject"][0]["name"] == "tiny-model"
    predicate = statement["predicate"]
    assert set(predicate) == {"resources", "serialization"}
    assert predicate["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [
            ".git",
            ".gitattributes",
            ".github",
            ".gitignore",
            "claims.jsonl",
            "model.provenance.sig",
            "model.sig",
        ],
    }
    assert [(r["name"], r["algorithm"]) for r in predicate["resources"]] == [
        ("LICENSE", "sha256"),
        ("README.md", "sha256"),
        ("config.json", "sha256"),
        ("model.safetensors", "sha256"),
    ]
    assert manifest_of(keyless_signed / "model.sig")["name"] == "tiny-model"

    # Key signing the same model (same folder name and signature place) signs the same bytes.
    twin = copy_model(keyless_signed, tmp_path / "tiny-model", keep_signature=False)
    res = sign(twin, signer=KeySigner(shared_key()), env=clean_env())
    assert res.statement == sigstore_payload
    assert payload_bytes(twin / "model.sig") == sigstore_payload


# -- 2. verification failures -------------------------------------------------------------------


@pytest.mark.slow
def test_identity_and_issuer_policy_through_the_cli(
    keyless_signed: Path, standin: SigstoreStandin
) -> None:
    root = standin.trusted_root_path
    wrong_identity, wrong_issuer, regex_ok, regex_bad = cli_many(
        [
            verify_args(
                keyless_signed, root, "--identity", "other@example.com", "--issuer", DEFAULT_ISSUER
            ),
            verify_args(
                keyless_signed,
                root,
                "--identity",
                DEFAULT_IDENTITY,
                "--issuer",
                "https://other.test",
            ),
            verify_args(
                keyless_signed,
                root,
                "--identity-regex",
                r"[a-z]+@example\.com",
                "--issuer",
                DEFAULT_ISSUER,
            ),
            verify_args(
                keyless_signed,
                root,
                "--identity-regex",
                r".*@example\.org",
                "--issuer",
                DEFAULT_ISSUER,
            ),
        ]
    )
    for proc in (wrong_identity, wrong_issuer, regex_bad):
        assert proc.returncode == 1, proc.stderr
        result = result_json(proc)
        assert result["verdict"] == "failed" and result["signer"] is None
        assert codes(result) == ["SIGSTORE_VERIFICATION_FAILED"]
    assert "other@example.com" in result_json(wrong_identity)["problems"][0]["message"]
    assert "https://other.test" in result_json(wrong_issuer)["problems"][0]["message"]
    assert r".*@example\.org" in result_json(regex_bad)["problems"][0]["message"]
    assert regex_ok.returncode == 0, regex_ok.stdout
    assert result_json(regex_ok)["signer"]["identity"] == DEFAULT_IDENTITY


@pytest.mark.parametrize(
    "policy",
    [
        {"identity_regex": "signer"},  # a full match is required, not a search
        {"identity_regex": r"signer@example\.com.+"},
        {"identity": "SIGNER@example.com"},
        {"issuer": DEFAULT_ISSUER + "/"},
        {"github_repository": GH_REPO},  # the certificate has no GitHub claims at all
    ],
    ids=["regex-partial", "regex-longer", "identity-case", "issuer-slash", "no-github-claims"],
)
def test_near_miss_policies_fail(
    keyless_signed: Path, standin: SigstoreStandin, policy: dict[str, str]
) -> None:
    (problem,) = sigstore_errors(keyless_signed, standin.trusted_root_path, policy)
    assert problem.code == "SIGSTORE_VERIFICATION_FAILED"


@pytest.mark.slow
def test_github_claims_through_the_cli(gh_signed: Path, standin: SigstoreStandin) -> None:
    proc = cli(
        *verify_args(gh_signed, standin.trusted_root_path),
        "--identity",
        GH_IDENTITY,
        "--issuer",
        GITHUB_ISSUER,
        "--github-repository",
        GH_REPO,
        "--github-ref",
        GH_REF,
        "--github-workflow",
        GH_WORKFLOW,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    signer = result_json(proc)["signer"]
    assert (signer["identity"], signer["oidc_issuer"]) == (GH_IDENTITY, GITHUB_ISSUER)
    ext = signer["extensions"]
    assert ext["source_repository_uri"] == f"https://github.com/{GH_REPO}"
    assert ext["source_repository_ref"] == GH_REF
    assert ext["build_signer_uri"] == GH_IDENTITY
    assert ext["github_workflow_repository"] == GH_REPO

    proc = cli(
        *verify_args(gh_signed, standin.trusted_root_path),
        "--identity",
        GH_IDENTITY,
        "--issuer",
        GITHUB_ISSUER,
        "--github-ref",
        "refs/heads/main",
    )
    assert proc.returncode == 1, proc.stderr
    result = result_json(proc)
    assert codes(result) == ["SIGSTORE_VERIFICATION_FAILED"]
    assert "refs/heads/main" in result["problems"][0]["message"]


@pytest.mark.parametrize(
    "claims",
    [
        {"github_repository": GH_REPO},
        {"github_ref": GH_REF},
        {"github_workflow": GH_WORKFLOW},
        {"github_workflow": "/" + GH_WORKFLOW},
        {"github_repository": GH_REPO, "github_ref": GH_REF, "github_workflow": GH_WORKFLOW},
    ],
    ids=["repository", "ref", "workflow", "workflow-leading-slash", "all"],
)
def test_github_claims_pass(
    gh_signed: Path, standin: SigstoreStandin, claims: dict[str, str]
) -> None:
    identity = sigstore_verifies(
        gh_signed,
        standin.trusted_root_path,
        identity_regex=rf"https://github\.com/{GH_REPO}/.*",
        issuer=GITHUB_ISSUER,
        **claims,
    )
    assert identity == GH_IDENTITY


@pytest.mark.parametrize(
    "claims",
    [
        {"github_repository": "octo-org/other-repo"},
        {"github_repository": "octo-org"},
        {"github_repository": f"{GH_REPO}/extra"},
        {"github_ref": "refs/heads/main"},
        {"github_ref": "refs/tags/v1"},
        {"github_workflow": ".github/workflows/ci.yml"},
        {"github_workflow": "workflows/release.yml.bak"},
        {"github_repository": GH_REPO, "github_ref": GH_REF, "github_workflow": "ci.yml"},
    ],
    ids=[
        "other-repository",
        "owner-only",
        "repository-suffix",
        "branch-not-tag",
        "ref-prefix",
        "other-workflow",
        "workflow-suffix",
        "one-of-three-wrong",
    ],
)
def test_github_claims_fail(
    gh_signed: Path, standin: SigstoreStandin, claims: dict[str, str]
) -> None:
    policy = {"identity": GH_IDENTITY, "issuer": GITHUB_ISSUER, **claims}
    (problem,) = sigstore_errors(gh_signed, standin.trusted_root_path, policy)
    assert problem.code == "SIGSTORE_VERIFICATION_FAILED"


@pytest.mark.slow
def test_tampered_model_names_the_tensor(
    keyless_signed: Path, standin: SigstoreStandin, tmp_path: Path
) -> None:
    model = copy_model(keyless_signed, tmp_path / "tiny-model")
    flip_byte(model / "model.safetensors", tensor="lm_head.weight")
    proc = cli(*verify_args(model, standin.trusted_root_path), *STANDIN_SIGNER)
    assert proc.returncode == 1, proc.stderr
    result = result_json(proc)
    assert result["verdict"] == "failed"
    # The signature itself is fine: the signer is reported, the tensor is named.
    assert result["signer"]["identity"] == DEFAULT_IDENTITY
    (problem,) = [p for p in result["problems"] if p["code"] == "TENSOR_MODIFIED"]
    assert (problem["file"], problem["tensor"]) == ("model.safetensors", "lm_head.weight")
    assert problem["expected"] != problem["actual"]
    # The file-level digest (what an OMS verifier checks) fails too, for the same file.
    assert sorted((p["code"], p["file"]) for p in result["problems"]) == [
        ("FILE_MODIFIED", "model.safetensors"),
        ("TENSOR_MODIFIED", "model.safetensors"),
    ]


def _swap_certificate(other: SigstoreStandin) -> Callable[[str], str]:
    def change(bundle_json: str) -> str:
        # The other instance's certificate for the same statement and identity.
        statement = base64.b64decode(json.loads(bundle_json)["dsseEnvelope"]["payload"])
        foreign = json.loads(other.sign_dsse(statement).to_json())
        cert = foreign["verificationMaterial"]["certificate"]["rawBytes"]

        def put(b: dict[str, Any]) -> None:
            b["verificationMaterial"]["certificate"]["rawBytes"] = cert

        return tamper.edit(bundle_json, put)

    return change


def _flip_certificate(bundle_json: str) -> str:
    def change(b: dict[str, Any]) -> None:
        cert = b["verificationMaterial"]["certificate"]
        cert["rawBytes"] = tamper.flip_b64(cert["rawBytes"])

    return tamper.edit(bundle_json, change)


def _truncate_certificate(bundle_json: str) -> str:
    def change(b: dict[str, Any]) -> None:
        cert = b["verificationMaterial"]["certificate"]
        cert["rawBytes"] = base64.b64encode(base64.b64decode(cert["rawBytes"])[:-1]).decode()

    return tamper.edit(bundle_json, change)


def _flip_set(bundle_json: str) -> str:
    def change(b: dict[str, Any]) -> None:
        promise = b["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
        promise["signedEntryTimestamp"] = tamper.flip_b64(promise["signedEntryTimestamp"])

    return tamper.edit(bundle_json, change)


def _flip_log_body(bundle_json: str) -> str:
    def change(b: dict[str, Any]) -> None:
        entry = b["verificationMaterial"]["tlogEntries"][0]
        body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
        body["spec"]["envelopeHash"]["value"] = "0" * 64
        entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()

    return tamper.edit(bundle_json, change)


def _foreign_payload(bundle_json: str) -> str:
    statement = json.loads(base64.b64decode(json.loads(bundle_json)["dsseEnvelope"]["payload"]))
    statement["subject"][0]["name"] = "another-model"
    return tamper.dsse_payload(bundle_json, json.dumps(statement).encode())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dsse-signature", "SIGSTORE_VERIFICATION_FAILED"),
        ("dsse-payload", "SIGSTORE_VERIFICATION_FAILED"),
        ("certificate-byte", "SIGSTORE_VERIFICATION_FAILED"),
        ("certificate-foreign", "SIGSTORE_VERIFICATION_FAILED"),
        ("inclusion-proof", "SIGSTORE_VERIFICATION_FAILED"),
        ("checkpoint", "SIGSTORE_VERIFICATION_FAILED"),
        ("signed-entry-timestamp", "SIGSTORE_VERIFICATION_FAILED"),
        ("integrated-time", "SIGSTORE_VERIFICATION_FAILED"),
        ("log-entry-body", "SIGSTORE_VERIFICATION_FAILED"),
        ("certificate-truncated", "SIGSTORE_BUNDLE_INVALID"),
        ("no-log-entry", "SIGSTORE_BUNDLE_INVALID"),
    ],
)
def test_tampered_bundle_fails(
    keyless_signed: Path,
    standin: SigstoreStandin,
    other_standin: SigstoreStandin,
    tmp_path: Path,
    name: str,
    expected: str,
) -> None:
    changes: dict[str, Callable[[str], str]] = {
        "dsse-signature": tamper.dsse_signature,
        "dsse-payload": _foreign_payload,
        "certificate-byte": _flip_certificate,
        "certificate-foreign": _swap_certificate(other_standin),
        "inclusion-proof": tamper.inclusion_proof,
        "checkpoint": tamper.checkpoint_signature,
        "signed-entry-timestamp": _flip_set,
        "integrated-time": tamper.integrated_time,
        "log-entry-body": _flip_log_body,
        "certificate-truncated": _truncate_certificate,
        "no-log-entry": lambda text: tamper.edit(
            text, lambda b: b["verificationMaterial"].update(tlogEntries=[])
        ),
    }
    original = (keyless_signed / "model.sig").read_text()
    changed = changes[name](original)
    assert changed != original
    sig = tmp_path / "tampered.sig"
    sig.write_text(changed)
    (problem,) = sigstore_errors(keyless_signed, standin.trusted_root_path, signature=sig)
    assert problem.code == expected, problem.message
    # The untouched bundle still verifies (the failure is the change's doing).
    assert sigstore_verifies(keyless_signed, standin.trusted_root_path) == DEFAULT_IDENTITY


@pytest.mark.slow
def test_another_instances_trusted_root_is_refused(
    keyless_signed: Path, standin: SigstoreStandin, other_standin: SigstoreStandin
) -> None:
    (problem,) = sigstore_errors(keyless_signed, other_standin.trusted_root_path)
    assert problem.code == "SIGSTORE_VERIFICATION_FAILED"
    # ... and the public instance's root (offline, shipped) does not trust the stand-in either.
    proc = cli("verify", keyless_signed, "--offline", "--json", *STANDIN_SIGNER)
    assert proc.returncode == 1, proc.stderr
    assert codes(result_json(proc)) == ["SIGSTORE_VERIFICATION_FAILED"]


# -- 3. token sources and usage errors ---------------------------------------------------------


@pytest.mark.slow
def test_token_from_environment(standin: SigstoreStandin, tmp_path: Path) -> None:
    model = build_model(tmp_path)
    token = standin.token(identity="env-signer@example.com")
    proc = cli(
        "sign",
        model,
        "--sigstore",
        "--trust-config",
        standin.trust_config_path,
        env=clean_env(MODELSIGN_IDENTITY_TOKEN=token),
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        sigstore_verifies(model, standin.trusted_root_path, identity="env-signer@example.com")
        == "env-signer@example.com"
    )


@pytest.mark.slow
def test_token_and_usage_errors(standin: SigstoreStandin, tmp_path: Path, keypair: KeyPair) -> None:
    model = build_model(tmp_path)
    key = str(keypair.key_path)
    trust = ("--trust-config", standin.trust_config_path)
    root = ("--trusted-root", standin.trusted_root_path)
    cases: dict[str, tuple[tuple[str | Path, ...], dict[str, str], str]] = {
        "github-no-permission": (
            ("sign", model, "--sigstore", *trust),
            {"GITHUB_ACTIONS": "true"},
            "NO_IDENTITY_TOKEN",
        ),
        "no-token": (("sign", model, "--sigstore", *trust), {}, "NO_IDENTITY_TOKEN"),
        "garbage-token": (
            ("sign", model, "--sigstore", "--identity-token", "not.a.jwt", *trust),
            {},
            "BAD_IDENTITY_TOKEN",
        ),
        "sigstore-and-key": (
            (
                "sign",
                model,
                "--sigstore",
                "--key",
                key,
                "--identity-token",
                standin.token(),
                *trust,
            ),
            {},
            "USAGE",
        ),
        "verify-no-trust": (("verify", model, *root), {}, "USAGE"),
        "identity-without-issuer": (
            ("verify", model, "--identity", DEFAULT_IDENTITY, *root),
            {},
            "USAGE",
        ),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(cli, *args, env=clean_env(**extra))
            for name, (args, extra, _) in cases.items()
        }
        procs = {name: f.result() for name, f in futures.items()}
    for name, proc in procs.items():
        assert (name, proc.returncode) == (name, 2), proc.stderr
        assert proc.stderr.startswith(f"error[{cases[name][2]}]: "), (name, proc.stderr)
        assert "Traceback" not in proc.stderr, name
    assert "permissions: id-token: write" in procs["github-no-permission"].stderr
    assert "--identity-token" in procs["no-token"].stderr
    assert "--issuer" in procs["identity-without-issuer"].stderr
    assert not (model / "model.sig").exists()


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (("sign", "M", "--sigstore", "T"), {TOKEN_ENV: "garbage"}, "BAD_IDENTITY_TOKEN"),
        (("verify", "M", "--identity-regex", ".*", "R"), {}, "USAGE"),
        (("verify", "M", "--issuer", DEFAULT_ISSUER, "R"), {}, "USAGE"),
        (
            (
                "verify",
                "M",
                "--identity",
                "a@b.c",
                "--identity-regex",
                ".*",
                "--issuer",
                DEFAULT_ISSUER,
                "R",
            ),
            {},
            "USAGE",
        ),
        (
            ("verify", "M", "--identity-regex", "(", "--issuer", DEFAULT_ISSUER, "R"),
            {},
            "BAD_REGEX",
        ),
        (
            ("verify", "M", "--key", "K", "--identity", "a@b.c", "--issuer", DEFAULT_ISSUER),
            {},
            "USAGE",
        ),
    ],
    ids=[
        "garbage-env-token",
        "regex-without-issuer",
        "issuer-without-identity",
        "identity-and-regex",
        "bad-regex",
        "identity-and-key",
    ],
)
def test_more_usage_errors_in_process(
    standin: SigstoreStandin,
    keyless_signed: Path,
    tmp_path: Path,
    keypair: KeyPair,
    args: tuple[str, ...],
    env: dict[str, str],
    code: str,
) -> None:
    """The same checks through click's runner (no interpreter start-up per case)."""
    key = str(keypair.key_path)
    where = {
        "M": [str(keyless_signed)],
        "T": ["--trust-config", str(standin.trust_config_path)],
        "R": ["--trusted-root", str(standin.trusted_root_path)],
        "K": [str(key)],
    }
    argv = [part for a in args for part in where.get(a, [a])]
    unset: dict[str, str | None] = {var: None for var in _AMBIENT}
    result = CliRunner().invoke(cli_group, argv, env=unset | env)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error[{code}]: "), result.stderr


@pytest.mark.slow
def test_usage_errors_come_before_any_network_access(tmp_path: Path) -> None:
    """A missing --issuer is reported without first refreshing the trusted root online."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\0" * 16)
    # Any network access goes to a closed local port, and fails at once.
    env = clean_env(HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    env |= {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = cli("verify", model, "--identity", DEFAULT_IDENTITY, env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error[USAGE]: "), proc.stderr
    assert "could not refresh" not in proc.stderr


@pytest.mark.parametrize(
    "constraint",
    [("--github-repository", "evil/repo"), ("--github-ref", "refs/heads/x")],
    ids=["repository", "ref"],
)
def test_sigstore_constraints_with_a_key_are_refused(
    tmp_path: Path, keypair: KeyPair, constraint: tuple[str, str]
) -> None:
    """A constraint the chosen trust method cannot check must not pass silently."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\1" * 16)
    pub = keypair.pub_path
    sign(model, signer=keypair.signer, env={})
    result = CliRunner().invoke(cli_group, ["verify", str(model), "--key", str(pub), *constraint])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error[USAGE]: "), result.stderr


# -- 4. Rekor v2 --------------------------------------------------------------------------------


@pytest.mark.slow
def test_rekor_v2_signs_and_verifies(tmp_path: Path) -> None:
    model = build_model(tmp_path / "model")
    with SigstoreStandin(tmp_path / "standin-v2", rekor_version=2) as v2:
        proc = cli_sign(model, v2, v2.token())
        assert proc.returncode == 0, proc.stderr
    # Verification needs no server.
    proc = cli(*verify_args(model, v2.trusted_root_path), *STANDIN_SIGNER)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = result_json(proc)
    assert result["signer"]["kind"] == "sigstore"
    assert result["signer"]["identity"] == DEFAULT_IDENTITY
    (entry,) = json.loads((model / "model.sig").read_text())["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"]["version"] == "0.0.2"
    assert "inclusionPromise" not in entry
    # Rekor v2 gives no integrated time: the time evidence is the RFC 3161 timestamp alone.
    sig = tmp_path / "no-timestamp.sig"
    sig.write_text(tamper.drop_timestamps((model / "model.sig").read_text()))
    (problem,) = sigstore_errors(model, v2.trusted_root_path, signature=sig)
    assert problem.code == "SIGSTORE_BUNDLE_INVALID"
    assert "inclusion promise or signed timestamp" in problem.message


# -- 5. real signatures from the public instance ------------------------------------------------


def _vectors() -> list[Path]:
    return sorted(VECTORS.glob("v*-sigstore")) if VECTORS.is_dir() else []


@pytest.fixture
def vectors() -> list[Path]:
    found = _vectors()
    if not found:
        pytest.skip(f"no v*-sigstore conformance vectors in {VECTORS}")
    return found


def _ibm(*extra: str) -> tuple[str, ...]:
    return ("--offline", "--json", "--ignore", "ignore-me", *extra)


@pytest.mark.slow
def test_public_instance_vectors_verify_offline(vectors: list[Path]) -> None:
    calls: list[tuple[str | Path, ...]] = [("verify", v, *_ibm(*IBM_SIGNER)) for v in vectors]
    # Any network access would go to a closed local port (and --offline must not try).
    env = clean_env(HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    for vector, proc in zip(vectors, cli_many(calls, env=env), strict=True):
        assert proc.returncode == 0, (vector.name, proc.stdout, proc.stderr)
        assert proc.stderr == "", (vector.name, proc.stderr)
        result = result_json(proc)
        assert result["verdict"] == "verified", vector.name
        assert result["files_verified"] == 2, vector.name
        assert result["signer"]["kind"] == "sigstore"
        assert result["signer"]["identity"] == IBM_IDENTITY
        assert result["signer"]["oidc_issuer"] == IBM_ISSUER
        assert result["signer"]["signed_at"] is not None


_WRONG_SIGNERS = [
    {"identity": "stefanb@us.ibm.co"},
    {"identity": "STEFANB@us.ibm.com"},
    {"identity_regex": r".*@example\.com"},
    {"identity_regex": r"stefanb"},
    {"issuer": "https://github.com/login/oauth"},
    {"issuer": IBM_ISSUER + "/"},
]


@pytest.mark.slow
def test_public_instance_vectors_refuse_other_identities(vectors: list[Path]) -> None:
    root = load_trusted_root(None, offline=True)
    for vector in vectors:
        for wrong in _WRONG_SIGNERS:
            verifier = sigstore_verifier(root, wrong, identity=IBM_IDENTITY, issuer=IBM_ISSUER)
            with pytest.raises(VerificationError) as info:
                verify(vector, verifier=verifier, ignore=["ignore-me"])
            assert info.value.code == "SIGSTORE_VERIFICATION_FAILED", (vector.name, wrong)
    # The same through the command line, on the newest vector.
    newest = vectors[-1]
    wrong_identity, wrong_issuer, regex_ok = cli_many(
        [
            ("verify", newest, *_ibm("--identity", "someone@us.ibm.com", "--issuer", IBM_ISSUER)),
            (
                "verify",
                newest,
                *_ibm("--identity", IBM_IDENTITY, "--issuer", "https://accounts.google.com"),
            ),
            (
                "verify",
                newest,
                *_ibm("--identity-regex", r"[a-z]+@us\.ibm\.com", "--issuer", IBM_ISSUER),
            ),
        ]
    )
    for proc in (wrong_identity, wrong_issuer):
        assert proc.returncode == 1, proc.stderr
        assert codes(result_json(proc)) == ["SIGSTORE_VERIFICATION_FAILED"]
    assert regex_ok.returncode == 0, regex_ok.stdout
    assert result_json(regex_ok)["signer"]["identity"] == IBM_IDENTITY


@pytest.mark.slow
def test_public_instance_vectors_fail_after_a_signed_byte_changes(
    vectors: list[Path], tmp_path: Path
) -> None:
    calls: list[tuple[str | Path, ...]] = []
    for vector in vectors:
        model = copy_model(vector, tmp_path / vector.name)
        data = bytearray((model / "signme-2").read_bytes())
        data[0] ^= 0x01
        (model / "signme-2").write_bytes(bytes(data))
        calls.append(("verify", model, *_ibm(*IBM_SIGNER)))
    for args, proc in zip(calls, cli_many(calls), strict=True):
        assert proc.returncode == 1, (args, proc.stderr)
        result = result_json(proc)
        # The signature is valid, the file is not.
        assert result["signer"]["identity"] == IBM_IDENTITY, args
        assert [(p["code"], p["file"]) for p in result["problems"] if p["severity"] == "error"] == [
            ("FILE_MODIFIED", "signme-2")
        ], args


# -- trusted root loading -----------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[object]:
    """Every connection attempt (and name lookup) fails and is recorded; caches go to tmp."""
    attempts: list[object] = []

    def refuse_connect(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network access blocked by the test")

    def refuse_lookup(host: object, *args: object, **kwargs: object) -> list[Any]:
        attempts.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "name lookup blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    for var in list(os.environ):
        if "proxy" in var.lower():
            monkeypatch.delenv(var)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return attempts


def _fulcio_subjects(root: Any) -> list[str]:
    return sorted(c.subject.rfc4514_string() for c in root.get_fulcio_certs())


def test_offline_trusted_root_makes_no_network_access(no_network: list[object]) -> None:
    warnings: list[str] = []
    root = load_trusted_root(None, offline=True, warn=warnings.append)
    assert no_network == [] and warnings == []
    assert _fulcio_subjects(root) == _fulcio_subjects(shipped_trusted_root())
    assert any("sigstore" in s for s in _fulcio_subjects(root))
    staging = load_trusted_root(None, offline=True, staging=True)
    assert no_network == []
    assert _fulcio_subjects(staging) != _fulcio_subjects(root)


def test_online_trusted_root_falls_back_with_a_warning(no_network: list[object]) -> None:
    warnings: list[str] = []
    root = load_trusted_root(None, offline=False, warn=warnings.append)
    assert no_network != []  # it did try
    (warning,) = warnings
    assert warning.startswith("could not refresh the Sigstore trusted root (")
    assert "shipped with the sigstore package" in warning
    assert _fulcio_subjects(root) == _fulcio_subjects(shipped_trusted_root())


def test_trusted_root_file_errors(tmp_path: Path) -> None:
    from modelsign.errors import InputError

    with pytest.raises(InputError) as info:
        load_trusted_root(str(tmp_path / "missing.json"), offline=True)
    assert info.value.code == "TRUST_ROOT_NOT_FOUND"
    bad = tmp_path / "bad.json"
    bad.write_text('{"mediaType": "nope"}')
    with pytest.raises(InputError) as info:
        load_trusted_root(str(bad), offline=True)
    assert info.value.code == "TRUST_ROOT_INVALID"

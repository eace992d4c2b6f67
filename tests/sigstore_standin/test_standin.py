"""The stand-in against the unmodified sigstore 4.5 public API: sign, verify, refuse."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from sigstore._internal.fulcio.client import FulcioClientError
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import policy
from sigstore.verify.policy import VerificationPolicy

from . import DEFAULT_IDENTITY, DEFAULT_ISSUER, GITHUB_ISSUER, SigstoreStandin, tamper
from .tlog import MerkleTree, leaf_hash, node_hash

DIGEST = "0123456789abcdef" * 4
STATEMENT = json.dumps(
    {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": DIGEST}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {},
    }
).encode()
EMAIL_POLICY = policy.Identity(identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER)


def _verify(standin: SigstoreStandin, bundle: Bundle, identity: VerificationPolicy) -> bytes:
    """Verify against ``standin``'s trusted root (read from its file: no server needed)."""
    payload_type, payload = standin.verifier().verify_dsse(bundle, identity)
    assert payload_type == "application/vnd.in-toto+json"
    return payload


@pytest.fixture(scope="module")
def bundle(standin: SigstoreStandin) -> Bundle:
    return standin.sign_dsse(STATEMENT)


def test_trust_config_loads_with_http_urls(standin: SigstoreStandin) -> None:
    config = ClientTrustConfig.from_json(standin.trust_config_path.read_text())
    assert config.signing_config.get_fulcio().url == standin.url
    assert standin.url.startswith("http://127.0.0.1:")


def test_keyless_dsse_round_trip(standin: SigstoreStandin, bundle: Bundle) -> None:
    assert json.loads(_verify(standin, bundle, EMAIL_POLICY)) == json.loads(STATEMENT)
    # Both sources of time verify: the TSA's RFC 3161 token and the log's SET.
    sources = {t.source.name for t in standin.verifier()._establish_time(bundle)}
    assert sources == {"TIMESTAMP_AUTHORITY", "TRANSPARENCY_SERVICE"}


@pytest.mark.parametrize(
    ("identity", "issuer"),
    [("someone@example.com", DEFAULT_ISSUER), (DEFAULT_IDENTITY, "https://other.example.test")],
    ids=["wrong-identity", "wrong-issuer"],
)
def test_identity_policy_mismatch_fails(
    standin: SigstoreStandin, bundle: Bundle, identity: str, issuer: str
) -> None:
    with pytest.raises(SigstoreError, match=r"do(es)? not match"):
        _verify(standin, bundle, policy.Identity(identity=identity, issuer=issuer))


def test_uri_identity(standin: SigstoreStandin) -> None:
    uri = "https://ci.example.test/pipelines/7"
    bundle = standin.sign_dsse(STATEMENT, standin.token(uri))
    _verify(standin, bundle, policy.Identity(identity=uri, issuer=DEFAULT_ISSUER))


def test_github_workflow_claims_become_extensions(standin: SigstoreStandin) -> None:
    token = standin.token(github={"repository": "acme/models", "ref": "refs/tags/v1"})
    bundle = standin.sign_dsse(STATEMENT, token)
    workflow = "https://github.com/acme/models/.github/workflows/release.yml@refs/tags/v1"
    passing = policy.AllOf(
        [
            policy.OIDCIssuerV2(GITHUB_ISSUER),
            policy.OIDCSourceRepositoryURI("https://github.com/acme/models"),
            policy.OIDCSourceRepositoryRef("refs/tags/v1"),
            policy.OIDCBuildSignerURI(workflow),
            policy.GitHubWorkflowRepository("acme/models"),
            policy.Identity(identity=workflow, issuer=GITHUB_ISSUER),
        ]
    )
    _verify(standin, bundle, passing)
    with pytest.raises(SigstoreError, match="does not match"):
        _verify(
            standin,
            bundle,
            policy.OIDCSourceRepositoryURI("https://github.com/acme/other"),
        )


def test_another_trust_root_rejects_the_bundle(bundle: Bundle, tmp_path: Path) -> None:
    with (
        SigstoreStandin(tmp_path) as other,
        pytest.raises(SigstoreError, match="certificate chain"),
    ):
        _verify(other, bundle, EMAIL_POLICY)


def test_fulcio_refuses_a_token_it_did_not_sign(standin: SigstoreStandin, tmp_path: Path) -> None:
    foreign = SigstoreStandin(tmp_path).token()  # never started: only its token signer is used
    ctx = SigningContext.from_trust_config(standin.trust_config())
    with pytest.raises(FulcioClientError) as caught, ctx.signer(IdentityToken(foreign)):
        pass
    cause = caught.value.__cause__
    assert isinstance(cause, requests.HTTPError) and cause.response is not None
    assert cause.response.status_code == 401


# Two entries in the log, so the second one's inclusion proof has a hash to alter.
TAMPERS: dict[str, tuple[Callable[[str], str], str]] = {
    "dsse-signature": (tamper.dsse_signature, "DSSE: invalid signature"),
    "dsse-payload": (lambda b: tamper.dsse_payload(b, STATEMENT.replace(b"m", b"n")), "DSSE"),
    "checkpoint": (tamper.checkpoint_signature, "checkpoint: invalid signature"),
    "inclusion-proof": (tamper.inclusion_proof, "inclusion proof contains invalid root hash"),
    "signed-entry-timestamp": (tamper.integrated_time, "SET: invalid inclusion promise"),
}


@pytest.mark.parametrize("name", TAMPERS)
def test_tampered_bundle_fails(standin: SigstoreStandin, bundle: Bundle, name: str) -> None:
    change, reason = TAMPERS[name]
    second = standin.sign_dsse(STATEMENT)
    for original in (bundle, second):
        tampered = Bundle.from_json(change(original.to_json()))
        with pytest.raises(SigstoreError, match=reason):
            _verify(standin, tampered, EMAIL_POLICY)


def test_recorded_bundle_verifies_after_shutdown(tmp_path: Path) -> None:
    with SigstoreStandin(tmp_path) as standin:
        recorded = standin.sign_dsse(STATEMENT).to_json()
    (tmp_path / "model.sig").write_text(recorded)
    reread = Bundle.from_json((tmp_path / "model.sig").read_text())
    _verify(standin, reread, EMAIL_POLICY)
    # Timestamps are optional for Rekor v1: the SET alone dates the signature.
    _verify(standin, Bundle.from_json(tamper.drop_timestamps(recorded)), EMAIL_POLICY)


def test_rekor_v2_needs_and_uses_the_timestamp(tmp_path: Path) -> None:
    with SigstoreStandin(tmp_path, rekor_version=2) as standin:
        bundle = standin.sign_dsse(STATEMENT)
    assert bundle.log_entry._inner.kind_version.version == "0.0.2"
    _verify(standin, Bundle.from_json(bundle.to_json()), EMAIL_POLICY)
    with pytest.raises(SigstoreError, match="inclusion promise or signed timestamp"):
        Bundle.from_json(tamper.drop_timestamps(bundle.to_json()))


def test_bad_timestamp_is_only_fatal_when_it_is_the_sole_time_source(tmp_path: Path) -> None:
    # sigstore drops an RFC 3161 token that fails to verify and carries on with the rest:
    # with Rekor v1 the SET still dates the entry, with Rekor v2 nothing else does.
    with SigstoreStandin(tmp_path / "v1") as v1:
        bad_v1 = Bundle.from_json(tamper.timestamp_signature(v1.sign_dsse(STATEMENT).to_json()))
    _verify(v1, bad_v1, EMAIL_POLICY)
    sources = {t.source.name for t in v1.verifier()._establish_time(bad_v1)}
    assert sources == {"TRANSPARENCY_SERVICE"}

    with SigstoreStandin(tmp_path / "v2", rekor_version=2) as v2:
        bad_v2 = Bundle.from_json(tamper.timestamp_signature(v2.sign_dsse(STATEMENT).to_json()))
    with pytest.raises(SigstoreError, match="not enough sources of verified time"):
        _verify(v2, bad_v2, EMAIL_POLICY)


def test_rekor_v1_without_tsa(tmp_path: Path) -> None:
    with SigstoreStandin(tmp_path, timestamps=False) as standin:
        bundle = standin.sign_dsse(STATEMENT)
    assert bundle.verification_material.timestamp_verification_data is None
    _verify(standin, bundle, EMAIL_POLICY)


def test_servers_stop_at_exit(tmp_path: Path) -> None:
    with SigstoreStandin(tmp_path) as standin:
        url = standin.url
    assert not any(t.name == f"sigstore-standin {url}" for t in threading.enumerate())
    with pytest.raises(requests.ConnectionError):
        requests.post(url + "/api/v1/timestamp", data=b"", timeout=2)


def test_watchdog_stops_a_forgotten_standin(tmp_path: Path) -> None:
    standin = SigstoreStandin(tmp_path, lifetime_s=0.05).__enter__()
    assert standin._watchdog is not None
    standin._watchdog.join(timeout=5)
    with pytest.raises(requests.ConnectionError):
        requests.post(standin.url + "/api/v1/timestamp", data=b"", timeout=2)
    standin.close()


def test_services_refuse_malformed_requests(standin: SigstoreStandin) -> None:
    def post(path: str, body: bytes, token: str | None = None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(standin.url + path, data=body, headers=headers, timeout=5).status_code

    assert post("/api/v1/log/entries", b"{}") == 400
    assert post("/api/v2/log/entries", b"{}") == 400
    assert post("/api/v2/signingCert", b"{}") == 401
    assert post("/api/v2/signingCert", b"{}", standin.token()) == 400
    assert post("/api/v2/signingCert", b"{}", "not-a-jwt") == 401
    assert post("/api/v1/timestamp", b"\x30\x00") == 400
    assert post("/nowhere", b"") == 404


def _root_from_proof(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 inclusion-proof verification, written independently of tlog.py."""
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise AssertionError("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0, "proof too short"
    return r


def test_merkle_inclusion_proofs_for_every_shape() -> None:
    tree = MerkleTree()
    for n in range(1, 18):
        tree.append(b"entry %d" % n)
        for index in range(n):
            proof = tree.inclusion_proof(index, n)
            leaf = leaf_hash(b"entry %d" % (index + 1))
            assert _root_from_proof(leaf, index, n, proof) == tree.root(n)

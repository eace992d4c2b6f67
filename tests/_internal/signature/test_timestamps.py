"""RFC 3161 timestamps for key and certificate signatures, against the local stand-in TSA."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from modelsign._internal.signature.signers import KeySigner
from modelsign._internal.signature.timestamps import TimestampAuthority
from modelsign._internal.signature.verifiers import CertificateVerifier, KeyVerifier
from modelsign.errors import SignatureError, VerificationError
from modelsign.policy import Policy
from modelsign.sign import sign
from modelsign.verify import verify
from tests.helpers.pki import build_pki, write_pem, write_pki
from tests.helpers.signing import KeyPair, shared_key
from tests.sigstore_standin import SigstoreStandin
from tests.sigstore_standin.ca import make_root, make_tsa_leaf, validity
from tests.sigstore_standin.server import TSA_PATH

KEY = shared_key()


@pytest.fixture(scope="module")
def tsa_chain(standin: SigstoreStandin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tsa") / "tsa-chain.pem"
    return write_pem(path, standin.tsa_signer.cert, standin.tsa_root.cert)


def _url(standin: SigstoreStandin) -> str:
    return standin.url + TSA_PATH


def _freshness_policy(path: Path, pub: Path, tsa: str) -> Policy:
    """A policy trusting the key in ``pub`` and timestamps by ``tsa`` (a signers field), for
    signatures no older than a day."""
    path.write_text(
        f"version: 1\nsigners: {{keys: [{{file: {pub}}}], {tsa}}}\nfreshness: {{max_age: 1d}}\n"
    )
    return Policy.load(path)


def _material(sig: Path) -> dict[str, object]:
    return json.loads(sig.read_bytes())["verificationMaterial"]  # type: ignore[no-any-return]


def test_a_timestamp_dates_a_key_signature(
    standin: SigstoreStandin, tsa_chain: Path, tiny_model: Path
) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    sign(tiny_model, signer=KeySigner(KEY, tsa_url=_url(standin)), env={})
    material = _material(tiny_model / "model.sig")
    assert len(material["timestampVerificationData"]["rfc3161Timestamps"]) == 1  # type: ignore[index]
    tsa = [TimestampAuthority.from_file(str(tsa_chain))]
    r = verify(tiny_model, verifier=KeyVerifier(KEY.public_key(), tsa=tsa))
    assert r.signer is not None and r.signer.signed_at is not None
    assert before <= datetime.fromisoformat(r.signer.signed_at) <= datetime.now(timezone.utc)
    # Without a trusted TSA the signature still verifies; it just has no time.
    r = verify(tiny_model, verifier=KeyVerifier(KEY.public_key()))
    assert r.verdict == "verified" and r.signer is not None and r.signer.signed_at is None


def _tampered(sig: Path, edit: object) -> None:
    bundle = json.loads(sig.read_bytes())
    stamps = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    stamps[0]["signedTimestamp"] = edit(stamps[0]["signedTimestamp"])  # type: ignore[operator]
    sig.write_text(json.dumps(bundle))


def test_a_forged_or_moved_timestamp_fails(
    standin: SigstoreStandin, tsa_chain: Path, tiny_models: tuple[Path, Path], tmp_path: Path
) -> None:
    model, other = tiny_models
    signer = KeySigner(KEY, tsa_url=_url(standin))
    sign(model, signer=signer, env={})
    sign(other, signer=signer, env={})
    verifier = KeyVerifier(KEY.public_key(), tsa=[TimestampAuthority.from_file(str(tsa_chain))])
    # A token taken from another signature dates that one, not this one.
    theirs = _material(other / "model.sig")["timestampVerificationData"]
    _tampered(model / "model.sig", lambda _: theirs["rfc3161Timestamps"][0]["signedTimestamp"])  # type: ignore[index]
    with pytest.raises(VerificationError) as e:
        verify(model, verifier=verifier)
    assert e.value.code == "TIMESTAMP_UNTRUSTED"
    # A token that is not one at all.
    _tampered(other / "model.sig", lambda t: base64.b64encode(b"not a timestamp").decode())
    with pytest.raises(VerificationError) as e:
        verify(other, verifier=verifier)
    assert e.value.code == "TIMESTAMP_INVALID"


def test_a_timestamp_from_an_untrusted_tsa_fails(
    standin: SigstoreStandin, tiny_model: Path, tmp_path: Path
) -> None:
    sign(tiny_model, signer=KeySigner(KEY, tsa_url=_url(standin)), env={})
    start, end = validity(datetime.now(timezone.utc))
    root = make_root("another-tsa-root", start, end)
    chain = write_pem(tmp_path / "other.pem", make_tsa_leaf(root, "another-tsa").cert, root.cert)
    verifier = KeyVerifier(KEY.public_key(), tsa=[TimestampAuthority.from_file(str(chain))])
    with pytest.raises(VerificationError) as e:
        verify(tiny_model, verifier=verifier)
    assert e.value.code == "TIMESTAMP_UNTRUSTED"


def test_a_certificate_signature_is_dated_too(
    standin: SigstoreStandin, tsa_chain: Path, tiny_model: Path, tmp_path: Path
) -> None:
    files = write_pki(build_pki(), tmp_path / "pki")
    signer = KeySigner.from_files(
        str(files.leaf_key), cert=str(files.leaf), chain=[str(files.chain)], tsa_url=_url(standin)
    )
    sign(tiny_model, signer=signer, env={})
    verifier = CertificateVerifier.from_files([str(files.root)])
    verifier.tsa = (TimestampAuthority.from_file(str(tsa_chain)),)
    r = verify(tiny_model, verifier=verifier)
    assert r.signer is not None and r.signer.signed_at is not None


def test_an_unreachable_tsa_fails_signing_and_leaves_nothing(tiny_model: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(SignatureError) as e:
        sign(tiny_model, signer=KeySigner(KEY, tsa_url=f"http://127.0.0.1:{port}/tsa"), env={})
    assert e.value.code == "TSA_UNREACHABLE" and not (tiny_model / "model.sig").exists()


def test_freshness_needs_a_trusted_time(
    standin: SigstoreStandin, tsa_chain: Path, tiny_model: Path, tmp_path: Path, keypair: KeyPair
) -> None:
    policy = _freshness_policy(
        tmp_path / "policy.yaml", keypair.pub_path, f"timestamp_authorities: [{tsa_chain}]"
    )
    sign(tiny_model, signer=KeySigner(KEY), env={})
    with pytest.raises(VerificationError) as e:
        verify(tiny_model, policy=policy)
    assert "freshness" in str(e.value)
    sign(tiny_model, signer=KeySigner(KEY, tsa_url=_url(standin)), env={}, force=True)
    r = verify(tiny_model, policy=policy)
    assert (
        r.policy is not None and {x.rule: x.status for x in r.policy.rules}["freshness"] == "pass"
    )
    later = datetime.now(timezone.utc) + timedelta(days=2)
    with pytest.raises(VerificationError):
        verify(tiny_model, policy=policy, now=later)


@pytest.mark.slow
def test_through_the_cli(
    standin: SigstoreStandin, tsa_chain: Path, tiny_model: Path, keypair: KeyPair
) -> None:
    key, pub = str(keypair.key_path), str(keypair.pub_path)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modelsign", *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    done = cli("sign", str(tiny_model), "--key", key, "--tsa-url", _url(standin))
    assert done.returncode == 0, done.stderr
    done = cli(
        "verify", str(tiny_model), "--key", pub, "--tsa-cert-chain", str(tsa_chain), "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["signer"]["signed_at"] is not None
    done = cli(
        "verify",
        str(tiny_model),
        "--identity",
        "x",
        "--issuer",
        "y",
        "--tsa-cert-chain",
        str(tsa_chain),
    )
    assert done.returncode == 2 and "USAGE" in done.stderr
    done = cli("sign", str(tiny_model), "--sigstore", "--tsa-url", _url(standin), "--force")
    assert done.returncode == 2 and "USAGE" in done.stderr


def test_a_policy_takes_its_tsa_from_the_trusted_root(
    standin: SigstoreStandin, tiny_model: Path, tmp_path: Path, keypair: KeyPair
) -> None:
    """The trust configuration (a Sigstore trusted root) lists the timestamp authorities."""
    policy = _freshness_policy(
        tmp_path / "policy.yaml", keypair.pub_path, f"trusted_root: {standin.trusted_root_path}"
    )
    sign(tiny_model, signer=KeySigner(KEY, tsa_url=_url(standin)), env={})
    r = verify(tiny_model, policy=policy)
    assert r.signer is not None and r.signer.signed_at is not None

"""The Sigstore client conformance protocol's ``verify-bundle`` command.

    python tools/sigstore_conformance.py verify-bundle --bundle B \\
        (--certificate-identity I --certificate-oidc-issuer U | --key K) \\
        [--trusted-root T] ARTIFACT_OR_sha256:DIGEST

Exit 0 when the bundle verifies, 1 (with a one-line reason on stderr) when it
does not, 2 on a usage error.

Identity mode is sigstore-python's ``Verifier`` plus the subject check that
``verify_dsse`` leaves to its caller. Key mode ("managed key" bundles, which
sigstore-python cannot verify) is done here: the signature with the given key,
the log entry's body against the bundle, and the entry's inclusion proof,
checkpoint, signed entry timestamp and time against the trusted root.

sigstore-python's private helpers are used only in the section marked below.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import logging
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sigstore import dsse
from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
from sigstore._internal.trust import Keyring, RekorKeyring  # private: see the marked section
from sigstore.errors import VerificationError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TimestampVerificationData, TransparencyLogEntry, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity, VerificationPolicy
from sigstore_models.bundle.v1 import Bundle as BundleModel
from sigstore_models.common.v1 import HashAlgorithm
from sigstore_models.intoto import Envelope as EnvelopeModel
from sigstore_models.rekor.v1 import TransparencyLogEntry as EntryModel
from sigstore_models.trustroot.v1 import TransparencyLogInstance

from modelsign._internal.signature.bundle import PAYLOAD_TYPE, pae
from modelsign._internal.signature.keys import PublicKey, load_public_key, verify_bytes
from modelsign._internal.signature.sigstore import shipped_trusted_root
from modelsign.errors import ModelsignError

_DIGEST_ARG = re.compile(r"sha256:([0-9a-fA-F]{64})")
_HASHES = {"SHA2_256": hashlib.sha256, "SHA2_384": hashlib.sha384, "SHA2_512": hashlib.sha512}
_INTOTO = ("intoto", "0.0.2")
#: Integrated times this far ahead of our clock are rejected (clock skew allowance).
_FUTURE_SKEW = timedelta(seconds=60)


class Failure(Exception):
    """Verification failed; the message is the one-line reason."""


# -- artifact -----------------------------------------------------------------


def artifact_digest(arg: str) -> bytes:
    """SHA-256 of the artifact: ``sha256:HEX`` as given, else of the file's bytes."""
    m = _DIGEST_ARG.fullmatch(arg)
    if m:
        return bytes.fromhex(m.group(1))
    h = hashlib.sha256()
    try:
        with open(arg, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError as exc:
        raise Failure(f"cannot read the artifact {arg}: {exc.strerror}") from exc
    return h.digest()


def check_subject(payload_type: str, payload: bytes, digest: bytes) -> None:
    """The in-toto statement must name the artifact's SHA-256 among its subjects."""
    if payload_type != PAYLOAD_TYPE:
        raise Failure(f"DSSE payload type is {payload_type!r}, not {PAYLOAD_TYPE}")
    statement = _json_object(payload, "the DSSE payload")
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        raise Failure("the in-toto statement has no subject list")
    for subject in subjects:
        sub_digest = subject.get("digest") if isinstance(subject, dict) else None
        if isinstance(sub_digest, dict) and sub_digest.get("sha256") == digest.hex():
            return
    raise Failure(f"artifact sha256:{digest.hex()} is not a subject of the statement")


# -- identity mode ----------------------------------------------------------------


def verify_identity(
    bundle_json: bytes, trusted_root: TrustedRoot, identity: str, issuer: str, digest: bytes
) -> None:
    """Keyless verification: certificate, identity, log entry and signature."""
    bundle = Bundle.from_json(bundle_json)
    verifier = _Verifier(trusted_root=trusted_root)
    want = Identity(identity=identity, issuer=issuer)
    if _is_dsse(bundle):
        payload_type, payload = verifier.verify_dsse(bundle, want)
        check_subject(payload_type, payload, digest)
    else:
        verifier.verify_artifact(
            Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest), bundle, want
        )


# -- key mode ---------------------------------------------------------------------


def verify_key(
    bundle_json: bytes, trusted_root: TrustedRoot, key: PublicKey, digest: bytes
) -> None:
    """Managed-key verification: signature, log entry body, and log proofs."""
    bundle = BundleModel.from_json(bundle_json)
    material = bundle.verification_material
    if material.public_key is None:
        raise Failure("the bundle carries a certificate, not a managed-key signature")
    if len(material.tlog_entries) != 1:
        raise Failure(f"expected exactly one log entry, found {len(material.tlog_entries)}")
    entry = material.tlog_entries[0]

    # The signature: ECDSA over the artifact's digest, or over the DSSE PAE.
    signed_pae: bytes | None = None
    if bundle.message_signature is not None:
        sig = bundle.message_signature.signature
        md = bundle.message_signature.message_digest
        if md is not None and (md.algorithm != HashAlgorithm.SHA2_256 or md.digest != digest):
            raise Failure("the bundle's message digest does not match the artifact")
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise Failure("message signatures are supported for EC keys only")
        try:
            key.verify(sig, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        except InvalidSignature as exc:
            raise Failure("the signature does not verify with the given key") from exc
    else:
        envelope = cast(EnvelopeModel, bundle.dsse_envelope)  # the model requires one of two
        if len(envelope.signatures) != 1:
            raise Failure("the DSSE envelope must carry exactly one signature")
        sig = envelope.signatures[0].sig
        signed_pae = pae(envelope.payload, envelope.payload_type)
        if not verify_bytes(key, sig, signed_pae):
            raise Failure("the DSSE signature does not verify with the given key")
        check_subject(envelope.payload_type, envelope.payload, digest)

    _check_key_entry_body(entry, bundle, key, sig, digest, signed_pae)
    for t in _verify_log_entry(entry, bundle, trusted_root, sig):
        if t > datetime.now(timezone.utc) + _FUTURE_SKEW:
            raise Failure(f"the log entry's time {t.isoformat()} is in the future")


def _check_key_entry_body(
    entry: EntryModel,
    bundle: BundleModel,
    key: PublicKey,
    sig: bytes,
    digest: bytes,
    signed_pae: bytes | None,
) -> None:
    """The logged body must record this signature, this key and this artifact / payload."""
    kind = (entry.kind_version.kind, entry.kind_version.version)
    body = _json_object(entry.canonicalized_body, "the log entry body")
    if (body.get("kind"), body.get("apiVersion")) != kind:
        raise Failure(f"the log entry body is not the {kind[0]}/{kind[1]} its kindVersion says")
    spec = _field(body, "spec")
    key_der = _spki(key)
    if kind == ("hashedrekord", "0.0.1") and signed_pae is None:
        data_hash = _field(_field(spec, "data"), "hash")
        if data_hash.get("algorithm") != "sha256" or data_hash.get("value") != digest.hex():
            raise Failure("the log entry records a different artifact digest")
        sig_obj = _field(spec, "signature")
        logged_key = _pem_key_der(_b64(_field(sig_obj, "publicKey").get("content")))
    elif kind == ("hashedrekord", "0.0.2"):
        rekord = _field(spec, "hashedRekordV002")
        data = _field(rekord, "data")
        algorithm = data.get("algorithm")
        if signed_pae is None:
            expected = digest if algorithm == "SHA2_256" else None
        else:
            expected = _HASHES[algorithm](signed_pae).digest() if algorithm in _HASHES else None
        if expected is None or _b64(data.get("digest")) != expected:
            raise Failure("the log entry records a different digest")
        sig_obj = _field(rekord, "signature")
        logged_key = _b64(_field(_field(sig_obj, "verifier"), "publicKey").get("rawBytes"))
    elif kind == ("dsse", "0.0.1") and signed_pae is not None:
        envelope = cast(EnvelopeModel, bundle.dsse_envelope)
        payload_hash = _field(spec, "payloadHash")
        if (
            payload_hash.get("algorithm") != "sha256"
            or payload_hash.get("value") != hashlib.sha256(envelope.payload).hexdigest()
        ):
            raise Failure("the log entry records a different payload")
        logged = spec.get("signatures")
        if not isinstance(logged, list) or len(logged) != 1 or not isinstance(logged[0], dict):
            raise Failure("the log entry must record exactly one signature")
        sig_obj = {"content": logged[0].get("signature")}
        logged_key = _pem_key_der(_b64(logged[0].get("verifier")))
    else:
        what = "DSSE envelope" if signed_pae is not None else "message signature"
        raise Failure(f"unsupported log entry kind {kind[0]}/{kind[1]} for a {what}")
    if _b64(sig_obj.get("content")) != sig:
        raise Failure("the log entry records a different signature")
    if logged_key != key_der:
        raise Failure("the log entry records a different public key")


def _check_intoto_body(body_json: bytes, envelope: EnvelopeModel, cert: x509.Certificate) -> None:
    """A Rekor ``intoto/0.0.2`` body must record this payload, signature and certificate.

    Like sigstore-python's ``dsse/0.0.1`` check, the envelope hash is not compared:
    it covers uncanonicalized JSON.
    """
    body = _json_object(body_json, "the log entry body")
    if (body.get("kind"), body.get("apiVersion")) != _INTOTO:
        raise Failure("the log entry body is not the intoto/0.0.2 its kindVersion says")
    content = _field(_field(body, "spec"), "content")
    payload_hash = _field(content, "payloadHash")
    if (
        payload_hash.get("algorithm") != "sha256"
        or payload_hash.get("value") != hashlib.sha256(envelope.payload).hexdigest()
    ):
        raise Failure("the log entry records a different payload")
    logged = _field(content, "envelope")
    if logged.get("payloadType") != envelope.payload_type:
        raise Failure("the log entry records a different payload type")
    # The body holds the envelope's base64 fields base64-encoded once more.
    if "payload" in logged and _b64b64(logged["payload"]) != envelope.payload:
        raise Failure("the log entry records a different payload")
    signatures = logged.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != len(envelope.signatures):
        raise Failure("the log entry records a different number of signatures")
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    for recorded, signature in zip(signatures, envelope.signatures, strict=True):
        if not isinstance(recorded, dict):
            raise Failure("the log entry's signature is not an object")
        if _b64b64(recorded.get("sig")) != signature.sig:
            raise Failure("the log entry records a different signature")
        try:
            logged_cert = x509.load_pem_x509_certificate(_b64(recorded.get("publicKey")))
        except ValueError as exc:
            raise Failure("the log entry's verifier is not a PEM certificate") from exc
        if logged_cert.public_bytes(serialization.Encoding.DER) != cert_der:
            raise Failure("the log entry records a different signing certificate")


# -- sigstore-python private helpers (4.5.1): used only in this section -----------------


class _Verifier(Verifier):
    """sigstore-python's ``Verifier``, extended to Rekor v1 ``intoto/0.0.2`` DSSE entries.

    sigstore-python rejects that (older, still valid) entry kind. Steps (0)-(7)
    of its verification are reused as they are; what differs is that the
    entry's SET-backed integrated time counts as a verified time, and the body
    consistency check (8), done by ``_check_intoto_body``.
    """

    def _establish_time(self, bundle: Bundle) -> list[TimestampVerificationResult]:
        entry = bundle.log_entry._inner
        if (entry.kind_version.kind, entry.kind_version.version) != _INTOTO:
            return super()._establish_time(bundle)
        times: list[TimestampVerificationResult] = []
        if bundle.verification_material.timestamp_verification_data:
            if not self._trusted_root.get_timestamp_authorities():
                raise VerificationError("signed timestamps, but no TSA in the trusted root")
            times.extend(self._verify_timestamp_authority(bundle))
        if entry.integrated_time and entry.inclusion_promise:  # the SET is checked in step (4)
            when = datetime.fromtimestamp(entry.integrated_time, tz=timezone.utc)
            times.append(TimestampVerificationResult(TimestampSource.TRANSPARENCY_SERVICE, when))
        return times

    def verify_dsse(self, bundle: Bundle, policy: VerificationPolicy) -> tuple[str, bytes]:
        """sigstore's ``verify_dsse``; for an ``intoto/0.0.2`` entry, its steps and ours."""
        kind = bundle.log_entry._inner.kind_version
        if (kind.kind, kind.version) != _INTOTO:
            return super().verify_dsse(bundle, policy)
        self._verify_common_signing_cert(bundle, policy)
        envelope = cast(dsse.Envelope, bundle._dsse_envelope)
        dsse._verify(
            cast(ec.EllipticCurvePublicKey, bundle.signing_certificate.public_key()), envelope
        )
        body = bundle.log_entry._inner.canonicalized_body
        _check_intoto_body(body, envelope._inner, bundle.signing_certificate)
        return envelope._inner.payload_type, envelope._inner.payload


def _is_dsse(bundle: Bundle) -> bool:
    return bundle._inner.dsse_envelope is not None


def _verify_log_entry(
    entry: EntryModel, bundle: BundleModel, trusted_root: TrustedRoot, signature: bytes
) -> list[datetime]:
    """Inclusion proof, checkpoint and SET against the entry's log; return the verified times.

    The log is picked by its log ID (no fallback to the other logs' keys), and
    its key's validity period (a closed interval) must hold each verified time.
    """
    log = _find_log(trusted_root, entry.log_id.key_id)
    wrapped = TransparencyLogEntry(entry)  # requires an inclusion proof with a checkpoint
    try:
        wrapped._verify(RekorKeyring(Keyring([log.public_key])))  # Merkle path, checkpoint, SET
    except VerificationError as exc:
        raise Failure(f"invalid log entry: {exc}") from exc

    times: list[datetime] = []
    if entry.inclusion_promise is not None and entry.integrated_time:
        times.append(datetime.fromtimestamp(entry.integrated_time, timezone.utc))
    tvd = bundle.verification_material.timestamp_verification_data
    if tvd is not None and tvd.rfc3161_timestamps:
        if not trusted_root.get_timestamp_authorities():
            raise Failure("the bundle has signed timestamps but the trusted root has no TSA")
        verifier = Verifier(trusted_root=trusted_root)
        for response in TimestampVerificationData(tvd).rfc3161_timestamps:
            result = verifier._verify_signed_timestamp(response, signature)
            if result is not None:
                times.append(result.time)
    if not times:
        raise Failure("no verified time: neither a signed entry timestamp nor a trusted timestamp")

    valid = log.public_key.valid_for
    if valid is None:
        raise Failure("the log's key in the trusted root has no validity period")
    for t in times:
        if t < valid.start or (valid.end is not None and t > valid.end):
            raise Failure(f"the log's key was not valid at {t.isoformat()}")
    return times


def _find_log(trusted_root: TrustedRoot, log_id: bytes) -> TransparencyLogInstance:
    for log in trusted_root._inner.tlogs:
        if log.log_id.key_id == log_id:
            return log
    raise Failure(f"the log entry is from a log not in the trusted root ({log_id.hex()})")


def _close_tsa_validity(trusted_root: TrustedRoot) -> None:
    """Make the TSAs' validity periods closed intervals, as the trusted-root spec says.

    sigstore-python treats a TSA's ``validFor.end`` as exclusive
    (``gen_time < end``); timestamps carry at most microseconds, so moving the
    end one microsecond later gives exactly ``gen_time <= end``.
    """
    for tsa in trusted_root._inner.timestamp_authorities:
        if tsa.valid_for.end is not None:
            tsa.valid_for.end += timedelta(microseconds=1)


# -- small parsing helpers ----------------------------------------------------


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise Failure(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise Failure(f"{what} is not a JSON object")
    return value


def _field(obj: dict[str, Any], name: str) -> dict[str, Any]:
    value = obj.get(name)
    if not isinstance(value, dict):
        raise Failure(f"log entry body: {name!r} is missing or not an object")
    return value


def _b64(value: object) -> bytes:
    if not isinstance(value, str):
        raise Failure("log entry body: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Failure("log entry body: invalid base64") from exc


def _b64b64(value: object) -> bytes | None:
    """Decode a twice-base64-encoded field; None if it is not one."""
    try:
        return base64.b64decode(_b64(value), validate=True)
    except (Failure, binascii.Error, ValueError):
        return None


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem_key_der(pem: bytes) -> bytes:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise Failure("log entry body: the recorded key is not a PEM public key") from exc
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- CLI ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python tools/sigstore_conformance.py",
        description="Sigstore client conformance protocol (verification).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    vb = sub.add_parser("verify-bundle", help="verify an artifact against a Sigstore bundle")
    vb.add_argument("--bundle", required=True, help="the Sigstore bundle (JSON)")
    vb.add_argument("--certificate-identity", help="expected signing identity (SAN)")
    vb.add_argument("--certificate-oidc-issuer", help="expected OIDC issuer")
    vb.add_argument("--key", help="PEM public key of a managed-key signature")
    vb.add_argument("--trusted-root", help="trusted root JSON (default: production, offline)")
    vb.add_argument("artifact", help="artifact file, or sha256:HEX")
    return parser


def _run(args: argparse.Namespace) -> None:
    digest = artifact_digest(args.artifact)
    try:
        with open(args.bundle, "rb") as fh:
            bundle_json = fh.read()
    except OSError as exc:
        raise Failure(f"cannot read the bundle {args.bundle}: {exc.strerror}") from exc
    root = TrustedRoot.from_file(args.trusted_root) if args.trusted_root else shipped_trusted_root()
    assert isinstance(root, TrustedRoot)
    _close_tsa_validity(root)
    if args.key is not None:
        verify_key(bundle_json, root, load_public_key(args.key), digest)
    else:
        verify_identity(
            bundle_json, root, args.certificate_identity, args.certificate_oidc_issuer, digest
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one conformance command; return the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    identity, issuer = args.certificate_identity, args.certificate_oidc_issuer
    if (args.key is None) == (identity is None) or (identity is None) != (issuer is None):
        print(
            "usage error: give --key K, or both --certificate-identity and "
            "--certificate-oidc-issuer",
            file=sys.stderr,
        )
        return 2
    # sigstore logs warnings (e.g. a root CA in the bundle); the verdict is ours to print.
    sigstore_log = logging.getLogger("sigstore")
    if not sigstore_log.handlers:
        sigstore_log.addHandler(logging.NullHandler())
    try:
        _run(args)
    except ModelsignError as exc:  # an unreadable or unsupported --key
        where = f"{exc.path}: " if exc.path else ""
        print(f"FAIL: {where}{_one_line(exc.message)}", file=sys.stderr)
        return 1
    except Exception as exc:  # sigstore fails with many exception types
        print(f"FAIL: {_one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return 1
    print("OK", file=sys.stderr)
    return 0


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())

"""X.509 certificates: loading, code-signing chain validation, signer identity.

``verify_chain`` lets cryptography's X.509 verifier (``x509.verification``)
build and judge the path, with extension policies adapted to code signing: the
default end-entity policy is for TLS (it wants a SAN and refuses a CA:TRUE
leaf, which the OMS conformance vectors' leaf is). The found path is then
re-checked by ``_check_path``, which states modelsign's own rules and gives
each failure a precise code; when cryptography refuses, the same checks run on
the paths a small signature-linked search finds, to say *why*.

Rules (codes of ``VerificationError``):

- ``CERT_UNTRUSTED``: no path leaf → … → a certificate given in ``roots``
  (compared by DER; a root-named certificate from the bundle is not trusted),
  each link matching names and verifying the signature; at most
  ``MAX_INTERMEDIATES`` intermediates, no certificate twice.
- ``CERT_EXPIRED`` / ``CERT_NOT_YET_VALID``: any certificate of the path at ``at``.
- ``CERT_BAD_CA``: every issuer has BasicConstraints CA:TRUE, keyCertSign if it
  has KeyUsage, codeSigning or anyExtendedKeyUsage if it has an EKU (EKU
  chaining, as browsers and Windows do), and its pathLenConstraint holds.
- ``CERT_BAD_USAGE``: the leaf has EKU codeSigning and, if it has KeyUsage,
  digitalSignature. A CA:TRUE leaf is accepted (see above).
- ``CERT_UNSUPPORTED_CRITICAL``: a critical extension other than BasicConstraints,
  KeyUsage, ExtendedKeyUsage or SubjectAlternativeName. NameConstraints and the
  certificate-policy extensions are refused rather than half-honoured.
- ``CERT_MALFORMED``: a certificate of the signature is not DER, or has a
  malformed extension (a certificate file given is ``CERT_INVALID``, an
  :class:`InputError`).
- ``CERT_REJECTED``: modelsign's rules hold but cryptography's policy refuses
  the path, e.g. an RSA key under 2048 bits, SHA-1, or an Ed25519 CA key
  (outside the Web PKI algorithm set it enforces).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from ...codes import Code
from ...errors import InputError, VerificationError
from .._atomic import open_regular
from .keys import PublicKey, key_type

MAX_INTERMEDIATES = 8

_Ext = TypeVar("_Ext", bound=x509.ExtensionType)

_SUPPORTED_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)
# An issuer's EKU, if it has one, must allow code signing (EKU chaining).
_ISSUER_EKUS = frozenset(
    {ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
)
# Bounds the diagnostic path search on hostile bundles (many same-named certificates).
_SEARCH_BUDGET = 256

_SAN_PREFIX = {
    x509.RFC822Name: "email",
    x509.DNSName: "dns",
    x509.UniformResourceIdentifier: "uri",
    x509.IPAddress: "ip",
    x509.DirectoryName: "dirname",
    x509.RegisteredID: "rid",
}


def load_certificates(path: str) -> list[x509.Certificate]:
    """All PEM certificates in ``path`` (other PEM blocks and text are skipped)."""
    try:
        with open_regular(path) as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        raise InputError("certificate file not found", code=Code.CERT_NOT_FOUND, path=path) from exc
    except OSError as exc:
        raise InputError(
            f"cannot read the certificate file: {exc.strerror}",
            code=Code.CERT_UNREADABLE,
            path=path,
        ) from exc
    try:
        certificates = x509.load_pem_x509_certificates(data)
        for cert in certificates:
            _ = cert.extensions  # parsed lazily: surface a malformed extension here
    except ValueError as exc:
        raise InputError(
            f"no valid PEM certificate: {exc}", code=Code.CERT_INVALID, path=path
        ) from exc
    return certificates


def load_der_certificate(data: bytes, where: str) -> x509.Certificate:
    """A DER certificate from a signature bundle; ``where`` names it in errors."""
    try:
        cert = x509.load_der_x509_certificate(data)
        _ = cert.extensions
    except ValueError as exc:
        raise VerificationError(
            f"not a valid DER certificate: {exc}", code=Code.CERT_MALFORMED, path=where
        ) from exc
    return cert


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
) -> list[x509.Certificate]:
    """Validate ``leaf`` for code signing at time ``at``; return the path leaf … root.

    ``intermediates`` are untrusted helpers (e.g. the rest of a bundle's chain);
    only ``roots`` are trust anchors. Raises ``VerificationError`` (codes above).
    """
    if at.tzinfo is None:
        raise ValueError("verify_chain needs a timezone-aware time")
    if not roots:
        raise VerificationError("no trusted root certificates given", code=Code.CERT_UNTRUSTED)
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(roots)))
        .time(at)
        .max_chain_depth(MAX_INTERMEDIATES)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        path = list(verifier.verify(leaf, list(intermediates)).chain)
    except verification.VerificationError as exc:
        raise _explain(leaf, intermediates, roots, at, str(exc)) from exc
    anchors = {_der(r) for r in roots}
    if _der(path[-1]) not in anchors:  # cryptography guarantees this; a cheap second look
        raise VerificationError(
            f"the path ends at {_describe(path[-1])}, which is not a trusted root",
            code=Code.CERT_UNTRUSTED,
        )
    _check_path(path, at)
    return path


def leaf_public_key(cert: x509.Certificate) -> PublicKey:
    """The leaf's key if modelsign can verify with it (EC P-256/384/521 or Ed25519)."""
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise VerificationError(
            f"unsupported key in {_describe(cert)}: {exc}", code=Code.CERT_UNSUPPORTED_KEY
        ) from exc
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        try:
            key_type(key)
        except InputError as exc:
            raise VerificationError(
                f"{_describe(cert)}: {exc.message}", code=Code.CERT_UNSUPPORTED_KEY
            ) from exc
        return key
    raise VerificationError(
        f"{_describe(cert)} has a {type(key).__name__.replace('PublicKey', '')} key; "
        "signing certificates must hold an EC P-256/P-384/P-521 or Ed25519 key",
        code=Code.CERT_UNSUPPORTED_KEY,
    )


def certificate_identity(cert: x509.Certificate) -> dict[str, str]:
    """Who a certificate names, for reports: subject, issuer, serial, fingerprint, SAN.

    ``serial`` and ``fingerprint`` (SHA-256 of the DER) are lowercase hex;
    ``san`` (only when present) lists ``kind:value`` entries joined by ", ".
    """
    identity = {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "fingerprint": cert.fingerprint(hashes.SHA256()).hex(),
        "not_before": _utc(cert.not_valid_before_utc),
        "not_after": _utc(cert.not_valid_after_utc),
    }
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return identity
    values = [_san_entry(name) for name in san]
    if values:
        identity["san"] = ", ".join(values)
    return identity


def _san_entry(name: x509.GeneralName) -> str:
    if isinstance(name, x509.OtherName):
        return f"othername:{name.type_id.dotted_string}"
    prefix = _SAN_PREFIX.get(type(name), type(name).__name__)
    value = name.value
    if isinstance(value, x509.Name):
        value = value.rfc4514_string()
    elif isinstance(value, x509.ObjectIdentifier):
        value = value.dotted_string
    return f"{prefix}:{value}"


# --- cryptography's policies ------------------------------------------------------------


def _leaf_usage_validator(
    _policy: verification.Policy, cert: x509.Certificate, _ext: object
) -> None:
    _check_leaf_usage(cert)


def _ca_usage_validator(_policy: verification.Policy, cert: x509.Certificate, _ext: object) -> None:
    _check_issuer_usage(cert)


# The leaf: anything goes except what _check_leaf_usage refuses. BasicConstraints is
# accepted either way because the OMS conformance leaf asserts CA:TRUE.
_EE_POLICY = (
    verification.ExtensionPolicy.permit_all()
    .require_present(
        x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _leaf_usage_validator
    )
    .may_be_present(x509.KeyUsage, verification.Criticality.AGNOSTIC, _leaf_usage_validator)
)
# Issuers: the Web PKI CA defaults (critical CA:TRUE, path length, AKI form), except that
# KeyUsage may be absent and an EKU is judged for code signing instead of TLS.
_CA_POLICY = (
    verification.ExtensionPolicy.webpki_defaults_ca()
    .may_be_present(x509.KeyUsage, verification.Criticality.AGNOSTIC, _ca_usage_validator)
    .may_be_present(x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _ca_usage_validator)
)


# --- modelsign's rules and diagnostics ----------------------------------------------------


def _check_path(path: Sequence[x509.Certificate], at: datetime) -> None:
    """Raise the first rule ``path`` (leaf first, trust anchor last) breaks."""
    for index, cert in enumerate(path):
        role = _role(index, len(path))
        _check_critical(cert, role)
        _check_validity(cert, role, at)
        if index == 0:
            _check_leaf_usage(cert)
            continue
        limit = _check_issuer_usage(cert, role).path_length
        below = sum(1 for c in path[1:index] if c.subject != c.issuer)
        if limit is not None and below > limit:
            raise VerificationError(
                f"{_describe(cert, role)} allows {limit} intermediate CA(s) below it, "
                f"the path has {below}",
                code=Code.CERT_BAD_CA,
            )


def _check_critical(cert: x509.Certificate, role: str) -> None:
    for ext in _extensions(cert):
        if ext.critical and ext.oid not in _SUPPORTED_CRITICAL:
            raise VerificationError(
                f"{_describe(cert, role)} has a critical extension {ext.oid.dotted_string} "
                f"({type(ext.value).__name__}), which modelsign does not support",
                code=Code.CERT_UNSUPPORTED_CRITICAL,
            )


def _check_validity(cert: x509.Certificate, role: str, at: datetime) -> None:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if start <= at <= end:
        return
    state, code = (
        ("expired", "CERT_EXPIRED") if at > end else ("not yet valid", "CERT_NOT_YET_VALID")
    )
    raise VerificationError(
        f"{_describe(cert, role)} is {state} at {_utc(at)}",
        code=code,
        expected=f"valid from {_utc(start)} to {_utc(end)}",
        actual=_utc(at),
    )


def _check_leaf_usage(cert: x509.Certificate) -> None:
    key_usage = _extension(cert, x509.KeyUsage)
    if key_usage is not None and not key_usage.digital_signature:
        raise VerificationError(
            f"{_describe(cert, 'leaf')} may not make signatures: its KeyUsage lacks "
            "digitalSignature",
            code=Code.CERT_BAD_USAGE,
        )
    eku = _extension(cert, x509.ExtendedKeyUsage)
    if eku is None:
        raise VerificationError(
            f"{_describe(cert, 'leaf')} has no ExtendedKeyUsage; code signing needs codeSigning",
            code=Code.CERT_BAD_USAGE,
        )
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise VerificationError(
            f"{_describe(cert, 'leaf')} is not for code signing: its ExtendedKeyUsage lacks "
            "codeSigning",
            code=Code.CERT_BAD_USAGE,
        )


def _check_issuer_usage(cert: x509.Certificate, role: str = "issuer") -> x509.BasicConstraints:
    """Check that ``cert`` may issue code-signing certificates; return its BasicConstraints."""
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise VerificationError(
            f"{_describe(cert, role)} issued a certificate but is not a CA "
            "(BasicConstraints CA:TRUE missing)",
            code=Code.CERT_BAD_CA,
        )
    key_usage = _extension(cert, x509.KeyUsage)
    if key_usage is not None and not key_usage.key_cert_sign:
        raise VerificationError(
            f"{_describe(cert, role)} may not sign certificates: its KeyUsage lacks keyCertSign",
            code=Code.CERT_BAD_CA,
        )
    eku = _extension(cert, x509.ExtendedKeyUsage)
    if eku is not None and _ISSUER_EKUS.isdisjoint(eku):
        raise VerificationError(
            f"{_describe(cert, role)} is restricted by ExtendedKeyUsage to purposes other "
            "than code signing",
            code=Code.CERT_BAD_CA,
        )
    return constraints


def _explain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
    refusal: str,
) -> VerificationError:
    """Why cryptography refused: the first rule broken on a signature-linked path."""
    dead_ends: list[tuple[int, str]] = []
    for path in _signed_paths(leaf, intermediates, roots, dead_ends):
        try:
            _check_path(path, at)
        except VerificationError as exc:
            return exc
        return VerificationError(
            f"the certificate path {' -> '.join(repr(c.subject.rfc4514_string()) for c in path)} "
            f"is refused by cryptography's X.509 policy: {refusal}",
            code=Code.CERT_REJECTED,
        )
    # The branch that got furthest tells the most (the first one of that depth on a tie).
    reason = max(dead_ends, key=lambda d: d[0])[1] if dead_ends else "no path found"
    return VerificationError(
        f"{_describe(leaf, 'leaf')} does not chain to a trusted root: {reason}",
        code=Code.CERT_UNTRUSTED,
    )


def _signed_paths(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    dead_ends: list[tuple[int, str]],
) -> Iterator[list[x509.Certificate]]:
    """Paths leaf → a root where each link matches names and verifies its signature.

    Depth-first, anchors tried first, no certificate twice, at most
    ``MAX_INTERMEDIATES`` intermediates and ``_SEARCH_BUDGET`` signature checks.
    ``dead_ends`` collects (depth, why) for each branch that stopped.
    """
    anchors = {_der(r): r for r in roots}
    pool = list({**anchors, **{_der(c): c for c in intermediates}}.values())  # deduplicated
    budget = _SEARCH_BUDGET

    def extend(path: list[x509.Certificate]) -> Iterator[list[x509.Certificate]]:
        nonlocal budget
        child, depth = path[-1], len(path)
        if depth > 1 and _der(child) in anchors:
            yield path
            return
        if depth > MAX_INTERMEDIATES + 1:
            dead_ends.append((depth, f"more than {MAX_INTERMEDIATES} intermediate certificates"))
            return
        if depth > 1 and child.subject == child.issuer and signed_by(child, child):
            # Self-signed but not an anchor: the likeliest story is an untrusted root.
            dead_ends.append((depth + 1, f"it ends at {_describe(child)}, not a trusted root"))
        used = {_der(c) for c in path}
        named = [c for c in pool if c.subject == child.issuer and _der(c) not in used]
        if not named:
            dead_ends.append(
                (
                    depth,
                    f"the issuer {child.issuer.rfc4514_string()!r} of {_describe(child)} is "
                    "neither a trusted root nor among the intermediates supplied",
                )
            )
        for issuer in named:
            if budget <= 0:
                dead_ends.append((depth, "gave up: too many candidate certificates"))
                return
            budget -= 1
            if not signed_by(child, issuer):
                kind = "trusted root" if _der(issuer) in anchors else "certificate"
                dead_ends.append(
                    (
                        depth,
                        f"{_describe(child)} is not signed by the key of {kind} "
                        f"{issuer.subject.rfc4514_string()!r}",
                    )
                )
                continue
            yield from extend([*path, issuer])

    if _der(leaf) in anchors:
        yield [leaf]
        return
    yield from extend([leaf])


def signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` issued ``child``: names that match and a signature that verifies."""
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _extensions(cert: x509.Certificate) -> x509.Extensions:
    try:
        return cert.extensions
    except ValueError as exc:
        raise VerificationError(
            f"{_describe(cert)} has a malformed extension: {exc}", code=Code.CERT_MALFORMED
        ) from exc


def _extension(cert: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    """The value of ``cert``'s extension of type ``kind``; None when it has none."""
    try:
        return _extensions(cert).get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _role(index: int, length: int) -> str:
    if index == 0:
        return "leaf"
    return "root" if index == length - 1 else "intermediate"


def _describe(cert: x509.Certificate, role: str | None = None) -> str:
    name = cert.subject.rfc4514_string() or "(empty subject)"
    return f"{role} certificate {name!r}" if role else f"certificate {name!r}"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

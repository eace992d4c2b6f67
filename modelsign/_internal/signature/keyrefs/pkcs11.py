"""Keys held in a PKCS#11 token (an HSM, a smart card, SoftHSM), named by RFC 7512 URIs.

``open_key`` logs in and finds the private key by the URI's ``object``
(CKA_LABEL) and/or ``id`` (CKA_ID); its public half is the CKO_PUBLIC_KEY
object with the same id (the same label when it has no id), else a certificate
object with it. ``public_key`` reads that public object without logging in,
and logs in only when none is visible and a PIN is at hand. EC keys on P-256,
P-384 and P-521 only: what OMS verifiers accept. The token signs the digest
with CKM_ECDSA; its raw ``r || s`` becomes the DER signature bundles carry.

``generate_key`` makes a key pair on a token (``keygen --pkcs11``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final

import PyKCS11
from asn1crypto.core import OctetString
from asn1crypto.keys import ECDomainParameters
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ....codes import Code
from ....errors import InputError, SignatureError
from .. import certs, keys
from . import NO_SECRETS, Secrets
from .pkcs11_token import Token, find_pin, log_in, opened, pkcs11_errors
from .pkcs11_uri import Pkcs11Uri, format_id, parse

#: The curves a held key may be on: DER ECParameters (a named curve's OID), curve.
CURVES: Final[dict[str, tuple[bytes, ec.EllipticCurve]]] = {
    "ec-p256": (bytes.fromhex("06082a8648ce3d030107"), ec.SECP256R1()),
    "ec-p384": (bytes.fromhex("06052b81040022"), ec.SECP384R1()),
    "ec-p521": (bytes.fromhex("06052b81040023"), ec.SECP521R1()),
}
_BY_PARAMS: Final = dict(CURVES.values())
_MAX_CHAIN = 10  # certificates above the leaf, at most
# Where a URI's type= lets the public key be read from (no type, or private: either).
_KINDS: Final[dict[str, tuple[str, ...]]] = {"public": ("public",), "cert": ("cert",)}


class Pkcs11Key:
    """A private key in a token, open in a logged-in session until :meth:`close`."""

    def __init__(
        self,
        token: Token,
        handle: Any,
        label: str,
        key_id: bytes,
        public: ec.EllipticCurvePublicKey,
    ) -> None:
        self.token = token
        self.where = token.where
        self.handle = handle
        self.label = label
        self.key_id = key_id
        self._public = public

    def public_key(self) -> keys.PublicKey:
        return self._public

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """CKM_ECDSA over ``digest``; the token's ``r || s`` as a DER signature."""
        size = _field_size(self._public.curve)
        mechanism = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None)
        with pkcs11_errors(self.where, f"signing a {algorithm.name} digest"):
            raw = bytes(self.token.session.sign(self.handle, digest, mechanism))
        if len(raw) != 2 * size:
            raise SignatureError(
                f"the token returned a {len(raw)}-byte ECDSA signature; r || s on this curve "
                f"is {2 * size} bytes",
                code=Code.PKCS11_ERROR,
                path=self.where,
            )
        r, s = int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
        return encode_dss_signature(r, s)

    def certificates(self) -> list[x509.Certificate]:
        """The key's certificate on the token (by its id, else label) and its issuers there.

        Leaf first, then each issuer found on the token by name and signature,
        up to but not including a self-signed root: a verifier brings its own
        roots. Empty when the token has no certificate for the key.
        """
        if not self.key_id and not self.label:
            return []  # nothing to find the key's certificate by
        stored = _certificates(self.token)
        mine = [c for lbl, cid, c in stored if _same_object(self.label, self.key_id, lbl, cid)]
        if not mine:
            return []
        leaf = next((c for c in mine if _same_key(c, self._public)), None)
        if leaf is None:
            raise InputError(
                f"the certificate stored with the key ({_naming(self.label, self.key_id)}) is "
                "for another key",
                code=Code.CERT_KEY_MISMATCH,
                path=self.where,
            )
        return _chain(leaf, [c for _, _, c in stored])

    def close(self) -> None:
        self.token.close()

    def __enter__(self) -> Pkcs11Key:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_key(uri: str, *, secrets: Secrets = NO_SECRETS, env: Mapping[str, str]) -> Pkcs11Key:
    """Log in to the token ``uri`` names and open its private key for signing."""
    parsed = parse(uri)
    _require_object(parsed, allowed=("private",), doing="sign")
    token = Token.open(parsed, env)
    try:
        log_in(token, parsed, secrets, env)
        handle, label, key_id = _private_key(token, parsed)
        public = _public_half(token, parsed, label, key_id, ("public", "cert"))
        if public is None:
            raise _not_found(
                parsed,
                f"no public key or certificate object with {_naming(label, key_id)} beside the "
                f"private key on token {token.label!r}",
            )
    except BaseException:
        token.abandon()
        raise
    return Pkcs11Key(token, handle, label, key_id, public)


def public_key(uri: str, *, env: Mapping[str, str]) -> keys.PublicKey:
    """The public key ``uri`` names, from its public key or certificate object.

    Public objects are read without logging in. When none is visible, and a
    PIN is in the URI (``pin-value``, ``pin-source``) or in
    ``MODELSIGN_PKCS11_PIN``, the user logs in and the token is searched again.
    """
    parsed = parse(uri)
    _require_object(parsed, allowed=("private", "public", "cert"), doing="verify")
    kinds = _KINDS.get(parsed.type or "", ("public", "cert"))
    with opened(parsed, env) as token:
        found = _public_half(token, parsed, parsed.object, parsed.id, kinds)
        if found is not None:
            return found
        pin = find_pin(parsed, Secrets(), env, prompt=None) if token.needs_login() else None
        if pin is not None:
            token.login(pin)
            found = _public_half(token, parsed, parsed.object, parsed.id, kinds)
            if found is not None:
                return found
        hint = (
            ""
            if pin is not None or not token.needs_login()
            else "; it may be visible only after logging in: give the PIN by pin-source= in the "
            "URI or in MODELSIGN_PKCS11_PIN"
        )
        raise _not_found(
            parsed,
            f"no public key or certificate object with {parsed.describe_object()} "
            f"on token {token.label!r}{hint}",
        )


def generate_key(
    uri: str,
    curve: keys.KeyType = "ec-p256",
    *,
    secrets: Secrets = NO_SECRETS,
    env: Mapping[str, str],
) -> keys.PublicKey:
    """Make an EC key pair on the token ``uri`` names; return its public key.

    The pair gets CKA_LABEL ``object`` and CKA_ID ``id`` (16 random bytes when
    the URI has none); the private key is sensitive and never extractable.
    ``OUTPUT_EXISTS`` when an object with that label or id is already there.
    """
    parsed = parse(uri)
    _require_object(parsed, allowed=("private",), doing="generate")
    if curve not in CURVES:
        raise InputError(
            f"a key on a token is EC P-256, P-384 or P-521 ({', '.join(CURVES)}), not {curve}",
            code=Code.KEY_UNSUPPORTED,
            path=parsed.where,
        )
    with opened(parsed, env, rw=True) as token:
        log_in(token, parsed, secrets, env)
        for template in (_label_template(parsed.object), _id_template(parsed.id)):
            if template and token.find(template):
                raise InputError(
                    f"token {token.label!r} already holds an object with "
                    f"{parsed.describe_object()}; choose another object= or id=",
                    code=Code.OUTPUT_EXISTS,
                    path=parsed.where,
                )
        key_id = parsed.id if parsed.id is not None else os.urandom(16)
        with pkcs11_errors(parsed.where, f"generating an {curve} key pair"):
            public, _ = token.session.generateKeyPair(
                _pair_template(parsed.object, key_id, CURVES[curve][0], private=False),
                _pair_template(parsed.object, key_id, None, private=True),
                mecha=PyKCS11.Mechanism(PyKCS11.CKM_EC_KEY_PAIR_GEN, None),
            )
        return _public_key_object(token, public, parsed.where)


def _pair_template(
    label: str | None, key_id: bytes, params: bytes | None, *, private: bool
) -> list[tuple[int, Any]]:
    template: list[tuple[int, Any]] = [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY if private else PyKCS11.CKO_PUBLIC_KEY),
        (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC),
        (PyKCS11.CKA_TOKEN, PyKCS11.CK_TRUE),
        (PyKCS11.CKA_ID, key_id),
        *_label_template(label),
    ]
    if private:
        template += [
            (PyKCS11.CKA_PRIVATE, PyKCS11.CK_TRUE),
            (PyKCS11.CKA_SIGN, PyKCS11.CK_TRUE),
            (PyKCS11.CKA_SENSITIVE, PyKCS11.CK_TRUE),
            (PyKCS11.CKA_EXTRACTABLE, PyKCS11.CK_FALSE),
        ]
    else:
        template += [
            (PyKCS11.CKA_PRIVATE, PyKCS11.CK_FALSE),
            (PyKCS11.CKA_VERIFY, PyKCS11.CK_TRUE),
            (PyKCS11.CKA_EC_PARAMS, params),
        ]
    return template


# -- finding objects ----------------------------------------------------------------------


def _require_object(uri: Pkcs11Uri, *, allowed: Sequence[str], doing: str) -> None:
    if not uri.names_object():
        raise InputError(
            "the URI names no key: add object=LABEL (its CKA_LABEL) or id=%XX%YY (its CKA_ID)",
            code=Code.KEY_URI_INVALID,
            path=uri.where,
        )
    if uri.type is not None and uri.type not in allowed:
        raise InputError(
            f"type={uri.type} names no key to {doing} with; use "
            f"{' or '.join(f'type={t}' for t in allowed)}, or no type",
            code=Code.KEY_URI_INVALID,
            path=uri.where,
        )


def _label_template(label: str | None) -> list[tuple[int, Any]]:
    return [] if label is None else [(PyKCS11.CKA_LABEL, label)]


def _id_template(key_id: bytes | None) -> list[tuple[int, Any]]:
    return [] if key_id is None else [(PyKCS11.CKA_ID, key_id)]


def _naming(label: str | None, key_id: bytes | None) -> str:
    """How an object is named in messages: ``object='release' id=%01``."""
    parts = [f"object={label!r}"] if label or not key_id else []
    return " ".join([*parts, f"id={format_id(key_id)}"] if key_id else parts)


def _not_found(uri: Pkcs11Uri, message: str) -> InputError:
    return InputError(message, code=Code.PKCS11_OBJECT_NOT_FOUND, path=uri.where)


def _label_and_id(token: Token, handle: Any) -> tuple[str, bytes]:
    with pkcs11_errors(token.where, "reading an object's label and id"):
        label, key_id = token.session.getAttributeValue(
            handle, [PyKCS11.CKA_LABEL, PyKCS11.CKA_ID], allAsBinary=True
        )
    return bytes(label or b"").decode("utf-8", "replace"), bytes(key_id or b"")


def _private_key(token: Token, uri: Pkcs11Uri) -> tuple[Any, str, bytes]:
    """The one EC private key the URI names: its handle, label and id."""
    template = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY)]
    found = token.find(template + _label_template(uri.object) + _id_template(uri.id))
    if len(found) != 1:
        there = sorted(_naming(*_label_and_id(token, h)) for h in token.find(template))
        listed = "; ".join(there[:10]) + (" …" if len(there) > 10 else "") if there else "none"
        if not found:
            raise _not_found(
                uri,
                f"no private key with {uri.describe_object()} on token {token.label!r} "
                f"(private keys there: {listed})",
            )
        raise _not_found(
            uri,
            f"{len(found)} private keys match {uri.describe_object()} on token "
            f"{token.label!r}: name one by id= (private keys there: {listed})",
        )
    handle = found[0]
    with pkcs11_errors(token.where, "reading the private key's type"):
        (key_type,) = token.session.getAttributeValue(handle, [PyKCS11.CKA_KEY_TYPE])
        (params,) = (
            token.session.getAttributeValue(handle, [PyKCS11.CKA_EC_PARAMS], allAsBinary=True)
            if key_type == PyKCS11.CKK_EC
            else (b"",)
        )
    label, key_id = _label_and_id(token, handle)
    what = f"the private key {_naming(label, key_id)}"
    _check_type(int(key_type), bytes(params or b""), what, uri.where)
    return handle, label, key_id


def _check_type(key_type: int, params: bytes, what: str, where: str) -> None:
    if key_type != PyKCS11.CKK_EC:
        name = PyKCS11.CKK.get(key_type, f"key type 0x{key_type:x}")
        raise _unsupported(where, f"{what} is a {name} key")
    if params not in _BY_PARAMS:
        raise _unsupported(where, f"{what} is on the curve {_curve_name(params)}")


def _unsupported(where: str, message: str) -> InputError:
    return InputError(
        f"{message}: only EC keys on P-256, P-384 or P-521 sign OMS bundles",
        code=Code.KEY_UNSUPPORTED,
        path=where,
    )


def _curve_name(params: bytes) -> str:
    """A curve's name (or OID) from DER ECParameters, for a message."""
    try:
        chosen = ECDomainParameters.load(params, strict=True)
        if chosen.name == "named":
            return str(chosen.chosen.native)
        return f"given by explicit parameters ({chosen.name})"
    except ValueError:
        return f"with unreadable parameters {params.hex() or '(none)'}"


def _public_half(
    token: Token,
    uri: Pkcs11Uri,
    label: str | None,
    key_id: bytes | None,
    kinds: Sequence[str],
) -> ec.EllipticCurvePublicKey | None:
    """The public key stored under ``key_id`` (else ``label``): a public key object, else a
    certificate's; None when neither is there (or visible)."""
    naming = _id_template(key_id) if key_id else _label_template(label)
    found: dict[bytes, ec.EllipticCurvePublicKey] = {}
    if "public" in kinds:
        for handle in token.find([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), *naming]):
            key = _public_key_object(token, handle, uri.where)
            found[keys.public_key_pem(key)] = key
    if not found and "cert" in kinds:
        for _, _, cert in _certificates(token, naming):
            key = _certificate_key(cert, uri.where)
            found[keys.public_key_pem(key)] = key
    if len(found) > 1:
        raise _not_found(
            uri,
            f"{len(found)} different public keys are stored with {_naming(label, key_id)} on "
            f"token {token.label!r}: name the key by id=",
        )
    return next(iter(found.values()), None)


def _public_key_object(token: Token, handle: Any, where: str) -> ec.EllipticCurvePublicKey:
    with pkcs11_errors(where, "reading a public key"):
        (key_type,) = token.session.getAttributeValue(handle, [PyKCS11.CKA_KEY_TYPE])
        params, point = (
            token.session.getAttributeValue(
                handle, [PyKCS11.CKA_EC_PARAMS, PyKCS11.CKA_EC_POINT], allAsBinary=True
            )
            if key_type == PyKCS11.CKK_EC
            else (b"", b"")
        )
    label, key_id = _label_and_id(token, handle)
    what = f"the public key {_naming(label, key_id)}"
    params = bytes(params or b"")
    _check_type(int(key_type), params, what, where)
    curve = _BY_PARAMS[params]
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, _raw_point(bytes(point), curve))
    except ValueError:
        raise InputError(
            f"{what} holds no valid {curve.name} point", code=Code.KEY_INVALID, path=where
        ) from None


def _raw_point(point: bytes, curve: ec.EllipticCurve) -> bytes:
    """The ``04 || X || Y`` point a CKA_EC_POINT holds: as a DER OCTET STRING, or bare
    (as some tokens give it)."""
    length = 1 + 2 * _field_size(curve)
    try:
        inner = OctetString.load(point, strict=True).native
    except ValueError:
        inner = None
    if isinstance(inner, bytes) and len(inner) == length:
        return inner
    return point


def _field_size(curve: ec.EllipticCurve) -> int:
    """The bytes of one coordinate (and of r or s) on ``curve``: 32, 48 or 66."""
    return (curve.key_size + 7) // 8


# -- certificates -------------------------------------------------------------------------


def _certificates(
    token: Token, naming: Sequence[tuple[int, Any]] = ()
) -> list[tuple[str, bytes, x509.Certificate]]:
    """The X.509 certificate objects on the token (those ``naming`` matches): label, id, cert."""
    template = [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_CERTIFICATE),
        (PyKCS11.CKA_CERTIFICATE_TYPE, PyKCS11.CKC_X_509),
        *naming,
    ]
    found = []
    for handle in token.find(template):
        label, cert_id = _label_and_id(token, handle)
        with pkcs11_errors(token.where, "reading a certificate"):
            (der,) = token.session.getAttributeValue(handle, [PyKCS11.CKA_VALUE], allAsBinary=True)
        try:
            cert = x509.load_der_x509_certificate(bytes(der or b""))
        except ValueError:
            raise InputError(
                f"the certificate object {_naming(label, cert_id)} is not a DER X.509 certificate",
                code=Code.CERT_INVALID,
                path=token.where,
            ) from None
        found.append((label, cert_id, cert))
    return found


def _certificate_key(cert: x509.Certificate, where: str) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    subject = cert.subject.rfc4514_string()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        kind = type(key).__name__.removeprefix("_").replace("PublicKey", "")
        raise _unsupported(where, f"the certificate {subject!r} holds a {kind} key")
    if key.curve.name not in {curve.name for _, curve in CURVES.values()}:
        raise _unsupported(where, f"the certificate {subject!r} holds a key on {key.curve.name}")
    return key


def _same_object(label: str, key_id: bytes, other_label: str, other_id: bytes) -> bool:
    return other_id == key_id if key_id else other_label == label


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePublicKey) -> bool:
    held = cert.public_key()
    return isinstance(held, ec.EllipticCurvePublicKey) and keys.public_key_pem(
        held
    ) == keys.public_key_pem(key)


def _chain(leaf: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """``leaf``, then its issuers from ``pool`` (by name and signature), below the root."""
    chain = [leaf]
    while len(chain) <= _MAX_CHAIN and not _self_signed(chain[-1]):
        issuer = next((c for c in pool if c not in chain and certs.signed_by(chain[-1], c)), None)
        if issuer is None or _self_signed(issuer):
            break
        chain.append(issuer)
    return chain


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and certs.signed_by(cert, cert)


__all__ = ["CURVES", "Pkcs11Key", "generate_key", "open_key", "public_key"]

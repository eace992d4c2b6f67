"""A Fulcio-like CA: short-lived code-signing certificates bound to an OIDC identity.

The certificate profile follows Fulcio's ``docs/oid-info.md`` and
``docs/certificate-specification.md`` as far as sigstore 4.5 reads it: empty subject with
a critical SAN, AKI/SKI, KeyUsage digitalSignature, EKU codeSigning, the OIDC-issuer
extensions, the GitHub workflow extensions when the token has GitHub claims, and an
embedded precertificate SCT.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from string import Formatter
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from . import _der
from .ca import CertifiedKey, signing_usage, spki_der
from .ctlog import SCT_LIST_OID, CTLog, sct_list_extension_value
from .oidc import GITHUB_ISSUER

CERT_LIFETIME = timedelta(minutes=10)
GITHUB_SERVER = "https://github.com"

# Extensions whose value is the raw claim bytes (Fulcio's deprecated encoding) ...
_LEGACY_OIDS = {
    "1.3.6.1.4.1.57264.1.2": "event_name",
    "1.3.6.1.4.1.57264.1.3": "sha",
    "1.3.6.1.4.1.57264.1.4": "workflow",
    "1.3.6.1.4.1.57264.1.5": "repository",
    "1.3.6.1.4.1.57264.1.6": "ref",
}
# ... and those that are DER UTF8Strings, built from claim templates.
_GITHUB_V2_OIDS = {
    "1.3.6.1.4.1.57264.1.9": "{server}/{job_workflow_ref}",
    "1.3.6.1.4.1.57264.1.10": "{job_workflow_sha}",
    "1.3.6.1.4.1.57264.1.11": "{runner_environment}",
    "1.3.6.1.4.1.57264.1.12": "{server}/{repository}",
    "1.3.6.1.4.1.57264.1.13": "{sha}",
    "1.3.6.1.4.1.57264.1.14": "{ref}",
    "1.3.6.1.4.1.57264.1.15": "{repository_id}",
    "1.3.6.1.4.1.57264.1.16": "{server}/{repository_owner}",
    "1.3.6.1.4.1.57264.1.17": "{repository_owner_id}",
    "1.3.6.1.4.1.57264.1.18": "{server}/{workflow_ref}",
    "1.3.6.1.4.1.57264.1.19": "{workflow_sha}",
    "1.3.6.1.4.1.57264.1.20": "{event_name}",
    "1.3.6.1.4.1.57264.1.21": "{server}/{repository}/actions/runs/{run_id}/attempts/{run_attempt}",
    "1.3.6.1.4.1.57264.1.22": "{repository_visibility}",
}
_ISSUER_LEGACY_OID = "1.3.6.1.4.1.57264.1.1"
_ISSUER_V2_OID = "1.3.6.1.4.1.57264.1.8"


class FulcioError(Exception):
    """A refused signing request (the server answers HTTP 400/401)."""


@dataclass(frozen=True)
class Principal:
    """What a verified token entitles its bearer to: a SAN and Sigstore extensions."""

    san: x509.GeneralName
    extensions: dict[str, bytes] = field(default_factory=dict)


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    issuer = str(claims["iss"])
    extensions = {
        _ISSUER_LEGACY_OID: issuer.encode(),
        _ISSUER_V2_OID: _der.utf8_string(issuer),
    }
    if issuer == GITHUB_ISSUER:
        values = {k: str(v) for k, v in claims.items()} | {"server": GITHUB_SERVER}
        if "job_workflow_ref" not in values:
            raise FulcioError("GitHub token lacks the job_workflow_ref claim")
        for oid, claim in _LEGACY_OIDS.items():
            if claim in values:
                extensions[oid] = values[claim].encode()
        for oid, template in _GITHUB_V2_OIDS.items():
            # A claim the token lacks means no extension, as with Fulcio.
            if {f for _, f, _, _ in Formatter().parse(template) if f} <= values.keys():
                extensions[oid] = _der.utf8_string(template.format_map(values))
        san: x509.GeneralName = x509.UniformResourceIdentifier(
            f"{GITHUB_SERVER}/{values['job_workflow_ref']}"
        )
    elif "ci_config_ref_uri" in claims:
        # GitLab CI, as Fulcio issues it: the pipeline's config file is the identity, and
        # the generic extensions name the project and commit.
        config = f"https://{claims['ci_config_ref_uri']}"
        extensions |= {
            "1.3.6.1.4.1.57264.1.9": _der.utf8_string(config),
            "1.3.6.1.4.1.57264.1.12": _der.utf8_string(f"{issuer}/{claims['project_path']}"),
            "1.3.6.1.4.1.57264.1.13": _der.utf8_string(str(claims["sha"])),
            "1.3.6.1.4.1.57264.1.14": _der.utf8_string(
                f"refs/{claims['ref_type']}s/{claims['ref']}"
            ),
        }
        san = x509.UniformResourceIdentifier(config)
    elif "email" in claims:
        if claims.get("email_verified") is not True:
            raise FulcioError("token e-mail is not verified")
        san = x509.RFC822Name(str(claims["email"]))
    elif "://" in str(claims["sub"]):
        san = x509.UniformResourceIdentifier(str(claims["sub"]))
    else:
        raise FulcioError("token has neither an e-mail nor a URI subject")
    return Principal(san, extensions)


class Fulcio:
    def __init__(self, root: CertifiedKey, intermediate: CertifiedKey, ctlog: CTLog) -> None:
        self.root = root
        self.intermediate = intermediate
        self._ctlog = ctlog

    def issue(self, csr_pem: bytes, principal: Principal) -> list[x509.Certificate]:
        """Leaf, intermediate, root — the order Fulcio's ``/api/v2/signingCert`` returns."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise FulcioError(f"malformed CSR: {exc}") from exc
        # The CSR's self-signature is the proof of possession of the ephemeral key.
        if not csr.is_signature_valid:
            raise FulcioError("CSR signature does not verify: no proof of possession")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise FulcioError("only ECDSA keys are supported")

        now = datetime.now(timezone.utc).replace(microsecond=0)
        issuer_ski = self.intermediate.cert.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + CERT_LIFETIME)
            .add_extension(signing_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), False
            )
            # An empty subject makes the SAN the only name: RFC 5280 wants it critical.
            .add_extension(x509.SubjectAlternativeName([principal.san]), critical=True)
        )
        for oid, value in principal.extensions.items():
            builder = builder.add_extension(
                x509.UnrecognizedExtension(ObjectIdentifier(oid), value), critical=False
            )

        # The SCT signs the certificate as it is without the SCT list; appending the
        # extension last leaves every other TBS byte unchanged.
        tbs_precert = builder.sign(self.intermediate.key, hashes.SHA256()).tbs_certificate_bytes
        issuer_key_hash = hashlib.sha256(spki_der(self.intermediate.key.public_key())).digest()
        sct = self._ctlog.sign_precertificate(
            tbs_precert, issuer_key_hash, int(now.timestamp()) * 1000
        )
        leaf = builder.add_extension(
            x509.UnrecognizedExtension(
                ObjectIdentifier(SCT_LIST_OID), sct_list_extension_value([sct])
            ),
            critical=False,
        ).sign(self.intermediate.key, hashes.SHA256())
        if leaf.tbs_precertificate_bytes != tbs_precert:
            raise RuntimeError("precertificate TBS changed when the SCT was embedded")
        return [leaf, self.intermediate.cert, self.root.cert]


def signing_cert_response(chain: list[x509.Certificate]) -> dict[str, Any]:
    """The JSON body of Fulcio's v2 ``signingCert`` answer (PEM strings, leaf first)."""
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]
    return {"signedCertificateEmbeddedSct": {"chain": {"certificates": pems}}}


def csr_from_request(body: Mapping[str, Any]) -> bytes:
    """The PEM CSR from ``{"certificateSigningRequest": base64(PEM)}``."""
    try:
        return base64.b64decode(str(body["certificateSigningRequest"]), validate=True)
    except (KeyError, ValueError) as exc:
        raise FulcioError("request needs a base64 certificateSigningRequest") from exc

"""A local Sigstore stand-in for tests: keyless signing and verification with no network.

``SigstoreStandin`` runs a Fulcio-like CA (with a CT log for embedded SCTs), a Rekor-like
transparency log (v1 or v2 API), an RFC 3161 timestamp authority and an OIDC token signer
on one plain-HTTP server bound to 127.0.0.1, and writes the ``ClientTrustConfig`` that
points the unmodified ``sigstore`` 4.5 API at it::

    with SigstoreStandin(tmp_path) as standin:
        ctx = SigningContext.from_trust_config(standin.trust_config())
        with ctx.signer(IdentityToken(standin.token())) as signer:
            bundle = signer.sign_dsse(Statement(statement_bytes))
        verifier = Verifier(trusted_root=TrustedRoot.from_file(str(standin.trusted_root_path)))
        verifier.verify_dsse(bundle, policy.Identity(identity=DEFAULT_IDENTITY,
                                                     issuer=DEFAULT_ISSUER))

Verification needs no server: everything is checked against the trusted root at signing
time, so a bundle stays valid after the stand-in stops (for the CA's ten-year life).
Each instance has fresh keys: a second instance is an independent, untrusted root.
Requests go through ``requests``: a proxy set in the environment must exempt 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import serialization
from sigstore.dsse import Statement
from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier

from . import tamper
from .ca import (
    ORGANIZATION,
    CertifiedKey,
    key_id,
    make_intermediate,
    make_root,
    make_tsa_leaf,
    spki_der,
    validity,
)
from .ctlog import CTLog
from .fulcio import Fulcio
from .oidc import (
    DEFAULT_IDENTITY,
    DEFAULT_ISSUER,
    GITHUB_ISSUER,
    TokenIssuer,
    github_claims,
    gitlab_claims,
    identity_claims,
)
from .server import TSA_PATH, Server, Services
from .tlog import TransparencyLog
from .tsa import TimestampAuthority

__all__ = [
    "DEFAULT_IDENTITY",
    "DEFAULT_ISSUER",
    "GITHUB_ISSUER",
    "SigstoreStandin",
    "tamper",
]

_P256 = "PKIX_ECDSA_P256_SHA_256"
_TRUSTED_ROOT_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
_SIGNING_CONFIG_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
_TRUST_CONFIG_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _der_chain(*certified: CertifiedKey) -> dict[str, Any]:
    return {
        "certificates": [
            {"rawBytes": _b64(c.cert.public_bytes(serialization.Encoding.DER))} for c in certified
        ]
    }


class SigstoreStandin:
    """Fulcio + CT log + Rekor + TSA + OIDC on 127.0.0.1, described by a ClientTrustConfig.

    A context manager: servers run between ``__enter__`` and ``__exit__`` and stop by
    themselves after ``lifetime_s`` seconds should the context never close.
    ``rekor_version=2`` logs through the Rekor v2 API, which gives no integrated time,
    so it needs ``timestamps=True``; with Rekor v1 the signed entry timestamp suffices.
    """

    def __init__(
        self,
        tmp_dir: Path,
        *,
        rekor_version: int = 1,
        timestamps: bool = True,
        lifetime_s: float = 600.0,
    ) -> None:
        if rekor_version not in (1, 2):
            raise ValueError(f"rekor_version must be 1 or 2, not {rekor_version}")
        if rekor_version == 2 and not timestamps:
            raise ValueError("Rekor v2 entries carry no time: they need timestamps=True")
        self.rekor_version = rekor_version
        self.timestamps = timestamps
        self.trust_config_path = tmp_dir / "trust_config.json"
        self.trusted_root_path = tmp_dir / "trusted_root.json"
        self._tmp_dir = tmp_dir
        self._lifetime_s = lifetime_s

        self.not_before, self.not_after = validity(datetime.now(timezone.utc))
        self.fulcio_root = make_root("standin-fulcio-root", self.not_before, self.not_after)
        self.fulcio_intermediate = make_intermediate(
            self.fulcio_root, "standin-fulcio-intermediate"
        )
        self.tsa_root = make_root("standin-tsa-root", self.not_before, self.not_after)
        self.tsa_signer = make_tsa_leaf(self.tsa_root, "standin-tsa-signer")
        self.ctlog = CTLog()
        self.tlog = TransparencyLog()
        self.tokens = TokenIssuer()
        self._services = Services(
            self.tokens,
            Fulcio(self.fulcio_root, self.fulcio_intermediate, self.ctlog),
            self.tlog,
            TimestampAuthority(self.tsa_root, self.tsa_signer),
        )
        self._server: Server | None = None
        self._watchdog: threading.Timer | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> SigstoreStandin:
        if self._server is not None:
            raise RuntimeError("a stand-in runs once: make a new one")
        self._server = Server(self._services)
        self._server.start()
        self._watchdog = threading.Timer(self._lifetime_s, self._server.stop)
        self._watchdog.daemon = True
        self._watchdog.start()
        try:
            self._tmp_dir.mkdir(parents=True, exist_ok=True)
            config = self.trust_config_json()
            self.trusted_root_path.write_text(json.dumps(config["trustedRoot"], indent=2))
            self.trust_config_path.write_text(json.dumps(config, indent=2))
        except BaseException:
            self.close()  # __exit__ will not run when __enter__ fails
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._server is not None:
            self._server.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not running: use it as a context manager")
        return self._server.url

    # -- trust material ------------------------------------------------------------------

    def trusted_root_json(self) -> dict[str, Any]:
        start = {"start": _iso(self.not_before)}

        def log(base_url: str, key: Any) -> dict[str, Any]:
            return {
                "baseUrl": base_url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(spki_der(key)),
                    "keyDetails": _P256,
                    "validFor": start,
                },
                "logId": {"keyId": _b64(key_id(key))},
            }

        def authority(name: str, uri: str, *chain: CertifiedKey) -> dict[str, Any]:
            return {
                "subject": {"organization": ORGANIZATION, "commonName": name},
                "uri": uri,
                "certChain": _der_chain(*chain),
                "validFor": start,
            }

        return {
            "mediaType": _TRUSTED_ROOT_TYPE,
            "tlogs": [log(self.url, self.tlog.key.public_key())],
            "certificateAuthorities": [
                authority("standin-fulcio", self.url, self.fulcio_intermediate, self.fulcio_root)
            ],
            "ctlogs": [log(self.url + "/ct", self.ctlog.key.public_key())],
            "timestampAuthorities": [
                authority("standin-tsa", self.url + TSA_PATH, self.tsa_signer, self.tsa_root)
            ],
        }

    def signing_config_json(self) -> dict[str, Any]:
        def service(url: str, major: int) -> dict[str, Any]:
            return {
                "url": url,
                "majorApiVersion": major,
                "validFor": {"start": _iso(self.not_before)},
                "operator": ORGANIZATION,
            }

        return {
            "mediaType": _SIGNING_CONFIG_TYPE,
            "caUrls": [service(self.url, 1)],
            "oidcUrls": [],
            "rekorTlogUrls": [service(self.url, self.rekor_version)],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaUrls": [service(self.url + TSA_PATH, 1)] if self.timestamps else [],
            "tsaConfig": {"selector": "ANY"},
        }

    def trust_config_json(self) -> dict[str, Any]:
        return {
            "mediaType": _TRUST_CONFIG_TYPE,
            "trustedRoot": self.trusted_root_json(),
            "signingConfig": self.signing_config_json(),
        }

    def trust_config(self) -> ClientTrustConfig:
        return ClientTrustConfig.from_json(self.trust_config_path.read_text())

    def trusted_root(self) -> TrustedRoot:
        return TrustedRoot.from_file(str(self.trusted_root_path))

    def verifier(self) -> Verifier:
        return Verifier(trusted_root=self.trusted_root())

    # -- identities and signing ------------------------------------------------------------

    def token(
        self,
        identity: str | None = None,
        issuer: str | None = None,
        *,
        github: dict[str, str] | None = None,
        gitlab: dict[str, str] | None = None,
    ) -> str:
        """A JWT this stand-in's Fulcio accepts.

        Without ``github``: an e-mail identity (``identity`` with ``@``) or a URI one, default
        ``DEFAULT_IDENTITY`` from ``DEFAULT_ISSUER``. With ``github``: a GitHub Actions token
        from ``GITHUB_ISSUER`` whose claims (``repository``, ``ref``, ``sha``,
        ``workflow_ref``, ``job_workflow_ref``, ``event_name``, ``run_id``, ...) override
        the defaults; the certificate identity is then ``https://github.com/<job_workflow_ref>``
        and ``identity`` must not be given.
        """
        if gitlab is not None:  # server, project_path, ref, sha
            return self.tokens.mint(gitlab_claims(**gitlab))
        if github is not None:
            if identity is not None:
                raise ValueError("a GitHub token's identity comes from job_workflow_ref")
            return self.tokens.mint(github_claims(github, issuer or GITHUB_ISSUER))
        return self.tokens.mint(
            identity_claims(identity or DEFAULT_IDENTITY, issuer or DEFAULT_ISSUER)
        )

    def sign_dsse(self, statement: bytes, token: str | None = None) -> Bundle:
        """Sign an in-toto Statement (JSON bytes) through the public sigstore API."""
        ctx = SigningContext.from_trust_config(self.trust_config())
        with ctx.signer(IdentityToken(token or self.token())) as signer:
            return signer.sign_dsse(Statement(statement))

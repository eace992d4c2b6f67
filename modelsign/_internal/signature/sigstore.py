"""Sigstore keyless signing and verification, through ``sigstore``'s public API.

Signing: an OIDC identity token (given, ambient in CI, or interactive) buys a
short-lived Fulcio certificate; ``sign_dsse`` signs the same OMS statement as
key signing and logs it in Rekor. Verification: ``verify_dsse`` against a
trusted root and an identity policy — then the two checks it leaves to the
caller: the payload type, and (in ``modelsign.verify``) that the statement's
subject matches the model.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from ...codes import Code
from ...errors import InputError, SignatureError, VerificationError
from .._atomic import open_regular
from .bundle import PAYLOAD_TYPE, Envelope
from .verifiers import SignerInfo

TOKEN_ENV = "MODELSIGN_IDENTITY_TOKEN"
PRODUCTION_TUF = "https://tuf-repo-cdn.sigstore.dev"
STAGING_TUF = "https://tuf-repo-cdn.sigstage.dev"

#: Fulcio certificate extensions reported in the result (and matched by policies).
FULCIO_EXTENSIONS: dict[str, str] = {
    "1.3.6.1.4.1.57264.1.1": "issuer (v1)",
    "1.3.6.1.4.1.57264.1.2": "github_workflow_trigger",
    "1.3.6.1.4.1.57264.1.3": "github_workflow_sha",
    "1.3.6.1.4.1.57264.1.4": "github_workflow_name",
    "1.3.6.1.4.1.57264.1.5": "github_workflow_repository",
    "1.3.6.1.4.1.57264.1.6": "github_workflow_ref",
    "1.3.6.1.4.1.57264.1.8": "issuer",
    "1.3.6.1.4.1.57264.1.9": "build_signer_uri",
    "1.3.6.1.4.1.57264.1.10": "build_signer_digest",
    "1.3.6.1.4.1.57264.1.11": "runner_environment",
    "1.3.6.1.4.1.57264.1.12": "source_repository_uri",
    "1.3.6.1.4.1.57264.1.13": "source_repository_digest",
    "1.3.6.1.4.1.57264.1.14": "source_repository_ref",
    "1.3.6.1.4.1.57264.1.15": "source_repository_identifier",
    "1.3.6.1.4.1.57264.1.16": "source_repository_owner_uri",
    "1.3.6.1.4.1.57264.1.17": "source_repository_owner_identifier",
    "1.3.6.1.4.1.57264.1.18": "build_config_uri",
    "1.3.6.1.4.1.57264.1.19": "build_config_digest",
    "1.3.6.1.4.1.57264.1.20": "build_trigger",
    "1.3.6.1.4.1.57264.1.21": "run_invocation_uri",
    "1.3.6.1.4.1.57264.1.22": "source_repository_visibility",
}
_V1_RAW = {f"1.3.6.1.4.1.57264.1.{i}" for i in range(1, 7)}  # raw bytes, not DER


def _der_utf8(data: bytes) -> str:
    """Decode a DER UTF8String / IA5String (the v2 Fulcio extension encoding)."""
    if len(data) < 2 or data[0] not in (0x0C, 0x16):
        raise ValueError("not a DER string")
    length = data[1]
    offset = 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[2 : 2 + n], "big")
        offset = 2 + n
    if offset + length != len(data):
        raise ValueError("bad DER length")
    return data[offset:].decode("utf-8")


def fulcio_extensions(cert: x509.Certificate) -> dict[str, str]:
    """The Sigstore extensions of a Fulcio certificate, by name."""
    out: dict[str, str] = {}
    for ext in cert.extensions:
        name = FULCIO_EXTENSIONS.get(ext.oid.dotted_string)
        if name is None or not isinstance(ext.value, x509.UnrecognizedExtension):
            continue
        raw = ext.value.value
        try:
            out[name] = raw.decode("utf-8") if ext.oid.dotted_string in _V1_RAW else _der_utf8(raw)
        except (UnicodeDecodeError, ValueError):
            out[name] = raw.hex()
    return out


def oidc_issuer(extensions: Mapping[str, str]) -> str | None:
    """The OIDC issuer named by Fulcio extensions (``fulcio_extensions``): v2, else v1."""
    return extensions.get("issuer") or extensions.get("issuer (v1)")


def fulcio_identity(cert: x509.Certificate) -> tuple[str | None, str | None, dict[str, str]]:
    """What a Fulcio certificate claims: (identity, OIDC issuer, its Fulcio extensions)."""
    sans = san_identities(cert)
    ext = fulcio_extensions(cert)
    return (sans[0] if sans else None), oidc_issuer(ext), ext


def san_identities(cert: x509.Certificate) -> list[str]:
    """Email and URI SAN values (what Sigstore calls the identity)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    values: list[str] = list(san.get_values_for_type(x509.RFC822Name))
    values += san.get_values_for_type(x509.UniformResourceIdentifier)
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == ObjectIdentifier("1.3.6.1.4.1.57264.1.7"):
            values.append(other.value.decode("utf-8", "replace"))
    return values


@dataclass(frozen=True, kw_only=True)
class _CertPolicy:
    """A sigstore verification policy over our own reading of the certificate."""

    issuer: str
    identity: str | None
    identity_regex: re.Pattern[str] | None
    github_repository: str | None
    github_ref: str | None
    github_workflow: str | None

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError as SigstoreVerificationError

        ext = fulcio_extensions(cert)
        issuer = oidc_issuer(ext)
        if issuer != self.issuer:
            raise SigstoreVerificationError(
                f"certificate OIDC issuer is {issuer!r}, expected {self.issuer!r}"
            )
        sans = san_identities(cert)
        if self.identity is not None and self.identity not in sans:
            raise SigstoreVerificationError(
                f"certificate identity {sans} does not match {self.identity!r}"
            )
        if self.identity_regex is not None and not any(
            self.identity_regex.fullmatch(s) for s in sans
        ):
            raise SigstoreVerificationError(
                f"certificate identity {sans} does not match /{self.identity_regex.pattern}/"
            )
        if self.github_repository is not None:
            uri = ext.get("source_repository_uri")
            legacy = ext.get("github_workflow_repository")
            want = self.github_repository
            if uri != f"https://github.com/{want}" and (uri is not None or legacy != want):
                raise SigstoreVerificationError(
                    f"certificate source repository is {uri or legacy!r}, expected {want!r}"
                )
        if self.github_ref is not None:
            ref = ext.get("source_repository_ref") or ext.get("github_workflow_ref")
            if ref != self.github_ref:
                raise SigstoreVerificationError(
                    f"certificate source ref is {ref!r}, expected {self.github_ref!r}"
                )
        if self.github_workflow is not None:
            # Build signer URI: https://github.com/OWNER/REPO/PATH@REF; PATH must be
            # exactly the workflow asked for (a suffix match would accept any repo's
            # file of that name).
            signer = ext.get("build_signer_uri") or ""
            parts = signer.split("@", 1)[0].removeprefix("https://github.com/").split("/", 2)
            want = self.github_workflow.lstrip("/")
            if len(parts) != 3 or parts[2] != want:
                raise SigstoreVerificationError(
                    f"certificate build signer {signer!r} is not workflow {want!r}"
                )


def shipped_trusted_root(staging: bool = False) -> object:
    """The trusted root embedded in the installed ``sigstore`` package (no network, no cache)."""
    from sigstore.models import TrustedRoot

    folder = (STAGING_TUF if staging else PRODUCTION_TUF).replace(":", "%3A").replace("/", "%2F")
    res = importlib.resources.files("sigstore._store") / folder / "trusted_root.json"
    with importlib.resources.as_file(res) as p:
        return TrustedRoot.from_file(str(p))


def load_trusted_root(
    path: str | None,
    *,
    offline: bool,
    staging: bool = False,
    warn: Callable[[str], None] = lambda _m: None,
) -> object:
    """``--trusted-root`` if given; else the shipped root (``--offline``); else a TUF refresh.

    A refresh that fails (no network) falls back to the shipped root with a warning.
    """
    from sigstore.models import ClientTrustConfig, TrustedRoot

    if path is not None:
        try:
            return TrustedRoot.from_file(path)
        except FileNotFoundError as exc:
            raise InputError(
                "no such trusted root", code=Code.TRUST_ROOT_NOT_FOUND, path=path
            ) from exc
        except Exception as exc:  # sigstore raises several types for a malformed root
            raise InputError(
                f"not a Sigstore trusted root: {exc}", code=Code.TRUST_ROOT_INVALID, path=path
            ) from exc
    if offline:
        return shipped_trusted_root(staging)
    try:
        config = ClientTrustConfig.staging() if staging else ClientTrustConfig.production()
        return config.trusted_root
    except Exception as exc:  # TUF / network errors come in many types
        warn(
            f"could not refresh the Sigstore trusted root ({exc.__class__.__name__}); "
            "using the one shipped with the sigstore package"
        )
        return shipped_trusted_root(staging)


class SigstoreVerifier:
    """Verify a Sigstore bundle for an identity and issuer, against a trusted root."""

    def __init__(
        self,
        trusted_root: object,
        *,
        issuer: str,
        identity: str | None = None,
        identity_regex: str | None = None,
        github_repository: str | None = None,
        github_ref: str | None = None,
        github_workflow: str | None = None,
    ) -> None:
        if (identity is None) == (identity_regex is None):
            raise InputError(
                "Sigstore verification needs exactly one of --identity or --identity-regex",
                code=Code.USAGE,
            )
        if not issuer:
            raise InputError("Sigstore verification needs --issuer", code=Code.USAGE)
        try:
            regex = re.compile(identity_regex) if identity_regex is not None else None
        except re.error as exc:
            raise InputError(f"bad --identity-regex: {exc}", code=Code.BAD_REGEX) from exc
        self.trusted_root = trusted_root
        self.policy = _CertPolicy(
            issuer=issuer,
            identity=identity,
            identity_regex=regex,
            github_repository=github_repository,
            github_ref=github_ref,
            github_workflow=github_workflow,
        )

    def verify_envelope(self, envelope: Envelope) -> SignerInfo:
        from sigstore.models import Bundle
        from sigstore.verify import Verifier

        try:
            bundle = Bundle.from_json(json.dumps(envelope.raw))
        except Exception as exc:  # sigstore raises several types for malformed bundles
            raise VerificationError(
                f"not a valid Sigstore bundle: {exc}", code=Code.SIGSTORE_BUNDLE_INVALID
            ) from exc
        try:
            verifier = Verifier(trusted_root=self.trusted_root)  # type: ignore[arg-type]
            payload_type, payload = verifier.verify_dsse(bundle, self.policy)
        except Exception as exc:  # not every sigstore failure is a sigstore.errors.Error
            raise VerificationError(
                f"Sigstore verification failed: {exc}", code=Code.SIGSTORE_VERIFICATION_FAILED
            ) from exc
        # What verify_dsse leaves to its caller.
        if payload_type != PAYLOAD_TYPE:
            raise VerificationError(
                f"DSSE payload type is {payload_type!r}", code=Code.PAYLOAD_TYPE
            )
        if payload != envelope.payload:
            raise VerificationError(
                "verified payload differs from the envelope", code=Code.BAD_SIGNATURE
            )
        cert = bundle.signing_certificate
        identity, issuer, ext = fulcio_identity(cert)
        return SignerInfo(
            kind="sigstore",
            identity=identity,
            oidc_issuer=issuer,
            issuer=cert.issuer.rfc4514_string(),
            extensions={k: v for k, v in ext.items() if not k.startswith("issuer")},
            signed_at=_signed_at(bundle),
        )


def _signed_at(bundle: object) -> str | None:
    entry = getattr(bundle, "log_entry", None)
    when = getattr(getattr(entry, "_inner", None), "integrated_time", None)
    if isinstance(when, int) and when > 0:
        return datetime.fromtimestamp(when, timezone.utc).isoformat()
    return None


class SigstoreSigner:
    """Keyless signing with a Fulcio certificate and a Rekor entry."""

    def __init__(self, trust_config: object, token: object) -> None:
        self.trust_config = trust_config
        self.token = token

    @classmethod
    def create(
        cls,
        *,
        identity_token: str | None = None,
        staging: bool = False,
        trust_config: str | None = None,
        oauth_force_oob: bool = False,
        env: Mapping[str, str] | None = None,
        interactive: bool | None = None,
    ) -> SigstoreSigner:
        """Trust configuration and identity token, the way a user or CI job has them."""
        from sigstore.models import ClientTrustConfig

        env = os.environ if env is None else env
        interactive = sys.stdin.isatty() if interactive is None else interactive
        # The token first: a CI job without OIDC permission learns what to add
        # before anything goes to the network.
        raw = _ambient_token(identity_token or env.get(TOKEN_ENV), env=env, interactive=interactive)
        parsed = _identity_token(raw, None, oauth_force_oob=False) if raw is not None else None
        if trust_config is not None:
            try:
                with open_regular(trust_config, "r", encoding="utf-8") as fh:
                    config = ClientTrustConfig.from_json(fh.read())
            except FileNotFoundError as exc:
                raise InputError(
                    "no such trust config", code=Code.TRUST_CONFIG_NOT_FOUND, path=trust_config
                ) from exc
            except Exception as exc:  # pydantic / protobuf errors of several types
                raise InputError(
                    f"not a Sigstore ClientTrustConfig: {exc}",
                    code=Code.TRUST_CONFIG_INVALID,
                    path=trust_config,
                ) from exc
        else:
            try:
                config = ClientTrustConfig.staging() if staging else ClientTrustConfig.production()
            except Exception as exc:  # TUF / network errors come in many types
                raise SignatureError(
                    f"cannot fetch the Sigstore trust configuration: {exc}",
                    code=Code.SIGSTORE_UNREACHABLE,
                ) from exc
        token = parsed or _identity_token(None, config, oauth_force_oob=oauth_force_oob)
        return cls(config, token)

    def sign_statement(self, statement: bytes) -> bytes:
        return self.sign_statements([statement])[0]

    def sign_statements(self, statements: Sequence[bytes]) -> list[bytes]:
        """Sign each statement with one identity token and one signing certificate."""
        from sigstore import dsse
        from sigstore.sign import SigningContext

        try:
            ctx = SigningContext.from_trust_config(self.trust_config)  # type: ignore[arg-type]
            # cache=True: the certificate is fetched once and signs every statement.
            with ctx.signer(self.token, cache=True) as signer:  # type: ignore[arg-type]
                bundles = [signer.sign_dsse(dsse.Statement(s)) for s in statements]
        except Exception as exc:  # network, Fulcio and Rekor errors of many types
            detail = str(exc) or repr(exc.__cause__ or exc)
            raise SignatureError(
                f"Sigstore signing failed: {detail}", code=Code.SIGSTORE_SIGNING_FAILED
            ) from exc
        return [b.to_json().encode("utf-8") for b in bundles]


def _ambient_token(raw: str | None, *, env: Mapping[str, str], interactive: bool) -> str | None:
    """A given or ambient CI token; None when an interactive sign-in will provide one."""
    from sigstore.oidc import detect_credential

    if raw is not None:
        return raw
    if env.get("GITHUB_ACTIONS") == "true" and not env.get("ACTIONS_ID_TOKEN_REQUEST_URL"):
        raise InputError(
            "this GitHub Actions job cannot request an OIDC token: add "
            "'permissions: id-token: write' to the job (or the workflow)",
            code=Code.NO_IDENTITY_TOKEN,
        )
    try:
        raw = detect_credential()
    except Exception as exc:  # sigstore.oidc.IdentityError and id's errors
        raise InputError(
            f"ambient CI credentials were found but failed: {exc}", code=Code.NO_IDENTITY_TOKEN
        ) from exc
    if raw is None and not interactive:
        raise InputError(
            "no identity token: pass --identity-token, set "
            f"{TOKEN_ENV}, run in CI with OIDC (GitHub Actions 'id-token: write', "
            "GitLab SIGSTORE_ID_TOKEN), or run interactively",
            code=Code.NO_IDENTITY_TOKEN,
        )
    return raw


def _identity_token(raw: str | None, config: object, *, oauth_force_oob: bool) -> object:
    from sigstore.oidc import IdentityToken, Issuer

    if raw is None:
        try:
            url = config.signing_config.get_oidc_url()  # type: ignore[attr-defined]
            return Issuer(url).identity_token(force_oob=oauth_force_oob)
        except Exception as exc:  # network / OAuth errors
            raise SignatureError(
                f"interactive sign-in failed: {exc}", code=Code.SIGSTORE_SIGNIN_FAILED
            ) from exc
    try:
        return IdentityToken(raw)
    except Exception as exc:  # sigstore.oidc.IdentityError for malformed / expired tokens
        raise InputError(
            f"the identity token is not usable: {exc}", code=Code.BAD_IDENTITY_TOKEN
        ) from exc

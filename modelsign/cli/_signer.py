"""How to sign, for ``sign`` and ``attest provenance``: --key (with certificates) or --sigstore."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import click

from .._internal.signature.keyrefs import Secrets, is_key_uri, refuse_secret_in_argument
from .._internal.signature.signers import KeySigner, Signer
from .._internal.signature.sigstore import TOKEN_ENV, SigstoreSigner
from ..codes import Code
from ..errors import InputError
from ._options import options

signer_options = options(
    click.option(
        "--key",
        metavar="PATH|URI",
        help="Private key: a PEM file, or a key held in a PKCS#11 token or a cloud KMS "
        "(pkcs11:…, awskms://…, gcpkms://…, azurekms://…).",
    ),
    click.option(
        "--sigstore",
        "use_sigstore",
        is_flag=True,
        help="Sign keylessly with Sigstore (OIDC identity).",
    ),
    click.option(
        "--identity-token",
        metavar="TOKEN",
        help=f"OIDC token for --sigstore (or env {TOKEN_ENV}); "
        "else CI ambient credentials, else a browser sign-in.",
    ),
    click.option("--staging", is_flag=True, help="Use Sigstore's staging instance."),
    click.option(
        "--trust-config",
        type=click.Path(dir_okay=False),
        help="Sigstore ClientTrustConfig JSON (a private instance).",
    ),
    click.option(
        "--oauth-force-oob",
        is_flag=True,
        help="Interactive sign-in prints a URL and asks for the code.",
    ),
    click.option(
        "--password-env",
        metavar="VAR",
        help="Read the key's password (a token's PIN) from environment variable VAR.",
    ),
    click.option(
        "--cert", type=click.Path(dir_okay=False), help="Leaf certificate for the key (PEM)."
    ),
    click.option(
        "--cert-chain",
        "cert_chain",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="Intermediate certificates (PEM) to include. Repeatable.",
    ),
    click.option(
        "--tsa-url",
        metavar="URL",
        help="With --key: have this RFC 3161 timestamp authority date the signature "
        "(a trusted signing time, for freshness and rollback rules).",
    ),
)


@dataclass(frozen=True)
class SignerOptions:
    """The values of :data:`signer_options` (a command takes them as ``**how``)."""

    key: str | None
    use_sigstore: bool
    identity_token: str | None
    staging: bool
    trust_config: str | None
    oauth_force_oob: bool
    password_env: str | None
    cert: str | None
    cert_chain: tuple[str, ...]
    tsa_url: str | None

    @contextmanager
    def opened(self) -> Iterator[Signer]:
        """:meth:`signer`, its token or KMS session (a held key's) closed after use."""
        signer = self.signer()
        try:
            yield signer
        finally:
            if isinstance(signer, KeySigner):
                signer.close()

    def signer(self) -> Signer:
        """The signer they describe; exactly one of --key and --sigstore."""
        if self.use_sigstore == bool(self.key):
            raise InputError("give exactly one of --key or --sigstore", code=Code.USAGE)
        if not self.use_sigstore:
            assert self.key is not None
            return self._key_signer(self.key)
        if self.cert or self.cert_chain or self.password_env or self.tsa_url:
            raise InputError(
                "--cert, --cert-chain, --password-env and --tsa-url go with --key "
                "(Sigstore's own timestamp authorities come with its trust configuration)",
                code=Code.USAGE,
            )
        return SigstoreSigner.create(
            identity_token=self.identity_token,
            staging=self.staging,
            trust_config=self.trust_config,
            oauth_force_oob=self.oauth_force_oob,
        )

    def _key_signer(self, key: str) -> KeySigner:
        if is_key_uri(key):
            return self._held_key_signer(key)
        password = password_from_env(self.password_env)
        chain, tsa_url = self.cert_chain, self.tsa_url
        try:
            return KeySigner.from_files(
                key, password=password, cert=self.cert, chain=chain, tsa_url=tsa_url
            )
        except InputError as exc:
            if (
                exc.code != "KEY_PASSWORD_REQUIRED"
                or password is not None
                or not sys.stdin.isatty()
            ):
                raise
        typed = click.prompt(f"Password for {key}", hide_input=True)
        return KeySigner.from_files(
            key, password=typed.encode("utf-8"), cert=self.cert, chain=chain, tsa_url=tsa_url
        )

    def _held_key_signer(self, uri: str) -> KeySigner:
        """A key in a token or KMS; its PIN (if it needs one) never from the command line."""
        refuse_secret_in_argument(uri)
        return KeySigner.from_uri(
            uri,
            secrets=pin_secrets(self.password_env),
            cert=self.cert,
            chain=self.cert_chain,
            tsa_url=self.tsa_url,
        )


def pin_secrets(password_env: str | None) -> Secrets:
    """Where a token's PIN comes from on the command line: ``--password-env``, else a
    hidden prompt on a terminal (a URI carrying ``pin-value`` was refused before:
    :func:`refuse_secret_in_argument`)."""
    pin = password_from_env(password_env)
    return Secrets(
        pin=pin.decode("utf-8") if pin is not None else None,
        ask=ask_pin if sys.stdin.isatty() else None,
    )


def ask_pin(prompt: str) -> str:
    """Ask on the terminal, hidden (click adds the ": " a backend's prompt may end with)."""
    return str(click.prompt(prompt.rstrip().rstrip(":"), hide_input=True, err=True))


def password_from_env(var: str | None) -> bytes | None:
    """The password in environment variable ``var`` (None: no variable named)."""
    if var is None:
        return None
    value = os.environ.get(var)
    if value is None:
        raise InputError(
            f"--password-env names {var}, which is not set", code=Code.PASSWORD_ENV_UNSET
        )
    return value.encode("utf-8")

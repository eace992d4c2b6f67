"""``modelsign keygen``: a signing key pair."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Final

import click

from .._internal._atomic import write_atomic
from .._internal.signature import keys
from .._internal.signature.keyrefs import generate_held_key, refuse_secret_in_argument
from ..codes import Code
from ..errors import InputError
from . import cli
from ._signer import password_from_env, pin_secrets

KEYGEN_KIND: Final = "modelsign.keygen"


@cli.command("keygen")
@click.option(
    "--type",
    "key_type",
    type=click.Choice(keys.KEY_TYPES),
    default="ec-p256",
    show_default=True,
    help="Key type. EC P-256 is what OMS verifiers accept; they reject Ed25519.",
)
@click.option(
    "--password-env",
    metavar="VAR",
    help="Encrypt the key with the password in environment variable VAR. "
    "Without it, a terminal is asked (empty = unencrypted).",
)
@click.option(
    "-o",
    "--output",
    "prefix",
    required=True,
    metavar="PREFIX",
    help="Writes PREFIX.key and PREFIX.pub (with --pkcs11, PREFIX.pub only).",
)
@click.option(
    "--pkcs11",
    "pkcs11_uri",
    metavar="URI",
    help="Make the key on a PKCS#11 token instead (label and id from the URI's object= and "
    "id=); writes only PREFIX.pub. The PIN comes from --password-env VAR, "
    "MODELSIGN_PKCS11_PIN, the URI's pin-source or a prompt.",
)
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the key files written as JSON (schema modelsign.keygen) on stdout.",
)
def keygen_cmd(
    key_type: keys.KeyType,
    password_env: str | None,
    prefix: str,
    pkcs11_uri: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Generate a signing key pair: PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub.

    With --pkcs11 URI the key pair is made on the token and only PREFIX.pub is
    written: sign with --key URI.
    """
    if pkcs11_uri is not None:
        _keygen_on_token(pkcs11_uri, key_type, password_env, prefix, force, as_json)
        return
    password = password_from_env(password_env)
    if password is None and sys.stdin.isatty():
        typed = click.prompt(
            "Password for the private key (empty for none)",
            default="",
            hide_input=True,
            confirmation_prompt=True,
            show_default=False,
            err=as_json,  # stdout is the JSON object only
        )
        password = typed.encode("utf-8") or None
    if key_type == "ed25519":
        click.echo(
            "warning: OMS verifiers (model_signing) reject Ed25519 signatures; "
            "use ec-p256 for signatures others must verify",
            err=True,
        )
    key_path, pub_path = keys.write_keypair(
        prefix, keys.generate_key(key_type), password=password, force=force
    )
    if password is None:
        click.echo(f"warning: {key_path} is not encrypted", err=True)
    hint = keys.key_hint(keys.load_public_key(pub_path))
    click.echo(f"wrote {key_path} and {pub_path}", err=True)
    click.echo(f"key hint: {hint}", err=True)
    if as_json:
        out = keygen_json(key_path, pub_path, hint, key_type, encrypted=password is not None)
        click.echo(json.dumps(out, indent=2, sort_keys=True))


def _keygen_on_token(
    uri: str,
    key_type: keys.KeyType,
    password_env: str | None,
    prefix: str,
    force: bool,
    as_json: bool,
) -> None:
    refuse_secret_in_argument(uri)
    pub_path = f"{prefix}.pub"
    if not force and os.path.lexists(pub_path):  # before the token gets a key nobody exports
        raise InputError(
            "output exists; pass --force to overwrite", code=Code.OUTPUT_EXISTS, path=pub_path
        )
    public = generate_held_key(uri, key_type, secrets=pin_secrets(password_env))
    write_atomic(pub_path, keys.public_key_pem(public), force=force, mode=0o644)
    hint = keys.key_hint(public)
    click.echo(f"made an {key_type} key on the token at {uri}; wrote {pub_path}", err=True)
    click.echo(f"key hint: {hint}", err=True)
    click.echo(f"sign with: modelsign sign MODEL --key '{uri}'", err=True)
    if as_json:
        out = keygen_json(uri, pub_path, hint, key_type, encrypted=False, held=True)
        click.echo(json.dumps(out, indent=2, sort_keys=True))


def keygen_json(
    key_path: str,
    pub_path: str,
    hint: str,
    key_type: str,
    *,
    encrypted: bool,
    held: bool = False,
) -> dict[str, Any]:
    """What ``keygen --json`` prints: the files written, the key's hint and type."""
    return {
        "kind": KEYGEN_KIND,
        "version": 1,
        "private_key": key_path,
        "public_key": pub_path,
        "key_hint": hint,
        "algorithm": key_type,
        "encrypted": encrypted,
        "held": held,
    }

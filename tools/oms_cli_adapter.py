"""``model_signing``'s command line, done by modelsign: a drop-in for OMS conformance suites.

Usage (the shape of ``model_signing`` 1.1.1's CLI; exit 0 on success, 1 on failure)::

    python tools/oms_cli_adapter.py sign key MODEL --private_key K [--signature S]
    python tools/oms_cli_adapter.py sign certificate MODEL --private_key K \\
        --signing_certificate LEAF [--certificate_chain INTERMEDIATE ...] [--signature S]
    python tools/oms_cli_adapter.py sign [sigstore] MODEL [--identity_token T] \\
        [--trust_config CONFIG] [--use_staging] [--use_ambient_credentials] [--signature S]
    python tools/oms_cli_adapter.py verify key MODEL --signature S --public_key P
    python tools/oms_cli_adapter.py verify certificate MODEL --signature S \\
        --certificate_chain ROOT [...]
    python tools/oms_cli_adapter.py verify [sigstore] MODEL --signature S \\
        --identity ID --identity_provider ISSUER [--trust_config CONFIG] [--use_staging]

Common options: ``--ignore-paths PATH`` (repeatable; paths inside the model, absolute or
relative to the current directory), ``--allow_symlinks``, ``--ignore_unsigned_files``
(verify). Differences from ``model_signing``: an ignore path given when signing also
leaves out same-named entries in subfolders (modelsign records each one it left out, so
either tool verifies the result); when verifying, the signed ``ignore_paths`` are
re-applied and ``--ignore-paths`` only excuses unsigned files; ``--no-ignore-git-paths``,
``--password`` with a bare key only, PKCS #11 and ``--client_id``/``--client_secret`` are
refused. modelsign's own checks apply (e.g. expired certificates fail).
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "modelsign" / "__init__.py").is_file():  # this checkout's modelsign, not another
    sys.path.insert(0, str(_ROOT))

import click  # noqa: E402

import modelsign  # noqa: E402
from modelsign._internal.signature.sigstore import load_trusted_root  # noqa: E402
from modelsign.errors import ModelsignError, VerificationError  # noqa: E402

F = TypeVar("F", bound=Callable[..., Any])
METHODS = ("sigstore", "key", "certificate")
UNSIGNED = frozenset({"FILE_EXTRA"})  # what --ignore_unsigned_files excuses


class _DefaultSigstore(click.Group):
    """``model_signing``'s rule: a first argument that is not a method means ``sigstore``."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["sigstore", *args]
        return super().resolve_command(ctx, args)


def _common(f: F) -> F:
    f = click.argument("model_path", type=click.Path(path_type=Path))(f)
    f = click.option("--ignore-paths", "ignore_paths", multiple=True, type=Path)(f)
    f = click.option("--ignore-git-paths/--no-ignore-git-paths", default=True)(f)
    return click.option("--allow_symlinks", is_flag=True)(f)


def _signing(f: F) -> F:
    return click.option("--signature", type=Path, default=Path("model.sig"))(_common(f))


def _verifying(f: F) -> F:
    f = click.option("--signature", type=Path, required=True)(_common(f))
    return click.option("--ignore_unsigned_files/--no-ignore_unsigned_files", default=False)(f)


def _patterns(model: Path, paths: Sequence[Path]) -> list[str]:
    """Ignore paths as modelsign patterns: relative to the model, glob characters escaped."""
    root = model.resolve()
    out = []
    for p in paths:
        try:
            rel = (p if p.is_absolute() else Path.cwd() / p).resolve().relative_to(root)
        except ValueError:
            continue  # outside the model: model_signing drops it too
        out.append(glob.escape(rel.as_posix()))
    return out


def _fail(what: str, exc: BaseException) -> None:
    message = exc.diagnostics() if isinstance(exc, ModelsignError) else str(exc)
    if isinstance(exc, VerificationError) and exc.findings:
        problems = [p for p in exc.findings if p.severity == "error"]
        message = "; ".join(f"{p.code} {p.file or ''}: {p.message}".strip() for p in problems)
    click.echo(f"{what} failed with error: {message}", err=True)
    sys.exit(1)


def _sign(model: Path, signer: Any, signature: Path, ignore: Sequence[Path], **kw: Any) -> None:
    if not kw.pop("ignore_git_paths"):
        _fail("Signing", ValueError("--no-ignore-git-paths is not supported by modelsign"))
    try:
        modelsign.sign(
            model,
            signer=signer(),
            signature=signature,
            force=True,  # model_signing replaces an existing signature
            ignore=_patterns(model, ignore),
            allow_symlinks=kw["allow_symlinks"],
        )
    except Exception as exc:  # every failure is exit 1, as in model_signing
        _fail("Signing", exc)
    click.echo("Signing succeeded")


def _verify(model: Path, verifier: Callable[[], Any], signature: Path, **kw: Any) -> None:
    try:
        result = modelsign.verify(
            model,
            verifier=verifier(),
            signature=signature,
            ignore=_patterns(model, kw["ignore_paths"]),
        )
    except VerificationError as exc:
        errors = {p.code for p in exc.findings if p.severity == "error"}
        if not (kw["ignore_unsigned_files"] and errors and errors <= UNSIGNED):
            _fail("Verification", exc)
    except Exception as exc:  # every failure is exit 1, as in model_signing
        _fail("Verification", exc)
    else:
        if kw.get("log_fingerprints") and result.signer is not None:
            click.echo(f"signer: {result.signer.model_dump_json(exclude_defaults=True)}")
    click.echo("Verification succeeded")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="INFO", help="Accepted for compatibility; ignored.")
def main(log_level: str) -> None:
    """model_signing's command line, done by modelsign."""


@main.group(name="sign", cls=_DefaultSigstore)
def sign() -> None:
    """Sign a model."""


@sign.command(name="key")
@_signing
@click.option("--private_key", type=Path, required=True)
@click.option("--password", default=None)
def sign_key(model_path: Path, signature: Path, ignore_paths: tuple[Path, ...], **kw: Any) -> None:
    """Sign with a private key (PEM)."""
    key, password = kw.pop("private_key"), kw.pop("password")
    secret = password.encode() if password is not None else None
    signer = lambda: modelsign.KeySigner.from_files(str(key), password=secret)  # noqa: E731
    _sign(model_path, signer, signature, ignore_paths, **kw)


@sign.command(name="certificate")
@_signing
@click.option("--private_key", type=Path, required=True)
@click.option("--signing_certificate", type=Path, required=True)
@click.option("--certificate_chain", type=Path, multiple=True)
def sign_certificate(
    model_path: Path, signature: Path, ignore_paths: tuple[Path, ...], **kw: Any
) -> None:
    """Sign with a private key and its certificate (plus intermediates)."""
    key, leaf, chain = (
        kw.pop("private_key"),
        kw.pop("signing_certificate"),
        kw.pop("certificate_chain"),
    )

    def signer() -> modelsign.KeySigner:
        return modelsign.KeySigner.from_files(
            str(key), cert=str(leaf), chain=[str(c) for c in chain]
        )

    _sign(model_path, signer, signature, ignore_paths, **kw)


@sign.command(name="sigstore")
@_signing
@click.option("--use_ambient_credentials", is_flag=True)
@click.option("--use_staging", is_flag=True)
@click.option("--identity_token", default=None)
@click.option("--oauth_force_oob", is_flag=True)
@click.option("--client_id", default=None)
@click.option("--client_secret", default=None)
@click.option("--trust_config", type=Path, default=None)
def sign_sigstore(
    model_path: Path, signature: Path, ignore_paths: tuple[Path, ...], **kw: Any
) -> None:
    """Sign keylessly with Sigstore."""
    if kw.pop("client_id") or kw.pop("client_secret"):
        _fail("Signing", ValueError("--client_id/--client_secret are not supported by modelsign"))
    token, config = kw.pop("identity_token"), kw.pop("trust_config")
    staging, oob = kw.pop("use_staging"), kw.pop("oauth_force_oob")
    ambient = kw.pop("use_ambient_credentials")

    def signer() -> modelsign.SigstoreSigner:
        return modelsign.SigstoreSigner.create(
            identity_token=token,
            staging=staging,
            trust_config=str(config) if config is not None else None,
            oauth_force_oob=oob,
            interactive=not ambient and token is None and sys.stdin.isatty(),
        )

    _sign(model_path, signer, signature, ignore_paths, **kw)


@main.group(name="verify", cls=_DefaultSigstore)
def verify() -> None:
    """Verify a model against its signature."""


@verify.command(name="key")
@_verifying
@click.option("--public_key", type=Path, required=True)
def verify_key(model_path: Path, signature: Path, **kw: Any) -> None:
    """Verify with a public key (PEM)."""
    key = str(kw.pop("public_key"))
    _verify(model_path, lambda: modelsign.KeyVerifier.from_file(key), signature, **kw)


@verify.command(name="certificate")
@_verifying
@click.option("--certificate_chain", type=Path, multiple=True)
@click.option("--log_fingerprints", is_flag=True)
def verify_certificate(model_path: Path, signature: Path, **kw: Any) -> None:
    """Verify a certificate signature up to the given trusted certificates."""
    chain = [str(c) for c in kw.pop("certificate_chain")]
    _verify(model_path, lambda: modelsign.CertificateVerifier.from_files(chain), signature, **kw)


@verify.command(name="sigstore")
@_verifying
@click.option("--use_staging", is_flag=True)
@click.option("--trust_config", type=Path, default=None)
@click.option("--identity", required=True)
@click.option("--identity_provider", required=True)
def verify_sigstore(model_path: Path, signature: Path, **kw: Any) -> None:
    """Verify a Sigstore signature for an identity and its OIDC issuer."""
    config, staging = kw.pop("trust_config"), kw.pop("use_staging")
    identity, issuer = kw.pop("identity"), kw.pop("identity_provider")

    def verifier() -> modelsign.SigstoreVerifier:
        if config is not None:
            from sigstore.models import ClientTrustConfig

            root: object = ClientTrustConfig.from_json(config.read_text()).trusted_root
        else:
            root = load_trusted_root(None, offline=False, staging=staging)
        return modelsign.SigstoreVerifier(root, identity=identity, issuer=issuer)

    _verify(model_path, verifier, signature, **kw)


if __name__ == "__main__":
    main()

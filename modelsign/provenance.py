"""SLSA Provenance v1 for a model release, signed the same ways as models.

``attest_provenance`` builds an in-toto Statement whose subjects are the
model's files (SHA-256) and whose predicate says who built it (the CI builder,
from runner-set variables only), how (build type, external parameters), and
from what (the source repository and revision, base models, parent
manifests). ``verify_provenance`` checks the signature like any other
modelsign signature, then that the subjects are exactly the model's files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ._internal._atomic import write_atomic
from ._internal._json import canonical_dumps
from ._internal.hashing import TensorHash
from ._internal.manifest import Manifest, manifest_for_tree
from ._internal.metadata.provenance import Builder, Provenance, SourceRepo
from ._internal.signature.bundle import read_bundle, read_signature_file
from ._internal.signature.location import signature_location
from ._internal.signature.own import model_tree
from ._internal.signature.signers import Signer
from ._internal.signature.statement import STATEMENT_TYPE, strict_json
from ._internal.signature.verifiers import SignerInfo, Verifier
from ._version import __version__
from .codes import Code
from .errors import InputError, VerificationError

SLSA_PREDICATE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://modelsign.dev/model-release/v1"
LOCAL_BUILDER = "https://modelsign.dev/builders/local"


__all__ = [
    "AttestResult",
    "ProvenanceInfo",
    "attest_provenance",
    "default_provenance_path",
    "verify_provenance",
]


def builder_id(builder: Builder | None) -> str:
    """The SLSA builder id: the CI workflow when there is one."""
    if builder is None:
        return LOCAL_BUILDER
    f = builder.fields
    if builder.kind == "github-actions" and f.get("GITHUB_WORKFLOW_REF"):
        server = f.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{f['GITHUB_WORKFLOW_REF']}"
    if builder.kind == "gitlab-ci" and f.get("CI_PROJECT_PATH"):
        server = f.get("CI_SERVER_URL", "https://gitlab.com")
        return f"{server}/{f['CI_PROJECT_PATH']}/-/blob/{f.get('CI_COMMIT_SHA', '')}/" + f.get(
            "CI_CONFIG_PATH", ".gitlab-ci.yml"
        )
    return f"https://modelsign.dev/builders/{builder.kind}"


def _claimed_source(builder: Builder) -> tuple[str | None, str | None]:
    """(repository URI, commit) a CI builder's variables name."""
    f = builder.fields
    if builder.kind == "github-actions" and f.get("GITHUB_REPOSITORY"):
        server = f.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{f['GITHUB_REPOSITORY']}", f.get("GITHUB_SHA")
    if builder.kind == "gitlab-ci" and f.get("CI_PROJECT_PATH"):
        server = f.get("CI_SERVER_URL", "https://gitlab.com")
        return f"{server}/{f['CI_PROJECT_PATH']}", f.get("CI_COMMIT_SHA")
    return None, None


def builder_disagreement(builder: Builder | None, signer: SignerInfo | None) -> str | None:
    """Why a keyless signature's certificate contradicts the CI builder the signer claims.

    The builder is read from environment variables anyone can set on a laptop;
    a Fulcio certificate issued to a CI job says, in the generic extensions
    every CI provider fills (source repository URI and commit, build signer
    URI), which job really signed. None when they agree, or when there is
    nothing to compare (no builder claimed, or a key signature: self-reported).
    """
    if builder is None or signer is None or signer.kind != "sigstore":
        return None
    ext = signer.extensions
    repo, commit = _claimed_source(builder)
    cert_repo, cert_commit = ext.get("source_repository_uri"), ext.get("source_repository_digest")
    if repo is None or cert_repo is None:
        return "the certificate names no CI job, but the manifest claims a CI builder"
    if repo != cert_repo:
        return f"the builder claims {repo}, the certificate was issued to {cert_repo}"
    if commit is not None and cert_commit is not None and commit != cert_commit:
        return f"the builder claims commit {commit}, the certificate {cert_commit}"
    signer_uri = ext.get("build_signer_uri")
    if builder.kind == "github-actions" and signer_uri is not None:
        claimed = builder_id(builder)
        if claimed != signer_uri:
            return f"the builder claims workflow {claimed}, the certificate {signer_uri}"
    return None


def _invocation(builder: Builder | None) -> str | None:
    if builder is None:
        return None
    f = builder.fields
    if builder.kind == "github-actions" and f.get("GITHUB_RUN_ID") and f.get("GITHUB_REPOSITORY"):
        server = f.get("GITHUB_SERVER_URL", "https://github.com")
        attempt = f.get("GITHUB_RUN_ATTEMPT", "1")
        run = f"{f['GITHUB_REPOSITORY']}/actions/runs/{f['GITHUB_RUN_ID']}"
        return f"{server}/{run}/attempts/{attempt}"
    if builder.kind == "gitlab-ci" and f.get("CI_JOB_ID") and f.get("CI_PROJECT_PATH"):
        server = f.get("CI_SERVER_URL", "https://gitlab.com")
        return f"{server}/{f['CI_PROJECT_PATH']}/-/jobs/{f['CI_JOB_ID']}"
    return None


def _source_uri(source: SourceRepo) -> str:
    return f"git+https://huggingface.co/{source.repository}"


def provenance_statement(manifest: Manifest) -> bytes:
    """The canonical SLSA v1 statement for a manifest (deterministic for one CI run)."""
    p = manifest.provenance
    external: dict[str, Any] = {"model": manifest.name}
    deps = _dependencies(p, external)
    if p.builder is not None and p.builder.kind == "github-actions":
        external["workflow"] = _workflow(p.builder.fields)
    internal: dict[str, Any] = {"modelsign": __version__, "tensor_hash": manifest.hashing.tensor}
    if p.builder is not None:
        internal["builder_environment"] = dict(sorted(p.builder.fields.items()))
    statement: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f.path, "digest": {"sha256": f.sha256}} for f in manifest.files],
        "predicateType": SLSA_PREDICATE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": deps,
            },
            "runDetails": _run_details(manifest),
        },
    }
    return canonical_dumps(statement)


def _dependencies(p: Provenance, external: dict[str, Any]) -> list[dict[str, Any]]:
    """The source repository, base models and parent manifests (the source also in ``external``)."""
    deps: list[dict[str, Any]] = []
    if p.source is not None:
        dep: dict[str, Any] = {"uri": _source_uri(p.source), "name": "source"}
        if p.source.revision:
            dep["digest"] = {"gitCommit": p.source.revision}
            external["source"] = f"{p.source.repository}@{p.source.revision}"
        else:
            external["source"] = p.source.repository
        deps.append(dep)
    for b in p.base_models:
        ref = b.full_name
        dep = {"uri": b.repo_url or f"https://huggingface.co/{ref}", "name": f"base_model:{ref}"}
        if b.relation:
            dep["annotations"] = {"relation": b.relation}
        deps.append(dep)
    for parent in p.parents:
        algorithm, _, value = parent.digest.partition(":")
        deps.append({"name": f"parent_manifest:{parent.name or ''}", "digest": {algorithm: value}})
    return deps


def _workflow(f: Mapping[str, str]) -> dict[str, str]:
    """A GitHub Actions run's ref, repository and workflow file."""
    return {
        k: v
        for k, v in (
            ("ref", f.get("GITHUB_REF")),
            ("repository", f.get("GITHUB_REPOSITORY")),
            ("path", [*f.get("GITHUB_WORKFLOW_REF", "").split("@")[0].split("/", 2), "", ""][2]),
        )
        if v
    }


def _run_details(manifest: Manifest) -> dict[str, Any]:
    p = manifest.provenance
    run: dict[str, Any] = {"builder": {"id": builder_id(p.builder)}}
    invocation = _invocation(p.builder)
    if invocation:
        run["metadata"] = {"invocationId": invocation}
    run["byproducts"] = [
        {"name": "modelsign-manifest", "digest": {"sha256": manifest.digest().split(":", 1)[1]}}
    ]
    return run


@dataclass(frozen=True)
class AttestResult:
    manifest: Manifest
    path: str
    statement: bytes


def default_provenance_path(model: str | os.PathLike[str]) -> str:
    """``MODEL/model.provenance.sig`` or ``FILE.provenance.sig`` (see ``signature_location``)."""
    return signature_location(model, legacy=False).provenance


def attest_provenance(
    model: str | os.PathLike[str],
    *,
    signer: Signer,
    output: str | os.PathLike[str] | None = None,
    force: bool = False,
    tensor_hash: TensorHash | None = "blake3",
    ignore: tuple[str, ...] = (),
    allow_symlinks: bool = False,
    source: SourceRepo | None = None,
    parents: tuple[Manifest, ...] = (),
    env: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AttestResult:
    """Build, sign and write the SLSA provenance of ``model``.

    Its files are the ones ``sign`` signs (modelsign's own left out by the same
    rule), so the attestation's subjects are the signed files.
    """
    loc = signature_location(model, legacy=False)
    out = os.fspath(output) if output is not None else loc.provenance
    if os.path.lexists(out) and not force:
        raise InputError("provenance exists; pass --force", code=Code.OUTPUT_EXISTS, path=out)
    sidecars = loc.names_inside(loc.signature, loc.claims, loc.provenance, out)
    tree, _own = model_tree(model, ignore=ignore, allow_symlinks=allow_symlinks, sidecars=sidecars)
    manifest = manifest_for_tree(
        tree, tensor_hash=tensor_hash, source=source, parents=parents, env=env, progress=progress
    )
    statement = provenance_statement(manifest)
    write_atomic(out, signer.sign_statement(statement), force=force)
    return AttestResult(manifest, out, statement)


class ProvenanceInfo(BaseModel):
    """What a verified provenance attestation says (part of the verification result)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verified: Literal[True] = True
    path: str
    signer: SignerInfo
    builder_id: str
    #: Whether a keyless signing certificate vouches for the builder; with a key
    #: signature the builder is self-reported, whatever it says.
    builder_certified: bool = False
    build_type: str
    source: str | None = None
    invocation: str | None = None
    dependencies: list[str] = []


def _certified_builder_id(signer: SignerInfo, claimed: str, path: str) -> bool:
    """Whether the certificate vouches for the attested builder id; a keyless
    attestation whose certificate names another builder is refused."""
    if signer.kind != "sigstore" or claimed == LOCAL_BUILDER:
        return False  # a key signature (self-reported builder), or no CI builder claimed
    uri = signer.extensions.get("build_signer_uri")
    if uri is None or uri != claimed:
        raise VerificationError(
            f"the attestation claims builder {claimed}, but its signing certificate "
            f"was issued to {uri or 'no CI build'}",
            code=Code.BUILDER_MISMATCH,
            path=path,
        )
    return True


def verify_provenance(path: str, *, verifier: Verifier, files: Mapping[str, str]) -> ProvenanceInfo:
    """Check a provenance signature and that its subjects are exactly ``files`` (name → sha256).

    ``files`` must come from a verified model (the verified signed resources).
    """
    data = read_signature_file(path, missing=Code.PROVENANCE_NOT_FOUND)
    envelope = read_bundle(data)
    signer = verifier.verify_envelope(envelope)
    st = strict_json(envelope.payload, "the provenance statement")
    if not isinstance(st, dict) or st.get("_type") != STATEMENT_TYPE:
        raise VerificationError("not an in-toto statement", code=Code.PROVENANCE_INVALID, path=path)
    if st.get("predicateType") != SLSA_PREDICATE:
        raise VerificationError(
            f"predicate type {st.get('predicateType')!r} is not SLSA provenance v1",
            code=Code.PROVENANCE_INVALID,
            path=path,
        )
    subjects = st.get("subject")
    attested: dict[str, str] = {}
    for s in subjects if isinstance(subjects, list) else []:
        digest = s.get("digest") if isinstance(s, dict) else None
        if isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(digest, dict):
            attested[s["name"]] = str(digest.get("sha256", ""))
    if attested != dict(files):
        differ = sorted(set(attested.items()) ^ set(files.items()))
        names = sorted({n for n, _ in differ})
        raise VerificationError(
            "the provenance is for other files: " + ", ".join(names[:10]),
            code=Code.PROVENANCE_SUBJECT_MISMATCH,
            path=path,
        )
    pred = st.get("predicate") if isinstance(st.get("predicate"), dict) else {}
    assert isinstance(pred, dict)
    build = pred.get("buildDefinition") or {}
    run = pred.get("runDetails") or {}
    ext = build.get("externalParameters") or {}
    deps = build.get("resolvedDependencies") or []
    claimed = str((run.get("builder") or {}).get("id", ""))
    certified = _certified_builder_id(signer, claimed, path)
    return ProvenanceInfo(
        path=path,
        signer=signer,
        builder_id=claimed,
        builder_certified=certified,
        build_type=str(build.get("buildType", "")),
        source=ext.get("source") if isinstance(ext.get("source"), str) else None,
        invocation=(run.get("metadata") or {}).get("invocationId"),
        dependencies=[str(d.get("uri") or d.get("name")) for d in deps if isinstance(d, dict)],
    )

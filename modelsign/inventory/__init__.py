"""Device inventory: which models are on this machine, and are they the ones we signed?

:func:`scan` finds model artifacts in the stores local runtimes use — Hugging
Face caches, Ollama's store, LM Studio's models folder, the llama.cpp cache —
and under any folders given, and reports for each one what it is (files,
formats, size, quantization, licence, from the strict header readers and the
manifest engine's metadata readers) and a status:

``verified``
    signature valid, from a signer the policy trusts, content intact, policy passed.
``policy-failed``
    signature valid and trusted, content intact, but an enforced rule fails.
``signed-untrusted``
    a signature sits with it, but no trusted signer verified it.
``unsigned``
    no signature.
``tampered``
    the content differs from its signature, or from its content address.
``unsafe-format``
    a pickle file is part of it (loading it runs code).
``unreadable``
    it could not be read (the reason says why: a dangling link, a partial
    download, a damaged header, a permission).

What is read, and when. A scan never loads weights and never follows a symlink
out of a store. Without ``verify`` it reads headers and files of at most
:data:`SMALL_FILE` bytes (the header reader's first block reads those whole
anyway, so they are hashed); weight files are not hashed, so a store of a few
hundred models takes seconds. Content-addressed stores are checked exactly as
far as that goes: an Ollama blob whose size is not the one its manifest
records, or a hashed blob whose SHA-256 (git SHA-1 for a Hugging Face non-LFS
file) is not its name, is ``tampered`` — with no signature needed. With
``verify`` every file is hashed, so every content address is checked and
every signature's content is compared, trusted or not. A model with a
signature is verified in full (which reads every byte) whenever a policy
lists signers, since ``verified`` can mean nothing less. Each entry says how
far its content was checked (``checked``: ``none``, ``size``, ``sha256``,
``signature``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import socket
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr

from .. import __version__
from .._atomic import open_regular_fd, size_mismatch
from ..compare import Problem
from ..discover import MAX_DEPTH, ModelFile, ModelTree, describe_mode, discover
from ..errors import DiscoveryError, InputError, ModelsignError, VerificationError
from ..findings import Finding
from ..formats import SNIFF_BYTES, FileFormat, detect_format
from ..formats.pickle import TORCH_EXTENSIONS
from ..hashing import PEEK_WHOLE, pread_all, stream_digest
from ..manifest import (
    Hashing,
    Ignored,
    Manifest,
    Tool,
    manifest_for_tree,
    metadata_manifest,
)
from ..metadata.licence import Licence
from ..metadata.provenance import Provenance, SourceRepo
from ..metadata.quantization import ModelQuantization
from ..policy import FormatsRule, Policy, PolicyReport, RuleResult, evaluate
from ..sign import DEFAULT_PROVENANCE, DEFAULT_SIGNATURE, SIGNATURE_FILES
from ..signature.attestation import load_signature
from ..signature.bundle import MAX_SIGNATURE_BYTES, Envelope, read_bundle
from ..signature.verifiers import SignerInfo, Verifier
from ..verify import VerificationResult
from ..verify import verify as _verify_model

__all__ = [
    "SMALL_FILE",
    "STATUS_ORDER",
    "Checked",
    "Inventory",
    "InventoryEntry",
    "InventoryFile",
    "QuantizationSummary",
    "SortKey",
    "Status",
    "StoreInfo",
    "StoreKind",
    "cyclonedx_json",
    "scan",
    "sort_models",
    "store_locations",
]

Status = Literal[
    "verified",
    "policy-failed",
    "signed-untrusted",
    "unsigned",
    "tampered",
    "unsafe-format",
    "unreadable",
]
#: Worst first: the order of ``--sort status``.
STATUS_ORDER: Final[tuple[Status, ...]] = (
    "tampered",
    "unreadable",
    "unsafe-format",
    "policy-failed",
    "signed-untrusted",
    "unsigned",
    "verified",
)
StoreKind = Literal["huggingface", "ollama", "lmstudio", "llama.cpp", "path"]
#: How far the content was compared with something: nothing, the sizes a store
#: records, content addresses (hashed), or a signature's manifest.
Checked = Literal["none", "size", "sha256", "signature"]
SortKey = Literal["status", "size", "name"]

#: Files up to this size are read whole (the header reader's first block), so hashed.
SMALL_FILE: Final = PEEK_WHOLE
_MANIFEST_LIMIT: Final = 4 << 20  # an Ollama manifest is a few hundred bytes
_REF_LIMIT: Final = 100

_WEIGHT_SUFFIXES: Final = (".safetensors", ".gguf", *TORCH_EXTENSIONS)
# A folder holding one of these is one model package (a transformers / diffusers
# / PEFT folder, a sharded checkpoint, or a folder someone signed).
_PACKAGE_MARKERS: Final = frozenset(
    {"config.json", "model_index.json", "adapter_config.json", DEFAULT_SIGNATURE}
)
_INDEX_SUFFIX: Final = ".safetensors.index.json"
# Half-downloaded files: huggingface_hub, llama.cpp, browsers and download tools.
_PARTIAL_SUFFIXES: Final = (".incomplete", ".downloadinprogress", ".part", ".partial")
_SKIP_DIRS: Final = frozenset({".git", "__pycache__"})
_SIGNATURE_FILES: Final = (*SIGNATURE_FILES, DEFAULT_PROVENANCE)

_HF_REPO_DIR = re.compile(r"(models|datasets|spaces)--.")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_SHA1_HEX = re.compile(r"[0-9a-f]{40}")
_OLLAMA_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_OLLAMA_PARTIAL = re.compile(r"sha256-([0-9a-f]{64})-partial(?:-\d+)?")
_OLLAMA_HOST = "registry.ollama.ai"
_OLLAMA_FILE_NAMES: Final = {
    "model": "model.gguf",
    "projector": "projector.gguf",
    "adapter": "adapter.gguf",
    "license": "LICENSE",
}

# Verification problems that say the files differ from what was signed; any
# other problem is about the signature or the signer.
_CONTENT_CODES: Final = frozenset(
    {
        "HEADER_MODIFIED",
        "METADATA_MODIFIED",
        "GGUF_KV_MODIFIED",
        "CHAT_TEMPLATE_MODIFIED",
        "FORMAT_CHANGED",
        "SIGNATURE_FOR_FILE",
        "SIGNATURE_FOR_FOLDER",
        "SPECIAL_FILE",
        "BAD_NAME",
        "EMPTY_MODEL",
        "TRUNCATED",
        "HEADER_TOO_LARGE",
        "LAYOUT_GAP",
        "PICKLE_BAD_ZIP",
    }
)
_CONTENT_PREFIXES: Final = ("FILE_", "TENSOR_", "SYMLINK_", "SAFETENSORS_", "GGUF_")
# Errors about the policy's own trust material: a broken policy, not a broken model.
_CONFIG_PREFIXES: Final = ("KEY_", "CERT_", "TRUST_", "POLICY_")
_CONFIG_CODES: Final = frozenset({"NO_TRUST_ROOT", "USAGE", "BAD_REGEX", "PASSWORD_ENV_UNSET"})
# Where an entry's ML-BOM manifest came from (sbom.Origin); None: read from headers only.
_BomOrigin = Literal["model", "verified-signature"] | None


# --- the report (stable JSON schema) -------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InventoryFile(_Out):
    """One file of a model. ``sha256`` only when its bytes were hashed."""

    name: str  # inside the model (Ollama: the layer's role, e.g. model.gguf, LICENSE)
    path: str  # on disk (a cache blob for Hugging Face and Ollama)
    size: int
    format: FileFormat | None = None  # None when the model could not be read
    sha256: str | None = None
    content_address: str | None = None  # the store's name for it: HF etag, Ollama digest


class QuantizationSummary(_Out):
    quantized: bool
    scheme: str | None  # GGUF file type or quant_method, e.g. MOSTLY_Q4_K_M, gptq
    bits_per_weight: float | None


class InventoryEntry(_Out):
    """One model found on the device."""

    name: str  # repo id@revision, model:tag, or a path relative to its store
    store: StoreKind
    location: str  # snapshot folder, Ollama manifest file, model folder or file
    revision: str | None = None  # Hugging Face commit
    refs: list[str] = []  # Hugging Face refs pointing at that commit
    files: list[InventoryFile] = []
    formats: list[str] = []
    size: int = 0
    quantization: QuantizationSummary | None = None
    licence: str | None = None  # SPDX expression
    signature: str | None = None  # the signature file found with the model
    signer: str | None = None
    status: Status
    reason: str | None = None
    checked: Checked = "none"
    policy: list[RuleResult] | None = None  # every rule, when a policy was given
    blocked: bool = False  # fails an enforced rule (or is tampered) under the policy


class StoreInfo(_Out):
    """A place that was (or would have been) scanned."""

    kind: StoreKind
    path: str
    origin: str  # the environment variable that set it, "default" or "root"
    present: bool


class Inventory(_Out):
    """Every model found on one device (schema ``modelsign.inventory`` version 1)."""

    kind: Literal["modelsign.inventory"] = "modelsign.inventory"
    version: Literal[1] = 1
    tool: str = f"modelsign {__version__}"
    host: str
    scanned_at: str
    verify: bool
    policy: bool
    stores: list[StoreInfo]
    models: list[InventoryEntry]
    # What the ML-BOM is built from, by entry key; not part of the JSON.
    _manifests: dict[str, tuple[Manifest, _BomOrigin]] = PrivateAttr(default_factory=dict)

    @property
    def blocked(self) -> bool:
        """Whether any model fails the policy (the CLI's exit code 1)."""
        return any(m.blocked for m in self.models)

    def counts(self) -> dict[str, int]:
        """Models per status, in :data:`STATUS_ORDER`, statuses with none left out."""
        found = [m.status for m in self.models]
        return {s: found.count(s) for s in STATUS_ORDER if s in found}


def _key(entry: InventoryEntry) -> str:
    return f"{entry.store}\0{entry.location}\0{entry.name}"


def sort_models(models: Iterable[InventoryEntry], by: SortKey) -> list[InventoryEntry]:
    """Worst status first, largest first, or by name; name and location break ties."""
    if by == "status":
        return sorted(models, key=lambda m: (STATUS_ORDER.index(m.status), m.name, m.location))
    if by == "size":
        return sorted(models, key=lambda m: (-m.size, m.name, m.location))
    return sorted(models, key=lambda m: (m.name, m.location))


# --- where the stores are ---------------------------------------------------------------


def _expand(path: str, home: str | None) -> str:
    if home and (path == "~" or path.startswith("~/")):
        path = home + path[1:]
    return os.path.abspath(path)


def store_locations(env: Mapping[str, str]) -> list[StoreInfo]:
    """The documented default locations of the local runtimes' stores, with overrides.

    Hugging Face: ``HF_HUB_CACHE`` (or the older ``HUGGINGFACE_HUB_CACHE``),
    else ``HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub`` or
    ``~/.cache/huggingface/hub``. Ollama: ``OLLAMA_MODELS``, else
    ``~/.ollama/models`` and the Linux service's
    ``/usr/share/ollama/.ollama/models``. LM Studio: ``LMSTUDIO_MODELS``, else
    ``~/.lmstudio/models`` and ``~/.cache/lm-studio/models``. llama.cpp:
    ``LLAMA_CACHE``, else ``$XDG_CACHE_HOME/llama.cpp`` or ``~/.cache/llama.cpp``.
    Without ``HOME`` the home-relative defaults are left out.
    """
    home = env.get("HOME") or None
    cache = env.get("XDG_CACHE_HOME") or (os.path.join(home, ".cache") if home else None)
    found: list[tuple[StoreKind, str | None, str]] = []

    def first(kind: StoreKind, names: Sequence[str], *defaults: str | None) -> None:
        for name in names:
            if env.get(name):
                found.append((kind, env[name], name))
                return
        found.extend((kind, d, "default") for d in defaults)

    def at(base: str | None, *parts: str) -> str | None:
        return os.path.join(base, *parts) if base else None

    hf_home = env.get("HF_HOME")
    hub = at(hf_home, "hub") if hf_home else at(cache, "huggingface", "hub")
    first("huggingface", ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"))
    if not found:
        found.append(("huggingface", hub, "HF_HOME" if hf_home else "default"))
    first(
        "ollama",
        ("OLLAMA_MODELS",),
        at(home, ".ollama", "models"),
        "/usr/share/ollama/.ollama/models",
    )
    first(
        "lmstudio",
        ("LMSTUDIO_MODELS",),
        at(home, ".lmstudio", "models"),
        at(home, ".cache", "lm-studio", "models"),
    )
    first("llama.cpp", ("LLAMA_CACHE",), at(cache, "llama.cpp"))
    out = []
    for kind, path, origin in found:
        if path:
            full = _expand(path, home)
            out.append(StoreInfo(kind=kind, path=full, origin=origin, present=os.path.isdir(full)))
    return out


# --- what a scan collects before judging ---------------------------------------------------


class _Unreadable(Exception):
    """A model that cannot be inventoried; the message is the reason shown."""


@dataclass(frozen=True)
class _Address:
    """What a content-addressed store says a file is."""

    algorithm: Literal["sha256", "git-sha1"]
    hex: str
    size: int | None = None  # the size the store recorded, if it records one
    label: str = ""  # the name the store gives it (blobs/sha256-…, an etag)


@dataclass
class _Prepared:
    tree: ModelTree
    target: str  # what a signature covers and verify() is given
    signature: str | None
    addresses: dict[str, _Address]
    source: SourceRepo | None = None


@dataclass
class _Job:
    name: str
    store: StoreKind
    location: str
    prepare: Callable[[], _Prepared] | None  # None: known to be unreadable
    reason: str | None = None
    revision: str | None = None
    refs: tuple[str, ...] = ()


@dataclass
class _SignatureOutcome:
    status: Literal["verified", "policy-failed", "signed-untrusted", "tampered"]
    reason: str | None
    signer: str | None
    compared: bool  # the files were compared with the signed statement
    report: PolicyReport | None = None
    signed: Manifest | None = None  # the verified manifest, for the ML-BOM


def _describe(exc: ModelsignError) -> str:
    where = f"{exc.path}: " if exc.path else ""
    text = f"{exc.code}: {where}{exc.message}"
    if exc.expected is not None or exc.actual is not None:
        text += f" (expected {exc.expected}, actual {exc.actual})"
    return text


def _os_reason(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc.__class__.__name__}{where}"


def _weight_name(name: str) -> bool:
    return name.lower().endswith(_WEIGHT_SUFFIXES)


def _partial_name(name: str) -> bool:
    """A half-downloaded file: any ``.incomplete`` one, or a weight file's ``.part``."""
    lower = name.lower()
    if lower.endswith((".incomplete", ".downloadinprogress")):
        return True
    return any(lower.endswith(s) and _weight_name(lower[: -len(s)]) for s in _PARTIAL_SUFFIXES)


def _is_package(names: Iterable[str]) -> bool:
    return any(n in _PACKAGE_MARKERS or n.endswith(_INDEX_SUFFIX) for n in names)


# --- reading a model without hashing its weights ---------------------------------------------


def _read_small(path: str, limit: int) -> bytes:
    """The first ``limit`` bytes of a regular file, never blocking on a FIFO or following a link."""
    try:
        fd = open_regular_fd(path)
    except DiscoveryError as exc:
        raise _Unreadable(f"{path}: {exc.message}") from None
    try:
        return pread_all(fd, limit)
    finally:
        os.close(fd)


def _empty_manifest(name: str, reason: str | None, location: str) -> Manifest:
    """A manifest with nothing but why, so an unreadable model still has its BOM component.

    The reason is its one finding, named by location: two unreadable models of
    the same name elsewhere stay two components.
    """
    return Manifest(
        name=name,
        single_file=False,
        tool=Tool(version=__version__),
        hashing=Hashing(tensor=None, header="sha256"),
        allow_symlinks=False,
        ignored=Ignored(patterns=[], paths=[]),
        files=[],
        weights_digest=None,
        quantization=ModelQuantization(
            quantized=False,
            scheme=None,
            method=None,
            bits=None,
            group_size=None,
            format=None,
            source=None,
            bits_per_weight=None,
            details={},
        ),
        licence=Licence(spdx=None, sources=[], agree=True),
        provenance=Provenance(),
        findings=[Finding(code="INVENTORY_NO_MANIFEST", message=reason or "", path=location)],
    )


# --- signatures --------------------------------------------------------------------------------


class _AnySigner:
    """Accepts every signature, so that verify() compares the files with the statement.

    Without trusted signers a signature proves nothing about who made it, but
    content that no longer matches it has changed since it was signed: this is
    how ``verify=True`` tells ``tampered`` from ``signed-untrusted`` without a
    policy. A model checked this way is never reported ``verified``.
    """

    def verify_envelope(self, envelope: Envelope) -> SignerInfo:
        if envelope.method == "sigstore":
            return SignerInfo(kind="sigstore")
        if envelope.certificates:
            return SignerInfo(kind="certificate")
        return SignerInfo(kind="key", key_hint=envelope.key_hint)


def _signer_text(info: SignerInfo | None) -> str | None:
    if info is None:
        return None
    if info.kind == "sigstore":
        who = info.identity or "unknown identity"
        return f"sigstore {who}" + (f" ({info.oidc_issuer})" if info.oidc_issuer else "")
    if info.kind == "certificate":
        return f"certificate {info.subject or info.fingerprint or ''}".rstrip()
    return f"key {info.key_hint[:16]}" if info.key_hint else "key"


def _read_signature(sig: str) -> bytes:
    """A signature file's bytes; never a FIFO (a link is followed: HF snapshots link theirs)."""
    st = os.stat(sig)
    if not stat.S_ISREG(st.st_mode):
        raise _Unreadable(f"the signature {sig} is {describe_mode(st.st_mode)}")
    if st.st_size > MAX_SIGNATURE_BYTES:
        raise _Unreadable(f"the signature {sig} is larger than {MAX_SIGNATURE_BYTES} bytes")
    fd = os.open(sig, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        return pread_all(fd, st.st_size)
    finally:
        os.close(fd)


def _claimed_signer(sig: str) -> str:
    """Who the bundle says signed it — read, not verified (a cheap look at the file)."""
    try:
        env = read_bundle(_read_signature(sig))
    except VerificationError as exc:
        return f"unreadable signature ({exc.code})"
    return (_signer_text(_AnySigner().verify_envelope(env)) or "unknown") + " (not verified)"


def _is_content_problem(code: str) -> bool:
    return code in _CONTENT_CODES or code.startswith(_CONTENT_PREFIXES)


def _is_config_error(exc: ModelsignError) -> bool:
    return exc.code in _CONFIG_CODES or exc.code.startswith(_CONFIG_PREFIXES)


def _problem_text(problems: Sequence[Problem]) -> str:
    """The most precise problem (one naming a tensor, if any) and how many more there are."""
    p = next((q for q in problems if q.tensor), problems[0])
    where = f"{p.file}" + (f" [{p.tensor}]" if p.tensor else "") + ": " if p.file else ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{p.code}: {where}{p.message}{more}"


def _rules_text(rules: Sequence[RuleResult]) -> str:
    return "; ".join(f"{r.rule}: {', '.join(r.reasons) or r.status}" for r in rules)


# --- the scanner ---------------------------------------------------------------------------------


class _Scanner:
    """Finds models (cheap: directory listings only), then judges them one by one."""

    def __init__(
        self, policy: Policy | None, verify: bool, verifier: Verifier | None = None
    ) -> None:
        self.policy = policy
        self.verify = verify
        self.verifier = verifier  # the caller's trust: enforced on top of the policy's (Trust)
        self.jobs: list[_Job] = []
        self.stores: list[StoreInfo] = []
        self.scanned: set[str] = set()  # real paths of folders already handled

    # -- finding -------------------------------------------------------------------------

    def add_store(self, info: StoreInfo) -> None:
        self.stores.append(info)
        if not info.present:
            return
        real = os.path.realpath(info.path)  # the store itself may be a link; nothing inside
        if real in self.scanned:
            return
        if info.kind == "huggingface":
            self.scanned.add(real)
            self._scan_hf(real)
        elif info.kind == "ollama":
            self.scanned.add(real)
            self._scan_ollama(real)
        else:
            self._walk(real, info.kind)

    def add_root(self, root: str) -> None:
        path = os.path.abspath(root)
        st = os.stat(path)  # a ROOT given by the user may be a link to follow
        real = os.path.realpath(path)
        self.stores.append(StoreInfo(kind="path", path=path, origin="root", present=True))
        if stat.S_ISDIR(st.st_mode):
            self._walk(real, "path")
        elif stat.S_ISREG(st.st_mode):
            self._single_file(real, "path", os.path.basename(real))
        else:
            self._broken(
                os.path.basename(path), "path", path, f"{describe_mode(st.st_mode)}; not read"
            )

    def _broken(self, name: str, store: StoreKind, location: str, reason: str) -> None:
        self.jobs.append(_Job(name, store, location, None, reason))

    def _walk(self, top: str, kind: StoreKind) -> None:
        """Every model under ``top``, without following a symlink anywhere."""
        stack = [top]
        while stack:
            folder = stack.pop()
            rel = os.path.relpath(folder, top)
            name = os.path.basename(folder) if rel == "." else rel.replace(os.sep, "/")
            if folder in self.scanned:
                continue  # reached from another store or ROOT already
            self.scanned.add(folder)
            if rel.count(os.sep) >= MAX_DEPTH:
                why = f"TOO_DEEP: folders nest more than {MAX_DEPTH} levels; not entered"
                self._broken(name, kind, folder, why)
                continue
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                self._broken(name, kind, folder, f"cannot list folder: {_os_reason(exc)}")
                continue
            names = [e.name for e in entries]
            if self._hf_folder(folder, names):
                continue
            if any(_HF_REPO_DIR.match(e.name) and e.is_dir(follow_symlinks=False) for e in entries):
                self._scan_hf(folder)
                continue
            if "manifests" in names and "blobs" in names:
                self._scan_ollama(folder)
                continue
            if _is_package(names):
                self._package(folder, kind, name)
                continue
            dirs = self._loose(folder, top, kind, entries)
            stack.extend(reversed(dirs))

    def _hf_folder(self, folder: str, names: list[str]) -> bool:
        """A cache repo folder or snapshot folder met on its own (a ROOT inside a cache)."""
        parent = os.path.dirname(folder)
        repo_dir = os.path.dirname(parent)
        if os.path.basename(folder).startswith("models--") and "snapshots" in names:
            self._hf_repo(folder, "the repo has no snapshots")
            return True
        if os.path.basename(parent) == "snapshots" and _HF_REPO_DIR.match(
            os.path.basename(repo_dir)
        ):
            if os.path.basename(repo_dir).startswith("models--"):
                refs = self._hf_refs(repo_dir, _hf_repo_id(repo_dir)).get(os.path.basename(folder))
                name = _hf_repo_id(repo_dir)
                self._hf_revision(
                    name, repo_dir, os.path.basename(folder), folder, tuple(refs or [])
                )
            return True
        return False

    def _loose(
        self, folder: str, top: str, kind: StoreKind, entries: list[os.DirEntry[str]]
    ) -> list[str]:
        """Single weight files of a folder that is not a package; returns its subfolders."""
        dirs = []
        for e in entries:
            rel = os.path.relpath(e.path, top).replace(os.sep, "/")
            try:
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    if e.name not in _SKIP_DIRS:
                        dirs.append(e.path)
                elif _partial_name(e.name):
                    self._broken(rel, kind, e.path, "download incomplete (a partial file)")
                elif not _weight_name(e.name):
                    continue
                elif stat.S_ISLNK(st.st_mode):
                    self._symlink(e.path, rel, top, kind)
                elif not stat.S_ISREG(st.st_mode):
                    self._broken(
                        rel, kind, e.path, f"{describe_mode(st.st_mode)} named like weights"
                    )
                elif self._looks_like_weights(e.path, e.name):
                    self._single_file(e.path, kind, rel)
            except OSError as exc:
                self._broken(rel, kind, e.path, _os_reason(exc))
        return dirs

    def _looks_like_weights(self, path: str, name: str) -> bool:
        """``.bin`` and friends are weights only when their content says so."""
        if name.lower().endswith((".safetensors", ".gguf")):
            return True
        try:
            head = _read_small(path, SNIFF_BYTES)
        except (OSError, _Unreadable):
            return True  # kept, so that judging it reports why it cannot be read
        return detect_format(name, head) != "opaque"

    def _symlink(self, link: str, rel: str, top: str, kind: StoreKind) -> None:
        target = os.readlink(link)
        real = os.path.realpath(link)
        if not os.path.exists(real):
            self._broken(rel, kind, link, f"dangling symlink to {target!r}")
        elif not real.startswith(top + os.sep):
            self._broken(
                rel,
                kind,
                link,
                f"symlink to {target!r} leaves the store; not followed (scan its folder as a ROOT)",
            )
        elif not _weight_name(os.path.basename(real)) and os.path.isfile(real):
            # An alias of a file the walk does not list under its own name.
            self._single_file(real, kind, rel)
        # Otherwise the target is inventoried under its own name.

    def _single_file(self, path: str, kind: StoreKind, name: str) -> None:
        def prepare() -> _Prepared:
            tree = discover(path)
            sig = path + ".sig"
            return _Prepared(tree, path, sig if os.path.lexists(sig) else None, {})

        self.jobs.append(_Job(name, kind, path, prepare))

    def _package(self, folder: str, kind: StoreKind, name: str) -> None:
        def prepare() -> _Prepared:
            tree = discover(folder, exclude=_SIGNATURE_FILES, allow_symlinks=True)
            partial = [f.path for f in tree.files if _partial_name(os.path.basename(f.path))]
            if partial:
                raise _Unreadable(f"download incomplete: {', '.join(partial)}")
            sig = os.path.join(folder, DEFAULT_SIGNATURE)
            return _Prepared(tree, folder, sig if os.path.lexists(sig) else None, {})

        self.jobs.append(_Job(name, kind, folder, prepare))

    # -- Hugging Face ----------------------------------------------------------------------

    def _scan_hf(self, cache: str) -> None:
        """Repos, revisions and refs from huggingface_hub's own cache scanner."""
        from huggingface_hub import scan_cache_dir

        repo_dirs = self._hf_model_repos(cache)
        if repo_dirs is None:
            return
        try:
            info = scan_cache_dir(cache)
        except OSError as exc:
            # It stops at the first unreadable ref or blob; go on repo by repo.
            reason = f"Hugging Face cache scan failed ({_os_reason(exc)})"
            for repo_dir in repo_dirs:
                self._hf_repo(repo_dir, reason)
            return
        for repo in sorted(info.repos, key=lambda r: r.repo_id):
            if repo.repo_type != "model":
                continue
            for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
                self._hf_revision(
                    repo.repo_id,
                    str(repo.repo_path),
                    rev.commit_hash,
                    str(rev.snapshot_path),
                    tuple(sorted(rev.refs)),
                )
        for warning in info.warnings:
            # A corrupted repo is skipped whole by the scanner: name it, and
            # inventory its revisions one by one so one broken link hides nothing.
            text = str(warning)
            named = next((d for d in repo_dirs if _mentions(text, d)), None)
            if named is not None:
                self._hf_repo(named, text)
            elif "models--" in text:
                self._broken(os.path.basename(cache), "huggingface", cache, text)
        incomplete: dict[str, list[str]] = {}
        for inc in info.incomplete_files:
            repo_dir = os.path.dirname(os.path.dirname(str(inc.file_path)))
            if os.path.basename(repo_dir).startswith("models--"):
                rel = os.path.relpath(str(inc.file_path), repo_dir)
                incomplete.setdefault(repo_dir, []).append(f"{rel} ({inc.size_on_disk} bytes)")
        for repo_dir, parts in sorted(incomplete.items()):
            self._broken(
                _hf_repo_id(repo_dir) + " (download incomplete)",
                "huggingface",
                repo_dir,
                "download incomplete: " + ", ".join(sorted(parts)),
            )

    def _hf_model_repos(self, cache: str) -> list[str] | None:
        try:
            entries = sorted(os.scandir(cache), key=lambda e: e.name)
        except OSError as exc:
            self._broken(os.path.basename(cache), "huggingface", cache, _os_reason(exc))
            return None
        return [e.path for e in entries if e.name.startswith("models--")]

    def _hf_refs(self, repo_dir: str, repo_id: str) -> dict[str, list[str]]:
        """Commit → the refs naming it, read from ``refs/`` (an unreadable ref is reported)."""
        refs: dict[str, list[str]] = {}
        refs_dir = os.path.join(repo_dir, "refs")
        for folder, _dirs, files in _walk_tree(refs_dir, self._walk_error("huggingface")):
            for fname in files:
                path = os.path.join(folder, fname)
                try:
                    commit = _read_small(path, _REF_LIMIT).decode("ascii", "replace").strip()
                except (OSError, _Unreadable) as exc:
                    why = _os_reason(exc) if isinstance(exc, OSError) else str(exc)
                    self._broken(repo_id, "huggingface", path, f"ref unreadable: {why}")
                    continue
                refs.setdefault(commit, []).append(os.path.relpath(path, refs_dir))
        return refs

    def _hf_repo(self, repo_dir: str, reason: str) -> None:
        """Revisions of one repo from its layout, when the cache scanner gave up on it."""
        repo_id = _hf_repo_id(repo_dir)
        refs = self._hf_refs(repo_dir, repo_id)
        snaps = os.path.join(repo_dir, "snapshots")
        try:
            revisions = sorted(e.name for e in os.scandir(snaps) if e.is_dir(follow_symlinks=False))
        except OSError as exc:
            self._broken(repo_id, "huggingface", repo_dir, f"{reason}; {_os_reason(exc)}")
            return
        if not revisions:
            self._broken(repo_id, "huggingface", repo_dir, reason)
        for commit in revisions:
            path = os.path.join(snaps, commit)
            self._hf_revision(repo_id, repo_dir, commit, path, tuple(sorted(refs.get(commit, []))))
        for commit, names in sorted(refs.items()):
            if commit not in revisions:
                self._broken(
                    f"{repo_id}@{commit[:40]}",
                    "huggingface",
                    repo_dir,
                    f"{', '.join(sorted(names))} points to {commit[:40]!r}, which has no snapshot",
                )

    def _hf_revision(
        self, repo_id: str, repo_dir: str, commit: str, snapshot: str, refs: tuple[str, ...]
    ) -> None:
        def prepare() -> _Prepared:
            # discover() allows snapshot links into this repo's blobs/ only.
            tree = discover(snapshot, exclude=_SIGNATURE_FILES)
            addresses: dict[str, _Address] = {}
            for f in tree.files:
                if not f.symlink:
                    continue
                link = os.path.join(tree.root, *f.path.split("/"))
                # The first hop is the etag: a shared-store blob it links to is named otherwise.
                etag = os.path.basename(os.readlink(link))
                if _SHA256_HEX.fullmatch(etag):
                    addresses[f.path] = _Address("sha256", etag, label=f"blobs/{etag}")
                elif _SHA1_HEX.fullmatch(etag):
                    addresses[f.path] = _Address("git-sha1", etag, label=f"blobs/{etag}")
            sig = os.path.join(snapshot, DEFAULT_SIGNATURE)
            source = SourceRepo(repository=repo_id, revision=commit, origin="hf-cache")
            # The blob names are checked here (by etag); the provenance comes from `source`.
            plain = dataclasses.replace(tree, hf=None)
            return _Prepared(
                plain, snapshot, sig if os.path.lexists(sig) else None, addresses, source
            )

        self.jobs.append(
            _Job(f"{repo_id}@{commit}", "huggingface", snapshot, prepare, None, commit, refs)
        )

    # -- Ollama ----------------------------------------------------------------------------

    def _scan_ollama(self, root: str) -> None:
        """``manifests/<host>/<namespace>/<model>/<tag>`` → layers in ``blobs/sha256-<hex>``."""
        blobs = os.path.join(root, "blobs")
        manifests = os.path.join(root, "manifests")
        try:
            blob_names = sorted(os.listdir(blobs)) if _real_dir(blobs) else None
        except OSError as exc:
            self._broken("blobs", "ollama", blobs, f"cannot list blobs: {_os_reason(exc)}")
            return
        if blob_names is None:
            self._broken(
                "blobs", "ollama", blobs, "blobs is not a folder (a symlink is not followed)"
            )
            return
        present = set(blob_names)
        for folder, dirs, files in _walk_tree(manifests, self._walk_error("ollama")):
            links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
            for d in links:
                path = os.path.join(folder, d)
                self._broken(d, "ollama", path, "a symlinked manifest folder; not followed")
            dirs[:] = sorted(d for d in dirs if d not in links)
            for fname in sorted(files):
                path = os.path.join(folder, fname)
                parts = os.path.relpath(path, manifests).split(os.sep)
                self._ollama_model(_ollama_name(parts), path, blobs)
        # Ollama writes a model's manifest after all its blobs: partial blobs no
        # manifest references yet are a pull that is running or was interrupted.
        partial: dict[str, list[str]] = {}
        for name in blob_names:
            m = _OLLAMA_PARTIAL.fullmatch(name)
            if m and f"sha256-{m.group(1)}" not in present:
                partial.setdefault(m.group(1), []).append(name)
        for digest, names in sorted(partial.items()):
            self._broken(
                f"sha256-{digest[:12]} (download incomplete)",
                "ollama",
                os.path.join(blobs, f"sha256-{digest}"),
                "download incomplete: " + ", ".join(names),
            )

    def _walk_error(self, kind: StoreKind) -> Callable[[OSError], None]:
        def report(exc: OSError) -> None:
            path = str(exc.filename or "")
            self._broken(os.path.basename(path), kind, path, f"cannot list: {_os_reason(exc)}")

        return report

    def _ollama_model(self, name: str, manifest: str, blobs: str) -> None:
        def prepare() -> _Prepared:
            layers = _read_ollama_manifest(manifest)
            files: list[ModelFile] = []
            addresses: dict[str, _Address] = {}
            target = None
            for role, digest, size in layers:
                fname = _OLLAMA_FILE_NAMES.get(role, role)
                n = 2
                while any(f.path == fname for f in files):
                    fname = f"{_OLLAMA_FILE_NAMES.get(role, role)}-{n}"
                    n += 1
                blob_name = f"sha256-{digest}"
                blob = os.path.join(blobs, blob_name)
                try:
                    st = os.lstat(blob)
                except FileNotFoundError:
                    partial = [b for b in _list(blobs) if b.startswith(blob_name + "-partial")]
                    if partial:
                        raise _Unreadable(f"download incomplete: {', '.join(partial)}") from None
                    raise _Unreadable(f"{fname}: blob {blob_name} is missing") from None
                if not stat.S_ISREG(st.st_mode):
                    raise _Unreadable(
                        f"{fname}: blob {blob_name} is {describe_mode(st.st_mode)}; not followed"
                    )
                files.append(ModelFile(fname, blob, st.st_size, st.st_dev, st.st_ino))
                addresses[fname] = _Address("sha256", digest, size, f"blobs/{blob_name}")
                if role == "model" and target is None:
                    target = blob
            if not files:
                raise _Unreadable("the manifest lists no layers")
            tree = ModelTree(
                root=blobs,
                name=name,
                single_file=False,
                files=tuple(sorted(files, key=lambda f: f.path)),
                ignored=(),
                ignore_patterns=(),
                allow_symlinks=False,
            )
            # A signature of the model's GGUF sits beside its blob (FILE.sig).
            sig = target + ".sig" if target is not None else None
            return _Prepared(
                tree,
                target or blobs,
                sig if sig is not None and os.path.lexists(sig) else None,
                addresses,
            )

        self.jobs.append(_Job(name, "ollama", manifest, prepare))

    # -- judging ---------------------------------------------------------------------------

    def judge(self, job: _Job) -> tuple[InventoryEntry, Manifest, _BomOrigin]:
        if job.prepare is None:
            return self._unreadable(job, job.reason or "unreadable")
        try:
            prep = job.prepare()
            return self._judge(job, prep)
        except _Unreadable as exc:
            return self._unreadable(job, str(exc))
        except ModelsignError as exc:
            if _is_config_error(exc):
                raise  # the policy's keys or roots are broken: nothing can be judged
            return self._unreadable(job, _describe(exc))
        except OSError as exc:
            return self._unreadable(job, _os_reason(exc))

    def _manifest(self, prep: _Prepared, *, hash_all: bool) -> Manifest:
        """Metadata of the model: by the manifest engine, hashing only what must be."""
        if self.verify and hash_all:
            return manifest_for_tree(prep.tree, tensor_hash=None, source=prep.source, env={})
        return metadata_manifest(prep.tree, source=prep.source)

    def _size_mismatches(self, prep: _Prepared) -> list[str]:
        """Files whose size is not the one the signature's manifest records (read, not trusted).

        Compared before anything is hashed: such a model differs from its
        signature whoever signed it (``tampered``), and its files are not read
        — a huge or sparse file swapped in costs a stat, not a read.
        """
        if prep.signature is None:
            return []
        try:
            signed = self._signed_manifest(prep.signature)
        except (ModelsignError, OSError, _Unreadable):
            return []  # verify() says why the signature is unusable
        if signed is None:
            return []
        files = prep.tree.files
        if signed.single_file:
            target = os.path.abspath(prep.target)
            files = tuple(f for f in files if f.real == target) or files[:1]
            sizes = {f.path: signed.files[0].size for f in files}
        else:
            sizes = {e.path: e.size for e in signed.files}
        return [
            _describe(size_mismatch(f.path, sizes[f.path], f.size))
            for f in files
            if sizes.get(f.path, f.size) != f.size
        ]

    def _check_addresses(
        self, prep: _Prepared, manifest: Manifest | None
    ) -> tuple[list[str], Checked]:
        """Content addresses: sizes always, digests of whatever was hashed."""
        files = {f.path: f for f in prep.tree.files}
        hashed = {e.path: e.sha256 for e in manifest.files if e.sha256} if manifest else {}
        tampered: list[str] = []
        exact = 0
        sized = 0
        for name, addr in sorted(prep.addresses.items()):
            f = files[name]
            if addr.size is not None:
                sized += 1
                if f.size != addr.size:
                    tampered.append(
                        f"{name}: {addr.label} is {f.size} bytes; the store's manifest says "
                        f"{addr.size}"
                    )
                    continue
            actual: str | None = None
            if addr.algorithm == "git-sha1":
                if self.verify or f.size <= SMALL_FILE:
                    # A git blob id: what the Hub names a non-LFS file's cache blob.
                    git = hashlib.sha1(b"blob %d\0" % f.size, usedforsecurity=False)
                    actual = stream_digest(f, git)
            elif name in hashed:
                actual = hashed[name]
            elif self.verify and manifest is None:  # a damaged file: altered, or as published?
                actual = stream_digest(f, hashlib.sha256())
            if actual is None:
                continue
            exact += 1
            if actual != addr.hex:
                tampered.append(
                    f"{name}: content {addr.algorithm} {actual} is not its name {addr.label}"
                )
        if not prep.addresses:
            return tampered, "none"
        if exact == len(prep.addresses):
            return tampered, "sha256"
        return tampered, "size" if sized == len(prep.addresses) else "none"

    def _judge(self, job: _Job, prep: _Prepared) -> tuple[InventoryEntry, Manifest, _BomOrigin]:
        problem: str | None = None
        manifest: Manifest | None
        wrong_size = self._size_mismatches(prep)
        try:
            manifest = self._manifest(prep, hash_all=not wrong_size)
        except ModelsignError as exc:
            if _is_config_error(exc):
                raise
            manifest, problem = None, _describe(exc)
        tampered, checked = self._check_addresses(prep, manifest)
        tampered = wrong_size + tampered
        outcome: _SignatureOutcome | None = None
        if not tampered and manifest is not None and prep.signature is not None:
            outcome = self._check_signature(prep, self._known(prep, manifest))
        if outcome is not None and outcome.compared:
            checked = "signature"

        status: Status
        reason: str | None = None
        # Every file in the folder counts, signed, ignored at signing or unsigned: a
        # signature never makes a pickle beside the model safe to have (unless the
        # policy's formats rule allows pickle).
        pickle = manifest is not None and any(f.format == "pickle" for f in manifest.files)
        verified_ok = outcome is not None and outcome.status == "verified"
        if tampered:
            status, reason = "tampered", "; ".join(tampered)
        elif manifest is None:
            status, reason = "unreadable", problem
        elif outcome is not None and (
            outcome.status == "tampered" or (verified_ok and not (pickle and not self._pickle_ok()))
        ):
            status, reason = outcome.status, outcome.reason
        elif pickle:
            names = [f.path for f in manifest.files if f.format == "pickle"]
            status = "unsafe-format"
            reason = f"pickle (loading it runs code): {', '.join(names)}"
            if outcome is not None and outcome.reason:
                reason += f"; {outcome.reason}"
        elif outcome is not None:
            status, reason = outcome.status, outcome.reason
        else:
            status = "unsigned"

        report = outcome.report if outcome is not None else None
        if self.policy is not None and report is None:
            why = reason or (
                "no signature with the model" if prep.signature is None else "not verified"
            )
            report = evaluate(
                self.policy,
                manifest=manifest,
                signer=None,
                signature_problems=[why],
                unsigned_files={},
                verifier_given=self.verifier is not None,
            )
        if status == "unsigned" and report is not None and report.blocked:
            reason = "policy: " + _rules_text([r for r in report.rules if r.status == "fail"])

        signer = outcome.signer if outcome is not None else None
        entry = self._entry(job, prep, manifest, status, reason, checked, report, signer)
        if outcome is not None and outcome.signed is not None:
            return entry, outcome.signed, "verified-signature"
        if manifest is None:
            return (
                entry,
                _empty_manifest(_bom_name(job, prep.tree.name), reason, job.location),
                None,
            )
        return entry, manifest, "model" if self.verify else None

    def _known(self, prep: _Prepared, manifest: Manifest) -> dict[tuple[int, int], str]:
        """The SHA-256 of each file the manifest hashed (all, under --verify), by inode.

        verify() then reads a file again only when it differs from its signature.
        """
        hashed = {e.path: e.sha256 for e in manifest.files if e.sha256}
        return {(f.dev, f.ino): hashed[f.path] for f in prep.tree.files if f.path in hashed}

    def _check_signature(
        self, prep: _Prepared, known: dict[tuple[int, int], str]
    ) -> _SignatureOutcome:
        assert prep.signature is not None
        policy = self.policy
        if self.verifier is not None or (policy is not None and policy.signers is not None):
            result = self._run_verify(prep, policy, known, trusted=True)
            outcome = self._classify(result, policy, trusted=True)
            if outcome.status == "signed-untrusted" and not outcome.compared and self.verify:
                content = self._classify(self._run_verify(prep, None, known), None)
                if content.status == "tampered":
                    content.report = outcome.report
                    content.signer = outcome.signer
                    return content
            if outcome.status == "verified":
                outcome.signed = self._signed_manifest(prep.signature)
            elif outcome.signer is None:  # not trusted: say who it claims to be
                outcome.signer = _claimed_signer(prep.signature)
            return outcome
        why = (
            "the policy lists no signers"
            if policy is not None
            else "no policy gives trusted signers"
        )
        if self.verify:
            outcome = self._classify(self._run_verify(prep, None, known), None)
            if outcome.status == "verified":  # content matches, but nobody vouches for it
                outcome.status = "signed-untrusted"
                outcome.reason = f"the content matches the signature, but {why}"
            return outcome
        return _SignatureOutcome(
            "signed-untrusted",
            f"signature not checked: {why}",
            _claimed_signer(prep.signature),
            False,
        )

    def _run_verify(
        self,
        prep: _Prepared,
        policy: Policy | None,
        known: dict[tuple[int, int], str],
        *,
        trusted: bool = False,
    ) -> VerificationResult:
        """verify() with the caller's and the policy's trust, or (untrusted) any signer's."""
        target, sig = prep.target, prep.signature
        try:
            if not trusted:
                verifier = _AnySigner()
                return _verify_model(target, verifier=verifier, signature=sig, _known_sha256=known)
            return _verify_model(
                target, verifier=self.verifier, policy=policy, signature=sig, _known_sha256=known
            )
        except VerificationError as exc:
            if exc.result is None:
                raise
            result: VerificationResult = exc.result
            return result

    def _classify(
        self, result: VerificationResult, policy: Policy | None, *, trusted: bool = False
    ) -> _SignatureOutcome:
        problems = [p for p in result.problems if p.severity != "info"]
        if policy is not None and policy.coverage is not None:
            # Unsigned extra files are the coverage rule's to judge.
            problems = [p for p in problems if p.code != "FILE_EXTRA"]
        content = [p for p in problems if _is_content_problem(p.code)]
        trust = [p for p in problems if not _is_content_problem(p.code)]
        signer = _signer_text(result.signer)
        if not trusted and signer is not None:
            signer += " (not verified)"
        compared = result.subject is not None
        report = result.policy
        failed = [r for r in report.rules if r.status == "fail"] if report else []
        if content:
            return _SignatureOutcome("tampered", _problem_text(content), signer, compared, report)
        if trust:
            return _SignatureOutcome(
                "signed-untrusted", _problem_text(trust), signer, compared, report
            )
        if failed:
            return _SignatureOutcome(
                "policy-failed", "policy: " + _rules_text(failed), signer, compared, report
            )
        warned = [r for r in report.rules if r.status == "warn"] if report else []
        note = "policy warns: " + _rules_text(warned) if warned else None
        return _SignatureOutcome("verified", note, signer, compared, report)

    def _signed_manifest(self, sig: str) -> Manifest | None:
        """The manifest a verified signature carries (None for an OMS-only signature)."""
        return load_signature(sig, data=_read_signature(sig)).statement.manifest

    def _pickle_ok(self) -> bool:
        """Whether the policy's formats rule allows pickle (a policy without one denies it)."""
        if self.policy is None:
            return False
        rule = self.policy.formats or FormatsRule()
        return "pickle" not in rule.deny and (rule.allow is None or "pickle" in rule.allow)

    def _blocked(self, status: Status, report: PolicyReport | None) -> bool:
        if self.policy is None:
            # The caller's trust alone: a signed model it does not vouch for is refused.
            return self.verifier is not None and status in ("tampered", "signed-untrusted")
        if report is not None and report.blocked:
            return True
        # No policy rule can make altered content acceptable; a pickle is refused
        # unless the policy's formats rule says otherwise.
        return status == "tampered" or (status == "unsafe-format" and self.policy.formats is None)

    def _entry(
        self,
        job: _Job,
        prep: _Prepared,
        manifest: Manifest | None,
        status: Status,
        reason: str | None,
        checked: Checked,
        report: PolicyReport | None,
        signer: str | None,
    ) -> InventoryEntry:
        by_name = {e.path: e for e in manifest.files} if manifest else {}
        files = []
        for f in prep.tree.files:
            e = by_name.get(f.path)
            addr = prep.addresses.get(f.path)
            files.append(
                InventoryFile(
                    name=f.path,
                    path=f.real,
                    size=f.size,
                    format=e.format if e else None,
                    sha256=(e.sha256 or None) if e else None,
                    content_address=addr.hex if addr else None,
                )
            )
        quant = None
        if manifest is not None and any(e.weights is not None for e in manifest.files):
            q = manifest.quantization
            quant = QuantizationSummary(
                quantized=q.quantized, scheme=q.scheme, bits_per_weight=q.bits_per_weight
            )
        return InventoryEntry(
            name=job.name,
            store=job.store,
            location=job.location,
            revision=job.revision,
            refs=list(job.refs),
            files=files,
            formats=sorted({e.format for e in manifest.files}) if manifest else [],
            size=sum(f.size for f in prep.tree.files),
            quantization=quant,
            licence=manifest.licence.spdx if manifest else None,
            signature=prep.signature,
            signer=signer,
            status=status,
            reason=reason,
            checked=checked,
            policy=list(report.rules) if report is not None else None,
            blocked=self._blocked(status, report),
        )

    def _unreadable(self, job: _Job, reason: str) -> tuple[InventoryEntry, Manifest, _BomOrigin]:
        report = None
        if self.policy is not None:
            report = evaluate(
                self.policy,
                manifest=None,
                signer=None,
                signature_problems=[f"the model is unreadable: {reason}"],
                unsigned_files={},
                verifier_given=self.verifier is not None,
            )
        entry = InventoryEntry(
            name=job.name,
            store=job.store,
            location=job.location,
            revision=job.revision,
            refs=list(job.refs),
            status="unreadable",
            reason=reason,
            policy=list(report.rules) if report is not None else None,
            blocked=self._blocked("unreadable", report),
        )
        return entry, _empty_manifest(job.name, reason, job.location), None


def _bom_name(job: _Job, tree_name: str) -> str:
    return tree_name if job.store == "huggingface" else job.name


def _mentions(text: str, path: str) -> bool:
    """Whether a message names ``path`` itself or something inside it."""
    i = text.find(path)
    while i >= 0:
        after = text[i + len(path) : i + len(path) + 1]
        if after in ("", os.sep, ")", ":", " ", ",", "'", '"', "."):
            return True
        i = text.find(path, i + 1)
    return False


def _hf_repo_id(repo_dir: str) -> str:
    return os.path.basename(repo_dir).split("--", 1)[-1].replace("--", "/")


def _walk_tree(
    top: str, onerror: Callable[[OSError], None]
) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top, onerror=...)`` (top-down, links listed, not followed) with a stack.

    Python 3.11's ``os.walk`` recurses, so a store nested deep enough would end
    the scan in a ``RecursionError``; past :data:`MAX_DEPTH` a folder is
    reported through ``onerror`` and not entered.
    """
    stack = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            onerror(exc)
            continue
        dirs = [e.name for e in entries if e.is_dir()]
        files = [e.name for e in entries if not e.is_dir()]
        yield folder, dirs, files  # the caller may prune ``dirs``, as with os.walk
        deeper = [os.path.join(folder, d) for d in dirs]
        deeper = [d for d in deeper if not os.path.islink(d)]
        if deeper and depth >= MAX_DEPTH:
            onerror(OSError(0, f"TOO_DEEP: folders nest more than {MAX_DEPTH} levels", folder))
            continue
        stack.extend((d, depth + 1) for d in reversed(deeper))


def _real_dir(path: str) -> bool:
    return stat.S_ISDIR(os.lstat(path).st_mode)


def _list(folder: str) -> list[str]:
    return sorted(os.listdir(folder))


def _ollama_name(parts: Sequence[str]) -> str:
    """``model:tag`` for the default namespace, else ``namespace/model:tag`` (host kept)."""
    *repo, tag = parts
    if repo and repo[0] == _OLLAMA_HOST:
        repo = repo[1:]
        if len(repo) == 2 and repo[0] == "library":
            repo = repo[1:]
    return "/".join(repo) + ":" + tag if repo else tag


def _read_ollama_manifest(path: str) -> list[tuple[str, str, int]]:
    """``(role, sha256 hex, size)`` of every layer and the config; refuses anything odd."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _Unreadable(f"the manifest is {describe_mode(st.st_mode)}; not followed")
    if st.st_size > _MANIFEST_LIMIT:
        raise _Unreadable(f"the manifest is {st.st_size} bytes, over {_MANIFEST_LIMIT}")
    data = _read_small(path, _MANIFEST_LIMIT)
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise _Unreadable(f"the manifest is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("layers"), list):
        raise _Unreadable("the manifest has no layers list")
    items: list[tuple[str, object]] = [(f"layers[{i}]", x) for i, x in enumerate(obj["layers"])]
    if obj.get("config") is not None:
        items.append(("config", obj["config"]))
    out = []
    for where, layer in items:
        if not isinstance(layer, dict):
            raise _Unreadable(f"manifest {where} is not an object")
        media, digest, size = layer.get("mediaType"), layer.get("digest"), layer.get("size")
        m = _OLLAMA_DIGEST.fullmatch(digest) if isinstance(digest, str) else None
        if m is None:
            raise _Unreadable(f"manifest {where}.digest {digest!r} is not sha256:<64 hex>")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _Unreadable(f"manifest {where}.size {size!r} is not a byte count")
        if where == "config":
            role = "config"
        elif isinstance(media, str) and media.startswith("application/vnd.ollama.image."):
            role = re.sub(r"[^A-Za-z0-9._-]", "_", media.rsplit(".", 1)[-1]) or "layer"
        else:
            role = "layer"
        out.append((role, m.group(1), size))
    return out


# --- the public entry points ---------------------------------------------------------------------


def scan(
    roots: Sequence[str | os.PathLike[str]] = (),
    *,
    env: Mapping[str, str] | None = None,
    default_stores: bool = True,
    policy: Policy | None = None,
    verify: bool = False,
    progress: Callable[[int, int], None] | None = None,
    verifier: Verifier | None = None,
) -> Inventory:
    """Inventory every model in the default stores (from ``env``) and under ``roots``.

    ``policy`` judges every model (and verifies every signed one in full);
    ``verifier`` is the caller's own trust, enforced on top of the policy's
    signers as in :func:`modelsign.verify` (see :class:`~modelsign.policy.Trust`);
    ``verify`` hashes every file, checking every content address and every
    signature's content. ``progress(done, total)`` is called once per model.
    Raises :class:`InputError` for a ROOT that does not exist or a policy whose
    trust material cannot be loaded; anything wrong with a model is reported in
    its entry instead.
    """
    environ = os.environ if env is None else env
    scanner = _Scanner(policy, verify, verifier)
    if default_stores:
        for info in store_locations(environ):
            scanner.add_store(info)
    for root in roots:
        path = os.fspath(root)
        if not os.path.lexists(path):
            raise InputError(f"no such file or folder: {path}", code="NOT_FOUND", path=path)
        try:
            scanner.add_root(path)
        except OSError as exc:
            raise InputError(
                f"cannot read {path}: {_os_reason(exc)}", code="UNREADABLE", path=path
            ) from exc
    seen: set[tuple[str, str]] = set()
    jobs = []
    for job in scanner.jobs:
        if (job.location, job.name) not in seen:
            seen.add((job.location, job.name))
            jobs.append(job)
    models: list[InventoryEntry] = []
    manifests: dict[str, tuple[Manifest, _BomOrigin]] = {}
    for i, job in enumerate(jobs):
        entry, manifest, origin = scanner.judge(job)
        models.append(entry)
        manifests[_key(entry)] = (manifest, origin)
        if progress is not None:
            progress(i + 1, len(jobs))
    inventory = Inventory(
        host=socket.gethostname(),
        scanned_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        verify=verify,
        policy=policy is not None,
        stores=scanner.stores,
        models=sorted(models, key=lambda m: (m.store, m.name, m.location)),
    )
    inventory._manifests = manifests
    return inventory


def cyclonedx_json(inventory: Inventory, *, timestamp: datetime | None = None) -> str:
    """The device's CycloneDX 1.6 ML-BOM: the host is the subject, one component per model.

    Each model component comes from :class:`~modelsign.sbom.BomBuilder` with
    its manifest — the verified signed one, the fully hashed one under
    ``verify``, or the header-only one — and carries the inventory's verdict as
    ``modelsign:inventory:*`` properties. File hashes are given only for bytes
    that were hashed; a header-only manifest's own digest properties are left
    out, since that manifest is not one anybody signed or could check.
    """
    from cyclonedx.model import HashType, Property
    from cyclonedx.model.component import Component, ComponentType

    from ..sbom import NAMESPACE, BomBuilder

    def prop(name: str, value: str) -> Property:
        return Property(name=f"{NAMESPACE}inventory:{name}", value=value)

    def known(hashes: Iterable[HashType]) -> list[HashType]:
        return [h for h in hashes if h.content]

    device = Component(
        type=ComponentType.DEVICE,
        name=inventory.host,
        bom_ref=f"device:{inventory.host}",
        properties=[prop("scanned_at", inventory.scanned_at)]
        + [prop("store", f"{s.kind} {s.path}") for s in inventory.stores if s.present],
    )
    builder = BomBuilder(subject=device, timestamp=timestamp)
    added: set[str] = set()
    for entry in inventory.models:
        manifest, origin = inventory._manifests.get(
            _key(entry), (_empty_manifest(entry.name, entry.reason, entry.location), None)
        )
        component = builder.add_model(manifest, origin=origin)
        ref = str(component.bom_ref)
        props = [
            prop("location", entry.location),
            prop("status", f"{entry.status}: {entry.location}"),
        ]
        if ref in added:  # the same model at a second place: record that place
            component.properties = [*component.properties, *props]
            continue
        added.add(ref)
        header_only = origin is None
        drop = (f"{NAMESPACE}manifest:", f"{NAMESPACE}hashing:")
        kept = [p for p in component.properties if not (header_only and p.name.startswith(drop))]
        props += [
            prop("name", entry.name),
            prop("store", entry.store),
            prop("checked", entry.checked),
        ]
        if entry.reason:
            props.append(prop("reason", entry.reason))
        if entry.signature:
            props.append(prop("signature", entry.signature))
        if entry.signer:
            props.append(prop("signer", entry.signer))
        props += [prop("policy", f"{r.rule}: {r.status}") for r in entry.policy or []]
        component.properties = [*kept, *props]
        component.hashes = known(component.hashes)
        subs = list(component.components)
        for sub in subs:
            sub.hashes = known(sub.hashes)
        component.components = subs  # re-sorted: hashes are part of a component's order
    return builder.to_json()

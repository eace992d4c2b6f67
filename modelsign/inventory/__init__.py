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
    a pickle-bearing file is part of it (loading it runs code) that the
    policy's formats rule does not admit — under ``pickle: safe-state-dicts``
    named with why it is no safe state dict; a model that did not verify
    under the policy counts every pickle.
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
signature is verified in full (which reads every byte) whenever there is
trust to verify it with — a policy that lists signers, or the caller's
``verifier`` — since ``verified`` can mean nothing less. Each entry says how
far its content was checked (``checked``: ``none``, ``size``, ``sha256``,
``signature``).

Which models fail the scan (``blocked``; the command's exit code 1): every
``tampered`` one, whatever the policy — or without one; with the caller's
trust (``verifier``), every signed one it does not verify; under a policy,
every one that fails an enforced rule (a pickle, unless its formats rule
admits it; an unsigned or unreadable one, when it lists signers); with
``require_signed``, every unsigned or unreadable one. Nothing else: without
trust a signature is reported, not believed, and an unsigned model is no
failure.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

from .._internal.manifest import Manifest
from .._internal.signature.verifiers import Verifier
from ..codes import Code
from ..errors import InputError
from ..policy import Policy
from .bom import cyclonedx_json
from .check import SMALL_FILE
from .jobs import Job, os_reason
from .report import (
    STATUS_ORDER,
    BomOrigin,
    Checked,
    Inventory,
    InventoryEntry,
    InventoryFile,
    QuantizationSummary,
    SortKey,
    Status,
    StoreInfo,
    StoreKind,
    entry_key,
    sort_models,
)
from .status import Judge
from .stores import store_locations
from .walk import Finder

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


def scan(
    roots: Sequence[str | os.PathLike[str]] = (),
    *,
    env: Mapping[str, str] | None = None,
    default_stores: bool = True,
    policy: Policy | None = None,
    verify: bool = False,
    progress: Callable[[int, int], None] | None = None,
    verifier: Verifier | None = None,
    require_signed: bool = False,
) -> Inventory:
    """Inventory every model in the default stores (from ``env``) and under ``roots``.

    ``policy`` judges every model (and verifies every signed one in full);
    ``verifier`` is the caller's own trust, enforced on top of the policy's
    signers as in :func:`modelsign.verify` (see :class:`~modelsign._trust.Trust`);
    ``verify`` hashes every file, checking every content address and every
    signature's content; ``require_signed`` blocks every model without a
    signature (and every unreadable one). ``progress(done, total)`` is called
    once per model. Which models are ``blocked``: see the module's docstring.
    Raises :class:`InputError` for a ROOT that does not exist or a policy whose
    trust material cannot be loaded; anything wrong with a model is reported in
    its entry instead.
    """
    finder = _find(roots, os.environ if env is None else env, default_stores)
    judge = Judge(policy, verify, verifier, require_signed=require_signed)
    jobs = _unique(finder.jobs)
    models: list[InventoryEntry] = []
    manifests: dict[str, tuple[Manifest, BomOrigin]] = {}
    for i, job in enumerate(jobs):
        entry, manifest, origin = judge.judge(job)
        models.append(entry)
        manifests[entry_key(entry)] = (manifest, origin)
        if progress is not None:
            progress(i + 1, len(jobs))
    inventory = Inventory(
        host=socket.gethostname(),
        scanned_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        verify=verify,
        policy=policy is not None,
        stores=finder.stores,
        models=sorted(models, key=lambda m: (m.store, m.name, m.location)),
    )
    inventory._manifests = manifests
    return inventory


def _find(
    roots: Sequence[str | os.PathLike[str]], env: Mapping[str, str], default_stores: bool
) -> Finder:
    """Every model in the stores and under the ROOTs (listings only: nothing is judged yet)."""
    finder = Finder()
    if default_stores:
        for info in store_locations(env):
            finder.add_store(info)
    for root in roots:
        path = os.fspath(root)
        if not os.path.lexists(path):
            raise InputError(f"no such file or folder: {path}", code=Code.NOT_FOUND, path=path)
        try:
            finder.add_root(path)
        except OSError as exc:
            raise InputError(
                f"cannot read {path}: {os_reason(exc)}", code=Code.UNREADABLE, path=path
            ) from exc
    return finder


def _unique(found: Sequence[Job]) -> list[Job]:
    """The first job of each (location, name): a model reached twice is judged once."""
    seen: set[tuple[str, str]] = set()
    jobs: list[Job] = []
    for job in found:
        if (job.location, job.name) not in seen:
            seen.add((job.location, job.name))
            jobs.append(job)
    return jobs

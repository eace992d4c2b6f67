"""Pickle checkpoints for the pickle-setting tests, and the manifest builder's analysis of them.

The manifest contract: a pickle-bearing file whose every pickle imports only
allowlisted globals (and that is no TorchScript archive) carries the flag
``safe-state-dict``, and the analyser's findings (``PICKLE_DANGEROUS_GLOBAL``,
``PICKLE_UNKNOWN_GLOBAL``, ``PICKLE_TORCHSCRIPT``) are recorded for the file.
Where the builder does not analyse yet, :func:`analysing_builder` makes it
(and does nothing to an entry the builder already analysed).
"""

from __future__ import annotations

import argparse
import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from modelsign._internal.findings import Finding
from modelsign._internal.formats.pickle_scan import scan_checkpoint_bytes
from modelsign._internal.hashing import FileDigests
from modelsign._internal.manifest import FileEntry, build, entries
from modelsign.codes import Code
from modelsign.errors import FormatError
from modelsign.policy import SAFE_STATE_DICT, bears_pickle

ANALYSER_CODES = (Code.PICKLE_DANGEROUS_GLOBAL, Code.PICKLE_UNKNOWN_GLOBAL, Code.PICKLE_TORCHSCRIPT)
WEIGHTS = {
    "alpha": torch.arange(12, dtype=torch.float32).reshape(3, 4),
    "beta": torch.tensor([1, -2, 3], dtype=torch.int64),
}


class Payload:
    """Unpickled, it makes a marker folder: code execution, observable (``os.makedirs``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.makedirs, (str(self.marker),))


def saved(obj: object, *, zip_format: bool = True) -> bytes:
    """``torch.save(obj)``, in the ZIP format or the legacy one."""
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=zip_format)
    return buf.getvalue()


def safe_checkpoint() -> bytes:
    return saved(WEIGHTS)


def dangerous_checkpoint(marker: Path) -> bytes:
    """A checkpoint whose loading calls ``os.makedirs`` (makes ``marker``)."""
    return saved({"w": WEIGHTS["alpha"], "x": Payload(marker)})


def unknown_checkpoint() -> bytes:
    """A checkpoint importing a global outside the allowlist, but not a dangerous one."""
    return saved({"w": WEIGHTS["alpha"], "args": argparse.Namespace(lr=0.1)})


def torchscript_archive() -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # torch.jit is deprecated; TorchScript files are not gone
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)
    return buf.getvalue()


def analysed_entry(d: FileDigests, *, claim_safe: bool = False) -> tuple[FileEntry, list[Finding]]:
    """:func:`entries.file_entry`, with the pickle analysis the manifest contract asks for.

    ``claim_safe``: flag every pickle a safe state dict whatever it holds (a
    manifest that lies, as a compromised signer's could).
    """
    entry, findings = entries.file_entry(d)
    analysed = SAFE_STATE_DICT in entry.flags or any(
        f.code in ANALYSER_CODES for f in findings if f.file == entry.path
    )
    if not bears_pickle(entry.format, entry.flags) or analysed:
        return entry, findings
    try:
        scan = scan_checkpoint_bytes(Path(d.file.real).read_bytes(), where=d.file.path)
    except FormatError:
        scan = None
    if scan is not None:
        findings = findings + [
            Finding(code=i.code, message=i.message, file=entry.path) for i in scan.issues
        ]
    if claim_safe or (scan is not None and scan.verdict == "safe"):
        entry = entry.model_copy(update={"flags": sorted({*entry.flags, SAFE_STATE_DICT})})
    return entry, findings


@contextmanager
def analysing_builder(*, claim_safe: bool = False) -> Iterator[None]:
    """Manifests built inside analyse their pickles as the contract says (see the module)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build, "file_entry", lambda d: analysed_entry(d, claim_safe=claim_safe))
        yield

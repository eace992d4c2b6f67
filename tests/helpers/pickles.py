"""Pickle checkpoints for the pickle-setting tests, and the manifest builder's analysis of them.

The manifest contract: a pickle-bearing file whose every pickle imports only
allowlisted globals (and that is no TorchScript archive) carries the flag
``safe-state-dict``, and the analyser's findings (``PICKLE_DANGEROUS_GLOBAL``,
``PICKLE_UNKNOWN_GLOBAL``, ``PICKLE_TORCHSCRIPT``) are recorded for the file.
:func:`rewritten_builder` makes the entries other signers could have written.
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
from modelsign._internal.hashing import FileDigests
from modelsign._internal.manifest import FileEntry, build, entries
from modelsign.codes import Code
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


def _rewritten_entry(d: FileDigests, how: str) -> tuple[FileEntry, list[Finding]]:
    entry, findings = entries.file_entry(d)
    if not bears_pickle(entry.format, entry.flags):
        return entry, findings
    if how == "claim-safe":
        return entry.model_copy(update={"flags": sorted({*entry.flags, SAFE_STATE_DICT})}), findings
    unflagged = [f for f in entry.flags if f != SAFE_STATE_DICT]
    kept = [f for f in findings if not (f.file == entry.path and f.code in ANALYSER_CODES)]
    return entry.model_copy(update={"flags": unflagged}), kept


@contextmanager
def rewritten_builder(how: str) -> Iterator[None]:
    """Manifests built inside carry a pickle entry another signer could have written.

    ``how="claim-safe"``: every pickle flagged a safe state dict whatever it
    holds (a manifest that lies, as a compromised signer's could).
    ``how="unanalysed"``: the flag and the analyser's findings left out, as a
    modelsign older than the pickle analyser wrote them.
    """
    assert how in ("claim-safe", "unanalysed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build, "file_entry", lambda d: _rewritten_entry(d, how))
        yield

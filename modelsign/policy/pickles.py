"""Judging pickle-bearing files by the formats rule's pickle setting, one file at a time.

The formats rule, the inventory and the loaders ask the same question of a
file: may it be in the model folder under this policy? A file bears a pickle
when its format is ``pickle`` or its flags say it holds one (a NumPy object
array). The manifest's analysis is what is judged: a file whose every pickle
imports only allowlisted globals carries the flag ``safe-state-dict``; one
without it (dangerous or unknown globals, a TorchScript archive, not
analysable, unsigned, or a manifest made before modelsign analysed pickles)
is no safe state dict. The guard does not take the manifest's word: it
analyses the bytes it hands to torch itself (``modelsign.guard``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Final

from .._internal.findings import Finding
from .._internal.manifest import Manifest
from ..codes import Code
from .specs import SAFE_STATE_DICT, FormatsRule

#: Findings that say why a pickle is no safe state dict, the worst first (code is worst).
_WHY_CODES: Final = (
    Code.PICKLE_TORCHSCRIPT,
    Code.PICKLE_DANGEROUS_GLOBAL,
    Code.PICKLE_UNKNOWN_GLOBAL,
)
NOT_ANALYSED: Final = "not analysed as a safe state dict"


def bears_pickle(fmt: str, flags: Collection[str]) -> bool:
    """Whether a file of format ``fmt`` with ``flags`` holds a pickle (loading it unpickles)."""
    return fmt == "pickle" or "pickle" in flags


def pickle_refusal(
    spec: FormatsRule, fmt: str, flags: Collection[str], findings: Sequence[Finding] = ()
) -> str | None:
    """Why ``spec`` refuses a file of format ``fmt`` with ``flags``; None if it passes.

    ``findings`` are the manifest's findings about the file: the worst names
    the global that kept it from being a safe state dict. The text follows
    the file's name in a reason (``pytorch_model.bin: format pickle is denied``).
    """
    if not bears_pickle(fmt, flags):
        return None
    setting = spec.pickle_setting
    if setting == "allow":
        return None
    if setting == "safe-state-dicts":
        return None if SAFE_STATE_DICT in flags else _why(findings)
    word = "not allowed" if spec.pickle is None and "pickle" not in spec.deny else "denied"
    if fmt == "pickle":
        return f"format pickle is {word}"
    return f"holds a pickle (loading it runs code): format pickle is {word}"


def _why(findings: Sequence[Finding]) -> str:
    """Why a file is no safe state dict: the worst analyser finding, or no analysis."""
    for code in _WHY_CODES:
        hits = [f for f in findings if f.code == code]
        if hits:
            first = hits[0]
            text = first.message
            if first.file:  # "model.bin: ..." or "model.bin:data.pkl: ...": the file is named
                text = text.removeprefix(f"{first.file}: ").removeprefix(f"{first.file}:")
            more = len(hits) - 1
            return f"not a safe state dict: {text}" + (f" (and {more} more)" if more else "")
    return NOT_ANALYSED


def findings_by_file(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    """The findings about each file, by its name."""
    out: dict[str, list[Finding]] = {}
    for f in findings:
        if f.file is not None:
            out.setdefault(f.file, []).append(f)
    return out


def pickle_refusals(spec: FormatsRule, manifest: Manifest) -> dict[str, str]:
    """Every file of ``manifest`` that ``spec`` refuses as a pickle, with why."""
    about = findings_by_file(manifest.findings)
    out: dict[str, str] = {}
    for entry in manifest.files:
        why = pickle_refusal(spec, entry.format, entry.flags, about.get(entry.path, ()))
        if why is not None:
            out[entry.path] = why
    return out


def pickle_files(manifest: Manifest) -> list[str]:
    """The pickle-bearing files of ``manifest``."""
    return [f.path for f in manifest.files if bears_pickle(f.format, f.flags)]


__all__ = [
    "NOT_ANALYSED",
    "bears_pickle",
    "findings_by_file",
    "pickle_files",
    "pickle_refusal",
    "pickle_refusals",
]

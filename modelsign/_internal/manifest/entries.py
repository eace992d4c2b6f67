"""A file's manifest entry from what one read of it learned (its :class:`FileDigests`)."""

from __future__ import annotations

import hashlib

from ...codes import Code
from ...errors import FormatError
from ..findings import Finding
from ..formats.keras import legacy_h5_finding
from ..hashing import FileDigests
from ..metadata.quantization import file_quantization
from .schema import FileEntry, StorageEntry, TensorEntry, WeightsInfo, weights_digest


def weights_info(d: FileDigests) -> WeightsInfo:
    """The manifest's view of a parsed weight file from its digests."""
    layout = d.layout
    assert layout is not None and d.header_digest is not None
    digests = d.tensor_digests
    tensors = [
        TensorEntry(
            name=t.name,
            dtype=t.dtype,
            shape=list(t.shape),
            offset=t.start,
            length=t.nbytes,
            digest=(digests[i] or None) if digests is not None else None,
            storage=t.storage,
        )
        for i, t in enumerate(layout.tensors)
    ]
    stores = [
        StorageEntry(
            name=s.name,
            offset=s.start,
            length=s.nbytes,
            digest=d.storage_digests[i] if d.storage_digests is not None else None,
        )
        for i, s in enumerate(layout.storages)
    ]
    chat_digest = None
    if layout.chat_template is not None:
        chat_digest = hashlib.sha256(layout.chat_template.encode("utf-8")).hexdigest()
    return WeightsInfo(
        format=layout.format,
        header_size=layout.header_size,
        header_digest=d.header_digest,
        tensor_count=len(tensors),
        tensors=tensors,
        weights_digest=weights_digest(tensors) if tensors else None,
        metadata=dict(sorted(layout.metadata.items())),
        quantization=file_quantization(layout),
        gguf_version=layout.version,
        alignment=layout.alignment,
        kv_digest=d.kv_digest,
        chat_template_digest=chat_digest,
        padding=[[a, b] for a, b in layout.padding],
        storages=stores,
    )


def pickle_findings(d: FileDigests) -> tuple[list[str], list[Finding]]:
    """A pickle file's flags and findings: what its pickles import, each global named once.

    ``safe-state-dict`` is positive evidence — every pickle analysed, only
    allowlisted globals, no TorchScript — never the mere absence of findings.
    """
    scan = d.pickle_scan
    members = f" (pickle members: {', '.join(d.pickle_members)})" if d.pickle_members else ""
    safe = scan is not None and scan.pickles > 0 and scan.verdict == "safe"
    verdict = (
        "only globals a plain state dict needs"
        if safe
        else f"its pickles import {scan.verdict} globals"
        if scan is not None
        else "not analysed"
    )
    findings = [
        Finding(
            code=Code.PICKLE_UNSAFE,
            message=f"pickle-based file: loading it can execute arbitrary code{members}; "
            f"static analysis: {verdict}",
            file=d.file.path,
        )
    ]
    seen: set[tuple[str, str | None]] = set()
    for issue in scan.issues if scan is not None else []:
        key = (str(issue.code), issue.actual)
        if key not in seen:
            seen.add(key)
            findings.append(Finding(code=issue.code, message=issue.message, file=d.file.path))
    return ["unsafe-format", *(["safe-state-dict"] if safe else [])], findings


def keras_findings(d: FileDigests) -> tuple[list[str], list[Finding]]:
    """A Keras file's flags: ``code`` when its config runs code; a legacy HDF5 file's finding.

    (A ``.keras`` archive's findings are its layout's.)
    """
    if d.layout is None:
        return ["unsafe-format"], [legacy_h5_finding(d.file.path)]
    code = any(f.code in (Code.KERAS_LAMBDA, Code.KERAS_CUSTOM_OBJECT) for f in d.layout.findings)
    return (["code"] if code else []), []


def _refuse_bad_crc(d: FileDigests) -> None:
    """A stored member whose bytes fail their CRC-32 is a damaged archive: name its tensors."""
    if not d.crc_failures or d.layout is None:
        return
    member, got, want = d.crc_failures[0]
    inside = [t.name for t in d.layout.tensors if t.storage == member]
    holds = f" (tensor {', '.join(inside[:5])})" if inside else ""
    raise FormatError(
        f"member {member}{holds}: CRC-32 {got}, the archive says {want}",
        code=Code.ZIP_CRC_MISMATCH,
        path=d.file.path,
    )


def file_entry(d: FileDigests) -> tuple[FileEntry, list[Finding]]:
    """A file's entry, with the findings about it (its format's and its kind's: pickle, code)."""
    _refuse_bad_crc(d)  # an archive (torch, .npz, .keras) whose stored member fails its CRC-32
    findings: list[Finding] = list(d.findings)
    flags: list[str] = []
    weights = None
    if d.layout is not None:
        weights = weights_info(d)
        findings += d.layout.findings  # every reader names the file in its findings
        if d.layout.chat_template is not None:
            flags.append("chat-template")
    if d.format == "pickle":
        more_flags, more = pickle_findings(d)
        flags += more_flags
        findings += more
    if d.format == "keras":
        more_flags, more = keras_findings(d)
        flags += more_flags
        findings += more
    if d.file.path.endswith(".py"):
        flags.append("code")
        findings.append(
            Finding(
                code=Code.CODE_FILE,
                message="Python file: executed by loaders when trust_remote_code is enabled",
                file=d.file.path,
            )
        )
    if d.file.symlink:
        flags.append("symlink")
    entry = FileEntry(
        path=d.file.path,
        size=d.file.size,
        sha256=d.sha256,
        format=d.format,
        flags=sorted(flags),
        weights=weights,
    )
    return entry, findings

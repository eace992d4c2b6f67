"""A file's manifest entry from what one read of it learned (its :class:`FileDigests`)."""

from __future__ import annotations

import hashlib

from ...codes import Code
from ..findings import Finding
from ..hashing import FileDigests
from ..metadata.quantization import file_quantization
from .schema import FileEntry, TensorEntry, WeightsInfo, weights_digest


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
            digest=digests[i] if digests is not None else None,
        )
        for i, t in enumerate(layout.tensors)
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
    )


def file_entry(d: FileDigests) -> tuple[FileEntry, list[Finding]]:
    """A file's entry, with the findings about it (its format's and its kind's: pickle, code)."""
    findings: list[Finding] = list(d.findings)
    flags: list[str] = []
    weights = None
    if d.layout is not None:
        weights = weights_info(d)
        findings += [
            f if f.path is not None else f.model_copy(update={"path": d.file.path})
            for f in d.layout.findings
        ]
        if d.layout.chat_template is not None:
            flags.append("chat-template")
    if d.format == "pickle":
        flags.append("unsafe-format")
        members = f" (pickle members: {', '.join(d.pickle_members)})" if d.pickle_members else ""
        findings.append(
            Finding(
                code=Code.PICKLE_UNSAFE,
                message="pickle-based file: loading it can execute arbitrary code" + members,
                file=d.file.path,
            )
        )
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

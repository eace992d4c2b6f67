"""Consistency of a sharded safetensors checkpoint with its index.

A loader takes the tensor → shard mapping from ``*.safetensors.index.json``
and ignores whatever the index does not name, so an index that disagrees with
its shards changes which bytes become the model: a tensor can be shadowed by a
copy in another shard, or a shard can sit beside the model unused. The index
must therefore describe the shards exactly.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Mapping

from ...codes import Code
from ...errors import DiscoveryError, FormatError
from .._json import encodable, strict_loads
from ..discover import check_relative_name
from ..findings import Finding


def check_safetensors_index(
    index_path: str, index_bytes: bytes, shard_tensors: Mapping[str, Collection[str]]
) -> list[Finding]:
    """Check an index against the tensors of the model's safetensors files.

    ``index_path`` is the POSIX path of the index relative to the model root;
    ``shard_tensors`` maps the root-relative POSIX path of every safetensors
    file of the model to its tensor names. Raises :class:`FormatError` on any
    inconsistency; returns warnings.
    """
    weight_map = _parse_index(index_path, index_bytes)
    folder = posixpath.dirname(index_path)
    resolved = _resolve_shards(index_path, folder, weight_map, shard_tensors)
    _check_tensors(index_path, weight_map, resolved, shard_tensors)
    return _extra_shards(index_path, folder, set(resolved.values()), shard_tensors)


def _resolve_shards(
    index_path: str,
    folder: str,
    weight_map: Mapping[str, str],
    shard_tensors: Mapping[str, Collection[str]],
) -> dict[str, str]:
    """Each shard the index names → its model path; every one must be a safetensors file."""
    # Resolve each shard once, in order of first mention.
    resolved: dict[str, str] = {}
    for tensor, shard in weight_map.items():
        if shard not in resolved:
            resolved[shard] = _resolve_shard(index_path, folder, tensor, shard)
    for shard, shard_path in resolved.items():
        if shard_path not in shard_tensors:
            raise FormatError(
                f"the index names shard {shard!r} ({shard_path}), which is not a safetensors "
                "file of the model",
                code=Code.SHARD_INDEX_MISSING_SHARD,
                path=index_path,
            )
    return resolved


def _check_tensors(
    index_path: str,
    weight_map: Mapping[str, str],
    resolved: Mapping[str, str],
    shard_tensors: Mapping[str, Collection[str]],
) -> None:
    """Every mapped tensor is in its shard, and every tensor of a shard is mapped to it."""
    contents = {path: frozenset(shard_tensors[path]) for path in resolved.values()}
    for tensor, shard in weight_map.items():
        if tensor not in contents[resolved[shard]]:
            raise FormatError(
                f"the index maps tensor {tensor!r} to shard {resolved[shard]}, which does "
                "not contain it",
                code=Code.SHARD_INDEX_MISSING_TENSOR,
                path=index_path,
                tensor=tensor,
            )
    for shard_path, tensors in contents.items():
        for tensor in sorted(tensors):
            mapped = weight_map.get(tensor)
            if mapped is None or resolved[mapped] != shard_path:
                where = "is not in the index" if mapped is None else f"is mapped to {mapped!r}"
                raise FormatError(
                    f"tensor {tensor!r} of shard {shard_path} {where}; a loader would "
                    "ignore this copy",
                    code=Code.SHARD_INDEX_UNMAPPED_TENSOR,
                    path=index_path,
                    tensor=tensor,
                )


def _extra_shards(
    index_path: str, folder: str, named: set[str], shard_tensors: Mapping[str, Collection[str]]
) -> list[Finding]:
    """Files beside the index named like its shards that it does not name (a warning each)."""
    findings: list[Finding] = []
    pattern = _shard_pattern(index_path)
    if pattern is None:
        return findings
    for other in sorted(shard_tensors):
        if (
            other not in named
            and posixpath.dirname(other) == folder
            and pattern.fullmatch(posixpath.basename(other))
        ):
            findings.append(
                Finding(
                    code=Code.SHARD_INDEX_EXTRA_SHARD,
                    message=f"{other} looks like a shard of {index_path} but the index "
                    "does not name it; loaders ignore it",
                    file=other,
                )
            )
    return findings


def _parse_index(index_path: str, index_bytes: bytes) -> dict[str, str]:
    """Strictly parse the index and return its ``weight_map``."""
    doc = strict_loads(
        index_bytes,
        lambda key: FormatError(
            f"duplicate JSON key {key!r} in the index",
            code=Code.SHARD_INDEX_BAD_JSON,
            path=index_path,
        ),
        lambda why: FormatError(
            f"index is not valid UTF-8 JSON: {why}", code=Code.SHARD_INDEX_BAD_JSON, path=index_path
        ),
    )
    if not isinstance(doc, dict):
        raise FormatError(
            "index must be a JSON object", code=Code.SHARD_INDEX_BAD_JSON, path=index_path
        )
    metadata = doc.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise FormatError(
            "index 'metadata' must be an object", code=Code.SHARD_INDEX_BAD_ENTRY, path=index_path
        )
    weight_map = doc.get("weight_map")
    if not isinstance(weight_map, dict):
        raise FormatError(
            "index needs a 'weight_map' object mapping tensor names to shard files",
            code=Code.SHARD_INDEX_BAD_ENTRY,
            path=index_path,
        )
    for tensor, shard in weight_map.items():
        if not tensor or not encodable(tensor):
            raise FormatError(
                f"weight_map has an empty or unencodable tensor name {tensor!r}",
                code=Code.SHARD_INDEX_BAD_ENTRY,
                path=index_path,
            )
        if not isinstance(shard, str):
            raise FormatError(
                f"weight_map value for {tensor!r} must be a shard file name, not {shard!r}",
                code=Code.SHARD_INDEX_BAD_ENTRY,
                path=index_path,
                tensor=tensor,
            )
    return weight_map


def _resolve_shard(index_path: str, folder: str, tensor: str, shard: str) -> str:
    """The model path of ``shard``, which must stay below the index's folder.

    The path must pass the rule for every name of a model (no empty, ``.`` or
    ``..`` component, no backslash): tools normalise those differently, so they
    could name different files to different readers.
    """
    path = posixpath.join(folder, shard)
    try:
        return check_relative_name(path)
    except DiscoveryError:
        raise FormatError(
            f"shard name {shard!r} (for tensor {tensor!r}) must be a plain relative POSIX "
            "path below the index's folder",
            code=Code.SHARD_INDEX_BAD_PATH,
            path=index_path,
            tensor=tensor,
        ) from None


def _shard_pattern(index_path: str) -> re.Pattern[str] | None:
    """``<stem>-<k>-of-<n>.safetensors`` for an index named ``<stem>.safetensors.index.json``."""
    stem = posixpath.basename(index_path)
    for suffix in (".index.json", ".safetensors"):
        stem = stem.removesuffix(suffix)
    if not stem:
        return None
    return re.compile(re.escape(stem) + r"-\d+-of-\d+\.safetensors")

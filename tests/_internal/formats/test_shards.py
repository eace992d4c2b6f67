"""Consistency of sharded safetensors checkpoints with their index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors import safe_open

from modelsign._internal.formats.shards import check_safetensors_index
from modelsign.errors import FormatError
from tests.helpers.safetensors_files import write_safetensors, write_sharded

TENSORS: dict[str, np.ndarray] = {
    f"model.layers.{i}.weight": np.full((2, i + 1), i, np.float32) for i in range(6)
}


def shard_map(root: Path) -> dict[str, list[str]]:
    """What the caller passes: every safetensors file under ``root`` -> its tensor names."""
    out: dict[str, list[str]] = {}
    for p in sorted(root.rglob("*.safetensors")):
        with safe_open(str(p), framework="numpy") as f:
            out[p.relative_to(root).as_posix()] = list(f.keys())
    return out


def check(root: Path, index: Path) -> list[Any]:
    rel = index.relative_to(root).as_posix()
    return check_safetensors_index(rel, index.read_bytes(), shard_map(root))


def error(index_path: str, doc: Any, shards: dict[str, list[str]]) -> FormatError:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(FormatError) as info:
        check_safetensors_index(index_path, raw, shards)
    assert info.value.path == index_path
    return info.value


SHARDS = {"a.safetensors": ["x", "y"], "b.safetensors": ["z"]}
GOOD: dict[str, Any] = {
    "metadata": {"total_size": 0},
    "weight_map": {"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"},
}


def test_transformers_layout_passes(tmp_path: Path) -> None:
    index, shards = write_sharded(tmp_path, TENSORS, 3)
    assert len(shards) == 3
    assert check(tmp_path, index) == []


def test_index_in_a_subfolder(tmp_path: Path) -> None:
    index, _ = write_sharded(tmp_path / "text_encoder", TENSORS, 2)
    write_sharded(
        tmp_path / "unet", {"u": np.zeros(2, np.float32)}, 1, prefix="diffusion_pytorch_model"
    )
    assert check(tmp_path, index) == []
    assert check(tmp_path, tmp_path / "unet/diffusion_pytorch_model.safetensors.index.json") == []


def test_hand_written_index_passes() -> None:
    assert check_safetensors_index("m.index.json", json.dumps(GOOD).encode(), SHARDS) == []


def test_empty_weight_map() -> None:
    assert check_safetensors_index("x.index.json", b'{"weight_map": {}}', {}) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"weight_map": {"x": "a.safetensors", "x": "a.safetensors"}}',
        b'{"weight_map": {}, "weight_map": {}}',
        b'{"metadata": {"total_size": NaN}, "weight_map": {}}',
        b"\xff\xfe{}",
        b"[]",
        b'"weight_map"',
    ],
    ids=["garbage", "dup-tensor", "dup-top", "nan", "utf16", "array", "string"],
)
def test_bad_json(raw: bytes) -> None:
    assert error("m.index.json", raw, SHARDS).code == "SHARD_INDEX_BAD_JSON"


@pytest.mark.parametrize(
    "doc",
    [
        {"metadata": {}},
        {"weight_map": ["x", "a.safetensors"]},
        {"weight_map": {"x": 1}},
        {"weight_map": {"x": None}},
        {"weight_map": {"": "a.safetensors"}},
        {"metadata": [], "weight_map": {}},
    ],
    ids=["missing", "array", "int-shard", "null-shard", "empty-tensor", "metadata-array"],
)
def test_bad_entry(doc: Any) -> None:
    assert error("m.index.json", doc, SHARDS).code == "SHARD_INDEX_BAD_ENTRY"


@pytest.mark.parametrize(
    "shard",
    [
        "../a.safetensors",
        "sub/../../a.safetensors",
        "/abs/a.safetensors",
        "a\x00.safetensors",
        "",
        "./a.safetensors",
        "sub//a.safetensors",
        "sub\\a.safetensors",
        "sub/",
    ],
    ids=repr,
)
def test_bad_path(shard: str) -> None:
    err = error("sub/m.index.json", {"weight_map": {"x": shard}}, {"sub/a.safetensors": ["x"]})
    assert err.code == "SHARD_INDEX_BAD_PATH"
    assert err.tensor == "x"


def test_shard_names_resolve_against_the_index_folder() -> None:
    index = json.dumps({"weight_map": {"x": "a.safetensors"}}).encode()
    assert check_safetensors_index("sub/m.index.json", index, {"sub/a.safetensors": ["x"]}) == []
    with pytest.raises(FormatError) as info:
        check_safetensors_index("sub/m.index.json", index, {"a.safetensors": ["x"]})
    assert info.value.code == "SHARD_INDEX_MISSING_SHARD"
    assert "sub/a.safetensors" in info.value.message


def test_missing_shard(tmp_path: Path) -> None:
    index, shards = write_sharded(tmp_path, TENSORS, 3)
    shards[1].unlink()
    with pytest.raises(FormatError) as info:
        check(tmp_path, index)
    assert info.value.code == "SHARD_INDEX_MISSING_SHARD"
    assert shards[1].name in info.value.message


def test_missing_tensor() -> None:
    doc = {"weight_map": {**GOOD["weight_map"], "ghost": "b.safetensors"}}
    err = error("m.index.json", doc, SHARDS)
    assert err.code == "SHARD_INDEX_MISSING_TENSOR"
    assert err.tensor == "ghost" and "b.safetensors" in err.message


def test_tensor_mapped_to_the_wrong_shard() -> None:
    doc = {"weight_map": {"x": "b.safetensors", "y": "a.safetensors", "z": "b.safetensors"}}
    err = error("m.index.json", doc, SHARDS)
    assert err.code == "SHARD_INDEX_MISSING_TENSOR" and err.tensor == "x"


def test_unmapped_tensor(tmp_path: Path) -> None:
    index, shards = write_sharded(tmp_path, TENSORS, 2)
    extra = dict(TENSORS)
    extra["smuggled"] = np.zeros(4, np.float32)
    names = json.loads(index.read_text())["weight_map"]
    in_first = {n: TENSORS[n] for n, s in names.items() if s == shards[0].name}
    write_safetensors(shards[0], {**in_first, "smuggled": extra["smuggled"]})
    with pytest.raises(FormatError) as info:
        check(tmp_path, index)
    assert info.value.code == "SHARD_INDEX_UNMAPPED_TENSOR"
    assert info.value.tensor == "smuggled" and shards[0].name in info.value.message


def test_tensor_shadowed_in_a_second_shard() -> None:
    shards = {"a.safetensors": ["x", "y"], "b.safetensors": ["z", "x"]}
    err = error("m.index.json", GOOD, shards)
    assert err.code == "SHARD_INDEX_UNMAPPED_TENSOR"
    assert err.tensor == "x" and "b.safetensors" in err.message and "a.safetensors" in err.message


def test_total_size_is_not_checked() -> None:
    doc = {"metadata": {"total_size": 123456789}, "weight_map": GOOD["weight_map"]}
    assert check_safetensors_index("m.index.json", json.dumps(doc).encode(), SHARDS) == []


def test_extra_shard_is_a_warning(tmp_path: Path) -> None:
    index, _ = write_sharded(tmp_path, TENSORS, 2)
    write_safetensors(tmp_path / "model-00003-of-00003.safetensors", {"q": np.zeros(1, np.int8)})
    # neither of these looks like a shard of this index
    write_safetensors(tmp_path / "adapter.safetensors", {"q": np.zeros(1, np.int8)})
    write_safetensors(tmp_path / "sub/model-00009-of-00009.safetensors", {"q": np.zeros(1)})
    findings = check(tmp_path, index)
    assert [(f.code, f.path) for f in findings] == [
        ("SHARD_INDEX_EXTRA_SHARD", "model-00003-of-00003.safetensors")
    ]
    assert findings[0].severity == "warning" and index.name in findings[0].message

"""Following a checkpoint pickle symbolically: tensors found, hostile streams refused quickly."""

from __future__ import annotations

import io
import pickle
import time
import zipfile
from collections import OrderedDict

import pytest
import torch

from modelsign._internal.formats.torch_state import (
    MAX_NAME_DEPTH,
    TorchTensor,
    torch_tensors,
)
from modelsign.codes import Code
from modelsign.errors import FormatError


def data_pkl(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        return z.read("archive/data.pkl")


def refused(data: bytes) -> FormatError:
    with pytest.raises(FormatError) as info:
        torch_tensors(data, where="t.pkl")
    assert info.value.code is Code.TORCH_BAD_CHECKPOINT
    return info.value


def test_state_dict_with_parameters_and_views() -> None:
    w = torch.arange(12.0).reshape(3, 4)
    obj = {"sd": OrderedDict(w=w, t=w.t(), p=torch.nn.Parameter(torch.ones(2))), "n": 3}
    found = {t.name: t for t in torch_tensors(data_pkl(obj), where="t.pkl")}
    assert set(found) == {"sd.w", "sd.t", "sd.p"}
    assert found["sd.w"] == TorchTensor("sd.w", "0", "FloatStorage", 0, (3, 4), (4, 1))
    assert found["sd.t"].stride == (1, 4) and not found["sd.t"].contiguous
    assert found["sd.w"].storage == found["sd.t"].storage and found["sd.w"].contiguous
    assert found["sd.p"].shape == (2,)


def test_lists_and_tuples_are_named_by_index() -> None:
    found = torch_tensors(data_pkl([torch.ones(1), (torch.zeros(2),)]), where="t.pkl")
    assert [t.name for t in found] == ["0", "1.0"]


def test_stack_global_of_nested_objects_is_refused_quickly() -> None:
    """Fuzzing found it: STACK_GLOBAL over lists that repeat each other made a name
    of exponential size (its repr); pickle itself requires two strings."""
    data = b"\x80\x04" + b"]" + b"2" * 2 + b"l" + b"(2" * 40 + b"l" * 40 + b"\x93" * 30 + b"."
    start = time.perf_counter()
    with pytest.raises(FormatError):
        torch_tensors(data, where="t.pkl")
    assert time.perf_counter() - start < 0.5


def test_storage_key_must_be_a_string() -> None:
    pkl = data_pkl({"w": torch.ones(2)})
    assert b"X\x01\x00\x00\x000" in pkl  # the key "0" as BINUNICODE
    exc = refused(pkl.replace(b"X\x01\x00\x00\x000", b"]", 1))
    assert "'w'" in exc.message


def test_a_long_key_does_not_make_every_name_long() -> None:
    """Names are joined only for tensors: a huge key over many values costs nothing."""
    obj = {"k" * 200_000: list(range(100_000))}
    start = time.perf_counter()
    assert torch_tensors(pickle.dumps(obj, protocol=2), where="t.pkl") == []
    assert time.perf_counter() - start < 2.0
    exc = refused(data_pkl({"k" * 5000: torch.ones(1)}))
    assert "characters" in exc.message


def test_tensor_deeper_than_the_bound_is_refused() -> None:
    obj: object = torch.ones(1)
    for _ in range(MAX_NAME_DEPTH + 1):
        obj = {"d": obj}
    assert "deeper" in refused(data_pkl(obj)).message
    obj = torch.ones(1)
    for _ in range(MAX_NAME_DEPTH - 1):
        obj = {"d": obj}
    (t,) = torch_tensors(data_pkl(obj), where="t.pkl")
    assert t.name == ".".join(["d"] * (MAX_NAME_DEPTH - 1))


def test_deep_chain_of_parameter_wrappers() -> None:
    """A rebuild wrapped in parameters 100 000 deep: no RecursionError."""
    wrap = b"ctorch._utils\n_rebuild_parameter\n"
    data = b"\x80\x02}X\x01\x00\x00\x00w" + (wrap + b"(") * 100_000 + b"N" + b"tR" * 100_000
    assert torch_tensors(data + b"s.", where="t.pkl") == []


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80\x02", b"\x80\x02.", b"\x80\x02h\x05.", b"\x80\x02\x81."],
)
def test_broken_streams(data: bytes) -> None:
    refused(data)

"""Content-based detection of pickle-based files, on real torch checkpoints and pickles."""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from modelsign._internal.formats.pickle import sniff_pickle


def head(path: Path) -> bytes:
    return path.read_bytes()[:16]


@pytest.fixture
def torch_zip(tmp_path: Path) -> Path:
    path = tmp_path / "pytorch_model.bin"
    torch.save(OrderedDict(w=torch.arange(6.0).reshape(2, 3), b=torch.zeros(3)), path)
    return path


@pytest.mark.parametrize("name", ["pytorch_model.bin", "m.pt", "m.pth", "m.ckpt", "x.pkl"])
def test_torch_zip_checkpoint(torch_zip: Path, name: str) -> None:
    assert head(torch_zip).startswith(b"PK\x03\x04")
    assert sniff_pickle(head(torch_zip), name) == "torch-zip"


def test_legacy_torch_save_is_a_raw_pickle(tmp_path: Path) -> None:
    path = tmp_path / "old.weights"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    assert sniff_pickle(head(path), "old.weights") == "pickle"


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("obj", [{"a": [1, 2]}, None, OrderedDict(x=b"\x00" * 64)])
def test_binary_pickle_protocols(protocol: int, obj: object) -> None:
    data = pickle.dumps(obj, protocol=protocol)
    assert sniff_pickle(data[:16], "no-extension") == "pickle"


@pytest.mark.parametrize("protocol", [0, 1])
@pytest.mark.parametrize(
    "obj",
    [{"a": [1, 2]}, [1.5, "x"], 7, None, "text", OrderedDict(w=[1]), (1, 2), 2**80],
    ids=repr,
)
def test_old_protocols_under_pickle_names(protocol: int, obj: object) -> None:
    data = pickle.dumps(obj, protocol=protocol)
    assert sniff_pickle(data[:16], "model.pkl") == "pickle"
    assert sniff_pickle(data[:16], "weights.bin") == "pickle"
    assert sniff_pickle(data[:16], "readme") is None  # no magic: the name must agree


def test_protocol_0_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps({"layer": list(range(10))}, protocol=0))
    assert sniff_pickle(head(path), path.name.lower()) == "pickle"


@pytest.mark.parametrize(
    "data",
    [
        b"hello world, this is text\n",
        b'{"model_type": "bert"}',
        b"# Model card\n\nSome text",
        b"Install: pip install x\n",
        b"(c) 2024 Company",
        b"Some text here, and more",
        b"}\n",
        b"I12\nnot a pickle",
        b"T\xff\xff\xff\xff" + b"x" * 11,  # negative BINSTRING length
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        b"",
        b"\x80\x06\x95",  # no such protocol
        b"\x80",
    ],
    ids=repr,
)
def test_non_pickles(data: bytes) -> None:
    for name in ("x.bin", "x.pkl", "x.txt"):
        assert sniff_pickle(data[:16], name) is None


def test_non_pickle_zip_is_sniffed_by_name_only(tmp_path: Path) -> None:
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.txt", "hello")
    assert sniff_pickle(head(path), "archive.zip") is None
    assert sniff_pickle(head(path), "archive.bin") == "torch-zip"  # a cheap guess

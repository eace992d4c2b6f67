"""Fuzz targets: every parser that reads untrusted bytes, and the seeds they start from.

The rule each target checks: any input either parses or raises a
:class:`modelsign.errors.ModelsignError` — never another exception, never a
hang. Seeds are made here by code (a tiny model signed with a throwaway key),
so the corpus needs no files from elsewhere.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelsign._internal.formats import parse_weights_bytes
from modelsign._internal.formats.checkpoint import read_checkpoint
from modelsign._internal.formats.keras import config_findings, parse_config
from modelsign._internal.formats.onnx import parse_onnx_bytes
from modelsign._internal.formats.shards import check_safetensors_index
from modelsign._internal.formats.torch_state import torch_tensors
from modelsign._internal.formats.ziparchive import read_zip
from modelsign._internal.signature.attestation import parse_attestation
from modelsign._internal.signature.bundle import read_bundle
from modelsign._internal.signature.statement import parse_statement
from modelsign.policy import parse_policy


def _safetensors(data: bytes) -> None:
    parse_weights_bytes("safetensors", data, "fuzz.safetensors")


def _gguf(data: bytes) -> None:
    parse_weights_bytes("gguf", data, "fuzz.gguf")


def _onnx(data: bytes) -> None:
    parse_onnx_bytes(data, "fuzz.onnx")


def _shard_index(data: bytes) -> None:
    shards = {
        "model-00001-of-00002.safetensors": ["a", "b"],
        "model-00002-of-00002.safetensors": ["c"],
    }
    check_safetensors_index("model.safetensors.index.json", data, shards)


def _zip(data: bytes) -> None:
    read_zip(lambda n, at: data[at : at + n], len(data), "fuzz.zip")


def _checkpoint(data: bytes) -> None:
    read_checkpoint(lambda n, at: data[at : at + n], len(data), "fuzz.pt")


def _torch_state(data: bytes) -> None:
    torch_tensors(data, where="fuzz/data.pkl")


def _numpy(data: bytes) -> None:
    parse_weights_bytes("numpy", data, "fuzz.npy")  # a .npy, or a .npz when it starts PK


def _keras(data: bytes) -> None:
    parse_weights_bytes("keras", data, "fuzz.keras")


def _keras_config(data: bytes) -> None:
    config_findings(parse_config(data, "fuzz.keras"), "fuzz.keras")


def _policy(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # a policy file that is not UTF-8 is refused before parsing (load_policy)
    parse_policy(text, "fuzz-policy.yaml")


#: name -> the call that parses one input.
TARGETS: dict[str, Callable[[bytes], object]] = {
    "safetensors": _safetensors,
    "gguf": _gguf,
    "onnx": _onnx,
    "shard_index": _shard_index,
    "bundle": read_bundle,
    "statement": parse_statement,
    "attestation": parse_attestation,
    "policy": _policy,
    "zip": _zip,
    "checkpoint": _checkpoint,
    "torch_state": _torch_state,
    "numpy": _numpy,
    "keras": _keras,
    "keras_config": _keras_config,
}


def _payload(bundle: bytes) -> bytes:
    return base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"])


def _gguf_bytes(folder: Path) -> bytes:
    import gguf

    path = folder / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint32("llama.context_length", 8)
    writer.add_string("general.name", "fuzz")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b"])
    writer.add_tensor("token_embd.weight", np.arange(8, dtype=np.float32).reshape(2, 4))
    writer.add_tensor("output.weight", np.ones(3, dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def _onnx_seeds() -> list[bytes]:
    """A model with a tensor in every place the reader looks, and one with external data."""
    from tests.helpers.onnx_files import (
        hand_model,
        hand_tensor,
        initializer,
        lfield,
        rich_model,
        vfield,
    )

    rich = rich_model().SerializeToString()
    ext = lfield(13, lfield(1, "location") + lfield(2, "w.bin"))
    ext += lfield(13, lfield(1, "offset") + lfield(2, "0")) + vfield(14, 1)
    external = hand_model(initializer(hand_tensor("w", 1, [2], extra=ext)))
    return [rich, rich[: len(rich) // 2], external]


def _checkpoint_bytes() -> list[bytes]:
    """A tiny torch checkpoint (tied weights, a view, a nested dict), and its data.pkl."""
    import io
    import zipfile

    import torch

    w = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    obj = {"model": {"w": w, "tied": w, "row": w[1], "h": torch.ones(2).half()}, "epoch": 3}
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        pkl = z.read("archive/data.pkl")
    return [data, pkl]


_POLICIES = [
    {"version": 1, "mode": "enforce", "signers": {"keys": [{"file": "release.pub"}]}},
    {
        "version": 1,
        "mode": "warn",
        "signers": {
            "sigstore": [
                {
                    "identity_regex": "^https://github.com/acme/.*$",
                    "issuer": "https://token.actions.githubusercontent.com",
                    "github_repository": "acme/model",
                }
            ]
        },
        "formats": {"deny": ["pickle"], "allow_chat_templates": False},
        "quantization": {"allowed_schemes": ["Q4_K"], "min_bits_per_weight": 4.0},
        "freshness": {"max_age": "90d"},
        "coverage": {},
    },
]


_KERAS_CONFIG = {
    "module": "keras",
    "class_name": "Sequential",
    "config": {
        "name": "seq",
        "layers": [
            {
                "module": "keras.layers",
                "class_name": "Dense",
                "config": {"name": "d", "units": 2},
                "registered_name": None,
            },
            {
                "module": "keras.layers",
                "class_name": "Lambda",
                "config": {"name": "l", "function": {"class_name": "__lambda__", "config": {}}},
                "registered_name": None,
            },
            {"module": "os", "class_name": "system", "config": {}, "registered_name": "x>y"},
        ],
    },
    "registered_name": None,
}


def _numpy_seeds() -> list[bytes]:
    import io
    import zipfile

    out = []
    for arr in (np.arange(6, dtype="<f4").reshape(2, 3), np.array([1, None], dtype=object)):
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=True)
        out.append(buf.getvalue())
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=method) as z:
            z.writestr("a.npy", out[0])
            z.writestr("o.npy", out[1])
        out.append(buf.getvalue())
    return out


def _keras_seed() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("metadata.json", b'{"keras_version": "3.8.0"}')
        z.writestr("config.json", json.dumps(_KERAS_CONFIG))
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(24))
    return buf.getvalue()


def make_seeds() -> dict[str, list[bytes]]:
    """A few valid inputs per target, built from a freshly signed tiny model."""
    import safetensors.numpy

    import modelsign
    from tests.helpers.signing import shared_key

    with tempfile.TemporaryDirectory(prefix="modelsign-fuzz-") as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        tensors = {"a": np.arange(6, dtype=np.float32), "b": np.zeros((2, 2), dtype=np.int8)}
        safetensors.numpy.save_file(tensors, str(folder / "model.safetensors"), {"k": "v"})
        modelsign.sign(folder, signer=modelsign.KeySigner(shared_key()), env={})
        bundle = (folder / "model.sig").read_bytes()
        claim = (folder / "claims.jsonl").read_bytes().splitlines()[0]
        st = (folder / "model.safetensors").read_bytes()
        gguf_file = _gguf_bytes(Path(tmp))
    ckpt, pkl = _checkpoint_bytes()
    index = {
        "metadata": {"total_size": 28},
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00001-of-00002.safetensors",
            "c": "model-00002-of-00002.safetensors",
        },
    }
    return {
        "safetensors": [st, st[: len(st) // 2]],
        "gguf": [gguf_file],
        "onnx": _onnx_seeds(),
        "shard_index": [json.dumps(index).encode()],
        "bundle": [bundle, claim],
        "statement": [_payload(bundle)],
        "attestation": [_payload(claim)],
        "policy": [json.dumps(p).encode() for p in _POLICIES]
        + [b"version: 1\nmode: enforce\nformats:\ncoverage: {}\n"],
        "zip": [ckpt],
        "checkpoint": [ckpt],
        "torch_state": [pkl],
        "numpy": _numpy_seeds(),
        "keras": [_keras_seed()],
        "keras_config": [json.dumps(_KERAS_CONFIG).encode()],
    }


def write_corpus(root: Path) -> dict[str, Path]:
    """The seeds as files, one folder per target (what libFuzzer takes as a corpus)."""
    out: dict[str, Path] = {}
    for name, seeds in make_seeds().items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds):
            (folder / f"seed-{i}").write_bytes(seed)
        out[name] = folder
    return out


_INTS = [0, 1, 0x7F, 0xFF, 0x7FFFFFFF, 2**32 - 1, 2**63 - 1, 2**64 - 1]
_TOKENS = [
    b'"',
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"1e999",
    b"-0",
    b"\\u0000",
    b"&a",
    b"*a",
    b"!!python/object",
    b"\n- ",
    b"\xff",
    b"\xc3",
]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random edit of the kinds that break parsers: flips, splices, cuts, big numbers."""
    b = bytearray(data or b"\0")
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(0, 6))
        i = int(rng.integers(0, len(b) + 1))
        if kind == 0 and b:  # flip bits
            j = min(i, len(b) - 1)
            b[j] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:  # insert random bytes
            b[i:i] = rng.bytes(int(rng.integers(1, 9)))
        elif kind == 2:  # cut
            del b[i : i + int(rng.integers(1, 65))]
        elif kind == 3:  # an interesting integer, little-endian, over 8 bytes
            value = _INTS[int(rng.integers(0, len(_INTS)))]
            b[i : i + 8] = value.to_bytes(8, "little")
        elif kind == 4:  # duplicate a slice
            j = int(rng.integers(0, len(b) + 1))
            b[i:i] = b[min(i, j) : max(i, j)][:256]
        else:  # a JSON/YAML token
            token = _TOKENS[int(rng.integers(0, len(_TOKENS)))]
            b[i:i] = token
    return bytes(b)

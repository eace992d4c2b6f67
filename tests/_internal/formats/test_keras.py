"""Keras v3 ``.keras`` archives: config.json walked for code, the weights member a storage."""

from __future__ import annotations

import io
import zipfile

import pytest

from modelsign._internal.formats import detect_format
from modelsign._internal.formats.keras import (
    HDF5_MAGIC,
    KerasFile,
    config_findings,
    read_keras,
)
from modelsign.codes import Code
from modelsign.errors import FormatError
from tests.helpers.keras_files import LAMBDA, WEIGHTS, archive, dense, sequential


def parse(data: bytes) -> KerasFile:
    return read_keras(lambda n, at: data[at : at + n], len(data), "m.keras")


def codes(found: KerasFile) -> list[Code | str]:
    return [f.code for f in found.layout.findings]


def test_plain_model_has_no_findings_and_a_weights_storage() -> None:
    data = archive(sequential(dense("a"), dense("b")))
    found = parse(data)
    assert not found.code and codes(found) == []
    (s,) = found.layout.storages
    assert data[s.start : s.end] == WEIGHTS and s.name == "model.weights.h5"
    assert found.layout.format == "keras" and found.layout.scattered


def test_deflated_weights_member_is_its_compressed_bytes() -> None:
    found = parse(archive(sequential(dense("a")), compress=zipfile.ZIP_DEFLATED))
    (s,) = found.layout.storages
    assert s.dtype == "h5+deflate" and s.nbytes < len(WEIGHTS)


def test_lambda_layer_is_code() -> None:
    found = parse(archive(sequential(dense("a"), LAMBDA)))
    assert found.code
    assert codes(found) == [Code.KERAS_LAMBDA, Code.KERAS_LAMBDA]  # the layer, its function
    assert "double" in found.layout.findings[0].message


@pytest.mark.parametrize("module", ["os", "builtins", "subprocess", "mypackage.layers", "kerasx"])
def test_module_outside_keras_is_code(module: str) -> None:
    evil = {"module": module, "class_name": "system", "config": {"name": "x"}}
    found = parse(archive(sequential(dense("a"), evil)))
    assert codes(found) == [Code.KERAS_CUSTOM_OBJECT]
    assert f"{module}.system" in found.layout.findings[0].message


def test_registered_custom_object_is_code() -> None:
    custom = {
        "module": None,
        "class_name": "MyLayer",
        "config": {"name": "mine"},
        "registered_name": "my_pkg>MyLayer",
    }
    assert [f.code for f in config_findings(sequential(custom), "m")] == [Code.KERAS_CUSTOM_OBJECT]


def test_nested_functional_model_is_walked() -> None:
    inner = {
        "module": "keras",
        "class_name": "Functional",
        "config": {
            "name": "inner",
            "layers": [
                {
                    "module": "keras.layers",
                    "class_name": "Activation",
                    "config": {
                        "name": "act",
                        "activation": {
                            "module": "builtins",
                            "class_name": "function",
                            "config": "exec",
                            "registered_name": "function",
                        },
                    },
                    "inbound_nodes": [],
                }
            ],
        },
    }
    outer = {"module": "keras", "class_name": "Functional", "config": {"layers": [inner]}}
    found = config_findings(outer, "m")
    assert [f.code for f in found] == [Code.KERAS_CUSTOM_OBJECT]
    assert "builtins.function" in found[0].message


def test_deep_nesting_never_recurses() -> None:
    node: object = LAMBDA
    for _ in range(100_000):
        node = [node]
    assert [f.code for f in config_findings(node, "m")] == [Code.KERAS_LAMBDA] * 2


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b'{"a": 1, "a": 2}', Code.KERAS_BAD_CONFIG),
        (b"{not json", Code.KERAS_BAD_CONFIG),
        (b'{"a": NaN}', Code.KERAS_BAD_CONFIG),
        (b"\xff\xfe", Code.KERAS_BAD_CONFIG),
    ],
)
def test_bad_config(data: bytes, code: Code) -> None:
    with pytest.raises(FormatError) as info:
        parse(archive(None, raw=data))
    assert info.value.code is code and info.value.path == "m.keras"


def test_archive_without_config_and_not_a_zip() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model.weights.h5", WEIGHTS)
    with pytest.raises(FormatError) as info:
        parse(buf.getvalue())
    assert info.value.code is Code.KERAS_BAD_ARCHIVE
    with pytest.raises(FormatError) as info:
        parse(b"not a zip at all, just some bytes here")
    assert info.value.code.name.startswith("ZIP_")


def test_detection() -> None:
    assert detect_format("m.keras", b"PK\x03\x04") == "keras"
    assert detect_format("model.h5", HDF5_MAGIC) == "keras"
    assert detect_format("model.hdf5", HDF5_MAGIC) == "keras"
    assert detect_format("model.h5", b"not hdf5") == "opaque"

"""Keras v3 ``.keras`` archives for tests: a config of Dense (and Lambda) layers and a
placeholder HDF5 weights member."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from modelsign._internal.formats.keras import HDF5_MAGIC

WEIGHTS = HDF5_MAGIC + b"\0" * 200


def dense(name: str) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {
            "name": name,
            "units": 4,
            "kernel_initializer": {
                "module": "keras.initializers",
                "class_name": "GlorotUniform",
                "config": {"seed": None},
                "registered_name": None,
            },
        },
        "registered_name": None,
    }


LAMBDA = {
    "module": "keras.layers",
    "class_name": "Lambda",
    "config": {
        "name": "double",
        "function": {
            "class_name": "__lambda__",
            "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None},
        },
    },
    "registered_name": None,
}


def sequential(*layers: dict[str, Any]) -> dict[str, Any]:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "seq", "layers": list(layers)},
        "registered_name": None,
    }


def archive(
    config: object,
    *,
    compress: int = zipfile.ZIP_STORED,
    raw: bytes | None = None,
    weights: bytes = WEIGHTS,
) -> bytes:
    """The archive's bytes: ``config`` as its config.json (or ``raw`` bytes), ``weights``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.8.0"}))
        z.writestr("config.json", raw if raw is not None else json.dumps(config))
        z.writestr("model.weights.h5", weights)
    return buf.getvalue()


def keras_archive(path: Path, *layers: dict[str, Any], weights: bytes = WEIGHTS) -> Path:
    """A stored ``.keras`` archive of a Sequential model of ``layers`` at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(archive(sequential(*layers), weights=weights))
    return path

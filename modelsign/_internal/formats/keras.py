"""Keras v3 ``.keras`` archives, and legacy Keras HDF5 files (flagged, not parsed).

A ``.keras`` file is a ZIP (read strictly) holding ``config.json``,
``metadata.json`` and ``model.weights.h5``. Loading one deserializes
``config.json``: a ``Lambda`` layer's function is marshalled Python bytecode,
and any object whose ``module`` lies outside Keras (``os``, ``builtins``, a
user package: the CVE-2025-1550 class) or that is a registered custom object
is imported and called. ``config.json`` is read (bounded, strict JSON) and
walked; each such object is a finding, and the file is flagged as code.

The weights member is located, not read: its bytes (stored or deflated, as
they lie) are the file's one storage, digested in the one read of the file;
every other byte is structure, digested as the header.

A legacy ``.h5`` / ``.hdf5`` Keras file can hold a whole model, ``Lambda``
layers included (as bytecode): it is flagged as a format that can carry code;
HDF5 is not parsed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from ...codes import Code
from ...errors import FormatError
from .._json import strict_loads
from ..findings import Finding
from .layout import TensorSpan, WeightLayout
from .ziparchive import ReadAt, read_member, read_zip

HDF5_MAGIC: Final = b"\x89HDF\r\n\x1a\n"
CONFIG: Final = "config.json"
WEIGHTS: Final = "model.weights.h5"
MAX_CONFIG_BYTES: Final = 64 << 20
MAX_FINDINGS: Final = 100  # per kind and file: a config of 10^6 lambdas names the first ones
_LAMBDAS: Final = frozenset({"Lambda", "__lambda__"})


def _error(msg: str, code: Code, where: str) -> FormatError:
    return FormatError(msg, code=code, path=where)


@dataclass
class KerasFile:
    """A ``.keras`` archive: its layout (findings included) and whether it carries code."""

    layout: WeightLayout
    code: bool


def parse_config(data: bytes, where: str) -> Any:
    """``config.json`` as strict JSON: duplicate keys, NaN and bad UTF-8 refused."""
    return strict_loads(
        data,
        lambda key: _error(f"{CONFIG}: duplicate key {key!r}", Code.KERAS_BAD_CONFIG, where),
        lambda why: _error(f"{CONFIG} is not JSON: {why}", Code.KERAS_BAD_CONFIG, where),
    )


def _objects(config: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``config`` that names a class (iteratively: no recursion limit)."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("class_name"), str):
                yield node
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def _label(obj: dict[str, Any]) -> str:
    cfg = obj.get("config")
    name = cfg.get("name") if isinstance(cfg, dict) else None
    return name if isinstance(name, str) else str(obj["class_name"])


def _outside_keras(obj: dict[str, Any]) -> str | None:
    """``module.class_name`` of an object Keras would import from outside Keras, else None."""
    module, cls = obj.get("module"), obj["class_name"]
    registered = obj.get("registered_name")
    if isinstance(module, str) and module != "keras" and not module.startswith("keras."):
        return f"{module}.{cls}"
    if module is not None and not isinstance(module, str):
        return f"{module!r}.{cls}"
    if isinstance(registered, str) and registered != cls:
        return f"{module or '?'}.{registered}"
    return None


def config_findings(config: Any, where: str) -> list[Finding]:
    """What in a Keras config runs code when loaded: Lambda layers and custom objects."""
    lambdas: list[Finding] = []
    custom: list[Finding] = []
    seen: set[str] = set()
    for obj in _objects(config):
        if obj["class_name"] in _LAMBDAS and len(lambdas) < MAX_FINDINGS:
            label = _label(obj)
            lambdas.append(
                Finding(
                    code=Code.KERAS_LAMBDA,
                    message=f"Keras Lambda layer {label!r}: its function is Python bytecode, "
                    "run when the model loads (with safe_mode off)",
                    file=where,
                )
            )
        outside = _outside_keras(obj)
        if outside is not None and outside not in seen and len(custom) < MAX_FINDINGS:
            seen.add(outside)
            custom.append(
                Finding(
                    code=Code.KERAS_CUSTOM_OBJECT,
                    message=f"Keras object {outside} (in {_label(obj)!r}) comes from outside "
                    "Keras: loading the model imports and calls it",
                    file=where,
                )
            )
    return lambdas + custom


def read_keras(read: ReadAt, size: int, path: str) -> KerasFile:
    """The ``.keras`` archive of ``size`` bytes behind ``read``."""
    archive = read_zip(read, size, path)
    member = archive.member(CONFIG)
    if member is None:
        raise _error(f"a .keras archive without {CONFIG}", Code.KERAS_BAD_ARCHIVE, path)
    try:
        data = read_member(read, member, path, MAX_CONFIG_BYTES)
    except FormatError as exc:
        if exc.code is Code.PICKLE_TOO_LARGE:  # read_member's word for over the limit
            exc.code = Code.KERAS_BAD_CONFIG
        raise
    findings = config_findings(parse_config(data, path), path)
    weights = archive.member(WEIGHTS)
    storages: tuple[TensorSpan, ...] = ()
    if weights is not None:
        storages = (
            TensorSpan(
                name=WEIGHTS,
                dtype="h5" if weights.stored else "h5+deflate",
                shape=(weights.data_end - weights.data_start,),
                start=weights.data_start,
                end=weights.data_end,
                n_elements=0,
            ),
        )
    layout = WeightLayout(
        "keras",
        size,
        0,
        (),
        findings=tuple(findings),
        storages=storages,
        scattered=True,
        crc_ranges=tuple(
            (m.name, m.data_start, m.data_end, m.crc) for m in archive.members if m.stored
        ),
    )
    return KerasFile(layout, code=bool(findings))


def legacy_h5_finding(path: str) -> Finding:
    """The finding for a legacy Keras HDF5 file."""
    return Finding(
        code=Code.KERAS_LEGACY_H5,
        message="legacy Keras HDF5 file: a format that can carry code (Lambda layers load "
        "as bytecode); not parsed",
        file=path,
    )


__all__ = [
    "CONFIG",
    "HDF5_MAGIC",
    "WEIGHTS",
    "KerasFile",
    "config_findings",
    "legacy_h5_finding",
    "parse_config",
    "read_keras",
]

"""The inventory report: its statuses and the stable JSON schema ``modelsign.inventory`` v1."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr

from .._internal.formats import FileFormat
from .._internal.manifest import Manifest
from .._version import __version__
from ..policy import RuleResult

Status = Literal[
    "verified",
    "policy-failed",
    "signed-untrusted",
    "unsigned",
    "tampered",
    "unsafe-format",
    "unreadable",
]
#: Worst first: the order of ``--sort status``.
STATUS_ORDER: Final[tuple[Status, ...]] = (
    "tampered",
    "unreadable",
    "unsafe-format",
    "policy-failed",
    "signed-untrusted",
    "unsigned",
    "verified",
)
StoreKind = Literal["huggingface", "ollama", "lmstudio", "llama.cpp", "path"]
#: How far the content was compared with something: nothing, the sizes a store
#: records, content addresses (hashed), or a signature's manifest.
Checked = Literal["none", "size", "sha256", "signature"]
SortKey = Literal["status", "size", "name"]
# Where an entry's ML-BOM manifest came from (sbom.Origin); None: read from headers only.
BomOrigin = Literal["model", "verified-signature"] | None


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InventoryFile(_Out):
    """One file of a model. ``sha256`` only when its bytes were hashed."""

    name: str  # inside the model (Ollama: the layer's role, e.g. model.gguf, LICENSE)
    path: str  # on disk (a cache blob for Hugging Face and Ollama)
    size: int
    format: FileFormat | None = None  # None when the model could not be read
    sha256: str | None = None
    content_address: str | None = None  # the store's name for it: HF etag, Ollama digest


class QuantizationSummary(_Out):
    quantized: bool
    scheme: str | None  # GGUF file type or quant_method, e.g. MOSTLY_Q4_K_M, gptq
    bits_per_weight: float | None


class InventoryEntry(_Out):
    """One model found on the device."""

    name: str  # repo id@revision, model:tag, or a path relative to its store
    store: StoreKind
    location: str  # snapshot folder, Ollama manifest file, model folder or file
    revision: str | None = None  # Hugging Face commit
    refs: list[str] = []  # Hugging Face refs pointing at that commit
    files: list[InventoryFile] = []
    formats: list[str] = []
    size: int = 0
    quantization: QuantizationSummary | None = None
    licence: str | None = None  # SPDX expression
    signature: str | None = None  # the signature file found with the model
    signer: str | None = None
    status: Status
    reason: str | None = None
    checked: Checked = "none"
    policy: list[RuleResult] | None = None  # every rule, when a policy was given
    blocked: bool = False  # fails the scan (exit code 1): tampered, untrusted, a failed rule…


class StoreInfo(_Out):
    """A place that was (or would have been) scanned."""

    kind: StoreKind
    path: str
    origin: str  # the environment variable that set it, "default" or "root"
    present: bool


class Inventory(_Out):
    """Every model found on one device (schema ``modelsign.inventory`` version 1)."""

    kind: Literal["modelsign.inventory"] = "modelsign.inventory"
    version: Literal[1] = 1
    tool: str = f"modelsign {__version__}"
    host: str
    scanned_at: str
    verify: bool
    policy: bool
    stores: list[StoreInfo]
    models: list[InventoryEntry]
    # What the ML-BOM is built from, by entry key; not part of the JSON.
    _manifests: dict[str, tuple[Manifest, BomOrigin]] = PrivateAttr(default_factory=dict)

    @property
    def blocked(self) -> bool:
        """Whether any model fails the scan (the CLI's exit code 1; see ``scan``)."""
        return any(m.blocked for m in self.models)

    def counts(self) -> dict[str, int]:
        """Models per status, in :data:`STATUS_ORDER`, statuses with none left out."""
        found = [m.status for m in self.models]
        return {s: found.count(s) for s in STATUS_ORDER if s in found}


def entry_key(entry: InventoryEntry) -> str:
    """Which manifest in ``Inventory._manifests`` is this entry's."""
    return f"{entry.store}\0{entry.location}\0{entry.name}"


def sort_models(models: Iterable[InventoryEntry], by: SortKey) -> list[InventoryEntry]:
    """Worst status first, largest first, or by name; name and location break ties."""
    if by == "status":
        return sorted(models, key=lambda m: (STATUS_ORDER.index(m.status), m.name, m.location))
    if by == "size":
        return sorted(models, key=lambda m: (-m.size, m.name, m.location))
    return sorted(models, key=lambda m: (m.name, m.location))

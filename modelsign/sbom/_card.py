"""The CycloneDX ``modelCard`` of a model, from the front matter of its model card."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .._internal.manifest import Manifest
from ._fields import HUB, HUB_ID, MAX_ITEMS, MAX_TEXT, NAMESPACE, bounded_strings, bounded_text

_CARD_PROPERTIES: Final = (
    "library_name",
    "language",
    "license_name",
    "license_link",
    "model_name",
    "model_type",
    "inference",
)


def _dataset(name: str) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "dataset", "name": name}
    if HUB_ID.fullmatch(name):
        data["contents"] = {"url": f"{HUB}/datasets/{name}"}
    return data


def _metrics(model_index: object) -> list[dict[str, str]]:
    """``model-index[].results[].metrics[]`` as CycloneDX performance metrics."""
    out: list[dict[str, str]] = []
    entries = model_index if isinstance(model_index, list) else []
    for entry in entries:
        results = entry.get("results") if isinstance(entry, dict) else None
        for result in results if isinstance(results, list) else []:
            if not isinstance(result, dict):
                continue
            ds = result.get("dataset")
            task = result.get("task")
            slice_parts = []
            if isinstance(task, dict) and isinstance(task.get("type"), str):
                slice_parts.append(task["type"])
            if isinstance(ds, dict):
                label = ds.get("name") or ds.get("type")
                if isinstance(label, str):
                    extras = [str(ds[k]) for k in ("config", "split") if isinstance(ds.get(k), str)]
                    slice_parts.append(label + (f" ({', '.join(extras)})" if extras else ""))
            metrics = result.get("metrics")
            for metric in metrics if isinstance(metrics, list) else []:
                if not isinstance(metric, dict) or "value" not in metric:
                    continue
                kind = metric.get("type") or metric.get("name")
                value = metric["value"]
                if not isinstance(kind, str) or isinstance(value, (dict, list)) or value is None:
                    continue
                item = {"type": kind[:MAX_TEXT], "value": bounded_text(value)}
                if slice_parts:
                    item["slice"] = ": ".join(slice_parts)[:MAX_TEXT]
                out.append(item)
                if len(out) >= MAX_ITEMS:
                    return out
    return out


def _architecture(manifest: Manifest) -> str | None:
    for f in manifest.files:
        if f.weights is not None and f.weights.format == "gguf":
            arch = f.weights.metadata.get("general.architecture")
            if isinstance(arch, str) and arch:
                return arch
    return None


def model_card(
    manifest: Manifest, card: Mapping[str, object] | None = None
) -> dict[str, Any] | None:
    """The CycloneDX 1.6 ``modelCard`` of a model, or None when nothing is known.

    ``card`` is the front matter of the model card (``parse_model_card``):
    ``pipeline_tag`` becomes the task, ``datasets`` the datasets (linked to
    the Hub), ``model-index`` results the performance metrics, and a few
    descriptive keys properties. GGUF ``general.architecture`` gives the
    architecture family.
    """
    return model_card_of(manifest, manifest.digest(), card)


def model_card_of(
    manifest: Manifest, digest: str, card: Mapping[str, object] | None
) -> dict[str, Any] | None:
    card = card or {}
    params: dict[str, Any] = {}
    task = card.get("pipeline_tag")
    if isinstance(task, str) and task.strip():
        params["task"] = task.strip()[:MAX_TEXT]
    arch = _architecture(manifest)
    if arch is not None:
        params["architectureFamily"] = arch[:MAX_TEXT]
    datasets = bounded_strings(card.get("datasets"))
    if datasets:
        params["datasets"] = [_dataset(d) for d in datasets]
    out: dict[str, Any] = {"bom-ref": "model-card:" + digest}
    if params:
        out["modelParameters"] = params
    metrics = _metrics(card.get("model-index"))
    if metrics:
        out["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    co2 = card.get("co2_eq_emissions")
    if co2 is not None:
        fields = co2.items() if isinstance(co2, dict) else [("emissions", co2)]
        env = [
            {"name": f"{NAMESPACE}card:co2_eq_emissions.{k}", "value": bounded_text(v)}
            for k, v in sorted(fields, key=lambda kv: str(kv[0]))
            if not isinstance(v, (dict, list))
        ][:MAX_ITEMS]
        if env:
            out["considerations"] = {"environmentalConsiderations": {"properties": env}}
    props = [
        {"name": f"{NAMESPACE}card:{key}", "value": value}
        for key in _CARD_PROPERTIES
        for value in bounded_strings(card.get(key))
    ]
    if props:
        out["properties"] = props
    return out if len(out) > 1 else None

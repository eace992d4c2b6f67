"""ONNX models and their external data files as weight layouts for the hashing pipeline.

An ``.onnx`` file's inline tensors are ranges of it; every other byte is
structure, digested in file order as its header. A tensor stored in an
external data file is a range of *that* file: the model's parse gives each
data file a layout of its own (its tensors, the rest as structure), so the
data file is digested tensor by tensor in its own single read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ...codes import Code
from ...errors import FormatError
from .layout import MetadataValue, TensorSpan, WeightLayout
from .onnx import OnnxModel, OnnxTensor, external_span, resolve_external

#: Metadata key naming, in a data file's layout, the model whose tensors it holds.
EXTERNAL_OF = "onnx.external_data_of"
#: Metadata keys of a quantized model: the scheme its graph shows and its bit width.
QUANTIZATION = "onnx.quantization"
QUANTIZATION_BITS = "onnx.quantization_bits"


def onnx_layout(model: OnnxModel) -> WeightLayout:
    """The layout of the ``.onnx`` file itself: its inline tensors."""
    spans = [
        TensorSpan(t.name, t.dtype, t.dims, t.start, t.end, t.n_elements)
        for t in model.tensors
        if t.start is not None and t.end is not None
    ]
    meta: dict[str, MetadataValue] = {
        "onnx.initializers": model.initializers,
        "onnx.ir_version": model.ir_version,
        "onnx.producer_name": model.producer_name,
        "onnx.producer_version": model.producer_version,
    }
    meta.update({f"onnx.opset.{d or 'ai.onnx'}": v for d, v in model.opsets.items()})
    if model.quantization.scheme is not None:
        meta[QUANTIZATION] = model.quantization.scheme
    if model.quantization.bits is not None:
        meta[QUANTIZATION_BITS] = model.quantization.bits
    return WeightLayout(
        format="onnx",
        file_size=model.file_size,
        header_size=0,
        tensors=tuple(sorted(spans, key=lambda s: (s.start, s.end))),
        metadata=meta,
        scattered=True,
    )


@dataclass
class ExternalData:
    """The external tensors of the models in one folder, by data file."""

    tensors: dict[str, list[tuple[str, OnnxTensor]]] = field(default_factory=dict)

    def add(
        self,
        root: str,
        model_path: str,
        model: OnnxModel,
        within: Mapping[str, str] | None = None,
    ) -> None:
        """Record ``model``'s external tensors; unsafe locations are refused here, unread.

        ``within``: the real folder each discovered file must resolve inside
        (see :func:`~.onnx_external.resolve_external`).
        """
        for t in model.tensors:
            if t.external is not None:
                location = t.external.location
                data = resolve_external(root, model_path, location, tensor=t.name, within=within)
                self.tensors.setdefault(data, []).append((model_path, t))

    def layouts(self, sizes: Mapping[str, int]) -> dict[str, WeightLayout]:
        """A layout per data file of ``sizes`` (its byte count, by path)."""
        out: dict[str, WeightLayout] = {}
        for data, tensors in self.tensors.items():
            if data not in sizes:  # ignored, or a single .onnx file signed: unsigned data
                model_path, t = tensors[0]
                raise FormatError(
                    f"tensor {t.name!r}: its external data file {data} is not among the "
                    "model's files (ignored, or the .onnx file taken alone): every external "
                    "data file is part of the signed model",
                    code=Code.ONNX_EXTERNAL_MISSING,
                    path=model_path,
                    tensor=t.name,
                )
            size = sizes[data]
            spans = []
            for _model, t in tensors:
                start, end = external_span(t, size, data)
                spans.append(TensorSpan(t.name, t.dtype, t.dims, start, end, t.n_elements))
            owners = sorted({m for m, _ in tensors})
            out[data] = external_layout(size, spans, ", ".join(owners))
        return out


def external_layout(size: int, spans: list[TensorSpan], owner: str) -> WeightLayout:
    """The layout of a data file holding ``spans`` of the model(s) ``owner``."""
    spans.sort(key=lambda s: (s.start, s.end))
    return WeightLayout(
        format="onnx",
        file_size=size,
        header_size=0,
        tensors=tuple(spans),
        metadata={EXTERNAL_OF: owner},
        scattered=True,
    )

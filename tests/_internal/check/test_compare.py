"""diff_weights on archives: views judged by their storage, storages without tensors named."""

from __future__ import annotations

from modelsign._internal.check.compare import diff_weights
from modelsign._internal.manifest import StorageEntry, TensorEntry, WeightsInfo
from modelsign._internal.metadata.quantization import FileQuantization

NO_QUANT = FileQuantization(
    dtypes={}, tensors=0, elements=0, bytes=0, bits_per_weight=None, file_type=None
)


def archive(storages: dict[str, str | None], views: dict[str, str] | None = None) -> WeightsInfo:
    """An archive of ``storages`` (name: digest) and tensors without digests of their own
    (``views``: tensor name: its storage)."""
    tensors = [
        TensorEntry(name=n, dtype="F32", shape=[2], offset=0, length=8, storage=s)
        for n, s in (views or {}).items()
    ]
    return WeightsInfo(
        format="keras",
        header_size=0,
        header_digest="h",
        tensor_count=len(tensors),
        tensors=tensors,
        quantization=NO_QUANT,
        storages=[StorageEntry(name=n, offset=0, length=8, digest=d) for n, d in storages.items()],
    )


def found(expected: WeightsInfo, actual: WeightsInfo) -> list[tuple[str, str | None, str]]:
    return [(p.code, p.tensor, p.message) for p in diff_weights("m.keras", expected, actual)]


def test_a_storage_without_tensors_is_named_when_it_changes() -> None:
    signed = archive({"model.weights.h5": "a" * 64})
    ((code, tensor, message),) = found(signed, archive({"model.weights.h5": "b" * 64}))
    assert (code, tensor) == ("STORAGE_MODIFIED", None)
    assert message.startswith("storage model.weights.h5 changed")
    (p,) = diff_weights("m.keras", signed, archive({"model.weights.h5": "b" * 64}))
    assert (p.file, p.expected, p.actual) == ("m.keras", "a" * 64, "b" * 64)
    assert found(signed, signed) == []


def test_a_storage_without_tensors_that_is_gone() -> None:
    ((code, _, message),) = found(archive({"model.weights.h5": "a" * 64}), archive({}))
    assert code == "STORAGE_MODIFIED" and "model.weights.h5 is gone" in message


def test_storages_without_digests_say_nothing() -> None:
    assert found(archive({"w": None}), archive({"w": "b" * 64})) == []
    assert found(archive({"w": "a" * 64}), archive({"w": None})) == []


def test_a_storage_with_tensors_is_told_through_them() -> None:
    signed = archive({"w.npy": "a" * 64}, {"w": "w.npy"})
    changed = archive({"w.npy": "b" * 64}, {"w": "w.npy"})
    assert [(c, t) for c, t, _ in found(signed, changed)] == [("TENSOR_MODIFIED", "w")]

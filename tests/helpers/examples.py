"""The bundled example model (``examples/build_tiny_model.py``), built for a test."""

from __future__ import annotations

from pathlib import Path


def build_example(folder: Path) -> tuple[Path, Path]:
    """The example safetensors model and its Q8_0 GGUF derivative, built under ``folder``."""
    from build_tiny_model import build  # examples/ is on sys.path (tests/conftest.py)

    models: tuple[Path, Path] = build(folder)
    return models

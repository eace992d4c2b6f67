"""What the loader tests share: one signing key per module, its verifier, the signed example."""

from __future__ import annotations

from pathlib import Path

import pytest

import modelsign
from modelsign._internal.signature import keys


@pytest.fixture(scope="module")
def key() -> keys.PrivateKey:
    return keys.generate_key()


@pytest.fixture
def verifier(key: keys.PrivateKey) -> modelsign.KeyVerifier:
    return modelsign.KeyVerifier(key.public_key())


@pytest.fixture
def signed(tiny_model: Path, key: keys.PrivateKey) -> Path:
    """The example model, signed (BLAKE3 tensor digests)."""
    modelsign.sign(tiny_model, signer=modelsign.KeySigner(key), env={})
    return tiny_model

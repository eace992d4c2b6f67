"""Fixtures of the policy tests: the release and stranger keys, signed example models
(read-only: copy one to change it), a torch checkpoint and keyless signatures."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from modelsign._internal.signature.verifiers import KeyVerifier
from tests.helpers.signing import KeyPair, MakeKeyPair, SignedModel
from tests.policy.helpers import GH_REF, GH_REPO, keyless_signer
from tests.sigstore_standin import SigstoreStandin


@pytest.fixture(scope="module")
def release(keypair: KeyPair) -> KeyPair:
    return keypair


@pytest.fixture(scope="module")
def stranger(make_keypair: MakeKeyPair) -> KeyPair:
    return make_keypair("stranger")


@pytest.fixture(scope="module")
def signed_st(signed_model: SignedModel) -> Path:
    """The example safetensors model signed by ``release``. Read-only: copy it."""
    return signed_model()


@pytest.fixture(scope="module")
def signed_gguf(signed_model: SignedModel) -> Path:
    """The example's Q8_0 GGUF derivative signed by ``release``. Read-only: copy it."""
    return signed_model(example="gguf")


@pytest.fixture
def release_verifier(release: KeyPair) -> KeyVerifier:
    return release.verifier


@pytest.fixture(scope="module")
def torch_checkpoint() -> bytes:
    """A real ``torch.save`` checkpoint (a ZIP holding a pickle)."""
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2, 2)}, buf)
    return buf.getvalue()


@pytest.fixture
def pickle_model(tmp_path: Path, torch_checkpoint: bytes, tiny_model: Path) -> Path:
    """A folder with a pickle checkpoint, a config and the example's Apache LICENSE (unsigned)."""
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(torch_checkpoint)
    (folder / "config.json").write_text('{"model_type": "llama"}\n')
    shutil.copy(tiny_model / "LICENSE", folder / "LICENSE")
    return folder


@pytest.fixture
def copy_signed(signed_st: Path, tmp_path: Path) -> Path:
    """A private copy of the signed safetensors model (to drop files beside it)."""
    return Path(shutil.copytree(signed_st, tmp_path / "copy"))


@pytest.fixture(scope="module")
def keyless(standin: SigstoreStandin, signed_model: SignedModel) -> Path:
    """The example model signed keylessly as DEFAULT_IDENTITY. Read-only."""
    return signed_model(signer=keyless_signer(standin, standin.token()))


@pytest.fixture(scope="module")
def gh_keyless(standin: SigstoreStandin, signed_model: SignedModel) -> Path:
    """The example model signed by acme/models' release workflow for tag v1.0. Read-only."""
    token = standin.token(github={"repository": GH_REPO, "ref": GH_REF})
    return signed_model(signer=keyless_signer(standin, token))

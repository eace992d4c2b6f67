"""A bundle signed with a cloud KMS key verifies with the OMS tool (``model_signing`` 1.1.1).

The key is held in moto's KMS server (``tests/helpers/kms_standins.py``) and
signs through boto3, as with AWS KMS; ``model_signing verify key`` is given the
public key exported from KMS as PEM. (``model_signing`` 1.1.1 cannot sign with a
KMS key, so the other direction has nothing to test.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelsign._internal.signature import keys
from modelsign._internal.signature.keyrefs import held_public_key
from modelsign._internal.signature.signers import KeySigner
from modelsign.sign import sign
from tests.helpers import kms_standins, oms
from tests.helpers.kms_standins import MotoKms
from tests.helpers.oms import ok, output, run_all
from tests.helpers.signing import flip_byte

pytestmark = [
    pytest.mark.slow,  # model_signing as a subprocess
    pytest.mark.skipif(
        not oms.MODEL_SIGNING.exists(), reason=f"model_signing CLI not found at {oms.MODEL_SIGNING}"
    ),
]


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kms_standins.isolate_aws(monkeypatch, tmp_path)


def test_kms_signed_bundles_verify_with_model_signing(
    kms: MotoKms, tiny_models: tuple[Path, Path], tmp_path: Path
) -> None:
    """A folder (P-256 key) and a single GGUF file (P-384 key), as model_signing verifies keys."""
    folder, gguf_folder = tiny_models
    gguf = next(gguf_folder.glob("*.gguf"))
    cases = []
    for model, spec in ((folder, "ECC_NIST_P256"), (gguf, "ECC_NIST_P384")):
        alias = f"alias/interop-{spec.lower()}"
        kms.create_key(spec, alias=alias)
        uri = f"awskms://{kms.authority}/{alias}"
        signer = KeySigner.from_uri(uri)
        try:
            result = sign(model, signer=signer, env={})
        finally:
            signer.key.close()  # type: ignore[union-attr]
        pem = tmp_path / f"{spec}.pub"
        pem.write_bytes(keys.public_key_pem(held_public_key(uri)))
        cases.append((model, Path(result.signature), pem))

    def verify_all() -> list[oms.Proc]:
        return run_all(
            [
                oms.model_signing("verify", "key", model, "--signature", sig, "--public_key", pem)
                for model, sig, pem in cases
            ]
        )

    for proc in verify_all():
        assert "Verification succeeded" in output(ok(proc))

    flip_byte(folder / "model.safetensors", (folder / "model.safetensors").stat().st_size - 1)
    flip_byte(gguf, gguf.stat().st_size - 1)
    for proc in verify_all():
        assert proc.returncode != 0, output(proc)

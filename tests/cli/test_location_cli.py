"""Where signatures live, on the command line: a Hugging Face cache repo folder is its refs/main
snapshot for ``sign``, ``verify`` and ``inventory`` alike; a signature modelsign 0.1 left in the
repo folder itself is still found, with a ``LEGACY_SIGNATURE_PLACE`` warning.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelsign.cli import cli
from tests.helpers.hf_cache import make_hf_cache
from tests.helpers.signing import KeyPair

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OLDER = "89abcdef0123456789abcdef0123456789abcdef"


def run(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def hub(tiny_model: Path, tmp_path: Path) -> Path:
    """A cache holding the example as ``models--acme--tiny`` (refs/main → COMMIT), and an older
    revision of it (OLDER) that refs/main does not name."""
    files = {p.name: p.read_bytes() for p in sorted(tiny_model.iterdir()) if p.is_file()}
    make_hf_cache(tmp_path / "hub", files, COMMIT)
    older = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / OLDER
    shutil.copytree(tmp_path / "hub" / "models--acme--tiny" / "snapshots" / COMMIT, older,
                    symlinks=True)  # fmt: skip
    return tmp_path / "hub"


@pytest.fixture
def policy(keypair: KeyPair, tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(f"version: 1\nsigners:\n  keys:\n    - file: {keypair.pub_path}\n")
    return path


def verified(target: Path, keypair: KeyPair) -> dict[str, object]:
    code, out, err = run("verify", target, "--key", keypair.pub_path, "--json")
    assert code == 0, out + err
    result: dict[str, object] = json.loads(out)
    assert result["verdict"] == "verified"
    return result


def inventory(hub: Path, policy: Path) -> dict[str, dict[str, object]]:
    """The inventory of the cache by revision (exit code 1: the unsigned older one is blocked)."""
    code, out, err = run("inventory", hub, "--no-default-stores", "--policy", policy, "--json")
    assert code == 1, out + err
    return {m["revision"]: m for m in json.loads(out)["models"]}


def test_sign_a_repo_folder_and_every_command_agrees_it_is_signed(
    hub: Path, keypair: KeyPair, policy: Path
) -> None:
    repo = hub / "models--acme--tiny"
    snap = repo / "snapshots" / COMMIT
    code, _, err = run("sign", repo, "--key", keypair.key_path)
    assert code == 0, err
    assert f"wrote {snap / 'model.sig'} and {snap / 'claims.jsonl'}" in err
    assert not (repo / "model.sig").exists()
    for target in (repo, snap):
        result = verified(target, keypair)
        assert result["signature"] == str(snap / "model.sig") and result["problems"] == []
    models = inventory(hub, policy)
    assert (models[COMMIT]["status"], models[COMMIT]["signature"]) == (
        "verified",
        str(snap / "model.sig"),
    )
    # A signature speaks for one revision: the older snapshot is not signed by it.
    assert (models[OLDER]["status"], models[OLDER]["signature"]) == ("unsigned", None)


def test_a_signature_left_in_the_repo_folder_is_used_with_a_warning(
    hub: Path, keypair: KeyPair, policy: Path
) -> None:
    repo = hub / "models--acme--tiny"
    snap = repo / "snapshots" / COMMIT
    code, _, err = run("sign", repo, "--key", keypair.key_path)
    assert code == 0, err
    for name in ("model.sig", "claims.jsonl"):  # where modelsign 0.1 wrote them
        (snap / name).rename(repo / name)
    for target in (repo, snap):
        result = verified(target, keypair)
        assert result["signature"] == str(repo / "model.sig")
        (warning,) = result["problems"]  # type: ignore[misc]
        assert (warning["code"], warning["severity"]) == ("LEGACY_SIGNATURE_PLACE", "warning")
        assert str(snap) in warning["message"] and "modelsign 0.1" in warning["message"]
    code, out, _ = run("verify", repo, "--key", keypair.pub_path)
    assert code == 0 and "warning LEGACY_SIGNATURE_PLACE" in out
    # The inventory notices it too: signed (not "unsigned"), and says to move it.
    models = inventory(hub, policy)
    assert models[COMMIT]["signature"] == str(repo / "model.sig")
    assert models[COMMIT]["status"] == "signed-untrusted"
    assert str(models[COMMIT]["reason"]).startswith("LEGACY_SIGNATURE_PLACE")
    # Only for the snapshot refs/main names: the older one is not signed by it.
    assert models[OLDER]["status"] == "unsigned"
    code, _, _ = run("verify", repo / "snapshots" / OLDER, "--key", keypair.pub_path)
    assert code == 2
    # Signing again writes where signatures live now; the old one is then left alone.
    code, _, err = run("sign", repo, "--key", keypair.key_path)
    assert code == 0, err
    assert (snap / "model.sig").is_file()
    assert verified(repo, keypair)["problems"] == []

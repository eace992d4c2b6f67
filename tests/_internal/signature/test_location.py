"""signature_location(): the one rule for where a model's signatures live, and every verb on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelsign import KeySigner, KeyVerifier, sign, verify
from modelsign._internal.signature.location import (
    covering_location,
    moved_note,
    signature_location,
)
from modelsign.diff import diff_models
from modelsign.inventory import scan
from modelsign.load import load_safetensors
from modelsign.policy import Policy
from modelsign.watch import Event, Watcher
from tests.helpers.hf_cache import make_hf_cache
from tests.helpers.signing import shared_key

COMMIT = "0123456789abcdef0123456789abcdef01234567"
KEY = shared_key()  # the key of the ``keypair`` fixture


def cache_repo(cache: Path, folder: Path) -> Path:
    """``folder`` as a Hugging Face cache repo: blobs by SHA-256, snapshot links, refs/main."""
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    return make_hf_cache(cache, files, COMMIT)


def test_a_folder(tmp_path: Path) -> None:
    loc = signature_location(tmp_path)
    assert (loc.root, loc.single_file) == (str(tmp_path), None)
    assert loc.signature == str(tmp_path / "model.sig")
    assert loc.claims == str(tmp_path / "claims.jsonl")
    assert loc.provenance == str(tmp_path / "model.provenance.sig")
    assert loc.names_inside(loc.signature, loc.claims, "/elsewhere/x.sig") == [
        "model.sig",
        "claims.jsonl",
    ]


def test_a_single_file(tmp_path: Path) -> None:
    w = tmp_path / "w.gguf"
    w.write_bytes(b"GGUF")
    loc = signature_location(w)
    assert (loc.root, loc.single_file) == (str(tmp_path), "w.gguf")
    assert (loc.signature, loc.claims, loc.provenance) == (
        f"{w}.sig",
        f"{w}.claims.jsonl",
        f"{w}.provenance.sig",
    )
    assert loc.names_inside(loc.signature) == []  # nothing of a folder to leave out


def test_a_chosen_signature_keeps_its_claims_beside_it(tmp_path: Path) -> None:
    loc = signature_location(tmp_path, signature=tmp_path / "out" / "release.sig")
    assert loc.claims == str(tmp_path / "out" / "release.claims.jsonl")
    assert loc.provenance == str(tmp_path / "model.provenance.sig")
    chosen = signature_location(tmp_path, signature="a/model.sig", claims="b/c.jsonl")
    assert (chosen.signature, chosen.claims) == ("a/model.sig", "b/c.jsonl")


def test_a_cache_repo_folder_is_its_refs_main_snapshot(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    repo = cache_repo(tmp_path / "hub", tmp_path / "m")
    snap = repo / "snapshots" / COMMIT
    for given in (repo, snap):
        loc = signature_location(given)
        assert (loc.root, loc.signature) == (str(snap), str(snap / "model.sig"))
        assert loc.claims == str(snap / "claims.jsonl")


def test_a_broken_cache_repo_is_left_to_discovery(tmp_path: Path) -> None:
    repo = tmp_path / "models--acme--broken"
    (repo / "snapshots").mkdir(parents=True)  # no refs/main
    assert signature_location(repo).signature == str(repo / "model.sig")


def test_a_loader_takes_a_file_of_a_signed_folder_under_the_folders_signature(
    tmp_path: Path,
) -> None:
    w = tmp_path / "model.safetensors"
    w.write_bytes(b"x")
    loc = covering_location(w)
    assert (loc.root, loc.single_file, loc.signature) == (
        str(tmp_path),
        None,
        str(tmp_path / "model.sig"),
    )
    Path(f"{w}.sig").write_bytes(b"{}")
    assert covering_location(w).signature == f"{w}.sig"
    assert covering_location(w).single_file == "model.safetensors"


def test_a_signed_cache_repo_folder_is_signed_for_every_verb(
    tiny_model: Path, tmp_path: Path
) -> None:
    """`sign models--org--name` signs its snapshot: verify, load, inventory, watch, diff agree."""
    repo = cache_repo(tmp_path / "hub", tiny_model)
    snap = repo / "snapshots" / COMMIT
    res = sign(repo, signer=KeySigner(KEY), env={})
    assert res.signature == str(snap / "model.sig") and not (repo / "model.sig").exists()
    verifier = KeyVerifier(KEY.public_key())
    for target in (repo, snap):
        result = verify(target, verifier=verifier)
        assert result.verdict == "verified" and result.signature == res.signature
        assert result.files_verified == len(res.manifest.files)
        assert load_safetensors(target, verifier=verifier).report.signature == res.signature
    (entry,) = scan([repo], env={}, default_stores=False, verifier=verifier).models
    assert (entry.status, entry.checked) == ("verified", "signature")
    assert diff_models(res.signature, repo).identical
    events: list[Event] = []
    with Watcher(repo, policy=Policy(version=1), verifier=verifier, on_event=events.append,
                 use_events=False) as watcher:  # fmt: skip
        watcher.check_now()
    assert events[0]["event"] == "verified"


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_sign_writes_where_verify_reads(tiny_models: tuple[Path, Path], kind: str) -> None:
    target = tiny_models[0] if kind == "folder" else next(tiny_models[1].glob("*.gguf"))
    res = sign(target, signer=KeySigner(KEY), env={})
    assert res.signature == signature_location(target).signature
    assert res.claims == signature_location(target).claims
    assert verify(target, verifier=KeyVerifier(KEY.public_key())).signature == res.signature


def test_a_signature_modelsign_0_1_left_in_the_repo_folder(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    repo = cache_repo(tmp_path / "hub", tmp_path / "m")
    snap = repo / "snapshots" / COMMIT
    for name in ("model.sig", "model.provenance.sig"):
        (repo / name).write_text("{}")
    for given in (repo, snap):
        loc = signature_location(given)
        assert (loc.signature, loc.claims) == (str(repo / "model.sig"), str(repo / "claims.jsonl"))
        assert loc.provenance == str(repo / "model.provenance.sig")
        assert loc.moved_to == str(snap) and "modelsign 0.1" in (moved_note(loc) or "")
        # Writers put signatures where they live now.
        new = signature_location(given, legacy=False)
        assert (new.signature, new.provenance, new.moved_to) == (
            str(snap / "model.sig"),
            str(snap / "model.provenance.sig"),
            None,
        )
    # Named explicitly (as the inventory passes what it found), it is still noticed.
    assert signature_location(snap, signature=repo / "model.sig").moved_to == str(snap)
    # A signature in the snapshot wins; the old one is then not looked at.
    (snap / "model.sig").write_text("{}")
    loc = signature_location(repo)
    assert (loc.signature, loc.moved_to, moved_note(loc)) == (str(snap / "model.sig"), None, None)
    # Another revision than refs/main's is not what the repo folder meant.
    other = repo / "snapshots" / ("f" * 40)
    other.mkdir()
    assert signature_location(other).signature == str(other / "model.sig")

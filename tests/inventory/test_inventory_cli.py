"""``modelsign inventory`` as a new user meets it: empty stores, exit codes, the table's layout."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.cells import cell_len

from modelsign import KeySigner, sign
from modelsign.cli._inventory_table import BLOCKED, COLUMNS, elide_middle
from modelsign.cli.inventory import _display_name
from modelsign.inventory import STATUS_ORDER, InventoryEntry
from tests.inventory.stores import (
    MODEL,
    OTHER,
    Device,
    gguf_bytes,
    hf_repo,
    ollama_model,
    run,
    safetensors_bytes,
)

#: Every variable that moves a store: unset unless a test sets it (the user's own stay out).
STORE_VARIABLES = (
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HOME",
    "OLLAMA_MODELS",
    "LMSTUDIO_MODELS",
    "LLAMA_CACHE",
)

# --- empty stores ---------------------------------------------------------------------------


def _empty_stores(tmp_path: Path) -> dict[str, Path]:
    """A store of every kind with no model in it, as a fresh install leaves them."""
    hf = tmp_path / "hf"  # a cache with huggingface_hub's bookkeeping but no models--*
    (hf / ".locks").mkdir(parents=True)
    (hf / "version.txt").write_text("1")
    (hf / "datasets--acme--data" / "snapshots").mkdir(parents=True)
    ollama = tmp_path / "ollama"  # OLLAMA_MODELS created, nothing pulled: no blobs/, manifests/
    ollama.mkdir()
    ollama_blobs_only = tmp_path / "ollama-blobs"  # blobs/ made, no manifest written yet
    (ollama_blobs_only / "blobs").mkdir(parents=True)
    ollama_manifests_only = tmp_path / "ollama-manifests"
    (ollama_manifests_only / "manifests" / "registry.ollama.ai").mkdir(parents=True)
    lmstudio = tmp_path / "lmstudio"
    (lmstudio / "publisher").mkdir(parents=True)
    llama = tmp_path / "llama"
    llama.mkdir()
    return {
        "HF_HUB_CACHE": hf,
        "OLLAMA_MODELS": ollama,
        "LMSTUDIO_MODELS": lmstudio,
        "LLAMA_CACHE": llama,
        "ollama-blobs": ollama_blobs_only,
        "ollama-manifests": ollama_manifests_only,
    }


def _env(tmp_path: Path, **stores: Path) -> dict[str, str | None]:
    """A home with no store in it, the given variables set and every other one unset."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env: dict[str, str | None] = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    env |= dict.fromkeys(STORE_VARIABLES)
    return env | {k: str(v) for k, v in stores.items()}


@pytest.mark.parametrize(
    "store",
    ["HF_HUB_CACHE", "OLLAMA_MODELS", "LMSTUDIO_MODELS", "LLAMA_CACHE", "ollama-blobs",
     "ollama-manifests"],
)  # fmt: skip
def test_an_empty_store_holds_no_models(store: str, tmp_path: Path) -> None:
    path = _empty_stores(tmp_path)[store]
    var = "OLLAMA_MODELS" if store.startswith("ollama") else store
    policy = tmp_path / "policy.yaml"  # the case: under a policy, an exit code 1
    policy.write_text("version: 1\nformats: {deny: [pickle]}\nlicences: {require: true}\n")
    for args in ((), ("--verify",), ("--policy", str(policy)), ("--require-signed",)):
        code, out, err = run("--json", *args, env=_env(tmp_path, **{var: path}))
        assert code == 0, err
        doc = json.loads(out)
        assert doc["models"] == []
        assert any(s["path"] == str(path) and s["present"] for s in doc["stores"])


def test_every_store_empty_and_an_empty_root(tmp_path: Path) -> None:
    stores = _empty_stores(tmp_path)
    env = _env(tmp_path, **{k: v for k, v in stores.items() if k.isupper()})
    root = tmp_path / "root"
    root.mkdir()
    code, out, err = run(root, "--json", env=env)
    assert code == 0, err
    assert json.loads(out)["models"] == []
    code, out, err = run(root, "--no-default-stores", env=env)
    assert code == 0, err
    assert "no models found" in out


def test_a_missing_store_holds_no_models_a_missing_root_is_an_error(tmp_path: Path) -> None:
    env = _env(tmp_path, OLLAMA_MODELS=tmp_path / "not-created", HF_HUB_CACHE=tmp_path / "nor")
    code, out, err = run("--json", env=env)
    assert code == 0, err
    assert json.loads(out)["models"] == []
    # A store an environment variable names but which is not there: said, not an error.
    code, out, err = run(env=env)
    assert code == 0 and "no models found" in out
    assert f"OLLAMA_MODELS={tmp_path / 'not-created'} does not exist" in err
    # A ROOT on the command line is the user's own: one that is not there is a usage error.
    code, out, err = run(tmp_path / "typo", env=env)
    assert code == 2 and out == ""
    assert "error[NOT_FOUND]" in err


def test_a_manifest_whose_blobs_are_gone_is_still_reported(tmp_path: Path) -> None:
    """Not an empty store: a model was pulled and its blobs folder deleted since."""
    store = tmp_path / "ollama"
    blobs = ollama_model(store, ("library", "gone", "latest"), {MODEL: gguf_bytes(tmp_path)})
    for blob in blobs.values():
        blob.unlink()
    (store / "blobs").rmdir()
    code, out, err = run("--json", env=_env(tmp_path, OLLAMA_MODELS=store))
    assert code == 0, err
    (entry,) = json.loads(out)["models"]
    assert (entry["name"], entry["status"]) == ("gone:latest", "unreadable")
    assert "is missing" in entry["reason"]


# --- the table's layout ---------------------------------------------------------------------

HF_LONG = "meta-llama/Meta-Llama-3.1-8B-Instruct"
HF_LONG_REV = "5206a32e0bd3067aef1ce90f5528ade7d866253f"
OLLAMA_LONG = ("hf.co", "bartowski", "Meta-Llama-3.1-8B-Instruct-GGUF", "Q4_K_M")
LOOSE_LONG = "checkpoints/mistralai-Mistral-Nemo-Instruct-2407-finetune-2024-08-19/model.gguf"


def _long_names(device: Device, tmp_path: Path) -> None:
    """Names as long as real ones: an HF repo, an Ollama model from another registry, a path."""
    hub = Path(device.env["HOME"]) / ".cache" / "huggingface" / "hub"
    files = {"config.json": b"{}", "model.safetensors": safetensors_bytes(tmp_path, seed=40)}
    hf_repo(hub, HF_LONG, {HF_LONG_REV: files}, {"main": HF_LONG_REV})
    ollama = Path(device.env["HOME"]) / ".ollama" / "models"
    ollama_model(ollama, OLLAMA_LONG, {MODEL: gguf_bytes(tmp_path, seed=41)})
    ollama_model(
        ollama,
        ("library", "llama3.1", "8b-instruct-q4_K_M"),
        {MODEL: gguf_bytes(tmp_path, seed=42)},
    )
    loose = device.root / LOOSE_LONG
    loose.parent.mkdir(parents=True)
    loose.write_bytes(gguf_bytes(tmp_path, seed=43))


@dataclass
class Shown:
    """A model's line in the table and the reason lines under it."""

    line: str
    reasons: list[str]


def _table(out: str) -> tuple[str, list[Shown], list[str]]:
    """The header, each model's lines, and the lines after the table."""
    header, *rest = out.splitlines()
    shown: list[Shown] = []
    after: list[str] = []
    for line in rest:
        first = line.removeprefix(BLOCKED).split()
        if line.startswith(" " * 4) and shown and not after:
            shown[-1].reasons.append(line)
        elif first and first[0] in STATUS_ORDER and not after:
            shown.append(Shown(line, []))
        else:
            after.append(line)
    return header, shown, after


@pytest.mark.parametrize("columns", [60, 80, 120, 200])
def test_the_table_fits_the_terminal(columns: int, device: Device, tmp_path: Path) -> None:
    _long_names(device, tmp_path)
    env = {**device.env, "COLUMNS": str(columns)}
    args = (device.root, "--policy", device.policy)
    code, out, _ = run(*args, env=env)
    _, doc, _ = run(*args, "--json", env=env)
    models = [InventoryEntry.model_validate(m) for m in json.loads(doc)["models"]]
    header, shown, after = _table(out)
    assert len(shown) == len(models) and code == 1

    for line in out.splitlines():
        assert cell_len(line) <= columns, line
        assert line == line.rstrip()
    elided: set[str] = set()
    for m, s in zip(models, shown, strict=True):
        # The status whole, first; the name whole, or its start and end around one "…".
        assert s.line.removeprefix(BLOCKED).split()[0] == m.status
        assert s.line.startswith(BLOCKED) == m.blocked
        name = _display_name(m)
        if name not in s.line:
            cell = next(w for w in s.line.split("  ") if "…" in w).strip()
            head, tail = cell.split("…")
            assert len(head) >= 12 and len(tail) >= 12, cell
            assert name.startswith(head) and name.endswith(tail), (cell, name)
            assert columns < 200
            elided.add(name)
        # Each reason on its own indented lines, broken at spaces only (where its words fit).
        lines = [r.removeprefix(" " * 4) for r in s.reasons]
        assert bool(lines) == bool(m.reason)
        if m.reason is not None and max(map(len, m.reason.split())) <= columns - 4:
            assert " ".join(lines) == m.reason
        elif m.reason is not None:  # a digest longer than the line: cut, every character kept
            assert "".join(lines).replace(" ", "") == m.reason.replace(" ", "")

    names = {_display_name(m) for m in models}
    assert {f"{HF_LONG}@main ({HF_LONG_REV[:12]})", "hf.co/bartowski/Meta-Llama-3.1-8B-Instruct-"
            "GGUF:Q4_K_M", "llama3.1:8b-instruct-q4_K_M", LOOSE_LONG} <= names  # fmt: skip
    if columns >= 200:  # every column, every name whole
        assert header.split() == ["status", "model", *COLUMNS] and not elided
        assert not any("left out" in line for line in after)
    else:
        assert f"{HF_LONG}@main ({HF_LONG_REV[:12]})" in elided and LOOSE_LONG in elided
        hidden = [c for c in COLUMNS if c not in header.split()]
        assert hidden and f"{', '.join(hidden)} left out at {columns} columns" in " ".join(after)
        assert header.split()[:3] == ["status", "model", "store" if columns >= 80 else "size"]
    summary = " ".join(after)
    assert f"{len(models)} models: " in summary and f"blocked ({BLOCKED})" in summary


def test_a_pipe_gets_every_column_and_whole_lines(device: Device, tmp_path: Path) -> None:
    """No terminal and no COLUMNS: nothing shortened, left out or wrapped."""
    _long_names(device, tmp_path)
    code, out, _ = run(device.root, env={**device.env, "COLUMNS": None})
    assert code == 1  # grown:latest, tampered
    _, doc, _ = run(device.root, "--json", env={**device.env, "COLUMNS": None})
    models = [InventoryEntry.model_validate(m) for m in json.loads(doc)["models"]]
    header, shown, after = _table(out)
    assert header.split() == ["status", "model", *COLUMNS]
    for m, s in zip(models, shown, strict=True):
        assert _display_name(m) in s.line
        assert s.reasons == ([" " * 4 + m.reason] if m.reason else [])
    assert "…" not in out and not any("left out" in line for line in after)


def test_elide_middle_keeps_the_start_and_the_end() -> None:
    name = "models--meta-llama--Meta-Llama-3.1-8B-Instruct"
    for width in range(3, len(name)):
        short = elide_middle(name, width)
        head, tail = short.split("…")
        assert cell_len(short) == width and name.startswith(head) and name.endswith(tail)
        assert abs(len(head) - len(tail)) <= 1
    assert elide_middle(name, 29) == "models--meta-l…a-3.1-8B-Instruct"[:14] + "…" + name[-14:]
    assert elide_middle(name, len(name)) == name
    wide = "模型/量化-Q4_K_M"  # two cells a character: cut by cells, never over the width
    for width in range(3, cell_len(wide)):
        assert cell_len(elide_middle(wide, width)) <= width


# --- exit codes -----------------------------------------------------------------------------


def _blocked(out: str) -> dict[str, bool]:
    return {m["name"]: m["blocked"] for m in json.loads(out)["models"]}


def test_exit_0_when_nothing_is_blocked(device: Device) -> None:
    """Unsigned models, and signatures nobody was asked to trust, are listed, not failures."""
    for root in ("loose", "signed-model", "other-signer"):
        code, out, err = run(device.root / root, "--no-default-stores", "--json")
        assert code == 0, err
        assert not any(_blocked(out).values())
    # With trust given: a model it verifies passes.
    key = device.policy.parent / "trusted.pub"
    code, out, err = run(device.root / "signed-model", "--no-default-stores", "--key", key)
    assert code == 0, err
    assert out.splitlines()[1].split()[:2] == ["verified", "signed-model"]


def test_exit_1_for_a_tampered_model_with_or_without_a_policy(device: Device) -> None:
    """The issue's case: --verify finds a model altered since it was signed; no policy given."""
    tampered = device.root / "tampered-signed"
    code, out, _ = run(tampered, "--no-default-stores", "--verify", "--json")
    assert code == 1
    (entry,) = json.loads(out)["models"]
    assert (entry["status"], entry["blocked"], entry["policy"]) == ("tampered", True, None)
    code, out, _ = run(tampered, "--no-default-stores", "--verify")
    assert code == 1 and out.startswith("  status") and "\n✗ tampered  " in out
    assert "1 blocked (✗)" in out
    # Without --verify: an Ollama blob whose size is not its manifest's is tampered too.
    code, out, _ = run("--json", env=device.env)
    assert code == 1
    assert {n for n, b in _blocked(out).items() if b} == {"grown:latest"}
    # And under a policy (blocked there already).
    code, _, _ = run(tampered, "--no-default-stores", "--policy", device.policy)
    assert code == 1


def test_exit_1_for_a_signature_the_trust_given_does_not_verify(device: Device) -> None:
    key = device.policy.parent / "trusted.pub"
    code, out, _ = run(device.root / "other-signer", "--no-default-stores", "--key", key, "--json")
    assert code == 1
    (entry,) = json.loads(out)["models"]
    assert (entry["status"], entry["blocked"]) == ("signed-untrusted", True)
    assert entry["reason"].startswith("KEY_HINT_MISMATCH: ")
    # A pickle signed by someone else: its status is unsafe-format, and it is still blocked.
    legacy = device.root / "legacy"
    code, out, _ = run(legacy, "--no-default-stores", "--key", key, "--json")
    assert code == 0  # unsigned: listed, not a failure without --require-signed
    sign(legacy, signer=KeySigner(OTHER), env={})
    code, out, _ = run(legacy, "--no-default-stores", "--key", key, "--json")
    assert code == 1
    (entry,) = json.loads(out)["models"]
    assert (entry["status"], entry["blocked"]) == ("unsafe-format", True)


def test_exit_1_for_unsigned_models_under_require_signed(device: Device) -> None:
    loose = device.root / "loose"
    code, out, _ = run(loose, "--no-default-stores", "--require-signed", "--json")
    assert code == 1 and _blocked(out) == {"single.safetensors": True}
    # Signed (trust not asked for): present, so it passes; with --key it must also verify.
    code, out, _ = run(device.root / "other-signer", "--no-default-stores", "--require-signed")
    assert code == 0
    key = device.policy.parent / "trusted.pub"
    for root, expected in (("signed-model", 0), ("other-signer", 1)):
        args = (device.root / root, "--no-default-stores", "--require-signed", "--key", key)
        assert run(*args)[0] == expected, root
    # An unreadable model cannot show a signature: blocked too.
    code, out, _ = run(device.lmstudio, "--no-default-stores", "--require-signed", "--json")
    assert code == 1
    unreadable = {m["name"]: m["blocked"] for m in json.loads(out)["models"]
                  if m["status"] == "unreadable"}  # fmt: skip
    assert unreadable and all(unreadable.values())


def test_exit_2_for_usage_and_trust_errors(device: Device, tmp_path: Path) -> None:
    key = device.policy.parent / "trusted.pub"
    root = (device.root / "signed-model", "--no-default-stores")
    cases = [
        ((*root, "--key", key, "--identity", "a@b", "--issuer", "https://x"), "USAGE"),
        ((*root, "--offline"), "USAGE"),  # a Sigstore option without an identity
        ((*root, "--tsa-cert-chain", key), "USAGE"),  # a TSA without a key
        ((*root, "--key", tmp_path / "missing.pem"), "error["),
        ((tmp_path / "missing-root", "--no-default-stores"), "NOT_FOUND"),
        ((*root, "--require-signed", "--sort", "colour"), "colour"),
    ]
    for args, expected in cases:
        code, out, err = run(*args)
        assert code == 2, (args, out, err)
        assert expected in err, (args, err)

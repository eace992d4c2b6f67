"""The formats rule's pickle setting: ``deny``, ``safe-state-dicts`` and ``allow``.

Loading (what a policy without the setting means, the default deny list, the
contradictions refused), ``explain`` and ``policy check``, then the judgement
of every kind of pickle-bearing file on a manifest that analysed its pickles,
and end to end through :func:`modelsign.verify`. Entries another signer could
have written (one that never analysed its pickles) are made by
``tests.helpers.pickles.rewritten_builder``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from modelsign._internal.discover import discover
from modelsign._internal.manifest import FileEntry, Manifest, manifest_for_tree
from modelsign._internal.signature.verifiers import KeyVerifier
from modelsign.cli import cli
from modelsign.errors import InputError
from modelsign.policy import (
    SAFE_STATE_DICT,
    FormatsRule,
    Policy,
    evaluate,
    explain,
    parse_policy,
)
from modelsign.sign import build_manifest
from tests.helpers.pickles import (
    dangerous_checkpoint,
    rewritten_builder,
    safe_checkpoint,
    saved,
    torchscript_archive,
    unknown_checkpoint,
)
from tests.helpers.signing import KeyPair
from tests.policy.helpers import (
    MODES,
    assert_fails,
    assert_passes,
    judge,
    key_sign,
    load,
    rule_of,
    rule_policy,
)

NOT_ANALYSED = "not analysed as a safe state dict"


def formats(text: str) -> FormatsRule:
    rule = parse_policy(f"version: 1\nformats: {text}\n", "p.yaml").formats
    assert rule is not None
    return rule


# -- the setting and the lists ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "deny", "pickles", "weights_only"),
    [
        ("{}", ["pickle"], "deny", True),  # the default: every pickle denied
        ("{deny: []}", [], "allow", True),
        ("{deny: [unknown]}", ["unknown"], "allow", True),
        ("{allow: [safetensors]}", ["pickle"], "deny", True),
        ("{allow: [safetensors, pickle]}", ["pickle"], "deny", True),  # deny wins, as before
        ("{allow: [safetensors, pickle], deny: []}", [], "allow", True),
    ],
)
def test_without_the_setting_the_lists_decide_as_before(
    text: str, deny: list[str], pickles: str, weights_only: bool
) -> None:
    rule = formats(text)
    assert (rule.pickle, rule.deny, rule.pickle_setting, rule.weights_only) == (
        None,
        deny,
        pickles,
        weights_only,
    )


@pytest.mark.parametrize("setting", ["deny", "safe-state-dicts", "allow"])
def test_the_setting_leaves_pickle_out_of_the_default_deny_list(setting: str) -> None:
    rule = formats(f"{{pickle: {setting}}}")
    assert (rule.deny, rule.pickle_setting, rule.weights_only) == ([], setting, setting != "allow")
    assert formats(f"{{pickle: {setting}, deny: [unknown]}}").deny == ["unknown"]


@pytest.mark.parametrize(
    "text",
    [
        "{pickle: deny, deny: [pickle, unknown]}",  # says the same twice
        "{pickle: deny, allow: [safetensors]}",
        "{pickle: safe-state-dicts, allow: [safetensors, pickle, opaque]}",
        "{pickle: allow, allow: [pickle], deny: [unknown]}",
    ],
)
def test_consistent_combinations_load(text: str) -> None:
    formats(text)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            "formats:\n  deny: [pickle]\n  pickle: safe-state-dicts\n",
            "field formats.pickle (line 4): safe-state-dicts contradicts deny, which lists "
            "pickle: remove pickle from deny (the pickle setting decides pickle files)",
        ),
        (
            "formats:\n  pickle: allow\n  deny: [unknown, pickle]\n",
            "field formats.pickle (line 3): allow contradicts deny, which lists "
            "pickle: remove pickle from deny (the pickle setting decides pickle files)",
        ),
        (
            "formats:\n  allow: [safetensors]\n  pickle: safe-state-dicts\n",
            "field formats.pickle (line 4): safe-state-dicts contradicts allow, which leaves "
            "out pickle: add pickle to allow (or drop the allow list)",
        ),
        (
            "formats: {pickle: allow, allow: [gguf]}\n",
            "field formats.pickle (line 2): allow contradicts allow, which leaves out "
            "pickle: add pickle to allow (or drop the allow list)",
        ),
        (
            "formats:\n  pickle: safe_state_dicts\n",
            "field formats.pickle (line 3): Input should be 'deny', 'safe-state-dicts' or 'allow'",
        ),
    ],
)
def test_a_contradicted_setting_is_a_policy_error(doc: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        parse_policy(f"version: 1\n{doc}", "p.yaml")
    assert (e.value.code, e.value.message, e.value.path) == ("POLICY_INVALID", message, "p.yaml")


def test_policy_check_reports_the_contradiction(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nformats:\n  deny: [pickle]\n  pickle: allow\n")
    r = CliRunner().invoke(cli, ["policy", "check", str(path)])
    assert r.exit_code == 2
    assert "error[POLICY_INVALID]" in r.stderr and "field formats.pickle (line 4)" in r.stderr
    path.write_text("version: 1\nformats:\n  deny: [unknown]\n  pickle: safe-state-dicts\n")
    r = CliRunner().invoke(cli, ["policy", "check", str(path)])
    assert r.exit_code == 0 and "valid policy" in r.stdout


@pytest.mark.parametrize(
    ("spec", "phrase"),
    [
        ({}, "no pickle files"),
        ({"pickle": "deny"}, "no pickle files"),
        ({"pickle": "deny", "deny": ["pickle"]}, "no pickle files"),
        (
            {"pickle": "safe-state-dicts"},
            "pickle files only when analysed as safe state dicts "
            "(importing only allowlisted globals)",
        ),
        ({"pickle": "allow"}, "any pickle file (loading one can run code)"),
    ],
)
def test_explain_says_what_the_setting_admits(
    tmp_path: Path, spec: dict[str, Any], phrase: str
) -> None:
    (line,) = explain(load(tmp_path, {"formats": spec})).splitlines()[1:]
    assert line == (
        f"- formats (enforce): requires {phrase}; Python files refused; chat templates allowed"
    )


# -- every kind of pickle-bearing file, on an analysed manifest ----------------------


def analysed_manifest(tmp_path: Path) -> Manifest:
    """A manifest of pickles of every kind, as the contract records them.

    ``safe.bin`` (ZIP) and ``legacy.pt`` (legacy format) are plain state dicts;
    ``evil.bin`` imports ``os.makedirs``, ``args.ckpt``
    ``argparse.Namespace``; ``script.pt`` is TorchScript; ``old.bin`` is safe
    but its entry is one an older modelsign wrote (never analysed);
    ``objects.npy`` and ``plain.npy`` are NumPy object arrays (flagged ``pickle``),
    only the second analysed safe.
    """
    folder = tmp_path / "pickles"
    folder.mkdir()
    (folder / "safe.bin").write_bytes(safe_checkpoint())
    (folder / "legacy.pt").write_bytes(saved({"w": [1, 2]}, zip_format=False))
    (folder / "evil.bin").write_bytes(dangerous_checkpoint(tmp_path / "marker"))
    (folder / "args.ckpt").write_bytes(unknown_checkpoint())
    (folder / "script.pt").write_bytes(torchscript_archive())
    (folder / "old.bin").write_bytes(b"placeholder")
    np.save(folder / "objects.npy", np.array([argparse.Namespace(lr=0.1)]), allow_pickle=True)
    np.save(folder / "plain.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    m = manifest_for_tree(discover(str(folder)), tensor_hash=None, env={})
    entries = {f.path: f for f in m.files}
    entries["old.bin"] = _as(entries["safe.bin"], "old.bin", [])
    return m.model_copy(update={"files": [entries[f.path] for f in m.files]})


def _as(e: FileEntry, path: str, flags: list[str], fmt: str | None = None) -> FileEntry:
    return e.model_copy(update={"path": path, "flags": flags, "format": fmt or e.format})


def formats_reasons(m: Manifest, spec: dict[str, Any], **unsigned: str) -> list[str]:
    policy = Policy.model_validate({"version": 1, "formats": spec})
    report = evaluate(
        policy,
        manifest=m,
        signer=None,
        signature_problems=[],
        unsigned_files={k.replace("_", "."): v for k, v in unsigned.items()},
        verifier_given=False,
    )
    (rule,) = report.rules
    return rule.reasons


def test_the_analysed_manifest_is_what_the_contract_says(tmp_path: Path) -> None:
    m = analysed_manifest(tmp_path)
    safe = {f.path for f in m.files if SAFE_STATE_DICT in f.flags}
    assert safe == {"safe.bin", "legacy.pt", "plain.npy"}
    codes = {(f.path, f.code) for f in m.findings if f.code.startswith("PICKLE_")}
    assert {c for c in codes if c[1] != "PICKLE_UNSAFE"} == {
        ("evil.bin", "PICKLE_DANGEROUS_GLOBAL"),
        ("args.ckpt", "PICKLE_UNKNOWN_GLOBAL"),
        ("script.pt", "PICKLE_TORCHSCRIPT"),
        ("script.pt", "PICKLE_DANGEROUS_GLOBAL"),  # its constants and code import more
        ("script.pt", "PICKLE_UNKNOWN_GLOBAL"),
        ("objects.npy", "PICKLE_UNKNOWN_GLOBAL"),
    }


def test_deny_refuses_every_pickle_bearing_file(tmp_path: Path) -> None:
    m = analysed_manifest(tmp_path)
    bearing = ["args.ckpt", "evil.bin", "legacy.pt", "objects.npy", "old.bin", "plain.npy"]
    expected = sorted(f"{p}: format pickle is denied" for p in [*bearing, "safe.bin", "script.pt"])
    assert sorted(formats_reasons(m, {})) == expected  # the default deny list
    assert sorted(formats_reasons(m, {"pickle": "deny"})) == expected
    assert sorted(formats_reasons(m, {"deny": ["pickle"]})) == expected
    not_allowed = formats_reasons(m, {"allow": ["safetensors", "opaque"], "deny": []})
    assert "safe.bin: format pickle is not allowed" in not_allowed
    assert "plain.npy: format pickle is not allowed" in not_allowed


def test_safe_state_dicts_admits_only_files_analysed_safe(tmp_path: Path) -> None:
    m = analysed_manifest(tmp_path)
    reasons = formats_reasons(m, {"pickle": "safe-state-dicts"}, dropped_bin="pickle")
    by_file = {r.split(": ", 1)[0]: r.split(": ", 1)[1] for r in reasons}
    assert sorted(by_file) == [
        "args.ckpt",
        "dropped.bin (unsigned)",
        "evil.bin",
        "objects.npy",
        "old.bin",
        "script.pt",
    ]
    assert re.fullmatch(
        r"not a safe state dict: \w+/data\.pkl: pickle imports dangerous global "
        r"os\.makedirs \(GLOBAL at byte \d+\)",
        by_file["evil.bin"],
    ), by_file["evil.bin"]
    assert re.fullmatch(
        r"not a safe state dict: \w+/data\.pkl: pickle imports unknown global "
        r"argparse\.Namespace \(GLOBAL at byte \d+\)",
        by_file["args.ckpt"],
    ), by_file["args.ckpt"]
    assert by_file["script.pt"].startswith("not a safe state dict: a TorchScript archive")
    assert re.fullmatch(
        r"not a safe state dict: pickle imports unknown global "
        r"argparse\.Namespace \(STACK_GLOBAL at byte \d+\)",
        by_file["objects.npy"],
    ), by_file["objects.npy"]
    assert by_file["old.bin"] == NOT_ANALYSED
    assert by_file["dropped.bin (unsigned)"] == NOT_ANALYSED  # never analysed


def test_allow_admits_every_pickle(tmp_path: Path) -> None:
    m = analysed_manifest(tmp_path)
    assert formats_reasons(m, {"pickle": "allow"}, dropped_bin="pickle") == []
    assert formats_reasons(m, {"deny": []}, dropped_bin="pickle") == []  # as before


def test_the_lists_still_judge_the_other_formats(tmp_path: Path) -> None:
    """A signer may record a container's own format for a file that holds a pickle."""
    m = analysed_manifest(tmp_path)
    held = {"objects.npy": ["pickle"], "plain.npy": ["pickle", SAFE_STATE_DICT]}
    m = m.model_copy(
        update={
            "files": [
                _as(f, f.path, held[f.path], "numpy") if f.path in held else f for f in m.files
            ]
        }
    )
    reasons = formats_reasons(m, {"pickle": "safe-state-dicts", "deny": ["numpy"]})
    assert "objects.npy: format numpy is denied" in reasons
    after = reasons[reasons.index("objects.npy: format numpy is denied") + 1]
    assert after.startswith("objects.npy: not a safe state dict: pickle imports unknown global")
    assert "plain.npy: format numpy is denied" in reasons
    assert not any(r.startswith("plain.npy: not") for r in reasons)
    denied = formats_reasons(m, {"pickle": "deny"})
    assert "plain.npy: holds a pickle (loading it runs code): format pickle is denied" in denied


# -- end to end: verify --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_verify_admits_a_signed_safe_state_dict(
    tmp_path: Path, pickle_model: Path, release: KeyPair, mode: str
) -> None:
    key_sign(pickle_model, release)
    verifier = KeyVerifier(release.public)
    policy = rule_policy(tmp_path, "formats", mode, pickle="safe-state-dicts")
    assert_passes(pickle_model, policy, "formats", verifier=verifier)
    denied = rule_policy(tmp_path, "formats", mode, pickle="deny")
    reasons = ["pytorch_model.bin: format pickle is denied"]
    assert_fails(pickle_model, denied, "formats", mode, reasons, verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_verify_refuses_a_signed_dangerous_pickle_naming_the_global(
    tmp_path: Path, pickle_model: Path, release: KeyPair, mode: str
) -> None:
    (pickle_model / "pytorch_model.bin").write_bytes(dangerous_checkpoint(tmp_path / "marker"))
    key_sign(pickle_model, release)
    verifier = KeyVerifier(release.public)
    policy = rule_policy(tmp_path, "formats", mode, pickle="safe-state-dicts")
    result, err = judge(pickle_model, policy, verifier=verifier)
    rule = rule_of(result, "formats")
    assert (rule.status, err is not None) == (
        ("fail", True) if mode == "enforce" else ("warn", False)
    )
    (reason,) = rule.reasons
    assert re.fullmatch(
        r"pytorch_model\.bin: not a safe state dict: \w+/data\.pkl: pickle imports dangerous "
        r"global os\.makedirs \(GLOBAL at byte \d+\)",
        reason,
    ), reason
    assert rule.issues[0].file == "pytorch_model.bin"
    assert not (tmp_path / "marker").exists()
    allowed = rule_policy(tmp_path, "formats", mode, pickle="allow")
    assert_passes(pickle_model, allowed, "formats", verifier=verifier)


def test_verify_refuses_a_pickle_an_older_modelsign_signed(
    tmp_path: Path, pickle_model: Path, release: KeyPair
) -> None:
    """A manifest made before pickles were analysed carries no flag: not a safe state dict."""
    with rewritten_builder("unanalysed"):
        key_sign(pickle_model, release)
    assert SAFE_STATE_DICT in _flags(pickle_model)  # what modelsign writes today
    policy = rule_policy(tmp_path, "formats", "enforce", pickle="safe-state-dicts")
    reasons = [f"pytorch_model.bin: {NOT_ANALYSED}"]
    assert_fails(
        pickle_model, policy, "formats", "enforce", reasons, verifier=KeyVerifier(release.public)
    )


def test_verify_refuses_an_unsigned_safe_pickle_beside_a_signed_model(
    tmp_path: Path, copy_signed: Path, release: KeyPair
) -> None:
    (copy_signed / "pytorch_model.bin").write_bytes(safe_checkpoint())
    policy = load(
        tmp_path,
        {"formats": {"pickle": "safe-state-dicts"}, "coverage": {"unsigned_files": "allow"}},
    )
    reasons = [f"pytorch_model.bin (unsigned): {NOT_ANALYSED}"]
    assert_fails(
        copy_signed, policy, "formats", "enforce", reasons, verifier=KeyVerifier(release.public)
    )


@pytest.mark.parametrize("archive", [False, True])
def test_verify_refuses_an_unsigned_object_array_beside_a_signed_model(
    tmp_path: Path, copy_signed: Path, release: KeyPair, archive: bool
) -> None:
    """A NumPy object array holds a pickle (``np.load(allow_pickle=True)`` runs it): unsigned,
    it is judged a pickle as the manifest would record it, not by its container's magic."""
    objects = np.array([argparse.Namespace(lr=0.1)])
    name = "extra.npz" if archive else "extra.npy"
    plain = np.zeros(3, np.float32)
    if archive:
        np.savez(copy_signed / name, plain=plain, objects=objects)
    else:
        np.save(copy_signed / name, objects, allow_pickle=True)
    np.save(copy_signed / "plain.npy", plain)  # no objects: a NumPy file, not a pickle
    verifier = KeyVerifier(release.public)
    denied = {"formats": {"pickle": "deny"}, "coverage": {"unsigned_files": "allow"}}
    reasons = [f"{name} (unsigned): format pickle is denied"]
    assert_fails(
        copy_signed, load(tmp_path, denied), "formats", "enforce", reasons, verifier=verifier
    )
    safe = {"formats": {"pickle": "safe-state-dicts"}, "coverage": {"unsigned_files": "allow"}}
    reasons = [f"{name} (unsigned): {NOT_ANALYSED}"]
    assert_fails(
        copy_signed, load(tmp_path, safe), "formats", "enforce", reasons, verifier=verifier
    )


def _flags(model: Path) -> list[str]:
    """The flags the manifest builder, as it is, gives the model's pickle."""
    entry = build_manifest(model, tensor_hash=None).file("pytorch_model.bin")
    assert entry is not None
    return entry.flags

"""``modelsign verify --policy``, ``modelsign policy check`` and ``modelsign policy explain``.

Exit codes: verify 0 verified (a warn-mode failure included), 1 an enforced rule
failed, 2 usage or input error (a malformed or missing policy); policy check 0
valid, 2 invalid with the field and line on stderr.
"""

from __future__ import annotations

import importlib.resources
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from modelsign._internal.metadata.provenance import parse_source
from modelsign._internal.signature import keys
from modelsign._internal.signature.signers import KeySigner
from modelsign.cli import cli
from modelsign.policy import RULES, Policy
from modelsign.sign import sign
from tests.helpers.examples import build_example
from tests.helpers.paths import ROOT
from tests.helpers.pki import build_pki, write_pem, write_pki
from tests.helpers.signing import shared_key

SHIPPED = sorted((ROOT / "policies").glob("*.yaml"))
PINNED = "fedcba9876543210fedcba9876543210fedcba98"


def run(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@dataclass(frozen=True)
class Setup:
    release_pub: Path
    stranger_pub: Path
    signed: Path  # the example model, signed by release
    python: Path  # signed, with a modeling_x.py
    extra: Path  # signed, then notes.txt added
    unsigned: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("cli-policy")
    release = shared_key()
    _, release_pub = keys.write_keypair(str(root / "release"), release, password=None)
    _, stranger_pub = keys.write_keypair(
        str(root / "stranger"), shared_key("stranger"), password=None
    )
    signer = KeySigner(release)

    signed = build_example(root / "signed")[0]
    sign(signed, signer=signer, env={})
    python = build_example(root / "python")[0]
    (python / "modeling_x.py").write_text("class X:\n    pass\n")
    sign(python, signer=signer, env={})
    extra = build_example(root / "extra")[0]
    sign(extra, signer=signer, source=parse_source(f"acme/tiny@{PINNED}"), env={})
    (extra / "notes.txt").write_text("added after signing\n")
    unsigned = build_example(root / "unsigned")[0]
    return Setup(Path(release_pub), Path(stranger_pub), signed, python, extra, unsigned)


def write_policy(folder: Path, doc: dict[str, Any], name: str = "policy.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"version": 1, **doc}, sort_keys=False), encoding="utf-8")
    return path


def policy_line(rule: str, status: str, mode: str) -> str:
    return f"  {rule:13s} {status:5s} ({mode})"


# -- policy check / explain ----------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_check_shipped_policies(path: Path, tmp_path: Path) -> None:
    policy = Policy.load(path)
    keys_named = [k.file for k in policy.signers.keys if k.file] if policy.signers else []
    if keys_named:
        # A template: it names a key to put in place (default.yaml: keys/release.pub).
        code, out, err = run("policy", "check", path)
        assert code == 2 and out == ""
        assert f"error[KEY_NOT_FOUND]: {path}: field signers.keys.0.file (line " in err
        path = Path(shutil.copy(path, tmp_path / path.name))
        for name in keys_named:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            keys.write_keypair(
                str(tmp_path / name).removesuffix(".pub"), shared_key(), password=None
            )
    code, out, err = run("policy", "check", path)
    assert code == 0, err
    rules = ", ".join(policy.rules())
    assert out == f"{path}: valid policy (version 1; {rules})\n"


def test_check_loads_every_file_the_policy_names(tmp_path: Path, signed: Path) -> None:
    """policy check reads keys, roots, trusted roots and TSA chains as verify would, and
    names every one that cannot be used: its code, field, line and path."""
    (tmp_path / "keys").mkdir()
    _, pub = keys.write_keypair(str(tmp_path / "keys" / "release"), shared_key(), password=None)
    pki = write_pki(build_pki(), tmp_path / "pki")
    write_pem(tmp_path / "pki" / "tsa.pem", build_pki().leaf.cert, build_pki().root.cert)
    store = importlib.resources.files("sigstore._store")
    shipped = store / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json"
    (tmp_path / "trusted_root.json").write_text(shipped.read_text())
    good = tmp_path / "good.yaml"
    good.write_text(
        "version: 1\n"
        "signers:\n"
        "  keys:\n"
        "    - file: keys/release.pub\n"
        f"      fingerprint: {keys.key_hint(shared_key().public_key())}\n"
        f"    - file: {pub}\n"
        "  certificate_roots: [pki/root.pem]\n"
        "  trusted_root: trusted_root.json\n"
        "  timestamp_authorities: [pki/tsa.pem]\n"
        "  sigstore:\n"
        "    - identity: release@example.com\n"
        "      issuer: https://accounts.google.com\n"
    )
    code, out, err = run("policy", "check", good)
    assert (code, err) == (0, "") and "valid policy" in out
    assert pki.root.is_file()

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "signers:\n"
        "  keys:\n"
        "    - file: keys/release.pub\n"
        "    - file: keys/missing.pub\n"
        "    - pem: not a key\n"
        "    - file: keys/release.pub\n"
        f"      fingerprint: {'a' * 64}\n"
        "  certificate_roots:\n"
        "    - pki/root.pem\n"
        "    - pki/gone.pem\n"
        "  trusted_root: roots/absent.json\n"
        "  timestamp_authorities: [pki/root.pem]\n"
    )
    code, out, err = run("policy", "check", bad)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"error[KEY_NOT_FOUND]: {bad}: field signers.keys.1.file (line 5): "
        f"{tmp_path / 'keys' / 'missing.pub'}: public key file not found",
        f"error[KEY_INVALID]: {bad}: field signers.keys.2.pem (line 6): the policy's inline key: "
        "not a valid PEM public key: " + err.splitlines()[1].split("public key: ", 1)[1],
        f"error[POLICY_INVALID]: {bad}: field signers.keys.3.fingerprint (line 8): "
        f"{tmp_path / 'keys' / 'release.pub'}: policy key keys/release.pub does not have "
        f"fingerprint {'a' * 64} (it has {keys.key_hint(shared_key().public_key())})",
        f"error[CERT_NOT_FOUND]: {bad}: field signers.certificate_roots.1 (line 11): "
        f"{tmp_path / 'pki' / 'gone.pem'}: certificate file not found",
        f"error[TRUST_ROOT_NOT_FOUND]: {bad}: field signers.trusted_root (line 12): "
        f"{tmp_path / 'roots' / 'absent.json'}: no such trusted root",
        f"error[TSA_CHAIN_INVALID]: {bad}: field signers.timestamp_authorities.0 (line 13): "
        f"{tmp_path / 'pki' / 'root.pem'}: a TSA chain needs the TSA's certificate and its "
        "root (leaf first)",
        f"{bad}: not usable: 6 problems with the trust it names",
    ]
    # What policy check refuses is what verify would stop on.
    code, _, err = run("verify", signed, "--policy", bad)
    assert code == 2 and "error[KEY_NOT_FOUND]" in err


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_explain_shipped_policies(path: Path) -> None:
    code, out, err = run("policy", "explain", path)
    assert code == 0, err
    policy = Policy.load(path)
    lines = out.splitlines()
    assert policy.description is not None and lines[0] == policy.description.strip()
    listed = [line.split(" ")[1] for line in lines if line.startswith("- ")]
    assert listed == policy.rules()
    for rule in policy.rules():
        assert f"- {rule} ({policy.mode_of(rule)}): " in out


def test_explain_names_signers_and_limits(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        {
            "signers": {"keys": [{"file": "keys/release.pub"}]},
            "quantization": {"min_bits_per_weight": 4.5, "mode": "warn"},
            "freshness": {"max_age": "90d"},
        },
    )
    code, out, _ = run("policy", "explain", path)
    assert code == 0
    assert out.splitlines() == [
        "Rules not given a mode block.",
        "- signers (enforce): requires a valid signature over every file, by "
        "the key in keys/release.pub",
        "- quantization (warn): warns unless at least 4.5 bits per weight; "
        "unquantized models allowed",
        "- freshness (enforce): requires a signature younger than 90d "
        "(needs a trusted signing time)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "version: 1\nsigners:\n  keys:\n    - file: k.pub\n      pem: abc\n",
            "field signers.keys.0 (line 4): give exactly one of 'file', 'pem' or 'uri'",
            id="file-and-pem",
        ),
        pytest.param(
            "version: 1\nformats:\n  allow_pickle: true\n",
            "field formats.allow_pickle (line 3): unknown field",
            id="unknown-field",
        ),
        pytest.param(
            "version: 1\nformats: {}\nformats: {}\n",
            "not valid YAML (line 3): duplicate key 'formats'",
            id="duplicate",
        ),
        pytest.param("version: 2\n", "field version (line 1): Input should be 1", id="version-2"),
        pytest.param(
            "version: 1\nfreshness:\n  max_age: soon\n",
            "field freshness.max_age (line 3): max_age must look like 90d, 12h, 2w, 30m or 45s",
            id="max-age",
        ),
    ],
)
def test_check_bad_policy(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = run("policy", "check", path)
    assert code == 2 and out == ""
    assert err == f"error[POLICY_INVALID]: {path}: {message}\n"
    code, out, err = run("policy", "explain", path)
    assert code == 2 and out == "" and f"{path}: {message}" in err


def test_check_missing_policy(tmp_path: Path) -> None:
    code, _, err = run("policy", "check", tmp_path / "nope.yaml")
    assert code == 2
    assert err == f"error[POLICY_NOT_FOUND]: {tmp_path / 'nope.yaml'}: no such policy file\n"


# -- verify --policy: every rule, both modes -------------------------------------------------


def _rule_case(setup: Setup, rule: str, mode: str) -> tuple[Path, dict[str, Any], int]:
    """A model and policy on which ``rule`` (in ``mode``) fails; and the error count."""
    trusted = {"mode": "enforce", "keys": [{"file": str(setup.release_pub)}]}
    if rule == "signers":
        return setup.signed, {"signers": {"mode": mode, "keys": [{"pem": _pem(setup)}]}}, 1
    specs: dict[str, dict[str, Any]] = {
        "identity": {"name": "another-model"},
        "licences": {"deny": ["Apache-2.0"]},
        "provenance": {"require": ["source_repository"]},
        "formats": {},  # refuses *.py by default
        "quantization": {"allow_unquantized": False},
        "coverage": {"unsigned_files": "deny"},
        "freshness": {"max_age": "3650d"},
    }
    spec = specs[rule]
    model = {"formats": setup.python, "coverage": setup.extra}.get(rule, setup.signed)
    return model, {"signers": trusted, rule: {"mode": mode, **spec}}, int(rule == "coverage")


def _pem(setup: Setup) -> str:
    return setup.stranger_pub.read_text()


@pytest.mark.parametrize("rule", RULES)
def test_verify_enforced_rule_fails_with_exit_1(tmp_path: Path, setup: Setup, rule: str) -> None:
    model, doc, errors = _rule_case(setup, rule, "enforce")
    code, out, err = run("verify", model, "--policy", write_policy(tmp_path, doc))
    assert code == 1, err
    why = f"{errors} problem{'' if errors == 1 else 's'}; " if errors else ""
    assert out.startswith(f"FAILED {model}: {why}policy rule failed: {rule}\n")
    assert policy_line(rule, "fail", "enforce") in out.splitlines()


@pytest.mark.parametrize("rule", RULES)
def test_verify_warned_rule_exits_0(tmp_path: Path, setup: Setup, rule: str) -> None:
    model, doc, _ = _rule_case(setup, rule, "warn")
    code, out, err = run("verify", model, "--policy", write_policy(tmp_path, doc))
    assert code == 0, out + err
    assert out.startswith(f"verified {model}: ")
    assert policy_line(rule, "warn", "warn") in out.splitlines()
    others = [r for r in ("signers", rule) if r != rule]
    for other in others:
        assert policy_line(other, "pass", "enforce") in out.splitlines()


@pytest.mark.parametrize("mode", ["enforce", "warn"])
def test_verify_json_includes_the_policy_rules(tmp_path: Path, setup: Setup, mode: str) -> None:
    doc = {
        "mode": mode,
        "signers": {"keys": [{"file": str(setup.release_pub)}]},
        "licences": {"allow": ["MIT"]},
        "formats": {},
    }
    code, out, _ = run("verify", setup.signed, "--policy", write_policy(tmp_path, doc), "--json")
    assert code == (1 if mode == "enforce" else 0)
    result = json.loads(out)
    assert result["kind"] == "modelsign.verification"
    assert result["verdict"] == ("failed" if mode == "enforce" else "verified")
    assert result["signer"]["kind"] == "key"
    assert result["problems"] == []
    assert result["policy"] == {
        "rules": [
            {"rule": "signers", "mode": mode, "status": "pass", "reasons": []},
            {
                "rule": "licences",
                "mode": mode,
                "status": "fail" if mode == "enforce" else "warn",
                "reasons": ["licence Apache-2.0: Apache-2.0 is not in the allowed list"],
            },
            {"rule": "formats", "mode": mode, "status": "pass", "reasons": []},
        ]
    }


def test_verify_json_problem_severities_follow_the_rules(tmp_path: Path, setup: Setup) -> None:
    doc = {
        "signers": {"keys": [{"file": str(setup.release_pub)}]},
        "coverage": {"unsigned_files": "warn"},
    }
    code, out, _ = run("verify", setup.extra, "--policy", write_policy(tmp_path, doc), "--json")
    assert code == 0
    result = json.loads(out)
    assert [(p["code"], p["file"], p["severity"]) for p in result["problems"]] == [
        ("FILE_EXTRA", "notes.txt", "warning")
    ]
    coverage = result["policy"]["rules"][1]
    assert set(coverage) == {"rule", "mode", "status", "reasons"}
    assert (coverage["rule"], coverage["mode"], coverage["status"]) == (
        "coverage",
        "enforce",
        "warn",
    )
    assert coverage["reasons"] == ["notes.txt: file is not covered by the signature"]


def test_verify_unsigned_model_under_a_warn_policy(tmp_path: Path, setup: Setup) -> None:
    doc = {"mode": "warn", "signers": {"keys": [{"file": str(setup.release_pub)}]}, "formats": {}}
    path = write_policy(tmp_path, doc)
    code, out, _ = run("verify", setup.unsigned, "--policy", path)
    assert code == 0
    sig = setup.unsigned / "model.sig"
    assert f"  warning SIGNATURE_NOT_FOUND: {sig}: no signature file here" in out.splitlines()
    assert policy_line("signers", "warn", "warn") in out.splitlines()
    assert policy_line("formats", "pass", "warn") in out.splitlines()
    code, out, _ = run("verify", setup.unsigned, "--policy", path, "--json")
    result = json.loads(out)
    assert code == 0 and result["verdict"] == "verified" and result["signer"] is None


def test_verify_with_key_and_a_policy_without_signers(tmp_path: Path, setup: Setup) -> None:
    path = write_policy(tmp_path, {"mode": "warn", "formats": {}})
    code, out, _ = run("verify", setup.signed, "--policy", path, "--key", setup.release_pub)
    assert code == 0
    assert policy_line("signers", "pass", "enforce") in out.splitlines()
    # The command line's signer is always enforced, whatever the policy's mode.
    code, out, _ = run("verify", setup.signed, "--policy", path, "--key", setup.stranger_pub)
    assert code == 1
    assert policy_line("signers", "fail", "enforce") in out.splitlines()


def test_verify_policy_usage_errors(tmp_path: Path, setup: Setup) -> None:
    no_signers = write_policy(tmp_path, {"formats": {}})
    code, _, err = run("verify", setup.signed, "--policy", no_signers)
    assert code == 2 and err.startswith("error[USAGE]: give one way to trust the signer")
    code, _, err = run("verify", setup.signed, "--policy", tmp_path / "missing.yaml")
    assert code == 2 and "error[POLICY_NOT_FOUND]" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsigners:\n  keys: []\n  sigstor: []\n")
    code, out, err = run("verify", setup.signed, "--policy", bad)
    assert code == 2 and out == ""
    assert err == f"error[POLICY_INVALID]: {bad}: field signers.sigstor (line 4): unknown field\n"


def test_verify_with_a_shipped_policy(tmp_path: Path, setup: Setup) -> None:
    """The default policy, copied beside keys/release.pub as its comments suggest."""
    (tmp_path / "keys").mkdir()
    shutil.copy(setup.release_pub, tmp_path / "keys" / "release.pub")
    default = Path(shutil.copy(ROOT / "policies" / "default.yaml", tmp_path / "default.yaml"))
    code, out, err = run("verify", setup.signed, "--policy", default)
    assert code == 0, out + err
    assert [line for line in out.splitlines() if line.startswith("  ")] == [
        policy_line("signers", "pass", "enforce"),
        policy_line("licences", "pass", "enforce"),
        policy_line("formats", "pass", "enforce"),
    ]
    strict = Path(shutil.copy(ROOT / "policies" / "strict.yaml", tmp_path / "strict.yaml"))
    code, out, _ = run("verify", setup.signed, "--policy", strict, "--json")
    assert code == 1
    rules = {r["rule"]: r for r in json.loads(out)["policy"]["rules"]}
    assert rules["provenance"]["status"] == "fail"
    assert rules["provenance"]["reasons"] == [
        "no source repository recorded",
        "the source revision is not pinned to a commit (40 hex digits)",
    ]
    assert {r for r, v in rules.items() if v["status"] != "pass"} == {"provenance"}


def test_summary_of_an_unsigned_model_names_no_signer(tmp_path: Path, setup: Setup) -> None:
    doc = {"mode": "warn", "signers": {"keys": [{"file": str(setup.release_pub)}]}}
    code, out, _ = run("verify", setup.unsigned, "--policy", write_policy(tmp_path, doc))
    assert code == 0
    assert "signed by" not in [line.strip() for line in out.splitlines()]

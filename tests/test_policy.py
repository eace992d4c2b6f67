"""The policy module: loading (with line-numbered errors) and every rule, in both modes.

Every rule is exercised with a model that passes it and one that fails it, under
``enforce`` (the rule fails and :func:`modelsign.verify` raises) and ``warn``
(the rule warns and the verdict stays "verified"). Models are the bundled
example (safetensors with a card and LICENSE) and its Q8_0 GGUF derivative,
signed with a local key, a certificate chain or keylessly through the local
Sigstore stand-in; variants add a pickle checkpoint, a Python file, an opaque
weight-like file or a chat template.
"""

from __future__ import annotations

import io
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from modelsign._internal.metadata.provenance import parse_source
from modelsign._internal.signature.signers import KeySigner
from modelsign._internal.signature.sigstore import SigstoreSigner
from modelsign._internal.signature.verifiers import KeyVerifier
from modelsign.errors import InputError, VerificationError
from modelsign.policy import (
    RULES,
    Policy,
    PolicyVerifier,
    RuleResult,
    evaluate,
    explain,
    parse_policy,
)
from modelsign.sign import sign
from modelsign.verify import VerificationResult, verify
from tests.helpers.examples import build_example
from tests.helpers.gguf_files import QT, random_quant, write_gguf
from tests.helpers.pki import build_pki, write_pki
from tests.helpers.safetensors_files import write_safetensors
from tests.helpers.signing import KeyPair, MakeKeyPair, SignedModel
from tests.sigstore_standin import DEFAULT_IDENTITY, DEFAULT_ISSUER, GITHUB_ISSUER, SigstoreStandin

MODES = ("enforce", "warn")
PINNED = "0123456789abcdef0123456789abcdef01234567"  # 40 hex digits
GH_REPO = "acme/models"
GH_REF = "refs/tags/v1.0"
GH_WORKFLOW = ".github/workflows/release.yml"
GH_IDENTITY = f"https://github.com/{GH_REPO}/{GH_WORKFLOW}@{GH_REF}"
NO_TIME = (
    "the signature carries no trusted signing time (a key or certificate signature has one "
    "only with a timestamp from a TSA the policy trusts: sign with --tsa-url, list "
    "signers.timestamp_authorities)"
)
NOT_COVERED = "file is not covered by the signature"


# -- helpers -----------------------------------------------------------------------------


def key_sign(model: Path, kp: KeyPair, **kw: Any) -> Path:
    """Sign with a bare key (no CI builder unless ``env`` says so); the signature path."""
    kw.setdefault("env", {})
    return Path(sign(model, signer=kp.signer, **kw).signature)


def load(tmp_path: Path, doc: dict[str, Any], name: str = "policy.yaml") -> Policy:
    """Write ``doc`` (version 1 added) as YAML and load it like a user would."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, **doc}, sort_keys=False), encoding="utf-8")
    return Policy.load(path)


def rule_policy(tmp_path: Path, rule: str, mode: str, **spec: Any) -> Policy:
    """A policy with one rule in ``mode`` (signers come from the verifier)."""
    return load(tmp_path, {rule: {"mode": mode, **spec}})


def judge(
    model: Path, policy: Policy, **kw: Any
) -> tuple[VerificationResult, VerificationError | None]:
    """Verify under ``policy``; the result whether or not verification raised."""
    try:
        return verify(model, policy=policy, **kw), None
    except VerificationError as exc:
        assert exc.result is not None
        return exc.result, exc


def rule_of(result: VerificationResult, name: str) -> RuleResult:
    assert result.policy is not None
    (found,) = [r for r in result.policy.rules if r.rule == name]
    return found


def statuses(result: VerificationResult) -> dict[str, str]:
    assert result.policy is not None
    return {r.rule: r.status for r in result.policy.rules}


def assert_passes(model: Path, policy: Policy, rule: str, **kw: Any) -> VerificationResult:
    result, err = judge(model, policy, **kw)
    assert err is None, err
    assert result.verdict == "verified"
    r = rule_of(result, rule)
    assert (r.status, r.reasons) == ("pass", [])
    return result


def assert_fails(
    model: Path, policy: Policy, rule: str, mode: str, reasons: list[str], **kw: Any
) -> VerificationResult:
    """Enforce: the rule fails and verify raises; warn: the rule warns, the model verifies."""
    result, err = judge(model, policy, **kw)
    r = rule_of(result, rule)
    assert r.mode == mode
    assert r.reasons == reasons
    if mode == "enforce":
        assert r.status == "fail"
        assert err is not None and result.verdict == "failed"
        assert f"policy rules failed: {rule}" in err.message
    else:
        assert r.status == "warn"
        assert err is None and result.verdict == "verified"
    return result


def with_card(folder: Path, licence: str | None, *, licence_text: str | None = None) -> Path:
    """A one-tensor safetensors model with a card stating ``licence`` (and a LICENSE)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / "model.safetensors", {"w": np.ones((4, 4), np.float32)})
    card = "---\n" + (f"license: {licence}\n" if licence else "") + "---\n# m\n"
    (folder / "README.md").write_text(card)
    if licence_text is not None:
        (folder / "LICENSE").write_text(licence_text)
    return folder


# -- fixtures ----------------------------------------------------------------------------


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
    return KeyVerifier(release.public)


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


def keyless_signer(standin: SigstoreStandin, token: str) -> SigstoreSigner:
    return SigstoreSigner.create(
        identity_token=token, trust_config=str(standin.trust_config_path), env={}
    )


@pytest.fixture(scope="module")
def keyless(standin: SigstoreStandin, signed_model: SignedModel) -> Path:
    """The example model signed keylessly as DEFAULT_IDENTITY. Read-only."""
    return signed_model(signer=keyless_signer(standin, standin.token()))


@pytest.fixture(scope="module")
def gh_keyless(standin: SigstoreStandin, signed_model: SignedModel) -> Path:
    """The example model signed by acme/models' release workflow for tag v1.0. Read-only."""
    token = standin.token(github={"repository": GH_REPO, "ref": GH_REF})
    return signed_model(signer=keyless_signer(standin, token))


def sigstore_policy(
    tmp_path: Path, standin: SigstoreStandin, *identities: dict[str, str], **doc: Any
) -> Policy:
    """A policy trusting ``identities`` under the stand-in's root (a path relative to it)."""
    root = tmp_path / "trust" / "root.json"
    root.parent.mkdir(exist_ok=True)
    shutil.copy(standin.trusted_root_path, root)
    signers = {"trusted_root": "trust/root.json", "sigstore": list(identities)}
    return load(tmp_path, {"signers": signers, **doc})


# == loading ==============================================================================


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "version: 1\nmode: enforce\n  formats: {}\n",
            "not valid YAML (line 3): mapping values are not allowed here",
            id="bad-yaml",
        ),
        pytest.param(
            "version: 1\nformats:\n\tdeny: []\n",
            "not valid YAML (line 3): found character '\\t' that cannot start any token",
            id="tab",
        ),
        pytest.param(
            "version: 1\nsignerz: {keys: [{file: k.pub}]}\n",
            "field signerz (line 2): unknown field",
            id="unknown-top-level",
        ),
        pytest.param(
            "version: 1\nsigners:\n  keys:\n    - file: k.pub\n  trusted_roots: r.json\n",
            "field signers.trusted_roots (line 5): unknown field",
            id="unknown-nested",
        ),
        pytest.param(
            "version: 1\nsigners:\n  keys:\n    - file: k.pub\n      fingerprnt: ab\n",
            "field signers.keys.0.fingerprnt (line 5): unknown field",
            id="unknown-in-list-item",
        ),
        pytest.param(
            '{"version": 1,\n "formats": {"denny": ["pickle"]}}',
            "field formats.denny (line 2): unknown field",
            id="unknown-in-json",
        ),
        pytest.param(
            "version: 1\nlicences:\n  require: [true]\n",
            "field licences.require (line 3): Input should be a valid boolean",
            id="wrong-type-bool",
        ),
        pytest.param(
            "version: 1\nsigners:\n  keys: keys/release.pub\n",
            "field signers.keys (line 3): Input should be a valid list",
            id="wrong-type-list",
        ),
        pytest.param(
            "version: 1\nquantization:\n  min_bits_per_weight: four\n",
            "field quantization.min_bits_per_weight (line 3): Input should be a valid number",
            id="wrong-type-number",
        ),
        pytest.param(
            "version: 1\nsigners:\n  sigstore:\n    - identity_regex: '(['\n"
            "      issuer: https://issuer.example\n",
            "field signers.sigstore.0 (line 4): identity_regex is not a valid regex: "
            "unterminated character set at position 1",
            id="bad-identity-regex",
        ),
        pytest.param(
            "version: 1\nsigners:\n  sigstore:\n    - identity: a@example.com\n",
            "field signers.sigstore.0.issuer (line 4): Field required",
            id="sigstore-without-issuer",
        ),
        pytest.param(
            "version: 1\nsigners:\n  sigstore:\n    - issuer: https://issuer.example\n",
            "field signers.sigstore.0 (line 4): give exactly one of 'identity' or 'identity_regex'",
            id="sigstore-without-identity",
        ),
        pytest.param(
            "# a policy\nformats: {}\n",
            "field version (line 2): Field required",
            id="missing-version",
        ),
        pytest.param(
            "version: 2\nformats: {}\n",
            "field version (line 1): Input should be 1",
            id="version-2",
        ),
        pytest.param(
            "version: '1'\nformats: {}\n",
            "field version (line 1): Input should be 1",
            id="version-string",
        ),
        pytest.param(
            "version: 1\nformats: {}\nlicences: {}\nformats: {deny: []}\n",
            "not valid YAML (line 4): duplicate key 'formats'",
            id="duplicate-key",
        ),
        pytest.param(
            "version: 1\nformats:\n  deny: []\n  deny: [pickle]\n",
            "not valid YAML (line 4): duplicate key 'deny'",
            id="duplicate-nested-key",
        ),
        pytest.param(
            "version: 1\nsigners:\n  keys:\n    - file: k.pub\n      pem: abc\n",
            "field signers.keys.0 (line 4): give exactly one of 'file' or 'pem'",
            id="key-file-and-pem",
        ),
        pytest.param(
            "version: 1\nsigners:\n  keys:\n    - fingerprint: " + "a" * 64 + "\n",
            "field signers.keys.0 (line 4): give exactly one of 'file' or 'pem'",
            id="key-neither",
        ),
        pytest.param(
            "version: 1\nsigners:\n  keys:\n    - file: k.pub\n      fingerprint: ABC\n",
            "field signers.keys.0 (line 4): fingerprint must be 64 lowercase hex digits",
            id="bad-fingerprint",
        ),
        pytest.param(
            "version: 1\nsigners: {}\n",
            "field signers (line 2): list at least one of keys, certificate_roots or sigstore",
            id="empty-signers",
        ),
        pytest.param(
            "version: 1\nsigners: {keys: [], sigstore: []}\n",
            "field signers (line 2): list at least one of keys, certificate_roots or sigstore",
            id="empty-signer-lists",
        ),
        pytest.param(
            "version: 1\nfreshness:\n  max_age: 90 days\n",
            "field freshness.max_age (line 3): max_age must look like 90d, 12h, 2w, 30m or 45s",
            id="bad-max-age",
        ),
        pytest.param(
            "version: 1\nfreshness:\n  max_age: 90\n",
            "field freshness.max_age (line 3): Input should be a valid string",
            id="max-age-number",
        ),
        pytest.param(
            "version: 1\nfreshness: {}\n",
            "field freshness.max_age (line 2): Field required",
            id="max-age-missing",
        ),
        pytest.param(
            "version: 1\nmode: block\n",
            "field mode (line 2): Input should be 'enforce' or 'warn'",
            id="bad-mode",
        ),
        pytest.param(
            "version: 1\nformats:\n  mode: audit\n",
            "field formats.mode (line 3): Input should be 'enforce' or 'warn'",
            id="bad-rule-mode",
        ),
        pytest.param(
            "version: 1\nprovenance:\n  require: [source_repository, signer]\n",
            "field provenance.require.1 (line 3): Input should be 'source_repository', "
            "'pinned_revision', 'base_model' or 'builder'",
            id="bad-provenance-field",
        ),
        pytest.param(
            "version: 1\ncoverage:\n  unsigned_files: maybe\n",
            "field coverage.unsigned_files (line 3): Input should be 'deny', 'warn' or 'allow'",
            id="bad-unsigned-files",
        ),
        pytest.param("- version: 1\n", "a policy is a mapping of rules", id="a-list"),
        pytest.param("just words\n", "a policy is a mapping of rules", id="a-scalar"),
        pytest.param("", "a policy is a mapping of rules", id="empty-file"),
    ],
)
def test_malformed_policy(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        Policy.load(path)
    assert info.value.code == "POLICY_INVALID"
    assert info.value.path == str(path)
    assert info.value.message.startswith(message), info.value.message
    assert info.value.exit_code == 2
    # parse_policy reports the same, naming the given origin
    with pytest.raises(InputError) as again:
        parse_policy(text, "inline.yaml")
    assert (again.value.message, again.value.path) == (info.value.message, "inline.yaml")


def test_unknown_block_field_names_the_line_of_the_field(tmp_path: Path) -> None:
    text = "version: 1\nsigner:\n  keys:\n    - file: k.pub\n"
    with pytest.raises(InputError) as info:
        parse_policy(text, str(tmp_path / "p.yaml"))
    # "signer:" is on line 2; today the message says line 3 (the line of "keys:")
    assert info.value.message == "field signer (line 2): unknown field"


def test_bad_format_name_lists_every_allowed_value(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        parse_policy("version: 1\nformats:\n  allow: [safetensors, onnx]\n", "p.yaml")
    message = info.value.message
    assert message.startswith("field formats.allow.1 (line 3): ")
    assert "'unknown'" in message


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        Policy.load(tmp_path / "nope.yaml")
    assert info.value.code == "POLICY_NOT_FOUND"
    assert info.value.path == str(tmp_path / "nope.yaml")
    assert info.value.message == "no such policy file"


def test_unreadable_policy_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\ndescription: caf\xe9\n")
    with pytest.raises(InputError) as info:
        Policy.load(path)
    assert info.value.code == "POLICY_INVALID"
    assert info.value.message.startswith("cannot read the policy: ")


def test_valid_policy_defaults_and_base_dir(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "p.yaml"
    path.write_text("version: 1\nformats: {}\ncoverage: {}\nlicences: {}\n")
    policy = Policy.load(path)
    assert policy.mode == "enforce"
    assert policy.rules() == ["licences", "formats", "coverage"]  # in RULES order
    assert policy.base_dir == str(folder)
    assert policy.formats is not None and policy.formats.deny == ["pickle"]
    assert policy.formats.allow is None
    assert (policy.formats.allow_python_code, policy.formats.allow_chat_templates) == (
        False,
        True,
    )
    assert policy.coverage is not None
    assert (policy.coverage.require_tensor_digests, policy.coverage.unsigned_files) == (
        True,
        "deny",
    )
    assert policy.licences is not None and policy.licences.require is True
    assert {r: policy.mode_of(r) for r in RULES} == dict.fromkeys(RULES, "enforce")


def test_json_policy_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"version": 1, "mode": "warn", "formats": {"deny": ["unknown"]}}))
    policy = Policy.load(path)
    assert policy.rules() == ["formats"]
    assert policy.mode_of("formats") == "warn"
    assert policy.formats is not None and policy.formats.deny == ["unknown"]


def test_rule_mode_overrides_policy_mode(tmp_path: Path) -> None:
    policy = load(
        tmp_path, {"mode": "warn", "formats": {"mode": "enforce"}, "licences": {}, "coverage": {}}
    )
    assert policy.mode_of("formats") == "enforce"
    assert policy.mode_of("licences") == "warn"
    assert policy.mode_of("coverage") == "warn"


def test_policy_without_signers_needs_a_verifier(tmp_path: Path, tiny_model: Path) -> None:
    policy = load(tmp_path, {"formats": {}})
    with pytest.raises(InputError) as info:
        policy.verifier()
    assert info.value.code == "USAGE"
    with pytest.raises(InputError) as info:
        verify(tiny_model, policy=policy)
    assert info.value.code == "USAGE"


def test_explain_mentions_every_rule(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        {
            "description": "All the rules.",
            "mode": "warn",
            "signers": {
                "mode": "enforce",
                "keys": [{"file": "keys/release.pub"}, {"pem": "x"}],
                "certificate_roots": ["pki/root.pem"],
                "sigstore": [
                    {
                        "identity_regex": "^https://github\\.com/acme/.*$",
                        "issuer": GITHUB_ISSUER,
                        "github_repository": GH_REPO,
                        "github_ref": GH_REF,
                    }
                ],
            },
            "identity": {"name": "tiny-model", "source": "acme/tiny", "min_release": "1.4"},
            "licences": {"allow": ["MIT"], "deny": ["GPL-3.0-only"], "require_agreement": True},
            "provenance": {
                "require": ["source_repository", "pinned_revision"],
                "source_repositories": ["acme/*"],
                "base_models": ["meta-llama/*"],
            },
            "formats": {"allow": ["safetensors", "opaque"], "deny": ["pickle", "unknown"]},
            "quantization": {
                "allowed_schemes": ["MOSTLY_Q8_0"],
                "min_bits_per_weight": 4,
                "allow_unquantized": False,
            },
            "coverage": {"unsigned_files": "warn"},
            "freshness": {"max_age": "30d"},
        },
    )
    lines = explain(policy).splitlines()
    assert lines[0] == "All the rules."
    assert lines[1] == "Rules not given a mode only warn."
    by_rule = {line.split(" ")[1]: line for line in lines[2:]}
    assert list(by_rule) == list(RULES)
    assert by_rule["signers"] == (
        "- signers (enforce): requires a valid signature over every file, by one of: "
        "the key in keys/release.pub; an inline key; a certificate chaining to pki/root.pem; "
        "Sigstore an identity matching /^https://github\\.com/acme/.*$/ from "
        f"{GITHUB_ISSUER} (repository {GH_REPO}, ref {GH_REF})"
    )
    assert by_rule["identity"] == (
        "- identity (warn): warns unless the model named tiny-model, from acme/tiny, "
        "release 1.4 or later"
    )
    assert by_rule["licences"] == (
        "- licences (warn): warns unless a licence; allowed: MIT; denied: GPL-3.0-only; "
        "all licence sources agreeing"
    )
    assert by_rule["provenance"] == (
        "- provenance (warn): warns unless recorded source_repository, pinned_revision; "
        "source repository in acme/*; base models in meta-llama/*"
    )
    assert by_rule["formats"] == (
        "- formats (warn): warns unless formats among safetensors, opaque; "
        "no pickle, unknown files; Python files refused; chat templates allowed"
    )
    assert by_rule["quantization"] == (
        "- quantization (warn): warns unless schemes MOSTLY_Q8_0; at least 4.0 bits per "
        "weight; unquantized models refused"
    )
    assert by_rule["coverage"] == (
        "- coverage (warn): warns unless tensor digests for every safetensors/GGUF file; "
        "unsigned files reported"
    )
    assert by_rule["freshness"] == (
        "- freshness (warn): warns unless a signature younger than 30d "
        "(needs a trusted signing time)"
    )


def test_explain_only_the_rules_present(tmp_path: Path) -> None:
    text = explain(load(tmp_path, {"formats": {}}))
    assert text.splitlines() == [
        "Rules not given a mode block.",
        "- formats (enforce): requires no pickle files; Python files refused; "
        "chat templates allowed",
    ]


# == signers =============================================================================


@pytest.mark.parametrize("mode", MODES)
def test_signers_trusted_key_file(
    tmp_path: Path, signed_st: Path, release: KeyPair, mode: str
) -> None:
    policy = load(tmp_path, {"mode": mode, "signers": {"keys": [{"file": str(release.pub_path)}]}})
    result = assert_passes(signed_st, policy, "signers")
    assert result.signer is not None
    assert (result.signer.kind, result.signer.key_hint) == ("key", release.hint)
    assert rule_of(result, "signers").mode == mode
    assert result.problems == []


def test_signers_key_file_is_relative_to_the_policy(
    tmp_path: Path, signed_st: Path, release: KeyPair
) -> None:
    (tmp_path / "keys").mkdir()
    shutil.copy(release.pub_path, tmp_path / "keys" / "release.pub")
    policy = load(tmp_path, {"signers": {"keys": [{"file": "keys/release.pub"}]}})
    result = assert_passes(signed_st, policy, "signers")
    assert result.files_verified == 4 and result.tensors_verified == 21


def test_signers_inline_pem(tmp_path: Path, signed_st: Path, release: KeyPair) -> None:
    policy = load(tmp_path, {"signers": {"keys": [{"pem": release.pem}]}})
    result = assert_passes(signed_st, policy, "signers")
    assert result.signer is not None and result.signer.key_hint == release.hint


def test_signers_any_listed_key_verifies(
    tmp_path: Path, signed_gguf: Path, release: KeyPair, stranger: KeyPair
) -> None:
    spec = {"keys": [{"file": str(stranger.pub_path)}, {"pem": release.pem}]}
    policy = load(tmp_path, {"signers": spec})
    result = assert_passes(signed_gguf, policy, "signers")
    assert result.signer is not None and result.signer.key_hint == release.hint


def test_signers_pinned_fingerprint_right(
    tmp_path: Path, signed_st: Path, release: KeyPair
) -> None:
    spec = {"keys": [{"file": str(release.pub_path), "fingerprint": release.hint}]}
    assert_passes(signed_st, load(tmp_path, {"signers": spec}), "signers")


@pytest.mark.parametrize("mode", MODES)
def test_signers_pinned_fingerprint_wrong_is_a_policy_error(
    tmp_path: Path, signed_st: Path, release: KeyPair, mode: str
) -> None:
    wrong = "0" * 64
    spec = {"mode": mode, "keys": [{"file": str(release.pub_path), "fingerprint": wrong}]}
    with pytest.raises(InputError) as info:
        verify(signed_st, policy=load(tmp_path, {"signers": spec}))
    assert info.value.code == "POLICY_INVALID"
    assert info.value.message == f"policy key {release.pub_path} does not have fingerprint {wrong}"


@pytest.mark.parametrize("mode", MODES)
def test_signers_untrusted_key(
    tmp_path: Path, signed_st: Path, release: KeyPair, stranger: KeyPair, mode: str
) -> None:
    spec = {"mode": mode, "keys": [{"file": str(stranger.pub_path)}]}
    policy = load(tmp_path, {"signers": spec, "licences": {}, "formats": {}})
    message = (
        "no signer the policy trusts verifies this signature: "
        f"signed by key {release.hint}, which the policy does not list"
    )
    result = assert_fails(signed_st, policy, "signers", mode, [f"SIGNER_NOT_TRUSTED: {message}"])
    assert result.signer is None
    (problem,) = result.problems
    assert (problem.code, problem.message) == ("SIGNER_NOT_TRUSTED", message)
    assert problem.severity == ("error" if mode == "enforce" else "warning")
    # The other rules are judged from the model on disk.
    assert statuses(result) == {
        "signers": "fail" if mode == "enforce" else "warn",
        "licences": "pass",
        "formats": "pass",
    }


def test_signers_untrusted_key_error_code(
    tmp_path: Path, signed_st: Path, stranger: KeyPair
) -> None:
    policy = load(tmp_path, {"signers": {"keys": [{"pem": stranger.pem}]}})
    with pytest.raises(VerificationError) as info:
        verify(signed_st, policy=policy)
    assert info.value.code == "SIGNER_NOT_TRUSTED"
    assert info.value.message == (
        "verification failed: 1 problem(s); policy rules failed: signers; first: SIGNER_NOT_TRUSTED"
    )


def test_signers_tampered_model_fails_and_is_judged_on_disk(
    tmp_path: Path, copy_signed: Path, release: KeyPair
) -> None:
    (copy_signed / "README.md").write_text("---\nlicense: mit\n---\n")
    policy = load(
        tmp_path,
        {"signers": {"keys": [{"pem": release.pem}]}, "licences": {"require_agreement": True}},
    )
    result, err = judge(copy_signed, policy)
    # The card got shorter: refused by its size, unread.
    assert err is not None and err.code == "FILE_SIZE_MISMATCH"
    signers = rule_of(result, "signers")
    assert signers.status == "fail"
    assert [r.split(":")[0] for r in signers.reasons] == ["FILE_SIZE_MISMATCH"]
    assert signers.reasons[0].startswith("FILE_SIZE_MISMATCH: README.md: file is ")
    # Judged from disk: the edited card (MIT) now disagrees with the Apache LICENSE.
    licences = rule_of(result, "licences")
    assert licences.status == "fail"
    assert licences.reasons == [
        "licence sources disagree: LICENSE=Apache-2.0, README.md:license=MIT"
    ]


def test_signers_certificate_roots(tmp_path: Path, tiny_model: Path) -> None:
    pki = write_pki(build_pki(), tmp_path / "pki")
    signer = KeySigner.from_files(str(pki.leaf_key), cert=str(pki.leaf), chain=[str(pki.chain)])
    sign(tiny_model, signer=signer, env={})
    policy = load(tmp_path, {"signers": {"certificate_roots": ["pki/root.pem"]}})
    result = assert_passes(tiny_model, policy, "signers")
    assert result.signer is not None and result.signer.kind == "certificate"
    assert result.signer.subject is not None and "Model Publisher" in result.signer.subject


@pytest.mark.parametrize("mode", MODES)
def test_signers_certificate_from_another_root(tmp_path: Path, tiny_model: Path, mode: str) -> None:
    pki = write_pki(build_pki(), tmp_path / "pki")
    other = write_pki(build_pki(root_common_name="Other Root CA"), tmp_path / "other")
    signer = KeySigner.from_files(str(pki.leaf_key), cert=str(pki.leaf), chain=[str(pki.chain)])
    sign(tiny_model, signer=signer, env={})
    policy = load(tmp_path, {"signers": {"mode": mode, "certificate_roots": [str(other.root)]}})
    result, _ = judge(tiny_model, policy)
    reasons = rule_of(result, "signers").reasons
    assert len(reasons) == 1
    assert reasons[0].startswith(
        "SIGNER_NOT_TRUSTED: no signer the policy trusts verifies this signature: "
        "certificate roots: "
    )
    assert_fails(tiny_model, policy, "signers", mode, reasons)


def test_signers_certificate_bundle_against_keys_only(
    tmp_path: Path, tiny_model: Path, release: KeyPair
) -> None:
    pki = write_pki(build_pki(), tmp_path / "pki")
    signer = KeySigner.from_files(str(pki.leaf_key), cert=str(pki.leaf), chain=[str(pki.chain)])
    sign(tiny_model, signer=signer, env={})
    policy = load(tmp_path, {"signers": {"keys": [{"pem": release.pem}]}})
    result, err = judge(tiny_model, policy)
    assert err is not None and err.code == "SIGNER_NOT_TRUSTED"
    (reason,) = rule_of(result, "signers").reasons
    assert reason.startswith(
        "SIGNER_NOT_TRUSTED: no signer the policy trusts verifies this signature: "
        f"key {release.hint[:16]}: the bundle is signed with the certificate method, not key"
    )


@pytest.mark.parametrize(
    "identity",
    [
        pytest.param({"identity": DEFAULT_IDENTITY}, id="exact"),
        pytest.param({"identity_regex": r"^signer@example\.(com|org)$"}, id="regex"),
    ],
)
def test_signers_sigstore_identity(
    tmp_path: Path, standin: SigstoreStandin, keyless: Path, identity: dict[str, str]
) -> None:
    policy = sigstore_policy(tmp_path, standin, {**identity, "issuer": DEFAULT_ISSUER})
    result = assert_passes(keyless, policy, "signers")
    assert result.signer is not None
    assert (result.signer.kind, result.signer.identity, result.signer.oidc_issuer) == (
        "sigstore",
        DEFAULT_IDENTITY,
        DEFAULT_ISSUER,
    )
    assert result.signer.signed_at is not None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("identity", "why"),
    [
        pytest.param(
            {"identity": "someone@example.com", "issuer": DEFAULT_ISSUER},
            "certificate identity ['signer@example.com'] does not match 'someone@example.com'",
            id="other-identity",
        ),
        pytest.param(
            {"identity_regex": r"^signer@example\.org$", "issuer": DEFAULT_ISSUER},
            "certificate identity ['signer@example.com'] does not match "
            r"/^signer@example\.org$/",
            id="regex-miss",
        ),
        pytest.param(
            {"identity": DEFAULT_IDENTITY, "issuer": GITHUB_ISSUER},
            f"certificate OIDC issuer is '{DEFAULT_ISSUER}', expected '{GITHUB_ISSUER}'",
            id="other-issuer",
        ),
    ],
)
def test_signers_sigstore_identity_mismatch(
    tmp_path: Path,
    standin: SigstoreStandin,
    keyless: Path,
    identity: dict[str, str],
    why: str,
    mode: str,
) -> None:
    policy = sigstore_policy(tmp_path, standin, identity, mode=mode)
    result, _ = judge(keyless, policy)
    (reason,) = rule_of(result, "signers").reasons
    label = identity.get("identity") or identity["identity_regex"]
    assert reason.startswith(
        "SIGNER_NOT_TRUSTED: no signer the policy trusts verifies this signature: "
        f"{label}: Sigstore verification failed: "
    )
    assert why in reason
    assert_fails(keyless, policy, "signers", mode, [reason])


def test_signers_sigstore_second_identity_matches(
    tmp_path: Path, standin: SigstoreStandin, keyless: Path
) -> None:
    policy = sigstore_policy(
        tmp_path,
        standin,
        {"identity": "someone@example.com", "issuer": DEFAULT_ISSUER},
        {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER},
    )
    assert_passes(keyless, policy, "signers")


def test_signers_sigstore_github_claims(
    tmp_path: Path, standin: SigstoreStandin, gh_keyless: Path
) -> None:
    claims = {
        "identity": GH_IDENTITY,
        "issuer": GITHUB_ISSUER,
        "github_repository": GH_REPO,
        "github_ref": GH_REF,
        "github_workflow": GH_WORKFLOW,
    }
    result = assert_passes(gh_keyless, sigstore_policy(tmp_path, standin, claims), "signers")
    assert result.signer is not None and result.signer.identity == GH_IDENTITY
    assert result.signer.extensions["source_repository_uri"] == f"https://github.com/{GH_REPO}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("claim", "why"),
    [
        pytest.param(
            {"github_repository": "evil/models"},
            "certificate source repository is 'https://github.com/acme/models', "
            "expected 'evil/models'",
            id="repository",
        ),
        pytest.param(
            {"github_ref": "refs/tags/v2.0"},
            "certificate source ref is 'refs/tags/v1.0', expected 'refs/tags/v2.0'",
            id="ref",
        ),
        pytest.param(
            {"github_workflow": ".github/workflows/nightly.yml"},
            "is not workflow '.github/workflows/nightly.yml'",
            id="workflow",
        ),
    ],
)
def test_signers_sigstore_github_claim_mismatch(
    tmp_path: Path,
    standin: SigstoreStandin,
    gh_keyless: Path,
    claim: dict[str, str],
    why: str,
    mode: str,
) -> None:
    spec = {"identity_regex": r"^https://github\.com/acme/.*$", "issuer": GITHUB_ISSUER, **claim}
    policy = sigstore_policy(tmp_path, standin, spec, mode=mode)
    result, _ = judge(gh_keyless, policy)
    (reason,) = rule_of(result, "signers").reasons
    assert why in reason
    assert_fails(gh_keyless, policy, "signers", mode, [reason])


def test_signers_sigstore_bundle_but_no_sigstore_identity(
    tmp_path: Path, keyless: Path, release: KeyPair
) -> None:
    policy = load(tmp_path, {"signers": {"keys": [{"pem": release.pem}]}})
    result, err = judge(keyless, policy)
    assert err is not None
    assert rule_of(result, "signers").reasons == [
        "SIGNER_NOT_TRUSTED: a Sigstore signature, but the policy trusts no Sigstore identity"
    ]


def test_signers_key_bundle_against_sigstore_only(
    tmp_path: Path, standin: SigstoreStandin, signed_st: Path, release: KeyPair
) -> None:
    policy = sigstore_policy(
        tmp_path, standin, {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER}
    )
    result, err = judge(signed_st, policy)
    assert err is not None
    assert rule_of(result, "signers").reasons == [
        "SIGNER_NOT_TRUSTED: no signer the policy trusts verifies this signature: "
        f"signed by key {release.hint}, which the policy does not list"
    ]


def test_signers_sigstore_from_another_instance(
    tmp_path: Path, standin: SigstoreStandin, keyless: Path
) -> None:
    with SigstoreStandin(tmp_path / "other") as other:
        policy = sigstore_policy(
            tmp_path, other, {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER}
        )
    result, err = judge(keyless, policy)
    assert err is not None
    (reason,) = rule_of(result, "signers").reasons
    assert reason.startswith(
        "SIGNER_NOT_TRUSTED: no signer the policy trusts verifies this signature: "
        f"{DEFAULT_IDENTITY}: Sigstore verification failed"
    )


def test_signers_missing_signature_enforced(
    tmp_path: Path, tiny_model: Path, release: KeyPair
) -> None:
    policy = load(tmp_path, {"signers": {"keys": [{"pem": release.pem}]}, "licences": {}})
    sig = tiny_model / "model.sig"
    result, err = judge(tiny_model, policy)
    assert err is not None and err.code == "SIGNATURE_NOT_FOUND"
    assert result.verdict == "failed"
    assert rule_of(result, "signers").status == "fail"
    assert rule_of(result, "signers").reasons == [
        f"SIGNATURE_NOT_FOUND: {sig}: no signature file here"
    ]
    assert rule_of(result, "licences").status == "pass"  # judged from disk


def test_signers_missing_signature_warn_judges_the_model_on_disk(
    tmp_path: Path, pickle_model: Path, release: KeyPair
) -> None:
    policy = load(
        tmp_path,
        {
            "mode": "warn",
            "signers": {"keys": [{"pem": release.pem}]},
            "licences": {},
            "provenance": {"require": ["base_model"]},
            "formats": {},
            "quantization": {"allow_unquantized": False},
            "coverage": {},
            "freshness": {"max_age": "30d"},
        },
    )
    result, err = judge(pickle_model, policy)
    assert err is None and result.verdict == "verified"
    assert result.signer is None
    (problem,) = result.problems
    assert (problem.code, problem.severity) == ("SIGNATURE_NOT_FOUND", "warning")
    assert {r.rule: (r.status, r.reasons) for r in result.policy.rules} == {  # type: ignore[union-attr]
        "signers": (
            "warn",
            [f"SIGNATURE_NOT_FOUND: {pickle_model / 'model.sig'}: no signature file here"],
        ),
        "licences": ("pass", []),
        "provenance": ("warn", ["no base model recorded"]),
        "formats": ("warn", ["pytorch_model.bin: format pickle is denied"]),
        "quantization": ("warn", ["the model is not quantized"]),
        "coverage": ("skip", ["no trusted signed manifest to judge coverage by"]),
        "freshness": ("warn", [NO_TIME]),
    }


def test_signers_from_the_verifier_are_always_enforced(
    tmp_path: Path, signed_st: Path, stranger: KeyPair
) -> None:
    policy = load(tmp_path, {"mode": "warn", "formats": {}})
    with pytest.raises(VerificationError) as info:
        verify(signed_st, verifier=KeyVerifier(stranger.public), policy=policy)
    result = info.value.result
    assert result is not None and result.policy is not None
    signers = result.policy.rules[0]
    assert (signers.rule, signers.mode, signers.status) == ("signers", "enforce", "fail")
    assert signers.reasons[0].startswith("KEY_HINT_MISMATCH: ")
    assert rule_of(result, "formats").status == "pass"


def test_policy_verifier_directly(signed_st: Path, release: KeyPair) -> None:
    from modelsign._internal.signature.bundle import read_bundle

    policy = parse_policy(
        f"version: 1\nsigners:\n  keys:\n    - pem: {json.dumps(release.pem)}\n", "p.yaml"
    )
    envelope = read_bundle((signed_st / "model.sig").read_bytes())
    info = PolicyVerifier(policy).verify_envelope(envelope)
    assert (info.kind, info.key_hint) == ("key", release.hint)
    assert isinstance(policy.verifier(), PolicyVerifier)


# == licences ============================================================================


def test_licences_allow_list_passes(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier
) -> None:
    for allow in (["apache-2.0"], ["MIT", "Apache-2.0"]):
        policy = rule_policy(tmp_path, "licences", "enforce", allow=allow)
        assert_passes(signed_st, policy, "licences", verifier=release_verifier)


@pytest.mark.parametrize("mode", MODES)
def test_licences_not_in_allow_list(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    policy = rule_policy(tmp_path, "licences", mode, allow=["MIT", "BSD-3-Clause"])
    assert_fails(
        signed_st,
        policy,
        "licences",
        mode,
        ["licence Apache-2.0: Apache-2.0 is not in the allowed list"],
        verifier=release_verifier,
    )


@pytest.mark.parametrize("mode", MODES)
def test_licences_deny_list(
    tmp_path: Path, signed_gguf: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    policy = rule_policy(tmp_path, "licences", mode, deny=["Apache-2.0"])
    assert_fails(
        signed_gguf,
        policy,
        "licences",
        mode,
        ["licence Apache-2.0: Apache-2.0 is denied"],
        verifier=release_verifier,
    )
    other = rule_policy(tmp_path, "licences", mode, deny=["GPL-3.0-only"])
    assert_passes(signed_gguf, other, "licences", verifier=release_verifier)


@pytest.mark.parametrize(
    ("expression", "spec", "reasons"),
    [
        pytest.param("Apache-2.0 OR MIT", {"allow": ["MIT"]}, [], id="or-one-allowed"),
        pytest.param("Apache-2.0 OR MIT", {"deny": ["MIT"]}, [], id="or-one-denied"),
        pytest.param(
            "Apache-2.0 OR MIT",
            {"deny": ["MIT", "apache-2.0"]},
            ["licence Apache-2.0 OR MIT: Apache-2.0 is denied; MIT is denied"],
            id="or-both-denied",
        ),
        pytest.param(
            "Apache-2.0 OR MIT",
            {"allow": ["BSD-3-Clause"]},
            [
                "licence Apache-2.0 OR MIT: Apache-2.0 is not in the allowed list; "
                "MIT is not in the allowed list"
            ],
            id="or-none-allowed",
        ),
        pytest.param("Apache-2.0 AND MIT", {"allow": ["MIT", "Apache-2.0"]}, [], id="and-all"),
        pytest.param(
            "Apache-2.0 AND MIT",
            {"allow": ["MIT"]},
            ["licence Apache-2.0 AND MIT: Apache-2.0 is not in the allowed list"],
            id="and-one-missing",
        ),
        pytest.param(
            "GPL-2.0-only WITH Classpath-exception-2.0",
            {"allow": ["GPL-2.0-only"]},
            [],
            id="with-exception-matches-base",
        ),
    ],
)
def test_licences_expressions(
    tmp_path: Path,
    release: KeyPair,
    expression: str,
    spec: dict[str, Any],
    reasons: list[str],
) -> None:
    model = with_card(tmp_path / "m", json.dumps(expression))
    key_sign(model, release)
    policy = rule_policy(tmp_path, "licences", "enforce", **spec)
    result, err = judge(model, policy, verifier=KeyVerifier(release.public))
    r = rule_of(result, "licences")
    assert r.reasons == reasons
    assert (r.status, err is None) == (("fail", False) if reasons else ("pass", True))


@pytest.mark.parametrize("mode", MODES)
def test_licences_required(tmp_path: Path, release: KeyPair, mode: str) -> None:
    model = with_card(tmp_path / "m", None)
    key_sign(model, release)
    verifier = KeyVerifier(release.public)
    policy = rule_policy(tmp_path, "licences", mode)
    assert_fails(
        model,
        policy,
        "licences",
        mode,
        ["no licence found (model card, GGUF metadata or LICENSE file)"],
        verifier=verifier,
    )
    optional = rule_policy(tmp_path, "licences", mode, require=False, allow=["MIT"])
    assert_passes(model, optional, "licences", verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_licences_require_agreement(
    tmp_path: Path, release: KeyPair, tiny_model: Path, mode: str
) -> None:
    model = with_card(
        tmp_path / "m", "mit", licence_text=(tiny_model / "LICENSE").read_text()
    )  # card MIT, LICENSE Apache
    key_sign(model, release)
    verifier = KeyVerifier(release.public)
    assert_fails(
        model,
        rule_policy(tmp_path, "licences", mode, require_agreement=True),
        "licences",
        mode,
        ["licence sources disagree: LICENSE=Apache-2.0, README.md:license=MIT"],
        verifier=verifier,
    )
    # Without require_agreement the card's licence is the one judged.
    assert_passes(
        model, rule_policy(tmp_path, "licences", mode, allow=["MIT"]), "licences", verifier=verifier
    )
    # The example's card and LICENSE agree.
    key_sign(tiny_model, release)
    assert_passes(
        tiny_model,
        rule_policy(tmp_path, "licences", mode, require_agreement=True),
        "licences",
        verifier=verifier,
    )


# == provenance ==========================================================================


@pytest.mark.parametrize("mode", MODES)
def test_provenance_source_repository_and_pinned_revision(
    tmp_path: Path, release: KeyPair, mode: str
) -> None:
    verifier = KeyVerifier(release.public)
    require = ["source_repository", "pinned_revision"]
    policy = rule_policy(tmp_path, "provenance", mode, require=require)
    unpinned, branch, pinned = (build_example(tmp_path / n)[0] for n in ("a", "b", "c"))
    key_sign(unpinned, release)
    key_sign(branch, release, source=parse_source("acme/tiny@main"))
    key_sign(pinned, release, source=parse_source(f"acme/tiny@{PINNED}"))
    assert_fails(
        unpinned,
        policy,
        "provenance",
        mode,
        [
            "no source repository recorded",
            "the source revision is not pinned to a commit (40 hex digits)",
        ],
        verifier=verifier,
    )
    assert_fails(
        branch,
        policy,
        "provenance",
        mode,
        ["the source revision is not pinned to a commit (40 hex digits)"],
        verifier=verifier,
    )
    assert_passes(pinned, policy, "provenance", verifier=verifier)
    only_repo = rule_policy(tmp_path, "provenance", mode, require=["source_repository"])
    assert_passes(branch, only_repo, "provenance", verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_provenance_base_model(
    tmp_path: Path, signed_st: Path, signed_gguf: Path, release: KeyPair, mode: str
) -> None:
    verifier = KeyVerifier(release.public)
    policy = rule_policy(tmp_path, "provenance", mode, require=["base_model"])
    assert_passes(signed_st, policy, "provenance", verifier=verifier)  # card base_model
    assert_passes(signed_gguf, policy, "provenance", verifier=verifier)  # GGUF base_model
    bare = with_card(tmp_path / "bare", "mit")
    key_sign(bare, release)
    assert_fails(bare, policy, "provenance", mode, ["no base model recorded"], verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_provenance_builder(tmp_path: Path, release: KeyPair, mode: str) -> None:
    verifier = KeyVerifier(release.public)
    policy = rule_policy(tmp_path, "provenance", mode, require=["builder"])
    local, ci = (build_example(tmp_path / n)[0] for n in ("local", "ci"))
    key_sign(local, release)
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": GH_REPO,
        "GITHUB_SHA": PINNED,
        "GITHUB_REF": GH_REF,
        "GITHUB_WORKFLOW_REF": f"{GH_REPO}/{GH_WORKFLOW}@{GH_REF}",
    }
    key_sign(ci, release, env=env)
    assert_fails(local, policy, "provenance", mode, ["no CI builder recorded"], verifier=verifier)
    assert_passes(ci, policy, "provenance", verifier=verifier)


def test_provenance_builder_is_not_taken_from_the_verifiers_environment(
    tmp_path: Path, tiny_model: Path, release: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REPOSITORY", "verifier/ci-job")
    policy = load(
        tmp_path,
        {
            "mode": "warn",
            "signers": {"keys": [{"pem": release.pem}]},
            "provenance": {"require": ["builder"]},
        },
    )
    result, _ = judge(tiny_model, policy)  # unsigned: judged from disk
    assert rule_of(result, "provenance").reasons == ["no CI builder recorded"]


@pytest.mark.parametrize("mode", MODES)
def test_provenance_source_repository_patterns(tmp_path: Path, release: KeyPair, mode: str) -> None:
    verifier = KeyVerifier(release.public)
    model = build_example(tmp_path / "m")[0]
    key_sign(model, release, source=parse_source(f"acme/tiny@{PINNED}"))
    allowed = rule_policy(tmp_path, "provenance", mode, source_repositories=["other/*", "acme/*"])
    assert_passes(model, allowed, "provenance", verifier=verifier)
    exact = rule_policy(tmp_path, "provenance", mode, source_repositories=["acme/tiny"])
    assert_passes(model, exact, "provenance", verifier=verifier)
    refused = rule_policy(
        tmp_path, "provenance", mode, source_repositories=["acme-research/*", "Acme/*"]
    )
    assert_fails(
        model,
        refused,
        "provenance",
        mode,
        ["source repository acme/tiny is not allowed"],
        verifier=verifier,
    )


@pytest.mark.parametrize("mode", MODES)
def test_provenance_base_model_patterns(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    allowed = rule_policy(tmp_path, "provenance", mode, base_models=["modelsign-examples/*"])
    assert_passes(signed_st, allowed, "provenance", verifier=release_verifier)
    refused = rule_policy(tmp_path, "provenance", mode, base_models=["meta-llama/*"])
    assert_fails(
        signed_st,
        refused,
        "provenance",
        mode,
        ["base model modelsign-examples/tiny-base is not allowed"],
        verifier=release_verifier,
    )


# == formats =============================================================================


@pytest.mark.parametrize("mode", MODES)
def test_formats_signed_pickle_checkpoint(
    tmp_path: Path, pickle_model: Path, release: KeyPair, mode: str
) -> None:
    key_sign(pickle_model, release)
    verifier = KeyVerifier(release.public)
    policy = rule_policy(tmp_path, "formats", mode)  # pickle is denied by default
    assert_fails(
        pickle_model,
        policy,
        "formats",
        mode,
        ["pytorch_model.bin: format pickle is denied"],
        verifier=verifier,
    )
    allowed = rule_policy(tmp_path, "formats", mode, deny=[])
    assert_passes(pickle_model, allowed, "formats", verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_formats_unsigned_pickle_beside_a_signed_model(
    tmp_path: Path, copy_signed: Path, torch_checkpoint: bytes, release: KeyPair, mode: str
) -> None:
    (copy_signed / "pytorch_model.bin").write_bytes(torch_checkpoint)
    # Coverage tolerates the unsigned file: only the formats rule catches it.
    policy = load(tmp_path, {"mode": mode, "formats": {}, "coverage": {"unsigned_files": "allow"}})
    result = assert_fails(
        copy_signed,
        policy,
        "formats",
        mode,
        ["pytorch_model.bin (unsigned): format pickle is denied"],
        verifier=KeyVerifier(release.public),
    )
    assert statuses(result)["signers"] == "pass"
    assert statuses(result)["coverage"] == "pass"
    (extra,) = result.problems
    assert (extra.code, extra.file, extra.severity) == ("FILE_EXTRA", "pytorch_model.bin", "info")


def test_formats_unsigned_pickle_without_a_coverage_rule(
    tmp_path: Path, copy_signed: Path, torch_checkpoint: bytes, release: KeyPair
) -> None:
    (copy_signed / "pytorch_model.bin").write_bytes(torch_checkpoint)
    policy = load(tmp_path, {"formats": {}})
    result, err = judge(copy_signed, policy, verifier=KeyVerifier(release.public))
    assert err is not None and err.code == "FILE_EXTRA"
    # The extra file fails the signature; the formats rule judges the model on disk.
    assert rule_of(result, "signers").reasons == [f"FILE_EXTRA: pytorch_model.bin: {NOT_COVERED}"]
    assert rule_of(result, "formats").reasons == ["pytorch_model.bin: format pickle is denied"]
    assert statuses(result) == {"signers": "fail", "formats": "fail"}


@pytest.mark.parametrize("mode", MODES)
def test_formats_unknown_weight_like_file(
    tmp_path: Path, tiny_model: Path, release: KeyPair, mode: str
) -> None:
    np.save(tiny_model / "extra_weights.npy", np.arange(16, dtype=np.float32))
    key_sign(tiny_model, release)
    verifier = KeyVerifier(release.public)
    policy = rule_policy(tmp_path, "formats", mode, deny=["pickle", "unknown"])
    assert_fails(
        tiny_model,
        policy,
        "formats",
        mode,
        ["extra_weights.npy: format unknown is denied"],
        verifier=verifier,
    )
    # Without "unknown" in the deny list, the opaque file passes.
    assert_passes(tiny_model, rule_policy(tmp_path, "formats", mode), "formats", verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_formats_allow_list(
    tmp_path: Path, signed_st: Path, signed_gguf: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    ok = rule_policy(tmp_path, "formats", mode, allow=["safetensors"])
    assert_passes(signed_st, ok, "formats", verifier=release_verifier)  # opaque always allowed
    only_gguf = rule_policy(tmp_path, "formats", mode, allow=["gguf", "opaque"])
    assert_passes(signed_gguf, only_gguf, "formats", verifier=release_verifier)
    assert_fails(
        signed_st,
        only_gguf,
        "formats",
        mode,
        ["model.safetensors: format safetensors is not allowed"],
        verifier=release_verifier,
    )


def test_formats_allow_list_refuses_unknown(
    tmp_path: Path, tiny_model: Path, release: KeyPair
) -> None:
    (tiny_model / "model.onnx").write_bytes(b"\x08\x07\x12\x04onnx" + bytes(32))
    key_sign(tiny_model, release)
    policy = rule_policy(tmp_path, "formats", "enforce", allow=["safetensors"], deny=[])
    assert_fails(
        tiny_model,
        policy,
        "formats",
        "enforce",
        ["model.onnx: format unknown is not allowed"],
        verifier=KeyVerifier(release.public),
    )


@pytest.mark.parametrize("mode", MODES)
def test_formats_python_code(tmp_path: Path, tiny_model: Path, release: KeyPair, mode: str) -> None:
    (tiny_model / "modeling_x.py").write_text("import os\nos.system('true')\n")
    key_sign(tiny_model, release)
    verifier = KeyVerifier(release.public)
    refused = rule_policy(tmp_path, "formats", mode, allow_python_code=False)
    assert_fails(
        tiny_model,
        refused,
        "formats",
        mode,
        ["modeling_x.py: Python code in the model (runs with trust_remote_code)"],
        verifier=verifier,
    )
    assert_fails(
        tiny_model,
        rule_policy(tmp_path, "formats", mode),
        "formats",
        mode,
        ["modeling_x.py: Python code in the model (runs with trust_remote_code)"],
        verifier=verifier,
    )  # refused by default
    allowed = rule_policy(tmp_path, "formats", mode, allow_python_code=True)
    assert_passes(tiny_model, allowed, "formats", verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_formats_chat_template(tmp_path: Path, release: KeyPair, mode: str) -> None:
    model = tmp_path / "chat"
    model.mkdir()
    tensors = {"w": random_quant((4, 32), QT.Q8_0)}
    write_gguf(
        model / "chat.gguf",
        tensors=tensors,
        license="mit",
        chat_template="{% for m in messages %}{{ m.content }}{% endfor %}",
    )
    write_gguf(tmp_path / "plain.gguf", tensors=tensors, license="mit")
    key_sign(model, release)
    verifier = KeyVerifier(release.public)
    refused = rule_policy(tmp_path, "formats", mode, allow_chat_templates=False)
    assert_fails(
        model,
        refused,
        "formats",
        mode,
        ["chat.gguf: carries a chat template (a Jinja program the runtime runs)"],
        verifier=verifier,
    )
    assert_passes(model, rule_policy(tmp_path, "formats", mode), "formats", verifier=verifier)
    key_sign(tmp_path / "plain.gguf", release)  # a single file without a template
    assert_passes(tmp_path / "plain.gguf", refused, "formats", verifier=verifier)


# == quantization ========================================================================


@pytest.mark.parametrize("mode", MODES)
def test_quantization_allowed_schemes(
    tmp_path: Path, signed_st: Path, signed_gguf: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    ok = rule_policy(tmp_path, "quantization", mode, allowed_schemes=["MOSTLY_Q8_0"])
    assert_passes(signed_gguf, ok, "quantization", verifier=release_verifier)
    # An unquantized model is not judged by the scheme list.
    assert_passes(signed_st, ok, "quantization", verifier=release_verifier)
    other = rule_policy(tmp_path, "quantization", mode, allowed_schemes=["MOSTLY_Q4_K_M", "awq"])
    assert_fails(
        signed_gguf,
        other,
        "quantization",
        mode,
        ["quantization scheme MOSTLY_Q8_0 is not allowed"],
        verifier=release_verifier,
    )


@pytest.mark.parametrize("mode", MODES)
def test_quantization_min_bits_per_weight(
    tmp_path: Path, signed_gguf: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    eight = rule_policy(tmp_path, "quantization", mode, min_bits_per_weight=8)
    assert_passes(signed_gguf, eight, "quantization", verifier=release_verifier)  # Q8_0: 8.5 bpw
    nine = rule_policy(tmp_path, "quantization", mode, min_bits_per_weight=9)
    assert_fails(
        signed_gguf,
        nine,
        "quantization",
        mode,
        ["8.5654 bits per weight is below the minimum 9.0"],
        verifier=release_verifier,
    )


@pytest.mark.parametrize("mode", MODES)
def test_quantization_allow_unquantized(
    tmp_path: Path, signed_st: Path, signed_gguf: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    refused = rule_policy(tmp_path, "quantization", mode, allow_unquantized=False)
    assert_fails(
        signed_st,
        refused,
        "quantization",
        mode,
        ["the model is not quantized"],
        verifier=release_verifier,
    )
    assert_passes(signed_gguf, refused, "quantization", verifier=release_verifier)
    allowed = rule_policy(tmp_path, "quantization", mode, allow_unquantized=True)
    assert_passes(signed_st, allowed, "quantization", verifier=release_verifier)


# == coverage ============================================================================


@pytest.mark.parametrize("mode", MODES)
def test_coverage_requires_tensor_digests(tmp_path: Path, release: KeyPair, mode: str) -> None:
    st, gg = build_example(tmp_path / "m")
    key_sign(st, release, tensor_hash=None)
    key_sign(gg, release, tensor_hash=None)
    verifier = KeyVerifier(release.public)
    policy = rule_policy(tmp_path, "coverage", mode)
    assert_fails(
        st,
        policy,
        "coverage",
        mode,
        ["model.safetensors: the signature has no tensor digests for this weight file"],
        verifier=verifier,
    )
    assert_fails(
        gg,
        policy,
        "coverage",
        mode,
        ["tiny-model-Q8_0.gguf: the signature has no tensor digests for this weight file"],
        verifier=verifier,
    )
    lenient = rule_policy(tmp_path, "coverage", mode, require_tensor_digests=False)
    assert_passes(st, lenient, "coverage", verifier=verifier)


def test_coverage_passes_with_tensor_digests(
    tmp_path: Path, signed_st: Path, signed_gguf: Path, release_verifier: KeyVerifier
) -> None:
    policy = rule_policy(tmp_path, "coverage", "enforce")
    for model in (signed_st, signed_gguf):
        result = assert_passes(model, policy, "coverage", verifier=release_verifier)
        assert result.problems == []


@pytest.mark.parametrize("mode", MODES)
def test_coverage_unsigned_files_deny(
    tmp_path: Path, copy_signed: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    (copy_signed / "notes.txt").write_text("added after signing\n")
    policy = rule_policy(tmp_path, "coverage", mode, unsigned_files="deny")
    result = assert_fails(
        copy_signed,
        policy,
        "coverage",
        mode,
        [f"notes.txt: {NOT_COVERED}"],
        verifier=release_verifier,
    )
    assert statuses(result)["signers"] == "pass"  # the extra file is coverage's business
    (extra,) = result.problems
    assert (extra.code, extra.file) == ("FILE_EXTRA", "notes.txt")
    assert extra.severity == ("error" if mode == "enforce" else "warning")


@pytest.mark.parametrize(
    ("unsigned_files", "status", "reasons", "severity"),
    [
        ("warn", "warn", [f"notes.txt: {NOT_COVERED}"], "warning"),
        ("allow", "pass", [], "info"),
    ],
)
def test_coverage_unsigned_files_warn_and_allow(
    tmp_path: Path,
    copy_signed: Path,
    release_verifier: KeyVerifier,
    unsigned_files: str,
    status: str,
    reasons: list[str],
    severity: str,
) -> None:
    (copy_signed / "notes.txt").write_text("added after signing\n")
    # The rule is enforced: "warn" still only warns.
    policy = rule_policy(tmp_path, "coverage", "enforce", unsigned_files=unsigned_files)
    result, err = judge(copy_signed, policy, verifier=release_verifier)
    assert err is None and result.verdict == "verified"
    coverage = rule_of(result, "coverage")
    assert (coverage.mode, coverage.status, coverage.reasons) == ("enforce", status, reasons)
    (extra,) = result.problems
    assert (extra.code, extra.file, extra.severity) == ("FILE_EXTRA", "notes.txt", severity)
    assert result.errors == []


def test_coverage_does_not_misreport_an_untrusted_signature(
    tmp_path: Path, signed_st: Path, stranger: KeyPair
) -> None:
    policy = load(
        tmp_path,
        {"mode": "warn", "signers": {"keys": [{"pem": stranger.pem}]}, "coverage": {}},
    )
    result, _ = judge(signed_st, policy)  # signed by release, with tensor digests
    assert rule_of(result, "signers").status == "warn"
    # Untrusted: coverage cannot be judged from a signature it cannot trust, so it is
    # skipped (not misreported as "no tensor digests").
    coverage = rule_of(result, "coverage")
    assert (coverage.status, coverage.reasons) == (
        "skip",
        ["no trusted signed manifest to judge coverage by"],
    )


def test_coverage_absent_leaves_extra_files_to_the_signature(
    tmp_path: Path, copy_signed: Path, release_verifier: KeyVerifier
) -> None:
    (copy_signed / "notes.txt").write_text("added after signing\n")
    result, err = judge(copy_signed, load(tmp_path, {"licences": {}}), verifier=release_verifier)
    assert err is not None and err.code == "FILE_EXTRA"
    assert rule_of(result, "signers").reasons == [f"FILE_EXTRA: notes.txt: {NOT_COVERED}"]
    assert result.problems[0].severity == "error"


# == freshness ===========================================================================


@pytest.mark.parametrize("mode", MODES)
def test_freshness_key_signature_has_no_time(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    policy = rule_policy(tmp_path, "freshness", mode, max_age="3650d")
    assert_fails(signed_st, policy, "freshness", mode, [NO_TIME], verifier=release_verifier)


@pytest.mark.parametrize("mode", MODES)
def test_freshness_sigstore_signature(
    tmp_path: Path, standin: SigstoreStandin, keyless: Path, mode: str
) -> None:
    policy = sigstore_policy(
        tmp_path,
        standin,
        {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER},
        freshness={"mode": mode, "max_age": "30d"},
    )
    first = assert_passes(keyless, policy, "freshness")  # now: just signed
    assert first.signer is not None and first.signer.signed_at is not None
    signed_at = datetime.fromisoformat(first.signer.signed_at)
    assert signed_at.tzinfo is not None
    assert_passes(keyless, policy, "freshness", now=signed_at + timedelta(days=29, hours=23))
    assert_passes(keyless, policy, "freshness", now=signed_at + timedelta(days=30))
    late = signed_at + timedelta(days=31)
    assert_fails(
        keyless,
        policy,
        "freshness",
        mode,
        [f"signed {signed_at.isoformat()}, 31 days ago: older than 30d"],
        now=late,
    )


def test_freshness_units(tmp_path: Path, standin: SigstoreStandin, keyless: Path) -> None:
    ident = {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER}
    signed_at = None
    for max_age, inside, beyond in (
        ("12h", timedelta(hours=11), timedelta(hours=13)),
        ("2w", timedelta(days=13), timedelta(days=15)),
        ("90m", timedelta(minutes=89), timedelta(minutes=91)),
        ("45s", timedelta(seconds=44), timedelta(seconds=46)),
    ):
        policy = sigstore_policy(tmp_path, standin, ident, freshness={"max_age": max_age})
        if signed_at is None:
            result = assert_passes(keyless, policy, "freshness")
            assert result.signer is not None and result.signer.signed_at is not None
            signed_at = datetime.fromisoformat(result.signer.signed_at)
        assert_passes(keyless, policy, "freshness", now=signed_at + inside)
        result, err = judge(keyless, policy, now=signed_at + beyond)
        assert err is not None and rule_of(result, "freshness").status == "fail", max_age


# == evaluate() directly, and modes ======================================================


def test_policy_wide_warn_mode_with_an_enforced_rule(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier
) -> None:
    policy = load(
        tmp_path,
        {
            "mode": "warn",
            "quantization": {"allow_unquantized": False},
            "freshness": {"max_age": "1d", "mode": "enforce"},
        },
    )
    result, err = judge(signed_st, policy, verifier=release_verifier)
    assert err is not None and err.code == "POLICY_FAILED"
    assert err.message == "verification failed: 0 problem(s); policy rules failed: freshness"
    assert [(r.rule, r.mode, r.status) for r in result.policy.rules] == [  # type: ignore[union-attr]
        ("signers", "enforce", "pass"),
        ("quantization", "warn", "warn"),
        ("freshness", "enforce", "fail"),
    ]


def test_evaluate_without_a_manifest(tmp_path: Path) -> None:
    policy = load(tmp_path, {"mode": "warn", "licences": {}, "formats": {"mode": "enforce"}})
    report = evaluate(
        policy, manifest=None, signer=None, signature_problems=["X: broken"], unsigned_files={}
    )
    why = "no manifest to judge (the signature carries none and the model could not be read)"
    # The caller's own trust (a verifier, as from --key) is judged and enforced even when the
    # policy lists no signers and warns by default.
    assert [(r.rule, r.mode, r.status, r.reasons) for r in report.rules] == [
        ("signers", "enforce", "fail", ["X: broken"]),
        ("licences", "warn", "warn", [why]),
        ("formats", "enforce", "fail", [why]),
    ]
    assert report.blocked
    no_trust = evaluate(
        policy,
        manifest=None,
        signer=None,
        signature_problems=["X: broken"],
        unsigned_files={},
        verifier_given=False,
    )
    assert [r.rule for r in no_trust.rules] == ["licences", "formats"]


def test_evaluate_reports_are_json_serialisable(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier
) -> None:
    policy = load(tmp_path, {"mode": "warn", "freshness": {"max_age": "1d"}})
    result = verify(signed_st, verifier=release_verifier, policy=policy)
    dumped = json.loads(result.model_dump_json())
    assert dumped["policy"] == {
        "rules": [
            {"rule": "signers", "mode": "enforce", "status": "pass", "reasons": []},
            {"rule": "freshness", "mode": "warn", "status": "warn", "reasons": [NO_TIME]},
        ]
    }

"""Loading a policy: YAML and JSON, line-numbered errors for every malformed field, defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelsign._trust import Trust
from modelsign.errors import InputError
from modelsign.policy import RULES, Policy, parse_policy
from modelsign.verify import verify
from tests.policy.helpers import load


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
            "field signers.keys.0 (line 4): give exactly one of 'file', 'pem' or 'uri'",
            id="key-file-and-pem",
        ),
        pytest.param(
            "version: 1\nsigners:\n  keys:\n    - fingerprint: " + "a" * 64 + "\n",
            "field signers.keys.0 (line 4): give exactly one of 'file', 'pem' or 'uri'",
            id="key-neither",
        ),
        pytest.param(
            "version: 1\nsigners:\n  keys:\n    - uri: 'keys/release.pub'\n",
            "field signers.keys.0 (line 4): uri must name a held key",
            id="key-uri-not-held",
        ),
        *(
            pytest.param(
                f"version: 1\nsigners:\n  keys:\n    - uri: 'pkcs11:token=t;object=k?{pin}=1'\n",
                "field signers.keys.0 (line 4): uri must not hold a PIN (pin-value)",
                id=f"key-uri-{pin}",
            )
            for pin in ("pin-value", "PIN-VALUE")
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
        parse_policy("version: 1\nformats:\n  allow: [safetensors, tflite]\n", "p.yaml")
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
        Trust(None, policy)  # the verifiers are the verb's to build: none without signers
    assert info.value.code == "USAGE"
    with pytest.raises(InputError) as info:
        verify(tiny_model, policy=policy)
    assert info.value.code == "USAGE"

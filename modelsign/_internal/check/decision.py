"""What a failed check does — raise, warn or only report — decided here, once.

The judge and the policy say what is wrong; a :class:`Decision` says what
that means for the caller, by its one explicit ``on_failure``:

- ``"raise"``: :class:`~modelsign.errors.VerificationError`, with every
  finding and the caller's result (``verify()``; a loader whose trust is
  enforced).
- ``"warn"``: a :class:`ModelsignWarning`, and the caller goes on (a loader
  under a warn-mode policy without trust of the caller's own).
- ``"report"``: nothing raised, nothing warned: the caller returns a failed
  result (the inventory, ``watch``).

A failure that leaves nothing to go on with (a file gone since its signature
was checked) is ``fatal``: it raises whatever the mode.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ...errors import ModelsignWarning, VerificationError
from .compare import Problem, ProblemSeverity

OnFailure = Literal["raise", "warn", "report"]


@dataclass(frozen=True)
class Decision:
    """How one verification acts on a failure (see the module's docstring)."""

    on_failure: OnFailure = "raise"

    def fail(
        self,
        message: str,
        problems: Sequence[Problem] = (),
        code: str | None = None,
        *,
        result: Any = None,
        fatal: bool = False,
        stacklevel: int = 1,
    ) -> str:
        """Act on a failed check; the text told (warned or reported) when it does not raise.

        ``result`` rides on the error (``VerificationError.result``);
        ``stacklevel`` counts from the caller, as for :func:`warnings.warn`.
        """
        if fatal or self.on_failure == "raise":
            exc = VerificationError(message, code=code, findings=problems)
            exc.result = result
            raise exc
        detail = "; ".join(f"{p.code} {p.file or ''} {p.tensor or ''}".strip() for p in problems)
        text = f"modelsign: {message}" + (f" ({detail})" if detail else "")
        return self.warn(text, stacklevel + 1)

    def warn(self, text: str, stacklevel: int = 1) -> str:
        """A note that never blocks: warned, unless the caller only reports."""
        if self.on_failure != "report":
            warnings.warn(text, ModelsignWarning, stacklevel=stacklevel + 1)
        return text


def grade(
    problems: Sequence[Problem],
    rules: Mapping[str, str],
    *,
    coverage_rule: bool,
    allow_unsigned: bool,
) -> list[Problem]:
    """Each problem's severity under a judged policy: the rule it belongs to decides.

    ``rules`` maps each judged rule to its status. Unsigned files
    (``FILE_EXTRA``) belong to the coverage rule when the policy has one
    (``allow_unsigned``: information; a failed rule: an error; else a
    warning); every other error to the signers rule (a warning where that
    rule only warns).
    """

    def severity(p: Problem) -> ProblemSeverity:
        if p.severity != "error":
            return p.severity
        if p.code == "FILE_EXTRA" and coverage_rule:
            if allow_unsigned:
                return "info"
            return "warning" if rules.get("coverage") != "fail" else "error"
        return "warning" if rules.get("signers") == "warn" else "error"

    return [p.model_copy(update={"severity": severity(p)}) for p in problems]

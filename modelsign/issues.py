"""The one record of "something is wrong, or worth a look": :class:`Issue`.

Verification problems, manifest findings, diff changes, policy reasons and
watch events are all issues (or built on one): a registered :class:`Code`, a
severity, a message for a person, and where it applies — the file, the tensor
— with the expected and actual values (hex digests, sizes, names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from .codes import Code

Severity = Literal["error", "warning", "info"]

if TYPE_CHECKING:
    # Call sites may still pass a code's string; pydantic turns it into the
    # Code member (and refuses a string that is not a code) when validating.
    CodeField = Code | str
else:
    CodeField = Code


class Issue(BaseModel):
    """One issue, with a stable code (stable JSON schema; the code serialises as its string).

    ``severity``: ``error`` fails what it is part of, ``warning`` is reported
    and never fails, ``info`` is a note. ``expected`` and ``actual`` are what
    should be and what is: hex digests (``sha256:``-prefixed where the
    algorithm is not implied), byte counts, names or values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: CodeField
    severity: Severity = "error"
    message: str
    file: str | None = None
    tensor: str | None = None
    expected: str | None = None
    actual: str | None = None


__all__ = ["CodeField", "Issue", "Severity"]

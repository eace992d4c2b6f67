"""Findings: facts worth a person's attention that do not stop the job; the manifest's form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from ..codes import Code
from ..issues import CodeField, Issue

FindingSeverity = Literal["info", "warning"]
Severity = FindingSeverity  # the earlier name


def _known_or_kept(value: Any) -> Any:
    # A manifest written by a newer modelsign may record a finding this one does
    # not know: its signature still verifies, so the code is kept as its string.
    if isinstance(value, str) and not isinstance(value, Code):
        try:
            return Code(value)
        except ValueError:
            return value
    return value


if TYPE_CHECKING:
    FindingCode = CodeField
else:
    FindingCode = Annotated[Code | str, BeforeValidator(_known_or_kept)]

# What a manifest writes for a finding (the manifest is signed: this form never changes).
_RECORDED = ("code", "severity", "message", "path", "tensor")


class Finding(Issue):
    """One recorded finding: an :class:`~modelsign.issues.Issue` that never fails anything.

    Its severity is ``warning`` (the default) or ``info``, and it has no
    expected / actual values. Manifests are signed, so a finding keeps the
    JSON form manifests have always had: ``path`` names the file (``file``
    in Python; ``path`` is read too, and is a property), and only
    ``code``, ``severity``, ``message``, ``path`` and ``tensor`` are written.
    """

    code: FindingCode
    severity: FindingSeverity = "warning"
    file: str | None = Field(default=None, validation_alias=AliasChoices("file", "path"))

    @model_validator(mode="before")
    @classmethod
    def _recorded_form(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "path" in data and "file" in data:
                raise ValueError("a finding names its file once ('path')")
            extra = sorted(set(data) - {*_RECORDED, "file"})
            if extra:
                raise ValueError(f"a finding has no field {extra[0]!r}")
        return data

    @model_serializer(mode="wrap")
    def _as_recorded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if "file" in data:
            data["path"] = data.pop("file")
        return {key: data[key] for key in _RECORDED if key in data}

    @property
    def path(self) -> str | None:
        """The file the finding is about (``file``; the manifest's name for it)."""
        return self.file

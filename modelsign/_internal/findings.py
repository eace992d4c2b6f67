"""Findings: facts worth a person's attention that do not stop the job."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Severity = Literal["info", "warning"]


class Finding(BaseModel):
    """One recorded finding, with a stable code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    severity: Severity = "warning"
    message: str
    path: str | None = None
    tensor: str | None = None

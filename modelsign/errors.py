"""The one exception hierarchy of modelsign.

Every error carries a stable ``code`` (a :class:`~modelsign.codes.Code`,
listed in the README), the file and tensor it concerns, and expected / actual
values as hex where digests are involved. The CLI prints ``diagnostics()`` and
exits with ``exit_code``; the library never prints. A code that is not a
registered :class:`Code` is a programming error: ``ValueError`` at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from .codes import Code
from .issues import Issue

ERROR_KIND: Final = "modelsign.error"


class ModelsignError(Exception):
    """Root of all modelsign errors."""

    code: Code = Code.MODELSIGN_ERROR
    exit_code: int = 2

    def __init__(
        self,
        message: str,
        *,
        code: Code | str | None = None,
        path: str | None = None,
        tensor: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = Code(code)
        self.path = path
        self.tensor = tensor
        self.expected = expected
        self.actual = actual

    def diagnostics(self) -> str:
        """A one-paragraph explanation for a person."""
        where = ""
        if self.path is not None:
            where = f"{self.path}"
            if self.tensor is not None:
                where += f" [tensor {self.tensor!r}]"
            where += ": "
        text = f"error[{self.code}]: {where}{self.message}"
        if self.expected is not None:
            text += f"\n  expected: {self.expected}"
        if self.actual is not None:
            text += f"\n  actual:   {self.actual}"
        return text

    def __str__(self) -> str:
        return self.diagnostics()

    def to_issue(self) -> Issue:
        """This error as an :class:`Issue` (severity ``error``)."""
        return Issue(
            code=self.code,
            message=self.message,
            file=self.path,
            tensor=self.tensor,
            expected=self.expected,
            actual=self.actual,
        )

    def to_json(self) -> dict[str, Any]:
        """This error as JSON (schema ``modelsign.error`` version 1).

        ``problems`` are every problem a :class:`VerificationError` found,
        each an :class:`Issue` as JSON (empty for other errors).
        """
        return {
            "kind": ERROR_KIND,
            "version": 1,
            "code": str(self.code),
            "message": self.message,
            "file": self.path,
            "tensor": self.tensor,
            "expected": self.expected,
            "actual": self.actual,
            "problems": [p.model_dump(mode="json") for p in self._problems()],
        }

    def _problems(self) -> Sequence[Issue]:
        return ()


class InputError(ModelsignError):
    """Bad arguments or unreadable input that is not a model-format problem."""

    code = Code.INPUT_ERROR


class DiscoveryError(ModelsignError):
    """The model package cannot be walked safely (symlinks, special files, names)."""

    code = Code.DISCOVERY_ERROR


class FormatError(ModelsignError):
    """A file breaks a rule of its format (safetensors, GGUF, shard index)."""

    code = Code.FORMAT_ERROR


class ManifestError(ModelsignError):
    """A manifest cannot be read or does not match its schema."""

    code = Code.MANIFEST_ERROR


class SignatureError(ModelsignError):
    """A signature file cannot be written, or read as a signature at all."""

    code = Code.SIGNATURE_ERROR


class VerificationError(ModelsignError):
    """Verification failed: the signature, the statement or the model on disk.

    ``findings`` holds every problem found (each with a stable code, the file,
    the tensor, expected and actual digests), not only the first.
    """

    code = Code.VERIFICATION_FAILED
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        findings: Sequence[Issue] = (),
        code: Code | str | None = None,
        path: str | None = None,
        tensor: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(
            message, code=code, path=path, tensor=tensor, expected=expected, actual=actual
        )
        self.findings = list(findings)
        self.result: Any = None  # the full VerificationResult, when verification got that far

    def _problems(self) -> Sequence[Issue]:
        return self.findings


class ModelsignWarning(UserWarning):
    """Issued when a warn-mode policy lets an unverified load or use through."""

"""The one exception hierarchy of modelsign.

Every error carries a stable ``code`` (documented in the README), the file and
tensor it concerns, and expected / actual values as hex where digests are
involved. The CLI prints ``diagnostics()`` and exits with ``exit_code``; the
library never prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ModelsignError(Exception):
    """Root of all modelsign errors."""

    code: str = "MODELSIGN_ERROR"
    exit_code: int = 2

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        path: str | None = None,
        tensor: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
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
        if self.expected is not None or self.actual is not None:
            text += f"\n  expected: {self.expected}\n  actual:   {self.actual}"
        return text

    def __str__(self) -> str:
        return self.diagnostics()


class InputError(ModelsignError):
    """Bad arguments or unreadable input that is not a model-format problem."""

    code = "INPUT_ERROR"


class DiscoveryError(ModelsignError):
    """The model package cannot be walked safely (symlinks, special files, names)."""

    code = "DISCOVERY_ERROR"


class FormatError(ModelsignError):
    """A file breaks a rule of its format (safetensors, GGUF, shard index)."""

    code = "FORMAT_ERROR"


class ManifestError(ModelsignError):
    """A manifest cannot be read or does not match its schema."""

    code = "MANIFEST_ERROR"


class SignatureError(ModelsignError):
    """A signature file cannot be written, or read as a signature at all."""

    code = "SIGNATURE_ERROR"


class VerificationError(ModelsignError):
    """Verification failed: the signature, the statement or the model on disk.

    ``findings`` holds every problem found (each with a stable code, the file,
    the tensor, expected and actual digests), not only the first.
    """

    code = "VERIFICATION_FAILED"
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        findings: Sequence[Any] = (),
        code: str | None = None,
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


class ModelsignWarning(UserWarning):
    """Issued when a warn-mode policy lets an unverified load or use through."""

"""Coverage-guided fuzzing of one target with atheris (libFuzzer).

    python -m tests.fuzz.run TARGET CORPUS_DIR -max_total_time=60 -timeout=5

``make fuzz`` runs every target for ``FUZZ_SECONDS`` each. Any exception other
than a ModelsignError is a finding: libFuzzer stops and writes the input as
``crash-*`` (a hang: ``timeout-*``) in the working directory.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports(include=["modelsign"]):
    from modelsign.errors import ModelsignError
    from tests.fuzz.targets import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.run {{{','.join(TARGETS)}}} [libFuzzer args]")
    target = TARGETS[sys.argv.pop(1)]

    def one(data: bytes) -> None:
        # A clear refusal is the expected outcome for bad input; anything else is a finding.
        with contextlib.suppress(ModelsignError):
            target(data)

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""Write the generated seed corpora: ``python -m tests.fuzz.seed_corpus DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.fuzz.targets import write_corpus

if __name__ == "__main__":
    for name, folder in write_corpus(Path(sys.argv[1])).items():
        print(f"{name}: {len(list(folder.iterdir()))} seeds in {folder}")

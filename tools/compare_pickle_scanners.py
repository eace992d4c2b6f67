"""modelsign's pickle analyser beside picklescan and modelscan, on the pickle corpus.

    python tools/compare_pickle_scanners.py [--details] [--keep DIR]

Builds the corpus of ``tests/helpers/pickle_corpus.py`` (malicious files using the
known evasion tricks, real benign checkpoints) in a temporary folder, or in DIR with
``--keep``, runs each scanner on every file and prints a markdown confusion table:
per scanner, malicious files caught (flagged dangerous) or missed, benign files clean
or flagged dangerous (a false positive), and errors. ``--details`` adds a row per
file. The README's "Pickle scanning compared" table is this output.

picklescan runs in-process; modelscan runs as a command (``$MODELSCAN``, else
``.venv-modelscan/bin/modelscan``, which ``make install-test`` creates, else PATH).
A scanner that is not installed is left out, saying so.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
if (ROOT / "modelsign" / "__init__.py").is_file():  # this checkout's modelsign, not another
    sys.path.insert(0, str(ROOT))

from modelsign import __version__  # noqa: E402
from tests.helpers import pickle_scanners as sc  # noqa: E402
from tests.helpers.pickle_corpus import CorpusFile, build_corpus  # noqa: E402

Results = dict[str, dict[str, sc.Result]]  # scanner -> file name -> result


def run_scanners(files: Sequence[CorpusFile], root: Path) -> tuple[Results, list[str]]:
    """Each installed scanner's result on every file, and a note per scanner left out."""
    names = [f.name for f in files]
    results: Results = {
        f"modelsign {__version__}": {f.name: sc.run_modelsign(f.path) for f in files}
    }
    notes: list[str] = []
    if sc.picklescan_available():
        label = f"picklescan {sc.picklescan_version()}"
        results[label] = {f.name: sc.run_picklescan(f.path) for f in files}
    else:
        notes.append("picklescan is not installed (pip install -e '.[test]')")
    if sc.modelscan_command():
        results[f"modelscan {sc.modelscan_version()}"] = sc.run_modelscan(root, names)
    else:
        notes.append("modelscan is not installed (make install-test, or set $MODELSCAN)")
    return results, notes


def _count(files: Sequence[CorpusFile], by: dict[str, sc.Result], kind: str, outcome: str) -> int:
    return sum(1 for f in files if f.kind == kind and by[f.name].outcome == outcome)


def summary_table(files: Sequence[CorpusFile], results: Results) -> str:
    bad = sum(1 for f in files if f.kind == "malicious")
    good = len(files) - bad
    lines = [
        f"| scanner | malicious caught (of {bad}) | missed | error "
        f"| benign clean (of {good}) | false positive | error |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scanner, by in results.items():
        row = [
            _count(files, by, kind, outcome)
            for kind in ("malicious", "benign")
            for outcome in ("dangerous", "clean", "error")
        ]
        caught, missed, m_err, false_pos, clean, b_err = row
        cells = [caught, missed, m_err, clean, false_pos, b_err]
        lines.append(f"| {scanner} | " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def details_table(files: Sequence[CorpusFile], results: Results) -> str:
    scanners = list(results)
    lines = [
        "| file | kind | trick | " + " | ".join(s.split()[0] for s in scanners) + " |",
        "|---|---|---|" + "---|" * len(scanners),
    ]
    for f in files:
        cells = [_cell(f, results[s][f.name]) for s in scanners]
        lines.append(f"| `{f.name}` | {f.kind} | {f.trick} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(f: CorpusFile, result: sc.Result) -> str:
    right = (result.outcome == "dangerous") == (f.kind == "malicious")
    mark = "ok" if right and result.outcome != "error" else "**no**"
    detail = "" if result.detail == result.outcome else f" ({result.detail})"
    return f"{mark}: {result.outcome}{detail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--details", action="store_true", help="add a row per corpus file")
    parser.add_argument("--keep", type=Path, help="build the corpus in this (empty) folder")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        print(_report(args.keep, details=args.details))
    else:
        with tempfile.TemporaryDirectory(prefix="pickle-corpus-") as tmp:
            print(_report(Path(tmp), details=args.details))
    return 0


def _report(root: Path, *, details: bool) -> str:
    files = build_corpus(root)
    results, notes = run_scanners(files, root)
    parts = [summary_table(files, results)]
    parts += [f"\n{note}" for note in notes]
    if details:
        parts.append("\n" + details_table(files, results))
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())

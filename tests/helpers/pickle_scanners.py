"""modelsign, picklescan and modelscan run on the pickle corpus, each reduced to one outcome
per file: ``dangerous``, ``clean`` (anything short of dangerous) or ``error``.

picklescan is called in-process (``picklescan.scanner.scan_file_path``). modelscan
pins ``rich<15`` and ``tomlkit<0.14`` and breaks on NumPy 2, so it lives in a virtual
environment of its own (``make install-test`` creates ``.venv-modelscan``) and runs as
a command, once over the whole corpus folder, with its JSON report.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modelsign.errors import ModelsignError
from tests.helpers.paths import ROOT
from tests.helpers.pickle_corpus import modelsign_verdict

Outcome = Literal["dangerous", "clean", "error"]
MODELSCAN_VENV = ROOT / ".venv-modelscan"


@dataclass(frozen=True)
class Result:
    """One scanner's outcome on one file, a word of detail, and the globals it flagged."""

    outcome: Outcome
    detail: str
    names: frozenset[str] = field(default_factory=frozenset)


def run_modelsign(path: Path) -> Result:
    try:
        verdict, names = modelsign_verdict(path)
    except ModelsignError as exc:
        return Result("error", exc.code.name)
    return Result("dangerous" if verdict == "dangerous" else "clean", verdict, frozenset(names))


def picklescan_available() -> bool:
    return importlib.util.find_spec("picklescan") is not None


def picklescan_version() -> str:
    from importlib.metadata import version

    return version("picklescan")


def run_picklescan(path: Path) -> Result:
    from picklescan.scanner import SafetyLevel, scan_file_path

    logging.getLogger("picklescan").setLevel(logging.CRITICAL)  # it logs every finding
    try:
        result = scan_file_path(str(path))
    except Exception as exc:  # whatever it raises is its error on this file
        return Result("error", type(exc).__name__)
    names = frozenset(
        f"{g.module}.{g.name}" for g in result.globals if g.safety is SafetyLevel.Dangerous
    )
    if result.issues_count:
        return Result("dangerous", "dangerous", names)
    if result.scan_err:
        return Result("error", "scan error")
    return Result("clean", "suspicious" if result.suspicious_count else "innocuous")


def modelscan_command() -> list[str] | None:
    """``$MODELSCAN``, else ``.venv-modelscan/bin/modelscan``, else ``modelscan`` on PATH."""
    if os.environ.get("MODELSCAN"):
        named = shutil.which(os.environ["MODELSCAN"])
        return [named] if named else None
    local = MODELSCAN_VENV / "bin" / "modelscan"
    if local.is_file():
        return [str(local)]
    found = shutil.which("modelscan")
    return [found] if found else None


def modelscan_python() -> str | None:
    """The Python of modelscan's environment (the command's neighbour), if there is one."""
    command = modelscan_command()
    python = Path(command[0]).parent / "python" if command else None
    return str(python) if python and python.is_file() else None


def modelscan_version() -> str:
    command = modelscan_command()
    assert command is not None
    done = subprocess.run([*command, "scan", "--version"], capture_output=True, text=True)
    return done.stdout.strip().split()[-1]


def run_modelscan(root: Path, names: list[str]) -> dict[str, Result]:
    """modelscan over the folder ``root``, once; the outcome of each file ``names`` lists.

    A file is dangerous if an issue's source is it or one of its members, an error if
    an error's source is, else clean ("not scanned" when modelscan skipped it).
    """
    command = modelscan_command()
    assert command is not None, "modelscan is not installed"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        args = ["scan", "-p", str(root), "-r", "json", "-o", str(report)]
        subprocess.run([*command, *args], capture_output=True, cwd=tmp, timeout=600)
        data: dict[str, Any] = json.loads(report.read_text())
    scanned = {_top(s) for s in data["summary"]["scanned"].get("scanned_files", [])}
    issues: dict[str, set[str]] = {}
    for issue in data.get("issues", []):
        name = f"{issue['module']}.{issue['operator']}"
        issues.setdefault(_top(issue["source"]), set()).add(name)
    errors = {_top(e["source"]): e["category"] for e in data.get("errors", []) if "source" in e}
    results: dict[str, Result] = {}
    for name in names:
        if name in issues:
            results[name] = Result("dangerous", "dangerous", frozenset(issues[name]))
        elif name in errors:
            results[name] = Result("error", errors[name])
        else:
            results[name] = Result("clean", "clean" if name in scanned else "not scanned")
    return results


def _top(source: str) -> str:
    """The corpus file a modelscan source names (``file`` or ``file:member``)."""
    return Path(source.split(":", 1)[0]).name


def modelscan_unsafe_globals() -> dict[str, dict[str, Any]]:
    """modelscan's default ``unsafe_globals`` table, read in its own environment."""
    python = modelscan_python()
    assert python is not None
    code = "import json, modelscan.settings as s; "
    code += "print(json.dumps(s.DEFAULT_SETTINGS['unsafe_globals']))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    table: dict[str, dict[str, Any]] = json.loads(done.stdout)
    return table

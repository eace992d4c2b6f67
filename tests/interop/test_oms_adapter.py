"""``tools/oms_cli_adapter.py`` stands in for ``model_signing``'s CLI in an OMS conformance suite.

The same command lines run through ``model_signing`` 1.1.1 and through the adapter
(modelsign underneath), over every model layout of ``oms_cases`` and for a key and a
certificate chain. For each tool, each layout is signed, verified by the tool itself
(after the ignored and unsigned files changed), and verified again after one signed
byte changed (which must fail). Signatures crossing between modelsign and
``model_signing`` are test_interop_oms's subject.
Every check that ``model_signing`` passes, the adapter must pass too; it may pass more.
Commands of one phase run two at a time, across layouts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers import oms
from tests.helpers.oms import Credentials, run_all
from tests.helpers.oms_cases import CASES, Case
from tests.helpers.paths import ROOT
from tests.helpers.pki import build_pki

ADAPTER = ROOT / "tools" / "oms_cli_adapter.py"
TOOLS = ("model_signing", "adapter")

pytestmark = [
    pytest.mark.slow,  # model_signing and modelsign as subprocesses: seconds per case
    pytest.mark.skipif(
        not oms.MODEL_SIGNING.exists(), reason=f"model_signing CLI not found at {oms.MODEL_SIGNING}"
    ),
]


def _as(tool: str, argv: list[str]) -> list[str]:
    """A ``model_signing`` command line, run by ``tool``."""
    return argv if tool == "model_signing" else [sys.executable, str(ADAPTER), *argv[1:]]


def _creds(method: str, folder: Path) -> Credentials:
    if method == "key":
        return Credentials.for_key(*oms.write_ec_key(folder, ec.SECP384R1()))
    return Credentials.for_pki(build_pki(), folder)


class _Signed:
    """One tool's copy of one layout: the model and where its signature goes."""

    def __init__(self, case: Case, parent: Path) -> None:
        self.case = case
        self.model = case.build(parent)
        inside = self.model if not case.single_file else self.model.parent
        self.signature = inside / ("model.sig" if not case.single_file else "weights.bin.sig")

    def ignore_args(self) -> list[str | Path]:
        root = self.model
        return [a for n in self.case.ignored for a in ("--ignore-paths", root / n.rstrip("/"))]


@pytest.mark.parametrize("method", ["key", "certificate"])
def test_adapter_passes_whatever_model_signing_passes(method: str, tmp_path: Path) -> None:
    creds = _creds(method, tmp_path / "creds")
    copies = {(c.name, t): _Signed(c, tmp_path / c.name / t) for c in CASES for t in TOOLS}
    keys = list(copies)

    def sign(k: tuple[str, str]) -> list[str]:
        s = copies[k]
        return _as(k[1], creds.oms_sign(s.model, s.signature, *s.ignore_args()))

    def verify(tool: str, s: _Signed) -> list[str]:
        return _as(tool, creds.oms_verify(s.model, s.signature))

    passed: dict[tuple[str, str, str], bool] = {}  # (layout, check, tool) -> as expected
    for k, proc in zip(keys, run_all([sign(k) for k in keys]), strict=True):
        passed[k[0], "sign", k[1]] = proc.returncode == 0
    for s in copies.values():
        s.case.touch_unsigned(s.model)
    own = run_all([verify(k[1], copies[k]) for k in keys])
    for s in copies.values():
        s.case.do_tamper(s.model)
    tampered = run_all([verify(k[1], copies[k]) for k in keys])
    for i, (layout, tool) in enumerate(keys):
        passed[layout, "verify", tool] = own[i].returncode == 0
        passed[layout, "tampered fails", tool] = tampered[i].returncode == 1

    reference = {k[:2] for k, ok in passed.items() if ok and k[2] == "model_signing"}
    adapter = {k[:2] for k, ok in passed.items() if ok and k[2] == "adapter"}
    assert reference - adapter == set(), _report(keys, own, tampered)
    # The suite is meaningful: model_signing passes all of these layouts.
    assert len(reference) == 3 * len(CASES), sorted(set(passed) - set(reference))
    # Both tools name an ignored path's contents and top-level git files as unsigned.
    for c in CASES:
        for tool in TOOLS:
            names = sorted(oms.resource_names(copies[c.name, tool].signature))
            assert names == c.signed, (c.name, tool)


def _report(
    keys: list[tuple[str, str]], *phases: list[oms.Proc]
) -> str:  # pragma: no cover - only on failure
    lines = []
    for i, k in enumerate(keys):
        for name, procs in zip(("verify", "tampered"), phases, strict=True):
            p = procs[i]
            lines.append(f"{k} {name}: rc={p.returncode} {oms.output(p).strip()[-300:]}")
    return "\n".join(lines)

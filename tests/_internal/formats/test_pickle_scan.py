"""The static pickle analyser, on a corpus built here: real torch and NumPy pickles
(safe) and hand-built malicious opcode streams using the known evasion tricks."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch._weights_only_unpickler import _get_allowed_globals

from modelsign._internal.formats import checkpoint as ckpt
from modelsign._internal.formats import pickle_scan as ps
from modelsign._internal.formats import ziparchive as za
from modelsign._internal.formats.checkpoint import scan_checkpoint_bytes, scan_torch_zip
from modelsign._internal.formats.pickle_allow import ALLOWED, TORCH_ALLOWED, classify, torch_allows
from modelsign._internal.formats.pickle_scan import scan_pickle, scan_pickles
from modelsign.codes import Code
from modelsign.errors import FormatError
from tests.helpers.pickle_payloads import su, write_zip, zip_bytes


def state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    sd = model.state_dict()
    sd["half"] = torch.ones(2, dtype=torch.float16)
    sd["bf16"] = torch.zeros(3, dtype=torch.bfloat16)
    sd["ints"] = torch.arange(5, dtype=torch.int64)
    return sd


def names(scan: ps.PickleScan) -> set[str]:
    return {g.full_name for g in scan.globals}


# -- the allowlist agrees with torch --------------------------------------------------


def test_the_torch_part_of_the_allowlist_is_torchs_weights_only_allowlist() -> None:
    assert set(_get_allowed_globals()) == TORCH_ALLOWED
    assert all(classify(*n.rsplit(".", 1)) == "safe" for n in ALLOWED)


@pytest.mark.parametrize("new_zip", [True, False], ids=["zip", "legacy"])
def test_torch_save_is_safe_and_every_global_loads_weights_only(
    tmp_path: Path, new_zip: bool
) -> None:
    path = tmp_path / "pytorch_model.bin"
    sd = state_dict()
    sd["param"] = torch.nn.Parameter(torch.ones(2))  # type: ignore[assignment]
    torch.save(sd, path, _use_new_zipfile_serialization=new_zip)
    if new_zip:
        scan = scan_torch_zip(path)
    else:
        scan = scan_pickles(path.read_bytes(), where=str(path))
        assert scan.pickles == 5
    assert scan.verdict == "safe", scan.issues
    assert scan.issues == []
    found = names(scan)
    assert {"torch._utils._rebuild_tensor_v2", "collections.OrderedDict"} <= found
    assert found <= set(_get_allowed_globals())  # torch allows each of them
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["ints"], sd["ints"])


@pytest.mark.parametrize("protocol", range(6))
def test_numpy_state_dict_pickles_are_safe_at_every_protocol(protocol: int) -> None:
    d = OrderedDict(w=np.arange(6, dtype=np.float32).reshape(2, 3), s=np.float64(1.5))
    scan = scan_pickle(pickle.dumps(d, protocol=protocol), where="np.pkl")
    assert scan.verdict == "safe", scan.issues
    assert "collections.OrderedDict" in names(scan)


# -- malicious streams -----------------------------------------------------------------


def dangerous(scan: ps.PickleScan, full_name: str) -> ps.PickleGlobal:
    assert scan.verdict == "dangerous"
    hits = [g for g in scan.globals if g.full_name == full_name]
    assert hits and hits[0].classification == "dangerous"
    issues = [i for i in scan.issues if i.actual == full_name]
    assert issues and issues[0].code is Code.PICKLE_DANGEROUS_GLOBAL
    assert issues[0].file == scan.where and f"byte {hits[0].offset}" in issues[0].message
    return hits[0]


def test_protocol_0_global_os_system_reduce() -> None:
    data = b"cos\nsystem\n(S'echo pwned'\ntR."
    g = dangerous(scan_pickle(data, where="evil.pkl"), "os.system")
    assert (g.opcode, g.offset) == ("GLOBAL", 0)


def test_real_reduce_pickle_of_posix_system() -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return os.system, ("true",)

    for protocol in range(6):
        scan = scan_pickle(pickle.dumps(Evil(), protocol=protocol), where="e")
        assert scan.verdict == "dangerous"
        assert names(scan) & {"posix.system", "os.system", "nt.system"}


def test_stack_global_with_memoized_strings_fetched_by_binget() -> None:
    data = (
        b"\x80\x04"
        + su("os") + b"q\x00"  # BINPUT 0
        + su("system") + b"q\x01"
        + b"0" + b"0"  # POP both
        + b"h\x00h\x01"  # BINGET 0, BINGET 1
        + b"\x93" + su("id") + b"\x85R."
    )  # fmt: skip
    g = dangerous(scan_pickle(data, where="m"), "os.system")
    assert g.opcode == "STACK_GLOBAL"


def test_stack_global_with_memoize_and_long_binget() -> None:
    data = b"\x80\x04" + su("subprocess") + b"\x94" + su("Popen") + b"\x94"
    data += b"00j\x00\x00\x00\x00j\x01\x00\x00\x00\x93)R."
    dangerous(scan_pickle(data, where="m"), "subprocess.Popen")


def test_computed_stack_global_operand_is_an_unknown_dangerous_global() -> None:
    # The module name is the result of a call: only known at load time.
    data = b"\x80\x04" + su("builtins") + su("str") + b"\x93)R" + su("system") + b"\x93)R."
    scan = scan_pickle(data, where="c")
    assert scan.verdict == "dangerous"
    assert "<unknown>.<computed>" in names(scan)


def test_numpy_object_array_holding_a_malicious_object() -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return eval, ("1",)

    arr = np.array([Evil(), 1], dtype=object)
    for protocol in (2, 5):
        scan = scan_pickle(pickle.dumps({"w": arr}, protocol=protocol), where="obj.pkl")
        dangerous(scan, "__builtin__.eval" if protocol < 3 else "builtins.eval")


def test_builtins_getattr_chain() -> None:
    data = (
        b"\x80\x04" + su("builtins") + su("getattr") + b"\x93"
        + su("builtins") + su("__import__") + b"\x93" + su("os") + b"\x85R"
        + su("system") + b"\x86R" + su("id") + b"\x85R."
    )  # fmt: skip
    scan = scan_pickle(data, where="g")
    dangerous(scan, "builtins.getattr")
    dangerous(scan, "builtins.__import__")


def test_protocol_2_builtin_names_are_mapped() -> None:
    scan = scan_pickle(b"c__builtin__\neval\n(S'1'\ntR.", where="p")
    dangerous(scan, "__builtin__.eval")


def test_inst_subprocess_popen() -> None:
    data = b"(S'id'\nisubprocess\nPopen\n."
    g = dangerous(scan_pickle(data, where="i"), "subprocess.Popen")
    assert (g.opcode, g.offset) == ("INST", 7)


def test_obj_newobj_and_build_keep_the_globals() -> None:
    data = b"\x80\x02(cos\nsystem\nS'x'\no" + b"ctorch\nSize\n)\x81}b."
    scan = scan_pickle(data, where="o")
    dangerous(scan, "os.system")
    assert "torch.Size" in names(scan)


def test_indirection_through_an_allowed_module_is_dangerous() -> None:
    data = b"\x80\x04" + su("torch") + su("os.system") + b"\x93)R."
    dangerous(scan_pickle(data, where="t"), "torch.os.system")


@pytest.mark.parametrize(
    "ext", [b"\x82\x01", b"\x83\x01\x00", b"\x84\x01\x00\x00\x00"], ids=["1", "2", "4"]
)
def test_ext_opcodes_are_dangerous(ext: bytes) -> None:
    scan = scan_pickle(b"\x80\x02" + ext + b")R.", where="x")
    assert scan.verdict == "dangerous"
    assert scan.globals[0].module == "<extension>"


def test_unknown_global_is_reported_as_unknown() -> None:
    scan = scan_pickle(b"cmypkg.models\nNet\n)R.", where="u")
    assert scan.verdict == "unknown"
    assert [i.code for i in scan.issues] == [Code.PICKLE_UNKNOWN_GLOBAL]
    assert scan.issues[0].actual == "mypkg.models.Net"


def test_torch_load_from_bytes_is_unknown_not_safe() -> None:
    scan = scan_pickle(b"ctorch.storage\n_load_from_bytes\n(C\x01xtR.", where="s")
    assert scan.verdict == "unknown"


def test_several_pickles_in_a_row_are_all_walked() -> None:
    data = pickle.dumps(1) + pickle.dumps({"a": 2}) + b"cos\nsystem\n."
    scan = scan_pickles(data, where="row")
    assert scan.pickles == 3
    assert dangerous(scan, "os.system").offset == len(pickle.dumps(1) + pickle.dumps({"a": 2}))


# -- ZIP checkpoints -------------------------------------------------------------------


@pytest.mark.parametrize("deflate", [False, True], ids=["stored", "deflated"])
def test_malicious_pickle_in_a_zip_under_a_misleading_name(tmp_path: Path, deflate: bool) -> None:
    path = tmp_path / "weights.bin"
    evil = b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R."
    write_zip(path, {"archive/data.pkl": evil, "archive/version": b"3\n"}, deflate=deflate)
    scan = scan_torch_zip(path)
    g = dangerous(scan, "posix.system")
    assert g.offset == 2
    assert scan.where == str(path)
    assert scan.issues[0].file == str(path)
    assert f"{path}:archive/data.pkl: pickle imports dangerous" in scan.issues[0].message


def test_every_pkl_member_is_walked(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    buf = io.BytesIO()
    torch.save(state_dict(), buf)
    with zipfile.ZipFile(buf) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["extra/other.pkl"] = b"cbuiltins\nexec\n(S'x'\ntR."
    write_zip(path, members)
    scan = scan_torch_zip(path)
    assert scan.pickles == 2
    dangerous(scan, "builtins.exec")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_archive_counts_as_code(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    scan = scan_torch_zip(path)
    assert scan.verdict == "dangerous"
    assert Code.PICKLE_TORCHSCRIPT in [i.code for i in scan.issues]


def test_a_zip_that_is_not_strictly_readable_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    write_zip(path, {"a/data.pkl": pickle.dumps(1)})
    path.write_bytes(b"junk" + path.read_bytes())  # a polyglot prefix
    with pytest.raises(FormatError) as exc:
        scan_torch_zip(path)
    assert exc.value.code is Code.ZIP_EXTRA_DATA


# -- checkpoints in memory (what a loader is handed) ------------------------------------


@pytest.mark.parametrize("new_zip", [True, False], ids=["zip", "legacy"])
def test_checkpoint_bytes_are_analysed_as_the_file_is(tmp_path: Path, new_zip: bool) -> None:
    path = tmp_path / "pytorch_model.bin"
    torch.save(state_dict(), path, _use_new_zipfile_serialization=new_zip)
    data = path.read_bytes()
    on_disk = scan_torch_zip(path) if new_zip else scan_pickles(data, where=str(path))
    as_bytes = scan_checkpoint_bytes(data, where=str(path))
    as_view = scan_checkpoint_bytes(memoryview(np.frombuffer(data, np.uint8)), where=str(path))
    for scan in (as_bytes, as_view):
        assert (scan.verdict, scan.pickles) == ("safe", on_disk.pickles)
        assert [(g.full_name, g.offset) for g in scan.globals] == [
            (g.full_name, g.offset) for g in on_disk.globals
        ]


def test_checkpoint_bytes_of_a_raw_pickle() -> None:
    scan = scan_checkpoint_bytes(pickle.dumps(1) + b"cos\nsystem\n.", where="raw.pkl")
    assert scan.pickles == 2
    dangerous(scan, "os.system")


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
def test_checkpoint_bytes_are_read_as_strictly_as_a_file() -> None:
    """A name listed twice: readers disagree on which entry is the pickle, so it is refused."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", b"cos\nsystem\n.")  # the entry one reader takes
        zf.writestr("archive/data.pkl", pickle.dumps({"a": 1}, protocol=2))  # another's
    with pytest.raises(FormatError) as exc:
        scan_checkpoint_bytes(buf.getvalue(), where="dup.bin")
    assert exc.value.code is Code.ZIP_DUPLICATE_NAME
    assert "dup.bin" in str(exc.value)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_checkpoint_bytes_of_torchscript_and_of_a_broken_zip() -> None:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)
    scan = scan_checkpoint_bytes(buf.getvalue(), where="s.pt")
    assert scan.torchscript and scan.verdict == "dangerous"
    with pytest.raises(FormatError) as exc:
        scan_checkpoint_bytes(b"PK\x03\x04" + bytes(60), where="b.bin")
    assert exc.value.code is Code.ZIP_EXTRA_DATA  # no end of central directory at the end


def test_python_2_names_are_judged_as_what_python_3_imports() -> None:
    """torch.save writes protocol 2: builtins under their Python 2 module name."""
    assert classify("__builtin__", "set") == "safe"
    assert classify("__builtin__", "bytearray") == "safe"
    assert classify("__builtin__", "eval") == "dangerous"
    assert classify("copy_reg", "_reconstructor") == "unknown"
    assert torch_allows("__builtin__", "set") and torch_allows("torch._utils", "_rebuild_tensor_v2")
    assert not torch_allows("numpy.core.multiarray", "_reconstruct")  # torch leaves it to users
    assert not torch_allows("__builtin__", "frozenset")


# -- bad and hostile input -------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [pickle.dumps({"a": [1, 2, 3]}, protocol=4)[:-5], b"cos\nsys", b"\x80\x04\x8c\x10ab"],
)
def test_truncated_stream_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(FormatError) as exc:
        scan_pickle(data, where="cut.pkl")
    assert exc.value.code is Code.PICKLE_TRUNCATED
    assert "cut.pkl" in str(exc.value)


@pytest.mark.parametrize(
    "data", [b"\x80\x04\xff.", b"0.", b"\x80\x02e.", b"(q\x00.", b"\x80\x02)." + b"x"]
)
def test_malformed_stream_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(FormatError) as exc:
        scan_pickle(data, where="bad.pkl")
    assert exc.value.code is Code.PICKLE_MALFORMED


def test_oversized_stream_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ps, "MAX_PICKLE_BYTES", 100)
    data = pickle.dumps(b"x" * 200)
    with pytest.raises(FormatError) as exc:
        scan_pickle(data, where="big")
    assert exc.value.code is Code.PICKLE_TOO_LARGE
    with pytest.raises(FormatError) as exc:
        scan_pickles(pickle.dumps(1) + data, where="big")
    assert exc.value.code is Code.PICKLE_TOO_LARGE


def test_deep_stream_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ps, "MAX_STACK", 1000)
    with pytest.raises(FormatError) as exc:
        scan_pickle(b"(" * 5000 + b".", where="deep")
    assert exc.value.code is Code.PICKLE_TOO_DEEP
    memo = b"\x80\x04N" + b"".join(b"r" + struct.pack("<I", i) for i in range(2000)) + b"."
    with pytest.raises(FormatError) as exc:
        scan_pickle(memo, where="memo")
    assert exc.value.code is Code.PICKLE_TOO_DEEP


def test_too_many_opcodes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ps, "MAX_OPCODES", 100)
    with pytest.raises(FormatError) as exc:
        scan_pickle(b"N0" * 100 + b"N.", where="many")
    assert exc.value.code is Code.PICKLE_TOO_LARGE


def test_legacy_storage_bytes_after_the_pickles_are_not_walked_or_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ps, "MAX_PICKLE_BYTES", 4096)
    path = tmp_path / "legacy.pt"
    torch.save({"big": torch.ones(10_000)}, path, _use_new_zipfile_serialization=False)
    assert path.stat().st_size > 40_000
    scan = scan_pickles(memoryview(path.read_bytes()), where=str(path))
    assert (scan.pickles, scan.verdict) == (5, "safe")


# -- what picklescan and modelscan block -----------------------------------------------


@pytest.mark.parametrize(
    "full_name",
    [
        "pkgutil.resolve_name",
        "pydoc.locate",
        "cProfile.run",
        "profile.runctx",
        "trace.Trace.run",
        "logging.FileHandler",
        "_operator.attrgetter",
        "operator.itemgetter",
        "numpy.testing._private.utils.runstring",
        "numpy.f2py.crackfortran.getlincoef",
        "torch.serialization.load",
        "torch.utils.bottleneck.__main__.run_cprofile",
        "torch._inductor.codecache.compile_file",
        "builtins.apply",
        "uuid._get_command_stdout",
        "aiohttp.client.request",
        "ensurepip._run_pip",
    ],
)
def test_globals_other_scanners_block_are_dangerous(full_name: str) -> None:
    module, name = full_name.rsplit(".", 1)
    assert classify(module, name) == "dangerous"
    data = b"\x80\x04" + su(module) + su(name) + b"\x93)R."
    dangerous(scan_pickle(data, where="s"), full_name)


def test_neighbours_of_the_new_dangerous_names_stay_unknown_or_safe() -> None:
    assert classify("logging", "getLogger") == "unknown"
    assert classify("numpy", "ndarray") == "safe"
    assert classify("_operator", "add") == "unknown"


# -- ZIP members chosen by content -----------------------------------------------------


EVIL = b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R."


def zip_members(tmp_path: Path, members: dict[str, bytes], name: str = "m.pt") -> Path:
    path = tmp_path / name
    write_zip(path, {"archive/data.pkl": pickle.dumps({"a": 1}, protocol=2), **members})
    return path


@pytest.mark.parametrize(
    "member, data",
    [
        ("archive/extra/state", EVIL),  # pickle magic, any name
        ("archive/data.pickle", EVIL),
        ("archive/extra.pt", b"cposix\nsystem\n(S'id'\ntR."),  # protocol 0 under a torch name
        ("archive/data/0", EVIL),  # a well-formed pickle as a storage record
    ],
)
def test_a_member_that_holds_a_pickle_is_walked_whatever_its_name(
    tmp_path: Path, member: str, data: bytes
) -> None:
    scan = scan_torch_zip(zip_members(tmp_path, {member: data}))
    assert scan.pickles == 2
    dangerous(scan, "posix.system")
    assert any(f":{member}: pickle imports dangerous" in i.message for i in scan.issues)


@pytest.mark.parametrize(
    "head", [b"\x80\x02\xff\xff", b"PK\x03\x04junk", b"\x93NUMPYjunk", b"\x80\x05K"]
)
def test_a_storage_record_that_merely_starts_like_a_pickle_is_data(
    tmp_path: Path, head: bytes
) -> None:
    scan = scan_torch_zip(zip_members(tmp_path, {"archive/data/7": head + bytes(64)}))
    assert (scan.pickles, scan.verdict, scan.issues) == (1, "safe", [])


def test_a_malformed_pickle_member_outside_the_storage_records_is_an_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(FormatError) as exc:
        scan_torch_zip(zip_members(tmp_path, {"archive/extra": b"\x80\x02\xff.."}))
    assert exc.value.code is Code.PICKLE_MALFORMED
    assert "archive/extra" in str(exc.value)


def test_a_member_neither_pickle_nor_archive_is_not_read(tmp_path: Path) -> None:
    scan = scan_torch_zip(zip_members(tmp_path, {"archive/version": b"3\n", "a/b": b"text"}))
    assert (scan.pickles, scan.verdict) == (1, "safe")


def nest(inner: bytes, levels: int) -> bytes:
    for _ in range(levels):
        inner = zip_bytes({"inner.pt": inner})
    return inner


def test_a_zip_inside_a_zip_is_walked(tmp_path: Path) -> None:
    path = tmp_path / "outer.zip"
    path.write_bytes(nest(nest(EVIL, 1), ckpt.MAX_ZIP_DEPTH))
    scan = scan_torch_zip(path)
    dangerous(scan, "posix.system")
    assert f"{path}:inner.pt:inner.pt:inner.pt: pickle imports" in scan.issues[0].message


def test_zips_nested_past_the_limit_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.zip"
    path.write_bytes(nest(nest(EVIL, 1), ckpt.MAX_ZIP_DEPTH + 1))
    with pytest.raises(FormatError) as exc:
        scan_torch_zip(path)
    assert exc.value.code is Code.PICKLE_TOO_DEEP


def test_a_nested_zip_that_is_not_strictly_readable_is_refused(tmp_path: Path) -> None:
    path = zip_members(tmp_path, {"archive/extra.pt": b"PK\x03\x04" + nest(EVIL, 1)})
    with pytest.raises(FormatError) as exc:
        scan_torch_zip(path)
    assert exc.value.code.startswith("ZIP_")
    assert "archive/extra.pt" in str(exc.value)


def test_a_torchscript_archive_inside_a_zip_counts_as_code(tmp_path: Path) -> None:
    code = b"def forward(self): ...\n"
    inner = zip_bytes({"m/code/__torch__.py": code, "m/data.pkl": pickle.dumps(1, protocol=2)})
    scan = scan_torch_zip(zip_members(tmp_path, {"archive/extra.pt": inner}))
    assert scan.verdict == "dangerous"
    assert [i.code for i in scan.issues] == [Code.PICKLE_TORCHSCRIPT]


# -- NumPy arrays ----------------------------------------------------------------------


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return eval, ("1",)


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def test_npz_object_member_is_walked(tmp_path: Path) -> None:
    path = tmp_path / "arrays.npz"
    np.savez(path, w=np.ones(2), obj=np.array([Evil()], dtype=object))
    scan = scan_torch_zip(path)
    dangerous(scan, "builtins.eval")
    assert any("arrays.npz:obj.npy: pickle imports" in i.message for i in scan.issues)


# -- legacy torch files ----------------------------------------------------------------


def test_legacy_torch_file_at_protocol_4_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "legacy4.pt"
    torch.save(state_dict(), path, _use_new_zipfile_serialization=False, pickle_protocol=4)
    scan = scan_pickles(path.read_bytes(), where=str(path))
    assert (scan.pickles, scan.verdict) == (5, "safe")


def test_legacy_file_computing_its_magic_is_dangerous_and_its_storage_is_not_walked() -> None:
    magic = b"\x80\x02c__builtin__\neval\nX\x16\x00\x00\x000x1950a86a20f9469cfc6c\x85R."
    values: list[object] = [1001, {"little_endian": True}, {}, []]
    rest = [pickle.dumps(x, protocol=2) for x in values]
    data = magic + b"".join(rest) + b"\xff\xfe storage bytes"
    scan = scan_pickles(data, where="fake.pt")
    assert scan.pickles == 5
    dangerous(scan, "__builtin__.eval")


def test_a_raw_stream_whose_second_pickle_is_1001_is_walked_to_its_end() -> None:
    data = pickle.dumps(1) + pickle.dumps(1001) + b"cos\nsystem\n."
    scan = scan_pickles(data, where="row")
    assert scan.pickles == 3
    dangerous(scan, "os.system")


def test_npz_arrays_are_read_no_further_than_their_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(za, "MAX_MEMBER_BYTES", 1000)
    path = tmp_path / "big.npz"
    np.savez(path, w=np.zeros(10_000, np.float32))
    assert (scan_torch_zip(path).pickles, scan_torch_zip(path).verdict) == (0, "safe")
    np.savez(path, obj=np.array([str(i) for i in range(1000)], dtype=object))
    with pytest.raises(FormatError) as exc:
        scan_torch_zip(path)
    assert exc.value.code is Code.PICKLE_TOO_LARGE


def test_an_encrypted_member_is_an_unreadable_zip(tmp_path: Path) -> None:
    path = zip_members(tmp_path, {"archive/data/0": b"\x00" * 8})
    raw = bytearray(path.read_bytes())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general purpose flags
        at = raw.find(sig)
        while at >= 0:
            raw[at + flag_at] |= 1  # encrypted
            at = raw.find(sig, at + 4)
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError) as exc:
        scan_torch_zip(path)
    assert exc.value.code is Code.ZIP_ENCRYPTED

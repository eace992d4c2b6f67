"""The guard's ``torch.load`` under the formats rule's pickle setting.

``safe-state-dicts``: the guard analyses the verified bytes it hands torch —
not the path, not the manifest's flag — and has torch unpickle them
weights-only, whatever the caller asked. ``allow``: the caller decides. Lists
that allow pickle without the setting: as before, but weights-only. And the
allowlist agrees with torch's weights-only unpickler, both ways.

Manifests are made as the manifest contract says (``tests.helpers.pickles``);
``claim_safe`` signs a manifest that calls every pickle safe, as a compromised
signer's might.
"""

from __future__ import annotations

import argparse
import collections
import io
import pickle
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.serialization

from modelsign import guard
from modelsign._internal.hashing import files
from modelsign.errors import InputError, VerificationError
from modelsign.guard import _checks, _state
from modelsign.load import ModelsignWarning
from tests.helpers.pickle_payloads import zip_bytes
from tests.helpers.pickles import (
    WEIGHTS,
    dangerous_checkpoint,
    rewritten_builder,
    safe_checkpoint,
    saved,
    torchscript_archive,
    unknown_checkpoint,
)
from tests.helpers.signing import KeyPair
from tests.test_guard import sign, write_policy

BIN = "pytorch_model.bin"
# torch's own notices while loading quantized and legacy checkpoints
pytestmark = pytest.mark.filterwarnings("ignore:TypedStorage is deprecated:UserWarning")


def signed_checkpoint(
    folder: Path, data: bytes, keypair: KeyPair, *, claim_safe: bool = False
) -> Path:
    """A signed folder holding ``data`` as pytorch_model.bin; the checkpoint's path."""
    folder.mkdir()
    (folder / BIN).write_bytes(data)
    if claim_safe:
        with rewritten_builder("claim-safe"):
            sign(folder, keypair)
    else:
        sign(folder, keypair)
    return folder / BIN


@pytest.fixture
def install(tmp_path: Path, keypair: KeyPair) -> Iterator[Any]:
    """``install(formats=..., mode=...)``: the guard under a policy with that formats rule."""

    def _install(mode: str = "enforce", **formats: Any) -> None:
        guard.install(policy=write_policy(tmp_path, keypair, mode=mode, formats=formats))

    yield _install
    guard.uninstall()


class TorchCalls:
    """What the guard handed the original ``torch.load``: the bytes and the keyword arguments."""

    def __init__(self, install: Any, mp: pytest.MonkeyPatch) -> None:
        self._install, self._mp = install, mp
        self.original: Any = None
        self.calls: list[tuple[bytes, dict[str, Any]]] = []

    def install(self, mode: str = "enforce", **formats: Any) -> None:
        """Install the guard, then spy on the original it calls."""
        self._install(mode, **formats)
        self.original = _state.ORIGINAL["torch.load"]
        self._mp.setitem(_state.ORIGINAL, "torch.load", self)

    def __call__(self, f: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(f, io.BytesIO):
            self.calls.append((f.getvalue(), dict(kwargs)))
        return self.original(f, *args, **kwargs)


@pytest.fixture
def torch_calls(install: Any) -> Iterator[TorchCalls]:
    """A spy on the original ``torch.load``, undone before ``install`` uninstalls."""
    with pytest.MonkeyPatch.context() as mp:
        yield TorchCalls(install, mp)


# -- safe-state-dicts -----------------------------------------------------------------


def test_a_safe_state_dict_is_analysed_and_loaded_weights_only(
    tmp_path: Path, keypair: KeyPair, torch_calls: TorchCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = signed_checkpoint(tmp_path / "ckpt", safe_checkpoint(), keypair)
    analysed: list[bytes] = []
    real_scan = _checks.scan_checkpoint_bytes

    def scan_spy(data: bytes, *, where: str) -> Any:
        analysed.append(data)
        return real_scan(data, where=where)

    monkeypatch.setattr(_checks, "scan_checkpoint_bytes", scan_spy)
    torch_calls.install(pickle="safe-state-dicts")
    for weights_only in (False, True, None):  # False is overridden: the file is a state dict
        kw = {} if weights_only is None else {"weights_only": weights_only}
        loaded = torch.load(path, **kw)
        assert all(torch.equal(loaded[k], WEIGHTS[k]) for k in WEIGHTS)
    signed = path.read_bytes()
    assert analysed == [signed] * 3  # the verified bytes, analysed ...
    assert [d for d, _ in torch_calls.calls] == analysed  # ... are the bytes torch read
    assert [kw["weights_only"] for _, kw in torch_calls.calls] == [True] * 3


def test_a_legacy_format_state_dict_loads(tmp_path: Path, keypair: KeyPair, install: Any) -> None:
    path = signed_checkpoint(tmp_path / "ckpt", saved(WEIGHTS, zip_format=False), keypair)
    install(pickle="safe-state-dicts")
    assert torch.equal(torch.load(path)["beta"], WEIGHTS["beta"])


def test_the_guard_analyses_the_bytes_not_the_manifests_word(
    tmp_path: Path, keypair: KeyPair, install: Any
) -> None:
    """The signed manifest calls the pickle safe; its bytes import os.makedirs."""
    marker = tmp_path / "marker"
    path = signed_checkpoint(
        tmp_path / "ckpt", dangerous_checkpoint(marker), keypair, claim_safe=True
    )
    install(pickle="safe-state-dicts")
    from torch.serialization import load as bound_before

    for call in (torch.load, bound_before):
        with pytest.raises(VerificationError) as e:
            call(path, weights_only=False)
        assert e.value.code == "POLICY_FAILED"
        assert e.value.message == (
            f"torch.load({path}): refused by policy rule formats: {BIN}: not a safe state "
            "dict: imports dangerous global os.makedirs"
        )
    assert not marker.exists()


def zip_holding(pkl: bytes) -> bytes:
    """A ZIP checkpoint (strictly readable) whose data.pkl is ``pkl``."""
    return zip_bytes({"archive/data.pkl": pkl, "archive/version": b"3\n"})


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (unknown_checkpoint, r"imports unknown global argparse\.Namespace"),
        (torchscript_archive, r"a TorchScript archive \(holds code\)"),
        (
            lambda: saved({"a": np.arange(3)}),
            r"imports numpy\._?core\.multiarray\._reconstruct, "
            r"outside torch's weights-only allowlist",
        ),
        (
            lambda: zip_holding(b"\x80\x02\x93."),  # STACK_GLOBAL on an empty stack
            r"cannot be analysed: archive/data\.pkl: stack underflow at byte 2",
        ),
        (
            lambda: zip_holding(pickle.dumps(collections.OrderedDict(), protocol=4)),
            r"imports collections\.OrderedDict by STACK_GLOBAL, "
            r"an opcode torch's unpickler refuses",
        ),
        (lambda: b"not a pickle", r"cannot be analysed: malformed pickle near byte 1: .*"),
        (
            lambda: zip_holding(b""),
            r"cannot be analysed: the checkpoint pickle cannot be followed: "
            r"pickle exhausted before seeing STOP",
        ),
    ],
    ids=["unknown", "torchscript", "numpy", "malformed", "stack-global", "not-a-pickle", "empty"],
)
def test_what_is_no_safe_state_dict_is_refused(
    tmp_path: Path, keypair: KeyPair, install: Any, make: Any, why: str
) -> None:
    with pytest.MonkeyPatch.context() as mp:  # signed by a tool that did not parse it
        mp.setattr(files, "examine_pickles", lambda *a: None)
        path = signed_checkpoint(tmp_path / "ckpt", make(), keypair, claim_safe=True)
    install(pickle="safe-state-dicts")
    with pytest.raises(VerificationError) as e:
        torch.load(path)
    prefix = f"torch.load({path}): refused by policy rule formats: {BIN}: not a safe state dict: "
    assert e.value.message.startswith(prefix), e.value.message
    assert re.fullmatch(why, e.value.message.removeprefix(prefix)), e.value.message


def test_the_signed_manifest_must_flag_it_too(
    tmp_path: Path, keypair: KeyPair, install: Any
) -> None:
    """The policy judges the signed manifest first: a pickle it does not flag is refused."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / BIN).write_bytes(unknown_checkpoint())
    sign(folder, keypair)
    install(pickle="safe-state-dicts")
    with pytest.raises(VerificationError) as e:
        torch.load(folder / BIN)
    assert e.value.code == "POLICY_FAILED"
    assert re.fullmatch(
        rf"torch\.load\(.*\): refused by policy rule formats \({BIN}: not a safe state dict: "
        r"archive/data\.pkl: pickle imports unknown global argparse\.Namespace "
        r"\(GLOBAL at byte \d+\)\) \(POLICY_FORMATS\)",
        e.value.message,
    ), e.value.message


def test_a_pickle_module_cannot_be_honoured(tmp_path: Path, keypair: KeyPair, install: Any) -> None:
    path = signed_checkpoint(tmp_path / "ckpt", safe_checkpoint(), keypair)
    install(pickle="safe-state-dicts")
    for call in (
        lambda: torch.load(path, None, pickle),
        lambda: torch.load(path, pickle_module=pickle),
    ):
        with pytest.raises(InputError, match="pickle_module") as e:
            call()
        assert e.value.code == "USAGE"


def test_a_reference_bound_before_install_cannot_be_made_weights_only(
    tmp_path: Path, keypair: KeyPair, install: Any
) -> None:
    from torch.serialization import load as bound_before

    path = signed_checkpoint(tmp_path / "ckpt", safe_checkpoint(), keypair)
    install(pickle="safe-state-dicts")
    assert torch.equal(bound_before(path, weights_only=True)["alpha"], WEIGHTS["alpha"])
    with pytest.raises(InputError, match="weights_only=False") as e:
        bound_before(path, weights_only=False)
    assert e.value.code == "USAGE"


def test_deny_refuses_before_reading(tmp_path: Path, keypair: KeyPair, install: Any) -> None:
    path = signed_checkpoint(tmp_path / "ckpt", safe_checkpoint(), keypair)
    install(pickle="deny")
    with pytest.raises(VerificationError, match="format pickle is denied") as e:
        torch.load(path)
    assert e.value.code == "POLICY_FAILED"


# -- allow, and lists that allow pickle -------------------------------------------------


def test_allow_leaves_the_unpickler_to_the_caller(
    tmp_path: Path, keypair: KeyPair, torch_calls: TorchCalls
) -> None:
    """``pickle: allow`` means it: the caller's weights_only=False unpickles in full."""
    marker = tmp_path / "marker"
    path = signed_checkpoint(tmp_path / "ckpt", dangerous_checkpoint(marker), keypair)
    torch_calls.install(pickle="allow")
    torch.load(path, weights_only=False)
    assert marker.is_dir()  # what allow allows
    assert torch_calls.calls[-1][1]["weights_only"] is False


def test_lists_that_allow_pickle_still_load_weights_only(
    tmp_path: Path, keypair: KeyPair, install: Any
) -> None:
    marker = tmp_path / "marker"
    path = signed_checkpoint(tmp_path / "ckpt", dangerous_checkpoint(marker), keypair)
    install(deny=[])  # pickle allowed by the lists, as before the setting existed
    with pytest.raises(VerificationError) as e:
        torch.load(path, weights_only=False)
    assert e.value.code == "POLICY_FAILED"
    assert "weights-only unpickler refused it" in e.value.message
    assert "formats.pickle: allow" in e.value.message
    assert isinstance(e.value.__cause__, pickle.UnpicklingError)
    with pytest.raises(pickle.UnpicklingError):  # asked for weights-only: torch's own error
        torch.load(path)
    assert not marker.exists()
    safe = signed_checkpoint(tmp_path / "safe", safe_checkpoint(), keypair)
    assert torch.equal(torch.load(safe, weights_only=False)["beta"], WEIGHTS["beta"])


def test_a_warn_mode_rule_warns_and_leaves_weights_only_to_the_caller(
    tmp_path: Path, keypair: KeyPair, torch_calls: TorchCalls
) -> None:
    path = signed_checkpoint(tmp_path / "ckpt", unknown_checkpoint(), keypair)
    torch_calls.install(mode="warn", pickle="safe-state-dicts")
    warned = pytest.warns(ModelsignWarning, match=r"argparse\.Namespace")
    with warned, pytest.raises(pickle.UnpicklingError):  # torch's default: weights-only
        torch.load(path)
    with pytest.warns(ModelsignWarning, match=r"argparse\.Namespace"):
        loaded = torch.load(path, weights_only=False)  # warn mode blocks nothing
    assert loaded["args"].lr == 0.1
    assert torch_calls.calls[-1][1]["weights_only"] is False


# -- the allowlist agrees with torch's weights-only unpickler ----------------------------


def _benign() -> dict[str, Any]:
    """Plain state dicts of every kind torch's weights-only unpickler loads."""
    layers = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    dtypes = (torch.float16, torch.bfloat16, torch.int8, torch.bool, torch.complex64)
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1, momentum=0.9)
    with warnings.catch_warnings():  # quantized tensors are deprecated, sparse CSR is beta
        warnings.simplefilter("ignore", UserWarning)
        quantized = torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8)
        sparse = {"coo": torch.ones(2, 2).to_sparse(), "csr": torch.ones(2, 2).to_sparse_csr()}
    return {
        "tensors": WEIGHTS,
        "module-state-dict": layers.state_dict(),
        "parameter": {"p": torch.nn.Parameter(torch.ones(2))},
        "dtypes": {str(d): torch.ones(2, dtype=d) for d in dtypes},
        "views-and-sharing": {"a": torch.arange(10)[2:5], "b": [torch.ones(3)] * 2},
        "python-values": {"s": "x", "i": 1, "f": 1.5, "l": [1], "t": (1, None, True), "b": b"x"},
        "builtins-by-py2-name": {"set": {1, 2}, "complex": 1 + 2j, "bytearray": bytearray(b"x")},
        "collections": {"od": collections.OrderedDict(a=1), "counter": collections.Counter("ab")},
        "torch-objects": {"size": torch.Size([2]), "device": torch.device("cpu"), "dt": torch.half},
        "quantized": {"q": quantized},
        "sparse": sparse,
        "meta": {"m": torch.empty(2, device="meta")},
        "optimizer-state": sgd.state_dict(),
    }


BENIGN = _benign()
OUTSIDE: dict[str, Any] = {
    "argparse.Namespace": {"args": argparse.Namespace(lr=0.1)},
    "a whole module": {"model": torch.nn.Linear(2, 2)},
    "frozenset": {"fs": frozenset([1])},
    "slice": {"sl": slice(1, 2)},
    "numpy array": {"a": np.arange(3)},
    "deque": {"d": collections.deque([1])},
}


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("name", sorted(BENIGN))
def test_a_state_dict_the_analyser_calls_safe_loads_weights_only(
    name: str, zip_format: bool
) -> None:
    data = saved(BENIGN[name], zip_format=zip_format)
    assert _checks._not_a_safe_state_dict(data, BIN) is None
    torch.load(io.BytesIO(data), weights_only=True)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("name", sorted(OUTSIDE))
def test_a_global_outside_the_allowlist_is_refused_by_both(name: str, zip_format: bool) -> None:
    data = saved(OUTSIDE[name], zip_format=zip_format)
    assert _checks._not_a_safe_state_dict(data, BIN) is not None
    with pytest.raises(pickle.UnpicklingError):
        torch.load(io.BytesIO(data), weights_only=True)


def test_a_dangerous_pickle_is_refused_by_both(tmp_path: Path) -> None:
    data = dangerous_checkpoint(tmp_path / "marker")
    assert _checks._not_a_safe_state_dict(data, BIN) == "imports dangerous global os.makedirs"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(io.BytesIO(data), weights_only=True)
    assert not (tmp_path / "marker").exists()

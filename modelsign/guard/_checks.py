"""What the guard checks: sessions of verified folders, and the verified bytes of a file.

A ``from_pretrained`` call whose folder is verified is a *session* (per
thread): files are checked before transformers runs, weights as they are
opened, and the rest re-checked when the call returns. Outside a session a
weight file is verified on its own when it is opened.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from .._internal.check.compare import Problem
from .._internal.formats.checkpoint import scan_checkpoint_bytes
from .._internal.formats.pickle_allow import torch_allows
from ..codes import Code
from ..errors import FormatError, InputError, ModelsignWarning, VerificationError
from ..load._context import Context, open_context, read_verified
from ..load.hf import (
    Buffer,
    Fingerprint,
    explained,
    fail_missing,
    fingerprint,
    is_lazy_weight,
    read_checked,
)
from ..load.safetensors import Framework, tensor_entries, tensor_from_buffer
from ..policy import FormatsRule
from ._state import Guard

_LOCAL = threading.local()


# -- sessions: a from_pretrained call whose folder is verified ------------------


@dataclass
class Session:
    folder: str  # realpath of the verified folder
    ctx: Context
    what: str
    names: dict[str, str] = field(default_factory=dict)  # realpath -> signed-relative name
    prints: dict[str, Fingerprint] = field(default_factory=dict)  # name -> after the check
    loaded: dict[str, Buffer] = field(default_factory=dict)  # weights served, verified


def sessions() -> list[Session]:
    stack: list[Session] | None = getattr(_LOCAL, "sessions", None)
    if stack is None:
        stack = _LOCAL.sessions = []
    return stack


def _session_of(real: str) -> tuple[Session, str] | None:
    for s in reversed(sessions()):
        name = s.names.get(real)
        if name is not None:
            return s, name
    return None


def covered(target: Any) -> bool:
    """Whether a nested from_pretrained loads from a folder this thread already verified."""
    if not isinstance(target, (str, os.PathLike)) or not os.path.isdir(target):
        return False
    real = os.path.realpath(target)
    return any(real == s.folder or real.startswith(s.folder + os.sep) for s in sessions())


def open_session(g: Guard, folder: str, code: bool, what: str) -> Session:
    """Check everything but the weights now; weights are checked as they are opened."""
    ctx = open_context(folder, signature=None, verifier=g.verifier, policy=g.policy)
    s = Session(os.path.realpath(folder), ctx, what)
    fail_missing(ctx)
    for name, f in sorted(ctx.files.items()):
        s.names[os.path.realpath(f.real)] = name
        if is_lazy_weight(ctx, name):
            s.prints[name] = fingerprint(f.real)
        elif ctx.signed_digest(name) is not None or (code and name.endswith(".py")):
            s.prints[name] = read_checked(ctx, name)[1]
    return s


def close_session(s: Session, weights: bool) -> None:
    """Verify the weights nobody opened (when a model was loaded); refuse files changed since."""
    for name, before in s.prints.items():
        if name in s.loaded:
            continue
        if fingerprint(s.ctx.files[name].real) != before:
            s.ctx.fail(
                f"{name} changed on disk while the model was loading",
                [Problem(code=Code.FILE_CHANGED, message="changed after verification", file=name)],
                "FILE_CHANGED",
            )
        if weights and is_lazy_weight(s.ctx, name) and s.ctx.signed_digest(name) is not None:
            read_verified(s.ctx, name)


# -- verified bytes for the hooks -----------------------------------------------


def _relname(root: str, path: str) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(root)).replace(os.sep, "/")


def verified(g: Guard, path: str, what: str) -> tuple[Context, str, Buffer]:
    """The verified bytes of ``path``: from the session that covers it, or checked now."""
    hit = _session_of(os.path.realpath(path))
    try:
        if hit is not None:
            s, name = hit
            buf = s.loaded.get(name)
            if buf is None:
                buf = s.loaded[name] = read_verified(s.ctx, name, g.memory)
            return s.ctx, name, buf
        ctx = open_context(path, signature=None, verifier=g.verifier, policy=g.policy)
        name = ctx.single_file or _relname(ctx.root, path)
        return ctx, name, read_verified(ctx, name, g.memory)
    except VerificationError as exc:
        raise explained(exc, what) from exc


def _metadata(buf: Buffer) -> dict[str, str] | None:
    (n,) = struct.unpack_from("<Q", buf, 0)
    header = json.loads(bytes(buf[8 : 8 + n]))
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else None


_FRAMEWORKS: dict[str, Framework] = {
    "pt": "torch",
    "torch": "torch",
    "pytorch": "torch",
    "np": "numpy",
    "numpy": "numpy",
}


class VerifiedSlice:
    """The part of safetensors' slice API loaders use, over a verified tensor."""

    def __init__(self, tensor: Any, dtype: str) -> None:
        self._tensor = tensor
        self._dtype = dtype

    def get_shape(self) -> list[int]:
        return list(self._tensor.shape)

    def get_dtype(self) -> str:
        return self._dtype

    def __getitem__(self, index: Any) -> Any:
        return self._tensor[index]


class VerifiedSafeOpen:
    """What ``safetensors.safe_open`` returns, over the verified buffer instead of an mmap."""

    def __init__(self, g: Guard, path: str, framework: str, device: Any, what: str) -> None:
        fw = _FRAMEWORKS.get(str(framework).lower())
        if fw is None:
            raise InputError(
                f"modelsign guard: safetensors framework {framework!r} is not supported "
                "(use 'pt' or 'np')",
                code=Code.UNSUPPORTED_FRAMEWORK,
                path=path,
            )
        ctx, name, buf = verified(g, path, what)
        entries = tensor_entries(ctx, name, buf)
        self._tensors = {t.name: tensor_from_buffer(fw, t, buf, t.offset) for t in entries}
        self._dtypes = {t.name: t.dtype for t in entries}
        self._metadata = _metadata(buf)
        self._device = device

    def __enter__(self) -> VerifiedSafeOpen:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def keys(self) -> list[str]:
        return sorted(self._tensors)

    def metadata(self) -> dict[str, str] | None:
        return self._metadata

    def get_tensor(self, name: str) -> Any:
        if name not in self._tensors:
            from safetensors import SafetensorError

            raise SafetensorError(f"File does not contain tensor {name}")
        t = self._tensors[name]
        if self._device not in (None, "cpu") and hasattr(t, "to"):
            return t.to(self._device)
        return t

    def get_slice(self, name: str) -> VerifiedSlice:
        t = self.get_tensor(name)
        return VerifiedSlice(t, self._dtypes[name])

    def get_tensors(self) -> dict[str, Any]:
        return {k: self.get_tensor(k) for k in self.keys()}


@dataclass(frozen=True)
class TorchBytes:
    """What the guard hands ``torch.load``: verified bytes, and how they must be unpickled."""

    data: bytes  # the verified bytes, immutable: what was analysed is what torch reads
    name: str  # the file, as the signature names it
    weights_only: bool  # torch's weights-only unpickler, whatever the caller asked


def torch_checked(g: Guard, path: str) -> TorchBytes:
    """The verified bytes of a pickle checkpoint, once the policy's pickle setting admits them.

    ``deny`` refuses before a byte is read. ``safe-state-dicts`` analyses the
    verified bytes themselves (never the path, nor the manifest's word) and
    refuses unless every pickle in them imports only allowlisted globals.
    Unless the policy says ``pickle: allow``, an enforced formats rule has
    torch unpickle them weights-only; a warn-mode rule leaves that to the
    caller, as it blocks nothing.
    """
    what = f"torch.load({path})"
    rule = g.policy.formats or FormatsRule()
    setting = rule.pickle_setting
    if setting == "deny":
        name = os.path.basename(path)
        _refuse(g, path, what, f"{name}: format pickle is denied (torch.load unpickles)")
    _, name, buf = verified(g, path, what)
    data = bytes(memoryview(buf).cast("B"))
    if setting == "safe-state-dicts":
        why = _not_a_safe_state_dict(data, name)
        if why is not None:
            _refuse(g, path, what, f"{name}: not a safe state dict: {why}")
    enforced = g.policy.mode_of("formats") == "enforce"
    return TorchBytes(data, name, enforced and rule.weights_only)


def _refuse(g: Guard, path: str, what: str, reason: str) -> None:
    """Refuse by the formats rule, or (a warn-mode rule) warn."""
    message = f"{what}: refused by policy rule formats: {reason}"
    if g.policy.mode_of("formats") == "enforce":
        raise VerificationError(message, code=Code.POLICY_FAILED, path=path)
    warnings.warn(f"modelsign: {message}", ModelsignWarning, stacklevel=5)


def _not_a_safe_state_dict(data: bytes, name: str) -> str | None:
    """Why ``data`` is no safe state dict for torch's weights-only unpickler (None: it is).

    The analyser's verdict must be safe, and every global must be one torch's
    weights-only unpickler imports by default, through the opcode it knows
    (GLOBAL): the guard's allowlist is torch's, so the two agree (the NumPy
    helpers a manifest's analysis allows are torch's only by ``add_safe_globals``).
    """
    try:
        scan = scan_checkpoint_bytes(data, where=name)
    except FormatError as exc:
        text = exc.message.removeprefix(f"{name}: ").removeprefix(f"{name}:")
        return f"cannot be analysed: {text}"
    if scan.pickles == 0:
        return "no pickle in it to analyse"
    if scan.torchscript:
        return "a TorchScript archive (holds code)"
    if scan.verdict != "safe":
        bad = [x for x in scan.globals if x.classification == scan.verdict]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        return f"imports {scan.verdict} global {bad[0].full_name}{more}"
    for x in scan.globals:
        if x.opcode != "GLOBAL":
            return f"imports {x.full_name} by {x.opcode}, an opcode torch's unpickler refuses"
        if not torch_allows(x.module, x.name):
            return f"imports {x.full_name}, outside torch's weights-only allowlist"
    return None

"""The functions the guard puts in place of safetensors', torch's and transformers' own.

Each calls the original when no guard is installed (a reference bound while
it was stays usable), else serves verified bytes only.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .._trust import resolve_trust
from ..codes import Code
from ..errors import InputError, ModelsignWarning, VerificationError
from ..load.hf import HF_NOT_CACHED, explained, resolve_model_folder
from ._checks import (
    TorchBytes,
    VerifiedSafeOpen,
    close_session,
    covered,
    open_session,
    sessions,
    torch_checked,
)
from ._state import ORIGINAL, current

#: The docstring of every wrapped ``from_pretrained`` (how a wrapper is recognised).
WRAPPED_DOC = "from_pretrained, verified first by modelsign.guard."


def safe_open(filename: Any, framework: Any, device: Any = "cpu", **kwargs: Any) -> Any:
    g = current()
    if g is None:
        return ORIGINAL["safe_open"](filename, framework, device=device, **kwargs)
    path = os.fspath(filename)
    return VerifiedSafeOpen(g, path, framework, device, f"safe_open({path})")


def torch_load_file(filename: Any, device: Any = "cpu", **kwargs: Any) -> dict[str, Any]:
    g = current()
    if g is None:
        result: dict[str, Any] = ORIGINAL["torch.load_file"](filename, device, **kwargs)
        return result
    path = os.fspath(filename)
    return VerifiedSafeOpen(g, path, "pt", device, f"load_file({path})").get_tensors()


def numpy_load_file(filename: Any, **kwargs: Any) -> dict[str, Any]:
    g = current()
    if g is None:
        result: dict[str, Any] = ORIGINAL["numpy.load_file"](filename, **kwargs)
        return result
    path = os.fspath(filename)
    return VerifiedSafeOpen(g, path, "np", "cpu", f"load_file({path})").get_tensors()


def torch_load(f: Any, *args: Any, **kwargs: Any) -> Any:
    g = current()
    if g is None or not isinstance(f, (str, os.PathLike)):
        # A file object's bytes belong to the caller (and are how the guard itself loads).
        return ORIGINAL["torch.load"](f, *args, **kwargs)
    path = os.fspath(f)
    checked = torch_checked(g, path)
    kwargs.pop("mmap", None)  # a memory buffer cannot be mmapped
    if not checked.weights_only:
        return ORIGINAL["torch.load"](io.BytesIO(checked.data), *args, **kwargs)
    return _weights_only_load(checked, path, args, kwargs)


def _weights_only_load(
    checked: TorchBytes, path: str, args: Sequence[Any], kwargs: dict[str, Any]
) -> Any:
    """``torch.load`` of the verified bytes with ``weights_only=True``, whatever was asked.

    A caller's ``weights_only=False`` is overridden, not refused: under
    ``safe-state-dicts`` the analyser has already found only globals torch's
    weights-only unpickler allows, so the result is the same. When torch
    refuses what the caller asked to unpickle in full (a policy whose lists
    allow pickle, without ``pickle: allow``), the refusal is the policy's and
    says so. A ``pickle_module`` cannot be honoured: torch takes none then.
    """
    if kwargs.get("pickle_module", args[1] if len(args) > 1 else None) is not None:
        raise InputError(
            f"torch.load({path}, pickle_module=...): the policy has torch unpickle with its "
            "weights-only unpickler, which takes no pickle_module "
            "(only formats.pickle: allow leaves the unpickler to the caller)",
            code=Code.USAGE,
            path=path,
        )
    asked = kwargs.pop("weights_only", None)
    try:
        return ORIGINAL["torch.load"](io.BytesIO(checked.data), *args, weights_only=True, **kwargs)
    except pickle.UnpicklingError as exc:
        if asked is not False:
            raise
        raise VerificationError(
            f"torch.load({path}, weights_only=False): refused by policy rule formats: "
            f"{checked.name}: torch's weights-only unpickler refused it, and the policy has "
            "every pickle loaded weights-only (only formats.pickle: allow honours "
            "weights_only=False)",
            code=Code.POLICY_FAILED,
            path=path,
        ) from exc


def torch_open_file_like(name_or_buffer: Any, mode: str) -> Any:
    """torch.load's own opening of a path: the backstop for references bound before install.

    ``from torch import load`` keeps the original function, but that function
    opens a path through this module global, so its bytes are checked here.
    """
    original = ORIGINAL["torch._open_file_like"]
    g = current()
    caller = sys._getframe(1)
    if (
        g is None
        or "r" not in mode
        or not isinstance(name_or_buffer, (str, os.PathLike))
        or caller.f_code is not ORIGINAL["torch.load"].__code__
    ):
        return original(name_or_buffer, mode)
    path = os.fspath(name_or_buffer)
    checked = torch_checked(g, path)
    if caller.f_locals.get("mmap"):
        # torch.load would map the path for the tensor storages: bytes never checked.
        raise InputError(
            f"torch.load({path}, mmap=True) through a reference bound before "
            "modelsign.guard.install() maps the path, not the verified bytes: "
            "call torch.load after install, or without mmap",
            code=Code.USAGE,
            path=path,
        )
    if checked.weights_only and caller.f_locals.get("weights_only") is not True:
        # torch.load has settled its arguments: the guard cannot override them here.
        raise InputError(
            f"torch.load({path}, weights_only=False) through a reference bound before "
            "modelsign.guard.install(): the policy has pickles loaded weights-only, and "
            "the guard cannot change that call's arguments: call torch.load after "
            "install, or with weights_only=True",
            code=Code.USAGE,
            path=path,
        )
    return original(io.BytesIO(checked.data), mode)


def _from_pretrained(kind: str, cls: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    original = ORIGINAL[kind].__get__(None, cls)
    g = current()
    target = args[0] if args else kwargs.get("pretrained_model_name_or_path")
    code = bool(kwargs.get("trust_remote_code"))
    if g is None or target is None or covered(target) or (kind == "AutoConfig" and not code):
        return original(*args, **kwargs)
    what = f"{getattr(cls, '__name__', cls)}.from_pretrained({os.fspath(target)})"
    try:
        folder = resolve_model_folder(
            target, revision=kwargs.get("revision"), cache_dir=kwargs.get("cache_dir")
        )
    except InputError as exc:
        if exc.code != HF_NOT_CACHED:
            raise
        message = f"{what}: refused: {exc.message} [rule signers]"
        if resolve_trust(g.verifier, g.policy).enforce:
            raise VerificationError(message, code=HF_NOT_CACHED, path=exc.path) from exc
        warnings.warn(f"modelsign: {message}", ModelsignWarning, stacklevel=3)
        return original(*args, **kwargs)
    try:
        session = open_session(g, folder, code, what)
    except VerificationError as exc:
        raise explained(exc, what) from exc
    if args:
        args = (folder, *args[1:])
    else:
        kwargs["pretrained_model_name_or_path"] = folder
    stack = sessions()
    stack.append(session)
    try:
        result = original(*args, **kwargs)
        try:
            close_session(session, weights=kind != "AutoConfig")
        except VerificationError as exc:
            raise explained(exc, what) from exc
    finally:
        stack.remove(session)
    model = result[0] if isinstance(result, tuple) else result
    if kind != "AutoConfig":
        model.modelsign_report = session.ctx.report
    return result


def from_pretrained_for(kind: str) -> classmethod[Any, Any, Any]:
    def from_pretrained(cls: Any, *args: Any, **kwargs: Any) -> Any:
        return _from_pretrained(kind, cls, args, kwargs)

    from_pretrained.__doc__ = WRAPPED_DOC
    return classmethod(from_pretrained)


#: The replacement of each kind of function (a kind is a key of ``ORIGINAL``).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "safe_open": safe_open,
    "torch.load_file": torch_load_file,
    "numpy.load_file": numpy_load_file,
    "torch.load": torch_load,
    "torch._open_file_like": torch_open_file_like,
}

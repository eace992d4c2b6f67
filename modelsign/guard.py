"""Load-time verification for code that calls safetensors, torch and transformers itself.

``install(policy=...)`` patches, in this process only:

- ``safetensors.safe_open``, ``safetensors.torch.load_file``,
  ``safetensors.numpy.load_file``: the file's model is verified (signature
  ``FILE.sig`` beside it, else ``model.sig`` in its folder) and the tensors
  are views over the verified buffer — a private copy, or with
  ``memory="mapped"``/``"auto"`` the page cache held under a read lease
  (see ``modelsign.load._mapped``), never a mapping made after the check;
- ``torch.load`` of a path: refused unless the policy's formats rule allows
  pickle (a policy without one denies it); if allowed, the signed bytes are
  unpickled from memory, not the path. ``torch.serialization._open_file_like``
  too, which is how ``torch.load`` opens a path: a ``load`` bound before
  ``install`` (``from torch import load``) is checked there;
- ``from_pretrained`` of transformers models, of the Auto model classes, and
  of ``AutoConfig`` with ``trust_remote_code``: see below.

Each function is replaced under every name a safetensors, torch or
transformers module holds it by (found by identity, e.g.
``torch.serialization.load``), at install and whenever a patched module is
imported later; ``uninstall`` puts every one back.

A refusal is a :class:`modelsign.VerificationError` naming the file, the
tensor and the failed rule; under a warn-mode policy a
:class:`~modelsign.load.ModelsignWarning` is issued and the load proceeds.

``from_pretrained`` — what is verified when: the folder (a local folder, a
cache snapshot, or a repo id resolved offline in the cache; a repo id not
cached is refused, since it cannot be verified before it is downloaded) is
checked before transformers is called: signature, policy, missing and
unsigned files, and the bytes of every signed file other than safetensors
and pickle weights — config, tokenizer, and every ``*.py`` when
``trust_remote_code`` (before any is imported). transformers then receives
the snapshot folder. Weight files are read through the hooks above, which,
inside the call, know the folder is verified (a thread-local session): each
is read once into memory, checked against its signed digests and served
from that buffer, so no weight byte is hashed twice or used unchecked.
Weight files transformers did not open are verified when the call returns,
and every file checked beforehand must still have the same device, inode,
size, mtime and ctime (a rewrite or swap under the running load is refused).
Residual risk: files transformers reads by path (config, tokenizer, remote
code) are covered by that re-check, not by a second hash, and remote code
swapped after the check runs before the re-check catches it.
:func:`modelsign.load.hf.load_transformers` closes that gap by building the
model from verified bytes only; prefer it where the calling code can change.
Not patched: tokenizers, processors and pipelines' own ``from_pretrained``;
loads from bytes or file objects; ``torch.jit.load``, ``pickle.load``,
``joblib.load``, ``numpy.load``; and modules outside those three packages that
bound ``safe_open`` itself before ``install`` (install early, e.g. from
``sitecustomize.py``).

Enable it for every Python process of an environment with a
``sitecustomize.py`` on the path (for example in site-packages)::

    import sys

    import modelsign.guard

    try:
        modelsign.guard.install_from_env()  # installs when MODELSIGN_POLICY is set
    except Exception as exc:
        # site.py only prints errors from sitecustomize and starts anyway:
        # exit instead, so a broken policy never means an absent guard.
        sys.exit(f"modelsign guard: {exc}")

then ``MODELSIGN_POLICY=/etc/modelsign/policy.yaml python serve.py`` (add
``MODELSIGN_MEMORY=auto`` for zero-copy tensors where a lease can guard them).
Installing imports neither torch nor transformers: modules not yet imported
are patched when they are (an import hook), so interpreter start-up stays
cheap.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import io
import json
import os
import struct
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ._internal.check.compare import Problem
from ._internal.signature.verifiers import Verifier
from ._trust import resolve_trust
from .errors import InputError, ModelsignWarning, VerificationError
from .load._context import (
    Context,
    Memory,
    check_memory,
    open_context,
    read_verified,
)
from .load.hf import (
    HF_NOT_CACHED,
    Buffer,
    Fingerprint,
    explained,
    fail_missing,
    fingerprint,
    is_lazy_weight,
    read_checked,
    resolve_model_folder,
    tensor_entries,
)
from .load.safetensors import Framework, tensor_from_buffer
from .policy import FormatsRule, Policy

__all__ = ["install", "install_from_env", "installed", "uninstall"]

ENV_VAR = "MODELSIGN_POLICY"
MEMORY_ENV_VAR = "MODELSIGN_MEMORY"


@dataclass
class _Guard:
    policy: Policy
    verifier: Verifier | None  # the caller's, enforced on top of the policy's signers (Trust)
    finder: _ImportHook
    memory: Memory = "copy"
    patched: list[tuple[Any, str, Any, Any]] = field(default_factory=list)  # owner, attr, old, new


_LOCK = threading.RLock()
_GUARD: _Guard | None = None
#: The functions the guard replaced, by kind; kept after uninstall so that a
#: reference bound while installed (``from safetensors import safe_open``) falls back to them.
_ORIGINAL: dict[str, Any] = {}
_LOCAL = threading.local()


# -- sessions: a from_pretrained call whose folder is verified ------------------------


@dataclass
class _Session:
    folder: str  # realpath of the verified folder
    ctx: Context
    what: str
    names: dict[str, str] = field(default_factory=dict)  # realpath -> signed-relative name
    prints: dict[str, Fingerprint] = field(default_factory=dict)  # name -> after the check
    loaded: dict[str, Buffer] = field(default_factory=dict)  # weights served, verified


def _sessions() -> list[_Session]:
    stack: list[_Session] | None = getattr(_LOCAL, "sessions", None)
    if stack is None:
        stack = _LOCAL.sessions = []
    return stack


def _session_of(real: str) -> tuple[_Session, str] | None:
    for s in reversed(_sessions()):
        name = s.names.get(real)
        if name is not None:
            return s, name
    return None


def _covered(target: Any) -> bool:
    """Whether a nested from_pretrained loads from a folder this thread already verified."""
    if not isinstance(target, (str, os.PathLike)) or not os.path.isdir(target):
        return False
    real = os.path.realpath(target)
    return any(real == s.folder or real.startswith(s.folder + os.sep) for s in _sessions())


def _open_session(g: _Guard, folder: str, code: bool, what: str) -> _Session:
    """Check everything but the weights now; weights are checked as they are opened."""
    ctx = open_context(folder, signature=None, verifier=g.verifier, policy=g.policy)
    s = _Session(os.path.realpath(folder), ctx, what)
    fail_missing(ctx)
    for name, f in sorted(ctx.files.items()):
        s.names[os.path.realpath(f.real)] = name
        if is_lazy_weight(ctx, name):
            s.prints[name] = fingerprint(f.real)
        elif ctx.signed_digest(name) is not None or (code and name.endswith(".py")):
            s.prints[name] = read_checked(ctx, name)[1]
    return s


def _close_session(s: _Session, weights: bool) -> None:
    """Verify the weights nobody opened (when a model was loaded); refuse files changed since."""
    for name, before in s.prints.items():
        if name in s.loaded:
            continue
        if fingerprint(s.ctx.files[name].real) != before:
            s.ctx.fail(
                f"{name} changed on disk while the model was loading",
                [Problem(code="FILE_CHANGED", message="changed after verification", file=name)],
                "FILE_CHANGED",
            )
        if weights and is_lazy_weight(s.ctx, name) and s.ctx.signed_digest(name) is not None:
            read_verified(s.ctx, name)


# -- verified bytes for the hooks -----------------------------------------------------


def _relname(root: str, path: str) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(root)).replace(os.sep, "/")


def _verified(g: _Guard, path: str, what: str) -> tuple[Context, str, Buffer]:
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

    def __init__(self, path: str, framework: str, device: Any, what: str) -> None:
        g = _GUARD
        assert g is not None
        fw = _FRAMEWORKS.get(str(framework).lower())
        if fw is None:
            raise InputError(
                f"modelsign guard: safetensors framework {framework!r} is not supported "
                "(use 'pt' or 'np')",
                code="UNSUPPORTED_FRAMEWORK",
                path=path,
            )
        ctx, name, buf = _verified(g, path, what)
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


# -- the replacements -----------------------------------------------------------------


def _safe_open(filename: Any, framework: Any, device: Any = "cpu", **kwargs: Any) -> Any:
    if _GUARD is None:
        return _ORIGINAL["safe_open"](filename, framework, device=device, **kwargs)
    path = os.fspath(filename)
    return VerifiedSafeOpen(path, framework, device, f"safe_open({path})")


def _torch_load_file(filename: Any, device: Any = "cpu", **kwargs: Any) -> dict[str, Any]:
    if _GUARD is None:
        result: dict[str, Any] = _ORIGINAL["torch.load_file"](filename, device, **kwargs)
        return result
    path = os.fspath(filename)
    return VerifiedSafeOpen(path, "pt", device, f"load_file({path})").get_tensors()


def _numpy_load_file(filename: Any, **kwargs: Any) -> dict[str, Any]:
    if _GUARD is None:
        result: dict[str, Any] = _ORIGINAL["numpy.load_file"](filename, **kwargs)
        return result
    path = os.fspath(filename)
    return VerifiedSafeOpen(path, "np", "cpu", f"load_file({path})").get_tensors()


def _pickle_allowed(policy: Policy) -> bool:
    rule = policy.formats or FormatsRule()
    return "pickle" not in rule.deny and (rule.allow is None or "pickle" in rule.allow)


def _torch_checked(g: _Guard, path: str) -> Buffer:
    """The verified bytes of a pickle checkpoint, once the policy's formats rule allows pickle."""
    what = f"torch.load({path})"
    if not _pickle_allowed(g.policy):
        message = (
            f"{what}: refused by policy rule formats: {os.path.basename(path)}: "
            "format pickle is denied (torch.load unpickles)"
        )
        if g.policy.mode_of("formats") == "enforce":
            raise VerificationError(message, code="POLICY_FAILED", path=path)
        warnings.warn(f"modelsign: {message}", ModelsignWarning, stacklevel=4)
    return _verified(g, path, what)[2]


def _torch_load(f: Any, *args: Any, **kwargs: Any) -> Any:
    g = _GUARD
    if g is None or not isinstance(f, (str, os.PathLike)):
        # A file object's bytes belong to the caller (and are how the guard itself loads).
        return _ORIGINAL["torch.load"](f, *args, **kwargs)
    buf = _torch_checked(g, os.fspath(f))
    kwargs.pop("mmap", None)  # a memory buffer cannot be mmapped
    return _ORIGINAL["torch.load"](io.BytesIO(buf), *args, **kwargs)


def _torch_open_file_like(name_or_buffer: Any, mode: str) -> Any:
    """torch.load's own opening of a path: the backstop for references bound before install.

    ``from torch import load`` keeps the original function, but that function
    opens a path through this module global, so its bytes are checked here.
    """
    original = _ORIGINAL["torch._open_file_like"]
    g = _GUARD
    caller = sys._getframe(1)
    if (
        g is None
        or "r" not in mode
        or not isinstance(name_or_buffer, (str, os.PathLike))
        or caller.f_code is not _ORIGINAL["torch.load"].__code__
    ):
        return original(name_or_buffer, mode)
    path = os.fspath(name_or_buffer)
    buf = _torch_checked(g, path)
    if caller.f_locals.get("mmap"):
        # torch.load would map the path for the tensor storages: bytes never checked.
        raise InputError(
            f"torch.load({path}, mmap=True) through a reference bound before "
            "modelsign.guard.install() maps the path, not the verified bytes: "
            "call torch.load after install, or without mmap",
            code="USAGE",
            path=path,
        )
    return original(io.BytesIO(buf), mode)


def _from_pretrained(kind: str, cls: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    original = _ORIGINAL[kind].__get__(None, cls)
    g = _GUARD
    target = args[0] if args else kwargs.get("pretrained_model_name_or_path")
    code = bool(kwargs.get("trust_remote_code"))
    if g is None or target is None or _covered(target) or (kind == "AutoConfig" and not code):
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
        session = _open_session(g, folder, code, what)
    except VerificationError as exc:
        raise explained(exc, what) from exc
    if args:
        args = (folder, *args[1:])
    else:
        kwargs["pretrained_model_name_or_path"] = folder
    stack = _sessions()
    stack.append(session)
    try:
        result = original(*args, **kwargs)
        try:
            _close_session(session, weights=kind != "AutoConfig")
        except VerificationError as exc:
            raise explained(exc, what) from exc
    finally:
        stack.remove(session)
    model = result[0] if isinstance(result, tuple) else result
    if kind != "AutoConfig":
        model.modelsign_report = session.ctx.report
    return result


def _classmethod(kind: str) -> classmethod[Any, Any, Any]:
    def from_pretrained(cls: Any, *args: Any, **kwargs: Any) -> Any:
        return _from_pretrained(kind, cls, args, kwargs)

    from_pretrained.__doc__ = "from_pretrained, verified first by modelsign.guard."
    return classmethod(from_pretrained)


# -- patching ----------------------------------------------------------------------------

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "safe_open": _safe_open,
    "torch.load_file": _torch_load_file,
    "numpy.load_file": _numpy_load_file,
    "torch.load": _torch_load,
    "torch._open_file_like": _torch_open_file_like,
}
#: module -> (attribute, kind) of module-level functions to replace.
_MODULE_TARGETS: dict[str, tuple[tuple[str, str], ...]] = {
    "safetensors": (("safe_open", "safe_open"),),
    "safetensors.torch": (("load_file", "torch.load_file"), ("safe_open", "safe_open")),
    "safetensors.numpy": (("load_file", "numpy.load_file"), ("safe_open", "safe_open")),
    "torch": (("load", "torch.load"),),
    # torch.load opens paths through this global: patched, it covers references to
    # torch.load bound before install too.
    "torch.serialization": (("load", "torch.load"), ("_open_file_like", "torch._open_file_like")),
}
#: Packages whose modules are searched for aliases of a replaced function: any
#: attribute that IS an original (``from safetensors import safe_open``), whatever its name.
_ALIAS_ROOTS = ("safetensors", "torch", "transformers")
_CLASS_MODULES = (
    "transformers.modeling_utils",
    "transformers.models.auto.auto_factory",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.configuration_auto",
)
_HOOKED = (frozenset(_MODULE_TARGETS) | frozenset(_CLASS_MODULES)) - {"torch.serialization"}


def _set(g: _Guard, owner: Any, attr: str, new: Any) -> None:
    old = vars(owner).get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
    if old is None or old is new:
        return
    setattr(owner, attr, new)
    g.patched.append((owner, attr, old, new))


def _patch_module(g: _Guard, name: str, module: ModuleType) -> None:
    for attr, kind in _MODULE_TARGETS.get(name, ()):
        current = getattr(module, attr, None)
        if current is None or current is _FUNCTIONS[kind]:
            continue
        _ORIGINAL.setdefault(kind, current)
        _set(g, module, attr, _FUNCTIONS[kind])
    for cls, kind in _classes(name, module):
        _ORIGINAL.setdefault(kind, vars(cls)["from_pretrained"])
        # Each Auto class has its own copy of from_pretrained: one kind per class.
        _set(g, cls, "from_pretrained", _classmethod(kind))


def _framework_modules() -> list[ModuleType]:
    return [
        m
        for name, m in list(sys.modules.items())
        if isinstance(m, ModuleType) and name.partition(".")[0] in _ALIAS_ROOTS
    ]


def _rebind(swap: Mapping[int, Any], record: _Guard | None) -> None:
    """Set every framework-module attribute whose value's id is in ``swap`` (identity, not name)."""
    for module in _framework_modules():
        for attr, value in list(vars(module).items()):
            new = swap.get(id(value))
            if new is None:
                continue
            if record is not None:
                _set(record, module, attr, new)
            else:
                setattr(module, attr, new)


def _patch_all(g: _Guard, names: Sequence[str]) -> None:
    """Patch these target modules (those loaded), then every alias of what they held."""
    for name in names:
        module = sys.modules.get(name)
        if module is not None:
            _patch_module(g, name, module)
    _rebind({id(_ORIGINAL[k]): fn for k, fn in _FUNCTIONS.items() if k in _ORIGINAL}, g)


def _classes(name: str, module: ModuleType) -> list[tuple[type, str]]:
    """The classes whose own ``from_pretrained`` the guard wraps, with their kind."""
    out: list[tuple[type, str]] = []
    if name == "transformers.modeling_utils":
        out.append((module.PreTrainedModel, "PreTrainedModel"))
    elif name == "transformers.models.auto.configuration_auto":
        out.append((module.AutoConfig, "AutoConfig"))
    elif name in (
        "transformers.models.auto.auto_factory",
        "transformers.models.auto.modeling_auto",
    ):
        base = sys.modules["transformers.models.auto.auto_factory"]._BaseAutoModelClass
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, base)
                and isinstance(vars(value).get("from_pretrained"), classmethod)
            ):
                out.append((value, f"auto:{value.__module__}.{value.__qualname__}"))
    return [
        (c, k)
        for c, k in out
        if not (
            isinstance(vars(c).get("from_pretrained"), classmethod)
            and getattr(vars(c)["from_pretrained"].__func__, "__doc__", None)
            == "from_pretrained, verified first by modelsign.guard."
        )
    ]


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then patches the module it made."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        created: ModuleType | None = self._loader.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        with _LOCK:
            if _GUARD is not None:
                # Only this module: other hooked ones may still be half-initialised.
                name = module.__name__
                extra = ("torch.serialization",) if name == "torch" else ()
                _patch_all(_GUARD, (name, *extra))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _ImportHook(importlib.abc.MetaPathFinder):
    """Patches the target modules when they are first imported (install imports nothing)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _HOOKED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: importlib.machinery.ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


def install(
    *,
    policy: Policy | str | os.PathLike[str],
    verifier: Verifier | None = None,
    memory: Memory = "copy",
) -> None:
    """Verify every model this process loads through safetensors, torch.load or transformers.

    Idempotent: installing again only replaces the policy, verifier and memory.
    A ``verifier`` is always enforced, on top of the policy's signers (which
    follow their rule's mode); without one the policy must list signers.
    ``memory`` is where verified safetensors bytes live, as for
    :func:`modelsign.load_safetensors`:
    ``"mapped"``/``"auto"`` keep safetensors' shared, zero-copy page cache.
    """
    global _GUARD
    check_memory(memory)
    pol = policy if isinstance(policy, Policy) else Policy.load(policy)
    resolve_trust(verifier, pol)  # a usage error now, not at the first load
    ver = verifier
    with _LOCK:
        if _GUARD is not None:
            _GUARD.policy, _GUARD.verifier, _GUARD.memory = pol, ver, memory
            return
        g = _Guard(pol, ver, _ImportHook(), memory=memory)
        _GUARD = g
        sys.meta_path.insert(0, g.finder)
        _patch_all(g, sorted(_HOOKED | {"torch.serialization"}))


def uninstall() -> None:
    """Put back every function the guard replaced (a no-op when not installed)."""
    global _GUARD
    with _LOCK:
        g = _GUARD
        if g is None:
            return
        _GUARD = None
        if g.finder in sys.meta_path:
            sys.meta_path.remove(g.finder)
        for owner, attr, old, new in reversed(g.patched):
            current = vars(owner).get(attr) if isinstance(owner, type) else getattr(owner, attr)
            if current is new:
                setattr(owner, attr, old)
        # Modules imported while installed bound the replacements by name: rebind them.
        _rebind({id(fn): _ORIGINAL[k] for k, fn in _FUNCTIONS.items() if k in _ORIGINAL}, None)


def installed() -> bool:
    """Whether the guard is active in this process."""
    return _GUARD is not None


def install_from_env(env: Mapping[str, str] | None = None) -> bool:
    """Install with the policy file named by ``MODELSIGN_POLICY``; return whether it did.

    Meant for ``sitecustomize.py``: without the variable nothing happens, and
    a named policy that cannot be read raises (a guard that silently is not
    there would be worse than a failed start). ``MODELSIGN_MEMORY`` (``copy``,
    ``mapped`` or ``auto``; default ``copy``) is passed on as ``memory``.
    """
    values = os.environ if env is None else env
    path = values.get(ENV_VAR, "").strip()
    if not path:
        return False
    memory = check_memory(values.get(MEMORY_ENV_VAR, "").strip() or "copy", MEMORY_ENV_VAR)
    install(policy=path, memory=memory)
    return True

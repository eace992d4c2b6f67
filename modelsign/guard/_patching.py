"""Putting the replacements in place: in loaded modules, under every alias, and on import.

Each function is replaced under every name a safetensors, torch or
transformers module holds it by (found by identity), at install and whenever
a patched module is imported later (an import hook); every replacement is
recorded so that uninstall can put the original back.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from ._replacements import FUNCTIONS, WRAPPED_DOC, from_pretrained_for
from ._state import LOCK, ORIGINAL, Guard, current

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
HOOKED = (frozenset(_MODULE_TARGETS) | frozenset(_CLASS_MODULES)) - {"torch.serialization"}


def _set(g: Guard, owner: Any, attr: str, new: Any) -> None:
    old = vars(owner).get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
    if old is None or old is new:
        return
    setattr(owner, attr, new)
    g.patched.append((owner, attr, old, new))


def _patch_module(g: Guard, name: str, module: ModuleType) -> None:
    for attr, kind in _MODULE_TARGETS.get(name, ()):
        held = getattr(module, attr, None)
        if held is None or held is FUNCTIONS[kind]:
            continue
        ORIGINAL.setdefault(kind, held)
        _set(g, module, attr, FUNCTIONS[kind])
    for cls, kind in _classes(name, module):
        ORIGINAL.setdefault(kind, vars(cls)["from_pretrained"])
        # Each Auto class has its own copy of from_pretrained: one kind per class.
        _set(g, cls, "from_pretrained", from_pretrained_for(kind))


def _framework_modules() -> list[ModuleType]:
    return [
        m
        for name, m in list(sys.modules.items())
        if isinstance(m, ModuleType) and name.partition(".")[0] in _ALIAS_ROOTS
    ]


def rebind(swap: Mapping[int, Any], record: Guard | None) -> None:
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


def patch_all(g: Guard, names: Sequence[str]) -> None:
    """Patch these target modules (those loaded), then every alias of what they held."""
    for name in names:
        module = sys.modules.get(name)
        if module is not None:
            _patch_module(g, name, module)
    rebind({id(ORIGINAL[k]): fn for k, fn in FUNCTIONS.items() if k in ORIGINAL}, g)


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
            and getattr(vars(c)["from_pretrained"].__func__, "__doc__", None) == WRAPPED_DOC
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
        with LOCK:
            g = current()
            if g is not None:
                # Only this module: other hooked ones may still be half-initialised.
                name = module.__name__
                extra = ("torch.serialization",) if name == "torch" else ()
                patch_all(g, (name, *extra))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class ImportHook(importlib.abc.MetaPathFinder):
    """Patches the target modules when they are first imported (install imports nothing)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in HOOKED:
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

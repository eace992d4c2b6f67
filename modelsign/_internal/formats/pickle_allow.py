"""What a pickle may import: the allowlist of plain state dicts, and what is dangerous.

The allowlist is exactly what torch's weights-only unpickler
(``torch/_weights_only_unpickler.py``, ``_get_allowed_globals``, torch 2.13) allows
by default — a test checks it against the installed torch — plus the NumPy helpers
a pickled ``ndarray`` needs (``_reconstruct``, ``ndarray``, ``dtype``, ``scalar``,
``_frombuffer``; torch leaves them to ``add_safe_globals``). Everything else is
unknown unless it is dangerous: process, shell, ``eval``-style code, attribute or
import indirection, file system, network, or a nested unpickler. The dangerous list
holds at least every global picklescan (1.0.5) and modelscan (0.8.8) block: a test in
``tests/interop/test_pickle_scanners.py`` checks it against both.
"""

from __future__ import annotations

import _compat_pickle
from typing import Final, Literal

Classification = Literal["safe", "unknown", "dangerous"]

_TORCH_TYPES: Final = [
    "BFloat16",
    "Bool",
    "Byte",
    "Char",
    "Double",
    "Float",
    "Half",
    "Int",
    "Long",
    "Short",
]
_TORCH_STORAGES: Final = (
    *_TORCH_TYPES,
    *["ComplexDouble", "ComplexFloat", "QInt32", "QInt8", "QUInt2x4", "QUInt4x2", "QUInt8"],
)
_TORCH_DTYPES: Final = [
    "bfloat16",
    "bits16",
    "bits1x8",
    "bits2x4",
    "bits4x2",
    "bits8",
    "bool",
    "complex128",
    "complex32",
    "complex64",
    "float16",
    "float32",
    "float4_e2m1fn_x2",
    "float64",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "qint32",
    "qint8",
    "quint2x4",
    "quint4x2",
    "quint8",
    "per_channel_affine",
    "per_channel_affine_float_qparams",
    "per_channel_symmetric",
    "per_tensor_affine",
    "per_tensor_symmetric",
]
_TORCH_REBUILD: Final = [
    "device_tensor_from_cpu_tensor",
    "device_tensor_from_numpy",
    "meta_tensor_no_storage",
    "nested_tensor",
    "parameter",
    "parameter_with_state",
    "qtensor",
    "sparse_tensor",
    "tensor",
    "tensor_v2",
    "tensor_v3",
    "wrapper_subclass",
]

TORCH_ALLOWED: Final = frozenset(
    {
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.complex",
        "builtins.set",
        "collections.Counter",
        "collections.OrderedDict",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        "torch._tensor._rebuild_from_type_v2",
        *(f"torch.{t}" for t in _TORCH_DTYPES),
        *(f"torch.int{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64)),
        *(f"torch.uint{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64)),
        *(f"torch.{t}Storage" for t in _TORCH_STORAGES),
        *(f"torch.cuda.{t}Storage" for t in (*_TORCH_TYPES, "ComplexDouble", "ComplexFloat")),
        *(f"torch.{t}Tensor" for t in _TORCH_TYPES),
        *(f"torch.cuda.{t}Tensor" for t in _TORCH_TYPES),
        *(f"torch.sparse.{t}Tensor" for t in _TORCH_TYPES if t != "Bool"),
        *(f"torch.cuda.sparse.{t}Tensor" for t in _TORCH_TYPES if t != "Bool"),
        *(f"torch._utils._rebuild_{f}" for f in _TORCH_REBUILD),
    }
)
"""Exactly the default globals of torch's weights-only unpickler (torch 2.13)."""

NUMPY_ALLOWED: Final = frozenset(
    f"{core}.{name}"
    for core, name in [
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        *(
            (c, n)
            for c in ("numpy.core.multiarray", "numpy._core.multiarray")
            for n in ("_reconstruct", "scalar")
        ),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    ]
)
"""What a pickled NumPy array or scalar needs (NumPy 1 and 2 module names)."""

ALLOWED: Final = TORCH_ALLOWED | NUMPY_ALLOWED

_DANGEROUS_MODULES: Final = frozenset(
    [
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "importlib",
        "runpy",
        "pty",
        "shutil",
        "socket",
        "ssl",
        "urllib",
        "urllib2",
        "requests",
        "httplib",
        "http",
        "ftplib",
        "smtplib",
        "telnetlib",
        "poplib",
        "imaplib",
        "webbrowser",
        "pickle",
        "_pickle",
        "cPickle",
        "marshal",
        "shelve",
        "dill",
        "cloudpickle",
        "joblib",
        "ctypes",
        "_ctypes",
        "code",
        "codeop",
        "pdb",
        "bdb",
        "timeit",
        "multiprocessing",
        "_posixsubprocess",
        "signal",
        "asyncio",
        "tempfile",
        "glob",
        "pathlib",
        "io",
        "_io",
        "fcntl",
        "resource",
        "gc",
        "inspect",
        "builtins",
        "__builtin__",
        "__builtins__",
        "operator",
        "_operator",
        "functools",
        "types",
        # What picklescan 1.0.5 and modelscan 0.8.8 block besides: commands run, code
        # profiled or traced, names resolved, packages installed, files written.
        "aiohttp",
        "commands",
        "cProfile",
        "profile",
        "trace",
        "pydoc",
        "pkgutil",
        "pip",
        "ensurepip",
        "venv",
        "distutils",
        "idlelib",
        "lib2to3",
        "test",
        "uuid",
        "_osx_support",
        "_aix_support",
        "_pyrepl",
    ]
)
"""Modules whose every name is dangerous, except the builtins, operator, functools and
types names below, which are judged name by name."""

_JUDGED_BY_NAME: Final = frozenset(
    {"builtins", "__builtin__", "operator", "_operator", "functools", "types"}
)

_DANGEROUS_PACKAGES: Final = ("numpy.f2py", "numpy.testing", "torch.utils.bottleneck")
"""Packages inside otherwise allowed roots whose every name is dangerous (``eval`` of
strings, ``exec`` of scripts)."""

_DANGEROUS_NAMES: Final = frozenset(
    [
        "builtins.eval",
        "builtins.exec",
        "builtins.execfile",
        "builtins.compile",
        "builtins.open",
        "builtins.file",
        "builtins.__import__",
        "builtins.getattr",
        "builtins.setattr",
        "builtins.delattr",
        "builtins.globals",
        "builtins.locals",
        "builtins.vars",
        "builtins.input",
        "builtins.breakpoint",
        "builtins.help",
        "builtins.exit",
        "builtins.quit",
        "builtins.memoryview",
        "builtins.type",
        "builtins.apply",
        "builtins.object",
        "builtins.classmethod",
        "builtins.staticmethod",
        "builtins.property",
        "operator.attrgetter",
        "operator.methodcaller",
        "operator.getitem",
        "operator.setitem",
        "operator.delitem",
        "operator.itemgetter",
        "_operator.attrgetter",
        "_operator.methodcaller",
        "_operator.itemgetter",
        "functools.partial",
        "functools.reduce",
        "types.CodeType",
        "types.FunctionType",
        "types.MethodType",
        "types.ModuleType",
        "types.LambdaType",
        "platform.popen",
        "platform.os",
        "nturl2path.os",
        "torch.load",
        "torch.hub.load",
        "torch.hub.load_state_dict_from_url",
        "torch.hub.download_url_to_file",
        "torch.jit.load",
        "numpy.load",
        "logging.FileHandler",
        "doctest.debug_script",
        "torch.serialization.load",
        "torch._dynamo.guards.GuardBuilder.get",
        "torch._inductor.codecache.compile_file",
        "torch.fx.experimental.symbolic_shapes.ShapeEnv.evaluate_guards_expression",
        "torch.jit.unsupported_tensor_ops.execWrapper",
        "torch.utils._config_module.ConfigModule.load_config",
        "torch.utils.collect_env.run",
        "torch.utils.data.datapipes.utils.decoder.basichandlers",
    ]
)

_INDIRECT_PARTS: Final = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "builtins",
        "__builtins__",
        "importlib",
        "pickle",
        "marshal",
        "ctypes",
        "runpy",
        "shutil",
        "socket",
        "pty",
        "eval",
        "exec",
        "system",
        "popen",
        "getattr",
        "__import__",
    }
)
"""Parts of a dotted path that reach something dangerous through another module
(``torch.os.system``, ``numpy.testing.sys.modules``)."""


def normalise(module: str, name: str) -> tuple[str, str]:
    """The names Python 3 imports for a protocol 0–2 (``fix_imports``) global."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def classify(module: str, name: str) -> Classification:
    """Whether importing ``module.name`` from a pickle is safe, unknown or dangerous.

    A Python 2 name (``__builtin__.set``, which ``torch.save`` writes at its
    protocol 2) is judged as the name Python 3 imports for it — torch's
    weights-only unpickler maps every GLOBAL so — and is dangerous if either
    name is. (The Python 2 module itself does not exist to import.)
    """
    mapped = normalise(module, name)
    verdict = _classify_one(*mapped)
    if mapped != (module, name) and _classify_one(module, name) == "dangerous":
        return "dangerous"
    return verdict


def torch_allows(module: str, name: str) -> bool:
    """Whether torch's weights-only unpickler imports ``module.name`` by default.

    Its GLOBAL maps Python 2 names first, as :func:`normalise` does; the NumPy
    helpers of :data:`ALLOWED` are not among these (torch leaves them to
    ``add_safe_globals``).
    """
    mod, nm = normalise(module, name)
    return f"{mod}.{nm}" in TORCH_ALLOWED


def _classify_one(module: str, name: str) -> Classification:
    full = f"{module}.{name}"
    if full in ALLOWED:
        return "safe"
    parts = full.split(".")
    if full in _DANGEROUS_NAMES or any(
        p.startswith("__") and p not in {"__builtin__", "__main__"} for p in parts
    ):
        return "dangerous"
    root = module.split(".")[0]
    if root in _DANGEROUS_MODULES and root not in _JUDGED_BY_NAME:
        return "dangerous"
    if any(full.startswith(f"{p}.") for p in _DANGEROUS_PACKAGES):
        return "dangerous"
    # Past the module itself, a part naming something dangerous is indirection.
    if any(p in _INDIRECT_PARTS for p in parts[1:]):
        return "dangerous"
    if root in _JUDGED_BY_NAME and "." in name:
        return "dangerous"
    return "unknown"

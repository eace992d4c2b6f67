"""Verified loading of Hugging Face models: cache snapshots, transformers models, remote code.

transformers has no pre-load hook, and its private loader functions change
from release to release, so :func:`load_transformers` patches nothing. It
verifies the whole folder first (every signed file, and with
``trust_remote_code`` every ``*.py``), then hands transformers only what it
verified, through public API: the config built from the verified
``config.json`` bytes, remote code imported from a private copy of the
verified ``*.py`` bytes, and the weights as ``state_dict=`` tensors over the
verified buffers (``from_pretrained(None, config=..., state_dict=...)``,
supported from transformers 4.x to 5.x). Nothing is read from the model
folder again after it was checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .._internal.check.compare import Problem
from .._internal.discover import resolve_hf_snapshot
from .._internal.signature.verifiers import Verifier
from ..codes import Code
from ..errors import DiscoveryError, InputError, VerificationError
from ..policy import Policy
from ..verify import VerificationResult, verify
from ._context import Context, Memory, check_memory, open_context, read_verified
from .safetensors import add_tensors

HF_NOT_CACHED = "HF_NOT_CACHED"

_COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
#: Weight files read through the hooked loaders (safetensors, torch.load), checked when opened.
_LAZY_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")

Fingerprint = tuple[int, int, int, int, int]
#: A verified file's bytes as ``read_verified`` returns them (a numpy ``uint8`` array).
Buffer = Any


def snapshot_path(
    repo_id: str, revision: str | None = None, *, cache_dir: str | None = None
) -> str:
    """The cached snapshot folder of ``repo_id`` at ``revision`` (a commit or a ref), offline.

    Uses ``huggingface_hub.snapshot_download(local_files_only=True)``, which never
    touches the network; a ref such as ``main`` is resolved through ``refs/``.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    at = f"@{revision}" if revision else ""
    try:
        path = str(
            snapshot_download(
                repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True
            )
        )
    except LocalEntryNotFoundError as exc:
        where = f" ({cache_dir})" if cache_dir else ""
        raise InputError(
            f"{repo_id}{at} is not in the Hugging Face cache{where}; download it first "
            "(snapshot_download with a pinned 40-hex revision, model.sig included)",
            code=HF_NOT_CACHED,
            path=repo_id,
        ) from exc
    except HFValidationError as exc:
        raise InputError(
            f"not a Hugging Face repo id: {exc}", code=Code.USAGE, path=repo_id
        ) from exc
    # A ref file is only text: make sure it led to a real snapshot of this repo.
    found = resolve_hf_snapshot(path)
    if (
        found is None
        or found[1].repo_id != repo_id
        or not _COMMIT.fullmatch(os.path.basename(found[0]))
    ):
        raise DiscoveryError(
            f"{repo_id}{at} resolves to {path}, not a snapshots/<commit> folder",
            code=Code.HF_CACHE_BAD_REF,
            path=path,
        )
    return found[0]


def verify_hf_snapshot(
    repo_id: str,
    revision: str | None = None,
    *,
    cache_dir: str | None = None,
    signature: str | os.PathLike[str] | None = None,
    policy: Policy | None = None,
    verifier: Verifier | None = None,
    now: datetime | None = None,
) -> VerificationResult:
    """Fully verify the cached snapshot of ``repo_id`` (signature: ``model.sig`` inside it)."""
    folder = snapshot_path(repo_id, revision, cache_dir=cache_dir)
    return verify(folder, verifier=verifier, policy=policy, signature=signature, now=now)


def resolve_model_folder(
    model: str | os.PathLike[str], *, revision: str | None = None, cache_dir: str | None = None
) -> str:
    """A local path (a cache repo folder: its snapshot), or a cached repo id's snapshot."""
    p = os.fspath(model)
    if os.path.lexists(p):
        found = resolve_hf_snapshot(p) if os.path.isdir(p) else None
        return found[0] if found is not None else p
    if _REPO_ID.fullmatch(p):
        return snapshot_path(p, revision, cache_dir=cache_dir)
    raise InputError(f"no such file or folder: {p}", code=Code.NOT_FOUND, path=p)


# -- checking a folder -------------------------------------------------------------


def signed_names(ctx: Context) -> list[str]:
    """The file names the signature covers."""
    st = ctx.statement
    if st is None:
        return []
    return sorted(st.files)


def fail_missing(ctx: Context) -> None:
    """Refuse (or warn) when signed files are absent: a partial model is not the signed one."""
    missing = [n for n in signed_names(ctx) if n not in ctx.files]
    if missing:
        ctx.fail(
            "signed files are missing",
            [
                Problem(code=Code.FILE_MISSING, message="signed file is missing", file=n)
                for n in missing
            ],
            "FILE_MISSING",
        )


def fingerprint(path: str) -> Fingerprint:
    """What changes when a file is rewritten or replaced (ctime cannot be set back)."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_checked(ctx: Context, name: str) -> tuple[Buffer, Fingerprint]:
    """``read_verified`` plus the file's fingerprint, the same before and after the read."""
    real = ctx.files[name].real
    before = fingerprint(real)
    buf = read_verified(ctx, name)
    after = fingerprint(real)
    if after != before:
        ctx.fail(
            f"{name} was replaced while it was being verified",
            [Problem(code=Code.FILE_CHANGED, message="replaced during verification", file=name)],
            "FILE_CHANGED",
        )
    return buf, after


def is_lazy_weight(ctx: Context, name: str) -> bool:
    """Whether a loader reads this file through a hooked function (so it is checked when opened)."""
    entry = ctx.entry(name)
    if entry is not None and entry.format in ("safetensors", "pickle"):
        return True
    return name.lower().endswith(_LAZY_SUFFIXES)


def explained(exc: VerificationError, what: str) -> VerificationError:
    """The same refusal, its message naming the operation, the files, the tensors and the rule."""
    problems = [p for p in exc.findings if isinstance(p, Problem)]
    details = "; ".join(
        f"{p.code} {p.file or ''}".rstrip() + (f" tensor {p.tensor!r}" if p.tensor else "")
        for p in problems[:6]
    )
    if len(problems) > 6:
        details += f"; and {len(problems) - 6} more"
    report = exc.result
    has_policy = getattr(report, "policy", None) is not None
    rule = "" if "policy rule" in exc.message else (" [rule signers]" if has_policy else "")
    message = f"{what}: {exc.message}{rule}" + (f" ({details})" if details else "")
    first = next((p for p in problems if p.tensor), problems[0] if problems else None)
    new = VerificationError(
        message,
        code=exc.code,
        findings=exc.findings,
        path=(first.file if first else None) or exc.path,
        tensor=first.tensor if first else exc.tensor,
        expected=first.expected if first else exc.expected,
        actual=first.actual if first else exc.actual,
    )
    new.result = exc.result
    return new


# -- transformers --------------------------------------------------------------------


def _json(name: str, buf: Buffer) -> dict[str, Any]:
    try:
        data = json.loads(bytes(buf))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{name} is not JSON: {exc}", code=Code.BAD_JSON, path=name) from exc
    if not isinstance(data, dict):
        raise InputError(f"{name} is not a JSON object", code=Code.BAD_JSON, path=name)
    return data


def _weight_names(ctx: Context, buffers: Mapping[str, Buffer]) -> list[str]:
    """The safetensors files transformers would load: the index's shards, or the model file."""
    indexes = [n for n in ("model.safetensors.index.json",) if n in buffers]
    if not indexes:
        indexes = sorted(
            n for n in buffers if n.endswith(".safetensors.index.json") and "/" not in n
        )
    if indexes:
        names: set[str] = set()
        for index in indexes:
            weight_map = _json(index, buffers[index]).get("weight_map", {})
            if isinstance(weight_map, dict):
                names.update(v for v in weight_map.values() if isinstance(v, str))
        return sorted(names)
    if "model.safetensors" in ctx.files:
        return ["model.safetensors"]
    return sorted(n for n in ctx.files if n.endswith(".safetensors") and "/" not in n)


def _verify_folder(ctx: Context, code: bool, memory: Memory = "copy") -> dict[str, Buffer]:
    """Check every signed file (every ``*.py`` too when ``code``); keep what the load needs.

    ``memory`` applies to the weight files the load uses (see ``read_verified``).
    """
    fail_missing(ctx)
    signed = set(signed_names(ctx))
    names = sorted(n for n in ctx.files if n in signed or (code and n.endswith(".py")))
    first = [
        n
        for n in names
        if n in ("config.json", "generation_config.json")
        or (n.endswith(".safetensors.index.json") and "/" not in n)
    ]
    buffers = {n: read_verified(ctx, n) for n in first}
    wanted = set(_weight_names(ctx, buffers))
    for n in names:
        if n in buffers:
            continue
        buf = read_verified(ctx, n, memory if n in wanted else "copy")
        if n in wanted or (code and n.endswith(".py")):
            buffers[n] = buf
    # Needed but not signed (tolerated by the policy): read_verified refuses or warns.
    for n in sorted(wanted | {"config.json"}):
        if n not in buffers:
            buffers[n] = read_verified(ctx, n, memory if n in wanted else "copy")
    return buffers


def _state_dict(ctx: Context, buffers: Mapping[str, Buffer]) -> dict[str, Any]:
    names = _weight_names(ctx, buffers)
    if not names:
        raise InputError(
            "no safetensors weights in the model (pickle weights are not loaded)",
            code=Code.NO_WEIGHTS,
            path=ctx.root,
        )
    sd: dict[str, Any] = {}
    for name in names:
        add_tensors(ctx, name, buffers[name], "torch", sd)
    return sd


class _VerifiedCode:
    """The verified ``*.py`` bytes written to a private folder, for transformers to import."""

    def __init__(self, buffers: Mapping[str, Buffer]) -> None:
        sources = {n: bytes(b) for n, b in buffers.items() if n.endswith(".py")}
        digest = hashlib.sha256()
        for n in sorted(sources):
            digest.update(n.encode() + b"\0" + hashlib.sha256(sources[n]).digest())
        self._tmp = tempfile.mkdtemp(prefix="modelsign-code-")
        # The folder name becomes the module name: one per code version.
        self.folder = os.path.join(self._tmp, f"verified_{digest.hexdigest()[:16]}")
        for n, data in sources.items():
            target = os.path.join(self.folder, *n.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)

    def load_class(self, reference: str) -> Any:
        if "--" in reference:
            raise InputError(
                f"remote code {reference!r} lives in another repository, "
                "which this model's signature does not cover",
                code=Code.CODE_NOT_COVERED,
            )
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        return get_class_from_dynamic_module(reference, self.folder, local_files_only=True)

    def close(self) -> None:
        shutil.rmtree(self._tmp)


def _is_model_class(obj: Any) -> bool:
    from transformers import PreTrainedModel

    return isinstance(obj, type) and issubclass(obj, PreTrainedModel)


def _remote_reference(
    auto_map: Mapping[str, Any], model_class: Any, architectures: list[str]
) -> str:
    if model_class is not None:
        key = getattr(model_class, "__name__", "")
        ref = auto_map.get(key)
        if not isinstance(ref, str):
            raise InputError(f"config.json's auto_map has no {key}", code=Code.USAGE)
        return ref
    refs = [v for k, v in auto_map.items() if k.startswith("AutoModel") and isinstance(v, str)]
    named = [r for r in refs if r.rsplit(".", 1)[-1] in architectures]
    if named:
        return named[0]
    if len(refs) == 1:
        return refs[0]
    raise InputError(
        "config.json's auto_map names several model classes: pass model_class", code=Code.USAGE
    )


def _build(
    config_json: dict[str, Any],
    code: _VerifiedCode | None,
    model_class: Any,
    kwargs: dict[str, Any],
) -> tuple[Any, Any, dict[str, Any]]:
    """(model class, config, remaining kwargs) from verified config bytes and code."""
    import transformers

    auto_map = config_json.get("auto_map") if code is not None else None
    architectures = [a for a in config_json.get("architectures") or [] if isinstance(a, str)]
    if isinstance(auto_map, dict) and isinstance(auto_map.get("AutoConfig"), str):
        assert code is not None
        config_class = code.load_class(auto_map["AutoConfig"])
    else:
        model_type = config_json.get("model_type")
        if not isinstance(model_type, str) or model_type not in transformers.CONFIG_MAPPING:
            hint = (
                " (remote code? pass trust_remote_code=True)" if "auto_map" in config_json else ""
            )
            raise InputError(
                f"config.json has model_type {model_type!r}, which this transformers "
                f"does not know{hint}",
                code=Code.UNKNOWN_MODEL_TYPE,
                path="config.json",
            )
        config_class = transformers.CONFIG_MAPPING[model_type]
    config, rest = config_class.from_dict(config_json, return_unused_kwargs=True, **kwargs)
    if _is_model_class(model_class):
        return model_class, config, rest
    if isinstance(auto_map, dict) and code is not None:
        return (
            code.load_class(_remote_reference(auto_map, model_class, architectures)),
            config,
            rest,
        )
    if model_class is not None:
        # An Auto class: let it pick the concrete class, on the meta device (nothing allocated).
        import torch

        with torch.device("meta"):
            probe = model_class.from_config(config)
        return type(probe), config, rest
    cls = getattr(transformers, architectures[0], None) if architectures else None
    if not _is_model_class(cls):
        raise InputError(
            f"cannot tell the model class from config.json's architectures {architectures}: "
            "pass model_class",
            code=Code.USAGE,
            path="config.json",
        )
    return cls, config, rest


def load_transformers(
    model: str | os.PathLike[str],
    *,
    model_class: Any | None = None,
    policy: Policy | None = None,
    verifier: Verifier | None = None,
    signature: str | os.PathLike[str] | None = None,
    trust_remote_code: bool = False,
    torch_dtype: Any = None,
    memory: Memory = "copy",
    now: datetime | None = None,
    **kwargs: Any,
) -> Any:
    """A transformers model built only from verified bytes, in eval mode.

    ``model`` is a folder, a Hugging Face cache snapshot (or repo folder), or a
    repo id found in the cache offline (``revision=`` and ``cache_dir=`` pick
    it). The whole folder is verified before anything is imported or built:
    a failure raises :class:`VerificationError` naming the file and tensor (a
    warn-mode policy warns). ``model_class`` is a model class or an Auto class
    (default: config.json's ``architectures``). Other keyword arguments go to
    ``from_pretrained`` (config attributes update the config, as there).
    ``model.modelsign_report`` is the :class:`LoadReport`. ``memory`` is
    where the verified weight bytes live, as for ``load_safetensors``.
    """
    check_memory(memory)
    folder = _model_folder(model, kwargs)
    what = f"load_transformers({folder})"
    try:
        ctx = open_context(folder, signature=signature, verifier=verifier, policy=policy, now=now)
        buffers = _verify_folder(ctx, trust_remote_code, memory)
        config_json = _json("config.json", buffers["config.json"])
        state_dict = _state_dict(ctx, buffers)
    except VerificationError as exc:
        raise explained(exc, what) from exc
    code = _VerifiedCode(buffers) if trust_remote_code else None
    try:
        cls, config, rest = _build(config_json, code, model_class, kwargs)
    finally:
        if code is not None:
            code.close()
    if torch_dtype is not None:
        rest["torch_dtype"] = torch_dtype
    loaded, info = cls.from_pretrained(
        None, config=config, state_dict=state_dict, output_loading_info=True, **rest
    )
    return _finished(ctx, loaded, info, buffers)


def _finished(
    ctx: Context, loaded: Any, info: Mapping[str, Any], buffers: dict[str, Buffer]
) -> Any:
    """The built model with its signed generation config, in eval mode, with its report."""
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        ctx.report.warnings.append(
            "parameters not in the signed weights (initialised, not loaded): "
            + ", ".join(missing[:10])
        )
    gen = buffers.get("generation_config.json")
    if gen is not None and ctx.signed_digest("generation_config.json") is not None:
        _set_generation_config(loaded, _json("generation_config.json", gen))
    loaded.eval()
    loaded.modelsign_report = ctx.report
    return loaded


def _model_folder(model: str | os.PathLike[str], kwargs: dict[str, Any]) -> str:
    """The folder to load (taking ``revision`` and ``cache_dir`` out of ``kwargs``)."""
    for bad in ("state_dict", "gguf_file", "config"):
        if bad in kwargs:
            raise InputError(f"load_transformers builds {bad!r} itself", code=Code.USAGE)
    revision = kwargs.pop("revision", None)
    cache_dir = kwargs.pop("cache_dir", None)
    folder = resolve_model_folder(model, revision=revision, cache_dir=cache_dir)
    if not os.path.isdir(folder):
        raise InputError("load_transformers loads a model folder", code=Code.USAGE, path=folder)
    return folder


def _set_generation_config(model: Any, data: dict[str, Any]) -> None:
    can: Callable[[], bool] | None = getattr(model, "can_generate", None)
    if can is not None and can():
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_dict(data)

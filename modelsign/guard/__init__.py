"""Load-time verification for code that calls safetensors, torch and transformers itself.

``install(policy=...)`` patches, in this process only:

- ``safetensors.safe_open``, ``safetensors.torch.load_file``,
  ``safetensors.numpy.load_file``: the file's model is verified (signature
  ``FILE.sig`` beside it, else ``model.sig`` in its folder) and the tensors
  are views over the verified buffer — a private copy, or with
  ``memory="mapped"``/``"auto"`` the page cache held under a read lease
  (see ``modelsign.load._mapped``), never a mapping made after the check;
- ``torch.load`` of a path: judged by the formats rule's pickle setting (a
  policy without the rule denies pickle). ``deny`` refuses it;
  ``safe-state-dicts`` analyses the verified bytes themselves and refuses them
  unless every pickle imports only allowlisted globals; ``allow`` (or lists
  that allow pickle) admits them. The signed bytes are unpickled from memory,
  not the path, and — unless the policy says ``pickle: allow`` or its formats
  rule only warns — with ``weights_only=True``, whatever the caller passed
  (``weights_only=False`` is overridden; a ``pickle_module`` is refused).
  ``torch.serialization._open_file_like`` too, which is how ``torch.load``
  opens a path: a ``load`` bound before ``install`` (``from torch import
  load``) is checked there, where its arguments are already settled, so
  ``weights_only=False`` (or ``mmap=True``) through it is refused instead;
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

import os
import sys
from collections.abc import Mapping

from .._internal.signature.verifiers import Verifier
from .._trust import resolve_trust
from ..load._context import Memory, check_memory
from ..policy import Policy
from ._patching import HOOKED, ImportHook, patch_all, rebind
from ._replacements import FUNCTIONS
from ._state import LOCK, ORIGINAL, Guard, current, set_current

__all__ = ["install", "install_from_env", "installed", "uninstall"]

ENV_VAR = "MODELSIGN_POLICY"
MEMORY_ENV_VAR = "MODELSIGN_MEMORY"


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
    check_memory(memory)
    pol = policy if isinstance(policy, Policy) else Policy.load(policy)
    resolve_trust(verifier, pol)  # a usage error now, not at the first load
    ver = verifier
    with LOCK:
        g = current()
        if g is not None:
            g.policy, g.verifier, g.memory = pol, ver, memory
            return
        g = Guard(pol, ver, ImportHook(), memory=memory)
        set_current(g)
        sys.meta_path.insert(0, g.finder)
        patch_all(g, sorted(HOOKED | {"torch.serialization"}))


def uninstall() -> None:
    """Put back every function the guard replaced (a no-op when not installed)."""
    with LOCK:
        g = current()
        if g is None:
            return
        set_current(None)
        if g.finder in sys.meta_path:
            sys.meta_path.remove(g.finder)
        for owner, attr, old, new in reversed(g.patched):
            now = vars(owner).get(attr) if isinstance(owner, type) else getattr(owner, attr)
            if now is new:
                setattr(owner, attr, old)
        # Modules imported while installed bound the replacements by name: rebind them.
        rebind({id(fn): ORIGINAL[k] for k, fn in FUNCTIONS.items() if k in ORIGINAL}, None)


def installed() -> bool:
    """Whether the guard is active in this process."""
    return current() is not None


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

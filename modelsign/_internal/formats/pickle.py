"""Content-based detection of pickle-based model files.

Loading a pickle runs code, so these files are recognised by what they contain,
not by their names: a torch ZIP checkpoint (a ZIP with a ``*.pkl`` member) or a
raw pickle stream. Protocols 0 and 1 have no magic number; for them the first
opcodes are checked, and only under a pickle-ish name, to keep text files out.
"""

from __future__ import annotations

import io
import pickletools
import re

from .ziparchive import ZIP_MAGIC

TORCH_EXTENSIONS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")
"""Names under which pickle-based checkpoints are usually published."""

_OPCODES = {op.code: op for op in pickletools.opcodes}
# Opcodes a protocol 0/1 pickle can start with: each pushes onto an empty stack.
_START_OPCODES = frozenset("(}])cILFSVNJKMGTUXP")


def sniff_pickle(head: bytes, lower_name: str) -> str | None:
    """Classify a file from its first 16 bytes and lower-cased name.

    Returns ``"torch-zip"`` for a ZIP under a torch checkpoint name (confirm with
    :func:`~.checkpoint.read_checkpoint`), ``"pickle"`` for a pickle stream, else ``None``.
    """
    pickle_name = lower_name.endswith(TORCH_EXTENSIONS)
    if head.startswith(ZIP_MAGIC):
        return "torch-zip" if pickle_name else None
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if pickle_name and _looks_like_old_pickle(head):
        return "pickle"
    return None


def _looks_like_old_pickle(head: bytes) -> bool:
    """True if ``head`` decodes as protocol 0/1 opcodes up to its end or a STOP."""
    if not head or chr(head[0]) not in _START_OPCODES:
        return False
    stream = io.BytesIO(head)
    while True:
        code = stream.read(1).decode("latin-1")
        if not code:
            return True
        op = _OPCODES.get(code)
        if op is None or op.proto > 1:
            return False
        if op.arg is not None:
            at = stream.tell()
            try:
                op.arg.reader(stream)
            except ValueError:
                ran_out = stream.tell() >= len(head)
                return _plausible_cut_argument(code, op.arg.n, head[at:], ran_out)
        if op.name == "STOP":
            return True


# What the start of a newline-terminated argument may look like, when the 16
# sniffed bytes end inside it (text such as "Install..." would otherwise pass).
_PARTIAL_LINE_ARGS = {
    "I": re.compile(rb"[-+]?[0-9]*"),
    "L": re.compile(rb"[-+]?[0-9]*L?"),
    "F": re.compile(rb"[-+]?[0-9.eEinfa]*"),
    "S": re.compile(rb"['\"][^\n]*"),
    "c": re.compile(rb"[A-Za-z_][\w.]*(?:\n[A-Za-z_]?[\w.]*)?"),
    "i": re.compile(rb"[A-Za-z_][\w.]*(?:\n[A-Za-z_]?[\w.]*)?"),
    "g": re.compile(rb"[0-9]*"),
    "p": re.compile(rb"[0-9]*"),
}


def _plausible_cut_argument(code: str, n: int, rest: bytes, ran_out: bool) -> bool:
    """Whether an argument that failed to decode was merely cut off by the sniff window."""
    if n == pickletools.UP_TO_NEWLINE:
        pattern = _PARTIAL_LINE_ARGS.get(code)
        cut = b"\n" not in rest or (code in "ci" and rest.count(b"\n") == 1)
        return cut and (not rest or pattern is None or pattern.fullmatch(rest) is not None)
    # A fixed-size or length-prefixed argument is cut if its reader ran out of bytes
    # (a negative length, say, fails earlier).
    return ran_out

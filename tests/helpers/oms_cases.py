"""Small models with the layouts OMS signers disagree on, shared by the conformance tests.

Each ``Case`` writes a model (a folder named ``model``, or one file), says which
files must be signed, which must be left out (ignored at signing, or git files
at the top level, §6.2.1), and which signed file to tamper with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

WEIGHTS = bytes(range(256)) * 16


@dataclass(frozen=True)
class Case:
    name: str
    files: dict[str, bytes]
    tamper: str  # a signed file: changing it must fail verification
    single_file: str | None = None  # the model is this one file, not the folder
    ignored: tuple[str, ...] = ()  # left out at signing (--ignore / --ignore-paths)
    unsigned: tuple[str, ...] = ()  # present but never signed (top-level git files)
    order: list[str] = field(default_factory=list)  # expected resource names, if not sorted

    def build(self, parent: Path) -> Path:
        """Write the model under ``parent``; return what to sign (the folder or the file)."""
        folder = parent / "model"
        for name, data in self.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return folder / self.single_file if self.single_file else folder

    @property
    def signed(self) -> list[str]:
        """The resource names a signer must list (code-point order, as the spec says)."""
        if self.single_file:
            return ["."]  # what model_signing names a single-file model's resource
        out = [n for n in self.files if not n.startswith(self.ignored + self.unsigned)]
        return sorted(out)

    def touch_unsigned(self, model: Path) -> None:
        """Rewrite every ignored and unsigned file: verification must not care."""
        for name in self.files:
            if name.startswith(self.ignored + self.unsigned):
                (model / name).write_bytes(b"changed after signing\n")

    def do_tamper(self, model: Path) -> None:
        """Change one byte of the signed file ``tamper`` (or give an empty one a byte)."""
        path = model if self.single_file else model / self.tamper
        data = bytearray(path.read_bytes()) or bytearray(b"\x00")
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


CASES = [
    Case("single-file", {"weights.bin": WEIGHTS}, "weights.bin", single_file="weights.bin"),
    Case(
        "nested",
        {
            "config.json": b'{"layers": 2}\n',
            "a/b/c/deep.bin": WEIGHTS,
            "a/b/sibling.txt": b"sibling\n",
            "z/one.bin": b"\x01" * 100,
        },
        "a/b/c/deep.bin",
    ),
    Case(
        "special-names",
        {
            "with space.bin": WEIGHTS,
            "colon:name.bin": b"colon\n",
            "hash#tag.txt": b"hash\n",
            "per%20cent.txt": b"percent\n",
            "caf\u00e9.bin": b"nfc e-acute\n",
            "\u65e5\u672c/\u30e2\u30c7\u30eb.bin": b"japanese\n",
            # code point order (spec): A, a-b, a.b, a/b; per component (model_signing): A, a/b, ...
            "A": b"upper A\n",
            "a/b": b"a slash b\n",
            "a-b": b"a dash b\n",
            "a.b": b"a dot b\n",
        },
        "\u65e5\u672c/\u30e2\u30c7\u30eb.bin",
    ),
    Case(
        "empty-files",
        {"weights.bin": WEIGHTS, "empty": b"", "sub/empty.txt": b"", "sub/deeper/zero": b""},
        "sub/empty.txt",
    ),
    Case(
        "dotfiles",
        {
            "weights.bin": WEIGHTS,
            ".hidden": b"hidden file\n",
            ".config/settings.json": b"{}\n",
            ".git/HEAD": b"ref: refs/heads/main\n",
            ".github/CODEOWNERS": b"* @owner\n",
            ".gitignore": b"*.tmp\n",
            ".gitattributes": b"*.bin filter=lfs\n",
            # Not at the top level: signed like any file (spec 6.2.1).
            "sub/.git/HEAD": b"ref: refs/heads/nested\n",
            "sub/.github/CODEOWNERS": b"* @nested\n",
            "sub/.gitignore": b"*.log\n",
        },
        "sub/.git/HEAD",
        unsigned=(".git/", ".github/", ".gitignore", ".gitattributes"),
    ),
    Case(
        "ignored-paths",
        {
            "weights.bin": WEIGHTS,
            "keep.txt": b"signed\n",
            "scratch/notes.txt": b"draft\n",
            "scratch/sub/x.bin": b"\x00" * 64,
            "run.log": b"step 1\n",
        },
        "keep.txt",
        ignored=("scratch/", "run.log"),
    ),
]
CASE_IDS = [c.name for c in CASES]

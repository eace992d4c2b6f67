"""The check core on its own: a statement and observations in, every problem out — no files.

Every test builds a signed statement and what a reader saw as plain values;
the file system is closed off (``no_io``) to show the core never reaches it.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from modelsign._internal.check.compare import Problem
from modelsign._internal.check.facts import Listing, Observed, Seen
from modelsign._internal.check.judge import judge, parts_problems, read_problems, size_problems
from modelsign._internal.check.plan import make_plan
from modelsign._internal.manifest import FileEntry, Hashing, Manifest, TensorEntry, WeightsInfo
from modelsign._internal.signature.shards import Shard
from modelsign._internal.signature.statement import (
    PREDICATE_V1,
    Resource,
    SignedStatement,
    root_digest,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


HEADER = sha(b"header")
A, B = sha(b"tensor a"), sha(b"tensor b")
SAFE = sha(b"the whole safetensors file")  # its file digest (never recomputed here)
CONFIG = sha(b"{}")


@pytest.fixture(autouse=True)
def no_io(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The core is pure: any attempt to open or list a file fails the test."""

    def guarded(real: Any) -> Any:
        def refuse(*args: Any, **kw: Any) -> Any:
            # Only calls made from within modelsign are refused: pytest's reporting (linecache,
            # tmp-dir cleanup) must still work when an assertion fails.
            frame: Any = sys._getframe(1)
            while frame is not None:
                caller = frame.f_globals.get("__name__", "")
                if caller.startswith("modelsign"):
                    raise AssertionError(f"the check core touched the file system ({caller})")
                frame = frame.f_back
            return real(*args, **kw)

        return refuse

    for owner, name in ((builtins, "open"), (os, "open"), (os, "stat"), (os, "scandir")):
        monkeypatch.setattr(owner, name, guarded(getattr(owner, name)))
    yield


def weights(tensors: Mapping[str, str | None], header: str = HEADER) -> WeightsInfo:
    """A safetensors layout: an 8-byte header, then one 4-byte tensor per name."""
    entries = [
        TensorEntry(name=n, dtype="F32", shape=[1], offset=8 + 4 * i, length=4, digest=d)
        for i, (n, d) in enumerate(tensors.items())
    ]
    return WeightsInfo.model_construct(
        format="safetensors",
        header_size=8,
        header_digest=header,
        tensor_count=len(entries),
        tensors=entries,
    )


SIGNED_WEIGHTS = weights({"a": A, "b": B})
SAFE_SIZE = 8 + 4 * 2


def statement(
    files: Mapping[str, tuple[int, str, WeightsInfo | None]] | None = None,
    *,
    manifest: bool = True,
    algorithm: str = "sha256",
) -> SignedStatement:
    """A verified statement over ``files`` (name → size, SHA-256, weights)."""
    files = files or {
        "config.json": (2, CONFIG, None),
        "model.safetensors": (SAFE_SIZE, SAFE, SIGNED_WEIGHTS),
    }
    resources = tuple(Resource(n, algorithm, d) for n, (_, d, _) in sorted(files.items()))
    m = None
    if manifest:
        entries = [
            FileEntry(path=n, size=s, sha256=d, format="safetensors" if w else "opaque", weights=w)
            for n, (s, d, w) in sorted(files.items())
        ]
        m = Manifest.model_construct(
            name="tiny",
            single_file=False,
            hashing=Hashing(tensor="sha256", header="sha256"),
            files=entries,
        )
    return SignedStatement(
        PREDICATE_V1, "tiny", root_digest(resources), resources, "files", algorithm,
        False, (), m,
    )  # fmt: skip


def listing(**sizes: int) -> Listing:
    return Listing({n.replace("__", "."): s for n, s in sizes.items()})


ON_DISK = {"config.json": 2, "model.safetensors": SAFE_SIZE}
ALL_READ = {"config.json": Seen(sha256=CONFIG), "model.safetensors": Seen(sha256=SAFE)}


def codes(problems: tuple[Problem, ...] | list[Problem]) -> list[tuple[str, str | None]]:
    return [(p.code, p.file) for p in problems]


# -- the plan --------------------------------------------------------------------------


def test_plan_checks_covered_weights_by_their_parts_and_the_rest_whole() -> None:
    plan = make_plan(statement(), Listing(ON_DISK))
    assert plan.methods == {"config.json": "whole", "model.safetensors": "fast"}
    assert [want for *_, want in plan.parts["model.safetensors"]] == [HEADER, A, B]
    assert plan.total == 2 + SAFE_SIZE and plan.present == ("config.json", "model.safetensors")


def test_plan_reads_only_extra_files_of_a_missing_files_size() -> None:
    disk = {"model.safetensors": SAFE_SIZE, "cfg.json": 2, "notes.txt": 100, "x.log": 2}
    plan = make_plan(statement(), Listing(disk), ignore=["*.log"])
    assert plan.missing == ("config.json",) and plan.excused == ("x.log",)
    assert plan.extra == ("cfg.json", "notes.txt") and plan.candidates == ("cfg.json",)


def test_plan_of_another_size_reads_nothing() -> None:
    plan = make_plan(statement(), Listing({**ON_DISK, "model.safetensors": 999}))
    assert plan.methods["model.safetensors"] == "size" and "model.safetensors" not in plan.parts


# -- judging a whole model ---------------------------------------------------------------


def test_everything_as_signed() -> None:
    found = judge(statement(), Observed(Listing(ON_DISK), ALL_READ))
    assert found.problems == ()
    assert (found.files_verified, found.bytes_verified) == (2, 2 + SAFE_SIZE)
    assert (found.files_by_tensor_digests, found.tensors_verified) == (0, 2)


def test_parts_as_signed_verify_by_tensor_digests() -> None:
    seen = {**ALL_READ, "model.safetensors": Seen(parts=(HEADER, A, B))}
    found = judge(statement(), Observed(Listing(ON_DISK), seen))
    assert found.problems == () and found.files_by_tensor_digests == 1


def test_a_changed_tensor_is_named_with_both_digests() -> None:
    changed = sha(b"tensor b, changed")
    seen = {
        **ALL_READ,
        "model.safetensors": Seen(sha256="f" * 64, weights=weights({"a": A, "b": changed})),
    }
    (modified, tensor) = judge(statement(), Observed(Listing(ON_DISK), seen)).problems
    assert (modified.code, modified.message) == ("FILE_MODIFIED", "file content changed")
    assert (modified.expected, modified.actual) == (SAFE, "f" * 64)
    assert (tensor.code, tensor.tensor) == ("TENSOR_MODIFIED", "b")
    assert (tensor.expected, tensor.actual) == (B, changed)


def test_a_file_that_no_longer_parses() -> None:
    seen = {**ALL_READ, "model.safetensors": Seen(sha256="e" * 64, unparsable="TRUNCATED: x")}
    (p,) = judge(statement(), Observed(Listing(ON_DISK), seen)).problems
    assert p.code == "FILE_MODIFIED"
    assert p.message == "file content changed and no longer parses (TRUNCATED: x)"


def test_missing_renamed_extra_and_excused() -> None:
    disk = {"model.safetensors": SAFE_SIZE, "cfg.json": 2, "notes.txt": 100, "x.log": 2}
    seen = {"model.safetensors": Seen(sha256=SAFE)}
    observed = Observed(Listing(disk), seen, extra_sha256={"cfg.json": CONFIG})
    found = judge(statement(), observed, ignore=["*.log"])
    by_code = {p.code: p for p in found.problems}
    assert codes(found.problems) == [
        ("FILE_RENAMED", "config.json"),
        ("FILE_EXTRA", "notes.txt"),
        ("FILE_UNSIGNED_IGNORED", "x.log"),
    ]
    assert (by_code["FILE_RENAMED"].expected, by_code["FILE_RENAMED"].actual) == (
        "config.json",
        "cfg.json",
    )
    assert by_code["FILE_UNSIGNED_IGNORED"].severity == "info"
    gone = judge(statement(), Observed(Listing({"model.safetensors": SAFE_SIZE}), seen))
    (missing,) = gone.problems
    assert (missing.code, missing.file, missing.expected) == ("FILE_MISSING", "config.json", CONFIG)


def test_another_size_is_told_from_the_header_alone() -> None:
    header = weights({"a": None, "c": None})
    seen = {**ALL_READ, "model.safetensors": Seen(weights=header)}
    disk = {**ON_DISK, "model.safetensors": 1000}
    problems = judge(statement(), Observed(Listing(disk), seen)).problems
    assert codes(problems) == [
        ("FILE_SIZE_MISMATCH", "model.safetensors"),
        ("TENSOR_REMOVED", "model.safetensors"),
        ("TENSOR_ADDED", "model.safetensors"),
    ]
    assert (problems[0].expected, problems[0].actual) == (str(SAFE_SIZE), "1000")
    assert problems[0].message == f"file is 1000 bytes, {SAFE_SIZE} were signed; not read"
    unparsable = Seen(unparsable="TRUNCATED: the header is cut")
    (p,) = judge(
        statement(), Observed(Listing(disk), {**seen, "model.safetensors": unparsable})
    ).problems
    assert p.message.endswith("; it no longer parses (TRUNCATED: the header is cut)")


def test_another_algorithm_is_compared_whole() -> None:
    digest = hashlib.blake2b(b"x").hexdigest()
    st = statement({"w.bin": (1, digest, None)}, manifest=False, algorithm="blake2b")
    ok = judge(st, Observed(Listing({"w.bin": 1}), {"w.bin": Seen(sha256=digest)}))
    assert ok.problems == () and ok.files_verified == 1
    bad = judge(st, Observed(Listing({"w.bin": 1}), {"w.bin": Seen(sha256="0" * 128)}))
    assert [p.message for p in bad.problems] == ["file content changed (blake2b)"]


def test_a_single_file_signature_is_not_a_folders_and_the_reverse() -> None:
    one = statement({".": (2, CONFIG, None)}, manifest=False)
    (p,) = judge(one, Observed(Listing(ON_DISK), ALL_READ)).problems
    assert (p.code, p.file) == ("SIGNATURE_FOR_FILE", None)
    single = Listing({"config.json": 2}, single_file=True)
    (p,) = judge(statement(), Observed(single, ALL_READ)).problems
    assert (p.code, p.file) == ("SIGNATURE_FOR_FOLDER", "config.json")
    assert judge(one, Observed(single, {"config.json": Seen(sha256=CONFIG)})).problems == ()


def test_what_the_reader_could_not_read_is_said_and_never_passes() -> None:
    walk = Problem(code="SYMLINK_REFUSED", message="a link", file="x")
    found = judge(statement(), Observed(Listing({}, problem=walk)))
    assert codes(found.problems)[0] == ("FILE_MISSING", "config.json")
    assert ("SYMLINK_REFUSED", "x") in codes(found.problems)
    failure = Problem(code="FILE_CHANGED", message="file changed while being verified")
    seen = {**ALL_READ, "model.safetensors": Seen(failure=failure)}
    assert codes(judge(statement(), Observed(Listing(ON_DISK), seen)).problems) == [
        ("FILE_CHANGED", None)
    ]
    # A present signed file with no observation and no failure to explain it: never a pass.
    unread = judge(statement(), Observed(Listing(ON_DISK), {"config.json": Seen(sha256=CONFIG)}))
    assert codes(unread.problems) == [("FILE_NOT_CHECKED", "model.safetensors")]


# -- shard statements --------------------------------------------------------------------


def shard_statement() -> SignedStatement:
    tiles = (Shard(0, 4, sha(b"0")), Shard(4, 8, sha(b"1")), Shard(8, 10, sha(b"2")))
    resources = tuple(Resource(f"w.bin:{s.start}:{s.end}", "sha256", s.digest) for s in tiles)
    return SignedStatement(
        PREDICATE_V1, "tiny", root_digest(resources), resources, "shards", "sha256",
        False, (), None, shard_size=4, shards={"w.bin": tiles},
    )  # fmt: skip


def test_shards_name_the_first_changed_range() -> None:
    st = shard_statement()
    got = (sha(b"0"), "a" * 64, "b" * 64)
    observed = Observed(Listing({"w.bin": 10, "e": 0}), {"w.bin": Seen(shards=got)})
    problems = judge(st, observed).problems
    assert codes(problems) == [("FILE_EMPTY_UNLISTED", "e"), ("FILE_MODIFIED", "w.bin")]
    assert problems[1].message == "bytes 4:8 changed (sha256) (and 1 more shard)"
    assert (problems[1].expected, problems[1].actual) == (sha(b"1"), "a" * 64)


def test_shards_of_another_size_are_not_read() -> None:
    st = shard_statement()
    assert make_plan(st, Listing({"w.bin": 12})).methods == {"w.bin": "size"}
    (p,) = judge(st, Observed(Listing({"w.bin": 12}), {"w.bin": Seen()})).problems
    assert p.message == (
        "file is 12 bytes, the signed shards end at 10: "
        "2 bytes past the signed end are not covered by any shard"
    )


# -- one file, as a loader reads it ------------------------------------------------------


def test_a_loaders_buffer_with_the_signed_header_names_tensors_and_padding() -> None:
    want: list[str | bool] = [HEADER, A, B, True]
    got: list[str | bool] = [HEADER, A, "c" * 64, False]
    problems = read_problems("w", SIGNED_WEIGHTS, SAFE, "d" * 64, (want, got))
    assert [(p.code, p.tensor) for p in problems] == [
        ("FILE_MODIFIED", None),
        ("TENSOR_MODIFIED", "b"),
        ("PADDING_MODIFIED", None),
    ]
    assert problems[0].message == "content changed" and problems[0].actual == "d" * 64


def test_a_loaders_buffer_with_another_header_is_compared_as_parsed_again() -> None:
    want: list[str | bool] = [HEADER, A, B]
    got: list[str | bool] = ["0" * 64, A, B]
    reread = weights({"a": A}, header="0" * 64)
    problems = read_problems("w", SIGNED_WEIGHTS, SAFE, "d" * 64, (want, got), reread)
    assert [p.code for p in problems] == ["FILE_MODIFIED", "HEADER_MODIFIED", "TENSOR_REMOVED"]
    broken = Problem(code="TRUNCATED", message="no longer parses: cut", file="w")
    problems = read_problems("w", SIGNED_WEIGHTS, SAFE, "d" * 64, (want, got), broken)
    assert problems[1] == broken


def test_a_partial_load_checks_the_header_and_each_tensor_asked_for() -> None:
    b = SIGNED_WEIGHTS.tensors[1]
    assert parts_problems("w", SIGNED_WEIGHTS, [b], [HEADER, B]) == []
    problems = parts_problems("w", SIGNED_WEIGHTS, [b], ["0" * 64, "1" * 64])
    assert [(p.code, p.tensor) for p in problems] == [
        ("HEADER_MODIFIED", None),
        ("TENSOR_MODIFIED", "b"),
    ]


def test_size_problems_without_signed_weights_is_the_size_alone() -> None:
    (p,) = size_problems("w", 10, 12, None)
    assert (p.code, p.expected, p.actual) == ("FILE_SIZE_MISMATCH", "10", "12")

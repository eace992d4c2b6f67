"""Shard serialization (OMS §6.3.2): names, tiling, shard_size, and the statement parser."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from modelsign._internal.signature.shards import (
    Shard,
    parse_shard_name,
    resource_hash,
    shard_resources,
    shard_size_of,
    tile_shards,
)
from modelsign._internal.signature.statement import (
    PREDICATE_V1,
    STATEMENT_TYPE,
    Resource,
    parse_statement,
    root_digest,
)
from modelsign.errors import InputError, VerificationError

D = "ab" * 32


def res(*names: str, algorithm: str = "sha256") -> list[Resource]:
    return [Resource(n, algorithm, D) for n in names]


def code_of(fn: Any, *args: Any) -> str:
    with pytest.raises(VerificationError) as e:
        fn(*args)
    return e.value.code


# -- names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("w.bin:0:4096", ("w.bin", 0, 4096)),
        ("a:b:c:0:1", ("a:b:c", 0, 1)),  # colons in the file name: the LAST two are the range
        (".:4096:8192", (".", 4096, 8192)),
        ("x:9223372036854775806:9223372036854775807", ("x", (1 << 63) - 2, (1 << 63) - 1)),
    ],
)
def test_shard_names(name: str, want: tuple[str, int, int]) -> None:
    assert parse_shard_name(name) == want


@pytest.mark.parametrize(
    "name",
    [
        "nocolon",
        "a:b",
        ":5",
        "::5",
        ":0:5",
        "x:-1:4",
        "x:4:4",
        "x:5:2",
        "x:00:4",
        "x:0:04",
        "x:+1:4",
        "x:1_0:20",
        "x: 1:4",
        "x:1 :4",
        "x:0:4\n",
        "x:0:",
        "x::4",
        "x:0:١٢",  # Arabic-Indic digits: int() reads them, a byte offset must not
        "x:0:４",  # fullwidth
        "x:0:0x10",
        "x:0:1e3",
        "x:0:9223372036854775808",  # past off_t
        "x:0:" + "9" * 5000,  # int() of this raises ValueError in Python ≥ 3.11
    ],
)
def test_malformed_shard_names_are_refused_with_the_name(name: str) -> None:
    with pytest.raises(VerificationError) as e:
        parse_shard_name(name)
    assert e.value.code == "SHARD_NAME_INVALID"
    assert repr(name)[:40] in e.value.message


# -- tiling ---------------------------------------------------------------------


def test_tiling_groups_by_file_and_sorts_by_offset() -> None:
    got = tile_shards(res("b:4:6", "a:0:4", "b:0:4", "a:4:8", "a:8:9"), 4)
    assert got == {
        "a": (Shard(0, 4, D), Shard(4, 8, D), Shard(8, 9, D)),
        "b": (Shard(0, 4, D), Shard(4, 6, D)),
    }
    # one shard, shorter than shard_size, and exactly shard_size
    assert tile_shards(res("c:0:3"), 4) == {"c": (Shard(0, 3, D),)}
    assert tile_shards(res("c:0:4"), 4) == {"c": (Shard(0, 4, D),)}


@pytest.mark.parametrize(
    ("names", "code", "says"),
    [
        (("f:0:4", "f:2:6"), "SHARD_OVERLAP", "0:4 and 2:6"),
        (("f:0:4", "f:0:4"), "SHARD_OVERLAP", "0:4 and 0:4"),  # the same range twice
        (("f:0:4", "f:0:2"), "SHARD_OVERLAP", "0:2 and 0:4"),
        (("f:4:8",), "SHARD_GAP", "0:4"),  # must start at 0
        (("f:0:4", "f:8:12"), "SHARD_GAP", "4:8"),
        (("f:0:2", "f:2:6"), "SHARD_SIZE_MISMATCH", "0:2"),  # short middle shard
        (("f:0:4", "f:4:6", "f:6:10"), "SHARD_SIZE_MISMATCH", "4:6"),
        (("f:0:4", "f:4:9"), "SHARD_SIZE_MISMATCH", "4:9"),  # last longer than shard_size
        (("f:0:5",), "SHARD_SIZE_MISMATCH", "0:5"),
    ],
)
def test_bad_tilings(names: tuple[str, ...], code: str, says: str) -> None:
    with pytest.raises(VerificationError) as e:
        tile_shards(res(*names), 4)
    assert e.value.code == code
    assert "'f'" in e.value.message and says in e.value.message


def test_two_names_for_one_range() -> None:
    assert code_of(tile_shards, res("f:0:4096", "f:00:4096"), 4096) == "SHARD_NAME_INVALID"


# -- shard_size and algorithms ---------------------------------------------------


@pytest.mark.parametrize(
    ("ser", "algorithms", "want"),
    [
        ({"shard_size": 4096}, ["sha256"], 4096),
        ({"shard_size": 4096.0}, ["sha256-sharded-4096"], 4096),  # model_signing
        ({"shard_size": 4096}, ["sha256-sharded-4096"], 4096),
        ({"shard_size": 1000000000.0}, ["blake2b-sharded-1000000000"], 10**9),
        ({"shard_size": 4096.0}, ["sha256-sharded-4096.0"], 4096),
    ],
)
def test_shard_size_forms(ser: dict[str, Any], algorithms: list[str], want: int) -> None:
    got = shard_size_of(ser, algorithms)
    assert got == want and type(got) is int


@pytest.mark.parametrize(
    ("ser", "algorithms"),
    [
        ({}, ["sha256"]),
        ({"shard_size": True}, ["sha256"]),
        ({"shard_size": True}, ["sha256-sharded-1"]),
        ({"shard_size": 0}, ["sha256"]),
        ({"shard_size": -4096}, ["sha256"]),
        ({"shard_size": "4096"}, ["sha256"]),
        ({"shard_size": None}, ["sha256"]),
        ({"shard_size": [4096]}, ["sha256"]),
        ({"shard_size": 4096.0}, ["sha256"]),  # a float is model_signing's form only
        ({"shard_size": 4096.5}, ["sha256-sharded-4096"]),
        ({"shard_size": float("inf")}, ["sha256-sharded-4096"]),
        ({"shard_size": float("nan")}, ["sha256-sharded-4096"]),
        ({"shard_size": -4096.0}, ["sha256-sharded-4096"]),
        ({"shard_size": 4096}, ["sha256-sharded-1024"]),  # disagrees with N
        ({"shard_size": 4096.0}, ["sha256-sharded-4096", "sha256-sharded-1024"]),
    ],
)
def test_bad_shard_sizes(ser: dict[str, Any], algorithms: list[str]) -> None:
    assert code_of(shard_size_of, ser, algorithms) == "SHARD_SIZE_INVALID"


def test_shard_hash_normalises_and_must_match_hash_type() -> None:
    assert resource_hash("sha256-sharded-1000", "sha256") == "sha256"
    assert resource_hash("blake2b", "blake2b") == "blake2b"
    assert code_of(resource_hash, "blake2b-sharded-4", "sha256", "f:0:4") == "ALGORITHM_MISMATCH"
    assert code_of(resource_hash, "sha256", "blake3") == "ALGORITHM_MISMATCH"
    assert code_of(resource_hash, "md5", "sha256") == "UNKNOWN_ALGORITHM"
    assert code_of(resource_hash, "sha256", "md5") == "UNKNOWN_ALGORITHM"


# -- signing side ---------------------------------------------------------------


def test_shard_resources_spec_form_in_code_point_order() -> None:
    digests = {"b": ["1" * 64], "a": ["2" * 64, "3" * 64, "4" * 64], "e": []}
    out = shard_resources(digests, {"a": 10000, "b": 3, "e": 0}, 4096, "sha256")
    # "a:12288..." would sort before "a:4096..." numerically; the spec says code points
    assert [r["name"] for r in out] == ["a:0:4096", "a:4096:8192", "a:8192:10000", "b:0:3"]
    assert {r["algorithm"] for r in out} == {"sha256"}
    assert [r["digest"] for r in out] == ["2" * 64, "3" * 64, "4" * 64, "1" * 64]
    # and the parser reads back exactly these shards
    assert tile_shards(res(*(r["name"] for r in out)), 4096)["a"][-1].end == 10000
    with pytest.raises(InputError):
        shard_resources({"a": ["1" * 64]}, {"a": 5000}, 4096, "sha256")
    with pytest.raises(InputError):
        shard_resources({}, {}, 4096, "md5")


# -- the statement parser --------------------------------------------------------


def statement(names: list[str], *, algorithm: str = "sha256", **ser: Any) -> dict[str, Any]:
    resources = [{"name": n, "algorithm": algorithm, "digest": D} for n in names]
    digest = root_digest([Resource(n, algorithm, D) for n in names])
    serialization = {"method": "shards", "hash_type": "sha256", "allow_symlinks": False}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "m", "digest": {"sha256": digest}}],
        "predicateType": PREDICATE_V1,
        "predicate": {"resources": resources, "serialization": serialization | ser},
    }


def parse(st: dict[str, Any]) -> Any:
    # json, not RFC 8785: canonical JSON writes 4096.0 as 4096, model_signing does not
    return parse_statement(json.dumps(st).encode())


def test_parser_reads_both_forms_alike() -> None:
    spec = parse(statement(["x:y:0:4", "x:y:4:6"], shard_size=4))
    ms = parse(statement(["x:y:0:4", "x:y:4:6"], algorithm="sha256-sharded-4", shard_size=4.0))
    for st in (spec, ms):
        assert st.shard_size == 4 and st.method == "shards"
        assert st.shards == {"x:y": (Shard(0, 4, D), Shard(4, 6, D))}
        assert {r.algorithm for r in st.resources} == {"sha256"}
        assert st.files == {"x:y"}
    # the subject digest covers digests only: both forms name the same model
    assert (
        spec.subject_digest == ms.subject_digest == hashlib.sha256(bytes.fromhex(D) * 2).hexdigest()
    )


@pytest.mark.parametrize(
    ("st", "code"),
    [
        (statement(["f:0:4", "f:2:6"], shard_size=4), "SHARD_OVERLAP"),
        (statement(["f:0:4", "f:8:12"], shard_size=4), "SHARD_GAP"),
        (statement(["f:0:2", "f:2:6"], shard_size=4), "SHARD_SIZE_MISMATCH"),
        (statement(["f:0:4", "f:00:4"], shard_size=4), "SHARD_NAME_INVALID"),
        (statement(["f:a:b"], shard_size=4), "SHARD_NAME_INVALID"),
        (statement(["nocolon"], shard_size=4), "SHARD_NAME_INVALID"),
        (statement(["../x:0:4"], shard_size=4), "UNSAFE_NAME"),
        (statement(["f:0:4"], shard_size=4.0), "SHARD_SIZE_INVALID"),
        (statement(["f:0:4"], shard_size=True), "SHARD_SIZE_INVALID"),
        (statement(["f:0:4"]), "SHARD_SIZE_INVALID"),
        (statement(["f:0:4"], algorithm="sha256-sharded-8", shard_size=4.0), "SHARD_SIZE_INVALID"),
        (statement(["f:0:4"], algorithm="blake3", shard_size=4), "ALGORITHM_MISMATCH"),
        (statement(["f:0:4"], algorithm="sha256-sharded-x", shard_size=4), "UNKNOWN_ALGORITHM"),
    ],
)
def test_parser_refuses_bad_shard_statements(st: dict[str, Any], code: str) -> None:
    assert code_of(parse, st) == code


def test_files_method_must_not_carry_a_shard_size() -> None:
    st = statement(["f"], shard_size=4)
    st["predicate"]["serialization"]["method"] = "files"
    with pytest.raises(VerificationError) as e:
        parse(st)
    assert e.value.code == "STATEMENT_INVALID" and "serialization.shard_size" in e.value.message

"""Discovery: names, order, ignores, symlinks, special files, HF cache layout."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from modelsign._internal.discover import MAX_DEPTH, check_relative_name, discover
from modelsign.errors import DiscoveryError, InputError
from tests.helpers.deep import make_deep, remove_deep
from tests.helpers.hf_cache import make_hf_cache, touch


def names(root: Path, **kw: object) -> list[str]:
    return [f.path for f in discover(root, **kw).files]  # type: ignore[arg-type]


def test_code_point_order_and_nesting(tmp_path: Path) -> None:
    for n in ("a/b", "a-b", "a.b", "A", "z/y/x", "é"):
        touch(tmp_path / n)
    # code point order of the whole POSIX name, not component order
    assert names(tmp_path) == ["A", "a-b", "a.b", "a/b", "z/y/x", "é"]


def test_git_paths_and_patterns_are_ignored_and_recorded(tmp_path: Path) -> None:
    touch(tmp_path / "model.bin")
    touch(tmp_path / ".git" / "HEAD")
    touch(tmp_path / ".gitattributes")
    touch(tmp_path / "sub" / ".gitignore")
    touch(tmp_path / "sub" / ".git" / "HEAD")
    touch(tmp_path / "logs" / "run1.txt")
    touch(tmp_path / "notes.tmp")
    tree = discover(tmp_path, ignore=["logs", "*.tmp"])
    # The default exclusions are top-level names only (OMS §6.2.1): nested ones are signed.
    assert [f.path for f in tree.files] == ["model.bin", "sub/.git/HEAD", "sub/.gitignore"]
    assert tree.ignored == (".git", ".gitattributes", "logs", "notes.tmp")
    assert tree.ignore_patterns == ("logs", "*.tmp")


def test_exclude_exact_path(tmp_path: Path) -> None:
    touch(tmp_path / "w.bin")
    touch(tmp_path / "model.sig")
    tree = discover(tmp_path, exclude=["model.sig"])
    assert [f.path for f in tree.files] == ["w.bin"]
    assert tree.ignored == ("model.sig",)


def test_empty_model_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError) as e:
        discover(tmp_path)
    assert e.value.code == "EMPTY_MODEL"
    touch(tmp_path / ".gitattributes")
    with pytest.raises(DiscoveryError) as e:
        discover(tmp_path)
    assert e.value.code == "EMPTY_MODEL" and ".gitattributes" in e.value.message


def test_empty_files_are_part_of_the_model(tmp_path: Path) -> None:
    touch(tmp_path / "empty", b"")
    assert discover(tmp_path).files[0].size == 0


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        discover(tmp_path / "nope")
    assert e.value.code == "NOT_FOUND"


def test_single_file(tmp_path: Path) -> None:
    f = touch(tmp_path / "m.gguf", b"1234")
    tree = discover(f)
    assert tree.single_file and tree.name == "m.gguf"
    assert [x.path for x in tree.files] == ["m.gguf"] and tree.root == str(tmp_path)


def test_symlinks_refused_by_default(tmp_path: Path) -> None:
    touch(tmp_path / "real.bin")
    os.symlink("real.bin", tmp_path / "link.bin")
    with pytest.raises(DiscoveryError) as e:
        discover(tmp_path)
    assert e.value.code == "SYMLINK_REFUSED" and e.value.path == "link.bin"


def test_symlink_inside_root_allowed_when_asked(tmp_path: Path) -> None:
    touch(tmp_path / "real.bin", b"abc")
    os.symlink("real.bin", tmp_path / "link.bin")
    tree = discover(tmp_path, allow_symlinks=True)
    link = next(f for f in tree.files if f.path == "link.bin")
    assert link.symlink and link.real == str((tmp_path / "real.bin").resolve())


def test_symlink_out_of_root_refused_even_when_allowed(tmp_path: Path) -> None:
    outside = touch(tmp_path / "outside" / "secret")
    model = tmp_path / "model"
    touch(model / "w.bin")
    os.symlink(outside, model / "escape")
    with pytest.raises(DiscoveryError) as e:
        discover(model, allow_symlinks=True)
    assert e.value.code == "SYMLINK_ESCAPE"
    os.unlink(model / "escape")
    os.symlink("../outside", model / "dir-escape")
    with pytest.raises(DiscoveryError) as e:
        discover(model, allow_symlinks=True)
    assert e.value.code == "SYMLINK_ESCAPE"


def test_dangling_and_directory_symlinks(tmp_path: Path) -> None:
    touch(tmp_path / "w.bin")
    os.symlink("missing", tmp_path / "dangling")
    with pytest.raises(DiscoveryError) as e:
        discover(tmp_path, allow_symlinks=True)
    assert e.value.code == "SYMLINK_DANGLING"
    os.unlink(tmp_path / "dangling")
    (tmp_path / "d").mkdir()
    os.symlink("d", tmp_path / "dlink")
    with pytest.raises(DiscoveryError) as e:
        discover(tmp_path, allow_symlinks=True)
    assert e.value.code == "SYMLINK_NOT_FILE"


def test_fifo_refused_without_blocking(tmp_path: Path) -> None:
    touch(tmp_path / "w.bin")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(DiscoveryError) as e:
        discover(tmp_path)
    assert e.value.code == "SPECIAL_FILE" and "FIFO" in e.value.message
    with pytest.raises(DiscoveryError) as e:
        discover(tmp_path / "pipe")
    assert e.value.code == "SPECIAL_FILE"


def test_socket_refused(tmp_path: Path) -> None:
    touch(tmp_path / "w.bin")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(tmp_path / "sock"))
        with pytest.raises(DiscoveryError) as e:
            discover(tmp_path)
        assert e.value.code == "SPECIAL_FILE" and "socket" in e.value.message
    finally:
        s.close()


def test_non_utf8_name_refused(tmp_path: Path) -> None:
    touch(tmp_path / "w.bin")
    with open(os.path.join(os.fsencode(tmp_path), b"bad\xff"), "wb") as fh:
        fh.write(b"x")
    with pytest.raises(DiscoveryError) as e:
        discover(tmp_path)
    assert e.value.code == "BAD_NAME"


@pytest.mark.parametrize(
    "name", ["", "../x", "a/../b", "/etc/passwd", "a//b", "./a", "a\x00b", "a\\b", "C:\\x"]
)
def test_bad_relative_names(name: str) -> None:
    with pytest.raises(DiscoveryError) as e:
        check_relative_name(name)
    assert e.value.code == "BAD_NAME"


def test_hf_cache_repo_and_snapshot(tmp_path: Path) -> None:
    repo = make_hf_cache(tmp_path, {"config.json": b"{}", "sub/w.bin": b"12"})
    for target in (repo, repo / "snapshots" / ("a" * 40)):
        tree = discover(target)
        assert tree.hf is not None and tree.hf.repo_id == "acme/tiny"
        assert tree.hf.revision == "a" * 40 and tree.name == "acme/tiny"
        assert [f.path for f in tree.files] == ["config.json", "sub/w.bin"]
        assert all(f.symlink for f in tree.files)


def test_hf_cache_link_outside_blobs_refused(tmp_path: Path) -> None:
    repo = make_hf_cache(tmp_path, {"config.json": b"{}"})
    touch(tmp_path / "elsewhere", b"evil")
    os.symlink(tmp_path / "elsewhere", repo / "snapshots" / ("a" * 40) / "evil.bin")
    with pytest.raises(DiscoveryError) as e:
        discover(repo)
    assert e.value.code == "SYMLINK_ESCAPE" and e.value.path == "evil.bin"


def test_hf_cache_bad_ref(tmp_path: Path) -> None:
    repo = make_hf_cache(tmp_path, {"config.json": b"{}"})
    (repo / "refs" / "main").write_text("not-a-commit")
    with pytest.raises(DiscoveryError) as e:
        discover(repo)
    assert e.value.code == "HF_CACHE_BAD_REF"


def test_name_inside(tmp_path: Path) -> None:
    from modelsign._internal.discover import name_inside

    assert name_inside(tmp_path, tmp_path / "a" / "b.sig") == "a/b.sig"
    assert name_inside(tmp_path, tmp_path / "..sig") == "..sig"
    assert name_inside(tmp_path, tmp_path) is None
    assert name_inside(tmp_path / "m", tmp_path / "x.sig") is None
    assert name_inside(tmp_path / "m", tmp_path / "m2" / "x.sig") is None


def test_folders_nested_too_deep_are_an_error_not_a_recursion_error(tmp_path: Path) -> None:
    """A walk never recurses: ~1,100 levels are TOO_DEEP (naming the path), 256 are fine."""
    (tmp_path / "ok").mkdir()
    make_deep(tmp_path / "ok", MAX_DEPTH)
    assert len(discover(tmp_path / "ok").files) == 1
    remove_deep(tmp_path / "ok")
    make_deep(tmp_path)
    try:
        with pytest.raises(DiscoveryError) as e:
            discover(tmp_path)
        assert e.value.code == "TOO_DEEP"
        assert e.value.path == "/".join(["d"] * (MAX_DEPTH + 1))
    finally:
        remove_deep(tmp_path)

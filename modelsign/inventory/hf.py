"""Hugging Face caches: repos, revisions and refs, and the content address of each blob."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Final

from .._internal._text import plural
from .._internal.discover import discover
from .._internal.metadata.provenance import SourceRepo
from .._internal.signature.location import signature_location
from .jobs import (
    SIDECARS,
    Address,
    Job,
    Jobs,
    Prepared,
    Unreadable,
    os_reason,
    read_small,
    walk_tree,
)

HF_REPO_DIR = re.compile(r"(models|datasets|spaces)--.")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_SHA1_HEX = re.compile(r"[0-9a-f]{40}")
_REF_LIMIT: Final = 100


def scan_hf(jobs: Jobs, cache: str) -> None:
    """Repos, revisions and refs from huggingface_hub's own cache scanner."""
    from huggingface_hub import scan_cache_dir

    repo_dirs = _model_repos(jobs, cache)
    if repo_dirs is None:
        return
    try:
        info = scan_cache_dir(cache)
    except OSError as exc:
        # It stops at the first unreadable ref or blob; go on repo by repo.
        reason = f"Hugging Face cache scan failed ({os_reason(exc)})"
        for repo_dir in repo_dirs:
            hf_repo(jobs, repo_dir, reason)
        return
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            _revision(
                jobs,
                repo.repo_id,
                str(repo.repo_path),
                rev.commit_hash,
                str(rev.snapshot_path),
                tuple(sorted(rev.refs)),
            )
    for warning in info.warnings:
        # A corrupted repo is skipped whole by the scanner: name it, and
        # inventory its revisions one by one so one broken link hides nothing.
        text = str(warning)
        named = next((d for d in repo_dirs if _mentions(text, d)), None)
        if named is not None:
            hf_repo(jobs, named, text)
        elif "models--" in text:
            jobs.broken(os.path.basename(cache), "huggingface", cache, text)
    incomplete: dict[str, list[str]] = {}
    for inc in info.incomplete_files:
        repo_dir = os.path.dirname(os.path.dirname(str(inc.file_path)))
        if os.path.basename(repo_dir).startswith("models--"):
            rel = os.path.relpath(str(inc.file_path), repo_dir)
            size = plural(inc.size_on_disk, "byte")
            incomplete.setdefault(repo_dir, []).append(f"{rel} ({size})")
    for repo_dir, parts in sorted(incomplete.items()):
        jobs.broken(
            repo_id_of(repo_dir) + " (download incomplete)",
            "huggingface",
            repo_dir,
            "download incomplete: " + ", ".join(sorted(parts)),
        )


def _model_repos(jobs: Jobs, cache: str) -> list[str] | None:
    try:
        entries = sorted(os.scandir(cache), key=lambda e: e.name)
    except OSError as exc:
        jobs.broken(os.path.basename(cache), "huggingface", cache, os_reason(exc))
        return None
    return [e.path for e in entries if e.name.startswith("models--")]


def _refs(jobs: Jobs, repo_dir: str, repo_id: str) -> dict[str, list[str]]:
    """Commit → the refs naming it, read from ``refs/`` (an unreadable ref is reported)."""
    refs: dict[str, list[str]] = {}
    refs_dir = os.path.join(repo_dir, "refs")
    for folder, _dirs, files in walk_tree(refs_dir, jobs.walk_error("huggingface")):
        for fname in files:
            path = os.path.join(folder, fname)
            try:
                commit = read_small(path, _REF_LIMIT).decode("ascii", "replace").strip()
            except (OSError, Unreadable) as exc:
                why = os_reason(exc) if isinstance(exc, OSError) else str(exc)
                jobs.broken(repo_id, "huggingface", path, f"ref unreadable: {why}")
                continue
            refs.setdefault(commit, []).append(os.path.relpath(path, refs_dir))
    return refs


def hf_repo(jobs: Jobs, repo_dir: str, reason: str) -> None:
    """Revisions of one repo from its layout, when the cache scanner gave up on it."""
    repo_id = repo_id_of(repo_dir)
    refs = _refs(jobs, repo_dir, repo_id)
    snaps = os.path.join(repo_dir, "snapshots")
    try:
        revisions = sorted(e.name for e in os.scandir(snaps) if e.is_dir(follow_symlinks=False))
    except OSError as exc:
        jobs.broken(repo_id, "huggingface", repo_dir, f"{reason}; {os_reason(exc)}")
        return
    if not revisions:
        jobs.broken(repo_id, "huggingface", repo_dir, reason)
    for commit in revisions:
        path = os.path.join(snaps, commit)
        _revision(jobs, repo_id, repo_dir, commit, path, tuple(sorted(refs.get(commit, []))))
    for commit, names in sorted(refs.items()):
        if commit not in revisions:
            jobs.broken(
                f"{repo_id}@{commit[:40]}",
                "huggingface",
                repo_dir,
                f"{', '.join(sorted(names))} points to {commit[:40]!r}, which has no snapshot",
            )


def _revision(
    jobs: Jobs, repo_id: str, repo_dir: str, commit: str, snapshot: str, refs: tuple[str, ...]
) -> None:
    def prepare() -> Prepared:
        # discover() allows snapshot links into this repo's blobs/ only.
        tree = discover(snapshot, exclude=SIDECARS)
        addresses: dict[str, Address] = {}
        for f in tree.files:
            if not f.symlink:
                continue
            link = os.path.join(tree.root, *f.path.split("/"))
            # The first hop is the etag: a shared-store blob it links to is named otherwise.
            etag = os.path.basename(os.readlink(link))
            if _SHA256_HEX.fullmatch(etag):
                addresses[f.path] = Address("sha256", etag, label=f"blobs/{etag}")
            elif _SHA1_HEX.fullmatch(etag):
                addresses[f.path] = Address("git-sha1", etag, label=f"blobs/{etag}")
        sig = signature_location(snapshot).signature
        source = SourceRepo(repository=repo_id, revision=commit, origin="hf-cache")
        # The blob names are checked here (by etag); the provenance comes from `source`.
        plain = dataclasses.replace(tree, hf=None)
        return Prepared(plain, snapshot, sig if os.path.lexists(sig) else None, addresses, source)

    jobs.jobs.append(
        Job(f"{repo_id}@{commit}", "huggingface", snapshot, prepare, None, commit, refs)
    )


def hf_folder(jobs: Jobs, folder: str, names: list[str]) -> bool:
    """A cache repo folder or snapshot folder met on its own (a ROOT inside a cache)."""
    parent = os.path.dirname(folder)
    repo_dir = os.path.dirname(parent)
    if os.path.basename(folder).startswith("models--") and "snapshots" in names:
        hf_repo(jobs, folder, "the repo has no snapshots")
        return True
    if os.path.basename(parent) == "snapshots" and HF_REPO_DIR.match(os.path.basename(repo_dir)):
        if os.path.basename(repo_dir).startswith("models--"):
            refs = _refs(jobs, repo_dir, repo_id_of(repo_dir)).get(os.path.basename(folder))
            name = repo_id_of(repo_dir)
            _revision(jobs, name, repo_dir, os.path.basename(folder), folder, tuple(refs or []))
        return True
    return False


def _mentions(text: str, path: str) -> bool:
    """Whether a message names ``path`` itself or something inside it."""
    i = text.find(path)
    while i >= 0:
        after = text[i + len(path) : i + len(path) + 1]
        if after in ("", os.sep, ")", ":", " ", ",", "'", '"', "."):
            return True
        i = text.find(path, i + 1)
    return False


def repo_id_of(repo_dir: str) -> str:
    return os.path.basename(repo_dir).split("--", 1)[-1].replace("--", "/")

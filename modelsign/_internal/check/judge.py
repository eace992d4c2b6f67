"""The judge: a signed statement and what was observed → every problem. No I/O.

``verify`` (and, through it, the inventory and ``watch``) hands :func:`judge`
the listing and the digests its reader measured; the loaders hand
:func:`read_problems` / :func:`parts_problems` what they hashed of one buffer.
Codes, messages and hex digests are decided here, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...codes import Code
from .._atomic import size_mismatch
from .._text import plural
from ..manifest import FileEntry, TensorEntry, WeightsInfo
from ..signature.statement import SignedStatement
from .compare import Problem, diff_layouts, diff_weights, header_modified, tensor_modified
from .facts import Judgement, Observed, Seen
from .plan import Plan, make_plan


def judge(st: SignedStatement, observed: Observed, *, ignore: Sequence[str] = ()) -> Judgement:
    """Every problem of the model ``observed`` against the verified statement ``st``.

    ``ignore`` are the verifier's patterns, which excuse unsigned files only.
    Problems come sorted by file, tensor and code; a signature for a single
    file given a folder (or the reverse) is the only problem, nothing compared.
    """
    plan = make_plan(st, observed.listing, ignore)
    head = [observed.listing.problem] if observed.listing.problem is not None else []
    if plan.refusal is not None:
        return Judgement((*head, plan.refusal))
    tally = _Tally(st)
    problems = head + [
        Problem(
            code=Code.FILE_EMPTY_UNLISTED,
            severity="info",
            message="zero-length file: shard signatures list no resource for empty files",
            file=n,
        )
        for n in plan.empty_unlisted
    ]
    problems += [
        Problem(code=Code.FILE_MISSING, message="signed (empty) file is missing", file=n)
        for n in plan.gone_empty
    ]
    problems += observed.failures
    for name in plan.present:
        seen = observed.seen.get(name)
        if seen is None and not observed.failures:
            # The reader reports why a file has no verdict; it must never go unsaid.
            seen = Seen(failure=Problem(code=Code.FILE_NOT_CHECKED, message="not read", file=name))
        if seen is not None:
            problems += _judge_file(st, plan, name, observed.listing.sizes[name], seen, tally)
    problems += _missing_and_extra(plan, observed.extra_sha256)
    problems.sort(key=lambda p: (p.file or "", p.tensor or "", p.code))
    return tally.judgement(problems)


@dataclass
class _Tally:
    st: SignedStatement
    files: int = 0
    by_tensors: int = 0
    tensors: int = 0
    bytes: int = 0

    def verified(self, size: int, entry: FileEntry | None, *, by_tensors: bool = False) -> None:
        self.files += 1
        self.bytes += size
        self.by_tensors += by_tensors
        m = self.st.manifest
        hashed = m is not None and m.hashing.tensor is not None
        if entry is not None and entry.weights is not None and hashed:
            self.tensors += entry.weights.tensor_count

    def judgement(self, problems: list[Problem]) -> Judgement:
        return Judgement(tuple(problems), self.files, self.by_tensors, self.tensors, self.bytes)


def _judge_file(
    st: SignedStatement, plan: Plan, name: str, size: int, seen: Seen, tally: _Tally
) -> list[Problem]:
    if seen.failure is not None:
        return [seen.failure]
    method = plan.methods[name]
    entry = st.entry(name)
    if method == "size":
        if st.method == "shards":
            return [_shard_size(name, size, plan.tiles[name][-1].end)]
        assert entry is not None  # a size is only compared with a manifest's
        weights = entry.weights
        return size_problems(name, entry.size, size, weights, seen.weights, seen.unparsable)
    if method == "shards":
        return _shards(st, plan, name, size, seen, tally)
    if method == "other":
        (r,) = plan.signed[name]
        if seen.sha256 != r.digest:
            message = f"file content changed ({r.algorithm})"
            return [_modified(name, r.digest, seen.sha256, message)]
        tally.verified(size, None)
        return []
    if seen.parts is not None and seen.parts == tuple(want for *_, want in plan.parts[name]):
        tally.verified(size, entry, by_tensors=True)
        return []
    return _whole(name, plan.expected(name), size, entry, seen, tally)


def _whole(
    name: str, expected: str, size: int, entry: FileEntry | None, seen: Seen, tally: _Tally
) -> list[Problem]:
    """A file judged by its whole SHA-256; what changed inside, from its layout."""
    if seen.sha256 == expected:
        tally.verified(size, entry)
        return []
    if seen.sha256 is None:
        return [Problem(code=Code.FILE_NOT_CHECKED, message="not read", file=name)]
    if seen.unparsable is not None:
        message = f"file content changed and no longer parses ({seen.unparsable})"
        return [_modified(name, expected, seen.sha256, message)]
    problems = [_modified(name, expected, seen.sha256, "file content changed")]
    if entry is not None and entry.weights is not None and seen.weights is not None:
        problems += diff_weights(name, entry.weights, seen.weights)
    return problems


def _shards(
    st: SignedStatement, plan: Plan, name: str, size: int, seen: Seen, tally: _Tally
) -> list[Problem]:
    """Name the first changed range; with a signed manifest, name the tensors too."""
    tiles = plan.tiles[name]
    got = seen.shards or ()
    if len(got) != len(tiles):
        return [Problem(code=Code.FILE_NOT_CHECKED, message="not read", file=name)]
    bad = [(s, d) for s, d in zip(tiles, got, strict=True) if d != s.digest]
    entry = st.entry(name)
    if not bad:
        tally.verified(size, entry)
        return []
    s, actual = bad[0]
    more = f" (and {plural(len(bad) - 1, 'more shard')})" if len(bad) > 1 else ""
    message = f"bytes {s.start}:{s.end} changed ({st.hash_type}){more}"
    problems = [_modified(name, s.digest, actual, message)]
    if entry is not None and entry.weights is not None and seen.weights is not None:
        problems += diff_weights(name, entry.weights, seen.weights)
    return problems


def _shard_size(name: str, size: int, end: int) -> Problem:
    why = (
        f"{size - end} bytes past the signed end are not covered by any shard"
        if size > end
        else f"the signed bytes {size}:{end} are missing"
    )
    return Problem(
        code=Code.FILE_SIZE_MISMATCH,
        message=f"file is {size} bytes, the signed shards end at {end}: {why}",
        file=name,
        expected=str(end),
        actual=str(size),
    )


def _modified(name: str, expected: str | None, actual: str | None, message: str) -> Problem:
    return Problem(
        code=Code.FILE_MODIFIED, message=message, file=name, expected=expected, actual=actual
    )


def _missing_and_extra(plan: Plan, digests: Mapping[str, str]) -> list[Problem]:
    """Files not where the signature says: excused, renamed, missing, extra."""
    out = [
        Problem(
            code=Code.FILE_UNSIGNED_IGNORED,
            severity="info",
            message="unsigned file left out by the verifier's --ignore",
            file=n,
        )
        for n in plan.excused
    ]
    renamed: set[str] = set()
    for m in plan.missing:
        want = plan.expected(m)
        match = next((n for n in plan.extra if digests.get(n) == want and n not in renamed), None)
        if match is None:
            missing = "signed file is missing"
            out.append(Problem(code=Code.FILE_MISSING, message=missing, file=m, expected=want))
            continue
        renamed.add(match)
        out.append(
            Problem(
                code=Code.FILE_RENAMED,
                message=f"signed file is now named {match!r}",
                file=m,
                expected=m,
                actual=match,
            )
        )
    out += [
        Problem(
            code=Code.FILE_EXTRA,
            message="file is not covered by the signature",
            file=n,
            actual=digests.get(n),
        )
        for n in plan.extra
        if n not in renamed
    ]
    return out


# -- one file, as the loaders read it -------------------------------------------------


def size_problems(
    name: str,
    signed: int,
    actual: int,
    weights: WeightsInfo | None,
    header: WeightsInfo | None = None,
    unparsable: str | None = None,
) -> list[Problem]:
    """``FILE_SIZE_MISMATCH`` for a file refused unread, and what its header alone says changed.

    With the signed ``weights``, ``header`` is the file's layout read from its
    header (bounded reads, whatever the size), or ``unparsable`` says why it
    could not be read.
    """
    exc = size_mismatch(name, signed, actual)
    message, found = exc.message, []
    if weights is not None and header is not None:
        found = diff_layouts(name, weights, header)
    elif weights is not None and unparsable is not None:
        message += f"; it no longer parses ({unparsable})"
    first = Problem(
        code=exc.code, message=message, file=name, expected=exc.expected, actual=exc.actual
    )
    return [first, *found]


def same_layout(want: Sequence[str | bool], got: Sequence[str | bool]) -> bool:
    """Whether the parts read show the signed header (so the signed layout applies)."""
    return len(got) == len(want) and len(want) > 1 and got[0] == want[0]


def read_problems(
    name: str,
    weights: WeightsInfo | None,
    expected: str,
    actual: str,
    parts: tuple[Sequence[str | bool], Sequence[str | bool]],
    reread: WeightsInfo | Problem | None = None,
) -> list[Problem]:
    """What differs in a buffer a loader read whose ``parts`` (wanted, got) disagree.

    With the same header (:func:`same_layout`) the differing parts are exactly
    the changed tensors and padding; otherwise ``reread`` is the buffer parsed
    afresh (its layout and digests, or why it no longer parses).
    """
    problems = [_modified(name, expected, actual, "content changed")]
    if weights is None:
        return problems
    want, got = parts
    if same_layout(want, got):
        n = len(weights.tensors)
        for t, have in zip(weights.tensors, got[1 : 1 + n], strict=True):
            if have != t.digest:
                problems.append(tensor_modified(name, t.name, t.digest, str(have)))
        if any(g is not True for g in got[1 + n :]):
            problems.append(
                Problem(code=Code.PADDING_MODIFIED, message="padding bytes are not zero", file=name)
            )
    elif isinstance(reread, Problem):
        problems.append(reread)
    elif reread is not None:
        problems += diff_weights(name, weights, reread)
    return problems


def parts_problems(
    name: str, weights: WeightsInfo, tensors: Sequence[TensorEntry], got: Sequence[str | bool]
) -> list[Problem]:
    """A partial load: the header's digest, then each requested tensor's, against the signed."""
    problems = []
    if got[0] != weights.header_digest:
        problems.append(header_modified(name, weights.header_digest, str(got[0]), "header changed"))
    for t, have in zip(tensors, got[1:], strict=True):
        if have != t.digest:
            problems.append(tensor_modified(name, t.name, t.digest, str(have)))
    return problems

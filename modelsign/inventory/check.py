"""Content and signature checks: content addresses, signed sizes, and verify() under trust.

Nothing here decides an entry's status; each check says what it found
(:mod:`.status` weighs the findings).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from .._internal._atomic import size_mismatch
from .._internal._text import plural
from .._internal.check.compare import Problem
from .._internal.discover import describe_mode
from .._internal.hashing import PEEK_WHOLE, pread_all, stream_digest
from .._internal.manifest import Manifest, manifest_for_tree, metadata_manifest
from .._internal.signature.attestation import load_signature
from .._internal.signature.bundle import MAX_SIGNATURE_BYTES, Envelope, read_bundle
from .._internal.signature.verifiers import SignerInfo, Verifier
from ..codes import Category, Code
from ..errors import ModelsignError, VerificationError
from ..policy import Policy, PolicyReport, RuleResult
from ..verify import VerificationResult, verify_model
from .jobs import Prepared, Unreadable, describe
from .report import Checked

#: Files up to this size are read whole (the header reader's first block), so hashed.
SMALL_FILE: Final = PEEK_WHOLE

#: What a code says about a model, by the code's category (every category has a verdict):
#: ``tampered`` — its files are not what was signed (content, discovery and format
#: problems); ``untrusted`` — the signature or its signer is in doubt; ``config`` — the
#: caller's own policy, trust material or options are broken, not the model (an error
#: with such a code stops the scan; as a verification problem it is ``untrusted``).
CodeVerdict = Literal["tampered", "untrusted", "config"]
VERDICTS: Final[dict[Category, CodeVerdict]] = {
    Category.USAGE: "config",
    Category.INPUT: "untrusted",
    Category.CONFIG: "config",
    Category.SERVICE: "untrusted",
    Category.DISCOVERY: "tampered",
    Category.FORMAT: "tampered",
    Category.MANIFEST: "untrusted",
    Category.LOAD: "untrusted",
    Category.SIGNATURE: "untrusted",
    Category.CONTENT: "tampered",
    Category.POLICY: "untrusted",
    Category.CHANGE: "tampered",
    Category.NOTE: "untrusted",
    Category.FINDING: "untrusted",
    Category.INTERNAL: "untrusted",
    Category.INTERRUPTED: "untrusted",
}


def verdict(code: Code | str) -> CodeVerdict:
    """What a code says about a model (see :data:`VERDICTS`)."""
    return VERDICTS[Code(code).category]


@dataclass
class SignatureOutcome:
    status: Literal["verified", "policy-failed", "signed-untrusted", "tampered"]
    reason: str | None
    signer: str | None
    compared: bool  # the files were compared with the signed statement
    report: PolicyReport | None = None
    signed: Manifest | None = None  # the verified manifest, for the ML-BOM


class _AnySigner:
    """Accepts every signature, so that verify() compares the files with the statement.

    Without trusted signers a signature proves nothing about who made it, but
    content that no longer matches it has changed since it was signed: this is
    how ``verify=True`` tells ``tampered`` from ``signed-untrusted`` without a
    policy. A model checked this way is never reported ``verified``.
    """

    def verify_envelope(self, envelope: Envelope) -> SignerInfo:
        if envelope.method == "sigstore":
            return SignerInfo(kind="sigstore")
        if envelope.certificates:
            return SignerInfo(kind="certificate")
        return SignerInfo(kind="key", key_hint=envelope.key_hint)


def _signer_text(info: SignerInfo | None) -> str | None:
    if info is None:
        return None
    if info.kind == "sigstore":
        who = info.identity or "unknown identity"
        return f"sigstore {who}" + (f" ({info.oidc_issuer})" if info.oidc_issuer else "")
    if info.kind == "certificate":
        return f"certificate {info.subject or info.fingerprint or ''}".rstrip()
    return f"key {info.key_hint[:16]}" if info.key_hint else "key"


def _read_signature(sig: str) -> bytes:
    """A signature file's bytes; never a FIFO (a link is followed: HF snapshots link theirs)."""
    st = os.stat(sig)
    if not stat.S_ISREG(st.st_mode):
        raise Unreadable(f"the signature {sig} is {describe_mode(st.st_mode)}")
    if st.st_size > MAX_SIGNATURE_BYTES:
        raise Unreadable(f"the signature {sig} is larger than {MAX_SIGNATURE_BYTES} bytes")
    fd = os.open(sig, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        return pread_all(fd, st.st_size)
    finally:
        os.close(fd)


def _claimed_signer(sig: str) -> str:
    """Who the bundle says signed it — read, not verified (a cheap look at the file)."""
    try:
        env = read_bundle(_read_signature(sig))
    except VerificationError as exc:
        return f"unreadable signature ({exc.code})"
    return (_signer_text(_AnySigner().verify_envelope(env)) or "unknown") + " (not verified)"


def _is_content_problem(code: Code | str) -> bool:
    return verdict(code) == "tampered"


def is_config_error(exc: ModelsignError) -> bool:
    return verdict(exc.code) == "config"


def _problem_text(problems: Sequence[Problem]) -> str:
    """The most precise problem (one naming a tensor, if any) and how many more there are."""
    p = next((q for q in problems if q.tensor), problems[0])
    where = f"{p.file}" + (f" [{p.tensor}]" if p.tensor else "") + ": " if p.file else ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{p.code}: {where}{p.message}{more}"


def rules_text(rules: Sequence[RuleResult]) -> str:
    return "; ".join(f"{r.rule}: {', '.join(r.reasons) or r.status}" for r in rules)


class Checker:
    """The checks one scan makes, with its trust (policy, caller's verifier) and depth."""

    def __init__(self, policy: Policy | None, verify: bool, verifier: Verifier | None) -> None:
        self.policy = policy
        self.verify = verify
        self.verifier = verifier  # the caller's trust: enforced on top of the policy's (Trust)

    def manifest(self, prep: Prepared, *, hash_all: bool) -> Manifest:
        """Metadata of the model: by the manifest engine, hashing only what must be."""
        if self.verify and hash_all:
            return manifest_for_tree(prep.tree, tensor_hash=None, source=prep.source, env={})
        return metadata_manifest(prep.tree, source=prep.source)

    def size_mismatches(self, prep: Prepared) -> list[str]:
        """Files whose size is not the one the signature's manifest records (read, not trusted).

        Compared before anything is hashed: such a model differs from its
        signature whoever signed it (``tampered``), and its files are not read
        — a huge or sparse file swapped in costs a stat, not a read.
        """
        if prep.signature is None:
            return []
        try:
            signed = self.signed_manifest(prep.signature)
        except (ModelsignError, OSError, Unreadable):
            return []  # verify() says why the signature is unusable
        if signed is None:
            return []
        files = prep.tree.files
        if signed.single_file:
            target = os.path.abspath(prep.target)
            files = tuple(f for f in files if f.real == target) or files[:1]
            sizes = {f.path: signed.files[0].size for f in files}
        else:
            sizes = {e.path: e.size for e in signed.files}
        return [
            describe(size_mismatch(f.path, sizes[f.path], f.size))
            for f in files
            if sizes.get(f.path, f.size) != f.size
        ]

    def check_addresses(
        self, prep: Prepared, manifest: Manifest | None
    ) -> tuple[list[str], Checked]:
        """Content addresses: sizes always, digests of whatever was hashed."""
        files = {f.path: f for f in prep.tree.files}
        hashed = {e.path: e.sha256 for e in manifest.files if e.sha256} if manifest else {}
        tampered: list[str] = []
        exact = 0
        sized = 0
        for name, addr in sorted(prep.addresses.items()):
            f = files[name]
            if addr.size is not None:
                sized += 1
                if f.size != addr.size:
                    found = plural(f.size, "byte")
                    tampered.append(
                        f"{name}: {addr.label} is {found}; the store's manifest says {addr.size}"
                    )
                    continue
            actual: str | None = None
            if addr.algorithm == "git-sha1":
                if self.verify or f.size <= SMALL_FILE:
                    # A git blob id: what the Hub names a non-LFS file's cache blob.
                    git = hashlib.sha1(b"blob %d\0" % f.size, usedforsecurity=False)
                    actual = stream_digest(f, git)
            elif name in hashed:
                actual = hashed[name]
            elif self.verify and manifest is None:  # a damaged file: altered, or as published?
                actual = stream_digest(f, hashlib.sha256())
            if actual is None:
                continue
            exact += 1
            if actual != addr.hex:
                tampered.append(
                    f"{name}: content {addr.algorithm} {actual} is not its name {addr.label}"
                )
        if not prep.addresses:
            return tampered, "none"
        if exact == len(prep.addresses):
            return tampered, "sha256"
        return tampered, "size" if sized == len(prep.addresses) else "none"

    def known(self, prep: Prepared, manifest: Manifest) -> dict[tuple[int, int], str]:
        """The SHA-256 of each file the manifest hashed (all, under --verify), by inode.

        verify() then reads a file again only when it differs from its signature.
        """
        hashed = {e.path: e.sha256 for e in manifest.files if e.sha256}
        return {(f.dev, f.ino): hashed[f.path] for f in prep.tree.files if f.path in hashed}

    def check_signature(
        self, prep: Prepared, known: dict[tuple[int, int], str]
    ) -> SignatureOutcome:
        assert prep.signature is not None
        policy = self.policy
        if self.verifier is not None or (policy is not None and policy.signers is not None):
            result = self._run_verify(prep, known, trusted=True)
            outcome = self._classify(result, trusted=True)
            if outcome.status == "signed-untrusted" and not outcome.compared and self.verify:
                content = self._classify(self._run_verify(prep, known))
                if content.status == "tampered":
                    content.report = outcome.report
                    content.signer = outcome.signer
                    return content
            if outcome.status == "verified":
                outcome.signed = result.signed_manifest  # read once, by verify
            elif outcome.signer is None:  # not trusted: say who it claims to be
                outcome.signer = _claimed_signer(prep.signature)
            return outcome
        why = (
            "the policy lists no signers"
            if policy is not None
            else "no policy gives trusted signers"
        )
        if self.verify:
            outcome = self._classify(self._run_verify(prep, known))
            if outcome.status == "verified":  # content matches, but nobody vouches for it
                outcome.status = "signed-untrusted"
                outcome.reason = f"the content matches the signature, but {why}"
            return outcome
        return SignatureOutcome(
            "signed-untrusted",
            f"signature not checked: {why}",
            _claimed_signer(prep.signature),
            False,
        )

    def _run_verify(
        self, prep: Prepared, known: dict[tuple[int, int], str], *, trusted: bool = False
    ) -> VerificationResult:
        """verify() with the caller's and the policy's trust, or (untrusted) any signer's.

        A failure is reported in the result, not raised: the status weighs it.
        """
        return verify_model(
            prep.target,
            verifier=self.verifier if trusted else _AnySigner(),
            policy=self.policy if trusted else None,
            signature=prep.signature,
            on_failure="report",
            known_sha256=known,
        )

    def _classify(self, result: VerificationResult, *, trusted: bool = False) -> SignatureOutcome:
        """The outcome of a verification: with the policy (``trusted``), or of content only."""
        policy = self.policy if trusted else None
        problems = [p for p in result.problems if p.severity != "info"]
        if policy is not None and policy.coverage is not None:
            # Unsigned extra files are the coverage rule's to judge.
            problems = [p for p in problems if p.code != "FILE_EXTRA"]
        content = [p for p in problems if _is_content_problem(p.code)]
        trust = [p for p in problems if not _is_content_problem(p.code)]
        signer = _signer_text(result.signer)
        if not trusted and signer is not None:
            signer += " (not verified)"
        compared = result.subject is not None
        report = result.policy
        failed = report.failed if report else []
        if content:
            return SignatureOutcome("tampered", _problem_text(content), signer, compared, report)
        if trust:
            return SignatureOutcome(
                "signed-untrusted", _problem_text(trust), signer, compared, report
            )
        if failed:
            return SignatureOutcome(
                "policy-failed", "policy: " + rules_text(failed), signer, compared, report
            )
        warned = [r for r in report.rules if r.status == "warn"] if report else []
        note = "policy warns: " + rules_text(warned) if warned else None
        return SignatureOutcome("verified", note, signer, compared, report)

    def signed_manifest(self, sig: str) -> Manifest | None:
        """The manifest a signature carries (None for an OMS-only signature), read, not verified."""
        return load_signature(sig, data=_read_signature(sig)).statement.manifest

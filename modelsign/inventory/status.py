"""Judging a model: its status, policy report and entry, from what the checks found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .._internal.manifest import Manifest
from .._internal.signature.verifiers import Verifier
from ..errors import ModelsignError
from ..policy import (
    SAFE_STATE_DICT,
    FormatsRule,
    Policy,
    PolicyReport,
    evaluate,
    pickle_files,
    pickle_refusal,
    pickle_refusals,
)
from .bom import bom_name, empty_manifest
from .check import Checker, SignatureOutcome, is_config_error, rules_text
from .jobs import Job, Prepared, Unreadable, describe, os_reason
from .report import (
    BomOrigin,
    Checked,
    InventoryEntry,
    InventoryFile,
    QuantizationSummary,
    Status,
)

# Which finding names a model, worst first. A signature check has at most one
# outcome, and "unsigned" is what is left when nothing else was found, so the
# order of the last four never decides anything; the first three do:
# - content that differs from its store's address or its signature's sizes
#   outweighs everything (the signature is not even checked then);
# - a model whose manifest cannot be read can only be unreadable;
# - a pickle outweighs any signature outcome but "tampered" (and a verified
#   one when the policy's pickle setting admits it: then it is not a finding at all).
_PRECEDENCE: Final[tuple[Status, ...]] = (
    "tampered",
    "unreadable",
    "unsafe-format",
    "policy-failed",
    "signed-untrusted",
    "verified",
    "unsigned",
)


@dataclass
class _Findings:
    """What the checks found about one model, before a status is chosen."""

    manifest: Manifest | None  # None: unreadable (problem says why)
    problem: str | None
    tampered: list[str]  # content differing from its addresses or signed sizes
    checked: Checked
    outcome: SignatureOutcome | None  # None: no signature, or not checked


class Judge:
    """Turns each job into an inventory entry and the manifest its ML-BOM component uses."""

    def __init__(
        self,
        policy: Policy | None,
        verify: bool,
        verifier: Verifier | None = None,
        *,
        require_signed: bool = False,
    ) -> None:
        self.policy = policy
        self.verifier = verifier
        self.require_signed = require_signed
        self.checks = Checker(policy, verify, verifier)

    def judge(self, job: Job) -> tuple[InventoryEntry, Manifest, BomOrigin]:
        if job.prepare is None:
            return self._unreadable(job, job.reason or "unreadable")
        try:
            prep = job.prepare()
            return self._judge(job, prep)
        except Unreadable as exc:
            return self._unreadable(job, str(exc))
        except ModelsignError as exc:
            if is_config_error(exc):
                raise  # the policy's keys or roots are broken: nothing can be judged
            return self._unreadable(job, describe(exc))
        except OSError as exc:
            return self._unreadable(job, os_reason(exc))

    def _judge(self, job: Job, prep: Prepared) -> tuple[InventoryEntry, Manifest, BomOrigin]:
        found = self._inspect(prep)
        manifest, outcome = found.manifest, found.outcome
        status, reason = self._status(found)
        report = outcome.report if outcome is not None else None
        if self.policy is not None and report is None:
            why = reason or (
                "no signature with the model" if prep.signature is None else "not verified"
            )
            report = evaluate(
                self.policy,
                manifest=manifest,
                signer=None,
                signature_problems=[why],
                unsigned_files={},
                verifier_given=self.verifier is not None,
            )
        if status == "unsigned" and report is not None and report.blocked:
            reason = "policy: " + rules_text(report.failed)

        signer = outcome.signer if outcome is not None else None
        untrusted = outcome is not None and outcome.status in ("signed-untrusted", "tampered")
        blocked = self._blocked(
            status, report, signed=prep.signature is not None, untrusted=untrusted
        )
        entry = self._entry(
            job, prep, manifest, status, reason, found.checked, report, signer, blocked
        )
        if outcome is not None and outcome.signed is not None:
            return entry, outcome.signed, "verified-signature"
        if manifest is None:
            return (
                entry,
                empty_manifest(bom_name(job, prep.tree.name), reason, job.location),
                None,
            )
        return entry, manifest, "model" if self.checks.verify else None

    def _inspect(self, prep: Prepared) -> _Findings:
        """Every check that applies, cheapest first; a signature only of intact content."""
        problem: str | None = None
        manifest: Manifest | None
        wrong_size = self.checks.size_mismatches(prep)
        try:
            manifest = self.checks.manifest(prep, hash_all=not wrong_size)
        except ModelsignError as exc:
            if is_config_error(exc):
                raise
            manifest, problem = None, describe(exc)
        tampered, checked = self.checks.check_addresses(prep, manifest)
        tampered = wrong_size + tampered
        outcome: SignatureOutcome | None = None
        if not tampered and manifest is not None and prep.signature is not None:
            outcome = self.checks.check_signature(prep, self.checks.known(prep, manifest))
        if outcome is not None and outcome.compared:
            checked = "signature"
        return _Findings(manifest, problem, tampered, checked, outcome)

    def _status(self, found: _Findings) -> tuple[Status, str | None]:
        """The worst finding in :data:`_PRECEDENCE`, with its reason."""
        manifest, outcome = found.manifest, found.outcome
        candidates: dict[Status, str | None] = {"unsigned": None}
        if found.tampered:
            candidates["tampered"] = "; ".join(found.tampered)
        if manifest is None:
            candidates["unreadable"] = found.problem
        if outcome is not None:
            candidates.setdefault(outcome.status, outcome.reason)
        # Every file in the folder counts, signed, ignored at signing or unsigned: a
        # signature never makes a pickle beside the model safe to have (unless the
        # policy's formats rule admits that pickle and the signature verified).
        pickles = self._unsafe_pickles(manifest, outcome) if manifest else []
        if pickles:
            reason = f"pickle (loading it runs code): {', '.join(pickles)}"
            if outcome is not None and outcome.reason:
                reason += f"; {outcome.reason}"
            candidates["unsafe-format"] = reason
        status = next(s for s in _PRECEDENCE if s in candidates)
        return status, candidates[status]

    def _unsafe_pickles(self, manifest: Manifest, outcome: SignatureOutcome | None) -> list[str]:
        """The pickle-bearing files the policy does not admit: all, unless the model verified.

        A verified model's files are judged as ``verify`` judges them: by the
        formats rule's pickle setting (a policy without the rule denies every
        pickle), on the signed manifest's entries; a file the signature does
        not cover was never analysed for it. Under ``safe-state-dicts`` each is
        named with why it is not one.
        """
        if outcome is None or outcome.status != "verified" or self.policy is None:
            return pickle_files(manifest)
        rule = self.policy.formats or FormatsRule()
        signed = outcome.signed or manifest
        refused = pickle_refusals(rule, signed)
        for f in manifest.files:
            if signed.file(f.path) is None:  # beside the signed files: its analysis unsigned
                flags = [x for x in f.flags if x != SAFE_STATE_DICT]
                why = pickle_refusal(rule, f.format, flags)
                if why is not None:
                    refused[f.path] = why
        if rule.pickle_setting != "safe-state-dicts":
            return list(refused)
        return [f"{name} ({why})" for name, why in refused.items()]

    def _blocked(
        self, status: Status, report: PolicyReport | None, *, signed: bool, untrusted: bool
    ) -> bool:
        """Whether the model fails the scan (``blocked``: the CLI's exit code 1).

        ``signed``: a signature sits with it; ``untrusted``: it was checked and
        did not verify (whatever status a worse finding gave the model).
        """
        if status == "tampered":
            return True  # no policy, no trust, no lack of either makes altered content fine
        if self.require_signed and (not signed or status == "unreadable"):
            return True
        if self.policy is None:
            # The caller's trust alone: a signature it does not vouch for is refused.
            return self.verifier is not None and (status == "signed-untrusted" or untrusted)
        if report is not None and report.blocked:
            return True
        # A pickle is refused unless the policy's formats rule says otherwise.
        return status == "unsafe-format" and self.policy.formats is None

    def _entry(
        self,
        job: Job,
        prep: Prepared,
        manifest: Manifest | None,
        status: Status,
        reason: str | None,
        checked: Checked,
        report: PolicyReport | None,
        signer: str | None,
        blocked: bool,
    ) -> InventoryEntry:
        by_name = {e.path: e for e in manifest.files} if manifest else {}
        files = []
        for f in prep.tree.files:
            e = by_name.get(f.path)
            addr = prep.addresses.get(f.path)
            files.append(
                InventoryFile(
                    name=f.path,
                    path=f.real,
                    size=f.size,
                    format=e.format if e else None,
                    sha256=(e.sha256 or None) if e else None,
                    content_address=addr.hex if addr else None,
                )
            )
        quant = None
        if manifest is not None and any(e.weights is not None for e in manifest.files):
            q = manifest.quantization
            quant = QuantizationSummary(
                quantized=q.quantized, scheme=q.scheme, bits_per_weight=q.bits_per_weight
            )
        return InventoryEntry(
            name=job.name,
            store=job.store,
            location=job.location,
            revision=job.revision,
            refs=list(job.refs),
            files=files,
            formats=sorted({e.format for e in manifest.files}) if manifest else [],
            size=sum(f.size for f in prep.tree.files),
            quantization=quant,
            licence=manifest.licence.spdx if manifest else None,
            signature=prep.signature,
            signer=signer,
            status=status,
            reason=reason,
            checked=checked,
            policy=list(report.rules) if report is not None else None,
            blocked=blocked,
        )

    def _unreadable(self, job: Job, reason: str) -> tuple[InventoryEntry, Manifest, BomOrigin]:
        report = None
        if self.policy is not None:
            report = evaluate(
                self.policy,
                manifest=None,
                signer=None,
                signature_problems=[f"the model is unreadable: {reason}"],
                unsigned_files={},
                verifier_given=self.verifier is not None,
            )
        entry = InventoryEntry(
            name=job.name,
            store=job.store,
            location=job.location,
            revision=job.revision,
            refs=list(job.refs),
            status="unreadable",
            reason=reason,
            policy=list(report.rules) if report is not None else None,
            blocked=self._blocked("unreadable", report, signed=False, untrusted=False),
        )
        return entry, empty_manifest(job.name, reason, job.location), None

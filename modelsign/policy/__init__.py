"""Policies: what a security team requires of every model, written once.

A policy file (YAML or JSON, versioned, unknown fields refused) lists rules:
who may sign (``signers``), which licences, provenance, formats and
quantizations are acceptable, how much of the model the signature must cover,
and how old a signature may be. Each rule is ``enforce`` (a failure blocks) or
``warn`` (reported only). The same policy drives ``modelsign verify``, the
pre-load hook and CI.

The modules, each building only on those before it: :mod:`.specs` (the rules'
models), :mod:`.loading` (YAML with bounds), :mod:`.schema` (the
:class:`Policy` document), :mod:`.pickles` (the pickle setting, file by file),
:mod:`.rules` (judging every rule) and :mod:`.explain`. Import from here: the
module split is not part of the API.
A policy judges; it builds no verifier: the verbs that verify make the
verifiers its ``signers`` rule calls for (``modelsign._trust``).
"""

from .explain import explain
from .loading import MAX_POLICY_BYTES, MAX_POLICY_DEPTH, MAX_POLICY_NODES
from .pickles import bears_pickle, pickle_files, pickle_refusal, pickle_refusals
from .rules import PolicyReport, RuleResult, evaluate, formats_beside
from .schema import Policy, load_policy, parse_policy
from .specs import (
    NOT_COVERED,
    RULE_CODES,
    RULES,
    SAFE_STATE_DICT,
    WEIGHT_LIKE,
    CoverageRule,
    FormatsRule,
    FreshnessRule,
    IdentityRule,
    KeySpec,
    LicencesRule,
    Mode,
    PickleSetting,
    PolicyFormat,
    ProvenanceField,
    ProvenanceRule,
    QuantizationRule,
    RuleName,
    SignersRule,
    SigstoreSpec,
    Status,
)

__all__ = [
    "MAX_POLICY_BYTES",
    "MAX_POLICY_DEPTH",
    "MAX_POLICY_NODES",
    "NOT_COVERED",
    "RULES",
    "RULE_CODES",
    "SAFE_STATE_DICT",
    "WEIGHT_LIKE",
    "CoverageRule",
    "FormatsRule",
    "FreshnessRule",
    "IdentityRule",
    "KeySpec",
    "LicencesRule",
    "Mode",
    "PickleSetting",
    "Policy",
    "PolicyFormat",
    "PolicyReport",
    "ProvenanceField",
    "ProvenanceRule",
    "QuantizationRule",
    "RuleName",
    "RuleResult",
    "SignersRule",
    "SigstoreSpec",
    "Status",
    "bears_pickle",
    "evaluate",
    "explain",
    "formats_beside",
    "load_policy",
    "parse_policy",
    "pickle_files",
    "pickle_refusal",
    "pickle_refusals",
]

"""Where a model package came from: source repository, base models, CI builder.

These are claims recorded in the manifest, not verified facts: the source
repository is what the Hub cache layout or the ``--source`` option says, base
models are what the model card and GGUF metadata say, and the builder is what
the CI runner's environment says. A signature binds the signer to these claims.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...codes import Code
from ...errors import InputError

__all__ = [
    "BaseModelRef",
    "Builder",
    "ParentRef",
    "Provenance",
    "SourceRepo",
    "base_models_from_card",
    "base_models_from_gguf",
    "builder_from_env",
    "parse_source",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceRepo(_Model):
    """The Hub repository (and revision) the package was taken from."""

    repository: str
    revision: str | None
    origin: Literal["hf-cache", "cli"]


def source_text(source: SourceRepo | None) -> str | None:
    """``org/name@revision`` (or ``org/name``) of a recorded source, None without one."""
    if source is None:
        return None
    return source.repository + (f"@{source.revision}" if source.revision else "")


def source_matches(want: str, have: str | None) -> bool:
    """Whether a recorded source (``source_text``) is the one asked for:
    ``org/name`` accepts any revision, ``org/name@rev`` only that one."""
    if have is None:
        return False
    return (have if "@" in want else have.split("@", 1)[0]) == want


class BaseModelRef(_Model):
    """A model this one derives from, as some file states it."""

    name: str
    relation: str | None = None  # card base_model_relation: adapter, merge, quantized, …
    organization: str | None = None
    repo_url: str | None = None
    source: str  # "README.md:base_model", "model.gguf:general.base_model.0"

    @property
    def full_name(self) -> str:
        """``organization/name`` when the organization is known and not already in the name."""
        if self.organization and "/" not in self.name:
            return f"{self.organization}/{self.name}"
        return self.name


class Builder(_Model):
    """The CI job that produced the manifest, from runner-set variables."""

    kind: Literal["github-actions", "gitlab-ci"]
    fields: dict[str, str]

    @field_validator("fields")
    @classmethod
    def _sorted_fields(cls, value: dict[str, str]) -> dict[str, str]:
        return dict(sorted(value.items()))


class ParentRef(_Model):
    """A manifest this package was derived from, by its digest."""

    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    name: str | None = None


class Provenance(_Model):
    """Everything the manifest records about the package's origin."""

    source: SourceRepo | None = None
    base_models: list[BaseModelRef] = Field(default_factory=list)
    builder: Builder | None = None
    parents: list[ParentRef] = Field(default_factory=list)

    @field_validator("base_models")
    @classmethod
    def _sorted_base_models(cls, value: list[BaseModelRef]) -> list[BaseModelRef]:
        return sorted(value, key=lambda b: (b.name, b.source))

    @field_validator("parents")
    @classmethod
    def _sorted_parents(cls, value: list[ParentRef]) -> list[ParentRef]:
        return sorted(value, key=lambda p: (p.digest, p.name or ""))


# --- source ------------------------------------------------------------------

# The Hub's rule for each of namespace and name (huggingface_hub's
# validate_repo_id), restricted to ASCII: alphanumerics, '.', '_', '-', at most
# 96 characters, not starting or ending with '.' or '-', no '--' or '..'.
_REPO_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
_MAX_REVISION = 255


def _bad_source(text: str, why: str) -> InputError:
    return InputError(
        f"invalid source {text!r}: {why}; expected 'org/name' or 'org/name@revision'",
        code=Code.BAD_SOURCE,
    )


def parse_source(text: str) -> SourceRepo:
    """Parse ``org/name`` or ``org/name@revision`` given on the command line.

    Raises :class:`~modelsign.errors.InputError` (``BAD_SOURCE``) for a repo id
    that breaks the Hub's naming rules or a revision with whitespace or
    control / format characters (which would let a manifest display differently
    from what it says).
    """
    repository, sep, revision = text.partition("@")
    parts = repository.split("/")
    if len(parts) != 2:
        raise _bad_source(text, "the repository must be exactly one 'org/name'")
    for part in parts:
        if not _REPO_PART.fullmatch(part) or "--" in part or ".." in part:
            raise _bad_source(
                text,
                f"{part!r} must be 1-96 of A-Z a-z 0-9 . _ -, not start or end with "
                "'.' or '-', and not contain '--' or '..'",
            )
    if not sep:
        return SourceRepo(repository=repository, revision=None, origin="cli")
    if not revision:
        raise _bad_source(text, "the revision after '@' is empty")
    if len(revision) > _MAX_REVISION:
        raise _bad_source(text, f"the revision is longer than {_MAX_REVISION} characters")
    for ch in revision:
        # Cc control, Cf format (bidi overrides, zero-width), Cs/Co/Cn; and spaces.
        if ch.isspace() or unicodedata.category(ch).startswith("C"):
            raise _bad_source(text, f"the revision contains the character U+{ord(ch):04X}")
    return SourceRepo(repository=repository, revision=revision, origin="cli")


# --- base models -------------------------------------------------------------


def _text(value: object) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def base_models_from_card(card: dict[str, object], card_path: str) -> list[BaseModelRef]:
    """Base models named by a card's ``base_model`` (a string or a list of strings).

    ``base_model_relation`` (adapter, merge, quantized, finetune) applies to all
    of them. Entries that are not non-empty strings name nothing and are skipped;
    repeated names are recorded once.
    """
    raw = card.get("base_model")
    names = raw if isinstance(raw, list) else [raw]
    relation = _text(card.get("base_model_relation"))
    source = f"{card_path}:base_model"
    out: list[BaseModelRef] = []
    seen: set[str] = set()
    for item in names:
        name = _text(item)
        if name is None or name in seen:
            continue
        seen.add(name)
        out.append(BaseModelRef(name=name, relation=relation, source=source))
    return out


_GGUF_BASE = re.compile(r"general\.base_model\.(\d+)\.(name|organization|repo_url)")


def base_models_from_gguf(metadata: Mapping[str, object], path: str) -> list[BaseModelRef]:
    """Base models from GGUF ``general.base_model.{i}.*`` for ``i < count``.

    Indices are taken from the keys present rather than by counting up to
    ``general.base_model.count``, so a huge count in a hostile file costs
    nothing. An entry without a name is named by its repo_url. GGUF states no
    relation.
    """
    count = metadata.get("general.base_model.count")
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        return []
    entries: dict[int, dict[str, str]] = {}
    for key, value in metadata.items():
        m = _GGUF_BASE.fullmatch(key)
        text = _text(value)
        if m is None or text is None or int(m.group(1)) >= count:
            continue
        entries.setdefault(int(m.group(1)), {})[m.group(2)] = text
    out: list[BaseModelRef] = []
    for index, fields in sorted(entries.items()):
        name = fields.get("name") or fields.get("repo_url")
        if name is None:
            continue
        out.append(
            BaseModelRef(
                name=name,
                organization=fields.get("organization"),
                repo_url=fields.get("repo_url"),
                source=f"{path}:general.base_model.{index}",
            )
        )
    return out


# --- builder -----------------------------------------------------------------

# Predefined variables the runner sets for every job. GitHub documents that
# workflows cannot overwrite GITHUB_* and RUNNER_* variables.
_GITHUB_VARS: tuple[str, ...] = (
    "GITHUB_REPOSITORY",
    "GITHUB_REPOSITORY_ID",
    "GITHUB_WORKFLOW_REF",
    "GITHUB_SHA",
    "GITHUB_REF",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_EVENT_NAME",
    "RUNNER_ENVIRONMENT",
    "GITHUB_SERVER_URL",
)
_GITLAB_VARS: tuple[str, ...] = (
    "CI_PROJECT_PATH",
    "CI_PROJECT_ID",
    "CI_COMMIT_SHA",
    "CI_COMMIT_REF_NAME",
    "CI_PIPELINE_ID",
    "CI_JOB_ID",
    "CI_CONFIG_PATH",
    "CI_SERVER_URL",
    "CI_RUNNER_ID",
)


def builder_from_env(env: Mapping[str, str]) -> Builder | None:
    """Describe the CI job from its environment, or None outside CI.

    GitHub Actions (``GITHUB_ACTIONS == "true"``): GITHUB_REPOSITORY,
    GITHUB_REPOSITORY_ID, GITHUB_WORKFLOW_REF, GITHUB_SHA, GITHUB_REF,
    GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT, GITHUB_EVENT_NAME, RUNNER_ENVIRONMENT,
    GITHUB_SERVER_URL. GitLab CI (``GITLAB_CI == "true"``): CI_PROJECT_PATH,
    CI_PROJECT_ID, CI_COMMIT_SHA, CI_COMMIT_REF_NAME, CI_PIPELINE_ID, CI_JOB_ID,
    CI_CONFIG_PATH, CI_SERVER_URL, CI_RUNNER_ID.

    Only these predefined variables are read because the runner sets them for
    every job: they identify the repository, commit, workflow and run, which is
    what a verifier matches against a signing identity. Empty values are left
    out. GitHub is checked first should both markers be set. The values are the
    signer's claims; a keyless (OIDC) signature is what vouches for them.
    """
    if env.get("GITHUB_ACTIONS") == "true":
        kind: Literal["github-actions", "gitlab-ci"] = "github-actions"
        names = _GITHUB_VARS
    elif env.get("GITLAB_CI") == "true":
        kind, names = "gitlab-ci", _GITLAB_VARS
    else:
        return None
    fields = {name: env[name] for name in names if env.get(name)}
    return Builder(kind=kind, fields=fields)

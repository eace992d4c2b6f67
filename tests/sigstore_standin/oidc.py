"""An OIDC token signer: mints ES256 JWTs that only this stand-in's Fulcio trusts.

The sigstore client decodes the token without checking its signature (``oidc.IdentityToken``
wants ``iss``, ``aud == "sigstore"``, ``sub``, ``iat`` and ``exp``); the stand-in Fulcio
does check it, so a token from another stand-in is refused.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jwt

from .ca import new_key

AUDIENCE = "sigstore"
DEFAULT_IDENTITY = "signer@example.com"
DEFAULT_ISSUER = "https://oidc.example.test"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
TOKEN_LIFETIME_S = 600


class TokenIssuer:
    def __init__(self) -> None:
        self._key = new_key()

    def mint(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self._key, algorithm="ES256")

    def verify(self, token: str) -> dict[str, Any]:
        """The claims; ``jwt.InvalidTokenError`` unless we signed the token and it is current."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self._key.public_key(),
            algorithms=["ES256"],
            audience=AUDIENCE,
            options={"require": ["iss", "sub", "aud", "iat", "exp"]},
            leeway=5,
        )
        return claims


def _timing() -> dict[str, Any]:
    now = int(time.time())
    return {"aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME_S}


def identity_claims(identity: str, issuer: str) -> dict[str, Any]:
    """An e-mail identity (``identity`` contains ``@``) or a URI one (taken from ``sub``)."""
    claims: dict[str, Any] = {"iss": issuer, "sub": identity, **_timing()}
    if "@" in identity and "://" not in identity:
        claims |= {"email": identity, "email_verified": True}
    return claims


def gitlab_claims(server: str, project_path: str, ref: str, sha: str) -> dict[str, Any]:
    """GitLab CI ID-token claims for a tag pipeline of ``project_path`` on ``server``."""
    return {
        "iss": f"https://{server}",
        "sub": f"project_path:{project_path}:ref_type:tag:ref:{ref}",
        "project_path": project_path,
        "ref": ref,
        "ref_type": "tag",
        "sha": sha,
        "ci_config_ref_uri": f"{server}/{project_path}//.gitlab-ci.yml@refs/tags/{ref}",
        **_timing(),
    }


def github_claims(overrides: Mapping[str, str], issuer: str) -> dict[str, Any]:
    """GitHub Actions ID-token claims; unset ones derive from ``repository``, ``ref``, ``sha``."""
    repository = overrides.get("repository", "octo-org/octo-repo")
    ref = overrides.get("ref", "refs/heads/main")
    sha = overrides.get("sha", "a" * 40)
    workflow_ref = overrides.get(
        "workflow_ref", f"{repository}/.github/workflows/release.yml@{ref}"
    )
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": f"repo:{repository}:ref:{ref}",
        "repository": repository,
        "repository_owner": repository.split("/")[0],
        "repository_id": "100",
        "repository_owner_id": "200",
        "repository_visibility": "public",
        "ref": ref,
        "ref_type": "branch",
        "sha": sha,
        "workflow": "release",
        "workflow_ref": workflow_ref,
        "workflow_sha": sha,
        "job_workflow_ref": overrides.get("job_workflow_ref", workflow_ref),
        "job_workflow_sha": sha,
        "event_name": "push",
        "run_id": "1000",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        **_timing(),
    }
    claims |= overrides
    return claims

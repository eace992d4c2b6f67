"""The licence of a model package, from every place that states one.

A package can state its licence in the model card (``license``, or ``other``
with ``license_name``), in GGUF metadata (``general.license``) and in licence
files. Each statement is normalised to an SPDX expression (see ``spdx``) and
kept as a :class:`LicenceSource`, so a reader of the manifest sees both the
verdict and the evidence; statements that disagree are reported rather than
resolved silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, field_validator

from ...codes import Code
from ..findings import Finding
from .spdx import (
    Expr,
    Unrecognised,
    expression_key,
    family,
    join_terms,
    licence_ref,
    parse_expression,
    render,
    terms,
)

__all__ = ["Licence", "LicenceSource", "detect_licence", "identify_licence_text"]


class LicenceSource(BaseModel):
    """One statement of the licence and what it normalises to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str  # "README.md:license", "model.gguf:general.license", "LICENSE", …
    value: str  # as stated; for a licence file, its first non-blank line
    spdx: str | None
    link: str | None = None  # the card's license_link, where it gives one


class Licence(BaseModel):
    """The licence verdict for a package with the statements it rests on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spdx: str | None
    sources: list[LicenceSource]
    agree: bool

    @field_validator("sources")
    @classmethod
    def _sorted_sources(cls, value: list[LicenceSource]) -> list[LicenceSource]:
        return sorted(value, key=lambda s: (s.source, s.value, s.spdx or ""))


# --- licence texts -----------------------------------------------------------

# (SPDX id, alternative phrase sets): the text matches when it contains every
# phrase of one set. Phrases are lower case with whitespace collapsed; GNU texts
# are recognised by their dated title lines, which the other GNU texts only cite.
_TEXT_RULES: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("AGPL-3.0-only", (("gnu affero general public license version 3, 19 november 2007",),)),
    ("LGPL-3.0-only", (("gnu lesser general public license version 3, 29 june 2007",),)),
    ("LGPL-2.1-only", (("gnu lesser general public license version 2.1, february 1999",),)),
    ("GPL-3.0-only", (("gnu general public license version 3, 29 june 2007",),)),
    ("GPL-2.0-only", (("gnu general public license version 2, june 1991",),)),
    (
        "Apache-2.0",
        (
            ("apache license version 2.0, january 2004",),
            ("licensed under the apache license, version 2.0",),
        ),
    ),
    ("MPL-2.0", (("mozilla public license version 2.0",), ("mozilla public license, v. 2.0",))),
    (
        "MIT",
        (
            (
                "permission is hereby granted, free of charge, to any person obtaining a copy",
                "the above copyright notice and this permission notice shall be included",
            ),
        ),
    ),
    (
        "ISC",
        (
            (
                "permission to use, copy, modify, and/or distribute this software for any "
                "purpose with or without fee is hereby granted",
            ),
        ),
    ),
    ("BSL-1.0", (("boost software license - version 1.0",),)),
    ("Unlicense", (("this is free and unencumbered software released into the public domain",),)),
    ("CC0-1.0", (("cc0 1.0 universal",),)),
    ("CC-BY-NC-SA-4.0", (("attribution-noncommercial-sharealike 4.0 international",),)),
    ("CC-BY-NC-ND-4.0", (("attribution-noncommercial-noderivatives 4.0 international",),)),
    ("CC-BY-NC-4.0", (("attribution-noncommercial 4.0 international",),)),
    ("CC-BY-SA-4.0", (("attribution-sharealike 4.0 international",),)),
    ("CC-BY-ND-4.0", (("attribution-noderivatives 4.0 international",),)),
    ("CC-BY-4.0", (("creative commons attribution 4.0 international",),)),
    ("LicenseRef-llama2", (("llama 2 community license agreement",),)),
    ("LicenseRef-llama3", (("meta llama 3 community license agreement",),)),
    ("LicenseRef-llama3.1", (("llama 3.1 community license agreement",),)),
    ("LicenseRef-llama3.2", (("llama 3.2 community license agreement",),)),
    ("LicenseRef-llama3.3", (("llama 3.3 community license agreement",),)),
    ("LicenseRef-llama4", (("llama 4 community license agreement",),)),
    ("LicenseRef-gemma", (("gemma terms of use",),)),
    ("LicenseRef-creativeml-openrail-m", (("creativeml open rail-m",),)),
)

_BSD_CONDITIONS = (
    "redistribution and use in source and binary forms, with or without modification, "
    "are permitted provided that the following conditions are met"
)


def _normalise_text(text: str) -> str:
    text = text.lower().translate(str.maketrans("‘’“”–—", "''\"\"--", "*#`>|"))
    return " ".join(text.split())


def _bsd_variant(text: str) -> str | None:
    if _BSD_CONDITIONS not in text:
        return None
    if "no express or implied licenses to any party's patent rights are granted" in text:
        return "BSD-3-Clause-Clear"
    if "all advertising materials mentioning features or use of this software" in text:
        return "BSD-4-Clause"
    if "neither the name of" in text or "the names of its contributors may not be used" in text:
        return "BSD-3-Clause"
    return "BSD-2-Clause"


def _identify_all(text: str) -> list[str]:
    """Every licence whose distinctive phrases the text contains."""
    norm = _normalise_text(text)
    found = [
        spdx
        for spdx, alternatives in _TEXT_RULES
        if any(all(phrase in norm for phrase in phrases) for phrases in alternatives)
    ]
    bsd = _bsd_variant(norm)
    if bsd is not None:
        found.append(bsd)
    return found


def identify_licence_text(text: str) -> str | None:
    """Recognise a common licence text by its distinctive phrases.

    A GNU licence text cannot tell "-only" from "-or-later" (that choice is made
    in each source file's notice); it is reported as "-only". Text matching no
    licence, or several different ones, gives None.
    """
    found = _identify_all(text)
    return found[0] if len(found) == 1 else None


# --- detection ---------------------------------------------------------------


class _Collected:
    """Sources gathered so far, with parsed expressions and findings."""

    def __init__(self) -> None:
        self.sources: list[LicenceSource] = []
        self.parsed: dict[str, Expr] = {}  # source name → expression, if recognised
        self.from_text: set[str] = set()  # sources that are licence files
        self.findings: list[Finding] = []

    def add(
        self,
        source: str,
        value: str,
        expr: Expr | None,
        path: str,
        problem: str | None,
        *,
        link: str | None = None,
        text: bool = False,
    ) -> None:
        spdx = render(expr) if expr is not None else None
        self.sources.append(LicenceSource(source=source, value=value, spdx=spdx, link=link))
        if expr is not None:
            self.parsed[source] = expr
        if text:
            self.from_text.add(source)
        if problem is not None:
            self.findings.append(
                Finding(
                    code=Code.LICENCE_UNRECOGNISED,
                    severity="warning",
                    message=f"{source}: {problem}",
                    file=path,
                )
            )


def _card_term(item: str, card: Mapping[str, object]) -> Expr:
    if item.strip().lower() == "other":
        name = card.get("license_name")
        ref = licence_ref(name) if isinstance(name, str) else None
        if ref is None:
            raise Unrecognised("license is 'other' but license_name is missing")
        return ref
    if item.strip().lower() == "unknown":
        raise Unrecognised("the card declares the licence as 'unknown'")
    return parse_expression(item)


def _card_expr(value: object, card: Mapping[str, object]) -> Expr:
    """A card's ``license``: a Hub id or expression, or a list of licences (all apply)."""
    if isinstance(value, str):
        return _card_term(value, card)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return join_terms("AND", [_card_term(v, card) for v in value])
    raise Unrecognised(f"license is a {type(value).__name__}, not a licence id")


def _add_card(found: _Collected, card: Mapping[str, object], card_path: str) -> None:
    if "license" not in card:
        return
    value = card["license"]
    link = card.get("license_link")
    link = link if isinstance(link, str) and link.strip() else None
    name = card.get("license_name")
    is_other = isinstance(value, str) and value.strip().lower() == "other"
    # For 'other' the licence is named by license_name: record that field.
    if is_other and isinstance(name, str):
        source, shown = f"{card_path}:license_name", name
    elif isinstance(value, list):
        source, shown = f"{card_path}:license", ", ".join(str(v) for v in value)
    else:
        source, shown = f"{card_path}:license", str(value)
    try:
        found.add(source, shown, _card_expr(value, card), card_path, None, link=link)
    except Unrecognised as exc:
        found.add(source, shown, None, card_path, str(exc), link=link)


def _add_gguf(found: _Collected, gguf_licences: Mapping[str, str]) -> None:
    for path, value in sorted(gguf_licences.items()):
        source = f"{path}:general.license"
        try:
            found.add(source, value, parse_expression(value), path, None)
        except Unrecognised as exc:
            found.add(source, value, None, path, str(exc))


def _add_files(found: _Collected, licence_files: Mapping[str, bytes]) -> None:
    for path, data in sorted(licence_files.items()):
        # Licence files are sometimes Latin-1; a replaced byte cannot hide a phrase.
        text = data.decode("utf-8-sig", errors="replace")
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        value = first[:120]
        ids = _identify_all(text)
        if len(ids) == 1:
            found.add(path, value, ids[0], path, None, text=True)
        elif ids:
            problem = f"text matches several licences ({', '.join(ids)})"
            found.add(path, value, None, path, problem, text=True)
        else:
            found.add(path, value, None, path, "licence text not recognised", text=True)


def _agreement(found: _Collected, card_sources: Sequence[str]) -> tuple[str | None, bool]:
    """The reference expression and whether all recognised statements agree.

    The reference is the card's statement, else the first other declared one
    (GGUF metadata states a licence; a recognised text only suggests one), else
    the first licence file's. Declared statements must be the same expression;
    with a declared reference, a licence file agrees when its licence is one of
    the reference's terms (a GNU text agrees with both "-only" and "-or-later").
    """
    ordered = sorted(found.parsed)
    declared = [s for s in ordered if s not in found.from_text]
    texts = [s for s in ordered if s in found.from_text]
    card = next((s for s in card_sources if s in found.parsed), None)
    if card is None and not declared:
        if not texts:
            return None, True
        # Only licence files: they must name the same licence.
        first = found.parsed[texts[0]]
        return render(first), len({expression_key(found.parsed[s]) for s in texts}) == 1
    ref = found.parsed[card or declared[0]]
    families = {family(t) for t in terms(ref)}
    agree = all(expression_key(found.parsed[s]) == expression_key(ref) for s in declared) and all(
        family(render(found.parsed[s])) in families for s in texts
    )
    return render(ref), agree


def detect_licence(
    card: dict[str, object] | None,
    card_path: str | None,
    licence_files: Mapping[str, bytes],
    gguf_licences: Mapping[str, str],
) -> tuple[Licence, list[Finding]]:
    """Collect every licence statement of a package and judge whether they agree.

    ``licence_files`` maps paths of LICENSE / COPYING / … files to their bytes;
    ``gguf_licences`` maps GGUF paths to their ``general.license`` value. The
    result's ``spdx`` is the agreed expression; on disagreement it is the model
    card's (else the first source's) and a LICENCE_DISAGREEMENT is reported.
    """
    found = _Collected()
    path = card_path or "README.md"
    if card is not None:
        _add_card(found, card, path)
    _add_gguf(found, gguf_licences)
    _add_files(found, licence_files)

    findings = list(found.findings)
    if not found.sources:
        findings.append(
            Finding(
                code=Code.LICENCE_MISSING,
                severity="info",
                message="no licence is stated: no model card licence, GGUF general.license "
                "or licence file",
            )
        )
        return Licence(spdx=None, sources=[], agree=True), findings

    card_sources = [f"{path}:license", f"{path}:license_name"]
    spdx, agree = _agreement(found, card_sources)
    if not agree:
        listing = "; ".join(
            f"{s.source} = {s.value!r} ({s.spdx})"
            for s in sorted(found.sources, key=lambda s: s.source)
            if s.spdx is not None
        )
        findings.append(
            Finding(
                code=Code.LICENCE_DISAGREEMENT,
                severity="warning",
                message=f"licence statements disagree: {listing}; recorded {spdx}",
            )
        )
    return Licence(spdx=spdx, sources=found.sources, agree=agree), findings

"""The licence of a model package, from every place that states one.

A package can state its licence in the model card (``license``, or ``other``
with ``license_name``), in GGUF metadata (``general.license``) and in licence
files. Each statement is normalised to an SPDX expression (Hub-specific
licences become ``LicenseRef-<id>``) and kept as a :class:`LicenceSource`, so a
reader of the manifest sees both the verdict and the evidence; statements that
disagree are reported rather than resolved silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from pydantic import BaseModel, ConfigDict, field_validator

from ..findings import Finding

__all__ = ["Licence", "LicenceSource", "detect_licence", "identify_licence_text", "to_spdx"]


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


# --- SPDX identifiers --------------------------------------------------------


def _ids(text: str) -> tuple[str, ...]:
    """A whitespace-separated table of identifiers."""
    return tuple(text.split())


# Canonical spellings of the SPDX licence ids model packages use; matched
# case-insensitively, as the SPDX specification prescribes.
_SPDX_IDS = _ids(
    "0BSD AFL-3.0 AGPL-3.0-only AGPL-3.0-or-later Apache-1.1 Apache-2.0 APSL-2.0 "
    "Artistic-1.0 Artistic-2.0 BlueOak-1.0.0 BSD-1-Clause BSD-2-Clause BSD-2-Clause-Patent "
    "BSD-3-Clause BSD-3-Clause-Clear BSD-4-Clause BSL-1.0 C-UDA-1.0 CAL-1.0 CC-BY-1.0 "
    "CC-BY-2.0 CC-BY-2.5 CC-BY-3.0 CC-BY-4.0 CC-BY-NC-1.0 CC-BY-NC-2.0 CC-BY-NC-2.5 "
    "CC-BY-NC-3.0 CC-BY-NC-4.0 CC-BY-NC-ND-1.0 CC-BY-NC-ND-2.0 CC-BY-NC-ND-2.5 "
    "CC-BY-NC-ND-3.0 CC-BY-NC-ND-4.0 CC-BY-NC-SA-1.0 CC-BY-NC-SA-2.0 CC-BY-NC-SA-2.5 "
    "CC-BY-NC-SA-3.0 CC-BY-NC-SA-4.0 CC-BY-ND-1.0 CC-BY-ND-2.0 CC-BY-ND-2.5 CC-BY-ND-3.0 "
    "CC-BY-ND-4.0 CC-BY-SA-1.0 CC-BY-SA-2.0 CC-BY-SA-2.5 CC-BY-SA-3.0 CC-BY-SA-4.0 CC-PDDC "
    "CC0-1.0 CDDL-1.0 CDDL-1.1 CDLA-Permissive-1.0 CDLA-Permissive-2.0 CDLA-Sharing-1.0 "
    "CECILL-2.1 ECL-2.0 EPL-1.0 EPL-2.0 etalab-2.0 EUPL-1.1 EUPL-1.2 GFDL-1.1-only "
    "GFDL-1.1-or-later GFDL-1.2-only GFDL-1.2-or-later GFDL-1.3-only GFDL-1.3-or-later "
    "GPL-1.0-only GPL-1.0-or-later GPL-2.0-only GPL-2.0-or-later GPL-3.0-only "
    "GPL-3.0-or-later ISC LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1-only LGPL-2.1-or-later "
    "LGPL-3.0-only LGPL-3.0-or-later LPPL-1.3c MIT MIT-0 MPL-1.1 MPL-2.0 "
    "MPL-2.0-no-copyleft-exception MS-PL MS-RL MulanPSL-2.0 NCSA ODbL-1.0 ODC-By-1.0 "
    "OFL-1.1 OGL-UK-3.0 OSL-3.0 PDDL-1.0 PostgreSQL PSF-2.0 Python-2.0 Unicode-3.0 "
    "Unicode-DFS-2016 Unlicense UPL-1.0 W3C WTFPL X11 Zlib ZPL-2.1"
)

# Deprecated SPDX ids and their current equivalents ("GPL-3.0" meant "-only").
_DEPRECATED = {
    f"{family}-{version}": f"{family}-{version}-only"
    for family, versions in {
        "GPL": ("1.0", "2.0", "3.0"),
        "LGPL": ("2.0", "2.1", "3.0"),
        "AGPL": ("3.0",),
        "GFDL": ("1.1", "1.2", "1.3"),
    }.items()
    for version in versions
}

_EXCEPTIONS = _ids(
    "Autoconf-exception-3.0 Bison-exception-2.2 Classpath-exception-2.0 GCC-exception-3.1 "
    "LLVM-exception OpenJDK-assembly-exception-1.0 Qt-LGPL-exception-1.1 Swift-exception"
)

# Hub licence ids that are not SPDX ids, or not in SPDX spelling. Hub-specific
# licences (no SPDX id) are LicenseRef-<hub id>.
_HUB_SPDX = {
    "c-uda": "C-UDA-1.0",
    "odbl": "ODbL-1.0",
    "odc-by": "ODC-By-1.0",
    "pddl": "PDDL-1.0",
}
_HUB_ONLY = _ids(
    "apple-amlr apple-ascl bigcode-openrail-m bigscience-bloom-rail-1.0 "
    "bigscience-openrail-m bsd cc creativeml-openrail-m deepfloyd-if-license deepseek "
    "fair-noncommercial-research-license gemma gfdl gpl grok2-community h-research "
    "intel-research lgpl lgpl-lr llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 "
    "openmdw-1.0 openrail openrail++"
)

# Common spellings of licence names, matched by :func:`_name_key`.
_ALIASES = {
    "Apache-2.0": ["Apache 2", "Apache License 2.0", "Apache Software License 2.0", "ASL 2.0"],
    "BSD-2-Clause": ["Simplified BSD", "FreeBSD License", "BSD 2"],
    "BSD-3-Clause": ["New BSD", "Modified BSD", "BSD 3", "Revised BSD"],
    "CC-BY-4.0": ["Creative Commons Attribution 4.0"],
    "CC-BY-SA-4.0": ["Creative Commons Attribution-ShareAlike 4.0"],
    "CC-BY-NC-4.0": ["Creative Commons Attribution-NonCommercial 4.0"],
    "CC-BY-NC-SA-4.0": ["Creative Commons Attribution-NonCommercial-ShareAlike 4.0"],
    "CC-BY-ND-4.0": ["Creative Commons Attribution-NoDerivatives 4.0"],
    "CC-BY-NC-ND-4.0": ["Creative Commons Attribution-NonCommercial-NoDerivatives 4.0"],
    "CC0-1.0": ["CC0", "Creative Commons Zero 1.0", "CC0 1.0 Universal"],
    "GPL-2.0-only": ["GNU General Public License 2.0", "GNU GPL 2", "GPL 2"],
    "GPL-3.0-only": ["GNU General Public License 3.0", "GNU GPL 3", "GPL 3"],
    "LGPL-2.1-only": ["GNU Lesser General Public License 2.1", "LGPL 2.1"],
    "LGPL-3.0-only": ["GNU Lesser General Public License 3.0", "LGPL 3"],
    "AGPL-3.0-only": ["GNU Affero General Public License 3.0", "AGPL 3"],
    "MIT": ["Expat", "MIT/X11"],
    "MPL-2.0": ["Mozilla Public License 2.0"],
    "BSL-1.0": ["Boost Software License 1.0"],
    "LicenseRef-llama2": ["Llama 2", "Llama 2 Community License Agreement"],
    "LicenseRef-llama3": ["Llama 3", "Meta Llama 3 Community License Agreement"],
    "LicenseRef-llama3.1": ["Llama 3.1 Community License Agreement"],
    "LicenseRef-llama3.2": ["Llama 3.2 Community License Agreement"],
    "LicenseRef-llama3.3": ["Llama 3.3 Community License Agreement"],
    "LicenseRef-llama4": ["Llama 4 Community License Agreement"],
    "LicenseRef-gemma": ["Gemma Terms of Use"],
}

_FILLER_WORDS = frozenset(
    {"the", "license", "version", "agreement", "terms", "of", "use", "community", "international"}
)
_IDSTRING = re.compile(r"[A-Za-z0-9.-]+")


def _name_key(name: str) -> str:
    """A spelling-insensitive key: 'GNU GPL v3', 'gpl-3', 'GPL 3.0' all match."""
    tokens = re.findall(r"[a-z]+|\d+(?:\.\d+)*", name.lower().replace("licence", "license"))
    out: list[str] = []
    for i, token in enumerate(tokens):
        following_number = i + 1 < len(tokens) and tokens[i + 1][0].isdigit()
        if token == "v" or token in _FILLER_WORDS:
            continue
        if token[0].isdigit():
            token = token if "." in token else f"{token}.0"
        elif following_number and len(token) > 1 and token.endswith("v"):
            token = token[:-1]  # "gplv3" → "gpl" "3.0"
        out.append(token)
    return "-".join(out)


def _slug(name: str) -> str:
    """``name`` as a LicenseRef idstring: letters, digits, '.', '-'."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", name.replace("+", "-plus")).strip("-")


def _licence_ref(name: str) -> str | None:
    slug = _slug(name)
    return f"LicenseRef-{slug}" if slug else None


def _build_tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    exact: dict[str, str] = {i.lower(): i for i in _SPDX_IDS}
    exact.update({old.lower(): new for old, new in _DEPRECATED.items()})
    exact.update(_HUB_SPDX)
    exact.update({hub_id: f"LicenseRef-{_slug(hub_id)}" for hub_id in _HUB_ONLY})
    by_key: dict[str, str] = {}
    for spelling, spdx in exact.items():
        if "+" not in spelling:
            by_key.setdefault(_name_key(spelling), spdx)
    for spdx, names in _ALIASES.items():
        for name in names:
            by_key.setdefault(_name_key(name), spdx)
    # Our own LicenseRef spellings are canonical: "LicenseRef-Gemma" → "LicenseRef-gemma".
    exact.update({ref.lower(): ref for ref in exact.values() if ref.startswith("LicenseRef-")})
    exceptions = {e.lower(): e for e in _EXCEPTIONS}
    return exact, by_key, exceptions


_EXACT, _BY_KEY, _EXCEPTION_IDS = _build_tables()


# --- expressions -------------------------------------------------------------

# A parsed expression: a term ("MIT", "GPL-2.0-only WITH Classpath-exception-2.0")
# or an operator with its operands.
_Expr: TypeAlias = str | tuple[str, tuple["_Expr", ...]]


class _Unrecognised(Exception):
    """A licence statement that cannot be normalised; the message says why."""


def _normalise_id(raw: str) -> str:
    exact = _EXACT.get(raw.strip().lower())  # "openrail++" is an id, not an operator
    if exact is not None:
        return exact
    plus = raw.endswith("+")
    base = raw[:-1].strip() if plus else raw.strip()
    if base.lower().startswith("licenseref-"):
        rest = base[len("licenseref-") :]
        if plus or not _IDSTRING.fullmatch(rest):
            raise _Unrecognised(f"{raw!r} is not a valid LicenseRef")
        return f"LicenseRef-{rest}"
    spdx = _EXACT.get(base.lower()) or _BY_KEY.get(_name_key(base))
    if spdx is None:
        raise _Unrecognised(f"{raw!r} is not a recognised licence")
    if not plus or spdx.endswith("-or-later"):
        return spdx
    if spdx.endswith("-only"):
        return spdx[: -len("-only")] + "-or-later"
    if spdx.startswith("LicenseRef-"):
        raise _Unrecognised(f"{raw!r}: '+' cannot follow a LicenseRef")
    return f"{spdx}+"


def _join(op: str, items: Sequence[_Expr]) -> _Expr:
    """``items`` joined by ``op``, flattened: (A AND B) AND C is A AND B AND C."""
    flat: list[_Expr] = []
    for item in items:
        flat.extend(item[1] if isinstance(item, tuple) and item[0] == op else (item,))
    return flat[0] if len(flat) == 1 else (op, tuple(flat))


class _Parser:
    """Recursive descent over SPDX expression syntax (WITH > AND > OR).

    A term may span several words ("Apache License 2.0") so that common names
    normalise too; operators are recognised in any case.
    """

    def __init__(self, text: str) -> None:
        # "GPL v3 or later" / "or any later version" is the '+' operator spelt out.
        text = re.sub(r"(?i)\s+or\s+(?:any\s+)?later(?:\s+version)?\b", "+", text)
        self.tokens = re.findall(r"\(|\)|[^\s()]+", text)
        self.pos = 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _is_op(self, token: str | None, *ops: str) -> bool:
        return token is not None and token.upper() in ops

    def parse(self) -> _Expr:
        if not self.tokens:
            raise _Unrecognised("empty licence statement")
        expr = self._binary("OR")
        if self._peek() is not None:
            raise _Unrecognised(f"unexpected {self._peek()!r} in licence expression")
        return expr

    def _binary(self, op: str) -> _Expr:
        operand = self._with if op == "AND" else lambda: self._binary("AND")
        items = [operand()]
        while self._is_op(self._peek(), op):
            self.pos += 1
            items.append(operand())
        return _join(op, items)

    def _with(self) -> _Expr:
        atom = self._atom()
        if not self._is_op(self._peek(), "WITH"):
            return atom
        self.pos += 1
        words = self._words()
        exception = _EXCEPTION_IDS.get(" ".join(words).lower())
        if not isinstance(atom, str) or exception is None:
            raise _Unrecognised(f"unrecognised licence exception {' '.join(words)!r}")
        return f"{atom} WITH {exception}"

    def _atom(self) -> _Expr:
        if self._peek() == "(":
            self.pos += 1
            expr = self._binary("OR")
            if self._peek() != ")":
                raise _Unrecognised("unbalanced parentheses in licence expression")
            self.pos += 1
            return expr
        return _normalise_id(" ".join(self._words()))

    def _words(self) -> list[str]:
        words: list[str] = []
        while True:
            tok = self._peek()
            if tok is None or tok in ("(", ")") or self._is_op(tok, "AND", "OR", "WITH"):
                break
            words.append(tok)
            self.pos += 1
        if not words:
            raise _Unrecognised(f"expected a licence id at {self._peek() or 'end'!r}")
        return words


def _render(expr: _Expr, parent: str | None = None) -> str:
    if isinstance(expr, str):
        return expr
    op, items = expr
    text = f" {op} ".join(_render(item, op) for item in items)
    return f"({text})" if parent == "AND" and op == "OR" else text


def _key(expr: _Expr) -> str:
    """Order- and case-insensitive identity: 'MIT AND Apache-2.0' == 'apache-2.0 and mit'."""
    if isinstance(expr, str):
        return expr.lower()
    op, items = expr
    return f"{op}({','.join(sorted(_key(i) for i in items))})"


def _terms(expr: _Expr) -> list[str]:
    if isinstance(expr, str):
        return [expr]
    return [term for item in expr[1] for term in _terms(item)]


def _family(term: str) -> str:
    """A licence without its WITH exception and GNU "-only" / "-or-later" choice."""
    base = term.split(" WITH ")[0].lower()
    return re.sub(r"(-only|-or-later|\+)$", "", base)


def _parse(value: str) -> _Expr:
    return _Parser(value).parse()


def to_spdx(value: str) -> str | None:
    """Normalise a Hub licence id, SPDX id or expression, or common name to SPDX.

    Returns None when any part is unrecognised: 'other' and 'unknown' say
    nothing by themselves.
    """
    try:
        return _render(_parse(value))
    except _Unrecognised:
        return None


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
        self.parsed: dict[str, _Expr] = {}  # source name → expression, if recognised
        self.from_text: set[str] = set()  # sources that are licence files
        self.findings: list[Finding] = []

    def add(
        self,
        source: str,
        value: str,
        expr: _Expr | None,
        path: str,
        problem: str | None,
        *,
        link: str | None = None,
        text: bool = False,
    ) -> None:
        spdx = _render(expr) if expr is not None else None
        self.sources.append(LicenceSource(source=source, value=value, spdx=spdx, link=link))
        if expr is not None:
            self.parsed[source] = expr
        if text:
            self.from_text.add(source)
        if problem is not None:
            self.findings.append(
                Finding(
                    code="LICENCE_UNRECOGNISED",
                    severity="warning",
                    message=f"{source}: {problem}",
                    file=path,
                )
            )


def _card_term(item: str, card: Mapping[str, object]) -> _Expr:
    if item.strip().lower() == "other":
        name = card.get("license_name")
        ref = _licence_ref(name) if isinstance(name, str) else None
        if ref is None:
            raise _Unrecognised("license is 'other' but license_name is missing")
        return ref
    if item.strip().lower() == "unknown":
        raise _Unrecognised("the card declares the licence as 'unknown'")
    return _parse(item)


def _card_expr(value: object, card: Mapping[str, object]) -> _Expr:
    """A card's ``license``: a Hub id or expression, or a list of licences (all apply)."""
    if isinstance(value, str):
        return _card_term(value, card)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return _join("AND", [_card_term(v, card) for v in value])
    raise _Unrecognised(f"license is a {type(value).__name__}, not a licence id")


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
    except _Unrecognised as exc:
        found.add(source, shown, None, card_path, str(exc), link=link)


def _add_gguf(found: _Collected, gguf_licences: Mapping[str, str]) -> None:
    for path, value in sorted(gguf_licences.items()):
        source = f"{path}:general.license"
        try:
            found.add(source, value, _parse(value), path, None)
        except _Unrecognised as exc:
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
        return _render(first), len({_key(found.parsed[s]) for s in texts}) == 1
    ref = found.parsed[card or declared[0]]
    families = {_family(t) for t in _terms(ref)}
    agree = all(_key(found.parsed[s]) == _key(ref) for s in declared) and all(
        _family(_render(found.parsed[s])) in families for s in texts
    )
    return _render(ref), agree


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
                code="LICENCE_MISSING",
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
                code="LICENCE_DISAGREEMENT",
                severity="warning",
                message=f"licence statements disagree: {listing}; recorded {spdx}",
            )
        )
    return Licence(spdx=spdx, sources=found.sources, agree=agree), findings


def licence_permitted(
    expression: str, *, allow: Sequence[str] | None, deny: Sequence[str]
) -> tuple[bool, str]:
    """Whether an SPDX expression can be complied with under allow / deny lists.

    ``A OR B`` is permitted when either choice is; ``A AND B`` when both are;
    ``A WITH E`` is matched as written, or as ``A``. Lists are normalised the
    same way, so ``apache-2.0`` in a policy matches ``Apache-2.0``.
    """
    try:
        tree = _parse(expression)
    except _Unrecognised as exc:
        return False, f"licence {expression!r} is not an SPDX expression ({exc})"

    def norm(items: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for item in items:
            spdx = to_spdx(item)
            out.add((spdx or item).lower())
        return out

    allowed = norm(allow) if allow is not None else None
    denied = norm(deny)

    def term_ok(term: str) -> tuple[bool, str]:
        names = {term.lower(), term.split(" WITH ")[0].lower()}
        if names & denied:
            return False, f"{term} is denied"
        if allowed is not None and not names & allowed:
            return False, f"{term} is not in the allowed list"
        return True, f"{term} is allowed"

    def ok(expr: _Expr) -> tuple[bool, str]:
        if isinstance(expr, str):
            return term_ok(expr)
        op, items = expr
        results = [ok(i) for i in items]
        if op == "OR":
            good = [r for r in results if r[0]]
            return (True, good[0][1]) if good else (False, "; ".join(r[1] for r in results))
        bad = [r for r in results if not r[0]]
        return (False, "; ".join(r[1] for r in bad)) if bad else (True, "all terms allowed")

    return ok(tree)

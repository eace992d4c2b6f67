"""SPDX licence identifiers and expressions: normalising what model packages state.

Hub licence ids, SPDX ids and expressions, and common licence names all
normalise to an SPDX expression (Hub-specific licences become
``LicenseRef-<id>``); :func:`licence_permitted` judges one against a policy's
allow and deny lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeAlias

__all__ = [
    "Expr",
    "Unrecognised",
    "expression_key",
    "family",
    "join_terms",
    "licence_permitted",
    "licence_ref",
    "parse_expression",
    "render",
    "terms",
    "to_spdx",
]


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


def licence_ref(name: str) -> str | None:
    """``LicenseRef-<name>`` for a licence SPDX has no id for (None when nothing is left)."""
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
Expr: TypeAlias = str | tuple[str, tuple["Expr", ...]]


class Unrecognised(Exception):
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
            raise Unrecognised(f"{raw!r} is not a valid LicenseRef")
        return f"LicenseRef-{rest}"
    spdx = _EXACT.get(base.lower()) or _BY_KEY.get(_name_key(base))
    if spdx is None:
        raise Unrecognised(f"{raw!r} is not a recognised licence")
    if not plus or spdx.endswith("-or-later"):
        return spdx
    if spdx.endswith("-only"):
        return spdx[: -len("-only")] + "-or-later"
    if spdx.startswith("LicenseRef-"):
        raise Unrecognised(f"{raw!r}: '+' cannot follow a LicenseRef")
    return f"{spdx}+"


def join_terms(op: str, items: Sequence[Expr]) -> Expr:
    """``items`` joined by ``op``, flattened: (A AND B) AND C is A AND B AND C."""
    flat: list[Expr] = []
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

    def parse(self) -> Expr:
        if not self.tokens:
            raise Unrecognised("empty licence statement")
        expr = self._binary("OR")
        if self._peek() is not None:
            raise Unrecognised(f"unexpected {self._peek()!r} in licence expression")
        return expr

    def _binary(self, op: str) -> Expr:
        operand = self._with if op == "AND" else lambda: self._binary("AND")
        items = [operand()]
        while self._is_op(self._peek(), op):
            self.pos += 1
            items.append(operand())
        return join_terms(op, items)

    def _with(self) -> Expr:
        atom = self._atom()
        if not self._is_op(self._peek(), "WITH"):
            return atom
        self.pos += 1
        words = self._words()
        exception = _EXCEPTION_IDS.get(" ".join(words).lower())
        if not isinstance(atom, str) or exception is None:
            raise Unrecognised(f"unrecognised licence exception {' '.join(words)!r}")
        return f"{atom} WITH {exception}"

    def _atom(self) -> Expr:
        if self._peek() == "(":
            self.pos += 1
            expr = self._binary("OR")
            if self._peek() != ")":
                raise Unrecognised("unbalanced parentheses in licence expression")
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
            raise Unrecognised(f"expected a licence id at {self._peek() or 'end'!r}")
        return words


def render(expr: Expr, parent: str | None = None) -> str:
    """An expression as SPDX text (parenthesised only where AND binds an OR)."""
    if isinstance(expr, str):
        return expr
    op, items = expr
    text = f" {op} ".join(render(item, op) for item in items)
    return f"({text})" if parent == "AND" and op == "OR" else text


def expression_key(expr: Expr) -> str:
    """Order- and case-insensitive identity: 'MIT AND Apache-2.0' == 'apache-2.0 and mit'."""
    if isinstance(expr, str):
        return expr.lower()
    op, items = expr
    return f"{op}({','.join(sorted(expression_key(i) for i in items))})"


def terms(expr: Expr) -> list[str]:
    """The terms of an expression, operators left out."""
    if isinstance(expr, str):
        return [expr]
    return [term for item in expr[1] for term in terms(item)]


def family(term: str) -> str:
    """A licence without its WITH exception and GNU "-only" / "-or-later" choice."""
    base = term.split(" WITH ")[0].lower()
    return re.sub(r"(-only|-or-later|\+)$", "", base)


def parse_expression(value: str) -> Expr:
    """Parse a licence statement; :class:`Unrecognised` says why it cannot be."""
    return _Parser(value).parse()


def to_spdx(value: str) -> str | None:
    """Normalise a Hub licence id, SPDX id or expression, or common name to SPDX.

    Returns None when any part is unrecognised: 'other' and 'unknown' say
    nothing by themselves.
    """
    try:
        return render(parse_expression(value))
    except Unrecognised:
        return None


def licence_permitted(
    expression: str, *, allow: Sequence[str] | None, deny: Sequence[str]
) -> tuple[bool, str]:
    """Whether an SPDX expression can be complied with under allow / deny lists.

    ``A OR B`` is permitted when either choice is; ``A AND B`` when both are;
    ``A WITH E`` is matched as written, or as ``A``. Lists are normalised the
    same way, so ``apache-2.0`` in a policy matches ``Apache-2.0``.
    """
    try:
        tree = parse_expression(expression)
    except Unrecognised as exc:
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

    def ok(expr: Expr) -> tuple[bool, str]:
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

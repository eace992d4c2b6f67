"""Licence detection: card ids, GGUF metadata, licence texts, agreement."""

from __future__ import annotations

import pytest

from modelsign._internal.metadata.card import parse_model_card
from modelsign._internal.metadata.licence import detect_licence, identify_licence_text
from modelsign._internal.metadata.spdx import _EXACT, to_spdx

APACHE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION

   1. Definitions.

      "License" shall mean the terms and conditions for use, reproduction,
      and distribution as defined by Sections 1 through 9 of this document.

      "Licensor" shall mean the copyright owner or entity authorized by
      the copyright owner that is granting the License.
"""

MIT = """MIT License

Copyright (c) 2024 Example Labs

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
"""

BSD3 = """BSD 3-Clause License

Copyright (c) 2024, Example Labs
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.
"""

BSD2 = BSD3.split("3. Neither")[0].replace("BSD 3-Clause", "BSD 2-Clause")

GPL3 = """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
 Everyone is permitted to copy and distribute verbatim copies
 of this license document, but changing it is not allowed.

                            Preamble

  The GNU General Public License is a free, copyleft license for
software and other kinds of works.

  For example, if you distribute copies of such a program, you may
consider it more useful to permit linking proprietary applications with
the library. If this is what you want to do, use the GNU Lesser General
Public License instead of this License.
"""

LGPL3 = """                   GNU LESSER GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>

  This version of the GNU Lesser General Public License incorporates
the terms and conditions of version 3 of the GNU General Public
License, supplemented by the additional permissions listed below.
"""

LLAMA31 = """LLAMA 3.1 COMMUNITY LICENSE AGREEMENT
Llama 3.1 Version Release Date: July 23, 2024
"Agreement" means the terms and conditions for use, reproduction, distribution and
modification of the Llama Materials set forth herein.
"""

GEMMA = """Gemma Terms of Use

Last modified: February 21, 2024

By using, reproducing, modifying, distributing, performing or displaying any portion
or element of Gemma, Model Derivatives including via any Hosted Service, you agree.
"""


@pytest.mark.parametrize(
    ("value", "spdx"),
    [
        ("apache-2.0", "Apache-2.0"),
        ("mit", "MIT"),
        ("bsd-2-clause", "BSD-2-Clause"),
        ("bsd-3-clause", "BSD-3-Clause"),
        ("gpl-2.0", "GPL-2.0-only"),
        ("gpl-3.0", "GPL-3.0-only"),
        ("gpl-3.0-or-later", "GPL-3.0-or-later"),
        ("lgpl-2.1", "LGPL-2.1-only"),
        ("lgpl-3.0", "LGPL-3.0-only"),
        ("agpl-3.0", "AGPL-3.0-only"),
        ("mpl-2.0", "MPL-2.0"),
        ("cc0-1.0", "CC0-1.0"),
        ("cc-by-4.0", "CC-BY-4.0"),
        ("cc-by-sa-4.0", "CC-BY-SA-4.0"),
        ("cc-by-nc-4.0", "CC-BY-NC-4.0"),
        ("cc-by-nc-sa-4.0", "CC-BY-NC-SA-4.0"),
        ("cc-by-nd-4.0", "CC-BY-ND-4.0"),
        ("unlicense", "Unlicense"),
        ("artistic-2.0", "Artistic-2.0"),
        ("bsl-1.0", "BSL-1.0"),
        ("odbl", "ODbL-1.0"),
        ("openrail", "LicenseRef-openrail"),
        ("openrail++", "LicenseRef-openrail-plus-plus"),
        ("creativeml-openrail-m", "LicenseRef-creativeml-openrail-m"),
        ("bigscience-openrail-m", "LicenseRef-bigscience-openrail-m"),
        ("bigscience-bloom-rail-1.0", "LicenseRef-bigscience-bloom-rail-1.0"),
        ("llama2", "LicenseRef-llama2"),
        ("llama3", "LicenseRef-llama3"),
        ("llama3.1", "LicenseRef-llama3.1"),
        ("llama3.2", "LicenseRef-llama3.2"),
        ("llama3.3", "LicenseRef-llama3.3"),
        ("llama4", "LicenseRef-llama4"),
        ("gemma", "LicenseRef-gemma"),
        ("deepseek", "LicenseRef-deepseek"),
        ("apple-ascl", "LicenseRef-apple-ascl"),
        # SPDX ids in any case, deprecated ids, '+', common names.
        ("APACHE-2.0", "Apache-2.0"),
        ("Apache-2.0", "Apache-2.0"),
        ("GPL-2.0+", "GPL-2.0-or-later"),
        ("Apache License, Version 2.0", "Apache-2.0"),
        ("MIT License", "MIT"),
        ("GPLv3", "GPL-3.0-only"),
        ("GNU GPL v3 or later", "GPL-3.0-or-later"),
        ("CC BY-NC-SA 4.0", "CC-BY-NC-SA-4.0"),
        ("Llama 3.1 Community License Agreement", "LicenseRef-llama3.1"),
        ("licenseref-Acme-1.0", "LicenseRef-Acme-1.0"),
        # Expressions, term by term.
        ("mit OR apache-2.0", "MIT OR Apache-2.0"),
        ("(mit or apache-2.0) and bsd-3-clause", "(MIT OR Apache-2.0) AND BSD-3-Clause"),
        ("MIT AND (Apache-2.0 OR BSD-2-Clause)", "MIT AND (Apache-2.0 OR BSD-2-Clause)"),
        ("((MIT))", "MIT"),
        ("gpl-2.0 WITH classpath-exception-2.0", "GPL-2.0-only WITH Classpath-exception-2.0"),
    ],
)
def test_to_spdx(value: str, spdx: str) -> None:
    assert to_spdx(value) == spdx


@pytest.mark.parametrize(
    "value",
    [
        "",
        "other",
        "unknown",
        "my-own-licence",
        "MIT AND",
        "(MIT",
        "MIT)",
        "MIT WITH bogus",
        "LicenseRef-a b+",
        "LicenseRef-x+",
    ],
)
def test_to_spdx_unrecognised(value: str) -> None:
    assert to_spdx(value) is None


def test_every_table_id_round_trips() -> None:
    for spdx in set(_EXACT.values()):
        assert to_spdx(spdx) == spdx
        assert to_spdx(spdx.upper()) == spdx
        assert to_spdx(spdx.lower()) == spdx


@pytest.mark.parametrize(
    ("text", "spdx"),
    [
        (APACHE, "Apache-2.0"),
        (MIT, "MIT"),
        (BSD3, "BSD-3-Clause"),
        (BSD2, "BSD-2-Clause"),
        (GPL3, "GPL-3.0-only"),
        (LGPL3, "LGPL-3.0-only"),
        (LLAMA31, "LicenseRef-llama3.1"),
        (GEMMA, "LicenseRef-gemma"),
        (
            "Copyright 2024 Acme\n\nLicensed under the Apache License, Version 2.0 (the "
            '"License");\nyou may not use this file except in compliance',
            "Apache-2.0",
        ),
        ("This is free and unencumbered software released into the public domain.", "Unlicense"),
        ("Creative Commons Legal Code\n\nCC0 1.0 Universal\n", "CC0-1.0"),
        ("Attribution-NonCommercial 4.0 International\n\n=====\n", "CC-BY-NC-4.0"),
        ("Creative Commons Attribution 4.0 International Public License", "CC-BY-4.0"),
        ("Mozilla Public License Version 2.0\n==================================", "MPL-2.0"),
    ],
)
def test_identify_licence_text(text: str, spdx: str) -> None:
    assert identify_licence_text(text) == spdx


def test_identify_unknown_and_ambiguous_text() -> None:
    assert identify_licence_text("All rights reserved. Do not redistribute.") is None
    assert identify_licence_text(APACHE + "\n\n" + MIT) is None


def card(text: str) -> dict[str, object]:
    parsed, findings = parse_model_card(text.encode(), "README.md")
    assert findings == []
    return parsed


def test_card_only() -> None:
    lic, findings = detect_licence(card("---\nlicense: apache-2.0\n---\n"), "README.md", {}, {})
    assert findings == []
    assert lic.spdx == "Apache-2.0" and lic.agree
    assert [(s.source, s.value, s.spdx) for s in lic.sources] == [
        ("README.md:license", "apache-2.0", "Apache-2.0")
    ]


def test_card_agrees_with_licence_file() -> None:
    c = card("---\nlicense: apache-2.0\n---\n")
    lic, findings = detect_licence(c, "README.md", {"LICENSE": APACHE.encode()}, {})
    assert findings == []
    assert lic.spdx == "Apache-2.0" and lic.agree
    assert [(s.source, s.value, s.spdx) for s in lic.sources] == [
        ("LICENSE", "Apache License", "Apache-2.0"),
        ("README.md:license", "apache-2.0", "Apache-2.0"),
    ]


def test_card_other_with_licence_name() -> None:
    c = card(
        "---\nlicense: other\nlicense_name: qwen-research\n"
        "license_link: https://huggingface.co/Qwen/Qwen2.5-3B/blob/main/LICENSE\n---\n"
    )
    lic, findings = detect_licence(c, "README.md", {}, {})
    assert findings == []
    assert lic.spdx == "LicenseRef-qwen-research"
    (source,) = lic.sources
    assert source.source == "README.md:license_name"
    assert source.value == "qwen-research"
    assert source.link == "https://huggingface.co/Qwen/Qwen2.5-3B/blob/main/LICENSE"


def test_card_other_without_name() -> None:
    lic, findings = detect_licence(card("---\nlicense: other\n---\n"), "README.md", {}, {})
    assert lic.spdx is None and lic.agree
    assert [(f.code, f.severity, f.path) for f in findings] == [
        ("LICENCE_UNRECOGNISED", "warning", "README.md")
    ]
    assert "license_name" in findings[0].message


def test_card_licence_list() -> None:
    c = card("---\nlicense:\n- mit\n- cc-by-4.0\n---\n")
    lic, findings = detect_licence(c, "README.md", {"LICENSE": MIT.encode()}, {})
    assert findings == []
    assert lic.spdx == "MIT AND CC-BY-4.0" and lic.agree
    assert lic.sources[1].value == "mit, cc-by-4.0"


def test_card_list_agrees_with_gguf_expression_in_any_order() -> None:
    c = card("---\nlicense: [mit, apache-2.0]\n---\n")
    lic, findings = detect_licence(c, "README.md", {}, {"m.gguf": "Apache-2.0 AND MIT"})
    assert findings == [] and lic.agree
    assert lic.spdx == "MIT AND Apache-2.0"
    nested = {"license": ["mit AND bsd-3-clause", "apache-2.0"]}
    lic, findings = detect_licence(nested, "README.md", {}, {"m.gguf": "MIT AND Apache-2.0"})
    assert lic.spdx == "MIT AND BSD-3-Clause AND Apache-2.0"
    assert not lic.agree and [f.code for f in findings] == ["LICENCE_DISAGREEMENT"]


def test_unrecognised_card_value() -> None:
    c = card("---\nlicense: totally-custom\n---\n")
    lic, findings = detect_licence(c, "README.md", {}, {})
    assert lic.spdx is None
    assert [f.code for f in findings] == ["LICENCE_UNRECOGNISED"]
    assert "totally-custom" in findings[0].message


def test_card_licence_of_wrong_type() -> None:
    lic, findings = detect_licence({"license": {"id": "mit"}}, "README.md", {}, {})
    assert lic.spdx is None
    assert "dict" in findings[0].message


def test_disagreement_card_apache_licence_mit() -> None:
    c = card("---\nlicense: apache-2.0\n---\n")
    lic, findings = detect_licence(c, "README.md", {"LICENSE": MIT.encode()}, {})
    assert not lic.agree
    assert lic.spdx == "Apache-2.0"  # the card's value wins
    assert [f.code for f in findings] == ["LICENCE_DISAGREEMENT"]
    message = findings[0].message
    assert "README.md:license = 'apache-2.0' (Apache-2.0)" in message
    assert "LICENSE = 'MIT License' (MIT)" in message


def test_gguf_licence() -> None:
    lic, findings = detect_licence(None, None, {}, {"llama-Q4_K_M.gguf": "llama3.1"})
    assert findings == []
    assert lic.spdx == "LicenseRef-llama3.1"
    assert lic.sources[0].source == "llama-Q4_K_M.gguf:general.license"


def test_gguf_disagrees_with_card() -> None:
    c = card("---\nlicense: llama3.1\n---\n")
    lic, findings = detect_licence(c, "README.md", {}, {"b.gguf": "mit", "a.gguf": "llama3.1"})
    assert not lic.agree and lic.spdx == "LicenseRef-llama3.1"
    assert [f.code for f in findings] == ["LICENCE_DISAGREEMENT"]
    assert [s.source for s in lic.sources] == [
        "README.md:license",
        "a.gguf:general.license",
        "b.gguf:general.license",
    ]


def test_disagreement_without_card_uses_first_source() -> None:
    lic, findings = detect_licence(
        None, None, {"LICENSE": MIT.encode()}, {"model.gguf": "apache-2.0"}
    )
    assert not lic.agree
    assert lic.spdx == "Apache-2.0"  # declared metadata before licence files
    assert [f.code for f in findings] == ["LICENCE_DISAGREEMENT"]


def test_gnu_text_agrees_with_or_later() -> None:
    c = card("---\nlicense: gpl-3.0-or-later\n---\n")
    lic, findings = detect_licence(c, "README.md", {"COPYING": GPL3.encode()}, {})
    assert findings == [] and lic.agree
    assert lic.spdx == "GPL-3.0-or-later"


def test_licence_files_only() -> None:
    lic, findings = detect_licence(
        None, None, {"LICENSE": BSD3.encode(), "LICENSE.md": BSD3.encode()}, {}
    )
    assert findings == [] and lic.agree and lic.spdx == "BSD-3-Clause"
    lic, findings = detect_licence(
        None, None, {"LICENSE": BSD3.encode(), "COPYING": GPL3.encode()}, {}
    )
    assert not lic.agree and lic.spdx == "GPL-3.0-only"  # "COPYING" sorts first
    assert [f.code for f in findings] == ["LICENCE_DISAGREEMENT"]


def test_unknown_licence_text() -> None:
    text = b"Proprietary. \xa9 2024 Acme Corp. All rights reserved.\n"
    lic, findings = detect_licence(None, None, {"LICENSE.txt": text}, {})
    assert lic.spdx is None and lic.agree
    assert lic.sources[0].value == "Proprietary. \ufffd 2024 Acme Corp. All rights reserved."
    assert [(f.code, f.path) for f in findings] == [("LICENCE_UNRECOGNISED", "LICENSE.txt")]


def test_unrecognised_source_does_not_break_agreement() -> None:
    c = card("---\nlicense: mit\n---\n")
    lic, findings = detect_licence(c, "README.md", {"LICENSE": b"see website"}, {})
    assert lic.agree and lic.spdx == "MIT"
    assert [f.code for f in findings] == ["LICENCE_UNRECOGNISED"]


def test_missing() -> None:
    lic, findings = detect_licence(None, None, {}, {})
    assert (lic.spdx, lic.sources, lic.agree) == (None, [], True)
    assert [(f.code, f.severity) for f in findings] == [("LICENCE_MISSING", "info")]
    lic, findings = detect_licence({"language": ["en"]}, "README.md", {}, {})
    assert [f.code for f in findings] == ["LICENCE_MISSING"]


def test_deterministic() -> None:
    def run() -> str:
        c = card("---\nlicense: apache-2.0\n---\n")
        lic, findings = detect_licence(
            c, "README.md", {"LICENSE": MIT.encode(), "COPYING": GPL3.encode()}, {"m.gguf": "mit"}
        )
        return lic.model_dump_json() + "".join(f.model_dump_json() for f in findings)

    assert run() == run()

"""CycloneDX 1.6 ML-BOMs of model packages, built from their manifests.

A manifest becomes a ``machine-learning-model`` component: its files are
``file`` sub-components with their SHA-256, the licence an SPDX licence or
expression, the source repository an external reference and a purl, base
models separate components it depends on. What CycloneDX has no field for —
file formats, tensor counts, the weights digest, quantization, the licence
evidence, findings — is recorded as properties in the ``modelsign:``
namespace. The model card's front matter fills the component's ``modelCard``
(task, datasets, reported metrics).

The BOM is deterministic: every ``bom-ref`` is derived from the manifest, the
serial number is a UUIDv5 of the manifest digest, and there is no timestamp
unless one is asked for — the same model gives the same bytes.

cyclonedx-python-lib builds and serializes everything except ``modelCard``,
which it does not model yet (``Component.model_card`` is not implemented there); the
model card is added to the serialized JSON, so :meth:`BomBuilder.to_json` (and
:func:`ml_bom_json`) is the complete BOM and :func:`ml_bom` the library object
without it.

- ``_fields``: bounded property values, Hub links and purls;
- ``_component``: the model component (files, licence, links, properties);
- ``_card``: the model card;
- ``_document``: whole BOMs (:class:`BomBuilder`) and their JSON.
"""

from ._card import model_card
from ._component import Origin, model_component, model_ref
from ._document import (
    SERIAL_NAMESPACE,
    BomBuilder,
    bom_json,
    ml_bom,
    ml_bom_json,
    signature_manifest,
)
from ._fields import NAMESPACE

__all__ = [
    "NAMESPACE",
    "SERIAL_NAMESPACE",
    "BomBuilder",
    "Origin",
    "bom_json",
    "ml_bom",
    "ml_bom_json",
    "model_card",
    "model_component",
    "model_ref",
    "signature_manifest",
]

"""The ``device`` fixture: every store kind and every status on one device (``stores.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.signing import SignedModel
from tests.inventory.stores import Device, build_device


@pytest.fixture
def device(tmp_path: Path, signed_model: SignedModel) -> Device:
    return build_device(tmp_path, signed_model)

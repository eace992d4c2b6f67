"""Layouts that one file gives another: ONNX models and their external data files.

Before any file is read for its digests, each ``.onnx`` file's structure is
parsed (bounded ``pread``s, no tensor bytes) to learn which ranges of which
data files are its tensors — refusing, unread, any location that is absolute,
climbs with ``..`` or resolves out of the model folder (a Hugging Face snapshot's
links into its repo's blobs are in it) — so every data file is
then digested tensor by tensor in its own single read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..discover import ModelFile
from ..formats import detect_format
from ..formats.layout import WeightLayout
from ..formats.onnx import parse_onnx
from ..formats.onnx_layout import ExternalData
from .reading import open_checked


def external_layouts(files: Sequence[ModelFile], root: str) -> dict[str, WeightLayout]:
    """The layouts of the external data files the ONNX models among ``files`` name.

    ``root`` is the model folder the file names are relative to. A data file
    resolves inside the folder discovery gave it (``ModelFile.within``): the
    model root, or for a Hugging Face snapshot's links the cache holding the
    repo's blobs, so such a link is no escape.
    """
    within = {f.path: f.within for f in files if f.within}
    found = ExternalData()
    for f in files:
        if detect_format(f.path, b"") != "onnx":
            continue
        fd = open_checked(f)
        try:
            model = parse_onnx(fd, os.fstat(fd).st_size, f.path)
        finally:
            os.close(fd)
        found.add(root, f.path, model, within)
    return found.layouts({f.path: f.size for f in files})

"""Build the bundled example: a tiny Llama-shaped model, deterministically.

Writes two model packages under ``examples/build/`` (or the folder given):

- ``tiny-model/``: safetensors weights (F16 matrices, F32 norms) with
  ``config.json``, a model card (licence and base model in its front matter)
  and an Apache-2.0 ``LICENSE``;
- ``tiny-model-gguf/``: the same weights converted to a Q8_0 GGUF file with
  licence, file type and base-model metadata — a quantized derivative.

The weights come from a seeded generator, so every build is byte-identical.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import save_file

HIDDEN, FFN, VOCAB, LAYERS = 64, 128, 256, 2

CARD = """---
license: apache-2.0
base_model: modelsign-examples/tiny-base
base_model_relation: finetune
library_name: transformers
---

# tiny-model

A tiny Llama-shaped model built by `examples/build_tiny_model.py` to show
modelsign end to end. Its weights are random numbers.
"""

LICENSE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION

   1. Definitions.

      "License" shall mean the terms and conditions for use, reproduction,
      and distribution as defined by Sections 1 through 9 of this document.
"""


def tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20261121)
    out: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": rng.standard_normal((VOCAB, HIDDEN)).astype(np.float16),
        "model.norm.weight": np.ones(HIDDEN, dtype=np.float32),
        "lm_head.weight": rng.standard_normal((VOCAB, HIDDEN)).astype(np.float16),
    }
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[p + f"self_attn.{name}.weight"] = rng.standard_normal((HIDDEN, HIDDEN)).astype(
                np.float16
            )
        out[p + "mlp.gate_proj.weight"] = rng.standard_normal((FFN, HIDDEN)).astype(np.float16)
        out[p + "mlp.up_proj.weight"] = rng.standard_normal((FFN, HIDDEN)).astype(np.float16)
        out[p + "mlp.down_proj.weight"] = rng.standard_normal((HIDDEN, FFN)).astype(np.float16)
        out[p + "input_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
        out[p + "post_attention_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
    return out


def build(dest: Path) -> tuple[Path, Path]:
    model = dest / "tiny-model"
    model.mkdir(parents=True, exist_ok=True)
    weights = tensors()
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "vocab_size": VOCAB,
        "torch_dtype": "float16",
    }
    (model / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (model / "README.md").write_text(CARD)
    (model / "LICENSE").write_text(LICENSE)

    quant = dest / "tiny-model-gguf"
    quant.mkdir(parents=True, exist_ok=True)
    path = quant / "tiny-model-Q8_0.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_name("tiny-model")
    writer.add_license("Apache-2.0")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_uint32("general.base_model.count", 1)
    writer.add_string("general.base_model.0.name", "tiny-model")
    writer.add_string("general.base_model.0.organization", "modelsign-examples")
    for name, array in weights.items():
        data = array.astype(np.float32)
        if data.ndim == 2:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model, quant


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "build"
    for p in build(target):
        print(p)

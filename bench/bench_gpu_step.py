"""lampo.py's training step at Qwen3-1.7B's size: peak GPU memory per phase, generation tokens/s, time split.

    python bench/bench_gpu_step.py                          # one step at lampo's defaults (needs a CUDA GPU)
    python bench/bench_gpu_step.py --steps 2 -- --max-new-tokens 1024 --gen-batch-size 64
    python bench/bench_gpu_step.py --size tiny -- --device cpu --max-new-tokens 16    # check this script on CPU

Issue 5, target 4: peak GPU memory of a step at the defaults (target <= 60 GB), generation tokens/s,
and the step split into generate / score / log-probs / update.

The model has Qwen3-1.7B's architecture (QWEN3_1_7B below, from Qwen/Qwen3-1.7B's config.json: 1.72 B
parameters, tied embedding) with random bf16 weights and the tests' byte-level tokenizer, so nothing
is downloaded. Training is lampo.train() itself with lampo's defaults, except the model, the data
(bench_vs_trl.PROBLEMS, 8 short competition problems) and any lampo.py flag given after `--`.

Every response runs to --max-new-tokens: lampo.end_token_ids is patched to return no end token, as in
bench_vs_trl.py. A random model almost never samples one anyway, and full-length responses are the
worst case for memory and time. The prompts are byte-level, one token per character (150-200
tokens); Qwen3's tokenizer makes them about 4x shorter, which changes little next to 4,096 new tokens.

Reported per step: torch.cuda.max_memory_allocated during sampling, the reference pass and the update
(reset before each), the step's peak (the largest of those and lampo's own peak_gpu_gb, which covers
the update and the sampler's re-sync after it), memory held once the models are loaded, generation tokens/s (responses x new
tokens / time_generate), lampo's own time_* split and sampler_logp_gap from its metrics rows, and the
time and size of the final checkpoint save.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")             # everything is built locally; never wait on the hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

import lampo
from bench_vs_trl import PROBLEMS
from demo.tiny_qwen3 import build_tiny_model

QWEN3_1_7B = dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960)
SIZES = {"qwen3-1.7b": QWEN3_1_7B, "tiny": {}}   # tiny: the tests' model, to check this script on CPU
GB = 2 ** 30


class PhaseMemory:
    """Wraps lampo's phase functions: the peak memory allocated inside each call, per phase."""

    def __init__(self, cuda: bool):
        self.cuda, self.peaks, self.seconds = cuda, {}, {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            if self.cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            if self.cuda:
                torch.cuda.synchronize()
            self.seconds.setdefault(name, []).append(time.perf_counter() - start)
            self.peaks.setdefault(name, []).append(torch.cuda.max_memory_allocated() / GB if self.cuda else None)
            return out
        return timed


def build_model(path: Path, size: str) -> str:
    torch.set_default_dtype(torch.bfloat16)          # bf16 weights on disk, as Qwen/Qwen3-1.7B ships them
    try:
        return build_tiny_model(path, **SIZES[size])
    finally:
        torch.set_default_dtype(torch.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="qwen3-1.7b", help="model architecture")
    parser.add_argument("--steps", type=int, default=1, help="training steps (each takes minutes at the defaults)")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("lampo_flags", nargs="*", help="lampo.py flags, after --")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-gpu-step-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        model_dir = build_model(work / "model", args.size)
        build_seconds = time.perf_counter() - start
        data = work / "problems.jsonl"
        data.write_text("".join(json.dumps({"problem": p, "solution": "\\boxed{0}"}) + "\n" for p in PROBLEMS))
        cfg = lampo.parse_args(["--model", model_dir, "--dataset", str(data), "--output-dir", str(work / "run"),
                                "--steps", str(args.steps), "--log-samples-every", "0", *args.lampo_flags])
        cuda = lampo.pick_device(cfg.device).type == "cuda"

        memory = PhaseMemory(cuda)
        load_models = lampo.load_models
        loaded = {}

        def load_and_measure(*a):
            models = load_models(*a)
            loaded["GB"] = torch.cuda.memory_allocated() / GB if cuda else None
            loaded["params"] = sum(p.numel() for p in models[1].parameters())
            return models

        lampo.load_models = load_and_measure
        lampo.end_token_ids = lambda model, tokenizer: ()          # every response runs to max_new_tokens
        for name, phase in [("sample", "sample_responses"), ("reference", "rollout_logprobs"),
                            ("update", "update_policy"), ("save", "save_checkpoint")]:
            setattr(lampo, phase, memory.wrap(name, getattr(lampo, phase)))
        rows = lampo.train(cfg)
        saved = sum(f.stat().st_size for f in (work / "run").glob("checkpoint-*/*")) / GB

    device = torch.cuda.get_device_name() if cuda else "CPU"
    N = cfg.prompts_per_step * cfg.group_size
    report = {"device": device, "torch": torch.__version__, "size": args.size, "params": loaded["params"],
              "config": {k: getattr(cfg, k) for k in ("prompts_per_step", "group_size", "max_new_tokens",
                                                      "gen_batch_size", "micro_batch_size", "mini_batches", "kl_coef")},
              "build_seconds": build_seconds, "loaded_GB": loaded["GB"], "checkpoint_GB": saved,
              "save_seconds": memory.seconds.get("save"), "steps": []}
    for k, row in enumerate(rows):
        peaks = {f"peak_GB_{name}": memory.peaks[name][k] if name in memory.peaks else None
                 for name in ("sample", "reference", "update")}
        # lampo's own peak_gpu_gb covers what follows the last reset: the update and the sampler's re-sync
        whole = [x for x in [*peaks.values(), row.get("peak_gpu_gb")] if x is not None]
        report["steps"].append({
            "step": row["step"], **peaks, "peak_GB_step": max(whole) if whole else None,
            "gen_tokens_per_s": N * row["response_len_mean"] / row["time_generate"],
            **{key: row[key] for key in row if key.startswith("time_")}, "sampler_logp_gap": row["sampler_logp_gap"]})

    print(f"\nlampo.py step at {args.size} ({loaded['params']:,} params), {device}, torch {torch.__version__}; "
          f"{N} responses x {cfg.max_new_tokens} new tokens (forced), gen batch {cfg.gen_batch_size}, "
          f"micro-batch {cfg.micro_batch_size}, {cfg.mini_batches} mini-batches, kl_coef {cfg.kl_coef}")
    gb = lambda x: "-" if x is None else f"{x:.1f}"
    print(f"model build {build_seconds:.0f} s; held after loading the models: {gb(loaded['GB'])} GB; "
          f"final checkpoint {saved:.1f} GB in {sum(memory.seconds.get('save', [0])):.0f} s")
    header = ["step", "peak GB sample", "peak GB ref", "peak GB update", "peak GB step", "gen tok/s",
              "generate s", "score s", "logprobs s", "update s", "step s", "logp gap"]
    print("  ".join(header))
    for s in report["steps"]:
        cells = [str(s["step"]), *(gb(s[f"peak_GB_{name}"]) for name in ("sample", "reference", "update", "step")),
                 f"{s['gen_tokens_per_s']:.0f}", *(f"{s[k]:.1f}" for k in ("time_generate", "time_reward",
                 "time_logprobs", "time_update", "time_step")), f"{s['sampler_logp_gap']:.2e}"]
        print("  ".join(c.rjust(len(h)) for c, h in zip(cells, header)))
    if cuda:
        peak = max(s["peak_GB_step"] for s in report["steps"])
        print(f"peak GPU memory of a step: {peak:.1f} GB (target <= 60 GB: {'PASS' if peak <= 60 else 'FAIL'})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: peak memory of per-token log-probs with a 151,936-token vocabulary, naive vs lampo.

What is compared, on one left-padded micro-batch (default 4 rows x 1024 columns, the last 896
columns being the "response" whose log-probs are wanted):
  naive  the textbook line: log_softmax(model(...).logits.float() / T).gather(targets). The full
         [B, L, V] float32 logits exist (4 x 1024 x 151936 x 4 B = 2.5 GB), then a scaled copy
         and a log_softmax copy of the response part, and in training their gradients too.
  lampo  lampo.token_logprobs: the decoder's hidden states go through the output layer in chunks
         of LOGIT_CHUNK_TOKENS positions (over the whole micro-batch), each under activation
         checkpointing, so only one chunk's logits are alive, in the forward pass and again when
         the backward pass recomputes them.
in two modes: "no-grad" (old-policy / reference log-probs, rollout_logprobs) and "train" (the
update: forward, then logp.sum().backward(), as policy_loss's backward does).
Target (issue): lampo's peak <= 1/4 of naive's, log-probs equal to 1e-5.

The model is a random tiny Qwen3ForCausalLM (demo/tiny_qwen3.build_tiny_model) with Qwen3's real
vocabulary size and tied embeddings, like Qwen3-1.7B: its decoder is tiny (hidden size 64) so
nearly all the memory measured is the [tokens, vocab] logits, which is what this is about.
float32 on CPU, temperature = lampo's default.

How peak memory is measured: each (variant, mode) runs in a fresh Python process, so no cached
tensor or allocator state carries over. That process loads the model, builds the inputs, runs
one small warm-up call of the same code (lazy initialisation happens there), then reads its
resident set size (VmRSS), resets the kernel's peak-RSS mark (writing 5 to /proc/self/clear_refs,
Linux >= 4.0) and makes the measured call. "Peak extra MB" = ru_maxrss after the call minus the
RSS before it: the memory the call itself needed at its worst moment. Large tensors are mmap'ed
by the allocator and handed back to the OS when freed, so RSS tracks live tensors closely. A
calibration row allocates a known 1000 MB tensor the same way, to show the method reads true.
Each process saves its log-probs (and, in train mode, all parameter gradients) to a temp file;
the main process compares them with the naive variant's.

Run from the repo root (about 2 minutes on 2 CPU cores, up to ~8 GB RAM for the naive run):
    python bench/bench_logprobs.py
    python bench/bench_logprobs.py --batch 2 --seq 512          # smaller machine
    python bench/bench_logprobs.py --chunk-tokens 2048 512      # lampo rows at other chunk sizes
"""

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local; never reach the hub
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo root, for `import lampo` and `import demo.tiny_qwen3`

import torch

import lampo

QWEN3_VOCAB = 151936
PROMPT_COLUMNS = 128  # columns before the response; rows are left-padded inside this prompt part


def make_batch(batch: int, seq: int, vocab: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids, left-padded: row i is 32 * i tokens shorter (its prompt), as lampo packs rollouts."""
    ids = torch.randint(vocab, (batch, seq), generator=torch.Generator().manual_seed(0))
    pad = 32 * torch.arange(batch)[:, None]
    attention_mask = (torch.arange(seq)[None, :] >= pad).long()
    return ids.masked_fill(attention_mask == 0, pad_id), attention_mask


def naive_logprobs(model, input_ids, attention_mask, n_tokens, temperature):
    """The straightforward version: full logits, float32, log_softmax over the vocabulary, gather."""
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # same positions as lampo's
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False).logits[:, -n_tokens - 1:-1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, input_ids[:, -n_tokens:, None]).squeeze(-1)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # peak RSS := current RSS
        return True
    except OSError:  # not Linux, or not allowed: the fresh process's load peak stays in ru_maxrss
        return False


def worker(args) -> None:
    """One measured call in this (fresh) process; prints a JSON line, saves outputs to args.out."""
    torch.manual_seed(0)
    train = args.mode == "train"
    if args.chunk_tokens:
        lampo.LOGIT_CHUNK_TOKENS = args.chunk_tokens  # token_logprobs reads it at call time
    if args.variant == "calibrate":
        def call(batch, seq):
            return torch.ones(1000 * 2**20 // 4)  # 1000 MB of float32
        outputs = lambda result: {}
    else:
        model = lampo.load_model(args.model, torch.device("cpu"), torch.float32).train(train)
        logprobs = naive_logprobs if args.variant == "naive" else lampo.token_logprobs
        temperature = lampo.Config().temperature

        def call(batch, seq):
            ids, attention_mask = make_batch(batch, seq, QWEN3_VOCAB, model.config.pad_token_id)
            with torch.set_grad_enabled(train):
                logp = logprobs(model, ids, attention_mask, seq - PROMPT_COLUMNS, temperature)
                if train:
                    logp.sum().backward()
            return logp.detach()

        def outputs(logp):
            out = {"logp": logp}
            if train:
                out["grad"] = torch.cat([p.grad.flatten() for p in model.parameters()])
            return out

    call(2, PROMPT_COLUMNS + 16)  # warm-up: same code, tiny input
    if args.variant != "calibrate":
        model.zero_grad(set_to_none=True)  # the measured call allocates its own gradients
    gc.collect()
    before = rss_mb()
    reset = reset_peak()
    start = time.perf_counter()
    result = call(args.batch, args.seq)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    torch.save(outputs(result), args.out)
    print(json.dumps({"peak_extra_mb": peak - before, "seconds": seconds, "peak_reset": reset}))


def measure(args, variant: str, mode: str, model_dir: str, out: str, chunk_tokens: int = 0) -> dict:
    command = [sys.executable, __file__, "--worker", "--variant", variant, "--mode", mode,
               "--model", model_dir, "--out", out, "--batch", str(args.batch), "--seq", str(args.seq),
               "--chunk-tokens", str(chunk_tokens)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{variant} {mode} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def max_diff(a: dict, b: dict, key: str) -> str:
    return f"{(a[key] - b[key]).abs().max().item():.1e}" if key in a else "-"


def main(args) -> None:
    from demo.tiny_qwen3 import build_tiny_model
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # save_pretrained's progress bar would land amid the table

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny-qwen3", vocab_size=QWEN3_VOCAB,
                                     max_position_embeddings=max(1024, args.seq))
        calibration = measure(args, "calibrate", "no-grad", model_dir, f"{tmp}/calibrate.pt")
        naive_gb = args.batch * args.seq * QWEN3_VOCAB * 4 / 1e9
        print(f"Per-token log-probs, vocab {QWEN3_VOCAB}, batch {args.batch} x {args.seq} columns "
              f"(left-padded, last {args.seq - PROMPT_COLUMNS} scored), float32 CPU, "
              f"full logits = {naive_gb:.2f} GB, lampo.LOGIT_CHUNK_TOKENS = {lampo.LOGIT_CHUNK_TOKENS}")
        caveat = "" if calibration["peak_reset"] else " (peak reset unavailable: figures include load peaks)"
        print(f"calibration: a 1000 MB tensor measures {calibration['peak_extra_mb']:.0f} MB{caveat}")
        print(f"\n{'mode':8} {'variant':22} {'peak extra MB':>13} {'vs naive':>9} "
              f"{'max|d logp|':>11} {'max|d grad|':>11} {'seconds':>8}")
        results = {}
        for mode in ("no-grad", "train"):
            runs = [("naive", 0, "naive"), ("lampo", 0, f"lampo (chunk {lampo.LOGIT_CHUNK_TOKENS})")]
            runs += [("lampo", c, f"lampo (chunk {c})")
                     for c in args.chunk_tokens if c != lampo.LOGIT_CHUNK_TOKENS]
            for variant, chunk, label in runs:
                out = f"{tmp}/{variant}-{chunk}-{mode}.pt"
                stats = measure(args, variant, mode, model_dir, out, chunk)
                values = torch.load(out)
                if variant == "naive":
                    naive, naive_peak = values, stats["peak_extra_mb"]
                ratio = stats["peak_extra_mb"] / naive_peak
                results[(mode, label)] = (ratio, (values["logp"] - naive["logp"]).abs().max().item())
                print(f"{mode:8} {label:22} {stats['peak_extra_mb']:>13.0f} {ratio:>9.3f} "
                      f"{max_diff(values, naive, 'logp'):>11} {max_diff(values, naive, 'grad'):>11} "
                      f"{stats['seconds']:>8.2f}")
                os.remove(out)

    default = f"lampo (chunk {lampo.LOGIT_CHUNK_TOKENS})"
    for mode in ("no-grad", "train"):
        ratio, diff = results[(mode, default)]
        print(f"target {mode}: peak <= 1/4 of naive: {'MET' if ratio <= 0.25 else 'MISSED'} ({ratio:.3f}); "
              f"log-probs within 1e-5: {'MET' if diff <= 1e-5 else 'MISSED'} ({diff:.1e})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4, help="rows in the micro-batch (lampo's default is 4)")
    parser.add_argument("--seq", type=int, default=1024, help="columns per row, prompt + response")
    parser.add_argument("--chunk-tokens", type=int, nargs="*", default=[],
                        help="also measure lampo with these LOGIT_CHUNK_TOKENS values")
    # Internal: the per-measurement subprocess.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=["naive", "lampo", "calibrate"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["no-grad", "train"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seq <= PROMPT_COLUMNS or args.batch < 1:
        parser.error(f"--seq must exceed the {PROMPT_COLUMNS} prompt columns (the rest is the scored "
                     "response) and --batch must be at least 1")
    if args.worker:
        args.chunk_tokens = int(args.chunk_tokens[0]) if args.chunk_tokens else 0
        worker(args)
    else:
        main(args)

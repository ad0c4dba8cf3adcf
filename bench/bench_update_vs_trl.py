"""The update alone: lampo.py's forward and backward against TRL's GRPOTrainer loss, on one batch.

    python bench/bench_update_vs_trl.py                          # small model, 32 rows x 64 new tokens
    python bench/bench_update_vs_trl.py --micro-batch-size 4     # 8 micro-batches of 4 rows

Where does lampo's update lose to TRL's, and what would make it faster? One random Qwen3
(bench_vs_trl's SIZES), one batch: P prompts (bench_vs_trl's PROBLEMS) x G random responses of exactly
M tokens, the same rows on both sides, CPU float32.
  * lampo: update_plan's micro-batches, then token_logprobs, policy_loss and backward for each, as
    update_policy runs them. No optimizer step: plain AdamW on both sides, the same cost.
  * TRL: a GRPOTrainer built by bench_vs_trl.make_trl (never trained), its compute_loss and backward
    per micro-batch of rows in order, on the inputs its generation batch holds: every prompt
    left-padded to the batch's longest.
  * Both models checkpoint every decoder layer (non-reentrant) unless a variant says otherwise.

Variants (monkeypatches in this process; lampo.py itself is unchanged):
  lampo              as is: per-layer checkpointing plus the per-chunk recompute of the output layer
  no-logit-ckpt      recompute_in_backward replaced by a direct call: the logits stay for backward
  one-chunk          LOGIT_CHUNK_TOKENS so large that each micro-batch is one chunk
  chunk-2048         LOGIT_CHUNK_TOKENS = 2048 positions x rows (lampo's is 512)
  chunk-256          LOGIT_CHUNK_TOKENS = 256
  no-layer-ckpt      lampo's policy without per-layer checkpointing
  trl, trl-no-layer-ckpt
Each lampo variant's gradient is compared with plain lampo's (max abs difference printed). Timing:
one warm-up call each, then --repeats rounds over every variant, the order reversed every other
round; medians of the wall-clock time of the whole forward+backward and of the backward alone.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import argparse
import atexit
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import torch

import bench_vs_trl
import lampo
from demo.tiny_qwen3 import build_tiny_model


def direct_call(function, *args, use_reentrant=False):
    """Stands in for torch.utils.checkpoint.checkpoint: no recompute, activations kept."""
    return function(*args)


LAMPO_PATCHES = {
    "lampo": {},
    "no-logit-ckpt": {"recompute_in_backward": direct_call},
    "one-chunk": {"LOGIT_CHUNK_TOKENS": 10 ** 9},
    "chunk-2048": {"LOGIT_CHUNK_TOKENS": 2048},
    "chunk-256": {"LOGIT_CHUNK_TOKENS": 256},
    "no-layer-ckpt": {},
}
VARIANTS = ("trl", *LAMPO_PATCHES, "trl-no-layer-ckpt")


@contextlib.contextmanager
def patched(name: str):
    saved = {key: getattr(lampo, key) for key in LAMPO_PATCHES.get(name, {})}
    for key, value in LAMPO_PATCHES.get(name, {}).items():
        setattr(lampo, key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(lampo, key, value)


def set_layer_checkpointing(model, on: bool) -> None:
    if on:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.activation_checkpointing_disable()


def make_batch(model_dir: str, P: int, G: int, M: int) -> tuple["lampo.Rollouts", list, torch.Tensor]:
    """lampo's Rollouts of P x G random M-token responses, the prompts row by row, and advantages."""
    tokenizer = lampo.load_tokenizer(model_dir)
    prompts = [lampo.encode_prompts(tokenizer, [lampo.build_prompt(tokenizer, problem)], 0, 10 ** 9)[0]
               for problem in bench_vs_trl.PROBLEMS[:P]]
    rows = [prompts[i // G] for i in range(P * G)]
    generator = torch.Generator().manual_seed(0)
    responses = [torch.randint(0, 256, (M,), generator=generator).tolist() for _ in rows]
    batch = lampo.pack_rollouts(rows, responses, [[-5.0] * M for _ in rows], tokenizer.pad_token_id)
    return batch, rows, torch.randn(len(rows), generator=generator)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(bench_vs_trl.SIZES), default="small", help="model size")
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="pad the vocabulary, e.g. to Qwen3's 151936 (default: the tokenizer's 261)")
    parser.add_argument("--prompts-per-step", type=int, default=4, help="P: distinct prompts")
    parser.add_argument("--group-size", type=int, default=8, help="G: responses per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="every response's length")
    parser.add_argument("--micro-batch-size", type=int, default=32, help="rows per forward/backward")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds over every variant")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: "
                        + ", ".join(VARIANTS))
    args = parser.parse_args()
    variants = tuple(args.variants.split(","))
    if not set(variants) <= set(VARIANTS) or "lampo" not in variants:
        parser.error(f"--variants: choose among {', '.join(VARIANTS)}, lampo included")
    P, G, M, micro = args.prompts_per_step, args.group_size, args.max_new_tokens, args.micro_batch_size
    N = P * G
    if N % micro:
        parser.error(f"prompts-per-step * group-size ({N}) must be a multiple of --micro-batch-size")
    torch.set_num_threads(args.threads)
    bench_vs_trl.quiet(verbose=False)

    work = Path(tempfile.mkdtemp(prefix="bench-update-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    model_dir = build_tiny_model(work / "model", vocab_size=args.vocab_size, **bench_vs_trl.SIZES[args.size])
    batch, prompt_rows, advantages = make_batch(model_dir, P, G, M)

    policy = lampo.load_model(model_dir, torch.device("cpu"), torch.float32).train()
    micros = lampo.update_plan(batch, argparse.Namespace(mini_batches=1, micro_batch_size=micro))[0][1]
    weights = lampo.token_weights(batch.response_mask, "token-mean")
    backward_s = []

    def lampo_update():
        for rows in micros:
            ids, attention, n_tokens = lampo.micro_batch(batch, rows, "cpu")
            logp = lampo.token_logprobs(policy, ids, attention, n_tokens, 1.0)
            loss, _ = lampo.policy_loss(logp, batch.old_logp[rows, :n_tokens], advantages[rows],
                                        weights[rows, :n_tokens], 0.2, 0.28)
            start = time.perf_counter()
            loss.backward()
            backward_s[-1] += time.perf_counter() - start

    trl_args = argparse.Namespace(max_new_tokens=M, prompts_per_step=P, group_size=G, micro_batch_size=micro,
                                  steps=1)
    trainer, _ = bench_vs_trl.make_trl(trl_args, model_dir, work, "update", bench_vs_trl.Baton("TRL"))
    trl_model = trainer.model.train()
    trainer.current_gradient_accumulation_steps = N // micro    # train() would set it
    pad_id, W = lampo.load_tokenizer(model_dir).pad_token_id, max(map(len, prompt_rows))
    prompt_ids = torch.tensor([[pad_id] * (W - len(p)) + p for p in prompt_rows])
    prompt_mask = torch.tensor([[0] * (W - len(p)) + [1] * len(p) for p in prompt_rows])
    W0 = batch.input_ids.shape[1] - M
    completion_ids = batch.input_ids[:, W0:]

    def trl_update():
        for start in range(0, N, micro):
            rows = slice(start, start + micro)
            inputs = {"prompt_ids": prompt_ids[rows], "prompt_mask": prompt_mask[rows],
                      "completion_ids": completion_ids[rows],
                      "completion_mask": torch.ones_like(completion_ids[rows]),
                      "advantages": advantages[rows], "num_items_in_batch": torch.tensor(float(N * M))}
            loss = trainer.compute_loss(trl_model, inputs)
            begin = time.perf_counter()
            loss.backward()
            backward_s[-1] += time.perf_counter() - begin

    def run(name: str) -> float:
        set_layer_checkpointing(policy, name != "no-layer-ckpt")
        set_layer_checkpointing(trl_model, name != "trl-no-layer-ckpt")
        policy.zero_grad(set_to_none=True)
        trl_model.zero_grad(set_to_none=True)
        backward_s.append(0.0)
        start = time.perf_counter()
        with patched(name):
            (trl_update if name.startswith("trl") else lampo_update)()
        return time.perf_counter() - start

    def gradient() -> torch.Tensor:
        return torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])

    run("lampo")
    reference = gradient()
    for name in [name for name in variants if name in LAMPO_PATCHES and name != "lampo"]:
        run(name)
        print(f"gradient max |{name} - lampo|: {(gradient() - reference).abs().max().item():.1e} "
              f"(largest entry {reference.abs().max().item():.1e})")
    for name in variants:
        run(name)                                                        # warm-up
    times = {name: [] for name in variants}
    backward = {name: [] for name in variants}
    for r in range(args.repeats):
        for name in (variants if r % 2 == 0 else variants[::-1]):
            times[name].append(run(name))
            backward[name].append(backward_s[-1])

    lengths = f"{min(map(len, prompt_rows))}-{W} tokens"
    print(f"\n{args.size} random Qwen3 (vocab {args.vocab_size or 'tokenizer'}), {N} rows = {P} prompts "
          f"({lengths}) x G={G}, {M} new tokens, micro-batch {micro}, {args.threads} threads; "
          f"medians of {args.repeats}")
    base = "trl" if "trl" in variants else "lampo"
    print(f"{'variant':20}{'fwd+bwd s':>10}{'backward s':>12}{'vs ' + base:>10}")
    for name in variants:
        total = statistics.median(times[name])
        ratio = total / statistics.median(times[base])
        print(f"{name:20}{total:10.3f}{statistics.median(backward[name]):12.3f}{ratio:10.3f}")


if __name__ == "__main__":
    main()

"""
The update on CPU with a real model: which micro-batch size, and is activation checkpointing worth it?

lampo.py recomputes each layer's activations in the backward pass (activation checkpointing), which
a GPU needs for long responses and a CPU run of a small model does not: there it only costs a
forward pass. This times update_policy on SmolLM2-135M-Instruct (demo/fetch_smollm2.py) over one
step's batch shaped like the real-model demo's (32 responses of 16 to 64 tokens after prompts like
its own), for each setting in turn, round after round (after one untimed warm-up update), and
prints each setting's median time and its ratio to lampo.py's current default, measured side by
side in the same process.

    python bench/bench_cpu_update.py --rounds 3
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import lampo  # noqa: E402
from demo.fetch_smollm2 import repo_model  # noqa: E402


def rollouts(tokenizer, n: int, new_tokens: int, seed: int = 0) -> lampo.Rollouts:
    """n sequences of prompts like the demo's, with random response tokens of 16..new_tokens each."""
    rng = torch.Generator().manual_seed(seed)
    problems = [f"What is {a} + {b}?" for a, b in torch.randint(1, 16, (n, 2), generator=rng).tolist()]
    prompts = [tokenizer(lampo.build_prompt(tokenizer, p, thinking=False))["input_ids"] for p in problems]
    lengths = torch.randint(16, new_tokens + 1, (n,), generator=rng).tolist()
    responses = [torch.randint(100, 40000, (k,), generator=rng).tolist() for k in lengths]
    logprobs = [[-1.0] * k for k in lengths]
    return lampo.pack_rollouts(prompts, responses, logprobs, tokenizer.pad_token_id)


def time_update(policy, batch, cfg, checkpointing: bool) -> float:
    if checkpointing:
        policy.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        policy.activation_checkpointing_disable()
    optimizer, scheduler = lampo.make_optimizer(policy, cfg)
    advantages = torch.randn(len(batch.input_ids))
    start = time.perf_counter()
    lampo.update_policy(policy, optimizer, scheduler, batch, None, advantages, cfg, torch.device("cpu"))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="times each setting is timed, interleaved")
    parser.add_argument("--new-tokens", type=int, default=64, help="longest response in the batch")
    args = parser.parse_args()
    if args.rounds < 1 or args.new_tokens < 16:
        parser.error("--rounds must be at least 1 and --new-tokens at least 16")
    model = repo_model()
    tokenizer = lampo.load_tokenizer(str(model))
    policy = lampo.load_model(str(model), torch.device("cpu"), torch.float32)
    batch = rollouts(tokenizer, 32, args.new_tokens)
    default = lampo.Config().micro_batch_size
    settings = [(mbs, ckpt) for ckpt in (True, False) for mbs in sorted({default, 8, 16, 32})]
    times = {s: [] for s in settings}
    # The demo's step; at this lr the weights barely move from one timed update to the next.
    step_settings = dict(mini_batches=2, group_size=8, prompts_per_step=4, lr=1e-12)
    time_update(policy, batch, lampo.Config(micro_batch_size=default, **step_settings), True)   # warm-up
    for _ in range(args.rounds):
        for mbs, ckpt in settings:
            cfg = lampo.Config(micro_batch_size=mbs, **step_settings)
            times[(mbs, ckpt)].append(time_update(policy, batch, cfg, ckpt))
    base = statistics.median(times[(default, True)])
    print(f"update_policy on 32 responses of <= {args.new_tokens} tokens, SmolLM2-135M, float32, "
          f"{torch.get_num_threads()} threads, median of {args.rounds}:")
    print("micro-batch  checkpointing   seconds  vs default")
    for (mbs, ckpt), ts in times.items():
        t = statistics.median(ts)
        print(f"{mbs:>11}  {'on' if ckpt else 'off':>13}  {t:8.1f}  {t / base:9.2f}x")


if __name__ == "__main__":
    main()

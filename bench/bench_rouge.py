"""Benchmark: ROUGE-L F1 of long reasoning traces, rouge-score vs lampo.rouge_l_f1, and the reward of a step.

What is measured (CPU, single thread, median wall-clock of repeated calls):
  1. One 4000-word trace vs a 500-word reference solution: rouge-score's RougeScorer(["rougeL"])
     (an O(n*m) pure-Python LCS table) against lampo.rouge_l_f1 (bit-parallel LCS on Python big
     ints). Both must give the same F1 (to 1e-9); target: ours >= 100x faster.
  2. A whole step's reward scoring at lampo's defaults (8 prompts x 8 responses = 64 rollouts),
     each ~4000 words: lampo.rouge_l_f1 alone, and the full lampo.reward() (answer extraction and
     checking + ROUGE-L), both timed side by side with rouge-score on the same 64 pairs.
  3. That per-step time as a share of a training step. Target (issue): reward scoring <= 2% of a
     step. The step time is an ASSUMPTION, not measured here: Qwen3-1.7B sampling 64 rollouts of up
     to 4096 tokens takes minutes on one GPU, so --step-seconds defaults to a conservative 60 s.
     (lampo also scores on a worker thread while the GPU computes log-probs, so this share is an
     upper bound on what scoring adds to the step's wall-clock.)

The texts are synthetic: Zipf-distributed words from a math vocabulary; the trace restates chunks
of the solution in order (with typos) between stretches of its own exploration, so the LCS is long
and realistic rather than trivially short.

Run from the repo root:
    python bench/bench_rouge.py                  # ~2 minutes, nearly all of it in rouge-score
    python bench/bench_rouge.py --step-seconds 120
"""

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for `import lampo`

from rouge_score import rouge_scorer

from lampo import reward, rouge_l_f1

WORDS = (
    "the a of to is we and so then thus therefore hence since because let if for all "
    "with by in on at it this that which be are has have get gives note suppose assume "
    "wait check again try consider compute solve find show prove now first second next "
    "finally answer equation function value sum product root roots integer integers "
    "prime divisor divisible remainder modulo mod factor polynomial degree coefficient "
    "term terms sequence series limit derivative integral triangle angle side area "
    "circle radius point line slope probability number numbers positive negative even odd "
    "real case cases both either equal equals greater less than at least most minimum maximum"
).split()
MATH = ["x", "y", "n", "k", "a", "b", "f(x)", "x^2", "2x", "n+1", "\\frac{1}{2}", "\\sqrt{2}",
        "\\sum_{k=1}^{n}", "\\pi", "=", "+", "-", "\\cdot", "(", ")", "$", "\\boxed{42}"]
NUMBERS = [str(i) for i in range(0, 100)]
# Final answers of the step's responses: right in different notations, and wrong, so that
# reward() exercises its whole checker (boxed extraction, LaTeX normalisation, exact fractions).
GOLD = "\\frac{7}{2}"
FINAL_ANSWERS = ["\\frac{7}{2}", "3.5", "\\dfrac{7}{2}", "7/2", "\\frac{2}{7}", "4", "3.4",
                 "x = \\frac{7}{2}"]


def sample_words(rng: random.Random, n: int) -> list[str]:
    pool = WORDS + MATH + NUMBERS
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(pool))]  # Zipf-ish word frequencies
    return rng.choices(pool, weights=weights, k=n)


def make_pair(rng: random.Random, trace_words: int = 4000, solution_words: int = 500) -> tuple[str, str]:
    """A solution, and a long trace that restates chunks of it in order amid its own exploration."""
    solution = sample_words(rng, solution_words)
    trace, pos = [], 0
    while len(trace) < trace_words:
        if pos < len(solution) and rng.random() < 0.5:  # copy a chunk of the solution (with typos)
            chunk = solution[pos:pos + rng.randint(5, 30)]
            pos += len(chunk)
            trace += [w if rng.random() < 0.85 else rng.choice(WORDS) for w in chunk]
        else:  # explore: words from the same vocabulary
            trace += sample_words(rng, rng.randint(20, 120))
    return " ".join(trace[:trace_words]), " ".join(solution)


def make_rollout(rng: random.Random, i: int) -> tuple[str, dict]:
    """A Qwen3-style response (<think> trace </think> boxed answer) and its dataset example."""
    trace, solution = make_pair(rng)
    final = FINAL_ANSWERS[i % len(FINAL_ANSWERS)]
    response = f"<think>\n{trace}\n</think>\n\nSo the answer is $\\boxed{{{final}}}$."
    return response, {"answer": GOLD, "solution": f"{solution} $\\boxed{{{GOLD}}}$"}


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rollouts", type=int, default=64, help="responses per step (lampo default 8 x 8)")
    parser.add_argument("--step-seconds", type=float, default=60.0,
                        help="ASSUMED wall-clock of one training step, for the share printed at the end")
    args = parser.parse_args()

    rng = random.Random(0)
    scorer = rouge_scorer.RougeScorer(["rougeL"])  # rouge-score's defaults: no stemmer, its own tokenizer

    # 1. One long trace. rouge-score's argument order is score(target, prediction).
    response, reference = make_pair(rng)
    ref_f1 = scorer.score(reference, response)["rougeL"].fmeasure
    our_f1 = rouge_l_f1(response, reference)
    assert abs(our_f1 - ref_f1) <= 1e-9, (our_f1, ref_f1)
    t_ref = median_time(lambda: scorer.score(reference, response), repeats=3)
    t_our = median_time(lambda: rouge_l_f1(response, reference), repeats=21)
    print(f"1) one 4000-word trace vs a 500-word solution: ROUGE-L F1 {our_f1:.6f} "
          f"(|ours - rouge-score| = {abs(our_f1 - ref_f1):.1e})")
    print(f"   {'rouge-score':>12} {'ours':>12} {'speed-up':>9}   target >= 100x")
    verdict = "MET" if t_ref / t_our >= 100 else "MISSED"
    print(f"   {t_ref:>11.4f}s {t_our:>11.6f}s {t_ref / t_our:>8.0f}x   {verdict}")

    # 2. A whole step: every rollout scored, as lampo.train() does on its worker thread.
    step = [make_rollout(rng, i) for i in range(args.rollouts)]
    t0 = time.perf_counter()  # rouge-score is timed once: it takes about a second per response
    ref_f1s = [scorer.score(ex["solution"], resp)["rougeL"].fmeasure for resp, ex in step]
    t_step_ref = time.perf_counter() - t0
    our_f1s = [rouge_l_f1(resp, ex["solution"]) for resp, ex in step]
    max_diff = max(abs(a - b) for a, b in zip(ref_f1s, our_f1s))
    assert max_diff <= 1e-9, max_diff
    rewards = [reward(resp, ex) for resp, ex in step]
    n_correct = sum(r["correct"] for r in rewards)
    t_step_our = median_time(lambda: [rouge_l_f1(resp, ex["solution"]) for resp, ex in step], repeats=5)
    t_step_reward = median_time(lambda: [reward(resp, ex) for resp, ex in step], repeats=5)
    print(f"\n2) one step: {args.rollouts} responses x ~4000 words "
          f"(max |F1 diff| {max_diff:.1e}; {n_correct:.0f}/{args.rollouts} answers right)")
    print(f"   {'rouge-score':>12} {'ours ROUGE-L':>13} {'ours reward()':>14} {'speed-up (reward)':>18}")
    print(f"   {t_step_ref:>11.2f}s {t_step_our:>12.3f}s {t_step_reward:>13.3f}s "
          f"{t_step_ref / t_step_reward:>17.0f}x")

    # 3. Share of a step. The step time is assumed (see the docstring), the scoring time measured.
    share = t_step_reward / args.step_seconds
    print(f"\n3) reward() for a whole step = {t_step_reward:.3f}s = {100 * share:.2f}% of an assumed "
          f"{args.step_seconds:.0f}s step (target <= 2%: {'MET' if share <= 0.02 else 'MISSED'}); "
          f"rouge-score alone would be {100 * t_step_ref / args.step_seconds:.0f}%")


if __name__ == "__main__":
    main()

"""Benchmark: the answer checker's time per response (extract_answer + is_equiv), mean and p99.

What is measured (CPU, main thread, one response at a time, wall-clock of each):
  1. MATH-500's 500 reference solutions used as responses (thinking off: the whole text is the
     answer part) against their gold answers: short, real, and nearly all right.
  2. The same 500 golds against long Qwen3-style responses: a ~4000-word <think> trace holding
     decoy boxes, then a final box with the answer as the row's solution writes it (right) or
     another row's answer (wrong), alternately.
The first call, where math-verify loads its LaTeX grammar, is not timed. math-verify gives up on
a parse or a comparison after 1 s, so the tail (p99, max) is what a step's scoring can cost.

Run from the repo root (the checker is single-threaded; a busy machine shows in the tail):
    python bench/bench_checker.py        # under a minute
"""

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo root, for `import answer_check`

from answer_check import extract_answer, is_equiv, last_boxed

WORDS = ("so then thus wait check again let the a of is we and if for all with by it this that "
         "equation value sum root integer prime factor degree term side area angle case both "
         "x y n k = + - ( ) 2 3 5 7 \\frac{1}{2} \\sqrt{2} x^2").split()


def long_response(rng: random.Random, final: str, words: int) -> str:
    """A <think> trace of about `words` words with a decoy box every ~300, then the final box."""
    trace = [rng.choice(WORDS) if rng.random() > 1 / 300 else f"\\boxed{{{rng.randint(0, 99)}}}"
             for _ in range(words)]
    return f"<think>\n{' '.join(trace)}\n</think>\n\nSo the answer is $\\boxed{{{final}}}$."


def check_times(pairs: list[tuple[str, str]]) -> tuple[list[float], int]:
    """Seconds per (response, gold) pair for extract + is_equiv, and how many were judged right."""
    seconds, right = [], 0
    for response, gold in pairs:
        start = time.perf_counter()
        right += is_equiv(extract_answer(response), gold)
        seconds.append(time.perf_counter() - start)
    return seconds, right


def report(name: str, seconds: list[float], right: int) -> None:
    p99 = statistics.quantiles(seconds, n=100)[98]
    print(f"{name:<34} {len(seconds):>5} {right:>6} {1e3 * statistics.mean(seconds):>9.2f} "
          f"{1e3 * p99:>9.2f} {1e3 * max(seconds):>9.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trace-words", type=int, default=4000, help="words in each long <think> trace")
    args = parser.parse_args()

    rows = [json.loads(line) for line in (ROOT / "testdata" / "math500.jsonl").read_text().splitlines()]
    rng = random.Random(0)
    is_equiv("\\frac{1}{2}", "0.5")  # math-verify's first call loads its grammar: not timed

    solutions = [(r["solution"], r["answer"]) for r in rows]
    traces = [(long_response(rng, last_boxed(r["solution"]) if i % 2 == 0 else rows[i - 1]["answer"],
                             args.trace_words), r["answer"]) for i, r in enumerate(rows)]
    print(f"{'responses':<34} {'count':>5} {'right':>6} {'mean ms':>9} {'p99 ms':>9} {'max ms':>9}")
    report("MATH-500 solutions", *check_times(solutions))
    report(f"{args.trace_words}-word traces, half right", *check_times(traces))


if __name__ == "__main__":
    main()

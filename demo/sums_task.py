"""
A small verifiable task for a small real model: sums of two numbers, asked in words.

Each row has the columns lampo.py and eval.py read: problem, solution (a worked answer ending in
\\boxed{}, the ROUGE-L reference) and answer. The held-out split differs from the training split twice
over: its number pairs never occur in training, and it asks each of them in four phrasings training
never uses, so a rise in held-out accuracy is learning to add and to answer, not remembering rows.

    python demo/sums_task.py              # writes demo/data/sums_train.jsonl and sums_heldout.jsonl

The files are committed; this script is how they were made (same seed, same files).
"""

import argparse
import json
import random
from pathlib import Path

TRAIN_PHRASINGS = [
    "What is {a} + {b}?",
    "Compute {a} + {b}.",
    "Add {a} and {b}.",
    "What is the sum of {a} and {b}?",
    "Find {a} plus {b}.",
    "Calculate {a} + {b}.",
]
HELDOUT_PHRASINGS = [
    "Tom has {a} apples and buys {b} more. How many apples does he have now?",
    "If you add {b} to {a}, what number do you get?",
    "A box holds {a} red balls and {b} blue balls. How many balls are in the box?",
    "What do {a} and {b} make together?",
]
LARGEST = 15            # operands 1..15: 225 ordered pairs
HELDOUT_SHARE = 0.25    # of the pairs, kept out of training


def row(a: int, b: int, phrasing: str) -> dict:
    return {"problem": phrasing.format(a=a, b=b),
            "solution": f"We add the two numbers: {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}.",
            "answer": str(a + b)}


def make_splits(seed: int = 0, n_train: int = 2000) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    pairs = [(a, b) for a in range(1, LARGEST + 1) for b in range(1, LARGEST + 1)]
    rng.shuffle(pairs)
    cut = int(len(pairs) * HELDOUT_SHARE)
    heldout_pairs, train_pairs = pairs[:cut], pairs[cut:]
    train = [row(*rng.choice(train_pairs), rng.choice(TRAIN_PHRASINGS)) for _ in range(n_train)]
    heldout = [row(*pair, phrasing) for pair in heldout_pairs for phrasing in HELDOUT_PHRASINGS]
    return train, heldout


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the sums task's training and held-out files.")
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "data"), help="where the files go")
    parser.add_argument("--seed", type=int, default=0, help="seed for pairs, phrasings and the split")
    args = parser.parse_args()
    train, heldout = make_splits(args.seed)
    write_jsonl(Path(args.out_dir) / "sums_train.jsonl", train)
    write_jsonl(Path(args.out_dir) / "sums_heldout.jsonl", heldout)
    print(f"{len(train)} training and {len(heldout)} held-out problems in {args.out_dir}")


if __name__ == "__main__":
    main()

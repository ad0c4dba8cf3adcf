"""
A small verifiable task for a small real model: sums of two digits, asked in words.

Each row has the columns lampo.py and eval.py read: problem, solution (a worked answer ending in
\\boxed{}, the ROUGE-L reference) and answer. Both splits hold all 81 sums of two digits 1..9; the
held-out split asks each of them in three phrasings that training never uses. A rise in held-out
accuracy is therefore not the training prompts' wording being learned; as the sums are the same
81 in both splits, it does not show addition carrying over to pairs never trained on.

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
    "How much is {a} plus {b}?",
    "Work out the value of {a} + {b}.",
    "What number do you get when you add {a} and {b}?",
]
SUMS = [(a, b) for a in range(1, 10) for b in range(1, 10)]


def row(a: int, b: int, phrasing: str) -> dict:
    return {"problem": phrasing.format(a=a, b=b),
            "solution": f"We add the two numbers: {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}.",
            "answer": str(a + b)}


def make_splits(seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Every sum in every training phrasing, shuffled; every sum in every held-out phrasing."""
    train = [row(a, b, phrasing) for a, b in SUMS for phrasing in TRAIN_PHRASINGS]
    random.Random(seed).shuffle(train)
    heldout = [row(a, b, phrasing) for a, b in SUMS for phrasing in HELDOUT_PHRASINGS]
    return train, heldout


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the sums task's training and held-out files.")
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "data"), help="where the files go")
    parser.add_argument("--seed", type=int, default=0, help="seed for the training rows' order")
    args = parser.parse_args()
    train, heldout = make_splits(args.seed)
    write_jsonl(Path(args.out_dir) / "sums_train.jsonl", train)
    write_jsonl(Path(args.out_dir) / "sums_heldout.jsonl", heldout)
    print(f"{len(train)} training and {len(heldout)} held-out problems in {args.out_dir}")


if __name__ == "__main__":
    main()

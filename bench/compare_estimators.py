"""
Does LamPO beat GRPO? The estimators compared on a real model, several seeds each, on a CPU.

Each cell is demo/learn_real_model.py's recipe: SmolLM2-135M-Instruct trained on the training sums
with the lampo.py command line, then evaluated by eval.py on the held-out sums. Same data, steps,
learning rate and sampling for every estimator; only the advantage (and the ROUGE-L weight) differs:

    lampo            --advantage lampo                     (LamPO as specified: ROUGE-L weight 0.1)
    grpo             --advantage grpo --rouge-weight 0     (the paper's GRPO baseline)
    rloo             --advantage rloo                      (LamPO with every lam_ij = 1)
    lampo-no-rouge   --advantage lampo --rouge-weight 0    (the pairwise weights alone)
    lampo-tau1       --advantage lampo --tau 1             (weights nearer 1: between LamPO and RLOO)

    pip install -r demo/requirements.txt
    python bench/compare_estimators.py                   # every cell not yet finished, seed by seed
    python bench/compare_estimators.py --summary-only    # the table and plot from what is finished

A cell takes about 27 minutes on a 2-core machine (20 training, 7 evaluating), so the matrix is
meant to run in parts: each finished cell's metrics.jsonl, config.json and eval results.json are
copied to bench/estimators/, with a provenance.json (commit, versions, machine), and a cell found
there is skipped. The table (bench/estimators/summary.md) and the plot (bench/estimators/curves.png)
are rewritten after every cell.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from demo import learn_real_model as recipe  # noqa: E402
from demo.fetch_smollm2 import repo_model  # noqa: E402

RESULTS = REPO / "bench/estimators"


def provenance() -> dict:
    """What produced a cell: the code's commit and the library versions."""
    import torch
    import transformers
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    code = ["lampo.py", "eval.py", "answer_check.py", "length_pref.py", "demo/learn_real_model.py",
            "demo/data"]
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *code], cwd=REPO,
                           capture_output=True, text=True).stdout
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"commit": commit.strip(), "code_modified": bool(dirty.strip()),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "machine": f"{platform.machine()}, {cores} cores"}


def run_cell(model: Path, runs: Path, estimator: str, seed: int, device: str) -> None:
    name = f"{estimator}-seed{seed}"
    run_dir = runs / name
    checkpoint = recipe.train(model, run_dir, estimator, seed, device)
    recipe.evaluate(checkpoint, run_dir / "eval", device)
    keep = RESULTS / name
    keep.mkdir(parents=True, exist_ok=True)
    for source, target in [(run_dir / "config.json", "config.json"),
                           (run_dir / "metrics.jsonl", "metrics.jsonl"),
                           (run_dir / "eval/results.json", "results.json")]:
        shutil.copy(source, keep / target)
    (keep / "provenance.json").write_text(json.dumps(provenance(), indent=2))


def finished_cells() -> dict[str, list[tuple[int, dict]]]:
    """Per estimator, (seed, held-out result) of every cell in bench/estimators."""
    found = {name: [] for name in recipe.ESTIMATORS}
    for name in recipe.ESTIMATORS:
        for seed_dir in sorted(RESULTS.glob(f"{name}-seed*")):
            seed = seed_dir.name.removeprefix(f"{name}-seed")
            if seed.isdigit() and (seed_dir / "results.json").exists():
                result = json.loads((seed_dir / "results.json").read_text())["results"][0]
                found[name].append((int(seed), result))
    return found


def summary_table(base: dict | None, cells: dict[str, list[tuple[int, dict]]]) -> str:
    """Held-out accuracy per estimator, and the share of held-out responses cut off at the token limit
    (a cut-off response often never states its answer), each a mean over the finished seeds."""
    lines = ["| run | seeds | held-out avg@K, mean ± std over seeds (%) | per seed (± its standard error) "
             "| cut off (%) |",
             "|---|---|---|---|---|"]
    if base:
        lines.append(f"| SmolLM2-135M-Instruct, untrained | – | {base['avg@K']:.1f} | "
                     f"{base['avg@K']:.1f} ± {base['se']:.1f} | {base['truncated']:.1f} |")
    for name, runs in cells.items():
        if not runs:
            lines.append(f"| {name} | 0 | not run yet | | |")
            continue
        values = [r["avg@K"] for _, r in runs]
        spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else " (one seed)"
        per_seed = ", ".join(f"seed {s}: {r['avg@K']:.1f} ± {r['se']:.1f}" for s, r in runs)
        cut_off = statistics.mean(r["truncated"] for _, r in runs)
        lines.append(f"| {name} | {len(runs)} | {statistics.mean(values):.1f}{spread} | {per_seed} "
                     f"| {cut_off:.1f} |")
    return "\n".join(lines)


def write_summary(base: dict | None) -> None:
    cells = finished_cells()
    RESULTS.mkdir(parents=True, exist_ok=True)
    heading = ("# Estimators compared on SmolLM2-135M-Instruct (CPU)\n\nWritten by "
               "`python bench/compare_estimators.py`; the cells' settings and provenance are in their "
               "folders. Held-out: demo/data/sums_heldout.jsonl"
               + (f", {base['n']} problems, {base['K']} samples each" if base else "") + ".\n\n")
    (RESULTS / "summary.md").write_text(heading + summary_table(base, cells) + "\n")
    print(summary_table(base, cells))
    folders = [RESULTS / f"{name}-seed{seed}" for name, runs in cells.items() for seed, _ in runs]
    if folders:
        try:
            import matplotlib  # noqa: F401  plot_runs imports it only when it draws
        except ImportError:
            print("(no plot: matplotlib is missing: pip install -r demo/requirements.txt)")
            return
        import plot_runs
        plot_runs.plot(plot_runs.group_by_run(folders), RESULTS / "curves.png",
                       metrics=("reward_mean", "accuracy", "response_len_mean", "truncated_frac"),
                       title="SmolLM2-135M-Instruct on the sums task: mean over seeds, band = min..max")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to run, in order")
    parser.add_argument("--estimators", nargs="+", default=list(recipe.ESTIMATORS),
                        choices=list(recipe.ESTIMATORS), help="which estimators to run")
    parser.add_argument("--runs-dir", default="runs/estimators",
                        help="where runs and checkpoints go, relative to the repository")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to train and eval")
    parser.add_argument("--summary-only", action="store_true", help="only rewrite the table and plot")
    args = parser.parse_args()
    base_file = RESULTS / "base/results.json"
    if not args.summary_only:
        model = repo_model()
        runs = REPO / args.runs_dir
        if not base_file.exists():
            recipe.evaluate(model, runs / "eval-base", args.device)
            base_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(runs / "eval-base/results.json", base_file)
        for seed in args.seeds:                    # seed by seed: a partial matrix stays balanced
            for estimator in args.estimators:
                if not (RESULTS / f"{estimator}-seed{seed}/results.json").exists():
                    run_cell(model, runs, estimator, seed, args.device)
                    write_summary(json.loads(base_file.read_text())["results"][0])
    base = json.loads(base_file.read_text())["results"][0] if base_file.exists() else None
    write_summary(base)


if __name__ == "__main__":
    main()

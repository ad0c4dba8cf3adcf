"""
Overlay the training curves of several lampo.py runs in one PNG.

Reads each run folder's metrics.jsonl (one row per step, written by lampo.py) and draws reward,
accuracy, response length, KL to the reference (initial) model, clip fraction and the share of
responses cut off, over steps, one line per run.
Folders named alike but for a -seedN ending are one run over several seeds: their mean is drawn,
with a band from the lowest to the highest seed.

    pip install -r demo/requirements.txt        # matplotlib: not a lampo.py requirement
    python plot_runs.py runs/grpo runs/lampo --out curves.png
    python plot_runs.py runs/estimators/*-seed* --out matrix.png
"""

import argparse
import json
import re
import sys
from pathlib import Path

METRICS = {"reward_mean": "reward (mean)", "accuracy": "accuracy", "response_len_mean": "response length",
           "kl": "KL to the reference model", "clip_frac": "clip fraction", "truncated_frac": "share cut off"}


def read_metrics(folder: Path) -> list[dict]:
    """The run's rows, without a last line that a crash (or a run still going) left half written."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        sys.exit(f"error: {path} not found: pass lampo.py run folders (its --output-dir)")
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n") and line.strip()]


def group_by_run(folders: list[Path]) -> dict[str, list[Path]]:
    """Folders by run: runs/lampo-seed0 and runs/lampo-seed1 are both 'lampo'; runs named alike in
    different places keep their place in the label (a/lampo, b/lampo)."""
    keys = [Path(f).parent / re.sub(r"-seed\d+$", "", Path(f).name) for f in folders]
    unique = len({key.name for key in keys}) == len(set(keys))
    groups = {}
    for folder, key in zip(folders, keys):
        groups.setdefault(key.name if unique else str(key), []).append(Path(folder))
    return groups


def curve(rows_per_seed: list[list[dict]],
          metric: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps that every seed reached and logged metric at, with the mean, min and max over seeds."""
    by_step = [{row["step"]: row[metric] for row in rows if metric in row} for rows in rows_per_seed]
    steps = sorted(set.intersection(*(set(s) for s in by_step)))
    values = [[s[step] for s in by_step] for step in steps]
    return steps, [sum(v) / len(v) for v in values], [min(v) for v in values], [max(v) for v in values]


def plot(groups: dict[str, list[Path]], out: Path, metrics=tuple(METRICS), title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")                       # files only: no window, no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    runs = {name: [read_metrics(f) for f in folders] for name, folders in groups.items()}
    logged = {key for seeds in runs.values() for rows in seeds for row in rows for key in row}
    metrics = [m for m in metrics if m in logged]
    if not metrics:
        sys.exit("error: these runs' metrics.jsonl hold no step yet")
    grid_columns = 2 if len(metrics) == 4 else min(3, len(metrics))       # four panels: two by two
    grid_rows = -(-len(metrics) // grid_columns)
    fig, axes = plt.subplots(grid_rows, grid_columns, figsize=(4.6 * grid_columns, 3.4 * grid_rows),
                             squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, metrics):
        for name, seeds in runs.items():
            steps, mean, low, high = curve(seeds, metric)
            label = name if len(seeds) == 1 else f"{name} ({len(seeds)} seeds)"
            (line,) = ax.plot(steps, mean, label=label, linewidth=1.6)
            if len(seeds) > 1:
                ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_title(METRICS[metric], fontsize=10)
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="lampo.py run folders (each holds metrics.jsonl)")
    parser.add_argument("--out", type=Path, default=Path("runs.png"), help="the PNG to write")
    parser.add_argument("--metrics", nargs="+", default=list(METRICS), choices=list(METRICS),
                        help="which metrics.jsonl columns to draw, one panel each")
    args = parser.parse_args()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("error: matplotlib is missing: pip install -r demo/requirements.txt")
    plot(group_by_run(args.runs), args.out, args.metrics)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

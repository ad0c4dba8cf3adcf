"""Watch LamPO raise a verifiable reward on a laptop CPU in about a minute.

    python demo/learn_on_cpu.py                        # LamPO
    python demo/learn_on_cpu.py --advantage grpo       # the same toy with GRPO's advantage
    python demo/learn_on_cpu.py --seed 1 --steps 60    # any other flag goes to lampo.py

This runs the real `python lampo.py` command with lampo's own reward: the last \\boxed{} answer checked
against the gold answer, plus --rouge-weight x ROUGE-L against the worked solution. The task is a toy:

- the model is a random 2-layer Qwen3 (demo/tiny_qwen3.py) whose vocabulary has ten extra tokens,
  \\boxed{0} to \\boxed{9}, so that one sampled token can be a whole answer the checker accepts;
- the dataset is eight arithmetic questions whose answer is always 7, asked with --no-thinking and
  --max-new-tokens 1: a response is one token, and it is right only if that token is \\boxed{7}.

The random model cannot read the questions. What it learns is the core of RL with a verifier: the
right answer is sampled now and then by chance, the advantage pushes it up and the other samples
down, and the clipped updates move the policy until it answers \\boxed{7} every time.

Three of lampo.py's defaults are changed for the toy's scale (a flag given here overrides them):
--lr 1e-2, because the model is random rather than pretrained; --max-new-tokens 1; and --tau 3.
tau is in nats per token. A one-token response's per-token score is its whole log-prob, and a right
and a wrong answer are whole nats apart as soon as the policy prefers one. At lampo's 0.1, meant for
long responses whose per-token scores differ by far less, LamPO counts every such pair as already
ranked right and all but stops pushing (try --tau 0.1).

The tiny model is built once into --workdir and reused; nothing is downloaded. A row is printed per
step as lampo.py writes metrics.jsonl, then the reward and accuracy curves.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANSWER_TOKENS = [f"\\boxed{{{digit}}}" for digit in range(10)]
QUESTIONS = ["3 + 4", "10 - 3", "14 / 2", "1 + 6", "49 / 7", "2 + 5", "9 - 2", "21 / 3"]

# lampo.py flags for the toy. The reader's own flags come after them, and argparse keeps the last.
TOY_FLAGS = ["--no-thinking", "--max-new-tokens", "1", "--lr", "1e-2", "--tau", "3", "--steps", "40",
             "--micro-batch-size", "64", "--gen-batch-size", "64", "--log-samples-every", "1",
             "--device", "cpu"]

COLUMNS = [  # (header, width, metrics.jsonl key, format)
    ("step", 4, "step", "{:d}"), ("reward", 6, "reward_mean", "{:.3f}"), ("acc", 4, "accuracy", "{:.2f}"),
    ("|A|", 5, "adv_abs_mean", "{:.3f}"), ("clip", 5, "clip_frac", "{:.3f}"), ("kl", 5, "kl", "{:.2f}"),
    ("sec", 4, "time_step", "{:.1f}")]
LOGS = ("metrics.jsonl", "samples.jsonl")   # what lampo.py writes per step, read back for the table
SAMPLES_SHOWN = 4            # lampo.py logs the first four responses of a step to samples.jsonl
SAMPLE_WIDTH = 10
BLOCKS, ASCII_RAMP = "▁▂▃▄▅▆▇█", "_.:-=+*#"


class UsageError(Exception):
    """Bad input: main() prints the message on one line and returns 2."""


def run_name(value: str) -> str:
    """--advantage also names the folder the demo replaces for each run, so it must be a plain name
    (lampo.py's estimators are); lampo.py itself checks that the estimator exists."""
    if not re.fullmatch(r"[a-z]+", value):
        raise argparse.ArgumentTypeError(f"expected an estimator name such as lampo or grpo, got {value!r}")
    return value


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The demo's own flags, and the rest of the command line for lampo.py."""
    epilog = ("Any other flag goes to lampo.py (see python lampo.py --help), after the toy's own:\n  "
              + shlex.join(TOY_FLAGS))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=epilog, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "demo"),
                        help="where the tiny model, the toy dataset, lampo.log and the runs go "
                             "(default: runs/demo)")
    parser.add_argument("--advantage", default="lampo", type=run_name,
                        help="passed to lampo.py; also names the run's folder, so estimators sit side by "
                             "side (default: lampo)")
    parser.add_argument("--output-dir", help="passed to lampo.py (default: WORKDIR/ADVANTAGE)")
    return parser.parse_known_args(argv)


def toy_rows() -> list[dict]:
    """The dataset, in MATH's columns: lampo.py takes the gold answer from the solution's last box."""
    return [{"problem": f"What is {question}?", "solution": f"{question} = \\boxed{{7}}"}
            for question in QUESTIONS]


def write_dataset(work: Path) -> Path:
    """The toy dataset written into work (created if need be); its path."""
    data = work / "sevens.jsonl"
    try:
        work.mkdir(parents=True, exist_ok=True)
        data.write_text("".join(json.dumps(row) + "\n" for row in toy_rows()))
    except OSError as e:
        raise UsageError(f"cannot write to --workdir {work} ({e.strerror}): "
                         "choose another --workdir") from None
    return data


def ensure_model(path: Path) -> Path:
    """The tiny model with the answer tokens, built on first use (seconds) and reused after."""
    if not (path / "config.json").exists():
        from transformers.utils import logging as hf_logging

        from demo.tiny_qwen3 import build_tiny_model

        hf_logging.disable_progress_bar()             # a one-file save needs no progress bar
        partial = path.with_name(path.name + ".partial")
        build_tiny_model(partial, extra_tokens=ANSWER_TOKENS)
        partial.rename(path)                          # an interrupted build is never mistaken for a model
    return path


def shown(path: Path) -> str:
    """A path as the reader would type it: relative to the current folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def shell_lines(command: list[str], width: int = 100) -> str:
    """The command as a shell would take it, wrapped between flags with backslash continuations."""
    units = []                                        # each flag with the values that follow it
    for word in map(shlex.quote, command):
        if word.startswith("--") or not units:
            units.append(word)
        else:
            units[-1] += " " + word
    lines = [units[0]]
    for unit in units[1:]:
        if len(lines[-1]) + 1 + len(unit) > width:
            lines[-1] += " \\"
            lines.append("    " + unit)
        else:
            lines[-1] += " " + unit
    return "\n".join(lines)


def file_state(path: Path) -> tuple[int, int, int] | None:
    """Inode, modification time and size: a file whose state has not changed was not written."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def read_jsonl(path: Path, earlier_state: tuple[int, int, int] | None) -> list[dict]:
    """The complete rows of a file lampo.py may be appending to; none while it is missing or still
    as it was before the run (an earlier run's, which lampo.py is about to replace)."""
    state = file_state(path)
    if state is None or state == earlier_state:
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def printable(text: str) -> str:
    """A sampled response in a table cell: control characters and spaces as dots, cut to SAMPLE_WIDTH."""
    text = "".join(c if c.isprintable() and not c.isspace() else "·" for c in text)
    return (text or "(empty)")[:SAMPLE_WIDTH]


def header() -> str:
    cells = [f"{name:>{width}}" for name, width, _, _ in COLUMNS]
    return "  ".join(cells + [f"first {SAMPLES_SHOWN} sampled responses"])


def table_row(row: dict, samples: list[dict]) -> str:
    cells = [f"{fmt.format(row[key]):>{width}}" for _, width, key, fmt in COLUMNS]
    answers = "  ".join(f"{printable(s['response']):<{SAMPLE_WIDTH}}" for s in samples[:SAMPLES_SHOWN])
    return "  ".join(cells + [answers]).rstrip()


def sparkline(values: list[float], top: float, ramp: str) -> str:
    """One character per value on a fixed 0..top scale, so a flat curve looks flat."""
    levels = len(ramp) - 1
    return "".join(ramp[round(min(max(v / top, 0.0), 1.0) * levels)] for v in values)


def curves(rows: list[dict], ramp: str) -> list[str]:
    reward, accuracy = [r["reward_mean"] for r in rows], [r["accuracy"] for r in rows]
    top = max(1.0, *reward)
    return [f"reward   {sparkline(reward, top, ramp)}  {min(reward):.2f} .. {max(reward):.2f} "
            f"(scale 0 .. {top:.2f})",
            f"accuracy {sparkline(accuracy, 1.0, ramp)}  {min(accuracy):.2f} .. {max(accuracy):.2f} "
            "(scale 0 .. 1)"]


def summary(rows: list[dict], seconds: float) -> str:
    k = max(1, min(5, len(rows) // 4))
    first, last = rows[:k], rows[-k:]

    def mean(part, key):
        return sum(r[key] for r in part) / len(part)

    return (f"mean of the first {k} steps -> last {k}: reward {mean(first, 'reward_mean'):.3f} -> "
            f"{mean(last, 'reward_mean'):.3f}, accuracy {mean(first, 'accuracy'):.2f} -> "
            f"{mean(last, 'accuracy'):.2f}  ({len(rows)} steps, {seconds:.0f} s)")


def stream_table(proc: subprocess.Popen, out_dir: Path, earlier: dict) -> list[dict]:
    """Print each step's row once lampo.py has logged it and its samples; all rows once it exits.
    `earlier` holds the state of each log file before the run."""
    printed = 0
    while True:
        done = proc.poll() is not None
        rows, samples = (read_jsonl(out_dir / name, earlier[name]) for name in LOGS)
        for i in range(printed, len(rows)):
            of_step = [s for s in samples if s["step"] == rows[i]["step"]]
            if not (of_step or i + 1 < len(rows) or done):
                break                            # samples.jsonl is written just after metrics.jsonl
            if i == 0:
                print(header())
            print(table_row(rows[i], of_step), flush=True)
            printed = i + 1
        if done:
            return rows
        time.sleep(0.2)


def failure_lines(log: Path) -> list[str]:
    """What to show when lampo.py fails: its one-line error if it printed one, else the log's end."""
    # A progress bar redraws with carriage returns; only what it drew last is on the screen.
    lines = [line.rsplit("\r", 1)[-1].rstrip() for line in log.read_text(errors="replace").splitlines()]
    errors = [line for line in lines if line.startswith("error:") or ": error:" in line]
    return errors or [line for line in lines if line][-15:]


def can_encode(text: str) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
        return True
    except UnicodeEncodeError:
        return False


def main(argv: list[str] | None = None) -> int:
    args, lampo_flags = parse_args(argv)
    sys.stdout.reconfigure(errors="replace")          # a terminal that cannot show a sampled byte gets '?'
    ramp = BLOCKS if can_encode(BLOCKS) else ASCII_RAMP
    work = Path(args.workdir).expanduser()
    try:
        data = write_dataset(work)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model = ensure_model(work / "tiny-qwen3-boxed")
    out_dir = Path(args.output_dir or work / args.advantage).expanduser()
    if args.output_dir is None and "--resume" not in lampo_flags:
        shutil.rmtree(out_dir, ignore_errors=True)    # the demo's own folder; lampo.py refuses to reuse one
    command = ["python", shown(ROOT / "lampo.py"), "--model", shown(model), "--dataset", shown(data),
               "--output-dir", shown(out_dir), "--advantage", args.advantage, *TOY_FLAGS, *lampo_flags]
    print("$ " + shell_lines(command), flush=True)
    # One thread unless the reader says otherwise: a model this small gains nothing from more, and on
    # a busy machine threads that wait for each other make every step several times slower.
    env = {"OMP_NUM_THREADS": "1", **os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    log = work / "lampo.log"
    earlier = {name: file_state(out_dir / name) for name in LOGS}
    start = time.perf_counter()
    with log.open("w") as lampo_output:
        proc = subprocess.Popen([sys.executable, *command[1:]], stdout=lampo_output, stderr=lampo_output,
                                env=env)
        # Ctrl-C reaches lampo.py as well: it finishes the step, saves and exits; the demo waits for it.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            rows = stream_table(proc, out_dir, earlier)
        finally:
            signal.signal(signal.SIGINT, previous)
    if rows:
        print("\n" + "\n".join(curves(rows, ramp)))
        print(summary(rows, time.perf_counter() - start))
    if proc.returncode != 0:
        print(f"lampo.py exited with code {proc.returncode} (full output in {shown(log)}):", file=sys.stderr)
        print("\n".join(failure_lines(log)), file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())

"""
Evaluate a model on the LamPO paper's benchmarks: AIME24, AIME25, MATH-500 and GPQA-Diamond.

Every problem is posed with the chat template and instruction lampo.py trains with, sampled K
times with Qwen3's recommended settings, and scored by lampo's own answer checker, so the
training reward and the reported accuracy mean the same thing. Per benchmark it reports avg@K
(mean accuracy over all samples) with its standard error, unbiased pass@k, the mean response
length and the share of responses cut off at --max-new-tokens.

Run (one GPU, bf16):
    python eval.py --model runs/lampo/checkpoint-200 --samples 16
    python eval.py --model Qwen/Qwen3-1.7B --benchmarks aime24 aime25 --samples 16
    python eval.py --model Qwen/Qwen3-1.7B --benchmarks math500 --limit 50     # a quick look
Running the same command again resumes: finished samples are read back, not regenerated.
GPQA-Diamond is gated: accept its terms on https://huggingface.co/datasets/Idavidrein/gpqa,
then run `hf auth login` (or set HF_TOKEN).
Smoke run on CPU with a local model folder and a problem file (columns problem, answer):
    python eval.py --model path/to/tiny --benchmarks problems.jsonl --max-new-tokens 32
"""

import argparse
import hashlib
import json
import math
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

import lampo
from lampo import UsageError


# -----------------------------------------------------------------------------
# Benchmarks
# One registry entry per benchmark: where its data lives and which columns hold what. Hub datasets
# and local files go through the same loader, so a test can point an entry at a small file with the
# hub's column names. GPQA is multiple choice: its options are shuffled and the answer is a letter.

@dataclass(frozen=True)
class Benchmark:
    source: str                          # hub dataset id, or a local .jsonl/.json/.parquet/.csv file
    split: str = "train"
    config: str | None = None
    problem: str = "problem"
    answer: str = "answer"
    id: str | None = None                # column naming each problem (the resume key); None: row number
    distractors: tuple[str, ...] = ()    # wrong-option columns of a multiple-choice benchmark
    gated: bool = False


# Datasets and splits as lighteval (src/lighteval/tasks/tasks/{aime,math_500,gpqa}.py @ 0d42edf) and
# open-r1 (src/open_r1/evaluate.py @ 00b5200) evaluate them, so our numbers compare with published
# ones. Columns from the dataset cards (aime_2024: id, problem, solution, answer, url, year; MATH-500:
# problem, solution, answer, subject, level, unique_id) and, for GPQA, the ones lighteval reads. We
# found no confirmed id column for aime_2025 or GPQA, so their problems are named by row number.
BENCHMARKS = {
    "aime24": Benchmark("HuggingFaceH4/aime_2024", id="id"),
    "aime25": Benchmark("yentinglin/aime_2025"),  # same 30 problems: math-ai/aime25, split test
    "math500": Benchmark("HuggingFaceH4/MATH-500", split="test", id="unique_id"),
    "gpqa_diamond": Benchmark("Idavidrein/gpqa", config="gpqa_diamond", problem="Question",
                              answer="Correct Answer", gated=True,
                              distractors=("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")),
}

CHOICE_INSTRUCTION = ("Please reason step by step, and put the letter of your final answer (A, B, C or D) "
                      "within \\boxed{}.")


def resolve_benchmark(name: str) -> tuple[str, Benchmark]:
    if name in BENCHMARKS:
        return name, BENCHMARKS[name]
    if Path(name).suffix in lampo.LOCAL_FORMATS:
        return Path(name).stem, Benchmark(name)
    raise UsageError(f"unknown benchmark {name!r}: use {', '.join(BENCHMARKS)} or a local "
                     f"{'/'.join(lampo.LOCAL_FORMATS)} file with columns problem and answer")


def multiple_choice(question: str, correct: str, wrong: list[str]) -> tuple[str, str]:
    """The question with its options shuffled and lettered A-D, and the letter of the right one."""
    # Seeded by the question text (Python's hash() changes with every process), so every run,
    # sample and checkpoint sees the same order: a resumed run sends the same prompt, and two
    # checkpoints are compared on identical questions.
    seed = int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big")
    options = [correct, *wrong]
    order = list(range(len(options)))
    random.Random(seed).shuffle(order)
    letters = "ABCD"[:len(options)]
    lines = [f"{letter}) {options[i]}" for letter, i in zip(letters, order)]  # lighteval's layout
    return question.strip() + "\n\n" + "\n".join(lines), letters[order.index(0)]


def load_problems(name: str, bench: Benchmark) -> list[dict]:
    """[{id, problem, answer, instruction}] in table order; hub ids and local files alike."""
    try:
        table = lampo.load_table(bench.source, bench.split, bench.config)
    except UsageError as e:
        if not bench.gated:
            raise
        raise UsageError(f"{e}; {name} is gated: accept its terms on https://huggingface.co/datasets/"
                         f"{bench.source}, then run `hf auth login` or set HF_TOKEN") from None
    columns = [c for c in (bench.id, bench.problem, bench.answer, *bench.distractors) if c]
    lampo.require_columns(table, columns, bench.source, "a benchmark file needs columns problem and answer")
    problems = []
    for i, row in enumerate(table):
        problem, answer, instruction = row[bench.problem], str(row[bench.answer]).strip(), lampo.MATH_INSTRUCTION
        if bench.distractors:
            wrong = [str(row[c]).strip() for c in bench.distractors]
            (problem, answer), instruction = multiple_choice(problem, answer, wrong), CHOICE_INSTRUCTION
        problems.append({"id": str(row[bench.id]) if bench.id else str(i), "problem": problem,
                         "answer": answer, "instruction": instruction})
    if len({p["id"] for p in problems}) < len(problems):
        raise UsageError(f"column {bench.id!r} of {bench.source} repeats ids: resuming needs each problem named once")
    return problems


# -----------------------------------------------------------------------------
# Sampling
# K samples per problem, in batches of --batch-size through lampo.sample_responses. A batch
# decodes until its longest sequence ends, so jobs are sorted by prompt length: a batch holds
# similar prompts, and the K samples of one problem, which need one prefill and similar lengths.
# Each finished batch is appended (and flushed) to <benchmark>.jsonl; a re-run reads that file
# back and samples only the (problem, sample) pairs it lacks, so a crash costs one batch.

# Qwen3's recommended sampling (model card, best practices). Never greedy: in thinking mode
# greedy decoding degrades and repeats itself endlessly. Flags left unset take these by mode.
QWEN3_SAMPLING = {True: {"temperature": 0.6, "top_p": 0.95, "top_k": 20},
                  False: {"temperature": 0.7, "top_p": 0.8, "top_k": 20}}
SETTINGS = ("model", "thinking", "temperature", "top_p", "top_k", "max_new_tokens")


def check_settings(path: Path, settings: dict) -> None:
    """Samples drawn under other settings must never be averaged into these numbers."""
    if path.exists():
        old = json.loads(path.read_text())
        changed = [f"{key} {old.get(key)!r} -> {value!r}" for key, value in settings.items() if old.get(key) != value]
        if changed:
            raise UsageError(f"{path.parent} holds samples drawn with other settings ({', '.join(changed)}): "
                             "choose another --output-dir")
    path.write_text(json.dumps(settings, indent=2))


def read_finished(path: Path) -> dict[tuple[str, int], dict]:
    """Rows already written, by (problem id, sample index)."""
    if not path.exists():
        return {}
    lines = path.read_text().splitlines(keepends=True)
    whole = [line for line in lines if line.endswith("\n")]
    if len(whole) < len(lines):  # a crash cut the last row in half: drop it, it is sampled again
        path.write_text("".join(whole))
    return {(row["id"], row["sample"]): row for row in map(json.loads, whole)}


def score(problem: dict, sample: int, prompt: str, response: str, length: int, truncated: bool) -> dict:
    extracted = lampo.extract_answer(response)
    return {"id": problem["id"], "sample": sample, "prompt": prompt, "response": response,
            "extracted": extracted, "gold": problem["answer"], "correct": lampo.is_equiv(extracted, problem["answer"]),
            "length": length, "truncated": truncated}


def run_benchmark(model, tokenizer, sampling, name: str, problems: list[dict], args, path: Path) -> list[dict]:
    """All K rows of every problem, read back from path or sampled and appended to it."""
    prompts = [lampo.build_prompt(tokenizer, p["problem"], args.thinking, p["instruction"]) for p in problems]
    finished = read_finished(path)
    prompt_of = {p["id"]: prompt for p, prompt in zip(problems, prompts)}
    stale = [row["id"] for row in finished.values() if row["id"] in prompt_of and row["prompt"] != prompt_of[row["id"]]]
    if stale:
        raise UsageError(f"{path} holds samples of problem {stale[0]} under another prompt (a new dataset "
                         "version or chat template?): choose another --output-dir")
    context = getattr(model.config, "max_position_embeddings", None) or 10 ** 9
    prompt_ids = lampo.encode_prompts(tokenizer, prompts, args.max_new_tokens, context)
    todo = [(i, s) for i, p in enumerate(problems) for s in range(args.samples) if (p["id"], s) not in finished]
    todo.sort(key=lambda job: len(prompt_ids[job[0]]), reverse=True)  # stable: a problem's samples stay together
    total = len(problems) * args.samples
    with tqdm(total=total, initial=total - len(todo), desc=name, unit="sample", dynamic_ncols=True) as bar:
        for start in range(0, len(todo), args.batch_size):
            jobs = todo[start:start + args.batch_size]
            responses, _, truncated = lampo.sample_responses(model, [prompt_ids[i] for i, _ in jobs], sampling,
                                                             args.batch_size)
            texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
            rows = [score(problems[i], s, prompts[i], text, len(tokens), cut)
                    for (i, s), text, tokens, cut in zip(jobs, texts, responses, truncated)]
            lampo.append_jsonl(path, rows)
            finished.update(((row["id"], row["sample"]), row) for row in rows)
            bar.update(len(rows))
    return [finished[(p["id"], s)] for p in problems for s in range(args.samples)]


# -----------------------------------------------------------------------------
# Metrics
# avg@K, the mean accuracy over all n * K samples, is what papers report as "pass@1 averaged over K
# samples". Its standard error treats the n problems as the random draw: the sample standard
# deviation over problems of per-problem mean accuracy, over sqrt(n). It includes the noise of
# drawing only K samples; more samples shrink that part, never the spread of the 30 AIME problems.

def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples is right) for a problem with c of n samples right, k <= n.

    The unbiased estimator 1 - C(n-c, k) / C(n, k) of Chen et al. 2021 (arXiv 2107.03374): the
    share of k-subsets of the n samples that hold a right one. comb() is 0 when k > n - c."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def summarize(name: str, rows: list[dict], samples: int) -> dict:
    """One benchmark's numbers, accuracies in percent."""
    correct = {}
    for row in rows:
        correct[row["id"]] = correct.get(row["id"], 0) + row["correct"]
    accuracy = [c / samples for c in correct.values()]
    n = len(accuracy)
    return {
        "benchmark": name, "n": n, "K": samples,
        "avg@K": 100 * statistics.mean(accuracy),
        "se": 100 * statistics.stdev(accuracy) / math.sqrt(n) if n > 1 else None,
        # pass@1 equals avg@K by construction; k runs over 1, 2, 4, ... up to K.
        **{f"pass@{k}": 100 * statistics.mean(pass_at_k(samples, c, k) for c in correct.values())
           for k in (2 ** j for j in range(samples.bit_length()))},
        "mean_length": statistics.mean(row["length"] for row in rows),
        "truncated": 100 * statistics.mean(row["truncated"] for row in rows),
    }


def format_table(results: list[dict]) -> str:
    passes = [key for key in results[0] if key.startswith("pass@")]
    header = ["benchmark", "n", "K", "avg@K ± se", *passes, "length", "truncated"]
    lines = [[r["benchmark"], str(r["n"]), str(r["K"]),
              f"{r['avg@K']:.1f} ± " + ("n/a" if r["se"] is None else f"{r['se']:.1f}"),
              *[f"{r[key]:.1f}" for key in passes], f"{r['mean_length']:.0f}", f"{r['truncated']:.1f}%"]
             for r in results]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths)))
                     for line in [header, *lines])


# -----------------------------------------------------------------------------
# Evaluation
# Everything that can fail fast does so before the first sample: flags, model path, every
# benchmark's data (a gated GPQA must not fail after hours of AIME), and the output dir's
# settings. Then the model is loaded once, in bf16 on CUDA (no training here, so no fp32 master
# weights) and float32 on CPU, and the benchmarks run one after another.

def validate(args) -> None:
    problems = [(args.temperature <= 0, "--temperature must be positive: this is a sampling eval, and greedy "
                                        "decoding repeats itself endlessly in thinking mode"),
                (not 0 < args.top_p <= 1, f"--top-p must be in (0, 1] (got {args.top_p})"),
                (args.top_k < 0, f"--top-k must be 0 (off) or positive (got {args.top_k})")]
    for name in ("samples", "batch_size", "max_new_tokens", "limit"):
        value, option = getattr(args, name), "--" + name.replace("_", "-")
        problems.append((value is not None and value < 1, f"{option} must be at least 1 (got {value})"))
    for flag, message in problems:
        if flag:
            raise UsageError(message)


def evaluate(args) -> list[dict]:
    validate(args)
    device = lampo.pick_device(args.device)
    tokenizer = lampo.load_tokenizer(args.model)
    benchmarks = dict(resolve_benchmark(name) for name in args.benchmarks)
    problems = {name: load_problems(name, bench)[:args.limit] for name, bench in benchmarks.items()}
    out = lampo.prepare_output_dir(args.output_dir)
    settings = {key: getattr(args, key) for key in SETTINGS}
    check_settings(out / "settings.json", settings)

    torch.manual_seed(args.seed)
    model = lampo.load_model(args.model, device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    sampling = lampo.Sampling(args.max_new_tokens, args.temperature, args.top_p, lampo.end_token_ids(model, tokenizer),
                              tokenizer.pad_token_id, top_k=args.top_k)
    results = []
    for name, items in problems.items():
        rows = run_benchmark(model, tokenizer, sampling, name, items, args, out / f"{name}.jsonl")
        results.append(summarize(name, rows, args.samples))
    (out / "results.json").write_text(json.dumps({"settings": settings, "results": results}, indent=2))
    print(format_table(results))
    return results


# -----------------------------------------------------------------------------
# CLI
# Sampling flags mirror lampo.py's; those left unset are filled from QWEN3_SAMPLING for the chosen
# mode, and the default output dir is named after the model, so each model keeps its own samples.

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate a model on AIME24, AIME25, MATH-500 and GPQA-Diamond.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--model", default="Qwen/Qwen3-1.7B", help="hub id or local folder (e.g. runs/lampo/checkpoint-200)")
    add("--benchmarks", nargs="+", default=list(BENCHMARKS),
        help="registry names, or local .jsonl/.json/.parquet/.csv files with columns problem and answer")
    add("--samples", type=int, default=1, help="K: responses per problem; use 16 or more for AIME, whose 30 "
                                               "problems make a single sample very noisy")
    add("--limit", type=int, help="evaluate only the first N problems of each benchmark")
    add("--thinking", action=argparse.BooleanOptionalAction, default=True,
        help="Qwen3 thinking mode in the chat template (--no-thinking turns it off)")
    add("--temperature", type=float, help="sampling temperature; unset: 0.6 thinking, 0.7 non-thinking (Qwen3's "
                                          "recommendation)")
    add("--top-p", type=float, help="nucleus sampling threshold; unset: 0.95 thinking, 0.8 non-thinking")
    add("--top-k", type=int, help="sample among the k likeliest tokens (0 = off); unset: 20")
    add("--max-new-tokens", type=int, default=32768,
        help="longest response; one cut off here without an answer scores 0")
    add("--batch-size", type=int, default=16,
        help="sequences sampled at once; their KV cache is allocated up front for the whole --max-new-tokens: "
             "3.5 GiB per 32k-token Qwen3-1.7B sequence (28 layers x 8 heads x 128 dims x K,V x 2 bytes = "
             "112 KiB a token), so 16 fit an 80 GB GPU")
    add("--output-dir", help="where settings.json, results.json and <benchmark>.jsonl go; unset: runs/eval/<model>")
    add("--device", default="auto", choices=("auto", "cuda", "cpu"), help="auto picks CUDA when available")
    add("--seed", type=int, default=0, help="seed for sampling")
    args = parser.parse_args(argv)
    for key, value in QWEN3_SAMPLING[args.thinking].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.output_dir is None:
        mode = "" if args.thinking else "-no-thinking"
        args.output_dir = "runs/eval/" + args.model.strip("/.").replace("/", "_") + mode
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        evaluate(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except torch.OutOfMemoryError:
        print(f"error: out of GPU memory: lower --batch-size (now {args.batch_size}) and run the same command "
              "again; finished samples are kept", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"interrupted: finished samples are in {args.output_dir}; run the same command to resume",
              file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()

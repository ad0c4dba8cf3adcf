"""
Evaluate a model on the LamPO paper's benchmarks: AIME24, AIME25, MATH-500 and GPQA-Diamond.

Every problem is posed with the chat template and instruction lampo.py trains with, sampled K
times with Qwen3's recommended settings, and scored by lampo.py's answer checker (answer_check.py),
so the training reward and the reported accuracy mean the same thing (GPQA's answers are reduced to
their option letter first). Stored samples are scored again on every run, so the numbers always
follow the current checker. Per benchmark it reports avg@K (mean accuracy over all samples) with
its standard error, unbiased pass@k, the mean response length and the share of responses cut
off at --max-new-tokens.

Run (one GPU, bf16):
    python eval.py --model runs/lampo/checkpoint-200 --samples 16
    python eval.py --model Qwen/Qwen3-1.7B --benchmarks aime24 aime25 --samples 16
    python eval.py --model Qwen/Qwen3-1.7B --benchmarks math500 --limit 50     # a quick look
Running the same command again resumes: finished samples are read back, not regenerated.
GPQA-Diamond is gated: accept its terms on https://huggingface.co/datasets/Idavidrein/gpqa,
then run `hf auth login` (or set HF_TOKEN).
Smoke run on CPU with a local model folder and a problem file (columns problem, answer), or a
lampo.py training file as is (columns problem, solution: the gold is the solution's last \boxed{}):
    python eval.py --model path/to/tiny --benchmarks problems.jsonl --max-new-tokens 32
Offline (HF_HUB_OFFLINE=1), testdata/ holds aime24, aime25 and math500: --benchmarks testdata/math500.jsonl
"""

import argparse
import hashlib
import json
import math
import os
import random
import re
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import logging as hf_logging

import answer_check
import lampo
from lampo import UsageError


# ---- Benchmarks ----------------------------------------------------------------------------------
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
    solution: str | None = None          # without an answer column: the gold is this column's last \boxed{}
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

TESTDATA = Path(__file__).resolve().parent / "testdata"      # copies of aime24, aime25 and math500

CHOICE_INSTRUCTION = ("Please reason step by step, and put the letter of your final answer (A, B, C or D) "
                      "within \\boxed{}.")


def local_file(prompt_field: str = "problem", answer_field: str | None = None,
               solution_field: str = "solution") -> Benchmark:
    """A local file's columns (its source is filled in per file), read as lampo.py reads a training
    file: the problem, and the gold answer from its own column (answer_field, default "answer") or,
    when answer_field is not given and the file has no answer column, the solution's last \boxed{}."""
    return Benchmark("", problem=prompt_field, answer=answer_field or "answer",
                     solution=None if answer_field else solution_field)


LOCAL_FILE = local_file()   # the defaults of --prompt-field, --answer-field and --solution-field


def resolve_benchmark(name: str, local: Benchmark = LOCAL_FILE) -> tuple[str, Benchmark]:
    if name in BENCHMARKS:
        return name, BENCHMARKS[name]
    if Path(name).suffix in lampo.LOCAL_FORMATS:
        return Path(name).stem, replace(local, source=name)
    raise UsageError(f"unknown benchmark {name!r}: use {', '.join(BENCHMARKS)} or a local "
                     f"{'/'.join(lampo.LOCAL_FORMATS)} file with columns problem and answer (or solution)")


def resolve_benchmarks(names: list[str], local: Benchmark = LOCAL_FILE) -> dict[str, Benchmark]:
    """Each --benchmarks entry by the name its samples and its table row go under."""
    # A local file is named by its stem, so a/test.jsonl and b/test.csv (or a file aime24.jsonl
    # beside the registry's aime24) would write one <name>.jsonl and share one table row.
    given = {}
    for entry in names:
        name, bench = resolve_benchmark(entry, local)
        if name in given:
            first = given[name][0]
            raise UsageError(f"--benchmarks lists {entry} twice" if first == entry else
                             f"--benchmarks {first} and {entry} would both be named {name!r} and share "
                             f"{name}.jsonl: rename one of the files")
        given[name] = (entry, bench)
    return {name: bench for name, (_, bench) in given.items()}


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


def shipped_copy(name: str, bench: Benchmark) -> str | None:
    """testdata/'s copy of a registry benchmark, as a path for --benchmarks; None if none ships."""
    copy = TESTDATA / f"{name}.jsonl"
    if bench != BENCHMARKS.get(name) or not copy.exists():
        return None
    return str(copy.relative_to(Path.cwd()) if copy.is_relative_to(Path.cwd()) else copy)


def load_problems(name: str, bench: Benchmark) -> list[dict]:
    """[{id, problem, answer, instruction, multiple_choice}] in table order; hub ids and local files alike."""
    registry, copy = bench == BENCHMARKS.get(name), shipped_copy(name, bench)
    try:
        table = lampo.load_table(bench.source, bench.split, bench.config)
    except UsageError as e:
        if copy:                              # offline: the same problems ship with this repository
            raise UsageError(f"{e}; {copy} holds the same problems: --benchmarks {copy}") from None
        if not bench.gated:
            raise
        raise UsageError(f"{e}; {name} is gated: accept its terms on https://huggingface.co/datasets/"
                         f"{bench.source}, then run `hf auth login` or set HF_TOKEN") from None
    boxed = bench.solution is not None and bench.answer not in table.column_names
    gold_column = bench.solution if boxed else bench.answer
    columns = [c for c in (bench.id, bench.problem, gold_column, *bench.distractors) if c]
    if not registry:
        hint = ("map a file's columns with --prompt-field and --answer-field, or --solution-field for a "
                "gold answer in its last \\boxed{}")
    elif copy:
        hint = f"the hub dataset has changed its columns; {copy} holds the same problems: --benchmarks {copy}"
    else:         # the column flags apply to local files only: a registry entry's columns are eval.py's
        hint = f"the hub dataset has changed its columns since eval.py's {name} entry was written"
    lampo.require_columns(table, columns, bench.source, hint)
    problems, dropped = [], 0
    for i, row in enumerate(table):
        answer = lampo.gold_answer(row, None if boxed else bench.answer, bench.solution)
        if answer is None:
            dropped += 1
            continue
        problem = row[bench.problem]
        instruction = lampo.MATH_INSTRUCTION
        if bench.distractors:
            wrong = [str(row[c]).strip() for c in bench.distractors]
            (problem, answer), instruction = multiple_choice(problem, answer, wrong), CHOICE_INSTRUCTION
        problems.append({"id": str(row[bench.id]) if bench.id else str(i), "problem": problem,
                         "answer": answer, "instruction": instruction,
                         "multiple_choice": bool(bench.distractors)})
    if not problems:
        raise UsageError(f"no row of {bench.source} has a gold answer in column {gold_column!r}"
                         + (" (its last \\boxed{})" if boxed else ""))
    if dropped:
        tqdm.write(f"{name}: {dropped} rows dropped: no gold answer in column {gold_column!r}",
                   file=sys.stderr)
    if len({p["id"] for p in problems}) < len(problems):
        raise UsageError(f"column {bench.id!r} of {bench.source} repeats ids: resuming needs each problem "
                         "named once")
    return problems


# ---- Scoring -------------------------------------------------------------------------------------
# Every row is scored from its response by the current checker, on every run: the verdict a row was
# written with may predate a checker fix or a gold fix, so it is kept for reading, never trusted.
# Math answers go through lampo's checker, as in training. A multiple-choice answer is reduced to
# its option letter and compared as a letter, because models name option C in many ways:
# `\boxed{C}`, `\boxed{\text{C) nucleus}}`, `Answer: C - nucleus`, `The correct option is C.`

# Formatting around a letter that never changes which option it names: \text{...} and the like,
# braces, bold, and math delimiters. Removed in one pass, so nesting costs no extra time.
_LETTER_NOISE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\s*\{|[{}]|\*\*|\$|\\[()\[\]]")
# One option letter, bare or in parentheses. Not the start of a word (Cl is chlorine, B-meson a
# particle) and not a hedge between two letters (A or C, A, C): those name no single option.
_LETTER = (r"\(?(?P<letter>[A-D])\)?(?![\w'-])"
           r"(?!\s*(?:,|/|or\b|and\b)\s*\(?[A-D](?![\w'-]))")
_LETTER_AT_START = re.compile(rf"\s*(?:(?i:option|choice)\s*)?{_LETTER}")
# "Answer: C", "the answer is C", "the correct option is C", "Answer: option C".
_LETTER_PHRASE = re.compile(rf"(?i:\b(?:answer|option|choice))\s*(?:(?i:is)\b|:)[\s:]*"
                            rf"(?:(?i:option|choice)\s*)?{_LETTER}")
_LONE_LETTER = re.compile(rf"\s*{_LETTER}\.?\s*")


def plain_text(text: str) -> str:
    """text without the LaTeX and markdown wrappers models put around a letter."""
    return _LETTER_NOISE.sub("", text)


def choice_letter(response: str) -> str | None:
    """The option letter (A-D) a multiple-choice response answers with; None if it names none.

    Read like answer_check.extract_answer reads a math answer: only the text after the last </think>
    counts, a response cut off mid-thought has no answer, and the last \\boxed{} is the answer.
    Without a box: the last "answer is C" / "Answer: C" phrase, or a response that is just C."""
    if "<think>" in response and "</think>" not in response:
        return None
    final = response.rsplit("</think>", 1)[-1]
    if answer_check.BOX_COMMAND.search(final):  # a box decides, as in extract_answer (cut off: no letter)
        match = _LETTER_AT_START.match(plain_text(answer_check.last_boxed(final) or ""))
        return match["letter"] if match else None
    text = plain_text(final)
    phrases = list(_LETTER_PHRASE.finditer(text))
    if phrases:
        return phrases[-1]["letter"]
    lone = _LONE_LETTER.fullmatch(text)
    return lone["letter"] if lone else None


def verdict(problem: dict, response: str) -> dict:
    """The answer read from response, the gold answer and whether they agree, by the current checker."""
    if problem["multiple_choice"]:
        extracted = choice_letter(response)
        correct = extracted == problem["answer"]
    else:
        extracted = answer_check.extract_answer(response)
        correct = answer_check.is_equiv(extracted, problem["answer"])
    return {"extracted": extracted, "gold": problem["answer"], "correct": correct}


# ---- Stored samples ------------------------------------------------------------------------------
# Each finished batch is appended (and flushed) to <benchmark>.jsonl; a re-run reads that file back
# and samples only the (problem, sample) pairs it lacks, so a crash costs one batch. A line that is
# not a whole row (cut in half by a crash, or damaged since) is dropped and its sample drawn again;
# only the crash's half row at the end goes without a warning. Every rewrite goes to a temp file
# first and replaces the old file in one step, so an interrupted run never leaves half a file.

SETTINGS = ("model", "thinking", "temperature", "top_p", "top_k", "max_new_tokens")
ROW_FIELDS = {"id": str, "sample": int, "prompt": str, "response": str, "length": int, "truncated": bool}


def write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())    # on disk before the rename, so a power cut cannot swap in an empty file
    os.replace(temp, path)


def jsonl(rows) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def model_key(model: str) -> str:
    """A local model folder as its absolute path (../tiny/ and ../tiny are one model); a hub id as given."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def read_settings(path: Path) -> dict:
    try:
        settings = json.loads(path.read_bytes())
    except ValueError as e:      # not JSON, or not text at all
        raise UsageError(f"{path} is damaged ({lampo.first_line(e)}): restore it, or choose another "
                         "--output-dir") from None
    if not isinstance(settings, dict):
        raise UsageError(f"{path} is damaged (not a JSON object): restore it, or choose another --output-dir")
    if isinstance(settings.get("model"), str):
        settings["model"] = model_key(settings["model"])
    return settings


def check_settings(out: Path, settings: dict) -> None:
    """Samples drawn under other settings must never be averaged into these numbers."""
    sample_files = sorted(path.name for path in out.glob("*.jsonl") if path.stat().st_size)
    if not sample_files:
        return                  # nothing drawn yet, as after a run that failed before its first sample
    path = out / "settings.json"
    if not path.exists():
        raise UsageError(f"{out} holds samples ({sample_files[0]}) but no settings.json saying how they were "
                         "drawn, so they cannot be checked against these settings: choose another "
                         "--output-dir")
    old = read_settings(path)
    changed = [f"{key} {old.get(key)!r} -> {value!r}" for key, value in settings.items()
               if old.get(key) != value]
    if changed:
        raise UsageError(f"{out} holds samples drawn with other settings ({', '.join(changed)}): "
                         "choose another --output-dir")


def parse_row(line: bytes) -> dict:
    """One stored sample; ValueError saying what is wrong with the line if it is none."""
    if not line.strip():
        raise ValueError("blank line")
    row = json.loads(line)
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in ROW_FIELDS if key not in row]
    if missing:
        raise ValueError(f"no field {', '.join(missing)}")
    wrong = [key for key, kind in ROW_FIELDS.items() if type(row[key]) is not kind]  # bool is no int here
    if wrong:
        raise ValueError(f"field {', '.join(wrong)} has the wrong type")
    return row


def read_finished(path: Path) -> tuple[dict[tuple[str, int], dict], bool]:
    """Rows already written, by (problem id, sample index), and whether the file needs rewriting."""
    if not path.exists():
        return {}, False
    *lines, tail = path.read_bytes().split(b"\n")
    rows, rewrite = [], False
    for number, line in enumerate(lines, 1):
        try:
            rows.append(parse_row(line))
        except ValueError as e:
            tqdm.write(f"warning: {path} line {number}: {lampo.first_line(e)}; dropped, its sample is "
                       "drawn again", file=sys.stderr)
            rewrite = True
    if tail:            # no newline after the last line: a crash cut it, unless it is a whole row
        try:
            rows.append(parse_row(tail))
        except ValueError:
            pass
        rewrite = True  # rewritten either way, so the next row is appended on a line of its own
    return {(row["id"], row["sample"]): row for row in rows}, rewrite


def rescore(finished: dict, problems: list[dict]) -> tuple[dict, bool]:
    """finished with every row of these problems scored again, and whether any verdict changed."""
    problem_of = {p["id"]: p for p in problems}
    fresh = {key: {**row, **verdict(problem_of[row["id"]], row["response"])} if row["id"] in problem_of
             else row for key, row in finished.items()}
    return fresh, fresh != finished


# ---- Sampling ------------------------------------------------------------------------------------
# K samples per problem, in batches of --batch-size through lampo.sample_responses. A batch
# decodes until its longest sequence ends, so jobs are sorted by prompt length: a batch holds
# similar prompts, and the K samples of one problem, which need one prefill and similar lengths.

# Qwen3's recommended sampling (model card, best practices). Never greedy: in thinking mode
# greedy decoding degrades and repeats itself endlessly. Flags left unset take these by mode.
QWEN3_SAMPLING = {True: {"temperature": 0.6, "top_p": 0.95, "top_k": 20},
                  False: {"temperature": 0.7, "top_p": 0.8, "top_k": 20}}


def new_row(problem: dict, sample: int, prompt: str, response: str, length: int, truncated: bool) -> dict:
    return {"id": problem["id"], "sample": sample, "prompt": prompt, "response": response,
            **verdict(problem, response), "length": length, "truncated": truncated}


def run_benchmark(model, tokenizer, sampling, name: str, problems: list[dict], args,
                  path: Path) -> list[dict]:
    """All K rows of every problem, read back from path (scored again) or sampled and appended to it."""
    prompts = [lampo.build_prompt(tokenizer, p["problem"], args.thinking, p["instruction"]) for p in problems]
    finished, rewrite = read_finished(path)
    prompt_of = {p["id"]: prompt for p, prompt in zip(problems, prompts)}
    stale = [row["id"] for row in finished.values()
             if row["id"] in prompt_of and row["prompt"] != prompt_of[row["id"]]]
    if stale:
        raise UsageError(f"{path} holds samples of problem {stale[0]} under another prompt (a new dataset "
                         "version or chat template?): choose another --output-dir")
    finished, changed = rescore(finished, problems)
    if rewrite or changed:
        write_atomic(path, jsonl(finished.values()))
    context = getattr(model.config, "max_position_embeddings", None) or 10 ** 9
    prompt_ids = lampo.encode_prompts(tokenizer, prompts, args.max_new_tokens, context)
    todo = [(i, s) for i, p in enumerate(problems) for s in range(args.samples)
            if (p["id"], s) not in finished]
    # Longest prompts first; the sort is stable, so a problem's samples stay together.
    todo.sort(key=lambda job: len(prompt_ids[job[0]]), reverse=True)
    total = len(problems) * args.samples
    with tqdm(total=total, initial=total - len(todo), desc=name, unit="sample", dynamic_ncols=True) as bar:
        for start in range(0, len(todo), args.batch_size):
            jobs = todo[start:start + args.batch_size]
            responses, _, truncated = lampo.sample_responses(model, [prompt_ids[i] for i, _ in jobs],
                                                             sampling, args.batch_size)
            texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
            rows = [new_row(problems[i], s, prompts[i], text, len(tokens), cut)
                    for (i, s), text, tokens, cut in zip(jobs, texts, responses, truncated)]
            lampo.append_jsonl(path, rows)
            finished.update(((row["id"], row["sample"]), row) for row in rows)
            bar.update(len(rows))
    return [finished[(p["id"], s)] for p in problems for s in range(args.samples)]


# ---- Metrics -------------------------------------------------------------------------------------
# avg@K, the mean accuracy over all n * K samples, is what papers report as "pass@1 averaged over K
# samples". Its standard error treats the n problems as the random draw: the sample standard
# deviation over problems of per-problem mean accuracy, over sqrt(n). It includes the noise of
# drawing only K samples; more samples shrink that part, never the spread of the 30 AIME problems.

def pass_at_k(samples: int, correct: int, k: int) -> float:
    """P(at least one of k samples is right) for a problem with `correct` of its `samples` right.

    The unbiased estimator 1 - C(samples - correct, k) / C(samples, k) of Chen et al. 2021
    (arXiv 2107.03374; their n, c, k), for k <= samples: the share of k-subsets of the samples that
    hold a right one. comb() is 0 when k > samples - correct."""
    return 1.0 - math.comb(samples - correct, k) / math.comb(samples, k)


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
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(line, widths)))
                     for line in [header, *lines])


# ---- Evaluation ----------------------------------------------------------------------------------
# Everything that can fail fast does so before the first sample: flags, model path, every
# benchmark's data (a gated GPQA must not fail after hours of AIME), and the output dir's
# settings. Then the model is loaded once, in bf16 on CUDA (no training here, so no fp32 master
# weights) and float32 on CPU, and the benchmarks run one after another.

def validate(args) -> None:
    checks = [(args.temperature <= 0, "--temperature must be positive: this is a sampling eval, and greedy "
                                        "decoding repeats itself endlessly in thinking mode"),
                (not 0 < args.top_p <= 1, f"--top-p must be in (0, 1] (got {args.top_p})"),
                (args.top_k < 0, f"--top-k must be 0 (off) or positive (got {args.top_k})")]
    for name in ("samples", "batch_size", "max_new_tokens", "limit"):
        value, option = getattr(args, name), "--" + name.replace("_", "-")
        checks.append((value is not None and value < 1, f"{option} must be at least 1 (got {value})"))
    for failed, message in checks:
        if failed:
            raise UsageError(message)


def evaluate(args) -> list[dict]:
    validate(args)
    device = lampo.pick_device(args.device)
    tokenizer = lampo.load_tokenizer(args.model)
    local = local_file(args.prompt_field, args.answer_field, args.solution_field)
    benchmarks = resolve_benchmarks(args.benchmarks, local)
    problems = {name: load_problems(name, bench)[:args.limit] for name, bench in benchmarks.items()}
    out = lampo.writable_output_dir(args.output_dir)
    settings = {key: getattr(args, key) for key in SETTINGS} | {"model": model_key(args.model)}
    check_settings(out, settings)

    torch.manual_seed(args.seed)
    hf_logging.disable_progress_bar()         # the weights' loading bar would only clutter the samples' bar
    model = lampo.load_model(args.model, device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    sampling = lampo.Sampling(args.max_new_tokens, args.temperature, args.top_p,
                              lampo.end_token_ids(model, tokenizer), tokenizer.pad_token_id, top_k=args.top_k)
    out.mkdir(parents=True, exist_ok=True)     # only now: a run that fails to start leaves no folder behind
    write_atomic(out / "settings.json", json.dumps(settings, indent=2))
    results = []
    for name, items in problems.items():
        rows = run_benchmark(model, tokenizer, sampling, name, items, args, out / f"{name}.jsonl")
        results.append(summarize(name, rows, args.samples))
    write_atomic(out / "results.json", json.dumps({"settings": settings, "results": results}, indent=2))
    print(format_table(results))
    sample_paths = ", ".join(str(out / f"{name}.jsonl") for name in problems)
    print(f"results in {out / 'results.json'}; samples in {sample_paths}")
    return results


# ---- CLI -----------------------------------------------------------------------------------------
# Sampling flags mirror lampo.py's; those left unset are filled from QWEN3_SAMPLING for the chosen
# mode, and the default output dir is named after the model, so each model keeps its own samples.

class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except None: those flags' help says what leaving them unset does."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = lampo.ArgumentParser(
        description="Evaluate a model on AIME24, AIME25, MATH-500 and GPQA-Diamond.",
        formatter_class=HelpFormatter)
    add = parser.add_argument
    add("--model", default="Qwen/Qwen3-1.7B", help="hub id or local folder (e.g. runs/lampo/checkpoint-200)")
    add("--benchmarks", nargs="+", default=list(BENCHMARKS),
        help="registry names, or local .jsonl/.json/.parquet/.csv files with columns problem and answer")
    add("--samples", type=int, default=1, help="K: responses per problem; use 16 or more for AIME, whose 30 "
                                               "problems make a single sample very noisy")
    add("--limit", type=int, help="evaluate only the first N problems of each benchmark; unset: all")
    add("--prompt-field", default="problem", help="a local file's problem column")
    add("--answer-field", help="a local file's gold answer column; unset: answer, or in a file without one "
                               "(a lampo.py training file) the last \\boxed{} of --solution-field")
    add("--solution-field", default="solution", help="a local file's worked solution column, read only for "
                                                     "its last \\boxed{} when the file has no answer column")
    add("--thinking", action=argparse.BooleanOptionalAction, default=True,
        help="Qwen3 thinking mode in the chat template (--no-thinking turns it off)")
    add("--temperature", type=float,
        help="sampling temperature; unset: 0.6 thinking, 0.7 non-thinking (Qwen3's recommendation)")
    add("--top-p", type=float, help="nucleus sampling threshold; unset: 0.95 thinking, 0.8 non-thinking")
    add("--top-k", type=int, help="sample among the k likeliest tokens (0 = off); unset: 20")
    add("--max-new-tokens", type=int, default=32768,
        help="longest response; one cut off here without an answer scores 0")
    add("--batch-size", type=int, default=16,
        help="sequences sampled at once; their KV cache is allocated up front for the whole "
             "--max-new-tokens: 3.5 GiB per 32k-token Qwen3-1.7B sequence (28 layers x 8 heads x 128 dims "
             "x keys and values x 2 bytes = 112 KiB a token), so 16 fit an 80 GB GPU")
    add("--output-dir",
        help="where settings.json, results.json and <benchmark>.jsonl go; unset: runs/eval/<model with / "
             "as _>, plus -no-thinking without thinking (e.g. runs/eval/Qwen_Qwen3-1.7B)")
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
        print(f"error: out of GPU memory: lower --batch-size (now {args.batch_size}) and run the same "
              "command again; finished samples are kept", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"interrupted: finished samples are in {args.output_dir}; run the same command to resume",
              file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()

"""Whole training step: lampo.py against TRL's GRPOTrainer (no vLLM), side by side, on CPU.

    python bench/bench_vs_trl.py                     # small model, the settings below
    python bench/bench_vs_trl.py --size tiny --steps 4   # quick look

Needs TRL (bench/requirements.txt) in an environment that also has lampo.py's requirements; nothing
reaches the hub. Target: lampo.py's median step time <= 0.8x TRL's.

Defaults: --size small, P = 4 prompts per step, G = 4, so 16 responses of exactly 128 new tokens
(prompts 145-200 tokens: the byte-level tokenizer spends one token per character), micro-batch 4
(4 micro-batches accumulated into one optimizer step), 8 steps per trainer with the first dropped,
2 torch threads, float32 on CPU.

What one "step" is, on both sides: sample G responses for each of the step's prompts (the whole
batch at once: TRL through model.generate, lampo through its own decode loop), score them, compute
whatever log-probs the trainer needs, and take ONE optimizer step (gradient accumulation over
micro-batches, clipping, AdamW).

Same on both sides (every setting, so nothing favours one):
  * model: one folder, built once by demo/tiny_qwen3.build_tiny_model into a temp dir, loaded by both
    through AutoModelForCausalLM.from_pretrained in float32 on CPU (TRL: bf16=False, fp16=False,
    use_cpu=True, model_init_kwargs dtype=float32). --size small (default): Qwen3 with hidden 256,
    4 layers, intermediate 512, 8 heads, 4 KV heads, head_dim 32, tied embeddings, the byte-level
    tokenizer's vocabulary (261 tokens) unless --vocab-size pads it; --size tiny: the tests' model.
  * prompts: the same PROMPTS_PER_STEP problems (PROBLEMS below), and only those, so every step of
    both runs processes exactly the same prompt tokens. lampo: a local .jsonl through --dataset;
    TRL: a datasets.Dataset with a conversational `prompt` column [{"role": "user", "content": ...}],
    whose content is lampo's own user message (problem + "\\n\\n" + lampo.MATH_INSTRUCTION), so the
    chat template yields identical token ids (checked below before timing).
  * group size G (lampo --group-size, TRL num_generations); prompts per step P (TRL: the
    generation batch is P*G completions: per_device_train_batch_size=micro, gradient_accumulation_steps
    = steps_per_generation = P*G/micro, num_iterations=1, so one generation batch = one optimizer step).
  * every response is exactly --max-new-tokens long. TRL: max_completion_length=M,
    generation_kwargs={"min_new_tokens": M} (end tokens are masked out until M). lampo has no such
    flag: this script monkeypatches lampo.end_token_ids (which train() asks for the tokens that end a
    response) to return none, so no sampled token ends a response; nothing else changes.
    The script checks that every response on both sides has exactly M tokens.
  * sampling: do_sample, temperature 1.0, top_p 1.0, top_k 0 (off; TRL's GRPOConfig default top_k is
    0 too), no repetition penalty, min_p off; all P*G sequences decoded as one batch (lampo
    gen_batch_size = P*G; TRL generation_batch_size = P*G).
  * reward: the same trivial function on both sides (cheap_reward: parity of the letter count), so
    reward time is negligible and the rewards are not all equal.
  * update: one optimizer step per generation batch (lampo mini_batches=1; TRL as above), same
    micro-batch size, plain torch AdamW (TRL optim="adamw_torch"; lampo: torch.optim.AdamW, not fused
    on CPU), lr 1e-6, weight decay 0, max_grad_norm 1.0, clip range 0.2 / 0.28 (TRL epsilon /
    epsilon_high), KL beta 0 on both (lampo kl_coef=0 and TRL beta=0.0 both skip loading a
    reference model), token-mean loss (TRL loss_type "dapo", its default; lampo's default), a constant
    learning rate (TRL lr_scheduler_type="constant", warmup 0; lampo warmup_steps=1, which is constant),
    advantage: lampo's own (--advantage lampo), TRL's group-normalised one (its default); both cost
    microseconds. seed 0 on both.
  * activation checkpointing on both, non-reentrant (lampo always enables it; TRL
    gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}).
  * no vLLM, no logging or saving inside the timed steps: lampo save_every huge (it saves once after
    its last step, outside every timed step), log_samples_every=0; TRL save_strategy="no",
    report_to="none", logging_steps huge, log_completions=False, disable_tqdm.
  * torch.set_num_threads(--threads) in both threads (one process for both), and torch.get_num_threads()
    recorded at every step end; the header prints the set of values seen.

Timing: one lampo run and one TRL run of --steps steps each, in the same process and interleaved
step by step: lampo's step 1, TRL's step 1, lampo's step 2, ... (lampo in the main thread, TRL in a
worker thread; at the end of each step a trainer hands over the turn and blocks, so only one trainer
computes at a time and changes in machine load hit both alike). The first --warmup steps of each run
are dropped; the medians of the rest are reported (pooled over --rounds repeated pairs of runs).
  * "step" column: the trainer's own step span. lampo: time_step from train()'s metrics rows (from
    picking the step's prompts through the optimizer step: sample (keeping the old log-probs),
    decode to text, score, pack, advantages, update). TRL: a TrainerCallback from on_step_begin to on_step_end, which
    spans all gradient-accumulation micro-steps including generation and scoring (inside the first
    micro-step's _prepare_inputs), clipping, optimizer and scheduler step.
  * "step-to-step" column: wall time from a trainer getting the turn back after its step k to the end
    of its step k+1, so it also holds whatever either trainer does between steps (lampo: metrics.jsonl
    append, tqdm; TRL: dataloader fetch, logging checks). "CPU s/step": the process CPU time over the
    same span (less sensitive to other processes on the machine; with 2 threads it counts both).
    Both are cross-checks; the verdict uses "step".
  * per-phase split of lampo from its metrics rows (time_generate: decoding, with the old log-probs;
    time_logprobs: packing the batch, plus the reference pass, which beta 0 skips; time_update;
    time_reward: scoring, in the main thread). For TRL the script wraps
    (times, does not change) GRPOTrainer._generate_single_turn (model.generate plus EOS masking) and
    _generate_and_score_completions (generation + scoring + advantages); "update" = step minus that.

Known differences that are part of what each trainer does, not settings:
  * Neither runs a separate old-policy log-prob pass. TRL, with num_iterations=1 and one optimizer
    step per generation, uses the current log-probs, detached, as pi_old. lampo keeps the log-prob
    of each token as it samples it (LamPO's s_i need pi_old before the update).
  * lampo prefills each distinct prompt once and copies its KV cache to the G rows of its group;
    HF generate (TRL) prefills all P*G rows. With these short responses the prompts are more than
    half of all tokens, so this matters more here than in a real run (prompts ~150 tokens,
    responses thousands).
  * TRL computes per-token entropies in its loss forward and gathers metrics; lampo computes clip
    fraction; both are small next to the model passes.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import functools
import gc
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch

import lampo
from demo.tiny_qwen3 import build_tiny_model

# Short competition-style problems; P of them are the whole dataset, so every step uses them all.
PROBLEMS = [
    "What is the value of $f(-2)+f(-1)+f(0)$ if $f(x)=\\frac{3x-2}{x-2}$? Express your answer as a common fraction.",
    "How many positive whole-number divisors does 196 have?",
    "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.",
    "If $x^2+y^2=1$, what is the largest possible value of $|x|+|y|$?",
    "The sum of two numbers is 25 and their difference is 11. What is the larger of the two numbers?",
    "What is the smallest positive perfect cube that can be written as the sum of three consecutive integers?",
    "Find the remainder when $2^{100}$ is divided by 7.",
    "Compute $\\dbinom{16}{5}$.",
]
SIZES = {
    "tiny": {},  # build_tiny_model's defaults: hidden 64, 2 layers (the tests' model)
    "small": dict(hidden_size=256, num_hidden_layers=4, intermediate_size=512, num_attention_heads=8,
                  num_key_value_heads=4, head_dim=32),
}
HUGE = 10 ** 9


def cheap_reward(text: str) -> float:
    """Same on both sides: O(len) and not constant, so advantages are not all zero."""
    return float(text.count("a") % 2)


def user_message(problem: str) -> str:
    """lampo.build_prompt's user content, so both trainers render the same chat-template prompt."""
    return f"{problem}\n\n{lampo.MATH_INSTRUCTION}"


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# -----------------------------------------------------------------------------
# Interleaving: the two trainers take turns, one step each. lampo runs in the main thread (train()
# installs a SIGINT handler, which only the main thread may), TRL in a worker thread; at the end of
# each step a trainer hands the turn over and blocks until it comes back, so exactly one trainer
# computes at any time and slow drifts in machine load hit both alike.

class Baton:
    def __init__(self, first: str):
        self.turn, self.done, self.cond = first, set(), threading.Condition()

    def wait(self, side: str):
        with self.cond:
            self.cond.wait_for(lambda: self.turn == side or self.done - {side})

    def pass_and_wait(self, side: str, other: str):
        with self.cond:
            self.turn = other
            self.cond.notify_all()
        self.wait(side)

    def finish(self, side: str, other: str):
        with self.cond:
            self.done.add(side)
            self.turn = other
            self.cond.notify_all()


class StepClock:
    """Wall and process CPU time from the moment a trainer (re)gains the turn to the end of its next step."""

    def __init__(self):
        self.resumed, self.spans, self.cpu, self.threads = None, [], [], []

    def resume(self):
        self.resumed = (time.perf_counter(), time.process_time())

    def step_end(self):
        if self.resumed is not None:
            self.spans.append(time.perf_counter() - self.resumed[0])
            self.cpu.append(time.process_time() - self.resumed[1])
        self.threads.append(torch.get_num_threads())


# -----------------------------------------------------------------------------
# lampo

def lampo_config(args, model_dir: str, data_file: str, work: Path, run_id: str):
    N = args.prompts_per_step * args.group_size
    return lampo.Config(
        model=model_dir, dataset=data_file, prompt_field="problem", solution_field="solution",
        answer_field="answer", output_dir=str(work / f"lampo-{run_id}"), steps=args.steps,
        prompts_per_step=args.prompts_per_step, group_size=args.group_size, max_new_tokens=args.max_new_tokens,
        temperature=1.0, top_p=1.0, gen_batch_size=N, advantage="lampo", kl_coef=0.0, mini_batches=1,
        micro_batch_size=args.micro_batch_size, lr=1e-6, warmup_steps=1, max_grad_norm=1.0,
        clip_low=0.2, clip_high=0.28, save_every=HUGE, log_samples_every=0, device="cpu", seed=0)


def run_lampo(cfg, baton: Baton) -> dict:
    M = cfg.max_new_tokens
    clock = StepClock()
    original_end_ids, original_append = lampo.end_token_ids, lampo.append_jsonl

    def no_end_ids(model, tokenizer):
        return ()                                          # nothing ends a response: all run to max_new_tokens

    def append_jsonl_hook(path, rows):
        if Path(path).name == "metrics.jsonl":            # called once per step, right after the step
            clock.step_end()
            baton.pass_and_wait("lampo", "TRL")
            clock.resume()
        return original_append(path, rows)

    def reward_fn(text, example):
        return {"reward": cheap_reward(text), "correct": 0.0, "rouge": 0.0}

    lampo.end_token_ids, lampo.append_jsonl = no_end_ids, append_jsonl_hook
    try:
        rows = lampo.train(cfg, reward_fn=reward_fn)
    finally:
        lampo.end_token_ids, lampo.append_jsonl = original_end_ids, original_append
        baton.finish("lampo", "TRL")
    for row in rows:
        if row["response_len_mean"] != M or row["truncated_frac"] != 1.0:
            raise RuntimeError(f"lampo step {row['step']}: responses are not all {M} tokens: {row}")
    return {
        "step": [r["time_step"] for r in rows],
        "step_to_step": clock.spans,                        # entry k: end of step k+1 minus resume after step k
        "cpu_step_to_step": clock.cpu,
        "generate": [r["time_generate"] for r in rows],
        "score": [r["time_reward"] for r in rows],
        "logprobs": [r["time_logprobs"] for r in rows],
        "update": [r["time_update"] for r in rows],
        "threads": clock.threads,
    }


# -----------------------------------------------------------------------------
# TRL

def make_trl(args, model_dir: str, work: Path, run_id: str, baton: Baton):
    """A GRPOTrainer with the benchmark's settings and timers, and a function collecting its timings."""
    import datasets
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    M, N, micro = args.max_new_tokens, args.prompts_per_step * args.group_size, args.micro_batch_size
    dataset = datasets.Dataset.from_list(
        [{"prompt": [{"role": "user", "content": user_message(p)}]} for p in PROBLEMS[:args.prompts_per_step]])
    lengths = []

    def trl_reward(completions, completion_ids, **kwargs):
        lengths.extend(len(ids) for ids in completion_ids)
        return [cheap_reward(c[0]["content"]) for c in completions]

    config = GRPOConfig(
        output_dir=str(work / f"trl-{run_id}"), max_steps=args.steps, seed=0,
        per_device_train_batch_size=micro, gradient_accumulation_steps=N // micro,
        steps_per_generation=N // micro, num_iterations=1, num_generations=args.group_size,
        max_completion_length=M, generation_kwargs={"min_new_tokens": M},
        temperature=1.0, top_p=1.0, top_k=0, min_p=None, repetition_penalty=1.0, use_vllm=False,
        beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type="dapo",
        learning_rate=1e-6, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
        lr_scheduler_type="constant", warmup_steps=0,
        gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False},
        bf16=False, fp16=False, use_cpu=True, model_init_kwargs={"dtype": torch.float32},
        report_to="none", save_strategy="no", logging_steps=HUGE, log_completions=False, disable_tqdm=True,
        dataloader_num_workers=0)

    clock, marks = StepClock(), {"begin": [], "end": []}

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args_, state, control, **kwargs):
            clock.resume()

        def on_step_begin(self, args_, state, control, **kwargs):
            marks["begin"].append(time.perf_counter())

        def on_step_end(self, args_, state, control, **kwargs):
            marks["end"].append(time.perf_counter())
            clock.step_end()
            baton.pass_and_wait("TRL", "lampo")
            clock.resume()

    trainer = GRPOTrainer(model=model_dir, reward_funcs=trl_reward, args=config, train_dataset=dataset,
                          callbacks=[StepTimer()])
    trainer.remove_callback(PrinterCallback)       # disable_tqdm swaps the bar for a printer of the final log
    phases = {"_generate_single_turn": [], "_generate_and_score_completions": []}
    for name, spans in phases.items():             # time the calls; behaviour unchanged
        method = getattr(trainer, name)

        @functools.wraps(method)
        def timed(*a, _method=method, _spans=spans, **k):
            t = time.perf_counter()
            try:
                return _method(*a, **k)
            finally:
                _spans.append(time.perf_counter() - t)
        setattr(trainer, name, timed)

    model = trainer.model
    assert next(model.parameters()).dtype == torch.float32 and next(model.parameters()).device.type == "cpu"
    assert trainer.ref_model is None and trainer.beta == 0.0 and not trainer.use_vllm
    assert trainer.generation_config.min_new_tokens == M and trainer.generation_config.top_k in (0, None)
    info = {}

    def results() -> dict:
        if len(lengths) != args.steps * N or set(lengths) != {M}:
            raise RuntimeError(f"TRL: responses are not all {M} tokens: {sorted(set(lengths))}, {len(lengths)} total")
        if len(marks["begin"]) != args.steps or len(phases["_generate_single_turn"]) != args.steps:
            raise RuntimeError(f"TRL: {len(marks['begin'])} steps / {len(phases['_generate_single_turn'])} "
                               f"generations, expected {args.steps} of each (one generation per optimizer step)")
        opt = trainer.optimizer
        info["optimizer"] = type(getattr(opt, "optimizer", opt)).__name__
        # the decoder layers' own flag, as the training forward saw it (TRL turns it off only around generate)
        info["grad_ckpt"] = any(getattr(m, "gradient_checkpointing", False) for m in trainer.model.modules())
        step = [e - b for b, e in zip(marks["begin"], marks["end"])]
        rollout = phases["_generate_and_score_completions"]
        return {"step": step, "step_to_step": clock.spans[1:], "cpu_step_to_step": clock.cpu[1:],
                "generate": phases["_generate_single_turn"], "rollout": rollout,
                "update": [s - r for s, r in zip(step, rollout)], "threads": clock.threads, **info}

    return trainer, results


def run_pair(args, model_dir: str, data_file: str, work: Path, run_id: str) -> dict:
    """One lampo run and one TRL run of args.steps steps each, interleaved step by step (lampo first)."""
    baton = Baton("lampo")
    trainer, trl_results = make_trl(args, model_dir, work, run_id, baton)
    cfg = lampo_config(args, model_dir, data_file, work, run_id)
    errors = []

    def trl_worker():
        torch.set_num_threads(args.threads)          # intra-op threads are set per thread: same as lampo's
        try:
            baton.wait("TRL")
            trainer.train()
        except BaseException as e:                    # re-raised in the main thread
            errors.append(e)
        finally:
            baton.finish("TRL", "lampo")

    worker = threading.Thread(target=trl_worker, name="trl", daemon=True)
    worker.start()
    lampo_out = run_lampo(cfg, baton)
    worker.join()
    if errors:
        raise errors[0]
    out = {"lampo": lampo_out, "TRL": trl_results()}
    del trainer
    gc.collect()
    return out


# -----------------------------------------------------------------------------

def check_same_prompts(model_dir: str, P: int) -> int:
    """lampo's prompt token ids == the ids TRL's chat-template path gives; returns the longest prompt."""
    tokenizer = lampo.load_tokenizer(model_dir)
    longest = 0
    for problem in PROBLEMS[:P]:
        ours = lampo.encode_prompts(tokenizer, [lampo.build_prompt(tokenizer, problem)], 0, HUGE)[0]
        theirs = tokenizer.apply_chat_template([{"role": "user", "content": user_message(problem)}],
                                               add_generation_prompt=True, tokenize=True, return_dict=True)
        theirs = list(theirs["input_ids"])
        if ours != theirs:
            raise RuntimeError(f"prompt tokens differ for {problem!r}")
        longest = max(longest, len(ours))
    return longest


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--vocab-size", type=int, default=None, help="pad the vocabulary (default: tokenizer's)")
    parser.add_argument("--prompts-per-step", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--micro-batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="steps per run")
    parser.add_argument("--warmup", type=int, default=1, help="leading steps of each run left out")
    parser.add_argument("--rounds", type=int, default=1, help="pairs of interleaved runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.8)
    parser.add_argument("--json", help="also write the raw timings here")
    parser.add_argument("--verbose", action="store_true", help="keep transformers/TRL warnings")
    args = parser.parse_args()
    P, G, micro = args.prompts_per_step, args.group_size, args.micro_batch_size
    if not 1 <= P <= len(PROBLEMS):
        parser.error(f"--prompts-per-step must be 1..{len(PROBLEMS)}")
    if (P * G) % micro:
        parser.error("prompts-per-step * group-size must be a multiple of --micro-batch-size")
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")

    import transformers
    import trl
    if not args.verbose:
        transformers.logging.set_verbosity_error()
        warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="bench-vs-trl-") as tmp:
        work = Path(tmp)
        model_dir = build_tiny_model(work / "model", vocab_size=args.vocab_size, **SIZES[args.size])
        n_params = sum(p.numel() for p in lampo.load_model(model_dir, torch.device("cpu"), torch.float32).parameters())
        rows = [{"problem": p, "solution": "\\boxed{0}", "answer": "0"} for p in PROBLEMS[:P]]
        data_file = work / "prompts.jsonl"
        data_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
        longest_prompt = check_same_prompts(model_dir, P)

        runs = {"lampo": [], "TRL": []}
        for r in range(args.rounds):
            print(f"[bench] round {r + 1}/{args.rounds}: lampo and TRL, {args.steps} steps each, interleaved",
                  file=sys.stderr, flush=True)
            pair = run_pair(args, model_dir, str(data_file), work, str(r))
            for side in runs:
                runs[side].append(pair[side])
            gc.collect()

    def pooled(side, key, skip=args.warmup):
        # step_to_step[i] ends at step i+2, so dropping warm-up steps drops warmup-1 of its entries
        skip = max(0, skip - 1) if key.endswith("step_to_step") else skip
        return [x for run in runs[side] for x in run.get(key, [])[skip:]]

    med = {side: {k: median(pooled(side, k)) for k in ("step", "step_to_step", "cpu_step_to_step", "generate", "score",
                                                         "logprobs", "update", "rollout")} for side in runs}
    threads = {t for side in runs for run in runs[side] for t in run["threads"]}
    n_meas = len(pooled("lampo", "step"))
    ratio = med["lampo"]["step"] / med["TRL"]["step"]
    ratio_s2s = med["lampo"]["step_to_step"] / med["TRL"]["step_to_step"]
    trl_opt, trl_ckpt = runs["TRL"][0]["optimizer"], runs["TRL"][0]["grad_ckpt"]
    # lampo recomputes every layer in the backward pass; without the same, TRL's update is cheaper
    # by that recompute alone, and the ratio would measure the setting, not the trainers.
    if not trl_ckpt:
        sys.exit("bench: TRL ran without per-layer activation checkpointing, unlike lampo: not comparable")

    size = SIZES[args.size] or {"hidden_size": 64, "num_hidden_layers": 2}
    print(f"\nlampo.py vs TRL {trl.__version__} GRPOTrainer: one whole RL step, CPU float32, "
          f"torch {torch.__version__.split('+')[0]} ({sorted(threads)} threads), transformers {transformers.__version__}, "
          f"Python {platform.python_version()}")
    print(f"model: {args.size} random Qwen3 (hidden {size['hidden_size']}, {size['num_hidden_layers']} layers, "
          f"{n_params / 1e6:.2f}M params, vocab {args.vocab_size or 'tokenizer'}); "
          f"{P} prompts x G={G} = {P * G} responses x {args.max_new_tokens} new tokens (forced), "
          f"prompts up to {longest_prompt} tokens; micro-batch {micro}; 1 optimizer step/step; beta 0; "
          f"TRL optimizer {trl_opt}, TRL grad-ckpt {trl_ckpt}")
    print(f"timing: median over {n_meas} steps per side ({args.rounds} run(s) x {args.steps} steps, "
          f"first {args.warmup} of each run dropped; the two runs interleaved step by step)\n")
    header = (f"{'':8}{'step s':>9}{'step-to-step s':>16}{'CPU s/step':>12}{'generate s':>12}{'logp pass s':>12}"
              f"{'update s':>10}{'score s':>9}")
    print(header)
    print("-" * len(header))
    for side in ("lampo", "TRL"):
        m = med[side]
        logp = f"{m['logprobs']:12.3f}" if side == "lampo" else f"{'-':>12}"
        score = f"{m['score']:9.4f}" if side == "lampo" else f"{'-':>9}"
        update = m["update"]
        print(f"{side:8}{m['step']:9.3f}{m['step_to_step']:16.3f}{m['cpu_step_to_step']:12.3f}{m['generate']:12.3f}"
              f"{logp}{update:10.3f}{score}")
    print("-" * len(header))
    verdict = "PASS" if ratio <= args.target else "FAIL"
    ratio_cpu = med["lampo"]["cpu_step_to_step"] / med["TRL"]["cpu_step_to_step"]
    print(f"ratio lampo/TRL: {ratio:.3f} (step), {ratio_s2s:.3f} (step-to-step), {ratio_cpu:.3f} (CPU time); "
          f"target <= {args.target}: {verdict}")
    print("lampo split of its step (median): " + ", ".join(
        f"{k} {med['lampo'][k] / med['lampo']['step']:.0%}" for k in ("generate", "logprobs", "update")))
    print(f"TRL split of its step (median): generate {med['TRL']['generate'] / med['TRL']['step']:.0%}, "
          f"rest of rollout (scoring, advantages) {(med['TRL']['rollout'] - med['TRL']['generate']) / med['TRL']['step']:.0%}, "
          f"loss forward/backward + optimizer {med['TRL']['update'] / med['TRL']['step']:.0%}")
    print("per-step 'step' times (s): " + "; ".join(
        f"{side} run {i + 1}: " + " ".join(f"{x:.2f}" for x in run["step"]) for side in runs
        for i, run in enumerate(runs[side])))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs, "median": med,
                                               "ratio": ratio, "ratio_step_to_step": ratio_s2s,
                                               "trl": trl.__version__}, indent=1))


if __name__ == "__main__":
    main()

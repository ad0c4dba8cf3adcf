"""Whole training step: lampo.py against TRL's GRPOTrainer (no vLLM), side by side, on CPU.

    python bench/bench_vs_trl.py                     # one cell: small model, the settings below
    python bench/bench_vs_trl.py --size tiny --steps 4   # quick look
    python bench/bench_vs_trl.py --matrix            # the matrix below, ~10-25 minutes on 2 cores

Needs TRL (bench/requirements.txt) in an environment that also has lampo.py's requirements; nothing
reaches the hub. Target: lampo.py's median step time <= 0.8x TRL's, in every cell of the matrix.

Defaults of one cell: --size small, P = 4 prompts per step, G = 4, so 16 responses of exactly 128 new
tokens (prompts 145-200 tokens: the byte-level tokenizer spends one token per character), micro-batch
4 (4 micro-batches accumulated into one optimizer step), 8 steps per trainer with the first dropped,
2 torch threads, float32 on CPU.

--matrix: the cells are model size {tiny, small} x new tokens {64, 512} x micro-batch {4, the whole
batch}, with P = 4 and G = 8 (32 responses per step, so the whole batch is micro-batch 32) and 6
steps per trainer and cell, the first dropped, unless the flags say otherwise. Each cell is one
interleaved pair of runs as below; it prints lampo/TRL ratios of sampling, update and whole step,
then the settings of both trainers side by side (and whether they are equal), then the worst cell.

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
    learning rate (TRL lr_scheduler_type="constant", warmup 0; lampo warmup_updates=1, which is constant),
    advantage: lampo's own (--advantage lampo), TRL's group-normalised one (its default); both cost
    microseconds. seed 0 on both.
  * activation checkpointing on both, non-reentrant (lampo always enables it; TRL
    gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}).
  * no vLLM, no logging or saving inside the timed steps: lampo save_every huge (it saves once after
    its last step, outside every timed step), log_samples_every=0; TRL save_strategy="no",
    report_to="none", logging_steps huge, log_completions=False, disable_tqdm.
  * torch.set_num_threads(--threads) in both processes, and torch.get_num_threads() recorded at every
    step end; the header prints the set of values seen.

Timing: one lampo run and one TRL run of --steps steps each, interleaved step by step: lampo's step
1, TRL's step 1, lampo's step 2, ... (lampo in this process, TRL in a spawned child process, which
builds its trainer before lampo's first step; at the end of each step a trainer hands over the turn
and blocks, so only one trainer computes at a time and changes in machine load hit both alike). Not
two threads of one process: see the comment above Baton. The first --warmup steps of each run are
dropped; the medians of the rest are reported (pooled over --rounds repeated pairs of runs).
  * "step" column: the trainer's own step span. lampo: time_step from train()'s metrics rows (from
    picking the step's prompts through the optimizer step: sample (keeping the old log-probs),
    decode to text, score, pack, advantages, update). TRL: a TrainerCallback from on_step_begin to
    on_step_end, which spans all gradient-accumulation micro-steps including generation and scoring
    (inside the first micro-step's _prepare_inputs), clipping, optimizer and scheduler step.
  * "step-to-step" column: wall time from a trainer getting the turn back after its step k to the end
    of its step k+1, so it also holds whatever either trainer does between steps (lampo: metrics.jsonl
    append, tqdm; TRL: dataloader fetch, logging checks). "CPU s/step": the trainer's process CPU time
    over the same span (less sensitive to other processes on the machine; it counts every thread).
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
import multiprocessing
import platform
import queue
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch

import lampo
from demo.tiny_qwen3 import build_tiny_model

# Short competition-style problems; P of them are the whole dataset, so every step uses them all.
PROBLEMS = [
    "What is the value of $f(-2)+f(-1)+f(0)$ if $f(x)=\\frac{3x-2}{x-2}$? "
    "Express your answer as a common fraction.",
    "How many positive whole-number divisors does 196 have?",
    "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.",
    "If $x^2+y^2=1$, what is the largest possible value of $|x|+|y|$?",
    "The sum of two numbers is 25 and their difference is 11. What is the larger of the two numbers?",
    "What is the smallest positive perfect cube that can be written as the sum of three "
    "consecutive integers?",
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
# Interleaving: the two trainers take turns, one step each. lampo runs in this process, TRL in a
# spawned child; at the end of each step a trainer hands the turn over and blocks until it comes
# back, so exactly one trainer computes at any time and slow drifts in machine load hit both alike.
# Two processes, not two threads: each thread that runs torch ops owns an OpenMP thread team, and
# with more pooled threads than cores libgomp stops spin-waiting and wakes its workers through the
# kernel at every parallel region, which slowed both trainers' steps (bench/README.md has figures).

SIDES = ("lampo", "TRL")
SPAWN = multiprocessing.get_context("spawn")


class Baton:
    """Whose turn it is, shared between the two processes."""

    def __init__(self, first: str):
        self.cond = SPAWN.Condition()
        self.turn = SPAWN.RawValue("i", SIDES.index(first))
        self.done = SPAWN.RawArray("i", len(SIDES))

    def _is_turn_of(self, side: str) -> bool:
        other_done = any(self.done[i] for i, name in enumerate(SIDES) if name != side)
        return self.turn.value == SIDES.index(side) or other_done

    def wait(self, side: str):
        with self.cond:
            self.cond.wait_for(lambda: self._is_turn_of(side))

    def pass_and_wait(self, side: str, other: str):
        with self.cond:
            self.turn.value = SIDES.index(other)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self._is_turn_of(side))

    def finish(self, side: str, other: str):
        with self.cond:
            self.done[SIDES.index(side)] = 1
            self.turn.value = SIDES.index(other)
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
        prompts_per_step=args.prompts_per_step, group_size=args.group_size,
        max_new_tokens=args.max_new_tokens,
        temperature=1.0, top_p=1.0, gen_batch_size=N, advantage="lampo", kl_coef=0.0, mini_batches=1,
        micro_batch_size=args.micro_batch_size, lr=1e-6, warmup_updates=1, max_grad_norm=1.0,
        clip_low=0.2, clip_high=0.28, save_every=HUGE, log_samples_every=0, device="cpu", seed=0)


def run_lampo(cfg, baton: Baton) -> dict:
    baton.wait("lampo")                                # TRL builds its trainer first
    M = cfg.max_new_tokens
    clock, info = StepClock(), {}
    original_end_ids, original_append = lampo.end_token_ids, lampo.append_jsonl
    original_load_models, original_make_optimizer = lampo.load_models, lampo.make_optimizer

    def no_end_ids(model, tokenizer):
        return ()                                  # nothing ends a response: all run to max_new_tokens

    def load_models_seen(*a, **k):                         # records what train() set up; changes nothing
        models = original_load_models(*a, **k)
        info["grad_ckpt"] = any(getattr(m, "gradient_checkpointing", False) for m in models[1].modules())
        return models

    def make_optimizer_seen(*a, **k):
        optimizer, scheduler = original_make_optimizer(*a, **k)
        info["optimizer"] = type(optimizer).__name__
        info["weight_decay"] = max(g["weight_decay"] for g in optimizer.param_groups)
        return optimizer, scheduler

    def append_jsonl_hook(path, rows):
        if Path(path).name == "metrics.jsonl":            # called once per step, right after the step
            clock.step_end()
            baton.pass_and_wait("lampo", "TRL")
            clock.resume()
        return original_append(path, rows)

    def reward_fn(text, example):
        return {"reward": cheap_reward(text), "correct": 0.0, "rouge": 0.0}

    lampo.end_token_ids, lampo.append_jsonl = no_end_ids, append_jsonl_hook
    lampo.load_models, lampo.make_optimizer = load_models_seen, make_optimizer_seen
    try:
        rows = lampo.train(cfg, reward_fn=reward_fn)
    finally:
        lampo.end_token_ids, lampo.append_jsonl = original_end_ids, original_append
        lampo.load_models, lampo.make_optimizer = original_load_models, original_make_optimizer
        baton.finish("lampo", "TRL")
    for row in rows:
        if row["response_len_mean"] != M or row["truncated_frac"] != 1.0:
            raise RuntimeError(f"lampo step {row['step']}: responses are not all {M} tokens: {row}")
    return {
        "step": [r["time_step"] for r in rows],
        "step_to_step": clock.spans,               # entry k: end of step k+1 minus resume after step k
        "cpu_step_to_step": clock.cpu,
        "generate": [r["time_generate"] for r in rows],
        "score": [r["time_reward"] for r in rows],
        "logprobs": [r["time_logprobs"] for r in rows],
        "update": [r["time_update"] for r in rows],
        "threads": clock.threads,
        **info,
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
        [{"prompt": [{"role": "user", "content": user_message(p)}]}
         for p in PROBLEMS[:args.prompts_per_step]])
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
            raise RuntimeError(f"TRL: responses are not all {M} tokens: {sorted(set(lengths))}, "
                               f"{len(lengths)} total")
        if len(marks["begin"]) != args.steps or len(phases["_generate_single_turn"]) != args.steps:
            raise RuntimeError(f"TRL: {len(marks['begin'])} steps / {len(phases['_generate_single_turn'])} "
                               f"generations, expected {args.steps} of each (one generation per "
                               "optimizer step)")
        opt = trainer.optimizer
        info["optimizer"] = type(getattr(opt, "optimizer", opt)).__name__
        info["weight_decay"] = max(g["weight_decay"] for g in opt.param_groups)
        # the decoder layers' own flag, as the training forward saw it (TRL turns it off only around generate)
        info["grad_ckpt"] = any(getattr(m, "gradient_checkpointing", False) for m in trainer.model.modules())
        step = [e - b for b, e in zip(marks["begin"], marks["end"])]
        rollout = phases["_generate_and_score_completions"]
        return {"step": step, "step_to_step": clock.spans[1:], "cpu_step_to_step": clock.cpu[1:],
                "generate": phases["_generate_single_turn"], "rollout": rollout,
                "update": [s - r for s, r in zip(step, rollout)], "threads": clock.threads, **info}

    return trainer, results


TRL_SETTINGS = ("num_generations", "generation_batch_size", "per_device_train_batch_size",
                "gradient_accumulation_steps", "num_iterations", "steps_per_generation",
                "max_completion_length", "temperature", "top_p", "epsilon", "epsilon_high", "beta",
                "loss_type", "learning_rate", "max_grad_norm", "seed")


def trl_process(args, model_dir: str, work: Path, run_id: str, baton: Baton, results) -> None:
    """TRL's run in its own process: builds the trainer, hands lampo the first step, trains, and puts
    ("ok", timings, settings) or ("error", traceback) on `results`."""
    torch.set_num_threads(args.threads)
    quiet(args.verbose)
    try:
        trainer, trl_results = make_trl(args, model_dir, work, run_id, baton)
        baton.pass_and_wait("TRL", "lampo")
        trainer.train()
        results.put(("ok", trl_results(), {name: getattr(trainer.args, name) for name in TRL_SETTINGS}))
    except BaseException:
        results.put(("error", traceback.format_exc()))
    finally:
        baton.finish("TRL", "lampo")


def run_pair(args, model_dir: str, data_file: str, work: Path, run_id: str) -> dict:
    """One lampo run and one TRL run of args.steps steps each, interleaved step by step (lampo first)."""
    baton, results = Baton("TRL"), SPAWN.Queue()
    child = SPAWN.Process(target=trl_process, args=(args, model_dir, work, run_id, baton, results),
                          daemon=True)
    child.start()
    cfg = lampo_config(args, model_dir, data_file, work, run_id)
    lampo_out = run_lampo(cfg, baton)
    while True:
        try:
            status, *trl = results.get(timeout=5)
            break
        except queue.Empty:
            if not child.is_alive():
                raise RuntimeError(f"TRL's process died (exit code {child.exitcode}) without a "
                                   "result") from None
    child.join()
    if status == "error":
        raise RuntimeError(f"TRL's process failed:\n{trl[0]}")
    trl_out, trl_args = trl
    return {"lampo": lampo_out, "TRL": trl_out,
            "settings": settings_beside(cfg, argparse.Namespace(**trl_args), lampo_out, trl_out)}


def settings_beside(cfg, trl_args, lampo_out: dict, trl_out: dict) -> list[tuple[str, object, object]]:
    """(knob, lampo's value, TRL's value) for each setting both trainers have, read from their configs
    (and, for checkpointing and the optimizer, from what each trainer actually built)."""
    N = cfg.prompts_per_step * cfg.group_size
    generations = trl_args.num_iterations * trl_args.steps_per_generation
    optimizer_steps = generations // trl_args.gradient_accumulation_steps
    return [
        ("responses per prompt (G)", cfg.group_size, trl_args.num_generations),
        ("responses sampled as one batch", cfg.gen_batch_size, trl_args.generation_batch_size),
        ("micro-batch (rows per forward/backward)", cfg.micro_batch_size,
         trl_args.per_device_train_batch_size),
        ("micro-batches per optimizer step", N // cfg.micro_batch_size, trl_args.gradient_accumulation_steps),
        ("optimizer steps per generation batch", cfg.mini_batches, optimizer_steps),
        ("new tokens (every response forced to it)", cfg.max_new_tokens, trl_args.max_completion_length),
        ("temperature", cfg.temperature, trl_args.temperature),
        ("top-p", cfg.top_p, trl_args.top_p),
        ("clip range low, high", (cfg.clip_low, cfg.clip_high), (trl_args.epsilon, trl_args.epsilon_high)),
        ("KL beta", cfg.kl_coef, trl_args.beta),
        ("loss weights", cfg.loss_agg, {"dapo": "token-mean"}.get(trl_args.loss_type, trl_args.loss_type)),
        ("optimizer", lampo_out["optimizer"], trl_out["optimizer"]),
        ("learning rate", cfg.lr, trl_args.learning_rate),
        ("weight decay", lampo_out["weight_decay"], trl_out["weight_decay"]),
        ("max grad norm", cfg.max_grad_norm, trl_args.max_grad_norm),
        ("per-layer activation checkpointing", lampo_out["grad_ckpt"], trl_out["grad_ckpt"]),
        ("seed", cfg.seed, trl_args.seed),
    ]


def print_settings(settings: list[tuple[str, object, object]]) -> None:
    width = max(len(knob) for knob, _, _ in settings)
    print(f"{'setting':{width}}  {'lampo':>14}  {'TRL':>14}  same")
    for knob, ours, theirs in settings:
        print(f"{knob:{width}}  {str(ours):>14}  {str(theirs):>14}  {'yes' if ours == theirs else 'NO'}")
    print("Not settings but what each trainer does: lampo prefills each prompt once per group, TRL (HF "
          "generate) once per row;\nlampo trims each micro-batch to its rows' longest prompt, TRL pads "
          "every row to the generation batch's longest prompt;\nlampo's output layer runs in checkpointed "
          f"chunks of {lampo.LOGIT_CHUNK_TOKENS} positions x rows over the response, TRL's fused head (its "
          "own autograd function, recomputed in backward) over every position.")


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


def prepare(work: Path, size: str, vocab_size: int | None, P: int) -> dict:
    """The model folder and prompt file both trainers read, and facts about them for the header."""
    model_dir = build_tiny_model(work / f"model-{size}", vocab_size=vocab_size, **SIZES[size])
    model = lampo.load_model(model_dir, torch.device("cpu"), torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    rows = [{"problem": p, "solution": "\\boxed{0}", "answer": "0"} for p in PROBLEMS[:P]]
    data_file = work / f"prompts-{size}.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"model_dir": model_dir, "data_file": str(data_file), "n_params": n_params,
            "longest_prompt": check_same_prompts(model_dir, P)}


def cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds used by the whole machine, stolen by its host included; CPU seconds used by this
    process and its finished children), or None where /proc/stat is missing."""
    try:
        cpu_line = Path("/proc/stat").read_text().split()[1:9]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, cpu_line)
    own = os.times()
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    return busy, own.user + own.system + own.children_user + own.children_system


def measure(args, setup: dict, work: Path, label: str) -> dict:
    """args.rounds interleaved pairs of runs; the raw timings of each side, run by run, and the cores
    other processes kept busy meanwhile (on average; both trainers' steps slow down under them)."""
    runs = {"lampo": [], "TRL": []}
    start, cpu_start = time.perf_counter(), cpu_seconds()
    for r in range(args.rounds):
        print(f"[bench] {label}round {r + 1}/{args.rounds}: lampo and TRL, {args.steps} steps each, "
              "interleaved", file=sys.stderr, flush=True)
        pair = run_pair(args, setup["model_dir"], setup["data_file"], work, f"{label}{r}".replace(" ", "-"))
        for side in runs:
            runs[side].append(pair[side])
        runs["settings"] = pair["settings"]
        gc.collect()
    cpu_end = cpu_seconds()
    if cpu_start and cpu_end:
        others = (cpu_end[0] - cpu_start[0]) - (cpu_end[1] - cpu_start[1])
        runs["others_cores"] = max(0.0, others) / (time.perf_counter() - start)
    # lampo recomputes every layer in the backward pass; without the same, TRL's update is cheaper
    # by that recompute alone, and the ratio would measure the setting, not the trainers.
    if not runs["TRL"][0]["grad_ckpt"]:
        sys.exit("bench: TRL ran without per-layer activation checkpointing, unlike lampo: not comparable")
    return runs


PHASES = ("step", "step_to_step", "cpu_step_to_step", "generate", "score", "logprobs", "update", "rollout")


def medians(runs: dict, warmup: int) -> dict:
    """Per side and phase, the median over every run's steps after the first `warmup`."""
    def pooled(side, key):
        # step_to_step[i] ends at step i+2, so dropping warm-up steps drops warmup-1 of its entries
        skip = max(0, warmup - 1) if key.endswith("step_to_step") else warmup
        return [x for run in runs[side] for x in run.get(key, [])[skip:]]

    return {side: {key: median(pooled(side, key)) for key in PHASES} for side in ("lampo", "TRL")}


def ratios(med: dict) -> dict:
    """lampo / TRL for sampling (decode loop vs HF generate), the update, and the whole step."""
    return {name: med["lampo"][key] / med["TRL"][key]
            for name, key in (("sampling", "generate"), ("update", "update"), ("step", "step"))}


# -----------------------------------------------------------------------------
# The matrix: every cell is one interleaved pair of runs, as in single mode.

MATRIX_SIZES = ("tiny", "small")
MATRIX_NEW_TOKENS = (64, 512)


def matrix_cells(batch: int) -> list[dict]:
    """Size x new tokens x micro-batch {4, the whole batch of `batch` responses}."""
    return [{"size": size, "max_new_tokens": tokens, "micro_batch_size": micro}
            for size in MATRIX_SIZES for tokens in MATRIX_NEW_TOKENS for micro in sorted({4, batch})]


def worst_cell(cells: list[dict]) -> dict:
    """The cell where lampo's whole step is slowest relative to TRL's."""
    return max(cells, key=lambda cell: cell["ratios"]["step"])


def cell_name(cell: dict) -> str:
    return f"{cell['size']}, {cell['max_new_tokens']} new tokens, micro-batch {cell['micro_batch_size']}"


def run_matrix(args, work: Path) -> list[dict]:
    P, G = args.prompts_per_step, args.group_size
    setups, done = {}, []
    for cell in matrix_cells(P * G):
        if cell["size"] not in setups:
            setups[cell["size"]] = prepare(work, cell["size"], args.vocab_size, P)
        cell_args = argparse.Namespace(**{**vars(args), **cell})
        runs = measure(cell_args, setups[cell["size"]], work, f"{cell_name(cell)}: ")
        med = medians(runs, args.warmup)
        done.append({**cell, "median": med, "ratios": ratios(med), "runs": runs})
        print(f"[bench] {cell_name(cell)}: step ratio {done[-1]['ratios']['step']:.3f}",
              file=sys.stderr, flush=True)
    return done


def others_cores(runs: dict) -> str:
    return f"{runs['others_cores']:.2f}" if "others_cores" in runs else "-"


def print_matrix(args, cells: list[dict]) -> None:
    print(f"timing: per cell, medians over {args.rounds * (args.steps - args.warmup)} steps per side "
          f"({args.rounds} run(s) x {args.steps} steps, first {args.warmup} of each dropped; interleaved)\n")
    header = (f"{'size':6}{'new tok':>8}{'micro':>6}{'lampo step s':>13}{'TRL step s':>11}"
              f"{'sampling':>10}{'update':>8}{'step':>7}  {'<= ' + str(args.target):9}{'others':>7}")
    print(header)
    print("-" * len(header))
    for cell in cells:
        r, m = cell["ratios"], cell["median"]
        verdict = "met" if r["step"] <= args.target else "MISSED"
        print(f"{cell['size']:6}{cell['max_new_tokens']:8}{cell['micro_batch_size']:6}"
              f"{m['lampo']['step']:13.3f}{m['TRL']['step']:11.3f}"
              f"{r['sampling']:10.3f}{r['update']:8.3f}{r['step']:7.3f}  {verdict:9}"
              f"{others_cores(cell['runs']):>7}")
    print("-" * len(header))
    print("sampling, update, step: lampo's median / TRL's; others: cores other processes kept busy during "
          "the cell, on average")
    worst = worst_cell(cells)
    print(f"worst cell: {cell_name(worst)}: step {worst['ratios']['step']:.3f}x TRL's "
          f"(sampling {worst['ratios']['sampling']:.3f}x, update {worst['ratios']['update']:.3f}x); "
          f"{sum(c['ratios']['step'] <= args.target for c in cells)} of {len(cells)} cells <= {args.target}")


# -----------------------------------------------------------------------------

def print_single(args, setup: dict, runs: dict) -> None:
    P, G, micro = args.prompts_per_step, args.group_size, args.micro_batch_size
    med = medians(runs, args.warmup)
    r = ratios(med)
    n_meas = sum(len(run["step"][args.warmup:]) for run in runs["lampo"])
    ratio_s2s = med["lampo"]["step_to_step"] / med["TRL"]["step_to_step"]
    size = SIZES[args.size] or {"hidden_size": 64, "num_hidden_layers": 2}
    print(f"model: {args.size} random Qwen3 (hidden {size['hidden_size']}, "
          f"{size['num_hidden_layers']} layers, {setup['n_params'] / 1e6:.2f}M params, "
          f"vocab {args.vocab_size or 'tokenizer'}); "
          f"{P} prompts x G={G} = {P * G} responses x {args.max_new_tokens} new tokens (forced), "
          f"prompts up to {setup['longest_prompt']} tokens; micro-batch {micro}; 1 optimizer step/step; "
          "beta 0")
    print(f"timing: median over {n_meas} steps per side ({args.rounds} run(s) x {args.steps} steps, "
          f"first {args.warmup} of each run dropped; the two runs interleaved step by step); "
          f"other processes kept {others_cores(runs)} cores busy meanwhile, on average\n")
    header = (f"{'':8}{'step s':>9}{'step-to-step s':>16}{'CPU s/step':>12}{'generate s':>12}"
              f"{'logp pass s':>12}{'update s':>10}{'score s':>9}")
    print(header)
    print("-" * len(header))
    for side in ("lampo", "TRL"):
        m = med[side]
        logp = f"{m['logprobs']:12.3f}" if side == "lampo" else f"{'-':>12}"
        score = f"{m['score']:9.4f}" if side == "lampo" else f"{'-':>9}"
        print(f"{side:8}{m['step']:9.3f}{m['step_to_step']:16.3f}{m['cpu_step_to_step']:12.3f}"
              f"{m['generate']:12.3f}{logp}{m['update']:10.3f}{score}")
    print("-" * len(header))
    verdict = "PASS" if r["step"] <= args.target else "FAIL"
    ratio_cpu = med["lampo"]["cpu_step_to_step"] / med["TRL"]["cpu_step_to_step"]
    print(f"ratio lampo/TRL: {r['step']:.3f} (step), {ratio_s2s:.3f} (step-to-step), "
          f"{ratio_cpu:.3f} (CPU time); target <= {args.target}: {verdict}")
    print(f"ratio lampo/TRL by phase: sampling {r['sampling']:.3f}, update {r['update']:.3f}")
    print("lampo split of its step (median): " + ", ".join(
        f"{k} {med['lampo'][k] / med['lampo']['step']:.0%}" for k in ("generate", "logprobs", "update")))
    trl = med["TRL"]
    print(f"TRL split of its step (median): generate {trl['generate'] / trl['step']:.0%}, "
          f"rest of rollout (scoring, advantages) {(trl['rollout'] - trl['generate']) / trl['step']:.0%}, "
          f"loss forward/backward + optimizer {trl['update'] / trl['step']:.0%}")
    print("per-step 'step' times (s): " + "; ".join(
        f"{side} run {i + 1}: " + " ".join(f"{x:.2f}" for x in run["step"]) for side in ("lampo", "TRL")
        for i, run in enumerate(runs[side])))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--matrix", action="store_true",
                        help="run every cell of size x new tokens x micro-batch instead of one "
                             "(see the docstring)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small", help="model size (one cell)")
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="pad the vocabulary (default: tokenizer's)")
    parser.add_argument("--prompts-per-step", type=int, default=4, help="P: distinct prompts per step")
    parser.add_argument("--group-size", type=int, default=None,
                        help="G: responses per prompt (default 4; 8 with --matrix)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="every response's length (one cell)")
    parser.add_argument("--micro-batch-size", type=int, default=4,
                        help="rows per forward/backward (one cell)")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 8; 6 with --matrix)")
    parser.add_argument("--warmup", type=int, default=1, help="leading steps of each run left out")
    parser.add_argument("--rounds", type=int, default=1, help="pairs of interleaved runs (per cell)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads, both trainers")
    parser.add_argument("--target", type=float, default=0.8, help="the step-time ratio lampo/TRL to meet")
    parser.add_argument("--json", help="also write the raw timings here")
    parser.add_argument("--verbose", action="store_true", help="keep transformers/TRL warnings")
    args = parser.parse_args()
    args.group_size = args.group_size or (8 if args.matrix else 4)
    args.steps = args.steps or (6 if args.matrix else 8)
    P, G = args.prompts_per_step, args.group_size
    if not 1 <= P <= len(PROBLEMS):
        parser.error(f"--prompts-per-step must be 1..{len(PROBLEMS)}")
    micros = {4, P * G} if args.matrix else {args.micro_batch_size}
    if any((P * G) % micro for micro in micros):
        parser.error(f"prompts-per-step * group-size ({P * G}) must be a multiple of the micro-batch "
                     f"size{'s' * args.matrix} {sorted(micros)}")
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")
    return args


def quiet(verbose: bool) -> None:
    """Silence transformers' and TRL's warnings unless --verbose (in each process)."""
    import transformers
    if not verbose:
        transformers.logging.set_verbosity_error()
        warnings.filterwarnings("ignore")


def main():
    args = parse_args()
    import transformers
    import trl
    quiet(args.verbose)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="bench-vs-trl-") as tmp:
        work = Path(tmp)
        if args.matrix:
            cells = run_matrix(args, work)
            settings, all_runs = cells[-1]["runs"]["settings"], [c["runs"] for c in cells]
        else:
            setup = prepare(work, args.size, args.vocab_size, args.prompts_per_step)
            runs = measure(args, setup, work, "")
            settings, all_runs = runs["settings"], [runs]
    threads = {t for runs in all_runs for side in ("lampo", "TRL") for run in runs[side]
               for t in run["threads"]}

    print(f"\nlampo.py vs TRL {trl.__version__} GRPOTrainer: one whole RL step, CPU float32, "
          f"torch {torch.__version__.split('+')[0]} ({sorted(threads)} threads), "
          f"transformers {transformers.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    if args.matrix:
        P, G = args.prompts_per_step, args.group_size
        print(f"{P} prompts x G={G} = {P * G} responses per step, every one forced to the cell's new "
              "tokens; 1 optimizer step per step; beta 0")
        print_matrix(args, cells)
    else:
        print_single(args, setup, runs)
    note = " (the last cell; cells differ only in size, new tokens and micro-batch)" if args.matrix else ""
    print(f"\nsettings{note}:")
    print_settings(settings)
    if args.json:
        raw = cells if args.matrix else {"runs": runs, "median": medians(runs, args.warmup)}
        Path(args.json).write_text(json.dumps({"args": vars(args), "trl": trl.__version__, "result": raw},
                                              indent=1, default=str))


if __name__ == "__main__":
    main()

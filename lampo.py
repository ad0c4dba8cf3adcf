"""
LamPO: Lambda-style Policy Optimization, in one file.

Reinforcement learning with verifiable rewards (RLVR: the reward is a rule-based check of the
final answer, not a learned model) for reasoning LLMs, as a diff from GRPO. GRPO samples G
responses y_1..y_G per prompt x from the policy as it is now (pi_old), scores them (r_i) and, with
no critic, pushes each by its reward standardised in its group, through PPO's clipped ratio:

    A_i   = (r_i - mean(r)) / std(r)
    rho_t = pi_theta(y_i,t | x, y_i,<t) / pi_old(y_i,t | x, y_i,<t)
    maximise  mean_t min(rho_t * A_i, clip(rho_t, 1 - eps_low, 1 + eps_high) * A_i)
              - beta * KL(pi_theta || pi_ref)          pi_ref: the reference, the initial model, frozen

LamPO changes the advantage: each response sums its reward gaps to every peer, each pair weighed
by how unsure the policy is about it (LambdaRank's idea, from learning to rank: a pair the model
already orders right carries little gradient):

    s_i    = mean_t log pi_old(y_i,t | x, y_i,<t)              length-normalised sequence score
    lam_ij = 2 * sigmoid(-sign(r_i - r_j) * (s_i - s_j) / tau)
    A_i    = 1/(G-1) * sum_{j != i} lam_ij * (r_i - r_j)

and adds a dense term to the 0/1 correctness reward when a reference solution exists:

    r_i = correct(y_i) + alpha * ROUGE_L_F1(y_i, reference_solution)

With lam = 1 (tau -> infinity) A_i is G/(G-1) * (r_i - mean(r)): RLOO's leave-one-out advantage, and
G/(G-1) times Dr.GRPO's r_i - mean(r) (GRPO without the std). The paper (arXiv 2605.21235) is withdrawn,
its code unpublished: the formulas are our reading of its abstract (LAMPO_SPEC.md says which choices
are ours), and only this repository's own runs can show whether LamPO beats GRPO.

Reading map: the method is Reward, Advantage, Loss, Update and Training loop; read them first, in
order. ROUGE-L, Log-probs, Sampling and Rollout batch compute its inputs, fast (answer_check.py
gives the correctness verdict). Config and all after the training loop (data, prompts, models,
checkpoints, CLI) can wait for a second read.

Run (one GPU, bf16):
    python lampo.py --model Qwen/Qwen3-1.7B
    python lampo.py --model Qwen/Qwen3-1.7B --advantage grpo --rouge-weight 0    # the GRPO baseline
    python lampo.py --output-dir runs/lampo --resume              # continue after a crash
    python demo/learn_on_cpu.py                  # watch a tiny random model learn a toy task on CPU
"""

import argparse
import contextlib
import json
import math
import os
import pickle
import random
import re
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import datasets
import torch
from rouge_score.tokenize import tokenize as rouge_tokenize   # rouge-score's tokenizer, without nltk
from torch.nn.utils.rnn import pad_sequence
from torch.utils.checkpoint import checkpoint as recompute_in_backward
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, Cache, StaticLayer
from transformers import TopKLogitsWarper, TopPLogitsWarper, logging as hf_logging

from answer_check import extract_answer, is_equiv, last_boxed    # the final answer, compared by value
from length_pref import LengthPreference    # λ-GRPO's learned length preference, for --loss-agg length-pref

# ---- Config --------------------------------------------------------------------------------------
# Every knob of a run with its default, help text and valid range side by side. The CLI is
# generated from this class, and validate() checks every value before anything loads.

def arg(default, help: str, choices: tuple[str, ...] | None = None, within: str | None = None):
    """A Config field; within is its valid range as an interval, "(0, 1]" or "[1, inf)"."""
    return field(default=default, metadata={"help": help, "choices": choices, "within": within})

@dataclass
class Config:
    model: str = arg("Qwen/Qwen3-1.7B", "hub id or local folder of a causal LM (no logit scaling or capping)")
    dataset: str = arg("DigitalLearningGmbH/MATH-lighteval", "hub id, or a .jsonl/.json/.parquet/.csv file")
    dataset_config: str | None = arg(None, "hub dataset config name, if it has several")
    split: str = arg("train", "dataset split to train on")
    prompt_field: str = arg("problem", "column holding the problem text")
    solution_field: str = arg("solution", "column holding the worked solution, the ROUGE-L reference")
    answer_field: str | None = arg(None, "gold answer column; unset: the solution's last \\boxed{}")
    thinking: bool = arg(True, "Qwen3 thinking mode in the chat template")
    output_dir: str = arg("runs/lampo", "where metrics.jsonl, samples.jsonl and checkpoints go")
    steps: int = arg(200, "training steps (one step = sample, score, update)", within="[1, inf)")
    prompts_per_step: int = arg(8, "prompts per step, each sampled --group-size times", within="[1, inf)")
    group_size: int = arg(8, "responses per prompt, compared with each other", within="[2, inf)")
    max_new_tokens: int = arg(4096, "longest response in tokens; one cut off is correct only if its final "
                              "answer is complete (after </think>, or with --no-thinking)", within="[1, inf)")
    temperature: float = arg(1.0, "sampling temperature (the log-probs use it too)", within="(0, inf)")
    top_p: float = arg(1.0, "nucleus sampling threshold (1.0 = off)", within="(0, 1]")
    gen_batch_size: int = arg(32, "sequences sampled at once (lower it if out of memory)", within="[1, inf)")
    advantage: str = arg("lampo", "lampo (pairwise), grpo (standardised), rloo (leave-one-out) or lpo "
                         "(listwise)", ("lampo", "grpo", "rloo", "lpo"))
    tau: float = arg(0.1, "lampo: pairwise sigmoid temperature, nats per token (ours)", within="(0, inf)")
    rouge_weight: float = arg(0.1, "ROUGE-L's weight in the reward (ours; 0 for GRPO)", within="[0, inf)")
    lpo_tau: float = arg(0.1, "lpo: temperature of the rewards in LPO's target distribution (ours)",
                         within="(0, inf)")
    loss_agg: str = arg("token-mean", "token-mean (each token alike), seq-mean (each response alike) or "
                        "length-pref (learned length preference)", ("token-mean", "seq-mean", "length-pref"))
    length_pref_strength: float = arg(0.1, "length-pref: how strongly a response's standardised length sets "
                                      "its token weight (ours)", within="[0, inf)")
    length_pref_lr: float = arg(1e-3, "length-pref: learning rate of the learned length exponent (ours)",
                                within="[0, inf)")
    clip_low: float = arg(0.2, "PPO clip: the ratio new/old policy is held >= 1 - this", within="[0, 1)")
    clip_high: float = arg(0.28, "PPO clip: the ratio is held <= 1 + this", within="[0, inf)")
    kl_coef: float = arg(0.001, "KL penalty's weight (0: the reference, the initial model, is not loaded)",
                         within="[0, inf)")
    mini_batches: int = arg(2, "optimizer updates per step (> 1: clipping acts)", within="[1, inf)")
    micro_batch_size: int = arg(4, "sequences per forward/backward (same gradient; on CPU 16 is faster)",
                                within="[1, inf)")
    lr: float = arg(1e-6, "AdamW learning rate", within="(0, inf)")
    warmup_updates: int = arg(10, "optimizer updates of linear learning-rate warm-up", within="[0, inf)")
    max_grad_norm: float = arg(1.0, "gradient clipping threshold (inf = off)", within="(0, inf]")
    save_every: int = arg(50, "save a checkpoint every this many steps, and at the end", within="[1, inf)")
    keep_checkpoints: int = arg(2, "how many of the newest checkpoints to keep", within="[1, inf)")
    log_samples_every: int = arg(10, "log 4 responses every this many steps (0 = never)", within="[0, inf)")
    resume: bool = arg(False, "continue the run in --output-dir from its newest checkpoint, as it started")
    device: str = arg("auto", "auto picks CUDA when available", ("auto", "cuda", "cpu"))
    seed: int = arg(0, "seed for data order and sampling", within="[0, inf)")

# ---- Reward --------------------------------------------------------------------------------------
#     r_i = correct(y_i) + alpha * ROUGE_L_F1(y_i, reference_solution)        alpha = --rouge-weight
# ROUGE-L ranks the responses of an all-wrong (or all-right) group, which would otherwise carry no
# signal; even a cut-off response earns it. GRPO's std division would blow it up to full size, so the
# paper's GRPO baseline runs with --rouge-weight 0. correct() is answer_check.py's verdict on the final
# answer (after </think>), by value with math-verify. train(cfg, reward_fn=...) takes another verifier:
# (response text, example) -> {"reward", "correct", "rouge"}, as reward() returns.

def reward(response: str, example: dict, rouge_weight: float = 0.1) -> dict:
    correct = float(is_equiv(extract_answer(response), example["answer"]))
    rouge = rouge_l_f1(response, example["solution"]) if example.get("solution") else 0.0
    return {"reward": correct + rouge_weight * rouge, "correct": correct, "rouge": rouge}

# ---- ROUGE-L -------------------------------------------------------------------------------------
# The F1 of the longest common subsequence (LCS) of the response's and the reference's words, as
# rouge-score's RougeScorer(["rougeL"]) gives it (same tokenizer; equal to float rounding), but found
# bit-parallel, one big-int operation per word, not by its O(n*m) double loop, too slow for long traces.

def lcs_length(a: list[str], b: list[str]) -> int:
    # Bit-parallel LCS (Allison-Dix 1986, Hyyro 2004). Bit i of v stands for b[i]; after each
    # word of a, the zero bits of v mark where the LCS length steps up along b, so
    # LCS = len(b) - popcount(v). The addition carries a run of matches forward in one go.
    masks = {}  # word -> bitmask of its positions in b
    for i, word in enumerate(b):
        masks[word] = masks.get(word, 0) | (1 << i)
    v = full = (1 << len(b)) - 1
    for word in a:
        if word in masks:  # a word absent from b leaves v unchanged
            u = v & masks[word]
            v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()

def rouge_l_f1(response: str, reference: str) -> float:
    pred, target = rouge_tokenize(response, None), rouge_tokenize(reference, None)
    # F1 = 2 * prec * rec / (prec + rec), prec = lcs / |pred|, rec = lcs / |target|, simplified
    return 2 * lcs_length(pred, target) / max(1, len(pred) + len(target))

# ---- Advantage -----------------------------------------------------------------------------------
# How hard to push each response of a group. Every tensor here is [B, G] (B prompts, G responses
# each): the rewards R, and the old policy's length-normalised sequence scores s (LamPO and LPO).
#     grpo:  A_i = (r_i - mean(r)) / (std(r) + 1e-4)
#     rloo:  A_i = G/(G-1) * (r_i - mean(r)) = 1/(G-1) * sum_j (r_i - r_j)
#     lampo: A_i = 1/(G-1) * sum_j lam_ij * (r_i - r_j)
#            lam_ij = 2 * sigmoid(-sign(r_i - r_j) * (s_i - s_j) / tau)
#     lpo:   A_i = w*_i - P_i,  P = softmax(s),  w* = softmax(R / tau_lpo + log P)
# lpo is Listwise Policy Optimization (Qu et al. 2026, arXiv 2605.06139); tau_lpo is --lpo-tau.

def grpo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    return (rewards - rewards.mean(-1, keepdim=True)) / (rewards.std(-1, keepdim=True) + 1e-4)

def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    G = rewards.shape[-1]
    return G / (G - 1) * (rewards - rewards.mean(-1, keepdim=True))

def lampo_advantages(rewards: torch.Tensor, scores: torch.Tensor, tau: float) -> torch.Tensor:
    G = rewards.shape[-1]
    reward_gap = rewards[:, :, None] - rewards[:, None, :]            # [B, G, G]  r_i - r_j
    margin = (scores[:, :, None] - scores[:, None, :]) / tau          # [B, G, G]  (s_i - s_j) / tau
    # lam_ij = 2 * (1 - the policy's probability of the reward-consistent order): < 1 for pairs
    # the policy already ranks right, > 1 for pairs it ranks wrong. Symmetric, so each group's
    # advantages sum to 0.
    lam = 2 * torch.sigmoid(-torch.sign(reward_gap) * margin)
    return (lam * reward_gap).sum(-1) / (G - 1)

def lpo_advantages(rewards: torch.Tensor, scores: torch.Tensor, tau_lpo: float) -> torch.Tensor:
    # LPO moves P = softmax(s) towards w* by minimising KL(w* || P_theta), whose gradient is
    # sum_k (P_k - w*_k) * grad log P(y_k): minus that coefficient is the advantage, bounded by 1 and
    # zero-sum. Summed log-probs of long responses would make P one-hot and every coefficient vanish.
    log_p = torch.log_softmax(scores, -1)
    return torch.softmax(rewards / tau_lpo + log_p, -1) - log_p.exp()

ADVANTAGES = {  # (rewards, scores, cfg) -> advantages, all [B, G]
    "lampo": lambda rewards, scores, cfg: lampo_advantages(rewards, scores, cfg.tau),
    "grpo": lambda rewards, scores, cfg: grpo_advantages(rewards),
    "rloo": lambda rewards, scores, cfg: rloo_advantages(rewards),
    "lpo": lambda rewards, scores, cfg: lpo_advantages(rewards, scores, cfg.lpo_tau),
}

# ---- Log-probs -----------------------------------------------------------------------------------
# log pi(y_t | x, y_<t) of each response token, from logits / temperature. Under --top-p < 1 it is
# the untruncated log-prob, as in TRL and verl: a truncated one would give -inf to a token the moved
# policy ranks outside its nucleus. float32 logits over Qwen3's 151,936-token vocabulary would not
# fit, so the output layer runs on chunks of positions, each recomputed in the backward pass.

LOGIT_CHUNK_TOKENS = 512  # positions x batch rows of float32 logits alive at once

def chunk_logprobs(hidden: torch.Tensor, unembedding: torch.Tensor, targets: torch.Tensor,
                   temperature: float) -> torch.Tensor:
    logits = (hidden @ unembedding.T).float()                          # [b, C, V]
    logits.div_(temperature)                                           # in place: one temporary fewer
    return logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)

def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_tokens: int,
                   temperature: float = 1.0) -> torch.Tensor:
    """log-probs of the last n_tokens tokens of each of the b rows, [b, n_tokens] float32."""
    # Left padding shifts each row, so positions come from the mask, not from the column index.
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                 position_ids=position_ids, use_cache=False).last_hidden_state
    hidden = hidden[:, -n_tokens - 1:-1]                               # position t predicts token t+1
    targets = input_ids[:, -n_tokens:]
    unembedding = model.get_output_embeddings().weight                 # [V, hidden size]
    chunk = max(1, LOGIT_CHUNK_TOKENS // input_ids.shape[0])
    return torch.cat([recompute_in_backward(chunk_logprobs, h, unembedding, y, temperature,
                                            use_reentrant=False)
                      for h, y in zip(hidden.split(chunk, 1), targets.split(chunk, 1))], dim=1)

@torch.no_grad()
def check_output_layer(model, input_ids: list[int]) -> None:
    """Refuse a model whose head scales or soft-caps its logits: token_logprobs would be wrong."""
    ids = torch.tensor([input_ids], device=model.device)
    hidden = model.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state
    logits = model(input_ids=ids, use_cache=False).logits
    if not torch.allclose(hidden @ model.get_output_embeddings().weight.T, logits, atol=1e-3):
        raise UsageError(f"--model {model.name_or_path}: its output layer scales or soft-caps the logits, "
                         "but lampo's log-probs need logits = hidden @ W.T: use a model like Qwen3 or Llama")

# ---- Loss ----------------------------------------------------------------------------------------
# PPO's clipped surrogate per token, plus beta times Schulman's k3 estimate of KL(pi_theta || pi_ref):
# never negative, and unbiased for tokens drawn from pi_theta. Ours were drawn from pi_old, which is
# pi_theta only in the first mini-batch, so later mini-batches get a biased estimate; and on CUDA they
# were drawn by pi_old's bf16 copy, close to pi_old but not equal to it.
#     rho_t = exp(logp_t - old_t)
#     l_t   = -min(rho_t * A, clip(rho_t, 1 - eps_low, 1 + eps_high) * A) + beta * KL_t
#     KL_t  = exp(ref_t - logp_t) - (ref_t - logp_t) - 1
# eps_high > eps_low is DAPO's "clip-higher" (DAPO: a GRPO variant for long reasoning), which keeps
# exploring. The loss is sum_t w_t * l_t over a mini-batch of n responses, w fixed before micro-batching:
#     token-mean (DAPO):     w_it = 1 / sum_j |y_j|                every token counts the same
#     seq-mean (GRPO):       w_it = 1 / (n * |y_i|)                every response counts the same
#     length-pref (λ-GRPO):  w_it = f_i / sum_j |y_j|      f_i learned from y_i's length, f = 1 at first
# λ-GRPO (Wang et al. 2025, arXiv 2510.06870) and its f are in length_pref.py.

def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                weights: torch.Tensor, clip_low: float, clip_high: float,
                ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Loss and weighted diagnostics. logp, old_logp, ref_logp, weights: [b, T]; advantages: [b]."""
    adv = advantages[:, None]
    ratio = torch.exp(logp - old_logp)
    per_token = -torch.min(ratio * adv, ratio.clamp(1 - clip_low, 1 + clip_high) * adv)
    clipped = ((ratio < 1 - clip_low) & (adv < 0)) | ((ratio > 1 + clip_high) & (adv > 0))
    stats = {"clip_frac": (weights * clipped).sum().item()}
    if ref_logp is not None and kl_coef > 0:
        # Clamped before exp: an unlikely token under the reference would otherwise overflow to inf.
        log_ratio = (ref_logp - logp).clamp(-20, 20)
        kl = torch.expm1(log_ratio) - log_ratio              # exp(x) - 1 - x without float32 cancellation
        per_token = per_token + kl_coef * kl
        stats["kl"] = (weights * kl).sum().item()
    return (weights * per_token).sum(), stats

def token_weights(response_mask: torch.Tensor, loss_agg: str, f: torch.Tensor | None = None) -> torch.Tensor:
    """Weights [n, T] for a mini-batch's response mask [n, T]; f [n] only for length-pref."""
    if loss_agg == "seq-mean":
        return response_mask / (response_mask.sum(1, keepdim=True) * len(response_mask))
    weights = response_mask / response_mask.sum()
    return weights if f is None else weights * f[:, None]

# ---- Update --------------------------------------------------------------------------------------
# --mini-batches optimizer updates over consecutive rows. The first one's policy is pi_old, so its ratio
# is 1 (exactly when pi_old came from the policy's own pass; on CPU, to float32 rounding); later ones
# see a moved policy, which is when clipping acts. A non-finite loss or gradient skips that update.
# Rows are laid out prompt by prompt (row = prompt * G + g), which viewing [N] as [B, G] relies on.

def update_plan(batch: "Rollouts", cfg: Config) -> list[tuple[torch.Tensor, tuple[torch.Tensor, ...]]]:
    """cfg.mini_batches mini-batches of row indices, each in micro-batches of similar-length rows."""
    row_tokens = batch.attention_mask.sum(1)                            # [N] prompt + response tokens
    minis = torch.arange(len(row_tokens)).tensor_split(cfg.mini_batches)
    return [(mini, mini[row_tokens[mini].argsort(stable=True)].split(cfg.micro_batch_size)) for mini in minis]

def update_policy(policy, optimizer, scheduler, batch: "Rollouts", ref_logp, advantages,
                  cfg: Config, device, length_pref: LengthPreference | None = None) -> tuple[dict, list]:
    policy.train()
    response_mask = batch.response_mask.to(device)                      # [N, T]
    totals = dict.fromkeys(("loss", "clip_frac", "kl", "grad_norm", "sampler_logp_gap"), 0.0)
    lengths = response_mask.sum(1)                                      # [N] response lengths
    finite_updates, plan = [], update_plan(batch, cfg)
    for k, (mini, micros) in enumerate(plan):
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for rows in micros:
            ids, attn, n_tokens = micro_batch(batch, rows, device)
            cells = (rows, slice(n_tokens))         # of an [N, T] tensor: these rows, to their longest one
            # Rebuilt for every backward pass: with length-pref the weights carry the exponent's gradient.
            f = None if length_pref is None else length_pref(lengths.view(-1, cfg.group_size)).flatten()[mini]
            mini_weights = token_weights(response_mask[mini], cfg.loss_agg, f)               # [n, T]
            weights = torch.zeros_like(response_mask).index_put((mini,), mini_weights)       # [N, T]
            with autocast(device):
                logp = token_logprobs(policy, ids, attn, n_tokens, cfg.temperature)
            ref_cells = None if ref_logp is None else ref_logp[cells].to(device)
            loss, stats = policy_loss(logp, batch.old_logp[cells].to(device), advantages[rows].to(device),
                                      weights[cells], cfg.clip_low, cfg.clip_high, ref_cells, cfg.kl_coef)
            loss.backward()
            loss_sum += loss.item()
            if k == 0:  # the policy has not moved yet: how far is the sampler's copy from it?
                gap = (logp.detach() - batch.sampler_logp[cells].to(device)).abs() * response_mask[cells]
                totals["sampler_logp_gap"] += gap.sum().item() / response_mask[mini].sum().item()
            for key, value in stats.items():
                totals[key] += value / len(plan)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm))
        finite = math.isfinite(loss_sum) and math.isfinite(grad_norm)
        totals["lr"] = optimizer.param_groups[0]["lr"]          # the rate of the step's last update
        if finite:
            optimizer.step()
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)                # frees the gradients before sampling
        finite_updates.append(finite)
        totals["loss"] += loss_sum / len(plan)
        totals["grad_norm"] += grad_norm / len(plan)
    return totals, finite_updates

# ---- Sampling ------------------------------------------------------------------------------------
# A plain decode loop. The prefill, one forward pass over all of a distinct prompt's positions, fills
# its KV cache (each layer's attention keys and values), then copied to the prompt's G rows; then one
# forward pass per token. The cache is allocated whole up front (a too-large batch fails at once), but
# attention reads only its filled part. Each token's log_softmax(logits / temperature) is kept: pi_old
# where the policy samples for itself. A response ends at its FIRST end token (Qwen3 pads with one).

@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float
    top_p: float                  # 1.0 = off
    end_ids: tuple[int, ...]
    pad_id: int
    top_k: int = 0                # 0 = off

def end_token_ids(model, tokenizer) -> tuple[int, ...]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids]) | {tokenizer.eos_token_id}
    return tuple(sorted(ids - {None}))

def padded(rows: list, value: float, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows as one [len(rows), longest] tensor, filled with value on that side, and its 0/1 mask."""
    tensors = [torch.tensor(row) for row in rows]
    pad = lambda seqs, fill: pad_sequence(seqs, batch_first=True, padding_value=fill, padding_side=side)
    return pad(tensors, value), pad([torch.ones_like(tensor) for tensor in tensors], 0)

def truncate_distribution(logp: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """logp [N, V], -inf outside the top_k likeliest tokens and the top_p nucleus (HF's own warpers)."""
    logp = TopKLogitsWarper(top_k)(None, logp) if top_k > 0 else logp
    return TopPLogitsWarper(top_p)(None, logp) if top_p < 1 else logp

class FilledKVLayer(StaticLayer):
    """A StaticLayer whose attention reads only the positions written so far (the buffer's start)."""
    filled = 0                                           # a Python int: reading it never syncs the GPU

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        keys, values = super().update(key_states, value_states, *args, **kwargs)
        self.filled += key_states.shape[-2]
        return keys[:, :, :self.filled], values[:, :, :self.filled]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.filled + query_length, 0              # (key length, offset) of the coming step's mask

@torch.inference_mode()             # like no_grad, minus autograd's version counters: less work per op
def sample_batch(model, prompt_ids: list[list[int]], sampling: Sampling) -> tuple[torch.Tensor, ...]:
    """Sampled ids and their log-probs, [N, <= max_new_tokens], and each row's length [N] (junk after it)."""
    device = model.device
    distinct = list(dict.fromkeys(map(tuple, prompt_ids)))                   # each prompt once, in order
    ids, attn = (x.to(device) for x in padded(distinct, sampling.pad_id, "left"))
    width = ids.shape[1]
    layers = model.config.num_hidden_layers
    cache = Cache(layers=[FilledKVLayer(width + sampling.max_new_tokens) for _ in range(layers)])
    position = attn.cumsum(-1) - 1
    prefill = model(input_ids=ids, attention_mask=attn, position_ids=position.clamp(min=0), cache=cache,
                    use_cache=True, logits_to_keep=1)
    prefill_row = torch.tensor([distinct.index(tuple(p)) for p in prompt_ids], device=device)   # [N]
    cache.reorder_cache(prefill_row)           # each distinct prompt's keys and values, copied to its rows
    logits, position = prefill.logits[prefill_row, -1], position[prefill_row, -1:]
    attn = torch.cat([attn[prefill_row], attn.new_zeros(len(prefill_row), sampling.max_new_tokens)], 1)
    end_ids = torch.tensor(sampling.end_ids, dtype=torch.long, device=device)
    ended = torch.zeros(len(prefill_row), dtype=torch.bool, device=device)
    lengths = torch.zeros(len(prefill_row), dtype=torch.long, device=device)   # through the first end token
    tokens, logprobs = [], []
    for t in range(sampling.max_new_tokens):
        if t > 0:                                        # token 0's logits came from the prefill
            attn[:, width + t - 1], position = 1, position + 1
            logits = model(input_ids=token, attention_mask=attn[:, :width + t], position_ids=position,
                           cache=cache, use_cache=True).logits[:, -1]
        vocab_logp = torch.log_softmax(logits.float() / sampling.temperature, -1)       # [N, V]
        token = torch.multinomial(truncate_distribution(vocab_logp, sampling.top_k, sampling.top_p).exp(), 1)
        tokens.append(token)
        logprobs.append(vocab_logp.gather(-1, token))
        lengths += ~ended
        ended |= torch.isin(token[:, 0], end_ids)
        if ended.all():
            break
    return torch.cat(tokens, 1), torch.cat(logprobs, 1), lengths

def sample_responses(model, prompt_ids: list[list[int]], sampling: Sampling,
                     batch_size: int) -> tuple[list[list[int]], list[list[float]], list[bool]]:
    """Per prompt row: the response's ids as sampled, their log-probs, and whether it was cut off."""
    model.eval()                              # eval mode: activation checkpointing off, KV cache on
    responses, logprobs = [], []
    for start in range(0, len(prompt_ids), batch_size):
        tokens, logp, lengths = sample_batch(model, prompt_ids[start:start + batch_size], sampling)
        for row, row_logp, length in zip(tokens.tolist(), logp.tolist(), lengths.tolist()):
            responses.append(row[:length])
            logprobs.append(row_logp[:length])
    truncated = [response[-1] not in sampling.end_ids for response in responses]     # no end token: cut off
    return responses, logprobs, truncated

# ---- Rollout batch -------------------------------------------------------------------------------
# A step's N = B * G sequences (B prompts, G responses each) in one layout: prompt left-padded to W
# columns, response right-padded to T. Every response then starts at column W, so log-probs and the
# response mask are plain [N, T] tensors. A mini-batch holds n of the rows and a micro-batch b, cut
# to the columns its own rows need.

@dataclass
class Rollouts:
    input_ids: torch.Tensor       # [N, W + T]
    attention_mask: torch.Tensor  # [N, W + T]
    response_mask: torch.Tensor   # [N, T] 1.0 on response tokens (end token included)
    old_logp: torch.Tensor        # [N, T] log pi_old of each response token, 0.0 on padding
    sampler_logp: torch.Tensor    # [N, T] the same, as the sampling model computed it while drawing

def pack_rollouts(prompt_ids: list[list[int]], responses: list[list[int]], logprobs: list[list[float]],
                  pad_id: int) -> Rollouts:
    """The step's rollouts; old_logp starts as the sampler's log-probs."""
    prompts, prompt_mask = padded(prompt_ids, pad_id, "left")                  # [N, W]
    response_ids, response_mask = padded(responses, pad_id, "right")           # [N, T]
    logp, _ = padded(logprobs, 0.0, "right")
    return Rollouts(torch.cat([prompts, response_ids], 1), torch.cat([prompt_mask, response_mask], 1),
                    response_mask.float(), logp, logp)

def micro_batch(batch: Rollouts, rows: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """These rows' input_ids and attention_mask, cut to their longest prompt and response; that length."""
    W = batch.input_ids.shape[1] - batch.response_mask.shape[1]
    longest_prompt = int(batch.attention_mask[rows, :W].sum(1).max())
    n_tokens = int(batch.response_mask[rows].sum(1).max())
    cols = slice(W - longest_prompt, W + n_tokens)
    return batch.input_ids[rows, cols].to(device), batch.attention_mask[rows, cols].to(device), n_tokens

@torch.no_grad()
def rollout_logprobs(model, batch: Rollouts, cfg: Config, device) -> torch.Tensor:
    """Log-probs of every response under `model`, [N, T], with the update's micro-batches and numerics."""
    model.eval()
    logp = torch.zeros_like(batch.response_mask)
    for _, micros in update_plan(batch, cfg):
        for rows in micros:
            ids, attn, n_tokens = micro_batch(batch, rows, device)
            with autocast(device):
                logp[rows, :n_tokens] = token_logprobs(model, ids, attn, n_tokens, cfg.temperature).cpu()
    return logp * batch.response_mask

# ---- Training loop -------------------------------------------------------------------------------
# Each step: sample group_size responses for each of prompts_per_step problems, score them, get
# pi_old (on CUDA the policy's own pass over what its bf16 copy drew: the ratio must start at
# exactly 1) and the reference's log-probs, turn rewards and scores into advantages, and update.

def train(cfg: Config, reward_fn=None) -> list[dict]:
    """Run cfg.steps training steps (or the rest of them, with cfg.resume); returns metrics rows. To resume,
    cfg holds the run's settings (its config.json); only those in CHANGEABLE_ON_RESUME may differ."""
    validate(cfg)
    hf_logging.disable_progress_bar()         # per-file load/save bars would break up the step bar
    out = writable_output_dir(cfg.output_dir)
    resume_from = checkpoint_to_resume(out, cfg)
    device = pick_device(cfg.device)
    examples, dropped = load_examples(cfg)    # before the models load: bad data fails in seconds
    torch.manual_seed(cfg.seed)
    tokenizer, policy, sampler, ref = load_models(cfg, device, str(resume_from or cfg.model))
    length_pref = (LengthPreference(cfg.length_pref_strength).to(device)    # trained with the policy
                   if cfg.loss_agg == "length-pref" else None)
    optimizer, scheduler = make_optimizer(policy, cfg, length_pref)
    pad_id, end_ids = tokenizer.pad_token_id, end_token_ids(policy, tokenizer)
    sampling = Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p, end_ids, pad_id)
    reward_fn = reward_fn or (lambda text, ex: reward(text, ex, cfg.rouge_weight))
    prompts = [build_prompt(tokenizer, ex["problem"], cfg.thinking) for ex in examples]
    context = getattr(policy.config, "max_position_embeddings", None) or 10 ** 9
    for ex, ids in zip(examples, encode_prompts(tokenizer, prompts, cfg.max_new_tokens, context)):
        ex["prompt_ids"] = ids
    check_output_layer(policy, examples[0]["prompt_ids"])
    if device.type == "cpu":
        log("running on CPU in float32 (for tests and smoke runs; real training needs a CUDA GPU)")
    log(f"{len(examples)} training problems from {cfg.dataset} ({dropped} rows dropped: no gold answer)")
    step, data_position = restore(resume_from, optimizer, scheduler, length_pref) if resume_from else (0, 0)
    out.mkdir(parents=True, exist_ok=True)   # only now: a run that fails to start leaves no folder behind
    for name in ("metrics.jsonl", "samples.jsonl"):    # a new run starts them empty
        trim_jsonl(out / name, step)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    stop_requested = []                       # Ctrl-C finishes the step and saves; a second one quits
    def request_stop(signum, frame):
        signal.signal(signal.SIGINT, signal.default_int_handler)     # re-armed: the next Ctrl-C quits at once
        stop_requested.append(True)
        log("Ctrl-C: finishing this step, then saving a checkpoint (Ctrl-C again to quit now)")
    previous_handler = signal.signal(signal.SIGINT, request_stop)
    history, bad_updates_in_a_row = [], 0
    bar = tqdm(total=cfg.steps, initial=step, desc="lampo", unit="step", dynamic_ncols=True)
    try:
        while step < cfg.steps:
            t0 = time.perf_counter()
            drawn = [example_at(examples, data_position + k, cfg.seed) for k in range(cfg.prompts_per_step)]
            step_examples = [ex for ex in drawn for _ in range(cfg.group_size)]      # [N], prompt by prompt
            prompt_ids = [ex["prompt_ids"] for ex in step_examples]
            responses, logprobs, truncated = sample_responses(sampler, prompt_ids, sampling,
                                                              cfg.gen_batch_size)
            texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
            t1 = time.perf_counter()
            verdicts = [reward_fn(text, ex) for text, ex in zip(texts, step_examples)]
            t2 = time.perf_counter()
            batch = pack_rollouts(prompt_ids, responses, logprobs, pad_id)
            if sampler is not policy:
                batch.old_logp = rollout_logprobs(policy, batch, cfg, device)
            ref_logp = rollout_logprobs(ref, batch, cfg, device) if ref is not None else None
            t3 = time.perf_counter()
            rewards = torch.tensor([v["reward"] for v in verdicts]).view(-1, cfg.group_size)
            lengths = batch.response_mask.sum(1)
            scores = (batch.old_logp.sum(1) / lengths).view(-1, cfg.group_size)       # s_i
            advantages = ADVANTAGES[cfg.advantage](rewards, scores, cfg).flatten()     # [N]
            stats, finite_updates = update_policy(policy, optimizer, scheduler, batch, ref_logp, advantages,
                                                  cfg, device, length_pref)
            if sampler is not policy:
                sampler.load_state_dict(policy.state_dict())
            step, data_position = step + 1, data_position + cfg.prompts_per_step
            t4 = time.perf_counter()

            metrics = {"step": step, "reward_mean": rewards.mean().item(),
                       "accuracy": sum(v["correct"] for v in verdicts) / len(verdicts),
                       "rouge_mean": sum(v["rouge"] for v in verdicts) / len(verdicts),
                       "adv_abs_mean": advantages.abs().mean().item(),
                       "response_len_mean": lengths.mean().item(),
                       "truncated_frac": sum(truncated) / len(truncated),
                       **stats, "skipped_updates": finite_updates.count(False),
                       "time_generate": t1 - t0, "time_reward": t2 - t1, "time_logprobs": t3 - t2,
                       "time_update": t4 - t3, "time_step": t4 - t0}
            if length_pref is not None:
                metrics["preference_exponent"] = length_pref.exponent.item()
            if device.type == "cuda":
                metrics["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 2**30
                torch.cuda.reset_peak_memory_stats()           # so the next step's peak is its own
            history.append(metrics)
            append_jsonl(out / "metrics.jsonl", [metrics])
            if cfg.log_samples_every > 0 and step % cfg.log_samples_every == 0:
                append_jsonl(out / "samples.jsonl", [
                    {"step": step, "problem": ex["problem"], "gold": ex["answer"], "response": text, **v}
                    for ex, text, v in list(zip(step_examples, texts, verdicts))[:4]])
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['reward_mean']:.3f}", acc=f"{metrics['accuracy']:.2f}",
                            len=f"{metrics['response_len_mean']:.0f}")

            for finite in finite_updates:
                bad_updates_in_a_row = 0 if finite else bad_updates_in_a_row + 1
            if metrics["skipped_updates"]:
                log(f"step {step}: skipped {metrics['skipped_updates']} update(s): NaN/inf loss or gradient")
            if step % cfg.save_every == 0 or step == cfg.steps or stop_requested or bad_updates_in_a_row >= 3:
                path = save_checkpoint(out, step, policy, tokenizer, optimizer, scheduler, data_position,
                                       cfg.keep_checkpoints, length_pref)
            if bad_updates_in_a_row >= 3:
                raise FloatingPointError(f"NaN/inf loss or gradient for 3 updates in a row at step {step} "
                                         f"(saved {path}); lower --lr or check the reward function")
            if stop_requested:
                raise KeyboardInterrupt
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous_handler)
    log(f"done: step {step} reached, {len(history)} run now; last reward {history[-1]['reward_mean']:.3f}, "
        f"accuracy {history[-1]['accuracy']:.2f}; final checkpoint {path}; logs in {out}")
    return history

# ---- Data and prompts ----------------------------------------------------------------------------
# Problems from the hub or a local file. Each example keeps the problem, the gold answer (its column,
# or the solution's last \boxed{}) and the solution, the ROUGE-L reference; rows without a gold answer
# are dropped and counted. Prompts go through the model's own chat template (Qwen3's takes
# enable_thinking), so training and eval.py see exactly what it expects; no template: plain text.

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}

def load_table(source: str, split: str = "train", config: str | None = None):
    path = Path(source).expanduser()
    if path.suffix in LOCAL_FORMATS or path.exists():
        if not path.is_file():
            raise UsageError(f"dataset file not found: {source}")
        if path.suffix not in LOCAL_FORMATS:
            raise UsageError(f"unknown dataset format {path.suffix!r} for {source}: "
                             f"use one of {', '.join(LOCAL_FORMATS)}")
        datasets.disable_progress_bars()      # a local file loads at once; its bar would only clutter the log
        return datasets.load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split="train")
    try:
        return datasets.load_dataset(source, config, split=split)
    except Exception as e:  # not found, offline, gated, bad split: the library's own words say which
        raise UsageError(f"could not load dataset {source!r} (split {split!r}): {first_line(e)}") from None

def require_columns(table, columns: list[str], source: str, flag_hint: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise UsageError(f"dataset {source} has no column {', '.join(map(repr, missing))} (it has: "
                         f"{', '.join(table.column_names)}); {flag_hint}")

def gold_answer(row: dict, answer_field: str | None, solution_field: str | None) -> str | None:
    """A row's gold answer: its answer column where one is named, else the last \\boxed{} of its solution;
    None where that is missing or blank, for such a row cannot be scored."""
    gold = row[answer_field] if answer_field else last_boxed(row.get(solution_field) or "")
    gold = "" if gold is None else str(gold).strip()
    return gold or None

def load_examples(cfg: Config) -> tuple[list[dict], int]:
    """[{problem, answer, solution}] and the number of rows dropped for lacking a gold answer."""
    table = load_table(cfg.dataset, cfg.split, cfg.dataset_config)
    answer_col = cfg.answer_field or cfg.solution_field     # the solution column is needed only for this
    require_columns(table, sorted({cfg.prompt_field, answer_col}), cfg.dataset,
                    "map yours with --prompt-field, --solution-field and --answer-field")
    if cfg.solution_field not in table.column_names and cfg.rouge_weight > 0:
        log(f"{cfg.dataset} has no column {cfg.solution_field!r}: the ROUGE-L reward is 0 for every response")
    examples = []
    for row in table:
        gold = gold_answer(row, cfg.answer_field, cfg.solution_field)
        if gold is not None:
            examples.append({"problem": row[cfg.prompt_field], "answer": gold,
                             "solution": row.get(cfg.solution_field) or ""})
    if not examples:
        where = f"column {answer_col!r}" if cfg.answer_field else f"a \\boxed{{}} of column {answer_col!r}"
        hint = "" if cfg.answer_field else "; pass --answer-field if the answers have a column of their own"
        raise UsageError(f"no row of {cfg.dataset} has a gold answer in {where}{hint}")
    return examples, len(table) - len(examples)

def example_at(examples: list[dict], index: int, seed: int) -> dict:
    """The example at an index of an endless stream, reshuffled every epoch: resuming needs only the index."""
    epoch, i = divmod(index, len(examples))
    return random.Random(seed * 1_000_003 + epoch).sample(examples, len(examples))[i]

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

def build_prompt(tokenizer, problem: str, thinking: bool = True, instruction: str = MATH_INSTRUCTION) -> str:
    content = f"{problem}\n\n{instruction}"
    if tokenizer.chat_template is None:
        return f"Question: {content}\nAnswer:"
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True, enable_thinking=thinking)

def encode_prompts(tokenizer, prompts: list[str], max_new_tokens: int, context: int) -> list[list[int]]:
    """Token ids of each prompt; the chat template already holds the special tokens."""
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    too_long = [len(x) for x in ids if len(x) + max_new_tokens > context]
    if too_long:
        raise UsageError(f"{len(too_long)} prompt(s) (up to {max(too_long)} tokens) plus --max-new-tokens "
                         f"{max_new_tokens} exceed the model's context of {context} tokens: lower "
                         "--max-new-tokens or filter the dataset")
    return ids

# ---- Models and precision ------------------------------------------------------------------------
# On CUDA the policy keeps fp32 master weights (the copy AdamW updates) and AdamW state, and computes
# in bf16 (autocast): an update at lr 1e-6 moves a weight by ~1e-6, below bf16's resolution |w| * 2^-8.
# Sampling uses a bf16 copy, re-synced every step, as decoding is bound by reading the weights (on CPU:
# float32, no copy).

def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.enable_cudnn_sdp(False)  # cuDNN attention: NaN grads under padding (pytorch#196678)
    return torch.device(name)

def autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

def from_pretrained(auto_class, source: str, **kwargs):
    """auto_class.from_pretrained(source), with a one-line error for a missing folder or hub id."""
    looks_local = source.startswith((".", "/", "~")) or source.count("/") > 1
    if looks_local and not Path(source).expanduser().exists():
        raise UsageError(f"model path not found: {source}")
    try:
        return auto_class.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        raise UsageError(f"could not load {source!r} (a local folder or hub id): {first_line(e)}") from None

def load_tokenizer(source: str):
    tokenizer = from_pretrained(AutoTokenizer, source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer

def load_model(source: str, device: torch.device, dtype: torch.dtype):
    return from_pretrained(AutoModelForCausalLM, source, dtype=dtype).to(device)

def load_models(cfg: Config, device: torch.device, start_from: str):
    """Tokenizer, trained policy (fp32), sampler (bf16 copy on CUDA) and frozen reference (if kl_coef > 0)."""
    tokenizer = load_tokenizer(cfg.model)
    policy = load_model(start_from, device, torch.float32)
    policy.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    sampler = load_model(start_from, device, torch.bfloat16) if device.type == "cuda" else policy
    ref = load_model(cfg.model, device, sampler.dtype) if cfg.kl_coef > 0 else None  # the initial model
    return tokenizer, policy, sampler, ref

def make_optimizer(policy, cfg: Config, length_pref: LengthPreference | None = None):
    """AdamW (fused on CUDA: one kernel for all parameters) with a linear warm-up."""
    groups = [{"params": list(policy.parameters())}]
    if length_pref is not None:
        groups.append({"params": list(length_pref.parameters()), "lr": cfg.length_pref_lr})
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0, fused=policy.device.type == "cuda")
    warmup = max(1, cfg.warmup_updates)                # update k (from 0): lr * min(1, (k + 1) / warmup)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, total_iters=warmup - 1)
    return optimizer, scheduler

# ---- Checkpoints ---------------------------------------------------------------------------------
# Hugging Face folders (fp32 weights and tokenizer, loadable by AutoModelForCausalLM and vLLM) plus
# trainer_state.pt (optimizer, scheduler, step, data position, RNGs, length-pref's exponent): a resumed
# run continues exactly.
# Written to a temporary folder, then renamed: a crash mid-save never corrupts the newest checkpoint.

def checkpoints(out_dir: Path) -> list[Path]:
    found = [p for p in out_dir.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))

# What a resumed run may change: none of these changes the method or the order of the data (--device
# changes only the precision: see Models and precision).
CHANGEABLE_ON_RESUME = ("output_dir", "resume", "steps", "save_every", "keep_checkpoints",
                        "log_samples_every", "device", "gen_batch_size", "micro_batch_size")

def saved_config(out: Path) -> dict:
    """The settings the run in out started with (its config.json); {} if it has none that reads."""
    with contextlib.suppress(OSError, ValueError):
        return json.loads((out / "config.json").read_text())
    return {}

def checkpoint_to_resume(out: Path, cfg: Config) -> Path | None:
    """The newest checkpoint with --resume, else None; refuses what would mix two runs."""
    saved = checkpoints(out)
    if not cfg.resume:
        if saved:
            raise UsageError(f"{out} already holds checkpoints of an earlier run: pass --resume, or choose "
                             "another --output-dir")
        return None
    if not saved:
        raise UsageError(f"--resume: no checkpoint in {out}; drop --resume to start a new run")
    started, state = saved_config(out), saved[-1] / "trainer_state.pt"
    if not (started and state.is_file()):
        raise UsageError(f"--resume: {state if started else out / 'config.json'} is missing or unreadable: "
                         "check --output-dir")
    changed = [k for k, v in started.items() if k not in CHANGEABLE_ON_RESUME and getattr(cfg, k, v) != v]
    if changed:
        name, opt = changed[0], "--" + changed[0].replace("_", "-")
        raise UsageError(f"--resume: this run started with {opt} {started[name]}, not {getattr(cfg, name)}: "
                         f"drop {opt} to go on as the run started, or start anew in another --output-dir")
    if int(saved[-1].name.split("-")[1]) >= cfg.steps:
        raise UsageError(f"--resume: {saved[-1]} has reached --steps {cfg.steps} already: raise --steps")
    return saved[-1]

def save_checkpoint(out_dir: Path, step: int, policy, tokenizer, optimizer, scheduler, data_position: int,
                    keep: int, length_pref: LengthPreference | None) -> Path:
    final, tmp = out_dir / f"checkpoint-{step}", out_dir / f".tmp-checkpoint-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.save({"step": step, "data_position": data_position,
                "length_pref": None if length_pref is None else length_pref.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state_all()},
               tmp / "trainer_state.pt")
    os.replace(tmp, final)
    for old in checkpoints(out_dir)[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final

def restore(checkpoint_dir: Path, optimizer, scheduler, length_pref) -> tuple[int, int]:
    """Load trainer_state.pt into optimizer, scheduler, length_pref and RNGs; return (step, data position)."""
    path = checkpoint_dir / "trainer_state.pt"
    try:  # plain data only, so a shared checkpoint cannot run code; on CPU whatever device saved it
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise UsageError(f"{path} cannot be loaded as plain data (tensors, numbers, lists), and unpickling "
                         "more could run code: start anew, or resume from a checkpoint you trust") from None
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if length_pref is not None:
        length_pref.load_state_dict(state["length_pref"])
    torch.set_rng_state(state["torch_rng"])
    # One state per GPU, [] without CUDA; checkpoints written on CPU before 2026-11-30 hold None, and
    # runs started then must still resume.
    torch.cuda.set_rng_state_all(state["cuda_rng"] or [])
    log(f"resumed from {checkpoint_dir} at step {state['step']}")
    return state["step"], state["data_position"]

def trim_jsonl(path: Path, max_step: int) -> None:
    """Keep the rows up to the resumed checkpoint's step, without a crash's half-written last line."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    kept = [line for line in lines if line.endswith("\n") and json.loads(line)["step"] <= max_step]
    path.write_text("".join(kept))

def append_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("a") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)

def writable_output_dir(path: str) -> Path:
    out = Path(path).expanduser()
    made = [folder for folder in (out, *out.parents) if not folder.exists()]
    with contextlib.suppress(OSError):       # a place it cannot create is refused below, in one line
        out.mkdir(parents=True, exist_ok=True)
    if not (out.is_dir() and os.access(out, os.W_OK)):
        raise UsageError(f"output dir {path} is not writable: choose another --output-dir")
    for folder in made:                      # a probe: train() creates them again once it starts
        folder.rmdir()
    return out

# ---- CLI -----------------------------------------------------------------------------------------
# One flag per Config field, generated from the dataclass so names, types and defaults never drift.
# Bad input raises UsageError before any model loads where it can; main() prints it on one line.

class UsageError(Exception):
    """Bad input: main() prints the message on one line and exits with code 2."""

def in_interval(value: float, interval: str) -> bool:
    low, high = (float(x) for x in interval[1:-1].split(","))
    above = low < value if interval[0] == "(" else low <= value
    return above and (value < high if interval[-1] == ")" else value <= high)

def validate(cfg: Config) -> None:
    for option in fields(Config):
        value, flag = getattr(cfg, option.name), "--" + option.name.replace("_", "-")
        choices, within = option.metadata["choices"], option.metadata["within"]
        if choices and value not in choices:
            raise UsageError(f"{flag} must be one of {', '.join(choices)} (got {value!r})")
        if within and not in_interval(value, within):
            raise UsageError(f"{flag} must be in {within} (got {value}): {option.metadata['help']}")
    responses = cfg.prompts_per_step * cfg.group_size
    if cfg.mini_batches > responses:
        raise UsageError(f"--mini-batches {cfg.mini_batches} is more than the step's {responses} responses "
                         "(--prompts-per-step x --group-size): lower it")

def log(message: str) -> None:
    tqdm.write(f"lampo: {message}", file=sys.stderr)    # through tqdm, so the step bar stays intact

def first_line(error: BaseException) -> str:
    return (str(error).strip() or type(error).__name__).splitlines()[0]

class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):          # a refused flag gets one line, not the usage block before it
        self.exit(2, f"error: {message}; see --help\n")

def parse_args(argv: list[str] | None = None) -> Config:
    parser = ArgumentParser(description="LamPO, RL for reasoning LLMs. The paper gives no defaults: every "
                            "default is this project's; (ours) marks the estimators' own parameters.",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for option in fields(Config):
        flag, help = "--" + option.name.replace("_", "-"), option.metadata["help"]
        choices, within = option.metadata["choices"], option.metadata["within"]
        help += f" (valid: {within})" if within else ""
        if option.type is bool:                # --resume alone; --thinking and --no-thinking
            kind = {"action": "store_true" if option.default is False else argparse.BooleanOptionalAction}
        else:
            kind = {"type": {int: int, float: float}.get(option.type, str), "choices": choices}
        unset = option.default is None          # left to Config's None: no "(default: None)" in --help
        default = argparse.SUPPRESS if unset else option.default
        parser.add_argument(flag, default=default, help=help, **kind)
    args = vars(parser.parse_args(argv))
    if args["resume"]:       # the run's settings become the defaults; checkpoint_to_resume() checks the rest
        started = saved_config(Path(args["output_dir"]).expanduser())
        names = {option.name for option in fields(Config)} - {"output_dir"}
        parser.set_defaults(**{k: v for k, v in started.items() if k in names})
        args = vars(parser.parse_args(argv))
    return Config(**args)

def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    try:
        train(cfg)
    except (UsageError, FloatingPointError, torch.OutOfMemoryError, KeyboardInterrupt) as e:
        oom = "out of GPU memory: lower --gen-batch-size (sampling) or --micro-batch-size (update)"
        stopped = (f"interrupted: continue from the newest checkpoint in {cfg.output_dir} with --resume"
                   if checkpoints(Path(cfg.output_dir).expanduser()) else
                   "interrupted before the first checkpoint: run the same command again to start over")
        message, code = {UsageError: (f"error: {e}", 2), FloatingPointError: (f"error: {e}", 1),
                         torch.OutOfMemoryError: (f"error: {oom}", 1),
                         KeyboardInterrupt: (stopped, 130)}[type(e)]
        print(message, file=sys.stderr)
        sys.exit(code)

if __name__ == "__main__":
    main()

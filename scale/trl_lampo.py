"""LamPO on TRL's GRPOTrainer: lampo.py's advantage and reward, with TRL's multi-GPU and vLLM machinery.

lampo.py is the whole method on one GPU. This file changes two things in TRL's GRPO and nothing else:

- LamPOTrainer replaces TRL's group-normalised advantage with lampo.lampo_advantages: the same formula, the
  same tau, and the same scores s_i = the old policy's mean log-prob per completion token, from logits
  divided by the sampling temperature.
- lampo_reward_func wraps lampo.reward: 1 for a correct answer, plus alpha * ROUGE-L F1 against the solution.

Sampling (transformers or vLLM), the clipped loss, the KL term, optimizers, checkpoints and the
distributed setup (accelerate, DeepSpeed, FSDP) are TRL's, set with TRL's own flags (GRPOConfig, ModelConfig).

Run (the README section "Beyond one GPU: LamPO on TRL" has the multi-GPU and vLLM commands):
    accelerate launch scale/trl_lampo.py --model_name_or_path Qwen/Qwen3-1.7B --output_dir runs/trl-lampo

TRL has no hook for advantages, so LamPOTrainer overrides two private methods of GRPOTrainer (the route its
maintainers point to in trl#4525). Private methods change between releases: the version tested is pinned in
scale/requirements.txt.
"""

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
from trl import GRPOConfig, GRPOTrainer, ModelConfig, TrlParser, get_peft_config, get_quantization_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # lampo.py sits one folder up
import lampo  # noqa: E402


# -----------------------------------------------------------------------------
# Settings
# Only what TRL has no flag for: LamPO's tau and ROUGE-L weight, and lampo.py's dataset flags. The
# defaults and help texts are lampo.py's own, read from its Config, so the two entry points never drift.

def lampo_field(name: str):
    """A field with lampo.py's own default and help text for the flag of the same name."""
    spec = lampo.Config.__dataclass_fields__[name]
    return field(default=spec.default, metadata={"help": spec.metadata["help"]})


@dataclass
class LamPOArguments:
    tau: float = lampo_field("tau")
    rouge_weight: float = lampo_field("rouge_weight")
    dataset: str = lampo_field("dataset")
    dataset_config: str | None = lampo_field("dataset_config")
    split: str = lampo_field("split")
    prompt_field: str = lampo_field("prompt_field")
    solution_field: str = lampo_field("solution_field")
    answer_field: str | None = lampo_field("answer_field")
    thinking: bool = lampo_field("thinking")


# -----------------------------------------------------------------------------
# Reward and data
# TRL calls a reward function with the completions and, as keyword arguments, every other column of
# the dataset, one value per completion. The dataset therefore carries each problem's gold answer and
# solution next to its prompt.

def completion_text(completion) -> str:
    # A text prompt gets a text completion; a chat prompt gets [{"role": "assistant", "content": ...}].
    return completion if isinstance(completion, str) else completion[-1]["content"]


def lampo_reward_func(rouge_weight: float):
    """A TRL reward function: lampo.reward of each completion against its row's answer and solution."""

    def lampo_reward(completions, answer, solution, log_metric, **unused_columns) -> list[float]:
        results = [lampo.reward(completion_text(c), {"answer": a, "solution": s}, rouge_weight)
                   for c, a, s in zip(completions, answer, solution, strict=True)]
        log_metric("accuracy", sum(r["correct"] for r in results) / len(results))
        log_metric("rouge", sum(r["rouge"] for r in results) / len(results))
        return [r["reward"] for r in results]

    return lampo_reward


def training_dataset(args: LamPOArguments, tokenizer) -> datasets.Dataset:
    """lampo.py's examples as TRL rows: its prompt text, the gold answer and the solution."""
    examples, dropped = lampo.load_examples(lampo.Config(
        dataset=args.dataset, dataset_config=args.dataset_config, split=args.split,
        prompt_field=args.prompt_field, solution_field=args.solution_field, answer_field=args.answer_field))
    if dropped:
        lampo.log(f"{dropped} rows of {args.dataset} dropped: no gold answer")
    # The prompt is lampo.py's templated text, so both paths sample from the same prompt and score the same
    # decoded text. TRL tokenizes a text prompt with the tokenizer's special tokens: none for Qwen3.
    return datasets.Dataset.from_list([
        {"prompt": lampo.build_prompt(tokenizer, ex["problem"], args.thinking), "answer": ex["answer"],
         "solution": ex["solution"]} for ex in examples])


# -----------------------------------------------------------------------------
# The trainer

@contextmanager
def activation_checkpointing_off(model, checkpointing_kwargs: dict | None):
    # A no-grad pass has nothing to recompute, and reentrant checkpointing warns in one. TRL switches
    # it off the same way, through transformers' deprecated gradient_checkpointing_* names.
    was_on = model.is_activation_checkpointing
    if was_on:
        model.activation_checkpointing_disable()
    try:
        yield
    finally:
        if was_on:
            model.activation_checkpointing_enable(checkpointing_kwargs)


class LamPOTrainer(GRPOTrainer):
    """GRPOTrainer that trains with LamPO's pairwise advantage instead of TRL's.

    The advantages replace TRL's in the dict _generate_and_score_completions returns, before TRL buffers it
    for its mini-batches and iterations, so every loss term sees them. TRL's scale_rewards is unused:
    LamPO's advantage is not std-normalised. Single-turn text completions only.
    """

    def __init__(self, model, reward_funcs, args: GRPOConfig, *, tau: float = lampo.Config.tau, **kwargs):
        if not tau > 0:
            raise lampo.UsageError(f"--tau must be positive (got {tau})")
        if args.mask_truncated_completions:
            raise lampo.UsageError("--mask_truncated_completions is not supported by LamPO: the scores s_i "
                                   "need the log-probs of cut-off completions, which it masks out; drop the "
                                   "flag")
        if args.multi_objective_aggregation != "sum_then_normalize":
            raise lampo.UsageError(f"--multi_objective_aggregation {args.multi_objective_aggregation} is not "
                                   "supported by LamPO: its advantage takes the weighted sum of the raw "
                                   "rewards; drop the flag")
        if any(kwargs.get(name) for name in ("tools", "rollout_func", "environment_factory")):
            raise lampo.UsageError("LamPOTrainer trains on single-turn completions: tools, rollout_func and "
                                   "environment_factory would put tokens the policy did not sample into "
                                   "s_i")
        super().__init__(model, reward_funcs, args, **kwargs)
        if self.num_generations_eval < 2:
            raise lampo.UsageError(f"--num_generations_eval must be at least 2 (got "
                                   f"{self.num_generations_eval}): LamPO's advantage compares the "
                                   "completions of a group")
        self.tau = tau

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        # Already gathered from every process. A completion's reward is the weighted sum TRL itself would
        # normalise; _generate_and_score_completions, which called this, reads it once it returns.
        weights = self.reward_weights.to(rewards_per_func.device)
        self._rewards_all_processes = (rewards_per_func * weights).nansum(dim=1)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        # Group layout. Gathered in process order, the generation batch of all processes is the order of
        # TRL's RepeatSampler: each prompt's group_size completions are consecutive (a group may straddle
        # two processes; that is why TRL gathers the rewards before it normalises them). The scores are
        # gathered the same way, so they line up with the rewards row for row, and view(-1, group_size)
        # is the grouping TRL's own advantage uses. test_lampo.py checks this with two CPU processes.
        scores = self.accelerator.gather(self._sequence_scores(output, mode))
        advantages = lampo.lampo_advantages(self._rewards_all_processes.view(-1, group_size),
                                            scores.view(-1, group_size), self.tau).view(-1)
        self._show_in_completion_logs(advantages)
        # Each process keeps its own rows, as TRL does: every process holds the same number of rows, in
        # the order it gathered them.
        rows = output["completion_ids"].size(0)
        start = self.accelerator.process_index * rows
        output["advantages"] = advantages[start:start + rows]
        return output

    def _sequence_scores(self, output, mode: str) -> torch.Tensor:
        """s_i, this process's rows: the old policy's mean log-prob per completion token (EOS included)."""
        old_logps = output.get("old_per_token_logps")
        if old_logps is None:
            old_logps = self._old_policy_logps(output, mode)
        mask = output["completion_mask"].bool()
        return torch.where(mask, old_logps, 0.0).sum(1) / mask.sum(1).clamp(min=1)

    def _old_policy_logps(self, output, mode: str) -> torch.Tensor:
        # TRL computes pi_old's log-probs only when the policy can change between sampling and a loss term
        # (one generation feeds several optimizer steps) or when vLLM samples (importance-sampling
        # correction). Otherwise its loss uses the current log-probs, detached, as pi_old. s_i is needed
        # before the loss, so this runs the same no-grad pass TRL would: same model, same function, logits
        # divided by the sampling temperature.
        ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
        attention_mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        batch_size = (self.args.per_device_train_batch_size if mode == "train"
                      else self.args.per_device_eval_batch_size)
        checkpointing_kwargs = self.args.activation_checkpointing_kwargs
        with torch.no_grad(), activation_checkpointing_off(self.model, checkpointing_kwargs):
            logps, _, _ = self._get_per_token_logps_and_entropies(
                self.model, ids, attention_mask, output["completion_ids"].size(1), batch_size=batch_size)
        return logps

    def _show_in_completion_logs(self, advantages: torch.Tensor) -> None:
        # TRL has logged its own advantages of this batch for the completions table (--log_completions);
        # put the ones the policy trains with in their place.
        logged = self._logs["advantages"]
        for _ in range(min(len(advantages), len(logged))):
            logged.pop()
        logged.extend(advantages.tolist())


# -----------------------------------------------------------------------------
# CLI: TRL's own parser, so every GRPOConfig and ModelConfig flag (and --config file.yaml) works.

def build_trainer(args: LamPOArguments, training_args: GRPOConfig, model_args: ModelConfig) -> LamPOTrainer:
    if not model_args.model_name_or_path:
        raise lampo.UsageError("--model_name_or_path is required: a hub id (Qwen/Qwen3-1.7B) or a local "
                               "folder")
    training_args.model_init_kwargs = {"dtype": model_args.dtype, "revision": model_args.model_revision,
                                       "attn_implementation": model_args.attn_implementation,
                                       **(training_args.model_init_kwargs or {})}
    tokenizer = lampo.load_tokenizer(model_args.model_name_or_path)
    return LamPOTrainer(model_args.model_name_or_path, lampo_reward_func(args.rouge_weight), training_args,
                        train_dataset=training_dataset(args, tokenizer), processing_class=tokenizer,
                        peft_config=get_peft_config(model_args),
                        quantization_config=get_quantization_config(model_args), tau=args.tau)


def main(argv: list[str] | None = None) -> None:
    parser = TrlParser((LamPOArguments, GRPOConfig, ModelConfig))
    args, training_args, model_args = parser.parse_args_and_config(argv)
    try:
        trainer = build_trainer(args, training_args, model_args)
    except lampo.UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.end()


if __name__ == "__main__":
    main()

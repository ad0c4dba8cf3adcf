"""A tiny random Qwen3ForCausalLM with a byte-level tokenizer and a Qwen3-style chat template.

The tests, the CPU demo and the benchmarks build their model here: it is saved to a folder and
loaded back through the same from_pretrained path that loads Qwen/Qwen3-1.7B, and needs no download.
"""

import torch

QWEN3_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


def build_tiny_model(path, vocab_size=None, seed=0, extra_tokens=(), **config):
    """Save a byte-level tokenizer and a random Qwen3ForCausalLM to `path`; return the path.

    Like Qwen3, the pad token (<|endoftext|>) is also an end token, beside <|im_end|>. extra_tokens
    become whole tokens of the vocabulary (the CPU demo's one-token answers, such as \\boxed{7})."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.add_tokens(["<think>", "</think>", *extra_tokens])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        chat_template=QWEN3_CHAT_TEMPLATE)
    tokenizer.save_pretrained(path)
    end_ids = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id]
    settings = dict(vocab_size=vocab_size or len(tokenizer), hidden_size=64, intermediate_size=128,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                    max_position_embeddings=1024, tie_word_embeddings=True, eos_token_id=end_ids,
                    pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(Qwen3Config(**{**settings, **config}))
    model.generation_config.eos_token_id = end_ids
    model.save_pretrained(path)
    return str(path)

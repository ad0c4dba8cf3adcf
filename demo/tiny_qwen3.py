"""A tiny random Qwen3ForCausalLM with a byte-level tokenizer and a Qwen3-style chat template.

The tests, the CPU demo and the benchmarks build their model here: it is saved to a folder and
loaded back through the same from_pretrained path that loads Qwen/Qwen3-1.7B, and needs no download.

build_tiny_model_with_qwen3_tokenizer dresses the same tiny network in Qwen3's real tokenizer files
(the full vocabulary, the real chat template) and Qwen3-1.7B's generation config, for the tests
that must see exactly what the real model sees.
"""

import shutil
from pathlib import Path

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
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.add_tokens(["<think>", "</think>", *extra_tokens])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", chat_template=QWEN3_CHAT_TEMPLATE)
    tokenizer.save_pretrained(path)
    end_ids = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id]
    settings = dict(vocab_size=vocab_size or len(tokenizer), eos_token_id=end_ids,
                    pad_token_id=tokenizer.pad_token_id)
    model = random_qwen3({**settings, **config}, seed)
    model.generation_config.eos_token_id = end_ids
    model.save_pretrained(path)
    return str(path)


# Qwen/Qwen3-1.7B's vocab_size (config.json) and its generation_config.json. The embedding has more
# rows (151,936) than the tokenizer has tokens (151,669), as in the real model.
QWEN3_VOCAB_SIZE = 151936
QWEN3_1_7B_GENERATION_CONFIG = dict(bos_token_id=151643, do_sample=True, eos_token_id=[151645, 151643],
                                    pad_token_id=151643, temperature=0.6, top_k=20, top_p=0.95)
QWEN3_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def build_tiny_model_with_qwen3_tokenizer(path, tokenizer_dir, seed=0, **config):
    """Copy Qwen3's tokenizer.json and tokenizer_config.json from tokenizer_dir to `path`, save a
    random tiny Qwen3ForCausalLM with Qwen3's vocabulary and Qwen3-1.7B's generation config beside
    them; return the path."""
    from transformers import GenerationConfig

    Path(path).mkdir(parents=True, exist_ok=True)
    for name in QWEN3_TOKENIZER_FILES:
        shutil.copyfile(Path(tokenizer_dir) / name, Path(path) / name)
    settings = dict(vocab_size=QWEN3_VOCAB_SIZE, bos_token_id=151643, eos_token_id=151645)
    model = random_qwen3({**settings, **config}, seed)
    model.generation_config = GenerationConfig(**QWEN3_1_7B_GENERATION_CONFIG)
    model.save_pretrained(path)
    return str(path)


def random_qwen3(config, seed):
    """A Qwen3ForCausalLM with random weights: hidden 64 and 2 layers unless `config` says otherwise."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    settings = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=16, max_position_embeddings=1024,
                    tie_word_embeddings=True)
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(Qwen3Config(**{**settings, **config}))

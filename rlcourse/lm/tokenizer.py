"""A character-level tokenizer for the course's tiny language models (chapter 05).

One token per character, plus four special tokens. Built with the ``tokenizers`` library and wrapped
as a transformers ``PreTrainedTokenizerFast``, so it saves, loads (``AutoTokenizer.from_pretrained``)
and pads like any Hugging Face tokenizer. One vocabulary covers both course tasks: arithmetic
(``"23+45="``) and the tiny review language (``"the food was great ."``).

Public API
----------
- ``SPECIAL_TOKENS``: ``("<pad>", "<bos>", "<eos>", "<unk>")`` with ids 0, 1, 2, 3.
- ``ALPHABET``: the characters that get a token of their own.
- ``build_tokenizer(alphabet=ALPHABET) -> PreTrainedTokenizerFast``: ``tok("23+45=")["input_ids"]``
  is ``[<bos>, '2', '3', '+', '4', '5', '=']`` (a ``<bos>`` is prepended, no ``<eos>``);
  ``pad_token_id != eos_token_id`` (so "the last real token" is never confused with padding,
  transformers issue #35352); ``padding_side == "left"`` (generation appends on the right).
- ``encode_prompts(tokenizer, prompts, device=None) -> (input_ids (B, P), attention_mask (B, P))``:
  left-padded prompt batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
ALPHABET = "0123456789+-*=.,!?' abcdefghijklmnopqrstuvwxyz"


def build_tokenizer(alphabet: str = ALPHABET) -> PreTrainedTokenizerFast:
    """Build the character-level tokenizer: ids 0-3 are ``<pad> <bos> <eos> <unk>``, then one id per character.

    Unknown characters map to ``<unk>``. Decoding joins characters without spaces
    (``skip_special_tokens=True`` drops ``<bos>``/``<eos>``/``<pad>``).
    """
    if len(set(alphabet)) != len(alphabet):
        raise ValueError(f"alphabet has repeated characters: {alphabet!r}")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        padding_side="left",
    )
    return tok


def encode_prompts(
    tokenizer, prompts: Sequence[str], device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize ``prompts`` and left-pad them into one batch.

    Returns:
        ``input_ids (B, P)`` (long) and ``attention_mask (B, P)`` (long, 0 on padding), where ``P`` is the
        longest prompt in tokens. Left padding puts every prompt's last token in column ``P - 1``, so
        generated tokens line up in the columns after it.
    """
    if isinstance(prompts, str):
        raise ValueError("prompts must be a list of strings, got a single string; wrap it: [prompt]")
    if len(prompts) == 0:
        raise ValueError("prompts is empty; pass at least one prompt")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token before batching prompts")
    rows = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    if any(len(r) == 0 for r in rows):
        raise ValueError(
            "a prompt encodes to zero tokens; give every prompt at least one character or a <bos>"
        )
    return left_pad(rows, tokenizer.pad_token_id, device)


def left_pad(
    rows: Sequence[Sequence[int]], pad_token_id: int, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad lists of token ids into ``input_ids (B, W)`` and ``attention_mask (B, W)`` (long).

    ``W`` is the longest row; padding goes on the left so every row ends in column ``W - 1``.
    """
    if len(rows) == 0:
        raise ValueError("no rows to pad; pass at least one sequence of token ids")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)

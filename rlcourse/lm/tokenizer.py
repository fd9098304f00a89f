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
- ``encode_text(tokenizer, text, add_special_tokens=True, name="text") -> list[int]``: one string's ids;
  a character the vocabulary lacks raises ``ValueError`` naming it and the vocabulary (never a silent
  ``<unk>``, which would make the model read a different prompt from the one you wrote).
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


def describe_vocabulary(tokenizer) -> str:
    """The tokenizer's ordinary (non-special) tokens as one string if they are single characters, else a count."""
    special = set(getattr(tokenizer, "all_special_tokens", []))
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab if t not in special]
    if tokens and len(tokens) <= 256 and all(len(t) == 1 for t in tokens):
        return f"the characters {''.join(tokens)!r}"
    return f"its vocabulary of {len(vocab)} tokens"


def _unknown_characters(tokenizer, text: str, ids: list[int], offsets) -> list[str]:
    """Characters of ``text`` that were encoded as ``<unk>`` (a literal ``"<unk>"`` in the text is allowed)."""
    unk = tokenizer.unk_token_id
    if unk is None or unk not in ids:
        return []
    if offsets is not None:
        spans = [text[a:b] for i, (a, b) in zip(ids, offsets, strict=True) if i == unk]
        return [c for c in spans if c != tokenizer.unk_token]
    return [c for c in dict.fromkeys(text) if tokenizer.convert_tokens_to_ids(c) == unk]


def encode_text(tokenizer, text: str, add_special_tokens: bool = True, name: str = "text") -> list[int]:
    """Token ids of one string; raise ``ValueError`` if a character of it is not in the vocabulary.

    ``name`` (e.g. ``"prompts[2]"``) says in the message which argument held the bad character.
    """
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a string, got {text!r} ({type(text).__name__})")
    fast = getattr(tokenizer, "is_fast", False)
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=fast)
    ids = list(enc["input_ids"])
    bad = _unknown_characters(tokenizer, text, ids, enc.get("offset_mapping") if fast else None)
    if bad:
        chars = ", ".join(repr(c) for c in dict.fromkeys(bad))
        raise ValueError(
            f"{name} = {text!r} contains {chars}, which the tokenizer does not know (it would silently become "
            f"{tokenizer.unk_token}); the tokenizer knows {describe_vocabulary(tokenizer)}. "
            "Fix: rewrite the text with those characters only (e.g. lower-case it)"
        )
    return ids


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
    rows = [
        encode_text(tokenizer, p, add_special_tokens=True, name=f"prompts[{i}]")
        for i, p in enumerate(prompts)
    ]
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

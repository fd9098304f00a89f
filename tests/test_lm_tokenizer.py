"""Tests for rlcourse.lm.tokenizer: the character-level tokenizer."""

import pytest
import torch
from transformers import AutoTokenizer

from rlcourse.lm.tokenizer import ALPHABET, SPECIAL_TOKENS, build_tokenizer, encode_prompts


def test_special_tokens_and_ids():
    tok = build_tokenizer()
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    assert tok.pad_token_id != tok.eos_token_id
    assert len(tok) == len(SPECIAL_TOKENS) + len(ALPHABET)
    assert tok.padding_side == "left"


def test_one_token_per_character_with_bos_and_roundtrip():
    tok = build_tokenizer()
    text = "23+45= the food was great ."
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == len(text) + 1
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok("A")["input_ids"] == [tok.bos_token_id, tok.unk_token_id]


def test_save_and_reload_with_autotokenizer(tmp_path):
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("12+3=")["input_ids"] == tok("12+3=")["input_ids"]
    assert again.pad_token_id == 0 and again.eos_token_id == 2


def test_encode_prompts_left_pads():
    tok = build_tokenizer()
    ids, mask = encode_prompts(tok, ["1+2=", "11+22="])
    assert ids.shape == mask.shape == (2, 7)
    assert mask[0].tolist() == [0, 0, 1, 1, 1, 1, 1]
    assert ids[0, :2].tolist() == [0, 0]
    assert torch.equal(ids[0, 2:], torch.tensor(tok("1+2=")["input_ids"]))


def test_encode_prompts_rejects_bad_input():
    tok = build_tokenizer()
    with pytest.raises(ValueError, match="single string"):
        encode_prompts(tok, "1+2=")
    with pytest.raises(ValueError, match="empty"):
        encode_prompts(tok, [])

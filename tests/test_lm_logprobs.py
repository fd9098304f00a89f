"""Tests for rlcourse.lm.logprobs: masked token and sequence log-probs."""

import pytest
import torch

from rlcourse.lm.logprobs import masked_mean, sequence_logprobs, shift_mask, token_logprobs
from rlcourse.lm.model import init_model
from rlcourse.lm.sft import sft_batch
from rlcourse.lm.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def lm():
    tok = build_tokenizer()
    return init_model(tok, seed=0, n_embd=32, n_layer=2, n_head=2).eval(), tok


def manual_logprobs(model, ids):
    """One forward pass per prefix: log pi(ids[t+1] | ids[:t+1]) for a single unpadded row (T,)."""
    out = []
    for t in range(len(ids) - 1):
        logits = model(input_ids=ids[None, : t + 1]).logits[0, -1]
        out.append(torch.log_softmax(logits, -1)[ids[t + 1]])
    return torch.stack(out)


def test_token_logprobs_match_a_manual_loop_over_positions(lm):
    model, tok = lm
    ids = torch.tensor(tok("12+34=46")["input_ids"])
    with torch.no_grad():
        got = token_logprobs(model, ids[None], torch.ones_like(ids)[None])[0]
        want = manual_logprobs(model, ids)
    assert got.shape == (len(ids) - 1,)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_left_padding_changes_no_logprob(lm):
    model, tok = lm
    ids, att, comp = sft_batch(tok, ["1+2=", "10+22="], ["3", "32"])
    assert att[0, 0] == 0  # row 0 is left-padded
    with torch.no_grad():
        batched = token_logprobs(model, ids, att)
        alone = token_logprobs(model, ids[:1, att[0].bool()], att[:1, att[0].bool()])
    n = alone.shape[1]
    torch.testing.assert_close(batched[0, -n:], alone[0], atol=1e-5, rtol=1e-5)


def test_sequence_logprobs_sums_completion_tokens_only(lm):
    model, tok = lm
    ids, att, comp = sft_batch(tok, ["1+2=", "10+22="], ["3", "32"])
    with torch.no_grad():
        seq = sequence_logprobs(model, ids, att, comp)
        tokens = token_logprobs(model, ids, att)
    assert seq.shape == (2,)
    # row 1: completion "32" + <eos> = the last three tokens
    torch.testing.assert_close(seq[1], tokens[1, -3:].sum())
    torch.testing.assert_close(seq[0], tokens[0, -2:].sum())
    # changing a prompt token's score does not matter: the completion mask excludes the prompt
    assert comp[:, :-3].sum() == 0 and (comp * (1 - att)).sum() == 0


def test_temperature_divides_logits(lm):
    model, tok = lm
    ids, att, _ = sft_batch(tok, ["1+2="], ["3"])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        want = torch.log_softmax(logits[:, :-1] / 0.7, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        got = token_logprobs(model, ids, att, temperature=0.7)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_gradients_flow(lm):
    model, tok = lm
    ids, att, comp = sft_batch(tok, ["1+2="], ["3"])
    sequence_logprobs(model, ids, att, comp).sum().backward()
    assert model.transformer.wte.weight.grad is not None
    model.zero_grad()


def test_shape_and_mask_mismatches_raise(lm):
    model, tok = lm
    ids, att, comp = sft_batch(tok, ["1+2="], ["3"])
    with pytest.raises(ValueError, match="attention_mask"):
        token_logprobs(model, ids, att[:, 1:])
    with pytest.raises(ValueError, match="completion_mask"):
        sequence_logprobs(model, ids, att, comp[:, 1:])
    bad = comp.clone()
    bad[0, 0] = 1
    with pytest.raises(ValueError, match="first token|padding"):
        sequence_logprobs(model, ids, torch.ones_like(att), bad)
    with pytest.raises(ValueError, match="empty"):
        token_logprobs(model, ids[:0], att[:0])
    with pytest.raises(ValueError, match="first token"):
        shift_mask(bad)


def test_masked_mean():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = torch.tensor([[1, 1, 0], [0, 0, 1]])
    torch.testing.assert_close(masked_mean(x, m), torch.tensor(3.0))
    torch.testing.assert_close(masked_mean(x, m, dim=1), torch.tensor([1.5, 6.0]))
    with pytest.raises(ValueError, match="no entries"):
        masked_mean(x, torch.zeros_like(m))
    with pytest.raises(ValueError, match="shape"):
        masked_mean(x, m[:, :2])

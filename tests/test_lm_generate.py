"""Tests for rlcourse.lm.generate: left-padded sampling with a KV cache and completion masks."""

import pytest
import torch

from rlcourse.lm.generate import generate
from rlcourse.lm.logprobs import token_logprobs
from rlcourse.lm.model import init_model
from rlcourse.lm.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def lm():
    tok = build_tokenizer()
    return init_model(tok, seed=0, n_embd=32, n_layer=2, n_head=2).eval(), tok


def naive_greedy(model, tok, prompt, n):
    """Recompute the whole sequence per token, no cache, no padding."""
    ids = torch.tensor([tok(prompt)["input_ids"]])
    out = []
    for _ in range(n):
        nxt = model(input_ids=ids).logits[0, -1].argmax().item()
        out.append(nxt)
        if nxt == tok.eos_token_id:
            break
        ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
    return out


def test_greedy_with_cache_and_padding_matches_naive_loop(lm):
    model, tok = lm
    prompts = ["1+2=", "33+44=", "the food was"]
    roll = generate(model, tok, prompts, max_new_tokens=6, temperature=0)
    P = roll.prompt_length
    for i, p in enumerate(prompts):
        want = naive_greedy(model, tok, p, 6)
        got = roll.input_ids[i, P:][roll.completion_mask[i, P:].bool()].tolist()
        assert got == want


def test_rollout_shapes_and_masks(lm):
    model, tok = lm
    g = torch.Generator().manual_seed(0)
    roll = generate(model, tok, ["1+2=", "33+44="], max_new_tokens=5, num_samples=3, generator=g)
    B, T = roll.input_ids.shape
    assert (
        B == 6
        and len(roll) == 6
        and T == roll.prompt_length + roll.completion_mask.shape[1] - roll.prompt_length
    )
    assert roll.attention_mask.shape == roll.completion_mask.shape == (B, T)
    assert roll.prompt_index.tolist() == [0, 0, 0, 1, 1, 1]
    assert roll.row_prompts[3] == "33+44="
    # the completion mask excludes the prompt and its padding...
    assert roll.completion_mask[:, : roll.prompt_length].sum() == 0
    assert (roll.completion_mask * (1 - roll.attention_mask)).sum() == 0
    # ...and is a block of ones starting right after the prompt
    for row in roll.completion_mask[:, roll.prompt_length :].tolist():
        n = sum(row)
        assert row == [1] * n + [0] * (len(row) - n)


class EosBiased(torch.nn.Module):
    """Wraps an LM and adds ``bias`` to the <eos> logit, so some rows stop early and some do not."""

    def __init__(self, model, eos, bias=3.0):
        super().__init__()
        self.model, self.config, self.eos, self.bias = model, model.config, eos, bias

    def forward(self, **kw):
        out = self.model(**kw)
        out.logits[..., self.eos] += self.bias
        return out


def test_completion_mask_stops_at_eos(lm):
    model, tok = lm
    biased = EosBiased(model, tok.eos_token_id)
    roll = generate(
        biased,
        tok,
        ["1+2=", "5+5="],
        max_new_tokens=8,
        num_samples=50,
        generator=torch.Generator().manual_seed(0),
    )
    P = roll.prompt_length
    for i in range(len(roll)):
        gen = roll.input_ids[i, P:].tolist()
        m = roll.completion_mask[i, P:].tolist()
        if roll.finished[i]:
            k = gen.index(tok.eos_token_id)
            assert m == [1] * (k + 1) + [0] * (len(m) - k - 1)
            assert all(t == tok.pad_token_id for t in gen[k + 1 :])
        else:
            assert all(m) and len(m) == 8
    assert roll.finished.any() and not roll.finished.all()


def test_special_tokens_inside_a_completion_stay_visible(lm):
    model, tok = lm
    roll = generate(EosBiased(model, tok.bos_token_id, bias=50.0), tok, ["1+2="], max_new_tokens=2)
    assert roll.completions == ["<bos><bos>"] and not roll.finished.any()
    assert roll.texts == ["1+2=<bos><bos>"]


def test_generation_is_reproducible_with_a_seed(lm):
    model, tok = lm
    a = generate(
        model, tok, ["1+2="], max_new_tokens=6, num_samples=4, generator=torch.Generator().manual_seed(3)
    )
    b = generate(
        model, tok, ["1+2="], max_new_tokens=6, num_samples=4, generator=torch.Generator().manual_seed(3)
    )
    c = generate(
        model, tok, ["1+2="], max_new_tokens=6, num_samples=4, generator=torch.Generator().manual_seed(4)
    )
    assert torch.equal(a.input_ids, b.input_ids) and a.completions == b.completions
    assert not torch.equal(a.input_ids, c.input_ids)


def test_top_k_one_is_greedy(lm):
    model, tok = lm
    a = generate(model, tok, ["12+3="], max_new_tokens=5, top_k=1, generator=torch.Generator().manual_seed(0))
    b = generate(model, tok, ["12+3="], max_new_tokens=5, temperature=0)
    assert torch.equal(a.input_ids, b.input_ids)


def test_sampling_follows_the_models_distribution(lm):
    """The first sampled token's frequencies match exp(token_logprobs) of the model."""
    model, tok = lm
    roll = generate(
        model, tok, ["1+2="], max_new_tokens=1, num_samples=4000, generator=torch.Generator().manual_seed(0)
    )
    P = roll.prompt_length
    freq = torch.bincount(roll.input_ids[:, P], minlength=len(tok)).float() / len(roll)
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=roll.input_ids[:1, :P]).logits[0, -1], -1)
        lp = token_logprobs(model, roll.input_ids[:5], roll.attention_mask[:5])[:, -1]
    torch.testing.assert_close(lp.exp(), probs[roll.input_ids[:5, P]], atol=1e-5, rtol=1e-5)
    assert (freq - probs).abs().max() < 0.03


def test_bad_arguments_raise(lm):
    model, tok = lm
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, tok, ["1+2="], max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, tok, ["1+2="], temperature=-1)
    with pytest.raises(ValueError, match="empty"):
        generate(model, tok, [])
    with pytest.raises(ValueError, match="positions"):
        generate(model, tok, ["1+2="], max_new_tokens=500)

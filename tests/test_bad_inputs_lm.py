"""Bad inputs to the language-model core (rlcourse.lm) get clear errors; no save loses a checkpoint (issue 12).

Every case asserts the exception type and that the message names the offending argument or file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2LMHeadModel

from rlcourse.checks import TrainingError
from rlcourse.lm import files as lm_files
from rlcourse.lm import loading as lm_loading
from rlcourse.lm.generate import generate
from rlcourse.lm.kl import kl_estimate, kl_k1, kl_k3
from rlcourse.lm.logprobs import logprobs_from_logits, masked_mean, sequence_logprobs, token_logprobs
from rlcourse.lm.model import RewardModel, ValueHeadModel, data_dir, load_model, tiny_gpt2_config
from rlcourse.lm.sft import SFTConfig, sft_batch, train_sft
from rlcourse.lm.tokenizer import build_tokenizer, encode_prompts

TOK = build_tokenizer()
V = len(TOK)


def tiny_lm(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return GPT2LMHeadModel(tiny_gpt2_config(V, n_embd=32, n_layer=1, n_head=2, n_positions=32)).eval()


MODEL = tiny_lm()


def batch():
    """Left-padded rows ``<pad> <pad> <pad> <bos> 1 + 2 = 3 <eos>`` and ``<bos> 1 0 + 2 0 = 3 0 <eos>``."""
    ids, att, comp = sft_batch(TOK, ["1+2=", "10+20="], ["3", "30"])
    return ids, att, comp


# ----------------------------------------------------------------------------------------- generate


def test_one_string_is_one_prompt_not_one_prompt_per_character():
    roll = generate(MODEL, TOK, "1+1=", max_new_tokens=2, temperature=0)
    assert len(roll) == 1 and roll.prompts == ["1+1="] and roll.texts[0].startswith("1+1=")


def test_numpy_integers_and_tuples_are_accepted():
    roll = generate(
        MODEL, TOK, ("1+1=", "2+2="), max_new_tokens=np.int64(2), num_samples=np.int32(2), top_k=np.int64(3)
    )
    assert len(roll) == 4 and roll.input_ids.shape[1] <= roll.prompt_length + 2


@pytest.mark.parametrize(
    "kwargs,err,names",
    [
        (dict(prompts=5), TypeError, "prompts"),
        (dict(prompts=["1+1=", 7]), TypeError, "prompts[1]"),
        (dict(prompts=["1+1=", "The food"]), ValueError, "'T'"),
        (dict(max_new_tokens=2.5), TypeError, "max_new_tokens"),
        (dict(max_new_tokens=0), ValueError, "max_new_tokens"),
        (dict(max_new_tokens=-3), ValueError, "max_new_tokens"),
        (dict(max_new_tokens=True), TypeError, "max_new_tokens"),
        (dict(temperature=-0.5), ValueError, "temperature"),
        (dict(temperature=float("nan")), ValueError, "temperature"),
        (dict(top_k=0), ValueError, "top_k"),
        (dict(num_samples=2.0), TypeError, "num_samples"),
        (dict(num_samples=0), ValueError, "num_samples"),
        (dict(generator=123), TypeError, "generator"),
    ],
)
def test_generate_refuses_bad_arguments(kwargs, err, names):
    args = dict(prompts=["1+1="], max_new_tokens=2)
    args.update(kwargs)
    with pytest.raises(err) as info:
        generate(MODEL, TOK, **args)
    assert names in str(info.value)


def test_unknown_character_names_it_and_the_vocabulary():
    with pytest.raises(ValueError) as info:
        encode_prompts(TOK, ["1+1=", "2×3="])
    msg = str(info.value)
    assert "prompts[1]" in msg and "'×'" in msg and "0123456789" in msg and "<unk>" in msg


def test_a_literal_unk_token_in_the_text_is_not_an_unknown_character():
    ids, _ = encode_prompts(TOK, ["a <unk>"])
    assert ids[0, -1].item() == TOK.unk_token_id


def test_sft_batch_names_the_completion_with_an_unknown_character():
    with pytest.raises(ValueError, match=r"completions\[1\].*'~'"):
        sft_batch(TOK, ["1+1=", "2+2="], ["2", "4~"])


def test_sft_batch_refuses_a_single_string():
    with pytest.raises(TypeError, match="prompts must be a list"):
        sft_batch(TOK, "1+1=", "2")


# ----------------------------------------------------------------------------------------- log-probs, masks


def test_float_input_ids_are_refused():
    ids, att, _ = batch()
    with pytest.raises(TypeError, match="input_ids must hold integer token ids"):
        token_logprobs(MODEL, ids.float(), att)
    with pytest.raises(TypeError, match="input_ids"):
        logprobs_from_logits(torch.zeros(*ids.shape, V), ids.float())


@pytest.mark.parametrize("bad_id", [V, V + 10, -1])
def test_ids_outside_the_vocabulary_are_refused(bad_id):
    ids, att, _ = batch()
    ids[0, 3] = bad_id
    with pytest.raises(ValueError) as info:
        token_logprobs(MODEL, ids, att)
    assert (
        "input_ids" in str(info.value) and f"[0, {V})" in str(info.value) and str(bad_id) in str(info.value)
    )


def test_ids_outside_the_vocabulary_are_refused_by_the_heads():
    ids, att, _ = batch()
    ids[1, -1] = V
    with pytest.raises(ValueError, match="input_ids holds the id"):
        RewardModel(tiny_lm())(ids, att)


def test_all_zero_attention_row_is_refused():
    ids, att, _ = batch()
    att[1] = 0
    with pytest.raises(ValueError, match="attention_mask row 1 is all zeros"):
        token_logprobs(MODEL, ids, att)
    with pytest.raises(ValueError, match="attention_mask row 1"):
        ValueHeadModel(tiny_lm())(ids, att)


def test_attention_mask_must_be_zero_or_one():
    ids, att, _ = batch()
    att[0, -1] = 2
    with pytest.raises(ValueError, match="attention_mask must hold only 0 and 1"):
        token_logprobs(MODEL, ids, att)


def test_all_zero_completion_row_is_refused():
    ids, att, comp = batch()
    comp[0] = 0
    with pytest.raises(ValueError, match="completion_mask row 0 is all zeros"):
        sequence_logprobs(MODEL, ids, att, comp)


def test_non_positive_logprob_temperature_is_refused():
    ids, att, _ = batch()
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(MODEL, ids, att, temperature=0.0)


class _NaNAt(torch.nn.Module):
    """A model whose logits are NaN at one position (a diverged model)."""

    def __init__(self, model, row, col):
        super().__init__()
        self.model, self.config, self.row, self.col = model, model.config, row, col

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def forward(self, **kw):
        out = self.model(**kw)
        out.logits[self.row, self.col] = float("nan")
        return out


def test_nan_logprob_on_a_real_token_names_the_tensor_and_index():
    ids, att, comp = batch()
    with pytest.raises(ValueError) as info:
        sequence_logprobs(_NaNAt(MODEL, 1, 3), ids, att, comp)
    assert "token_logprobs" in str(info.value) and "(1, 3)" in str(info.value)


def test_nan_at_a_padding_position_does_not_leak():
    ids, att, comp = batch()
    assert att[0, 1] == 0  # row 0 is left-padded: its column 1 is padding (and scores column 2)
    clean = sequence_logprobs(MODEL, ids, att, comp)
    dirty = sequence_logprobs(_NaNAt(MODEL, 0, 1), ids, att, comp)
    torch.testing.assert_close(dirty, clean)


def test_masked_mean_ignores_nan_where_masked_and_refuses_it_where_selected():
    x = torch.tensor([[1.0, float("nan"), 3.0]])
    assert masked_mean(x, torch.tensor([[1, 0, 1]])).item() == 2.0
    with pytest.raises(ValueError, match=r"advantages contains a non-finite value \(nan\) at index \(0, 1\)"):
        masked_mean(x, torch.ones(1, 3), name="advantages")


def test_kl_refuses_nan_and_names_the_tensor():
    logp = torch.full((2, 3), -1.0)
    ref = logp.clone()
    ref[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"ref_logp contains a non-finite value \(nan\) at index \(1, 2\)"):
        kl_k3(logp, ref)
    with pytest.raises(ValueError, match=r"logp contains a non-finite value \(-inf\) at index \(0, 0\)"):
        kl_k1(torch.tensor([[-math.inf, -1.0]]), torch.tensor([[-1.0, -1.0]]))


def test_kl_with_a_mask_returns_zero_where_masked_even_for_nan():
    logp = torch.tensor([[-1.0, float("nan")]])
    ref = torch.tensor([[-2.0, -1.0]])
    kl = kl_k3(logp, ref, mask=torch.tensor([[1, 0]]))
    assert torch.isfinite(kl).all() and kl[0, 1] == 0 and kl[0, 0] > 0


def test_kl_estimate_names_the_allowed_kinds():
    with pytest.raises(ValueError, match="kind must be one of 'k1', 'k2', 'k3'"):
        kl_estimate(torch.zeros(2), torch.zeros(2), kind="k4")


# ----------------------------------------------------------------------------------------- SFTConfig, train_sft


@pytest.mark.parametrize(
    "field,value,err",
    [
        ("task", "", TypeError),
        ("seed", -1, ValueError),
        ("max_steps", 0, ValueError),
        ("batch_size", 8.0, TypeError),
        ("lr", 0.0, ValueError),
        ("lr", -1e-3, ValueError),
        ("warmup_steps", -1, ValueError),
        ("decay_steps", 0, ValueError),
        ("min_lr_ratio", 1.5, ValueError),
        ("weight_decay", -0.1, ValueError),
        ("max_grad_norm", 0.0, ValueError),
        ("eval_every", 0, ValueError),
        ("stop_at", 0.5, ValueError),
        ("target_low", -0.1, ValueError),
        ("n_embd", 30, ValueError),
        ("n_layer", 0, ValueError),
        ("n_positions", 1, ValueError),
    ],
)
def test_sft_config_checks_every_field_when_built(field, value, err):
    with pytest.raises(err) as info:
        SFTConfig(**{field: value})
    assert field in str(info.value) and repr(value) in str(info.value)


def _sample(rng, n):
    a = rng.integers(0, 10, n)
    return [f"{x}+1=" for x in a], [str(x + 1) for x in a]


def test_train_sft_failure_keeps_the_completed_history_and_names_the_function():
    calls = []

    def flaky(rng, n):
        calls.append(n)
        if len(calls) == 4:
            raise RuntimeError("disk full")
        return _sample(rng, n)

    with pytest.raises(TrainingError) as info:
        train_sft(tiny_lm(), TOK, flaky, SFTConfig(max_steps=10, batch_size=4, eval_every=1))
    err = info.value
    assert err.step == 3 and [h["step"] for h in err.history] == [1, 2, 3]
    assert "train_sft" in str(err) and "sample_fn" in str(err) and "disk full" in str(err)


def test_train_sft_calls_back_and_returns_the_history_on_ctrl_c():
    seen = []

    def callback(step, history):
        seen.append((step, len(history)))
        if step == 2:
            raise KeyboardInterrupt

    hist = train_sft(
        tiny_lm(), TOK, _sample, SFTConfig(max_steps=10, batch_size=4, eval_every=1), callback=callback
    )
    assert seen == [(1, 1), (2, 2)] and [h["step"] for h in hist] == [1, 2]


def test_train_sft_eval_fn_must_return_a_dict():
    with pytest.raises(TrainingError, match="eval_fn must return a dict"):
        train_sft(
            tiny_lm(), TOK, _sample, SFTConfig(max_steps=2, batch_size=4, eval_every=1), eval_fn=lambda: 0.5
        )


# ----------------------------------------------------------------------------------------- model folders


@pytest.fixture
def folder(tmp_path):
    """A copy of the shipped arithmetic model without its manifest (a plain local model folder)."""
    dst = tmp_path / "arithmetic"
    shutil.copytree(data_dir() / "arithmetic", dst)
    (dst / "manifest.json").unlink()
    return dst


def test_folder_without_tokenizer_files(folder):
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer_config.json").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_model(folder)
    assert (
        str(folder) in str(info.value) and "tokenizer" in str(info.value) and "make data" in str(info.value)
    )


@pytest.mark.parametrize("keep", [0.5, 0.999, 4, 20])
def test_truncated_safetensors_names_the_file(folder, keep):
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep])
    with pytest.raises(ValueError) as info:
        load_model(folder)
    msg = str(info.value)
    assert str(path) in msg and "corrupted or truncated" in msg and "make data" in msg


def test_garbage_safetensors_names_the_file(folder):
    (folder / "model.safetensors").write_bytes(b"not a safetensors file at all" * 4)
    with pytest.raises(ValueError, match=r"model\.safetensors is corrupted or truncated"):
        load_model(folder)


def test_invalid_manifest_json_names_the_file(folder):
    (folder / "manifest.json").write_text('{"files": {"config.json": ')
    with pytest.raises(ValueError) as info:
        load_model(folder)
    assert "manifest.json is not valid JSON" in str(info.value) and "make data" in str(info.value)


def test_invalid_manifest_json_of_a_shipped_model(tmp_path, monkeypatch):
    shutil.copytree(data_dir() / "reviews", tmp_path / "reviews")
    (tmp_path / "reviews" / "manifest.json").write_text("not json")
    monkeypatch.setenv("RLCOURSE_DATA", str(tmp_path))
    with pytest.raises(ValueError, match=r"reviews[/\\]manifest\.json is not valid JSON.*make data"):
        load_model("reviews")


def test_invalid_config_json_names_the_file(folder):
    (folder / "config.json").write_text("{")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        load_model(folder)


def test_truncated_head_of_a_reward_model(tmp_path):
    RewardModel(tiny_lm()).save_pretrained(tmp_path / "rm", TOK)
    head = tmp_path / "rm" / "head.safetensors"
    (tmp_path / "rm" / "manifest.json").unlink()
    head.write_bytes(head.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"head\.safetensors is corrupted or truncated"):
        RewardModel.from_pretrained(tmp_path / "rm")


def test_hub_id_offline_answers_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(lm_loading, "hub_unreachable", lambda: "cannot connect to huggingface.co:443")
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        load_model("rlcourse-tests/no-such-model")
    assert time.perf_counter() - t0 < 10
    assert "'rlcourse-tests/no-such-model'" in str(info.value) and "cannot be reached" in str(info.value)


def test_hub_probe_of_a_closed_port_answers_within_its_timeout(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(lm_files, "_hub_endpoint", lambda: "http://127.0.0.1:9")
    t0 = time.perf_counter()
    reason = lm_files.hub_unreachable(timeout=1.0)
    assert reason is not None and "127.0.0.1:9" in reason and time.perf_counter() - t0 < 3


# ----------------------------------------------------------------------------------------- atomic saves


def _ids_mask():
    ids, att, _ = batch()
    return ids, att


def _saved_rm(path: Path) -> torch.Tensor:
    """Save a reward model to ``path``; return its scores on a fixed batch."""
    rm = RewardModel(tiny_lm(0))
    rm.save_pretrained(path, TOK, version=1)
    with torch.no_grad():
        return rm(*_ids_mask())


WRITERS = ["backbone", "tokenizer", "head", "head_config", "manifest", "rename"]


@pytest.mark.parametrize("writer", WRITERS)
def test_a_save_interrupted_at_each_writer_leaves_the_old_checkpoint(tmp_path, monkeypatch, writer):
    target = tmp_path / "rm"
    old_scores = _saved_rm(target)
    old_files = {p.name: p.read_bytes() for p in target.iterdir()}
    new = RewardModel(tiny_lm(1))

    def after(real):
        def wrapper(*args, **kwargs):
            real(*args, **kwargs)  # the file is (partly) written, then the save dies
            raise KeyboardInterrupt if writer == "head" else OSError(f"injected failure in {writer}")

        return wrapper

    if writer == "backbone":
        monkeypatch.setattr(new.backbone, "save_pretrained", after(new.backbone.save_pretrained))
    elif writer == "tokenizer":
        tok = build_tokenizer()
        monkeypatch.setattr(tok, "save_pretrained", after(tok.save_pretrained))
    elif writer == "head":
        import rlcourse.lm.model as lm_model

        monkeypatch.setattr(lm_model, "save_file", after(lm_model.save_file))
    elif writer == "head_config":
        monkeypatch.setattr(Path, "write_text", after(Path.write_text))
    elif writer == "manifest":
        monkeypatch.setattr(lm_files, "write_manifest", after(lm_files.write_manifest))
    else:  # the final rename of the new folder onto the target
        real_replace, calls = os.replace, []

        def replace(src, dst):
            calls.append(src)
            if len(calls) == 2:
                raise OSError("injected failure in rename")
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
    with pytest.raises((OSError, KeyboardInterrupt)):
        new.save_pretrained(target, tok if writer == "tokenizer" else TOK, version=2)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == old_files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rm"]  # no temporary folder left behind
    with torch.no_grad():
        torch.testing.assert_close(RewardModel.from_pretrained(target)(*_ids_mask()), old_scores)


def test_metadata_without_a_json_form_is_refused_before_any_file_is_written(tmp_path):
    with pytest.raises(TypeError, match=r"info\['when'\] is a object"):
        RewardModel(tiny_lm()).save_pretrained(tmp_path / "rm", TOK, when=object())
    assert not (tmp_path / "rm").exists() and list(tmp_path.iterdir()) == []


def test_metadata_numbers_are_converted(tmp_path):
    manifest = RewardModel(tiny_lm()).save_pretrained(
        tmp_path / "rm", TOK, acc=torch.tensor(0.5), shape=(2, 3), path=tmp_path
    )
    on_disk = json.loads((tmp_path / "rm" / "manifest.json").read_text())
    assert on_disk["acc"] == manifest["acc"] == 0.5 and on_disk["shape"] == [2, 3]


def test_saving_over_a_folder_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("my notes")
    with pytest.raises(FileExistsError, match="not a saved model"):
        RewardModel(tiny_lm()).save_pretrained(tmp_path, TOK)
    assert (tmp_path / "notes.txt").read_text() == "my notes"


def test_save_model_replaces_a_checkpoint_atomically_and_loads(tmp_path):
    lm_files.save_model(tiny_lm(0), tmp_path / "m", TOK, step=1)
    lm_files.save_model(tiny_lm(1), tmp_path / "m", TOK, step=2)
    model, tok = load_model(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["step"] == 2
    for a, b in zip(model.parameters(), tiny_lm(1).parameters(), strict=True):
        assert torch.equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]

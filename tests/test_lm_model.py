"""Tests for rlcourse.lm.model: loading, the value head, the reward model, the reference copy, manifests."""

import json
import shutil

import pytest
import torch

from rlcourse.lm import model as M
from rlcourse.lm.model import (
    RewardModel,
    ValueHeadModel,
    count_parameters,
    frozen_copy,
    init_model,
    last_token_index,
    load_model,
    verify_manifest,
    write_manifest,
)
from rlcourse.lm.tokenizer import build_tokenizer, encode_prompts


@pytest.fixture(scope="module")
def lm():
    tok = build_tokenizer()
    return init_model(tok, seed=0, n_embd=32, n_layer=2, n_head=2).eval(), tok


def test_tiny_config_and_parameter_count(lm):
    model, tok = lm
    assert model.config.activation_function == "gelu" and model.config.resid_pdrop == 0.0
    assert model.config.pad_token_id != model.config.eos_token_id
    # tied embedding / LM head is counted once
    assert count_parameters(model) == sum(p.numel() for p in set(model.parameters()))
    full = init_model(tok)
    assert 100_000 <= count_parameters(full) <= 500_000


@pytest.mark.parametrize("name", M.SHIPPED)
def test_shipped_model_loads_and_matches_manifest(name):
    model, tok = load_model(name)
    manifest = verify_manifest(M.data_dir() / name)
    folder = M.data_dir() / name
    listed = set(manifest["files"])
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= listed
    assert listed == {p.name for p in folder.iterdir() if p.name != "manifest.json"}
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in folder.iterdir())
    assert tok.pad_token_id != tok.eos_token_id and tok.padding_side == "left"
    assert not model.training
    assert manifest["metrics"]["parameters"] == count_parameters(model)


def test_shipped_arithmetic_accuracy_leaves_room_for_rl():
    manifest = M.read_manifest("arithmetic")
    acc = manifest["metrics"]["heldout_accuracy"]
    assert 0.2 <= acc <= 0.4


def test_corrupted_file_gives_a_clear_error(tmp_path, monkeypatch):
    shutil.copytree(M.data_dir() / "arithmetic", tmp_path / "arithmetic")
    monkeypatch.setenv("RLCOURSE_DATA", str(tmp_path))
    load_model("arithmetic")  # intact copy loads
    with open(tmp_path / "arithmetic" / "config.json", "a") as f:
        f.write(" ")
    with pytest.raises(ValueError, match="corrupted.*make data"):
        load_model("arithmetic")
    (tmp_path / "arithmetic" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="missing.*make data"):
        load_model("arithmetic")


def test_missing_local_path_and_offline_hub_id_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "no_such_model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("./no/such/folder")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="hub cannot be reached"):
        load_model("someone/some-model")


def test_local_hf_folder_loads(tmp_path, lm):
    model, tok = lm
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, tok2 = load_model(str(tmp_path))
    ids, att = encode_prompts(tok2, ["1+2="])
    torch.testing.assert_close(again(input_ids=ids).logits, model(input_ids=ids).logits)


def test_last_token_index_left_and_right_padding():
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert last_token_index(left).tolist() == [3, 3]
    assert last_token_index(right).tolist() == [1, 3]
    with pytest.raises(ValueError, match="all zeros"):
        last_token_index(torch.tensor([[0, 0]]))


def test_reward_model_reads_the_last_real_token_under_left_and_right_padding(lm):
    model, tok = lm
    rm = RewardModel(frozen_copy(model)).eval()
    text = [tok("12+3=15")["input_ids"] + [tok.eos_token_id]]
    ids = torch.tensor(text)
    n = ids.shape[1]
    alone = rm(ids, torch.ones_like(ids))
    pad = torch.full((1, 3), tok.pad_token_id)
    left_ids, left_att = torch.cat([pad, ids], 1), torch.cat([torch.zeros(1, 3), torch.ones(1, n)], 1).long()
    right_ids, right_att = (
        torch.cat([ids, pad], 1),
        torch.cat([torch.ones(1, n), torch.zeros(1, 3)], 1).long(),
    )
    assert alone.shape == (1,)
    torch.testing.assert_close(rm(left_ids, left_att), alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rm(right_ids, right_att), alone, atol=1e-5, rtol=1e-5)
    # the score depends on the last real token: it equals the per-token head at that column
    per_token = rm.token_scores(ids, torch.ones_like(ids))
    torch.testing.assert_close(alone, per_token[:, -1])


def test_value_head_gives_one_value_per_token(lm):
    model, tok = lm
    critic = ValueHeadModel(frozen_copy(model))
    ids, att = encode_prompts(tok, ["1+2=", "10+20="])
    v = critic(ids, att)
    assert v.shape == ids.shape
    assert any(p.requires_grad for p in critic.head.parameters())
    with pytest.raises(ValueError, match="attention_mask"):
        critic(ids, att[:, 1:])


def test_frozen_copy_is_independent_and_frozen(lm):
    model, tok = lm
    ref = frozen_copy(model)
    assert not ref.training and count_parameters(ref, trainable_only=True) == 0
    assert count_parameters(ref) == count_parameters(model)
    with torch.no_grad():
        ref.transformer.wte.weight.add_(1.0)
    assert not torch.equal(ref.transformer.wte.weight, model.transformer.wte.weight)


@pytest.mark.parametrize("cls", [RewardModel, ValueHeadModel])
def test_head_models_save_and_load_as_safetensors(tmp_path, lm, cls):
    model, tok = lm
    m = cls(frozen_copy(model))
    with torch.no_grad():
        m.head.bias.fill_(0.7)
    manifest = m.save_pretrained(tmp_path / "rm", tokenizer=tok, note="test")
    assert "head.safetensors" in manifest["files"] and manifest["note"] == "test"
    again = cls.from_pretrained(tmp_path / "rm")
    ids, att = encode_prompts(tok, ["1+2=", "10+20="])
    torch.testing.assert_close(again(ids, att), m(ids, att))
    other = ValueHeadModel if cls is RewardModel else RewardModel
    with pytest.raises(ValueError, match="head"):
        other.from_pretrained(tmp_path / "rm")
    with pytest.raises(FileNotFoundError):
        cls.from_pretrained(tmp_path / "nothing")


def test_manifest_roundtrip(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    m = write_manifest(tmp_path, metrics={"x": 1})
    assert json.loads((tmp_path / "manifest.json").read_text()) == m
    assert verify_manifest(tmp_path)["metrics"] == {"x": 1}
    (tmp_path / "a.txt").write_text("hellO")
    with pytest.raises(ValueError, match="corrupted"):
        verify_manifest(tmp_path)

"""The one tiny-model builder: its parameters reach the saved checkpoint."""

import json

from safetensors.torch import load_file

from solar_ray.tiny.model import build_tiny_model, train_byte_level_bpe


def test_builder_parameters_reach_the_checkpoint(tmp_path):
    tokenizer = train_byte_level_bpe(["one two three four five six"] * 20, vocab_size=300)
    out = build_tiny_model(tmp_path / "m", tokenizer, architecture="mistral", layers=3, hidden=64, intermediate=96,
                           heads=4, kv_heads=2, head_dim=16, dtype="bfloat16", shard="60KB", seed=7,
                           sliding_window=128)
    config = json.loads((out / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("mistral", 3, 64)
    assert (config["num_key_value_heads"], config["head_dim"], config["sliding_window"]) == (2, 16, 128)
    assert config["vocab_size"] == len(tokenizer) and config["eos_token_id"] == tokenizer.eos_token_id
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 1 and (out / "tokenizer.json").is_file()
    tensors = {k: v for shard in shards for k, v in load_file(shard).items()}
    assert {str(v.dtype) for v in tensors.values()} == {"torch.bfloat16"}
    assert tensors["model.layers.0.self_attn.k_proj.weight"].shape == (2 * 16, 64)

    again = build_tiny_model(tmp_path / "again", tokenizer, architecture="mistral", layers=3, hidden=64,
                             intermediate=96, heads=4, kv_heads=2, head_dim=16, dtype="bfloat16", seed=7,
                             sliding_window=128)
    assert load_file(again / "model.safetensors")["lm_head.weight"].equal(tensors["lm_head.weight"])  # seeded


def test_architecture_defaults_hold_unless_given(tmp_path):
    gemma = build_tiny_model(tmp_path / "g", architecture="gemma2", vocab_size=32, layers=2, hidden=32,
                             intermediate=64, heads=2, kv_heads=1, head_dim=16)
    llama = build_tiny_model(tmp_path / "l", vocab_size=32, layers=2, hidden=32, intermediate=64, heads=2,
                             kv_heads=1)
    assert json.loads((gemma / "config.json").read_text())["tie_word_embeddings"] is True
    llama_config = json.loads((llama / "config.json").read_text())
    assert llama_config["tie_word_embeddings"] is False and llama_config["head_dim"] == 16
    assert not (llama / "tokenizer.json").exists()

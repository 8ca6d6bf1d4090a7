"""The offline tiny world: a closed synthetic language, a small Llama base model and datasets in upstream schemas."""

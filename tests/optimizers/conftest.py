"""Shared fixtures: the shipped SmolLM2-135M-Instruct student as a Hugging Face folder."""

import pytest


@pytest.fixture(scope="session")
def smollm2_path():
    from agentdistill.lm import resolve_model_path

    return resolve_model_path("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_path)

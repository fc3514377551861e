"""Shared fixtures: the shipped SmolLM2-135M (fast) loaded once per test session, on both backends."""

import warnings

import pytest

SMOL = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "What is 2+3?"}]


@pytest.fixture(autouse=True)
def _quiet_deprecations():
    # DSPy 3.4 deprecates messages= dicts in favour of lm15.Request; both paths reach the engine identically.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@pytest.fixture(scope="session")
def smol_lm():
    from agentdistill.lm import local_lm

    lm = local_lm(SMOL, max_tokens=16)
    lm.engine.load()
    return lm


@pytest.fixture(scope="session")
def smol_cpp_lm():
    from agentdistill.lm import local_lm

    lm = local_lm(SMOL, backend="llama.cpp", max_tokens=16)
    lm.engine.load()
    return lm

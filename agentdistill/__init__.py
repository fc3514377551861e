"""agentdistill: distill an LLM code-acting agent into a small local model, on DSPy.

    import agentdistill as ad
    student = ad.local_lm("smollm2-135m-instruct")                             # transformers, CPU
    teacher = ad.local_lm("qwen2.5-coder-0.5b-instruct", backend="llama.cpp")  # llama.cpp on the GGUF

Subpackages: signatures, programs, optimizers, tools, lm, benchmarks, tracking, cli (imported lazily).
"""

from agentdistill.settings import apply_offline_defaults

apply_offline_defaults()  # before dspy / litellm / mlflow read their environment

__version__ = "0.1.0"


def local_lm(name_or_path: str, **kwargs):
    """A `dspy.LM` on a local model: a shipped short name, a hub id or a folder.

    `backend="transformers"` (default; trainable checkpoints, batched sampling) or `backend="llama.cpp"` (GGUF,
    several times faster generation on CPU). See `agentdistill.lm.local_lm` for every option.
    """
    from agentdistill.lm import local_lm as _local_lm

    return _local_lm(name_or_path, **kwargs)


def __getattr__(name):  # lazy subpackages: `import agentdistill` stays cheap
    import importlib

    if name in {"lm", "signatures", "programs", "optimizers", "tools", "benchmarks", "tracking", "cli"}:
        return importlib.import_module(f"agentdistill.{name}")
    raise AttributeError(f"module 'agentdistill' has no attribute {name!r}")

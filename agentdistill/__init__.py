"""agentdistill: distill an LLM code-acting agent into a small local model, on DSPy.

    import agentdistill as ad
    lm = ad.local_lm("smollm2-135m-instruct")      # a dspy.LM on a shipped model (CPU)
"""

from agentdistill.settings import apply_offline_defaults

apply_offline_defaults()  # before dspy / litellm / mlflow read their environment

__version__ = "0.1.0"


def local_lm(name_or_path: str, **kwargs):
    """A `dspy.LM` running a transformers model in this process (see `agentdistill.lm`)."""
    from agentdistill.lm import local_lm as _local_lm

    return _local_lm(name_or_path, **kwargs)


def __getattr__(name):  # lazy subpackages: `import agentdistill` stays cheap
    import importlib

    if name in {"lm", "signatures", "programs", "optimizers", "tools", "benchmarks", "tracking", "cli"}:
        return importlib.import_module(f"agentdistill.{name}")
    raise AttributeError(f"module 'agentdistill' has no attribute {name!r}")

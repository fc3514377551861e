"""agentdistill.lm: local models for DSPy.

    import agentdistill as ad
    from agentdistill.lm import sample, resolve_model_path
    lm = ad.local_lm("smollm2-135m-instruct")              # dspy.LM("local/<name>@<hash>", engine=TransformersEngine)
    fast = ad.local_lm("qwen2.5-coder-0.5b-instruct", backend="llama.cpp")
    texts = sample(lm, messages, n=8, temperature=0.4)     # one batched generate on a local engine

Pieces: models.py (shipped GGUFs, one-time conversion), chat.py (prompt rendering, continuation, stop strings),
engine.py (transformers engine), llamacpp.py (llama.cpp engine), local.py (local_lm, sample), server.py
(an OpenAI-compatible HTTP server over either engine).
"""

from agentdistill.lm.chat import Completion
from agentdistill.lm.engine import TransformersEngine
from agentdistill.lm.llamacpp import LlamaCppEngine
from agentdistill.lm.local import fingerprint, local_engine, local_lm, sample
from agentdistill.lm.models import SHIPPED, gguf_path, resolve_model_path

__all__ = ["local_lm", "sample", "resolve_model_path", "gguf_path", "fingerprint", "local_engine", "SHIPPED",
           "TransformersEngine", "LlamaCppEngine", "Completion"]

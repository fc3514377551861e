"""agentdistill.lm: local models for DSPy.

    import agentdistill as ad
    from agentdistill.lm import sample, resolve_model_path
    lm = ad.local_lm("smollm2-135m-instruct")              # dspy.LM("local/<name>@<hash>", engine=TransformersEngine)
    fast = ad.local_lm("qwen2.5-coder-0.5b-instruct", backend="llama.cpp")
    texts = sample(lm, messages, n=8, temperature=0.4)     # one batched generate on a local engine
    teacher = server_lm("Qwen/Qwen2.5-32B-Instruct", "http://gpu:8000/v1", server="vllm")  # continues partial turns
    with serve_process({"student": "runs/sft/model"}) as srv:  # the same client path on a laptop (llama.cpp)
        student = srv.lm("student")

Pieces: models.py (shipped GGUFs, one-time conversion), chat.py (prompt rendering, continuation, stop strings),
engine.py (transformers engine), llamacpp.py (llama.cpp engine: batched decoding of every request), export.py
(a fine-tuned folder -> GGUF), local.py (local_lm, sample), server.py (an OpenAI-compatible HTTP server over local
engines, by name), server_process.py (that server as a child process that dies with its parent), remote.py (server_lm: a dspy.LM on a vLLM / SGLang /
llama.cpp server that continues a partial assistant turn; continuation_kwargs(lm)).
"""

from agentdistill.lm.chat import Completion
from agentdistill.lm.engine import TransformersEngine
from agentdistill.lm.llamacpp import LlamaCppEngine
from agentdistill.lm.local import fingerprint, local_engine, local_lm, sample
from agentdistill.lm.models import SHIPPED, gguf_path, resolve_model_path
from agentdistill.lm.remote import SERVERS, continuation_kwargs, server_lm, set_continuation
from agentdistill.lm.server_process import serve_process

__all__ = ["local_lm", "sample", "server_lm", "serve_process", "continuation_kwargs", "set_continuation", "SERVERS",
           "resolve_model_path", "gguf_path", "fingerprint", "local_engine", "SHIPPED", "TransformersEngine",
           "LlamaCppEngine", "Completion"]

"""Sandboxed Python executor for model-written code: persistent episodes, forkable state, kernel isolation.

    from agentdistill.tools.sandbox import Sandbox
    sb = Sandbox(tools={"search": search_fn}, timeout=10.0, memory_mb=1024, output_limit=20_000)
    with sb.episode() as ep:
        r = ep.run("x = 1 + 1\\nprint(x)")     # StepResult: stdout, value, error, error_kind, is_final, ...
        r = ep.run("final_answer(x)")         # r.is_final, r.final_answer == 2
    sb.close()

Modules: sandbox (host: fork server owner), episode (host: steps, tools, fork/adopt), forkserver, worker,
runtime (inside the worker: executing a step), channel (messages), isolation + syscalls (kernel layers),
cgroups (limits on a whole episode), convert (plain data).
"""

from .episode import Episode, StepResult
from .isolation import IsolationReport
from .sandbox import Sandbox, SandboxError

__all__ = ["Sandbox", "Episode", "StepResult", "IsolationReport", "SandboxError"]

"""agentdistill.signatures: the plain DSPy signatures behind the programs.

    from agentdistill.signatures import AgentStep, CoTAnswer

- `AgentStep`: the task and the conversation so far -> one thought and one Python code action
  (the predictor of every `CodeAgent` step).
- `CoTAnswer`: the task -> reasoning and a final answer in one call (the CoT-distillation baseline; its first
  paragraph is also the first-thought prefix, see `agentdistill.optimizers.first_thought`).

They are rendered by `agentdistill.programs.rendering` (our own adapters), not by DSPy's ChatAdapter field markers.
"""

from agentdistill.signatures.agent_step import AgentStep
from agentdistill.signatures.cot_answer import CoTAnswer

__all__ = ["AgentStep", "CoTAnswer"]

"""agentdistill.signatures: the plain DSPy signatures behind the programs.

    from agentdistill.signatures import AgentStep, FirstThought, CoTAnswer

- `AgentStep`: the task and the conversation so far -> one thought and one Python code action
  (the predictor of every `CodeAgent` step).
- `FirstThought`: the task -> the first step of a chain of thought (the first-thought prefix of the paper).
- `CoTAnswer`: the task -> reasoning and a final answer in one call (the CoT-distillation baseline).

They are rendered by `agentdistill.programs.rendering` (our own adapters), not by DSPy's ChatAdapter field markers.
"""

from agentdistill.signatures.agent_step import AgentStep
from agentdistill.signatures.cot_answer import CoTAnswer
from agentdistill.signatures.first_thought import FirstThought

__all__ = ["AgentStep", "CoTAnswer", "FirstThought"]

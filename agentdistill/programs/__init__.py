"""agentdistill.programs: the DSPy modules users write and compile.

    from agentdistill.programs import CodeAgent, ChainOfThoughtSolver, SelfConsistency, Trajectory
    agent = CodeAgent("question -> answer", tools=[search], max_steps=5)   # or math_agent() / factual_agent(search)
    pred = agent(question="...", first_thought_prefix=None)               # pred.answer, pred.trajectory
    robust = SelfConsistency(agent, n=8, temperature=0.4, top_p=0.8)

The conversation format lives in `agentdistill.programs.rendering` (used at inference and for SFT data).
"""

from agentdistill.programs.adapter import AgentAdapter, CoTAdapter
from agentdistill.programs.code_agent import CodeAgent
from agentdistill.programs.cot import ChainOfThoughtSolver
from agentdistill.programs.ready import factual_agent, factual_cot, math_agent, math_cot, preset
from agentdistill.programs.rendering import cot_chat, render_chat, trajectory_to_chat
from agentdistill.programs.self_consistency import SelfConsistency
from agentdistill.programs.trajectory import Step, Trajectory

__all__ = [
    "AgentAdapter",
    "ChainOfThoughtSolver",
    "CoTAdapter",
    "CodeAgent",
    "SelfConsistency",
    "Step",
    "Trajectory",
    "cot_chat",
    "factual_agent",
    "factual_cot",
    "math_agent",
    "math_cot",
    "preset",
    "render_chat",
    "trajectory_to_chat",
]

"""First-thought prefixes (Kang et al. 2025, sec. 3.2), made as the paper's code makes them
(exps_research/first_thought_prefix/build_prefix_memory.py): the teacher answers the task with its plain chain of
thought (the CoT baseline's prompt: no agent instructions, no code example); the first paragraph of that answer,
`reasoning.split("\\n\\n")[0]`, seeds the agent's first step as "Thought: <paragraph>\\n\\n", so the agent plans
first and then writes its code on a fresh paragraph.

    from agentdistill.optimizers.first_thought import first_paragraph, seed_prefix, prefix_solver
    first_paragraph("Let x be the price.\\n\\nThen 3x = 12.")     # -> "Let x be the price."
    seed_prefix("Let x be the price.\\n\\nThen 3x = 12.")         # -> "Let x be the price.\\n\\n"
    solver = prefix_solver(teacher_agent)       # the CoT program whose answers AgentDistill stores (kind "cot")

The CoT answers are the very records `CoTDistill` stores, under the key it computes for the same solver on the
same LM, so one teacher pass serves both the prefixes and the CoT baseline.
"""

from __future__ import annotations

PARAGRAPH_BREAK = "\n\n"  # the paper splits on exactly this


def first_paragraph(reasoning: str | None) -> str:
    """The first paragraph of a chain of thought: the text before the first blank line ("" for none)."""
    return (reasoning or "").strip().split(PARAGRAPH_BREAK)[0].strip()


def seed_prefix(reasoning: str | None) -> str | None:
    """The prefix the teacher agent continues: the first paragraph and its paragraph break (None: no reasoning).

    `CodeAgent` renders the partial turn "Thought: " + prefix, so the agent starts writing after the break, as in
    the paper ("Thought: " + paragraph + "\\n\\n"), instead of finishing the paragraph's last sentence.
    """
    paragraph = first_paragraph(reasoning)
    return paragraph + PARAGRAPH_BREAK if paragraph else None


def prefix_solver(agent, instructions: str | None = None):
    """The CoT program whose answers make `agent`'s prefixes: the agent's signature, the CoT baseline's default
    instructions for it (or `instructions`), and the agent's generation limit (the whole answer is generated, and
    stored, so `CoTDistill` can train on it). The caller puts it on the teacher's LM."""
    from agentdistill.programs import ChainOfThoughtSolver

    if len(agent.signature.output_fields) != 1:
        raise ValueError(
            f"first_thought_prefix needs a chain of thought on one output field, and the teacher's signature "
            f"{agent.signature.signature!r} has {list(agent.signature.output_fields)}; pass "
            "first_thought_prefix=False to AgentDistill"
        )
    return ChainOfThoughtSolver(agent.signature, instructions=instructions, max_tokens=agent.max_tokens)

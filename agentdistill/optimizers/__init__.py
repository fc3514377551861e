"""agentdistill.optimizers: teleprompters that distill a teacher into a fine-tuned student.

    from agentdistill.optimizers import AgentDistill, CoTDistill, SFT
    small = AgentDistill(metric=answer_correct, sft=SFT(epochs=2)).compile(student, trainset=train, teacher=teacher)

Modules: teleprompter (the one compile() skeleton), agent_distill (AgentDistill) and cot_distill (CoTDistill) - its
two program strategies, first_thought (prefixes from the teacher's CoT), teacher_runs (teacher tasks in threads),
store (resumable JSONL, store keys), filtering (filter + report), sft_data (chats -> tokens, assistant-only mask),
training (SFT config + TRL trainer, also `python -m agentdistill.optimizers.training` / `accelerate launch -m ...`),
finetune (fine-tuning the kept chats and the compiled student).
"""

import importlib

# Names are resolved lazily: `python -m agentdistill.optimizers.training` must not import itself twice.
_EXPORTS = {
    "AgentDistill": "agent_distill", "CoTDistill": "cot_distill", "DistillTeleprompter": "teleprompter",
    "SFT": "training",
    "FilterReport": "filtering", "filter_trajectories": "filtering", "filter_answers": "filtering",
    "first_paragraph": "first_thought", "seed_prefix": "first_thought",
    "TrajectoryStore": "store", "example_id": "store", "settings_hash": "store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"agentdistill.optimizers.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'agentdistill.optimizers' has no attribute {name!r}")

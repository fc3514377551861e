"""Our DSPy adapters: `AgentAdapter` (AgentStep) and `CoTAdapter` (CoTAnswer), both rendering through `rendering`.

A DSPy adapter turns (signature, inputs) into chat messages and the LM's reply back into output fields.
DSPy's ChatAdapter would wrap every field in `[[ ## name ## ]]` markers; ours renders the plain conversation of
`agentdistill.programs.rendering` instead, so what the model sees at inference is what the SFT data teaches.

    with dspy.context(adapter=AgentAdapter()):
        pred = dspy.Predict(AgentStep)(task={"question": q}, tools=specs, history=[], prefix=None)

Continuation: every step's last message is a partial assistant turn ("Thought:", with a first-thought prefix
"Thought: <prefix>"); the LM returns only the continuation and the adapter parses seed + continuation. The local
engine (agentdistill.lm) continues a trailing assistant message natively. On an OpenAI-compatible server the LM
must say how: build it with `agentdistill.lm.server_lm(model, api_base, server="vllm"|"sglang"|"llama.cpp")`,
which carries the server's switches (vLLM/SGLang: `extra_body={"continue_final_message": True,
"add_generation_prompt": False}`; llama-server: prefill by default); the adapter adds them (through
`agentdistill.lm.continuation_kwargs(lm)`) to the seeded calls only. `CodeAgent(..., continuation_kwargs={...})`
overrides the LM's own ({} sends nothing). Anthropic's API prefills natively; OpenAI's own API has no prefill
(it starts a new turn), so a prefix there is only a hint.
"""

import logging
from typing import Any

import dspy

from agentdistill.dspy_compat import adapter_message_call
from agentdistill.programs import parsing, rendering

logger = logging.getLogger(__name__)


class AgentAdapter(dspy.Adapter):
    """Renders `AgentStep` with the agent's templates; parses the reply into thought + code (never raises on it).

    Args:
        seed_thought: end every step's prompt with a partial assistant turn "Thought:" (with a first-thought
            prefix: "Thought: <prefix>") that the model continues. Small models then cannot start a step any
            other way (e.g. by echoing "Observation:"); the recorded turn starts with the same bytes, so the SFT
            data is unchanged. A server that ignores the partial turn and starts its own "Thought: ..." is
            handled too (its reply is taken as the whole turn).
        continuation_kwargs: extra LM kwargs for calls that end with a partial assistant turn (see above);
            None (default): the LM's own, `agentdistill.lm.continuation_kwargs(lm)`.
    """

    def __init__(self, seed_thought: bool = True, continuation_kwargs: dict[str, Any] | None = None, callbacks=None):
        super().__init__(callbacks=callbacks)
        self.seed_thought = seed_thought
        # None and {} differ: None defers to the LM, {} says "send nothing" whatever the LM carries
        self.continuation_kwargs = None if continuation_kwargs is None else dict(continuation_kwargs)

    def continuation(self, lm) -> dict[str, Any]:
        """The kwargs that make `lm` continue a partial assistant turn: the explicit setting, else the LM's own."""
        from agentdistill.lm.remote import continuation_kwargs

        if self.continuation_kwargs is not None:
            return dict(self.continuation_kwargs)
        return continuation_kwargs(lm)

    def format(self, signature, demos, inputs) -> list[dict[str, Any]]:
        if demos:
            logger.warning(
                "AgentAdapter ignores %d demo(s): the agent learns from fine-tuning on whole trajectories "
                "(agentdistill.optimizers.AgentDistill), not from few-shot steps.", len(demos)
            )
        return rendering.render_chat(signature.instructions, inputs["tools"], inputs["task"],
                                     inputs.get("history") or [], inputs.get("prefix"), seed=self.seed_thought)

    def parse(self, signature, completion: str) -> dict[str, Any]:
        step = parsing.parse_step(completion)
        return {"thought": step.thought, "code": step.code, "text": step.text, "raw": step.raw,
                "parse_error": step.parse_error}

    def seed(self, inputs: dict[str, Any]) -> str | None:
        """The partial assistant turn sent with this step, or None."""
        prefix = inputs.get("prefix")
        if prefix is not None and prefix.strip():
            return rendering.render_prefix(prefix)
        return rendering.render_prefix(None) if self.seed_thought else None

    def continued(self, inputs: dict[str, Any], completion: str) -> str:
        """The full reply: the partial assistant turn we sent (if any) + the LM's continuation."""
        seed = self.seed(inputs)
        if seed is None or completion.lstrip()[:8].lower() == "thought:":  # no seed, or the LM began a new turn
            return completion.lstrip() if seed is not None else completion
        return seed + completion

    def lm_kwargs(self, inputs: dict[str, Any], lm_kwargs: dict[str, Any], lm=None) -> dict[str, Any]:
        """The call's kwargs: step stop strings, and the continuation settings when a partial turn is sent."""
        from agentdistill.lm.remote import add_continuation

        kwargs = {"stop": list(rendering.STEP_STOP), **lm_kwargs}
        if self.seed(inputs) is not None:
            kwargs = add_continuation(kwargs, self.continuation(lm), lm)
        return kwargs

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        messages = self.format(signature, demos, inputs)
        with adapter_message_call(lm, messages):  # an adapter's own messages= call: no deprecation warning
            outputs = lm(messages=messages, **self.lm_kwargs(inputs, lm_kwargs, lm))
        return [self.parse(signature, self.continued(inputs, output_text(o))) for o in outputs]

    async def acall(self, lm, lm_kwargs, signature, demos, inputs):
        messages = self.format(signature, demos, inputs)
        with adapter_message_call(lm, messages):
            outputs = await lm.acall(messages=messages, **self.lm_kwargs(inputs, lm_kwargs, lm))
        return [self.parse(signature, self.continued(inputs, output_text(o))) for o in outputs]


class CoTAdapter(dspy.Adapter):
    """Renders `CoTAnswer` with the CoT templates; parses "reasoning ... Answer: x" (answer None if missing)."""

    def format(self, signature, demos, inputs) -> list[dict[str, Any]]:
        messages = rendering.cot_chat(signature.instructions, inputs["task"])
        if demos:  # few-shot CoT is the classic baseline: demos are earlier (task, reasoning+answer) turns
            shots = []
            for demo in demos:
                if demo.get("task") and demo.get("answer") is not None:
                    shot = rendering.cot_chat(signature.instructions, demo["task"], demo.get("reasoning"),
                                              demo["answer"])
                    shots.extend(shot[1:])
            messages = messages[:1] + shots + messages[1:]
        return messages

    def parse(self, signature, completion: str) -> dict[str, Any]:
        parsed = parsing.parse_cot(completion)
        return {"reasoning": parsed.reasoning, "answer": parsed.answer, "raw": parsed.raw,
                "parse_error": parsed.parse_error}

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        messages = self.format(signature, demos, inputs)
        with adapter_message_call(lm, messages):
            outputs = lm(messages=messages, **lm_kwargs)
        return [self.parse(signature, output_text(o)) for o in outputs]

    async def acall(self, lm, lm_kwargs, signature, demos, inputs):
        messages = self.format(signature, demos, inputs)
        with adapter_message_call(lm, messages):
            outputs = await lm.acall(messages=messages, **lm_kwargs)
        return [self.parse(signature, output_text(o)) for o in outputs]


def output_text(output) -> str:
    """An LM output is a string, or a dict with 'text' (when logprobs/tool calls come back too)."""
    if isinstance(output, dict):
        return output.get("text") or ""
    return output or ""

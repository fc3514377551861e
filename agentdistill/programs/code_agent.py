"""`CodeAgent`: a DSPy module that solves a task in steps of thought + Python code, run in a sandbox.

    import dspy, agentdistill as ad
    agent = ad.programs.CodeAgent("question -> answer", tools=[search], max_steps=5)
    agent.set_lm(ad.local_lm("qwen2.5-coder-0.5b-instruct"))
    pred = agent(question="Who directed the film that ...?", first_thought_prefix=None)
    pred.answer, pred.trajectory.print()

Each step is ONE call of the predictor `self.step = dspy.Predict(AgentStep)` through our `AgentAdapter`, so the DSPy
trace gets one entry per step whose inputs are the conversation up to that step (DSPy's CodeAct records the final
trajectory for every step instead, which is wrong for SFT). The code runs in the episode's `Sandbox` (one worker
process per episode, state kept between steps); its observation goes back as the next user turn.
`final_answer(x)` ends the run with x in the signature's output field; a reply without a code block gets an
observation saying how to fix it and the run goes on. After `max_steps` the agent asks the model once more for
an answer, as the paper's agents do (`final_answer_on_max_steps`): the prediction carries that answer, while the
trajectory still says it ran out of steps (out_of_steps True, final_answer None, the answer in forced_answer).
"""

import asyncio
import copy
import hashlib
import json
import logging
import threading
import time
from typing import Any, Callable

import dspy
from dspy.signatures.signature import ensure_signature
from dspy.utils.usage_tracker import track_usage

from agentdistill.dspy_compat import adapter_message_call
from agentdistill.programs import parsing, rendering, tracing
from agentdistill.programs.adapter import AgentAdapter, output_text
from agentdistill.programs.task import own_instructions, task_from
from agentdistill.programs.trajectory import Step, Trajectory
from agentdistill.signatures import AgentStep

logger = logging.getLogger(__name__)

DEFAULT_INSTRUCTIONS = "Solve the task."

# A worked example (step, observation, final_answer) in the system prompt: small untuned models need to see the
# whole loop once, or they stop after the first observation. It is part of the instructions (one string, stored
# in the step predictor's signature and in every Trajectory), so the SFT data and optimizers see it too.
DEFAULT_EXAMPLE = """Question: What is 17 * 3 + 2?
Thought: I will compute the value and print it.
```python
x = 17 * 3 + 2
print(x)
```
Observation:
53
Thought: The value is 53, so I give it as the final answer.
```python
final_answer(53)
```"""

EXAMPLE_HEADER = "\n\nExample:\n"  # between the instructions and the worked example (a short prompt cuts here)

# act(episode, task, history, prefix, index) -> Step: one step of the loop (SelfConsistency plugs in its own).
Act = Callable[[Any, dict, list, "str | None", int], Step]


class CodeAgent(dspy.Module):
    """A code-acting agent (Kang et al. 2025): thought + Python code per step, observations back, final_answer().

    Args:
        signature: the task, e.g. "question -> answer" (its instructions, if written, become the agent's).
        tools: plain typed Python functions with docstrings (or dspy.Tool / named callables); callable in the code.
        max_steps: steps before the run stops as out of steps.
        instructions: overrides the task description in the system prompt.
        example: a worked example (question, steps, observations, final_answer) appended to the instructions
            (None: no example). `agent.instructions` is the resulting text.
        sandbox: a `agentdistill.tools.sandbox.Sandbox` to run in (default: one created on first use, with
            `timeout` seconds per step, `memory_mb`, and `output_limit` characters of printed output kept per
            step - small, because every observation stays in a small model's context for the rest of the run).
        max_tokens: per-step generation limit passed to the LM (default: the LM's own).
        seed_thought: every step's prompt ends with a partial assistant turn "Thought:" that the model continues
            (see AgentAdapter; needs an LM that continues a trailing assistant message, as the local engine does).
        continuation_kwargs: extra LM kwargs for calls that end with a partial assistant turn (see adapter.py).
        final_answer_on_max_steps: when the steps run out, one more LM call asks for the answer (the paper's
            agents do, via smolagents' provide_final_answer; see `rendering.final_answer_chat`). The reply's
            final_answer(...) code runs in the episode, else its "Answer:" line, else the whole reply is the
            answer. False: the prediction's answer is None when the steps run out.

    Example:
        >>> agent = CodeAgent("question -> answer", max_steps=3)
        >>> pred = agent(question="What is 17 * 23?")   # doctest: +SKIP
        >>> pred.answer, pred.trajectory.finished        # doctest: +SKIP
        ('391', True)
    """

    def __init__(
        self,
        signature: str | type[dspy.Signature] = "question -> answer",
        tools: list[Any] = (),
        max_steps: int = 5,
        instructions: str | None = None,
        example: str | None = DEFAULT_EXAMPLE,
        sandbox=None,
        timeout: float = 10.0,
        memory_mb: int = 1024,
        output_limit: int = 4_000,
        max_tokens: int | None = None,
        seed_thought: bool = True,
        continuation_kwargs: dict[str, Any] | None = None,
        final_answer_on_max_steps: bool = True,
    ):
        super().__init__()
        if not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
        self.signature = ensure_signature(signature)
        self.tools = list(tools)
        self.tool_specs = rendering.tool_specs(self.tools, self.signature.output_fields)
        self.max_steps = max_steps
        self.max_tokens = max_tokens
        self.final_answer_on_max_steps = final_answer_on_max_steps
        text = instructions or own_instructions(self.signature) or DEFAULT_INSTRUCTIONS
        if example:
            text = f"{text.strip()}{EXAMPLE_HEADER}{example.strip()}"
        self.step = dspy.Predict(AgentStep.with_instructions(text))
        self.adapter = AgentAdapter(seed_thought, continuation_kwargs)
        self.sandbox_options = {"timeout": timeout, "memory_mb": memory_mb, "output_limit": output_limit}
        self._sandbox = sandbox
        self._sandbox_given = sandbox is not None  # the user's: compiled copies share it (its settings are theirs)
        self._sandbox_lock = threading.Lock()

    @property
    def instructions(self) -> str:
        """The task description of the system prompt: the step predictor's instructions (optimizers may edit them)."""
        return self.step.signature.instructions

    # --- the sandbox: created once, shared by copies (it is a process pool, not program state) -------------------
    @property
    def sandbox(self):
        with self._sandbox_lock:
            if self._sandbox is None:
                from agentdistill.tools.sandbox import Sandbox

                tools = {spec["name"]: tool for spec, tool in zip(self.tool_specs, self.tools)}
                self._sandbox = Sandbox(tools=tools, **self.sandbox_options)
            return self._sandbox

    def close(self) -> None:
        """Stop the sandbox's worker processes (a later call starts new ones)."""
        with self._sandbox_lock:
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None

    def __deepcopy__(self, memo):
        # dspy's deepcopy()/reset_copy() copy programs often (optimizers, teacher/student): copy the predictor and
        # settings, share the tools (a search index is GBs) and the sandbox.
        from dspy.primitives.base_module import BaseModule

        new = object.__new__(type(self))
        memo[id(self)] = new
        shared = {"tools", "_sandbox", "_sandbox_lock"}
        for key, value in self.__dict__.items():
            if key in shared:
                new.__dict__[key] = value
            elif isinstance(value, BaseModule):
                new.__dict__[key] = value.deepcopy()  # dspy's own rule: an LM that can't be copied is shared
            else:
                new.__dict__[key] = copy.deepcopy(value, memo)
        return new

    def __getstate__(self):  # pickling (dspy save_program): no live processes or locks
        state = super().__getstate__()
        state.pop("_sandbox_lock", None)
        state["_sandbox"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._sandbox_lock = threading.Lock()

    # --- the loop --------------------------------------------------------------------------------------------
    def forward(self, first_thought_prefix: str | None = None, example_id: str | None = None, **inputs):
        task = self.task_from(inputs)
        return self.run(task, first_thought_prefix, example_id, self.act)

    async def aforward(self, first_thought_prefix: str | None = None, example_id: str | None = None, **inputs):
        """`await agent.acall(question=...)`: the same loop, each LM call awaited (`Predict.acall`, the LM's
        async engine) and each step's code run in a worker thread, so one event loop drives many agents."""
        task = self.task_from(inputs)
        return await self.arun(task, first_thought_prefix, example_id, self.aact)

    def task_from(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return task_from(self.signature, inputs, type(self).__name__, also="first_thought_prefix=, example_id=")

    def run(self, task: dict, prefix: str | None, example_id: str | None, act: Act) -> dspy.Prediction:
        """Run one episode with `act` as the step policy; returns the prediction with its `Trajectory`."""
        prefix = rendering.clean_prefix(prefix)
        traj, start = self.new_trajectory(task, prefix, example_id), time.perf_counter()
        episode = self.sandbox.episode()
        try:
            for index in range(self.max_steps):
                with tracing.step_span(index) as span:  # a span only under a recording MLflow trace
                    step = act(episode, task, _history(traj), prefix if index == 0 else None, index)
                    tracing.record_step(span, step)
                if self.record(traj, step):
                    break
            else:
                traj.out_of_steps = True
                if self.final_answer_on_max_steps:
                    self.ask_for_answer(traj, episode)  # while the episode lives: the reply's code may run
        finally:
            episode.close()
        return self.finish(traj, start)

    async def arun(self, task: dict, prefix: str | None, example_id: str | None, act) -> dspy.Prediction:
        """`run` with an async step policy `act` (awaited per step); the sandbox's blocking calls go to threads."""
        prefix = rendering.clean_prefix(prefix)
        traj, start = self.new_trajectory(task, prefix, example_id), time.perf_counter()
        episode = await asyncio.to_thread(lambda: self.sandbox.episode())
        try:
            for index in range(self.max_steps):
                with tracing.step_span(index) as span:
                    step = await act(episode, task, _history(traj), prefix if index == 0 else None, index)
                    tracing.record_step(span, step)
                if self.record(traj, step):
                    break
            else:
                traj.out_of_steps = True
                if self.final_answer_on_max_steps:
                    await self.aask_for_answer(traj, episode)
        finally:
            await asyncio.to_thread(episode.close)
        return self.finish(traj, start)

    def new_trajectory(self, task: dict, prefix: str | None, example_id: str | None) -> Trajectory:
        return Trajectory(
            example_id=example_id if example_id is not None else task_id(task),
            instructions=self.instructions, tools=list(self.tool_specs), task=dict(task), first_thought_prefix=prefix,
        )

    @staticmethod
    def record(traj: Trajectory, step: Step) -> bool:
        """Append `step`; True when it ended the run with final_answer()."""
        traj.steps.append(step)
        if step.is_final:
            traj.finished, traj.final_answer = True, step.final_answer
        return step.is_final

    def finish(self, traj: Trajectory, start: float) -> dspy.Prediction:
        """The run's chat, usage and timings on the trajectory; the prediction that carries it."""
        traj.messages = rendering.trajectory_to_chat(traj)
        for step in traj.steps:
            _add_usage(traj.usage, step.usage)
        forced = traj.forced_ask or {}
        _add_usage(traj.usage, forced.get("usage"))
        traj.timings = {
            "total_s": time.perf_counter() - start,
            "lm_s": sum(s.lm_seconds for s in traj.steps) + forced.get("lm_seconds", 0.0),
            "exec_s": sum(s.exec_seconds for s in traj.steps),
        }
        return dspy.Prediction(**self.outputs(traj), trajectory=traj)

    def step_inputs(self, task: dict, history: list, prefix: str | None) -> dict[str, Any]:
        return {"task": task, "tools": self.tool_specs, "history": history, "prefix": prefix}

    def step_config(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens} if self.max_tokens else {}

    def act(self, episode, task: dict, history: list, prefix: str | None, index: int) -> Step:
        """One step: one predictor call (traced by DSPy), then the code runs in the episode."""
        start = time.perf_counter()
        with track_usage() as tracker, dspy.context(adapter=self.adapter):
            pred = self.step(**self.step_inputs(task, history, prefix), config=self.step_config())
        lm_seconds = time.perf_counter() - start
        parsed = {k: pred.get(k) for k in PARSED_KEYS}
        result = episode.run(parsed["code"]) if parsed["code"] is not None else None
        return _timed(make_step(index, parsed, result, prefix), tracker, lm_seconds)

    async def aact(self, episode, task: dict, history: list, prefix: str | None, index: int) -> Step:
        """`act` with the predictor awaited and the code run in a worker thread."""
        start = time.perf_counter()
        with track_usage() as tracker, dspy.context(adapter=self.adapter):
            pred = await self.step.acall(**self.step_inputs(task, history, prefix), config=self.step_config())
        lm_seconds = time.perf_counter() - start
        parsed = {k: pred.get(k) for k in PARSED_KEYS}
        result = await asyncio.to_thread(episode.run, parsed["code"]) if parsed["code"] is not None else None
        return _timed(make_step(index, parsed, result, prefix), tracker, lm_seconds)

    def final_ask(self, traj: Trajectory) -> tuple[Any, list[dict], dict[str, Any]]:
        """The out-of-steps ask: (lm, messages, config)."""
        messages = rendering.final_answer_chat(traj.task, _history(traj))
        lm = self.step.lm or dspy.settings.lm
        if lm is None:
            raise ValueError("No LM: set one with agent.set_lm(lm) or dspy.configure(lm=...)")
        traj.forced_answer = None
        return lm, messages, {"stop": list(rendering.STEP_STOP), **self.step_config()}

    def ask_for_answer(self, traj: Trajectory, episode) -> None:
        """Out of steps: one more LM call for the answer (not a step: no trace entry, not in traj.messages)."""
        lm, messages, config = self.final_ask(traj)
        start = time.perf_counter()
        try:
            with track_usage() as tracker, adapter_message_call(lm, messages):  # our own call, as an adapter's
                outputs = lm(messages=messages, **config)
        except Exception as e:  # noqa: BLE001 - e.g. the history plus the ask overflow the context window
            return _ask_failed(traj, messages, e, start)
        ask = _ask(messages, outputs, tracker, start)
        code = parsing.parse_step(ask["reply"]).code  # a code agent often answers with final_answer(x) on its variables
        _take_answer(traj, ask, episode.run(code) if code is not None else None)

    async def aask_for_answer(self, traj: Trajectory, episode) -> None:
        """`ask_for_answer` with the LM call awaited and the reply's code run in a worker thread."""
        lm, messages, config = self.final_ask(traj)
        start = time.perf_counter()
        try:
            with track_usage() as tracker, adapter_message_call(lm, messages):
                outputs = await lm.acall(messages=messages, **config)
        except Exception as e:  # noqa: BLE001 - as in ask_for_answer
            return _ask_failed(traj, messages, e, start)
        ask = _ask(messages, outputs, tracker, start)
        code = parsing.parse_step(ask["reply"]).code
        _take_answer(traj, ask, await asyncio.to_thread(episode.run, code) if code is not None else None)

    def outputs(self, traj: Trajectory) -> dict[str, Any]:
        """The signature's output fields from final_answer(x): x itself (one field) or x[name] (several).
        Out of steps: from the answer the final ask got (None without one)."""
        names = list(self.signature.output_fields)
        value = traj.final_answer if traj.finished else traj.forced_answer
        if value is None:
            return dict.fromkeys(names)
        if len(names) == 1:
            return {names[0]: _as_field(value, self.signature.output_fields[names[0]])}
        if isinstance(value, dict):
            return {n: _as_field(value.get(n), self.signature.output_fields[n]) for n in names}
        return {names[0]: _as_field(value, self.signature.output_fields[names[0]]), **dict.fromkeys(names[1:])}


PARSED_KEYS = ("text", "raw", "thought", "code", "parse_error")  # what the adapter's parse gives each step


def _history(traj: Trajectory) -> list[dict]:
    # A fresh list per step: the trace keeps each step's own inputs, later steps must not mutate them.
    return [{"text": s.text, "observation": s.observation} for s in traj.steps]


def _timed(step: Step, tracker, lm_seconds: float) -> Step:
    step.usage, step.lm_seconds = tracker.get_total_tokens(), lm_seconds
    return step


def _ask_failed(traj: Trajectory, messages: list[dict], error: Exception, start: float) -> None:
    # the episode itself ran to its end: keep it (answer None, as without the ask) and say why
    traj.forced_ask = {"messages": messages, "error": f"{type(error).__name__}: {error}",
                       "lm_seconds": time.perf_counter() - start}
    logger.warning("out-of-steps final-answer ask failed (%s: %s); the answer stays None", type(error).__name__, error)


def _ask(messages: list[dict], outputs, tracker, start: float) -> dict[str, Any]:
    return {"messages": messages, "reply": output_text(outputs[0]) if outputs else "",
            "usage": tracker.get_total_tokens(), "lm_seconds": time.perf_counter() - start, "source": None}


def _take_answer(traj: Trajectory, ask: dict[str, Any], result) -> None:
    """The ask's answer: final_answer(x) from the reply's code (`result`, None if it had none), else its
    "Answer: ..." line (or a \\boxed{}), else the whole reply, as the paper takes it."""
    if result is not None:
        ask["observation"] = result.observation()
        if result.is_final and result.error is None:
            traj.forced_answer, ask["source"] = result.final_answer, "final_answer"
    if ask["source"] is None:
        answer = parsing.parse_cot(ask["reply"]).answer
        if answer is not None:
            traj.forced_answer, ask["source"] = answer, "answer_line"
        elif ask["reply"].strip():
            traj.forced_answer, ask["source"] = ask["reply"].strip(), "reply"
    traj.forced_ask = ask


def make_step(index: int, parsed: dict, result, prefix: str | None) -> Step:
    """A `Step` from a parsed reply and its sandbox `StepResult` (None: the reply did not parse, nothing ran)."""
    common = {"index": index, "text": parsed["text"], "raw": parsed["raw"], "thought": parsed["thought"] or "",
              "code": parsed["code"], "prefix": prefix}
    if result is None:
        return Step(**common, observation=parsed["parse_error"], parse_error=True)
    silent = not result.stdout.strip() and result.value is None and not result.error and not result.is_final
    return Step(
        **common, observation=rendering.EMPTY_OBSERVATION if silent else result.observation(),
        stdout=result.stdout, value=result.value, error=result.error, error_kind=result.error_kind,
        is_final=result.is_final, final_answer=result.final_answer, tool_calls=list(result.tool_calls),
        exec_seconds=result.duration_s,
    )


def task_id(task: dict) -> str:
    """A stable id of a task's inputs (the default example id)."""
    return hashlib.sha1(json.dumps(task, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _as_field(value, field):
    """final_answer's value as the output field's type: str fields get str (JSON for lists/dicts)."""
    if value is None or field.annotation is not str or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _add_usage(total: dict, usage: dict) -> None:
    for model, counts in (usage or {}).items():
        into = total.setdefault(model, {})
        for key, value in (counts or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                into[key] = into.get(key, 0) + value

"""`SelfConsistency`: self-consistent action generation (SAG) for a CodeAgent, plain self-consistency for CoT.

    robust = SelfConsistency(agent, n=8, temperature=0.4, top_p=0.8)
    pred = robust(question="...")         # same prediction as the agent's; trajectory steps carry the vote

Per step of a `CodeAgent` (Kang et al. 2025, test-time self-consistent action generation):
  1. sample n candidate replies for the same conversation (`agentdistill.lm.sample`: one batched generate on the
     local engine, n calls otherwise);
  2. drop the ones whose code does not parse, and the void ones (code that runs nothing: only comments, `pass`);
  3. run each survivor in its own fork of the episode (`episode.fork(k)`), so no candidate sees another's side
     effects; drop those that raise;
  4. vote on the normalised execution output (the final answer if the candidate called final_answer, else its
     printed output and value); the first candidate with the most votes wins;
  5. the episode adopts the winner's fork; the winner's text goes into the conversation.
If nothing survives, the first candidate is kept with its parse or execution error. Each step records its
candidates, the valid fraction (parsed, not void and ran / n), the agreement (winner's votes / valid) and the
number of void candidates.

Wrapping a `ChainOfThoughtSolver`: n samples of the whole answer, majority vote on the normalised answers.
"""

import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dspy
from dspy.dsp.utils.settings import settings
from dspy.utils.usage_tracker import track_usage

from agentdistill.programs import rendering
from agentdistill.programs.code_agent import CodeAgent, make_step
from agentdistill.programs.cot import ChainOfThoughtSolver
from agentdistill.programs.trajectory import Step, is_void


class SelfConsistency(dspy.Module):
    """Sample n candidates per step (CodeAgent) or per answer (ChainOfThoughtSolver) and keep the majority.

    Args:
        program: a `CodeAgent` or a `ChainOfThoughtSolver` (compiled or not); its predictor's LM is used
            (or dspy.settings.lm).
        n: candidates per step.
        temperature, top_p: sampling settings of the candidates.
        max_tokens: per-candidate generation limit (default: the program's, else the LM's own).

    The wrapper's predictors are the program's (even a compiled, frozen one), so `save`, `load` and `set_lm`
    reach them.

    Example:
        >>> robust = SelfConsistency(CodeAgent("question -> answer"), n=8)
        >>> robust.set_lm(lm); robust.save("robust.json")        # doctest: +SKIP
        >>> robust(question="What is 17 * 23?").answer            # doctest: +SKIP
        '391'
    """

    def __init__(self, program, n: int = 8, temperature: float = 0.4, top_p: float = 0.8,
                 max_tokens: int | None = None):
        super().__init__()
        if not isinstance(program, (CodeAgent, ChainOfThoughtSolver)):
            raise TypeError(
                f"SelfConsistency wraps a CodeAgent or a ChainOfThoughtSolver, got {type(program).__name__}"
            )
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        self.program = program
        self.n, self.temperature, self.top_p = n, temperature, top_p
        self.max_tokens = max_tokens or program.max_tokens  # None: the LM's own (sample() asks it)

    def named_parameters(self):
        # The wrapped program is usually compiled, and DSPy freezes a compiled sub-module (`_compiled` hides its
        # predictors from the parent's walk): then save/load/set_lm/predictors() of the wrapper would see nothing.
        # The wrapper adds no parameters of its own, so it exposes the program's, under DSPy's own names.
        return [(f"program.{name}", param) for name, param in self.program.named_parameters()]

    def forward(self, first_thought_prefix: str | None = None, example_id: str | None = None, **inputs):
        task = self.program.task_from(inputs)
        if isinstance(self.program, ChainOfThoughtSolver):
            if first_thought_prefix is not None:
                raise ValueError("first_thought_prefix seeds a CodeAgent's first step; a ChainOfThoughtSolver has none")
            return self._vote_cot(task)
        return self.program.run(task, first_thought_prefix, example_id, self.act)

    def _sample(self, predictor, messages, stop=None) -> tuple[list[str], dict, float]:
        from agentdistill.lm import sample

        lm = predictor.lm or settings.lm
        if lm is None:
            raise ValueError("No LM: set one with program.set_lm(lm) or dspy.configure(lm=...)")
        # a partial assistant turn goes out with the agent's own continuation settings (CodeAgent(continuation_kwargs=
        # ...)), else the LM's (server_lm); None lets sample() ask the LM, a CoT solver's adapter has none
        continuation = getattr(getattr(self.program, "adapter", None), "continuation_kwargs", None)
        start = time.perf_counter()
        with track_usage() as tracker:
            texts = sample(lm, messages, n=self.n, temperature=self.temperature, top_p=self.top_p,
                           max_tokens=self.max_tokens, stop=stop, continuation=continuation)
        return list(texts), tracker.get_total_tokens(), time.perf_counter() - start

    # --- SAG: one step of a CodeAgent --------------------------------------------------------------------------
    def act(self, episode, task: dict, history: list, prefix: str | None, index: int) -> Step:
        agent: CodeAgent = self.program
        inputs = agent.step_inputs(task, history, prefix)
        adapter = agent.adapter
        messages = adapter.format(agent.step.signature, [], inputs)
        texts, usage, lm_seconds = self._sample(agent.step, messages, stop=list(rendering.STEP_STOP))
        parsed = [adapter.parse(agent.step.signature, adapter.continued(inputs, t)) for t in texts]

        runnable = [i for i, p in enumerate(parsed) if p["code"] is not None]
        forks = episode.fork(len(runnable)) if runnable else []
        results: dict[int, Any] = {}
        if forks:
            with ThreadPoolExecutor(max_workers=len(forks)) as pool:  # each candidate in its own copy of the state
                for i, result in zip(runnable, pool.map(lambda fc: fc[0].run(fc[1]),
                                                        [(f, parsed[i]["code"]) for f, i in zip(forks, runnable)])):
                    results[i] = result
        fork_of = dict(zip(runnable, forks))

        # A void candidate (code that runs nothing, e.g. only a comment) is no action: void ones would agree with
        # each other on their empty output and outvote the candidates that act (SimpleTIR's void turns).
        void = {i for i, p in enumerate(parsed) if is_void(p)}
        keys = {i: vote_key(r) for i, r in results.items() if r.error is None and i not in void}
        if keys:
            counts = Counter(keys.values())
            best = max(counts.values())
            winner = next(i for i in sorted(keys) if counts[keys[i]] == best)  # ties: the earliest candidate
            agreement = best / len(keys)
        else:
            winner, agreement = 0, 0.0  # nothing survived: keep the first candidate and its error
        if winner in fork_of:
            episode.adopt(fork_of[winner])  # closes the other forks
        else:
            for fork in forks:
                fork.close()

        step = make_step(index, parsed[winner], results.get(winner), prefix)
        step.usage, step.lm_seconds = usage, lm_seconds
        step.exec_seconds = max((r.duration_s for r in results.values()), default=0.0)
        step.candidates = [
            {"text": p["text"], "parse_error": p["parse_error"],
             "error": results[i].error if i in results else None,
             "observation": results[i].observation() if i in results else p["parse_error"],
             "vote_key": keys.get(i), "void": i in void}
            for i, p in enumerate(parsed)
        ]
        step.void_candidates = len(void)
        step.valid_fraction = len(keys) / len(parsed) if parsed else 0.0
        step.agreement = agreement
        _trace(agent.step, inputs, parsed[winner])
        return step

    # --- plain self-consistency of a ChainOfThoughtSolver ------------------------------------------------------
    def _vote_cot(self, task: dict) -> dspy.Prediction:
        solver: ChainOfThoughtSolver = self.program
        inputs = {"task": task}
        messages = solver.adapter.format(solver.solve.signature, solver.solve.demos, inputs)
        texts, usage, seconds = self._sample(solver.solve, messages)
        parsed = [solver.adapter.parse(solver.solve.signature, t) for t in texts]
        keys = {i: normalize(p["answer"]) for i, p in enumerate(parsed) if p["answer"] is not None}
        if keys:
            counts = Counter(keys.values())
            best = max(counts.values())
            winner = next(i for i in sorted(keys) if counts[keys[i]] == best)
        else:
            winner, best = 0, 0
        w = parsed[winner]
        _trace(solver.solve, inputs, w)
        return solver.prediction(
            task, w["reasoning"], w["answer"], w["raw"], w["parse_error"], usage=usage, seconds=seconds,
            candidates=[p["answer"] for p in parsed], valid_fraction=len(keys) / len(parsed),
            agreement=best / len(keys) if keys else 0.0,
        )


def _trace(predictor, inputs: dict, outputs: dict) -> None:
    """Record the chosen candidate as the predictor's trace entry, as a single dspy.Predict call would."""
    if settings.trace is not None and settings.max_trace_size > 0:
        if len(settings.trace) >= settings.max_trace_size:
            settings.trace.pop(0)
        settings.trace.append((predictor, dict(inputs), dspy.Prediction(**outputs)))


_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def normalize(text: Any) -> str:
    """Case- and whitespace-insensitive text; numbers by value ("4", "4.0", " 4 " agree)."""
    text = " ".join(str(text).split()).lower()
    if _NUMBER.match(text.replace(",", "")):
        value = float(text.replace(",", ""))
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return text


def vote_key(result) -> str:
    """What a candidate's execution produced: its final answer if it called final_answer, else its output."""
    if result.is_final:
        return "final: " + normalize(result.final_answer)
    shown = result.stdout + ("\n" + result.value if result.value is not None else "")
    return "output: " + normalize(shown)

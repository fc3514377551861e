"""A scripted LM for driving the real agent loop in tests: a DSPy 3.4 engine that replies from a script.

    lm, engine = scripted_lm(["Thought: ...\\n```python\\nprint(1)\\n```", ...])
    agent.set_lm(lm); agent(question="...")
    engine.requests[i]["messages"]   # exactly what the model was sent at call i (system included)

A reply is a string, or a function of the messages (for replies that depend on what the model was shown).
Calls may come from several threads at once (agentdistill.lm.sample fans out n calls to a non-local LM): replies
are then handed out in arrival order, so tests of concurrent sampling must not depend on which call got which.
"""

import threading

import dspy
from dspy.clients.engines.base import validate_request
from dspy.lm15 import Message, Response, TextPart, Usage


class ScriptedEngine:
    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        self._lock = threading.Lock()

    def complete(self, request):
        validate_request(request)
        messages = []
        if request.system is not None:
            system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
            messages.append({"role": "system", "content": system})
        messages.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
        config = request.config
        with self._lock:
            self.requests.append({"messages": messages, "stop": tuple(config.stop), "temperature": config.temperature,
                                  "top_p": config.top_p, "max_tokens": config.max_tokens})
            if not self.replies:
                raise AssertionError(f"scripted LM: no reply left for call {len(self.requests)}")
            reply = self.replies.pop(0)
        text = reply(messages) if callable(reply) else reply
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        return Response(
            id=None, model="scripted", message=Message.assistant([TextPart(text)]), finish_reason="stop",
            usage=Usage(input_tokens=prompt_tokens, output_tokens=len(text.split()),
                        total_tokens=prompt_tokens + len(text.split())),
        )

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self):
        pass


def scripted_lm(replies):
    from agentdistill.lm.engine import AsyncEngine

    engine = ScriptedEngine(replies)  # AsyncEngine: `await program.acall(...)` works too, as with local_lm
    return dspy.LM("scripted/agent", engine=engine, async_engine=AsyncEngine(engine), cache=False), engine

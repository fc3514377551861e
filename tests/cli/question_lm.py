"""A scripted DSPy 3.4 engine for driving the main job in tests: replies chosen by the question in the prompt."""

import dspy
from dspy.clients.engines.base import validate_request
from dspy.lm15 import Message, Response, TextPart, Usage


class ByQuestionEngine:
    """Replies `replies[q]` when the question q appears in the last user message, else `default`."""

    def __init__(self, replies: dict[str, str], default: str = "I do not know.\n\nAnswer: 0"):
        self.replies, self.default, self.calls = replies, default, 0

    def complete(self, request):
        validate_request(request)
        last = next((m.text or "" for m in reversed(request.messages) if m.role == "user"), "")
        self.calls += 1
        text = next((r for q, r in self.replies.items() if q in last), self.default)
        return Response(id=None, model="scripted", message=Message.assistant([TextPart(text)]), finish_reason="stop",
                        usage=Usage(input_tokens=10, output_tokens=5, total_tokens=15))

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self):
        pass


def scripted_lm(replies: dict[str, str], **kwargs):
    engine = ByQuestionEngine(replies)
    return dspy.LM("scripted/student", engine=engine, cache=False, **kwargs), engine

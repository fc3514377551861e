"""A small OpenAI-compatible server (POST /v1/chat/completions, GET /v1/models) over a local engine.

    agentdistill models serve qwen2.5-coder-0.5b-instruct --backend llama.cpp --port 8008
    # then, from any process (an LM that continues the agent's partial assistant turns, see agentdistill.lm.remote):
    #   agentdistill.lm.server_lm("qwen2.5-coder-0.5b-instruct", "http://127.0.0.1:8008/v1", server="agentdistill")

Standard library only (ThreadingHTTPServer), loopback by default; generation is serialised by the engine's lock.
Understood request keys: messages, n, temperature, top_p, top_k, max_tokens / max_completion_tokens, stop, seed,
and vLLM's chat-template switches `continue_final_message` / `add_generation_prompt` (sent top-level, which is
where the OpenAI client's `extra_body` puts them). With neither switch, a trailing assistant message is continued
(assistant prefill, as llama.cpp's server does); `ChatServer(..., prefill=False)` behaves as vLLM does instead (a
finished turn, then a new one), which is how the tests check that clients send the switches.
`stream=true` is refused with a 400. `server.requests` keeps the latest requests (body, whether the partial turn
was continued, the texts returned) for diagnostics.

Which servers continue a trailing (partial) assistant message:
- vLLM: yes, with extra_body={"continue_final_message": True, "add_generation_prompt": False}
  (it renders with transformers' continue_final_message, which strips trailing whitespace of the prefix).
- SGLang: yes, `continue_final_message` is accepted in the chat request (same meaning as vLLM's).
- llama.cpp server (llama-server): a trailing assistant message is treated as prefill by default.
- OpenAI API: no (a trailing assistant message is just history; the model starts a new turn).
- this server: yes, by default (prefill=False: only with the vLLM switches); the prefix is kept byte-exact.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: "ChatServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet: one line per request only when asked
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": status}})

    def do_GET(self):
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [
                {"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "agentdistill"}]})
        elif self.path.rstrip("/") in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self):
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            return self._error(404, f"no route {self.path}; this server has /v1/chat/completions")
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            kwargs = _generation_args(body, self.server.prefill)
            self.server.last_request = body  # for diagnostics (and the tests)
        except (ValueError, TypeError) as exc:
            return self._error(400, str(exc))
        try:
            completions = self.server.engine.generate(**kwargs)
        except ValueError as exc:
            return self._error(400, str(exc))
        except Exception as exc:  # a server keeps serving; the client sees what failed
            return self._error(500, f"{type(exc).__name__}: {exc}", "server_error")
        self.server.requests.append({"body": body, "continued": kwargs["continue_final_message"],
                                     "texts": [c.text for c in completions]})
        prompt = completions[0].prompt_tokens
        out = sum(c.completion_tokens for c in completions)
        self._send(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or self.server.model_name,
            "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                         "finish_reason": c.finish_reason, "logprobs": None} for i, c in enumerate(completions)],
            "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out},
        })


def _generation_args(body: dict, prefill: bool = True) -> dict:
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    if body.get("stream"):
        raise ValueError("stream=true is not supported by this server; send stream=false")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    chat = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):  # content parts: text only
            if any(not isinstance(p, dict) or p.get("type") != "text" for p in content):
                raise ValueError("only text content parts are supported")
            content = "".join(p.get("text", "") for p in content)
        if not isinstance(content, str):
            raise ValueError(f"each message needs a role and text content, got {m!r:.200}")
        chat.append({"role": m.get("role"), "content": content})
    continue_final = body.get("continue_final_message")
    add_generation_prompt = body.get("add_generation_prompt")
    if continue_final and add_generation_prompt:
        raise ValueError("continue_final_message and add_generation_prompt cannot both be true (as in vLLM)")
    if continue_final is None and add_generation_prompt is True:
        continue_final = False  # explicit new assistant turn, even after an assistant message
    if continue_final is None:  # neither switch: prefill (llama.cpp's server) or a new turn (vLLM's default)
        continue_final = prefill and chat[-1]["role"] == "assistant"
    continue_final = bool(continue_final)
    stop = body.get("stop") or ()
    return {
        "messages": chat, "n": int(body.get("n") or 1),
        "temperature": float(body["temperature"]) if body.get("temperature") is not None else 1.0,  # OpenAI default
        "top_p": body.get("top_p"), "top_k": body.get("top_k"),
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens"),
        "stop": [stop] if isinstance(stop, str) else list(stop), "seed": body.get("seed"),
        "continue_final_message": continue_final,
    }


class ChatServer(ThreadingHTTPServer):
    """`ChatServer(engine, "name", port=0).start()`; `.url` is the api_base ("http://127.0.0.1:PORT/v1").

    prefill: continue a trailing assistant message when the request has neither vLLM switch (llama.cpp's
    server does; False: start a new turn after it, as vLLM does).
    """

    daemon_threads = True

    def __init__(self, engine, model_name: str, host: str = "127.0.0.1", port: int = 0, verbose: bool = False,
                 prefill: bool = True):
        super().__init__((host, port), _Handler)
        self.engine, self.model_name, self.verbose, self.prefill = engine, model_name, verbose, prefill
        self.last_request: dict | None = None
        self.requests: deque[dict] = deque(maxlen=256)  # bounded: a long-running server must not grow
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "ChatServer":
        self._thread = threading.Thread(target=self.serve_forever, name="agentdistill-chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve(name_or_path: str, host: str = "127.0.0.1", port: int = 8008, backend: str = "transformers",
          served_name: str | None = None, verbose: bool = True, prefill: bool = True) -> None:
    """Serve a local model until interrupted (the `agentdistill models serve` command)."""
    from agentdistill.lm.local import local_engine, local_lm

    lm = local_lm(name_or_path, backend=backend)
    engine = local_engine(lm)
    engine.load()  # fail now, not on the first request
    name = served_name or str(name_or_path).rstrip("/").split("/")[-1]
    server = ChatServer(engine, name, host=host, port=port, verbose=verbose, prefill=prefill)
    print(f"serving {lm.model} as {name!r} at {server.url}  (agentdistill.lm.server_lm({name!r}, "
          f"'{server.url}', server='agentdistill'))", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

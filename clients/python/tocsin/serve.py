"""Imports the modules and serves their handlers (``@tocsin.signal``, ``@tocsin.timer``, the
uWSGI drop-ins, ...) with the runtime, in the foreground, until SIGTERM or SIGINT.

The current directory is on the import path, as with ``python3 -m``. Handlers run on
``--concurrency`` threads; decorated sources are shared with every other process declaring
them. Exit status 0 after a signal, 1 when the daemon refuses the setup."""

import argparse
import importlib
import logging
import os
import signal as _signal
import sys

HELP = "import MODULEs and serve their handlers (a worker process)"


def add_arguments(p):
    p.add_argument("modules", nargs="+", metavar="MODULE", help="a module to import (dotted)")
    p.add_argument("--socket", help="tocsind's socket (default $TOCSIN_SOCKET, else "
                                    "/run/tocsin/tocsin.sock)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="handler threads (default 4)")
    p.add_argument("--prefetch", type=int, default=None,
                   help="unacked one-of events held at once (default 16 x concurrency)")
    p.add_argument("--name", help="hello name (subscriber:NAME targets)")
    p.add_argument("--group", help="hello group (group:NAME targets)")
    p.add_argument("--linger", type=float, default=None,
                   help="seconds a shared source outlives its last process (default 30)")
    p.add_argument("--log-level", default="info", help="logging level (default info)")


def run(args):
    from . import runtime
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    runtime.AUTOSTART = False  # the drop-ins register; this process serves them below
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in args.modules:
        importlib.import_module(name)
    ud = sys.modules.get("tocsin.uwsgidecorators")
    if ud is not None:
        ud.run_postfork()  # this process is the worker: uWSGI runs these in each worker
    kw = {}
    if args.prefetch:
        kw["prefetch"] = args.prefetch
    if args.linger is not None:
        kw["linger"] = args.linger
    uw = sys.modules.get("tocsin.uwsgi")
    opts = uw.runtime_options() if uw is not None else {}
    rt = runtime.Runtime(socket_path=args.socket or opts.get("socket_path"),
                         concurrency=args.concurrency or opts.get("concurrency")
                         or runtime.DEFAULT_CONCURRENCY,
                         name=args.name or opts.get("name"),
                         group=args.group or opts.get("group"), **kw)

    def on_signal(signum, frame):
        rt.stop(timeout=0)
    _signal.signal(_signal.SIGTERM, on_signal)
    _signal.signal(_signal.SIGINT, on_signal)
    try:
        rt.serve()
    except Exception as e:  # RpcError: the setup was refused
        logging.getLogger("tocsin").error("tocsin serve: %s", e)
        return 1
    return 0

"""``python manage.py tocsin_worker [--concurrency N]``: serves the handlers of every installed
app's ``tocsin_handlers`` module in the foreground, until SIGTERM or SIGINT."""

import logging
import signal as _signal
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from tocsin import decorators, runtime
from tocsin._common import RpcError
from tocsin.contrib.django import conf, core


def _with_fresh_connections(func):
    """``func(event)`` between two close_old_connections(): a connection past CONN_MAX_AGE or
    broken by the last handler is not reused (what Django does around each request)."""
    def call(event):
        close_old_connections()
        try:
            return func(event)
        finally:
            close_old_connections()
    call.__wrapped__ = func
    call.__qualname__ = getattr(func, "__qualname__", type(func).__qualname__)
    call.__module__ = getattr(func, "__module__", None) or type(func).__module__
    return call


def wrapped(handlers):
    """Copies of ``handlers`` (same kind, signal, options, target and source id) whose
    functions are wrapped by close_old_connections()."""
    out = []
    for h in handlers:
        if h.func is None:  # a source without a function (tocsin.uwsgi.add_timer): nothing to wrap
            out.append(h)
            continue
        w = decorators.Handler(h.kind, _with_fresh_connections(h.func), h.signal, h.options,
                               target=h.target)
        w.id = h.id
        out.append(w)
    return out


class Command(BaseCommand):
    help = ("Serves the tocsin handlers of the installed apps' tocsin_handlers modules "
            "(foreground, until SIGTERM or SIGINT).")

    def add_arguments(self, parser):
        parser.add_argument("--concurrency", type=int, default=None,
                            help="handler threads (default TOCSIN['CONCURRENCY'], 4)")
        parser.add_argument("--prefetch", type=int, default=None,
                            help="unacked one-of events held at once (default 16 x concurrency)")
        parser.add_argument("--name", default=None, help="hello name (default TOCSIN['NAME'])")
        parser.add_argument("--group", default=None,
                            help="hello group (default TOCSIN['GROUP'])")
        parser.add_argument("--socket", default=None,
                            help="tocsind's socket (default TOCSIN['SOCKET'], $TOCSIN_SOCKET, "
                                 "/run/tocsin/tocsin.sock)")

    def handle(self, *args, **options):
        cfg = conf.get()
        if cfg["EAGER"]:
            raise CommandError("TOCSIN['EAGER'] is on: handlers run where events are raised; "
                               "there is nothing for a worker to do")
        tocsin_log = logging.getLogger("tocsin")
        if not tocsin_log.handlers and not logging.getLogger().handlers:
            level = {0: logging.WARNING, 1: logging.INFO}.get(options["verbosity"], logging.DEBUG)
            logging.basicConfig(level=level,
                                format="%(asctime)s %(name)s %(levelname)s %(message)s")
        runtime.AUTOSTART = False  # uWSGI drop-ins register; this process serves them below
        handlers = core.discover()
        ud = sys.modules.get("tocsin.uwsgidecorators")
        if ud is not None:
            ud.run_postfork()  # this process is the worker
        if not handlers:
            raise CommandError("no tocsin handlers: add a tocsin_handlers module to an "
                               "installed app (with @tocsin.signal, @tocsin.timer, ...)")
        concurrency = options["concurrency"] or cfg["CONCURRENCY"]
        kw = {}
        prefetch = options["prefetch"] or cfg["PREFETCH"]
        if prefetch:
            kw["prefetch"] = prefetch
        if cfg["LINGER"] is not None:
            kw["linger"] = cfg["LINGER"]
        rt = runtime.Runtime(handlers=wrapped(handlers),
                             socket_path=options["socket"] or cfg["SOCKET"],
                             concurrency=concurrency,
                             name=options["name"] or cfg["NAME"],
                             group=options["group"] or cfg["GROUP"], **kw)

        def on_signal(signum, frame):
            rt.stop(timeout=0)
        _signal.signal(_signal.SIGTERM, on_signal)
        _signal.signal(_signal.SIGINT, on_signal)
        if options["verbosity"] >= 1:
            self.stderr.write("tocsin_worker: serving %d handler(s) with %d thread(s) on %s" % (
                len(handlers), concurrency, rt.path))
        try:
            rt.serve()
        except RpcError as e:
            raise CommandError("the daemon refused the setup: %s" % e)
        except ConnectionError as e:
            raise CommandError(str(e))

"""``tocsin.uwsgidecorators``: uWSGI's ``uwsgidecorators`` over tocsind.

``from tocsin.uwsgidecorators import *`` in place of ``from uwsgidecorators import *``: the same
decorators, arguments and meaning: handlers are called with the signal number; ``signum=``
picks the number and ``target=`` who runs it (see tocsin.uwsgi.target_of); ``@cron(minute,
hour, day, month, weekday)`` takes -1 for any and -N for "every Nth". Registration happens at
import; the handlers are served in the background of each process (after a fork, in the
child: the ``@postfork`` functions run, then its own runtime starts).

A decorator without ``signum=`` makes a source shared by every process importing the module
(id ``py:<module>.<function>``), on a number the runtime picks (the one the source already has
when another process declared it first). With ``signum=`` the number is yours, as in uWSGI.

``spool``, ``spoolforever``, ``spoolraw``, ``mulefunc``, ``rpc``, ``farm``, ``mule``,
``muleloop``, ``mulemsg``, ``erlang``, ``lock`` and ``harakiri`` have no counterpart: using one
raises :class:`tocsin.uwsgi.NotSupported` naming the alternative.
"""

import os
from threading import Thread

from . import decorators, runtime
from . import uwsgi
from .uwsgi import NotSupported

__all__ = ["get_free_signal", "postfork", "signal", "timer", "mstimer", "rbtimer", "cron",
           "filemon", "thread", "spool", "spoolforever", "spoolraw", "mulefunc", "rpc", "farm",
           "mule", "muleloop", "mulemsg", "erlang", "lock", "harakiri", "postfork_chain",
           "NotSupported"]

postfork_chain = []


def get_free_signal():
    """The lowest signal number that has no handler, here or in the daemon's table (uWSGI's
    helper). The decorators below do not need it: without ``signum=`` they let the runtime
    pick one number for every process."""
    taken = set(uwsgi._registered)
    try:
        taken.update(e["signal"] for e in uwsgi.connection().table() if e.get("handlers"))
    except ConnectionError:
        pass
    for signum in range(0, 256):
        if signum not in taken:
            return signum
    raise Exception("No free uwsgi signal available")


class postfork(object):
    """Runs the function in each child process after a fork (``@postfork``), or only in
    worker N (``@postfork(N)``, N from tocsin.uwsgi.worker_id())."""

    def __init__(self, f):
        if callable(f):
            self.wid = 0
            self.f = f
        else:
            self.f = None
            self.wid = f
        postfork_chain.append(self)

    def __call__(self, *args, **kwargs):
        if self.f:
            if self.wid > 0 and self.wid != uwsgi.worker_id():
                return
            return self.f()
        self.f = args[0]


def run_postfork():
    """Runs the @postfork chain (done after each fork; ``tocsin serve`` runs it once)."""
    for f in postfork_chain:
        f()


def _after_fork_in_child():
    # tocsin.runtime's own hook ran first (registered before): nothing of the parent runs.
    run_postfork()
    if uwsgi._in_use and decorators.handlers():
        uwsgi._serve()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class signal(object):
    """``@signal(num, target='')``: the function handles signal ``num``."""

    def __init__(self, num, **kwargs):
        self.num = num
        self.target = kwargs.get('target', '')

    def __call__(self, f):
        uwsgi.register_signal(self.num, self.target, f)
        return f


class _source(object):
    """A decorator that declares a source: uWSGI's arguments as given (``args``), ``signum=``
    and ``target=``. A subclass names its kind, the ``uwsgi`` function that adds it on a number
    (``adder``) and the source's fields (``options``)."""
    kind = None
    adder = None

    def __init__(self, *args, **kwargs):
        self.args = args
        self.num = kwargs.get('signum')
        self.target = kwargs.get('target', '')

    def options(self):  # pragma: no cover
        raise NotImplementedError

    def __call__(self, f):
        if self.num is not None:  # uWSGI's way: a handler on the number, a source raising it
            uwsgi.register_signal(self.num, self.target, f)
            getattr(uwsgi, self.adder)(self.num, *self.args)
            return f
        h = decorators.Handler(self.kind, uwsgi._caller(f), None, self.options(),
                               target=uwsgi.target_of(self.target))
        decorators._add(h)
        uwsgi._serve()
        return f


class timer(_source):
    """``@timer(secs, signum=None, target='')``."""
    kind, adder = "timer", "add_timer"

    def options(self):
        return {"every": int(self.args[0])}


class mstimer(_source):
    """``@mstimer(msecs, signum=None, target='')``."""
    kind, adder = "timer", "add_ms_timer"

    def options(self):
        return {"every": "%dms" % int(self.args[0])}


class rbtimer(_source):
    """``@rbtimer(secs, signum=None, target='')``."""
    kind, adder = "rb_timer", "add_rb_timer"

    def options(self):
        return {"every": int(self.args[0])}


class cron(_source):
    """``@cron(minute, hour, day, month, dayweek, signum=None, target='')``: -1 is any value,
    -N every Nth (``@cron(-5, -1, -1, -1, -1)`` is ``*/5 * * * *``)."""
    kind, adder = "cron", "add_cron"

    def __init__(self, minute, hour, day, month, dayweek, **kwargs):
        super().__init__(minute, hour, day, month, dayweek, **kwargs)

    def options(self):
        return {"uwsgi": [int(a) for a in self.args]}


class filemon(_source):
    """``@filemon(path, signum=None, target='')``: a file or directory changed."""
    kind, adder = "file", "add_file_monitor"

    def options(self):
        return {"path": os.path.abspath(self.args[0])}


class thread(object):
    """``@thread``: each call runs the function in a new daemon thread."""

    def __init__(self, f):
        self.f = f

    def __call__(self, *args):
        t = Thread(target=self.f, args=args)
        t.daemon = True
        t.start()
        return self.f


def _unsupported(name, instead):
    def deco(*args, **kwargs):
        raise NotSupported("@%s has no tocsin counterpart: %s" % (name, instead))
    deco.__name__ = name
    return deco


_SPOOL = ("raise a one-of signal with a payload (tocsin.Client.raise_signal(sig, json.dumps("
          "args))) and handle it with @signal in a worker: acked, redelivered on failure, "
          "dead-lettered at max_deliveries")
spool = _unsupported("spool", _SPOOL)
spoolforever = _unsupported("spoolforever", _SPOOL)
spoolraw = _unsupported("spoolraw", _SPOOL)
mulefunc = _unsupported("mulefunc", "raise a signal with a payload whose target is "
                        "group:NAME, and run `python3 -m tocsin serve` processes in that group")
farm = _unsupported("farm", "processes saying hello in group NAME take group:NAME targets")
mule = _unsupported("mule", "run a separate `python3 -m tocsin serve MODULE` process")
muleloop = _unsupported("muleloop", "run a separate process")
mulemsg = _unsupported("mulemsg", "raise a signal with a payload to group:NAME")
rpc = _unsupported("rpc", "raise a signal with a payload; replies need your own RPC")
erlang = _unsupported("erlang", "none")
lock = _unsupported("lock", "a lock of your own (fcntl.flock, a database advisory lock), or a "
                    "one-of signal, which one process at a time handles")
harakiri = _unsupported("harakiri", "your server's timeout (gunicorn --timeout); exec "
                        "handlers take timeout:")

"""``tocsin.uwsgi``: the signal functions of uWSGI's ``uwsgi`` module, over tocsind.

``import tocsin.uwsgi as uwsgi`` in place of ``import uwsgi``: the same names, argument orders
and meaning (SPEC §9, docs/migrating-from-uwsgi.md):

- ``register_signal(num, target, handler)``: ``handler(num)`` runs in this process for events
  of signal ``num`` that reach it; ``target`` is uWSGI's (``''``/``worker`` one worker,
  ``workers``/``active-workers`` every one, ``workerN``/``muleN`` a named process,
  ``mule``/``spooler``/``farm_X`` a group), registered in the daemon's table if it lacks it.
- ``signal(num)`` raises it; ``signal_wait([num])``/``signal_received()`` wait for a signal
  that has no handler; ``signal_registered(num)``.
- ``add_timer(num, secs)``, ``add_ms_timer(num, ms)``, ``add_rb_timer(num, secs[, iterations])``,
  ``add_cron(num, minute, hour, day, month, weekday)`` (-1 any, -N every N),
  ``add_file_monitor(num, path)``: sources raising ``num``, shared by every process that adds the
  same one (one timer for N workers).

Handlers are served in the background of each process (a :mod:`tocsin.runtime` started at the
first registration, and again in each child after a fork). Settings come from the environment
(``TOCSIN_SOCKET``, ``TOCSIN_CONCURRENCY``, ``TOCSIN_NAME``, ``TOCSIN_GROUP``,
``TOCSIN_WORKER_ID``, ``TOCSIN_LINGER``) or :func:`configure`.
What uWSGI has and tocsin does not (spooler, mules' messages, RPC, locks, harakiri) raises
:class:`NotSupported`, which names the alternative.
"""

import hashlib
import os
import re
import sys
import threading

from . import decorators, runtime
from ._common import RpcError, socket_path as _resolve_path
from .client import Client

SIGNAL_MIN, SIGNAL_MAX = 0, 255


class NotSupported(NotImplementedError):
    """A uWSGI feature with no tocsin counterpart; the message names the alternative."""


_settings = {}
_lock = threading.RLock()
_registered = {}  # num -> Handler registered by register_signal in this process
_client = None
_client_pid = None
_received = threading.local()


def configure(socket_path=None, concurrency=None, name=None, group=None, worker_id=None,
              linger=None, autostart=None):
    """Settings for this process's runtime and connection (instead of the environment).
    ``worker_id`` N makes the process answer ``workerN`` targets (its hello name, unless
    ``name`` is given). ``autostart=False``: register only; serve with tocsin.start()/run()."""
    for k, v in dict(socket_path=socket_path, concurrency=concurrency, name=name, group=group,
                     worker_id=worker_id, linger=linger).items():
        if v is not None:
            _settings[k] = v
    if autostart is not None:
        runtime.AUTOSTART = bool(autostart)


def _setting(key, env, convert=str):
    if key in _settings:
        return _settings[key]
    v = os.environ.get(env)
    return convert(v) if v not in (None, "") else None


def worker_id():
    """This process's worker number (configure(worker_id=) or $TOCSIN_WORKER_ID), else 0."""
    return _setting("worker_id", "TOCSIN_WORKER_ID", int) or 0


def _name():
    name = _setting("name", "TOCSIN_NAME")
    if name is None and worker_id():
        name = "worker%d" % worker_id()
    return name


def runtime_options():
    """The keyword arguments of the runtime this module starts."""
    opts = {"socket_path": _setting("socket_path", "TOCSIN_SOCKET"), "name": _name(),
            "group": _setting("group", "TOCSIN_GROUP")}
    c = _setting("concurrency", "TOCSIN_CONCURRENCY", int)
    if c:
        opts["concurrency"] = c
    linger = _setting("linger", "TOCSIN_LINGER", float)
    if linger is not None:
        opts["linger"] = linger
    return opts


_in_use = False  # something was registered through the drop-ins (they serve after a fork)


def preloading_in_gunicorn_master():
    """True while gunicorn's master imports the application itself (``--preload``/
    ``preload_app``: ``Arbiter.setup`` loads it before forking the workers). No runtime is
    started there: the master would take one-of events (and run handlers) beside its workers.
    Each worker starts its own after the fork (the drop-ins' fork hook)."""
    if "gunicorn.arbiter" not in sys.modules:
        return False
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_name == "setup" and f.f_globals.get("__name__") == "gunicorn.arbiter":
            return True
        f = f.f_back
    return False


def _serve():
    """Makes sure a runtime serves the registered handlers in this process (not in gunicorn's
    master while it preloads the application: see preloading_in_gunicorn_master)."""
    global _in_use
    _in_use = True
    if runtime.current() is None and runtime.AUTOSTART and not preloading_in_gunicorn_master():
        with _lock:
            if runtime.current() is None:
                runtime.start(**runtime_options())


def connection():
    """This process's connection for signal(), signal_wait() & co. (a new one after a fork)."""
    global _client, _client_pid
    with _lock:
        if _client is None or _client_pid != os.getpid() or _client.closed:
            if _client is not None and _client_pid != os.getpid():
                try:  # the parent's connection: let go of our copy without shutting it down
                    _client._sock.detach()
                except OSError:
                    pass
            _client = Client(_resolve_path(runtime_options()["socket_path"]))
            _client_pid = os.getpid()
        return _client


def _check_num(num):
    if not isinstance(num, int) or isinstance(num, bool) or not SIGNAL_MIN <= num <= SIGNAL_MAX:
        raise OverflowError("a uwsgi signal is a number from 0 to 255, not %r" % (num,))
    return num


_WORKER = re.compile(r"^worker(\d+)$")
_MULE = re.compile(r"^mule(\d+)$")
_FARM = re.compile(r"^farm_?(.+)$")


def target_of(target):
    """The tocsin target for a uWSGI signal target (docs/migrating-from-uwsgi.md)."""
    if isinstance(target, bytes):
        target = target.decode()
    t = (target or "").strip()
    if t in ("", "worker", "worker0"):
        return "subscriber"
    if t in ("workers", "active-workers", "mules"):
        return "subscribers"
    if t in ("mule", "mule0"):
        return "group:mule"
    if t == "spooler":
        return "group:spooler"
    m = _WORKER.match(t)
    if m:
        return "subscriber:worker%s" % m.group(1)
    m = _MULE.match(t)
    if m:
        return "subscriber:mule%s" % m.group(1)
    m = _FARM.match(t)
    if m:
        return "group:farm_%s" % m.group(1)
    raise ValueError("unable to register signal: unknown target %r" % (target,))


def _caller(handler):
    def call(event):
        return handler(event.signal)
    call.__wrapped__ = handler
    call.__qualname__ = getattr(handler, "__qualname__", type(handler).__qualname__)
    call.__module__ = getattr(handler, "__module__", None) or type(handler).__module__
    return call


def register_signal(num, target, handler):
    """uWSGI's ``register_signal(num, target, handler)``: ``handler(num)`` runs for the
    signal's events in this process. Registering a number twice is refused (ValueError)."""
    _check_num(num)
    if not callable(handler):
        raise TypeError("the handler must be callable")
    t = target_of(target)
    with _lock:
        if num in _registered:
            raise ValueError("unable to register signal: signal %d is already registered" % num)
        h = decorators.Handler("signal", _caller(handler), num, target=t)
        _registered[num] = h
    decorators._add(h)
    _serve()


def _source(kind, num, sid, options):
    h = decorators.Handler(kind, None, _check_num(num), options)
    h.id = sid
    decorators._add(h)
    _serve()


def add_timer(num, secs):
    """A timer raising ``num`` every ``secs`` seconds (one for every process adding it)."""
    _source("timer", num, "uwsgi:timer:%d:%ds" % (num, int(secs)), {"every": int(secs)})


def add_ms_timer(num, msecs):
    """A timer raising ``num`` every ``msecs`` milliseconds."""
    _source("timer", num, "uwsgi:timer:%d:%dms" % (num, msecs), {"every": "%dms" % int(msecs)})


def add_rb_timer(num, secs, iterations=0):
    """A user-space timer raising ``num`` every ``secs`` seconds, ``iterations`` times (0:
    forever)."""
    opts = {"every": int(secs)}
    if iterations:
        opts["iterations"] = int(iterations)
    _source("rb_timer", num, "uwsgi:rb_timer:%d:%ds:%d" % (num, int(secs), int(iterations)), opts)


def add_cron(num, minute, hour, day, month, weekday):
    """A cron job raising ``num`` (uWSGI's fields: -1 any value, -N every Nth). Returns True."""
    fields = [int(minute), int(hour), int(day), int(month), int(weekday)]
    _source("cron", num, "uwsgi:cron:%d:%s" % (num, ".".join(map(str, fields))),
            {"uwsgi": fields})
    return True


def add_file_monitor(num, filename):
    """A file monitor raising ``num`` when ``filename`` (a file or a directory) changes."""
    path = os.path.abspath(filename)
    tag = re.sub(r"[^A-Za-z0-9._-]", "_", path.strip("/"))[-60:]
    digest = hashlib.sha1(path.encode()).hexdigest()[:8]
    _source("file", num, "uwsgi:file:%d:%s:%s" % (num, tag, digest), {"path": path})


def signal(num, remote=None):
    """Raises ``num``. ``remote`` (another uWSGI node) has no counterpart: raise on that node's
    tocsind, or use a cluster source."""
    if remote is not None:
        raise NotSupported("uwsgi.signal(num, remote): connect a tocsin.Client to the other "
                           "machine's tocsind socket (or use cluster: true sources)")
    connection().raise_signal(_check_num(num))


def signal_wait(num=None):
    """Waits for a signal that has no handler (of ``num``, or any); then signal_received()
    says which. Returns ''."""
    ev = connection().wait(None if num is None else _check_num(num))
    _received.num = ev.signal if ev is not None else -1
    return ""


def signal_received():
    """The signal the last signal_wait() of this thread received (-1 before)."""
    return getattr(_received, "num", -1)


def signal_registered(num):
    """True when ``num`` has a handler (registered here, or a handler in the daemon's table);
    None otherwise, as in uWSGI."""
    _check_num(num)
    if num in _registered:
        return True
    try:
        for e in connection().table():
            if e["signal"] == num and e.get("handlers"):
                return True
    except (RpcError, ConnectionError):
        pass
    return None


def masterpid():
    """The daemon's pid (what raises and routes signals here)."""
    return connection().status()["pid"]


def _unsupported(what, instead):
    def f(*args, **kwargs):
        raise NotSupported("uwsgi.%s has no tocsin counterpart: %s" % (what, instead))
    f.__name__ = what
    return f


lock = _unsupported("lock", "use a lock of your own (fcntl.flock on a file, a database "
                    "advisory lock) or a one-of signal (one process at a time handles it)")
unlock = _unsupported("unlock", "see uwsgi.lock")
spool = _unsupported("spool", "raise a one-of signal with a payload (tocsin.Client."
                     "raise_signal) and handle it in a worker (@signal): acked, retried, "
                     "dead-lettered")
set_user_harakiri = _unsupported("set_user_harakiri", "exec handlers take timeout:; in "
                                 "Python use your server's timeout (gunicorn --timeout)")
mule_msg = _unsupported("mule_msg", "raise a signal with a payload to a group: target "
                        "(group:mule) and handle it there")
register_rpc = _unsupported("register_rpc", "raise a signal with a payload; for replies use "
                            "your own RPC (HTTP)")


def _reset():
    """Forgets what this module registered (tests)."""
    global _client, _in_use
    with _lock:
        _in_use = False
        _registered.clear()
        _settings.clear()
        if _client is not None and _client_pid == os.getpid():
            _client.close()
        _client = None

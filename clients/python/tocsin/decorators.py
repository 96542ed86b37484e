"""The decorator API (uWSGI's decorators, Django's @receiver) and run(), which serves them."""

import logging
import os
import re
import sys
import threading

from ._common import (METHOD_NOT_FOUND, INVALID_PARAMS, NO_SUCH_EVENT, SOURCE_CONFLICT,
                      ConnectionLost, RpcError)
from ._common import duration, socket_path as _resolve_path
from .client import Client

log = logging.getLogger("tocsin")

FREE_SIGNAL_TOP = 200  # run() picks signals for sources without one from here downward


class Handler(object):
    """One registered handler. ``kind`` is "signal" or a source kind (timer, rb_timer, cron,
    file); ``signal`` is the signal given (None: the runtime picks a free one); ``options`` are
    the source's fields; ``id`` its stable source id ("py:<module>.<function>", the same in
    every process that imports the module); ``target`` the one-of or broadcast target the
    runtime makes sure the signal has (None: ``subscriber`` for sources, nothing for signal
    handlers, whose targets come from the daemon's configuration)."""

    def __init__(self, kind, func, signal=None, options=None, target=None):
        self.kind = kind
        self.func = func
        self.signal = signal
        self.options = options or {}
        self.target = target
        self.id = None
        self.bound_signal = None  # the number used in the current connection

    def __repr__(self):
        return "Handler(%s, %s, signal=%r, id=%r)" % (
            self.kind, getattr(self.func, "__qualname__", self.func), self.signal, self.id)


_registry = []
_registry_lock = threading.Lock()
_current_stop = None
_listeners = []  # callables told of each new handler (a running runtime that serves the registry)


def function_name(func):
    """``module.qualname`` of a function (or of a callable object's class), for source ids."""
    f = getattr(func, "__wrapped__", func)
    module = getattr(f, "__module__", None) or type(f).__module__
    name = getattr(f, "__qualname__", None) or type(f).__qualname__
    if module == "__main__":  # the same script run twice is the same program
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        module = spec.name if spec is not None and spec.name else os.path.splitext(
            os.path.basename(getattr(main, "__file__", "") or "main"))[0]
    return re.sub(r"[^A-Za-z0-9._:-]", "_", "%s.%s" % (module, name))


def _source_id(func, taken):
    base = "py:" + function_name(func)
    sid, n = base, 1
    while sid in taken:
        n += 1
        sid = "%s:%d" % (base, n)
    return sid


def _add(handler):
    with _registry_lock:
        if handler.kind != "signal" and handler.id is None:
            handler.id = _source_id(handler.func, {h.id for h in _registry})
        _registry.append(handler)
        listeners = list(_listeners)
    for notify in listeners:
        notify(handler)
    return handler.func


def handlers():
    """The registered handlers (a copy)."""
    with _registry_lock:
        return list(_registry)


def clear():
    """Forgets every registered handler."""
    with _registry_lock:
        del _registry[:]


def _seconds(value):
    duration(value)  # a bad value fails here, at decoration time
    return value


def signal(sig):
    """``@tocsin.signal(17)`` or ``@tocsin.signal("jobs")``: the function gets every event of
    the signal that reaches this process (broadcast, and one-of events, acked after it
    returns)."""
    def deco(func):
        return _add(Handler("signal", func, sig))
    return deco


def timer(seconds, signal=None, iterations=0):
    """``@tocsin.timer(5)``: a kernel timer every ``seconds``, on ``signal`` or a free one."""
    def deco(func):
        return _add(Handler("timer", func, signal,
                            {"every": _seconds(seconds), "iterations": iterations}))
    return deco


def rbtimer(seconds, signal=None, iterations=0):
    """``@tocsin.rbtimer(5)``: like timer, kept in the daemon's user-space timer tree."""
    def deco(func):
        return _add(Handler("rb_timer", func, signal,
                            {"every": _seconds(seconds), "iterations": iterations}))
    return deco


def cron(schedule, tz=None, signal=None, jitter=None, missed=None, iterations=0):
    """``@tocsin.cron("*/5 * * * *", tz="Europe/Berlin")``: a cron job (SPEC §3)."""
    def deco(func):
        return _add(Handler("cron", func, signal, {
            "schedule": schedule, "tz": tz, "jitter": jitter, "missed": missed,
            "iterations": iterations}))
    return deco


def filemon(path, recursive=False, signal=None, events=None, match=None, settle=None,
            max_delay=None, iterations=0):
    """``@tocsin.filemon("/tmp", recursive=False)``: an inotify file monitor (SPEC §3)."""
    def deco(func):
        return _add(Handler("file", func, signal, {
            "path": str(path), "recursive": recursive, "events": events, "match": match,
            "settle": settle, "max_delay": max_delay, "iterations": iterations}))
    return deco


def stop():
    """Asks the running run() to return (from another thread or from a handler)."""
    s = _current_stop
    if s is not None:
        s.set()


_ADD = {"timer": "add_timer", "rb_timer": "add_rb_timer", "cron": "add_cron",
        "file": "add_file_monitor"}


_DURATIONS = ("every", "after", "jitter", "settle", "max_delay")

SHARED_UNSUPPORTED = "the daemon does not know shared sources (lifetime)"


def _has_target(entry, target):
    return entry is not None and "target[%s]" % target in entry.get("handlers", [])


def _any_target(entry):
    return entry is not None and any(str(x).startswith("target[")
                                     for x in entry.get("handlers", []))


class _Session(object):
    """What the runtime sets up on one connection. The setup and cleanup are generators of
    (method, kwargs) calls, driven by the sync runtime (tocsin.runtime) and by tocsin.aio.run():
    a call's result is sent back in, an RpcError thrown in.

    Sources are shared (``shared``): declared under their stable id with ``lifetime: clients``
    and ``linger`` seconds, so that every process importing the module joins one source; they
    are not removed on the way out (the daemon removes them ``linger`` after the last declarer
    disconnects). A daemon that does not know ``lifetime`` gets per-process sources
    (``py:<pid>:...``), removed on the way out; ``self.shared`` is then False."""

    def __init__(self, hs, shared=True, linger=30.0, replace=False, prefetch=None):
        self.handlers = hs
        self.signal_handlers = [h for h in hs if h.kind == "signal"]
        self.sources = [h for h in hs if h.kind != "signal"]
        self.shared = shared
        self.linger = linger
        self.replace = replace
        self.prefetch = prefetch
        self.registered = []  # (signal, target) this session added
        self.added = []       # source ids this session added (not shared)
        self.ids = {}         # handler -> the source id used on this connection

    def source_id(self, h):
        if self.shared:
            return h.id
        return "py:%d:%s" % (os.getpid(), h.id[3:] if h.id.startswith("py:") else h.id)

    def _subscribe(self, params):
        params["ack"] = True
        # Events with their params as an array: 0.5-0.75 of the parsing of the object form, the
        # largest cost per event in this process (docs/BENCHMARKS.md, Python runtime). A daemon
        # that does not know it sends objects, which Event reads as well.
        params["event_params"] = "by-position"
        if self.prefetch is not None:
            params["prefetch"] = int(self.prefetch)
        return "subscribe", params

    def _ensure_target(self, table, sig, target):
        entry = table.get(sig) if isinstance(sig, int) else next(
            (e for e in table.values() if e.get("name") == sig), None)
        if _has_target(entry, target):
            return
        try:
            yield "register", {"signal": sig, "target": target}
            self.registered.append((sig, target))
        except RpcError as e:
            if e.code != INVALID_PARAMS or "already" not in e.message:
                raise

    def setup_steps(self, name, group):
        if name is not None or group is not None:
            yield "hello", {"name": name, "group": group}
        table = {e["signal"]: e for e in (yield "table", {})}
        for h in self.signal_handlers:
            if h.target is not None:
                yield from self._ensure_target(table, h.signal, h.target)
        if self.signal_handlers:
            keys = []
            for h in self.signal_handlers:
                if h.signal not in keys:
                    keys.append(h.signal)
            yield self._subscribe({"signals": keys})
        for key in set(h.signal for h in self.signal_handlers if h.target is None):
            entry = next((e for e in table.values() if key in (e["signal"], e.get("name"))),
                         None)
            if not _any_target(entry):
                log.warning("tocsin: signal %r has no subscriber target in the daemon's table: "
                            "its events will not reach this process (register one)", key)
        if not self.sources:
            return
        existing = {}
        if self.shared and any(h.signal is None for h in self.sources):
            existing = yield from self._existing()
        used = set(table)
        for h in self.sources:
            if h.signal is None:
                sig = existing.get(h.id)
                if sig is None:
                    sig = self._pick(h, used)
                used.add(sig)
                h.bound_signal = sig
            else:
                h.bound_signal = h.signal
        for h in self.sources:
            yield from self._declare(h, table, used)

    def _existing(self):
        st = yield "status", {}
        return {s["id"]: s.get("signal") for s in (st.get("sources") or {}).get("list", [])}

    @staticmethod
    def _pick(h, used):
        if h.bound_signal is not None and h.bound_signal not in used:
            return h.bound_signal
        sig = next((n for n in range(FREE_SIGNAL_TOP, -1, -1) if n not in used), None)
        if sig is None:
            raise RpcError(INVALID_PARAMS, "no free signal number for %s" % h.id)
        return sig

    def _declare(self, h, table, used):
        # A source without a function (tocsin.uwsgi.add_timer & co.) only raises its signal:
        # whoever handles the signal gets its events; it needs no target of its own.
        target = h.target or "subscriber"
        for attempt in range(3):
            sig = h.bound_signal
            if h.func is not None:
                yield from self._ensure_target(table, sig, target)
            if not self.shared:
                try:
                    yield "remove_source", {"id": self.source_id(h)}  # stale, before a reconnect
                except RpcError as e:
                    if e.code != NO_SUCH_EVENT:
                        raise
            fields = {k: (duration(v) if k in _DURATIONS else v)
                      for k, v in h.options.items() if v is not None}
            if isinstance(fields.get("events"), str):
                fields["events"] = [fields["events"]]
            fields.update(signal=sig, id=self.source_id(h))
            if self.shared:
                fields.update(lifetime="clients", linger=duration(self.linger))
                if self.replace:
                    fields["replace"] = True
            try:
                yield "call", {"method": _ADD[h.kind], "params": fields}
            except RpcError as e:
                if self.shared and e.code == INVALID_PARAMS and "lifetime" in e.message:
                    log.warning("tocsin: %s: declaring per-process sources", SHARED_UNSUPPORTED)
                    self.shared = False
                    continue
                if e.code == SOURCE_CONFLICT and self.shared and h.signal is None:
                    # another process declared it first on another free number: join that one
                    existing = yield from self._existing()
                    if existing.get(h.id) is not None and existing[h.id] != sig:
                        h.bound_signal = existing[h.id]
                        continue
                raise
            self.ids[h] = fields["id"]
            if not self.shared:
                self.added.append(fields["id"])
            if h.func is not None:
                yield self._subscribe({"signals": [sig], "sources": [fields["id"]]})
            return
        raise RpcError(SOURCE_CONFLICT, "could not declare %s" % h.id)

    def cleanup_steps(self):
        for sid in self.added:
            try:
                yield "remove_source", {"id": sid}
            except RpcError:
                pass
        for sig, target in ([] if self.shared else self.registered):
            # shared: other processes may use the target; it stays (a run-time table entry)
            try:
                yield "unregister", {"signal": sig, "target": target}
            except RpcError:
                pass

    def matching(self, event):
        matched = [h for h in self.signal_handlers if event.matches(h.signal)]
        matched += [h for h in self.sources
                    if event.source is not None and event.source.id == self.ids.get(h)]
        if not matched:
            log.debug("tocsin: no handler for %r", event)
        return matched

    @staticmethod
    def failed(h, event):
        log.exception("tocsin: handler %s failed on %r%s", h, event,
                      "; not acked, the daemon will redeliver" if event.ack else "")

    @staticmethod
    def ack_refused(event, e):  # redelivered elsewhere after the ack timeout
        log.warning("tocsin: ack of seq %s refused: %s", event.seq, e.message)


def _drive(client, steps):
    """Runs a generator of (method, kwargs) calls on a sync client."""
    result, exc = None, None
    while True:
        try:
            call = steps.throw(exc) if exc is not None else steps.send(result)
        except StopIteration:
            return
        try:
            result, exc = getattr(client, call[0])(**call[1]), None
        except RpcError as e:
            result, exc = None, e


def run(socket_path=None, stop_event=None, name=None, group=None, max_reconnects=None,
        registry=None, ready=None, backoff_max=2.0, concurrency=None, **kw):
    """Serves the registered handlers in the calling thread until ``stop_event`` is set (or
    :func:`stop` is called): the foreground form of the runtime (tocsin.runtime.Runtime, where
    the other keyword arguments are described: prefetch, linger, shared, replace, ...).

    - ``@signal`` handlers: one acking subscription; a one-of event is acked (batched, as a
      notification) after every handler of it returned; a handler that raises is logged and
      the event nacked, so the daemon redelivers it at once (or dead-letters it).
    - ``@timer``/``@rbtimer``/``@cron``/``@filemon``: a source shared by every process that
      declares it, under the id ``py:<module>.<function>``, on the given signal or on a free
      number (from 200 downward, not in the table; the one the source already has when another
      process declared it), which gets a ``subscriber`` target; the handler gets that source's
      events.
    - Handlers run on ``concurrency`` threads (default 4).
    - When the connection drops (daemon restart) it reconnects with backoff (at most
      ``backoff_max`` seconds between attempts) and sets everything up again. With
      ``max_reconnects``, ConnectionLost is raised after that many failed attempts in a row.
    - An error the daemon answers during setup (unknown signal, bad cron expression, a method
      the daemon lacks) is raised as RpcError: nothing is silently left out.
    - ``ready``: a threading.Event set each time the setup is done (tests use it).
    """
    from . import runtime
    rt = runtime.Runtime(handlers=registry, socket_path=socket_path, name=name, group=group,
                         max_reconnects=max_reconnects, backoff_max=backoff_max,
                         stop_event=stop_event, ready=ready,
                         concurrency=concurrency or runtime.DEFAULT_CONCURRENCY, **kw)
    rt.serve()

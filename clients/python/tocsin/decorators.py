"""The decorator API (uWSGI's decorators, Django's @receiver) and run(), which serves them."""

import logging
import os
import re
import threading

from ._common import (METHOD_NOT_FOUND, INVALID_PARAMS, NO_SUCH_EVENT, SOURCE_CONFLICT,
                      ConnectionLost, RpcError)
from ._common import duration, socket_path as _resolve_path
from .client import Client

log = logging.getLogger("tocsin")

FREE_SIGNAL_TOP = 200  # run() picks signals for sources without one from here downward


class Handler(object):
    """One registered handler. ``kind`` is "signal" or a source kind (timer, rb_timer, cron,
    file); ``signal`` is the signal given (None: run() picks a free one); ``options`` are the
    source's fields; ``id`` its deterministic source id ("py:<pid>:<function name>")."""

    def __init__(self, kind, func, signal=None, options=None):
        self.kind = kind
        self.func = func
        self.signal = signal
        self.options = options or {}
        self.id = None
        self.bound_signal = None  # the number used in the current connection

    def __repr__(self):
        return "Handler(%s, %s, signal=%r, id=%r)" % (
            self.kind, getattr(self.func, "__qualname__", self.func), self.signal, self.id)


_registry = []
_registry_lock = threading.Lock()
_current_stop = None


def _source_id(func, taken):
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    name = re.sub(r"[^A-Za-z0-9._:-]", "_", name)
    base = "py:%d:%s" % (os.getpid(), name)
    sid, n = base, 1
    while sid in taken:
        n += 1
        sid = "%s:%d" % (base, n)
    return sid


def _add(handler):
    with _registry_lock:
        if handler.kind != "signal":
            handler.id = _source_id(handler.func, {h.id for h in _registry})
        _registry.append(handler)
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


class _Session(object):
    """What run() sets up on one connection. The setup and cleanup are generators of
    (method, kwargs) calls, driven by the sync run() here and by tocsin.aio.run(): a call's
    result is sent back in, an RpcError thrown in."""

    def __init__(self, hs):
        self.handlers = hs
        self.signal_handlers = [h for h in hs if h.kind == "signal"]
        self.sources = [h for h in hs if h.kind != "signal"]
        self.registered = []  # (signal, target) this session added
        self.added = []       # source ids this session added

    def setup_steps(self, name, group):
        if name is not None or group is not None:
            yield "hello", {"name": name, "group": group}
        if self.signal_handlers:
            keys = []
            for h in self.signal_handlers:
                if h.signal not in keys:
                    keys.append(h.signal)
            yield "subscribe", {"signals": keys, "ack": True}
        table = {e["signal"]: e for e in (yield "table", {})}
        for key in set(h.signal for h in self.signal_handlers):
            entry = next((e for e in table.values() if key in (e["signal"], e.get("name"))),
                         None)
            if entry is None or not any(str(x).startswith("target[")
                                        for x in entry.get("handlers", [])):
                log.warning("tocsin: signal %r has no subscriber target in the daemon's table: "
                            "its events will not reach this process (register one)", key)
        if not self.sources:
            return
        used = set(table)
        for h in self.sources:
            if h.signal is not None:
                continue
            if h.bound_signal is not None and h.bound_signal not in used:
                sig = h.bound_signal
            else:
                sig = next((n for n in range(FREE_SIGNAL_TOP, -1, -1) if n not in used), None)
                if sig is None:
                    raise RpcError(INVALID_PARAMS, "no free signal number for %s" % h.id)
            used.add(sig)
            h.bound_signal = sig
        for h in self.sources:
            if h.signal is not None:
                h.bound_signal = h.signal
            sig = h.bound_signal
            entry = table.get(sig) if isinstance(sig, int) else next(
                (e for e in table.values() if e.get("name") == sig), None)
            has_target = entry is not None and any(
                str(x).startswith("target[") for x in entry.get("handlers", []))
            if not has_target:
                try:
                    yield "register", {"signal": sig, "target": "subscriber"}
                    self.registered.append((sig, "subscriber"))
                except RpcError as e:
                    if e.code != INVALID_PARAMS or "already" not in e.message:
                        raise
            try:
                yield "remove_source", {"id": h.id}  # a stale one from before a reconnect
            except RpcError as e:
                # SOURCE_CONFLICT: another connected process declares it; the add below joins
                # it when the spec is the same (docs/protocol.md, "Shared sources").
                if e.code not in (NO_SUCH_EVENT, SOURCE_CONFLICT):
                    raise
            fields = {k: v for k, v in h.options.items() if v is not None}
            fields.update(signal=sig, id=h.id)
            yield _ADD[h.kind], fields
            self.added.append(h.id)
            yield "subscribe", {"signals": [sig], "sources": [h.id], "ack": True}

    def cleanup_steps(self):
        for sid in self.added:
            try:
                yield "remove_source", {"id": sid}
            except RpcError:
                pass
        for sig, target in self.registered:
            try:
                yield "unregister", {"signal": sig, "target": target}
            except RpcError:
                pass

    def matching(self, event):
        matched = [h for h in self.signal_handlers if event.matches(h.signal)]
        matched += [h for h in self.sources
                    if event.source is not None and event.source.id == h.id]
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


def _dispatch(session, client, event):
    ok = True
    for h in session.matching(event):
        try:
            h.func(event)
        except Exception:
            ok = False
            session.failed(h, event)
    if ok and event.ack:
        try:
            client.ack(event)
        except RpcError as e:
            session.ack_refused(event, e)


def _cleanup(session, client):
    try:
        _drive(client, session.cleanup_steps())
    except (ConnectionError, TimeoutError):
        pass


def run(socket_path=None, stop_event=None, name=None, group=None, max_reconnects=None,
        registry=None, ready=None, backoff_max=2.0):
    """Serves the registered handlers until ``stop_event`` is set (or :func:`stop` is called).

    - ``@signal`` handlers: one acking subscription; one-of events are acked after every
      handler of the event returned; a handler that raises is logged and the event is not
      acked, so the daemon redelivers it after its ack_timeout.
    - ``@timer``/``@rbtimer``/``@cron``/``@filemon``: the source is added with id
      ``py:<pid>:<function>`` on the given signal or a free number (from 200 downward, not in
      the table) that gets a ``subscriber`` target; the handler gets that source's events.
    - When the connection drops (daemon restart) it reconnects with backoff (at most
      ``backoff_max`` seconds between attempts) and sets everything up again. With
      ``max_reconnects``, ConnectionLost is raised after that many failed attempts in a row.
    - An error the daemon answers during setup (unknown signal, bad cron expression, a method
      the daemon lacks) is raised as RpcError: nothing is silently left out.
    - ``ready``: a threading.Event set each time the setup is done (tests use it).
    On return, the sources and targets run() added are removed.
    """
    global _current_stop
    path = _resolve_path(socket_path)
    stop_ev = stop_event if stop_event is not None else threading.Event()
    _current_stop = stop_ev
    hs = list(registry) if registry is not None else handlers()
    failures = 0
    try:
        while not stop_ev.is_set():
            try:
                client = Client(path, timeout=30.0)
            except ConnectionLost as e:
                failures += 1
                if max_reconnects is not None and failures > max_reconnects:
                    raise
                delay = min(0.05 * (2 ** min(failures - 1, 10)), backoff_max)
                log.info("tocsin: %s; retrying in %.2fs", e, delay)
                stop_ev.wait(delay)
                continue
            session = _Session(hs)
            try:
                _drive(client, session.setup_steps(name, group))
                failures = 0
                if ready is not None:
                    ready.set()
                log.info("tocsin: serving %d handler(s) on %s", len(hs), path)
                while not stop_ev.is_set():
                    ev = client.next_event(timeout=0.1)
                    if ev is not None:
                        _dispatch(session, client, ev)
            except (ConnectionLost, TimeoutError) as e:
                if ready is not None:
                    ready.clear()
                log.warning("tocsin: %s; reconnecting", e)
                continue
            except RpcError:
                _cleanup(session, client)
                raise
            finally:
                if stop_ev.is_set():
                    _cleanup(session, client)
                client.close()
    finally:
        if _current_stop is stop_ev:
            _current_stop = None

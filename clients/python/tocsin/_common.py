"""Shared pieces of the sync and asyncio clients: events, errors, parameter helpers."""

import datetime
import logging
import os
from collections import namedtuple

log = logging.getLogger("tocsin")

DEFAULT_SOCKET = "/run/tocsin/tocsin.sock"

# JSON-RPC error codes of docs/protocol.md.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
PERMISSION_DENIED = -32001
LIMIT_REACHED = -32002
UNKNOWN_SIGNAL = -32003
PAYLOAD_TOO_LARGE = -32004
NO_SUCH_EVENT = -32005
RELOAD_FAILED = -32006
LINE_TOO_LONG = -32007
SOURCE_CONFLICT = -32008  # a run-time source id taken by another spec, or declared by others


class RpcError(Exception):
    """An error answered by the daemon: ``code`` and ``message`` of the JSON-RPC error."""

    def __init__(self, code, message):
        super().__init__("[%s] %s" % (code, message))
        self.code = code
        self.message = message


class ConnectionLost(ConnectionError):
    """The connection to tocsind is closed (or could not be opened)."""


Source = namedtuple("Source", ["kind", "id"])
Source.__doc__ = "Where an event came from: kind (timer, raise, cron, ...) and id."

Overflow = namedtuple("Overflow", ["dropped", "first_seq", "last_seq"])
Overflow.__doc__ = "Broadcast events dropped from this connection's queue before an event."


class Event(object):
    """One event of a signal, as the daemon delivered it.

    ``ack`` is True when the event came through a one-of target and must be acknowledged
    (``client.ack(event)``); ``delivery`` counts its deliveries from 1 (``redelivered`` from 2 on:
    it was given to someone before). ``overflow``
    is an :class:`Overflow` when the daemon reported dropped broadcast events just before it.
    ``raw`` is the notification's params as they came: an object, or the array of a subscription
    with ``event_params: "by-position"`` (the runtime's).
    """

    __slots__ = ("signal", "name", "seq", "source", "time", "iteration", "payload", "ack",
                 "redelivered", "delivery", "overflow", "raw")

    def __init__(self, signal, name=None, seq=0, source=None, time=None, iteration=0,
                 payload=None, ack=False, redelivered=False, overflow=None, raw=None,
                 delivery=0):
        self.signal = signal
        self.name = name
        self.seq = seq
        self.source = source
        self.time = time
        self.iteration = iteration
        self.payload = payload
        self.ack = ack
        self.redelivered = redelivered
        self.delivery = delivery
        self.overflow = overflow
        self.raw = raw

    @classmethod
    def from_params(cls, params, _new=object.__new__, _Source=Source, _tuple=tuple.__new__):
        """The event of a ``signal`` notification's params: an object (by name) or an array
        (``event_params: "by-position"``). No keyword call: the runtimes make one per event."""
        ev = _new(cls)
        if params.__class__ is list:
            # [seq, signal, name, source kind, source id, time, iteration, payload, delivery]
            (ev.seq, ev.signal, ev.name, kind, sid, ev.time, ev.iteration, ev.payload,
             delivery) = params if len(params) == 9 else params[:9]  # (no copy when 9)
            ev.source = _tuple(_Source, (kind, sid))  # a third of Source(kind, sid)'s time
            ev.ack, ev.redelivered, ev.delivery = delivery > 0, delivery > 1, delivery
            ev.overflow, ev.raw = None, params
            return ev
        get = params.get
        src = get("source")
        ev.signal, ev.name, ev.seq = get("signal"), get("name"), get("seq", 0)
        ev.source = _tuple(_Source, (src.get("kind"), src.get("id")) if src else (None, None))
        ev.time, ev.iteration, ev.payload = get("time"), get("iteration", 0), get("payload")
        ev.ack, ev.redelivered = bool(get("ack", False)), bool(get("redelivered", False))
        ev.delivery, ev.overflow, ev.raw = get("delivery", 0), None, params
        return ev

    def matches(self, signal):
        """True when ``signal`` (a number or a name) is this event's signal."""
        return signal == self.signal or (self.name is not None and signal == self.name)

    def __eq__(self, other):
        return isinstance(other, Event) and self.raw == other.raw and self.seq == other.seq

    def __hash__(self):
        return hash(self.seq)

    def __repr__(self):
        return ("Event(signal=%r, name=%r, seq=%r, source=%r, time=%r, iteration=%r, "
                "payload=%r, ack=%r, redelivered=%r)" % (
                    self.signal, self.name, self.seq, self.source, self.time, self.iteration,
                    self.payload, self.ack, self.redelivered))


# How much a reader takes from the socket at a time. All of a chunk's events are alive while it
# is handled, each with three objects the cyclic garbage collector tracks (its params list, the
# Event, its Source). 16 KiB holds at most ~150 events (a line is 105 bytes or more), under the
# collector's young-generation threshold (700 by default): the event stream then starts almost no
# collections and promotes nothing into the application's older generations, whose collection
# scans its whole heap. With 256 KiB chunks a benchmark of 1.2 million events started 2,187
# young, 199 middle and 18 full collections; with 16 KiB, 5, 1 and 0 (docs/BENCHMARKS.md).
READ_SIZE = 16384


class Lines(object):
    """Complete lines out of a stream's reads: ``feed(data)`` returns what ends with the read's
    last newline (without it), or None while no line is complete. A line longer than a read is
    kept in pieces and joined once, when it ends; ``held`` is how many bytes wait for their
    newline."""

    __slots__ = ("_pieces", "held")

    def __init__(self):
        self._pieces, self.held = [], 0

    def feed(self, data):
        end = data.rfind(b"\n")
        if end < 0:
            self._pieces.append(data)
            self.held += len(data)
            return None
        if self._pieces:
            n = len(data)
            self._pieces.append(data)
            data = b"".join(self._pieces)
            end += len(data) - n
        rest = data[end + 1:]
        self._pieces, self.held = ([rest] if rest else []), len(rest)
        return data[:end]


# What starts every event line by position, up to its params array; and what joins two such lines.
BY_POSITION = b'{"jsonrpc":"2.0","method":"signal","params":'
_JOIN = b"}\n" + BY_POSITION
_SKIP = len(BY_POSITION)


def events_by_position(body, loads):
    """The events of ``body`` (complete lines, without the last newline) when every line is an
    event by position, else None (then parse it line by line). The arrays are parsed in one call,
    without the envelope each line repeats: every newline must be a join of two event lines, the
    first line start with the envelope and the last end with "}". Safe as bytes: inside a JSON
    string a quote is escaped and a newline is \\n, so a join occurs in no payload."""
    if (body.count(_JOIN) != body.count(b"\n") or not body.startswith(BY_POSITION)
            or not body.endswith(b"}")):
        return None
    try:
        arrays = loads(b"[" + body[_SKIP:-1].replace(_JOIN, b",") + b"]")
    except ValueError:
        return None
    make = Event.from_params
    return [make(a) for a in arrays]


def socket_path(path=None):
    """The socket to use: ``path``, else $TOCSIN_SOCKET, else /run/tocsin/tocsin.sock."""
    return path or os.environ.get("TOCSIN_SOCKET") or DEFAULT_SOCKET


def duration(value):
    """A duration for the wire: numbers are seconds (sent as integer milliseconds, at least 1
    when positive), ``timedelta`` likewise, strings ("250ms", "2s") are sent as they are."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("a duration is seconds (int/float), a timedelta or a string like '2s'")
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)):
        ms = int(round(value * 1000))
        if ms == 0 and value > 0:
            ms = 1
        return ms
    raise TypeError("a duration is seconds (int/float), a timedelta or a string like '2s'")


class SourceId(str):
    """What the ``add_*`` methods return: the source's id (a ``str``), with ``joined`` True when
    the id named an equal run-time source that this connection joined instead of adding one."""

    joined = False

    @classmethod
    def of(cls, result):
        sid = cls(result["id"])
        sid.joined = bool(result.get("joined", False))
        return sid


def sharing_of(lifetime, linger, replace):
    """The request-level fields of an ``add_*``: ``lifetime`` ("daemon" or "clients"),
    ``linger`` (a duration, with lifetime "clients"), ``replace`` (bool)."""
    return params_of(lifetime=lifetime, linger=duration(linger), replace=replace)


def params_of(**fields):
    """The params object: fields that are None are left out."""
    return {k: v for k, v in fields.items() if v is not None}


def seq_of(event_or_seq):
    return event_or_seq.seq if isinstance(event_or_seq, Event) else int(event_or_seq)


def seqs_params(events):
    """{"seq": N} for one event or seq, {"seqs": [...]} for a list of them."""
    if isinstance(events, (list, tuple)):
        return {"seqs": [seq_of(e) for e in events]}
    return {"seq": seq_of(events)}


def signals_param(signals):
    if signals == "*":
        return "*"
    if isinstance(signals, (int, str)):
        return [signals]
    return list(signals)


def sources_param(sources):
    if sources is None:
        return None
    if isinstance(sources, str):
        return [sources]
    return list(sources)


def result_of(message):
    """The result of a reply message, or RpcError."""
    err = message.get("error")
    if err is not None:
        raise RpcError(err.get("code"), err.get("message"))
    return message.get("result")


def _event_or_none(result):
    return None if result is None else Event.from_params(result)


def _identity(result):
    return result


class Methods(object):
    """The daemon's methods, shared by the sync and asyncio clients: each one calls
    ``self._request(method, params, post)``, which returns the value (sync) or an awaitable
    (asyncio). Durations are seconds (int/float), timedeltas or strings ("250ms")."""

    def _notify(self, method, params):  # pragma: no cover
        raise NotImplementedError

    def _request(self, method, params, post=_identity):  # pragma: no cover
        raise NotImplementedError

    # -- what the daemon sends: both clients' read loops call _dispatch --------------------------
    _overflow = None  # an overflow notice waiting for the next event

    def _on_reply(self, msg):  # pragma: no cover
        raise NotImplementedError

    def _on_event(self, ev):  # pragma: no cover
        raise NotImplementedError

    def _dispatch(self, msg):
        """A message or a batch from the daemon: replies go to _on_reply, events to _on_event;
        overflow notices are added up and attached to the next event (``ev.overflow``)."""
        if isinstance(msg, list):
            for m in msg:
                self._dispatch(m)
            return
        if not isinstance(msg, dict):
            return
        method = msg.get("method")
        if method is None:
            self._on_reply(msg)
            return
        params = msg.get("params") or {}
        if method == "signal":
            ev = Event.from_params(params)
            ev.overflow, self._overflow = self._overflow, None
            self._on_event(ev)
        elif method == "overflow":
            o = Overflow(params.get("dropped"), params.get("first_seq"), params.get("last_seq"))
            log.warning("tocsin: %s broadcast events dropped (seq %s to %s)", *o)
            if self._overflow is not None:  # two notices in a row: add them up
                o = Overflow(self._overflow.dropped + o.dropped, self._overflow.first_seq,
                             o.last_seq)
            self._overflow = o

    def call(self, method, params=None):
        """Any method by name; returns its raw result."""
        return self._request(method, params)

    def hello(self, name=None, group=None):
        """Names this connection and puts it in a group. Returns {client, name, group}."""
        return self._request("hello", params_of(name=name, group=group))

    def raise_signal(self, signal, payload=None):
        """Raises ``signal`` (number or name) with an optional string payload. Returns the seq."""
        return self._request("raise", params_of(signal=signal, payload=payload),
                             lambda r: r["seq"])

    def wait(self, signal=None, timeout=None):
        """The next event of ``signal`` (or any) that has no handler, or None after ``timeout``
        seconds."""
        return self._request("wait", params_of(signal=signal, timeout=duration(timeout)),
                             _event_or_none)

    def ack(self, events):
        """Acknowledges a one-of event (an Event or its seq), or a list of them: for a list the
        result is {"settled": N} plus "not_held" naming the seqs this connection did not hold."""
        return self._request("ack", seqs_params(events))

    def nack(self, events, requeue=True):
        """Hands one-of events back (one, or a list): to another subscriber at once, or with
        ``requeue=False`` (or at the signal's max_deliveries) to its dead letter."""
        params = seqs_params(events)
        params["requeue"] = bool(requeue)
        return self._request("nack", params)

    def send_acks(self, events):
        """Acks a list of events in one notification: no reply, nothing to wait for (what a
        worker does with what it finished)."""
        return self._notify("ack", seqs_params(list(events)))

    def send_nacks(self, events, requeue=True):
        """Nacks a list of events in one notification (no reply)."""
        params = seqs_params(list(events))
        params["requeue"] = bool(requeue)
        return self._notify("nack", params)

    def unsubscribe(self, subscription):
        sub = getattr(subscription, "id", subscription)
        return self._request("unsubscribe", {"subscription": sub})

    def register(self, signal, target="subscribers"):
        """Adds a subscriber-kind handler (subscribers, subscriber, subscriber:NAME,
        group:NAME) to ``signal`` at run time (admin)."""
        return self._request("register", {"signal": signal, "target": target})

    def unregister(self, signal, target="subscribers"):
        return self._request("unregister", {"signal": signal, "target": target})

    # Every add_* also takes the request-level fields of a shared run-time source
    # (docs/protocol.md): ``lifetime`` ("daemon", the default, or "clients": removed once no
    # client that declared it is connected, after ``linger``), ``linger`` (a duration) and
    # ``replace`` (True: an unequal source under the same id is replaced instead of refused with
    # SOURCE_CONFLICT). They return a SourceId: the id, with ``joined`` True when an equal source
    # already had that id and this connection joined it.

    def add_timer(self, signal, every, after=None, clock=None, iterations=None, id=None,
                  lifetime=None, linger=None, replace=None):
        """Adds (or joins) a kernel timer. Returns its SourceId."""
        return self._request("add_timer", dict(params_of(
            id=id, signal=signal, every=duration(every), after=duration(after), clock=clock,
            iterations=iterations), **sharing_of(lifetime, linger, replace)), SourceId.of)

    def add_rb_timer(self, signal, every, after=None, clock=None, iterations=None, id=None,
                     lifetime=None, linger=None, replace=None):
        """Adds (or joins) a user-space rb_timer. Returns its SourceId."""
        return self._request("add_rb_timer", dict(params_of(
            id=id, signal=signal, every=duration(every), after=duration(after), clock=clock,
            iterations=iterations), **sharing_of(lifetime, linger, replace)), SourceId.of)

    def add_cron(self, signal, schedule, tz=None, jitter=None, missed=None, iterations=None,
                 id=None, lifetime=None, linger=None, replace=None):
        """Adds (or joins) a cron job, fields of SPEC §3. Returns its SourceId."""
        return self._request("add_cron", dict(params_of(
            id=id, signal=signal, schedule=schedule, tz=tz, jitter=duration(jitter),
            missed=missed, iterations=iterations), **sharing_of(lifetime, linger, replace)),
            SourceId.of)

    def add_file_monitor(self, signal, path, recursive=None, events=None, match=None,
                         settle=None, max_delay=None, iterations=None, id=None, lifetime=None,
                         linger=None, replace=None):
        """Adds (or joins) an inotify file monitor, fields of SPEC §3. Returns its SourceId."""
        if isinstance(events, str):
            events = [events]
        return self._request("add_file_monitor", dict(params_of(
            id=id, signal=signal, path=str(path), recursive=recursive,
            events=None if events is None else list(events), match=match,
            settle=duration(settle), max_delay=duration(max_delay), iterations=iterations),
            **sharing_of(lifetime, linger, replace)), SourceId.of)

    def add_at(self, signal, time, tz=None, missed=None, id=None, lifetime=None, linger=None,
               replace=None):
        """Fires ``signal`` once at ``time``: an RFC 3339 string, or a ``datetime`` (an aware
        one keeps its offset; a naive one is a wall time in ``tz``, default the daemon's zone).
        ``missed="once"`` fires it after a restart when the daemon was down at the instant.
        Returns its SourceId."""
        if hasattr(time, "isoformat"):
            time = time.isoformat(timespec="seconds")
        return self._request("add_at", dict(params_of(
            id=id, signal=signal, time=time, tz=tz, missed=missed),
            **sharing_of(lifetime, linger, replace)), SourceId.of)

    def remove_source(self, id, force=None):
        """Removes a source. Without ``force``, a client that declared a shared source leaves it
        (it goes when no declarer is left); ``force=True`` (admin) removes it for all."""
        return self._request("remove_source", params_of(id=id, force=force))

    def table(self):
        """The signal table: a list of dicts (signal, name, description, handlers, counters)."""
        return self._request("table", None, lambda r: r["signals"])

    def status(self):
        return self._request("status", None)

    def metrics(self):
        """Prometheus text."""
        return self._request("metrics", None, lambda r: r["text"])

    def reload(self):
        return self._request("reload", None)

    def version(self):
        return self._request("version", None)

"""The blocking client: one Unix socket connection, a reader thread matching replies by id."""

import itertools
import json
import logging
import queue
import socket
import threading

from ._common import (ConnectionLost, Methods, result_of, signals_param,
                      socket_path as _resolve_path, sources_param)

log = logging.getLogger("tocsin")

_CLOSED = object()


class _Pending(object):
    __slots__ = ("done", "message")

    def __init__(self):
        self.done = threading.Event()
        self.message = None


class Client(Methods):
    """A connection to tocsind. Thread safe: requests may be made from several threads; each
    waits for its own reply (``wait`` does not hold up other requests).

    Events of every subscription of the connection go to one queue, read with
    :meth:`next_event` or by iterating a :class:`Subscription`.
    """

    def __init__(self, socket_path=None, timeout=None, connect_timeout=5.0):
        self.socket_path = _resolve_path(socket_path)
        self.timeout = timeout  # seconds a reply may take (None: forever); wait() is exempt
        self._ids = itertools.count(1)
        self._pending = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._events = queue.Queue()
        self._overflow = None
        self._closed = False
        self._error = None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(self.socket_path)
            sock.settimeout(None)
        except OSError as e:
            sock.close()
            raise ConnectionLost("cannot connect to %s: %s" % (self.socket_path, e)) from e
        self._sock = sock
        self._reader = threading.Thread(target=self._read_loop, name="tocsin-reader",
                                        daemon=True)
        self._reader.start()

    # -- connection -------------------------------------------------------------------------
    def close(self):
        """Closes the connection; pending requests fail with ConnectionLost."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join(5)
        self._sock.close()

    @property
    def closed(self):
        return self._closed or self._error is not None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_loop(self):
        f = self._sock.makefile("rb")
        reason = "connection closed by tocsind"
        try:
            for line in f:
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.warning("tocsin: unreadable line from the daemon: %r", line[:200])
                    continue
                self._dispatch(msg)
        except OSError as e:
            reason = "connection lost: %s" % e
        finally:
            f.close()
        with self._lock:
            self._error = ConnectionLost("closed" if self._closed else reason)
            pending, self._pending = self._pending, {}
        for p in pending.values():
            p.done.set()
        self._events.put(_CLOSED)

    def _on_reply(self, msg):
        with self._lock:
            p = self._pending.pop(msg.get("id"), None)
        if p is not None:
            p.message = msg
            p.done.set()
        elif msg.get("error"):
            log.warning("tocsin: error from the daemon: %s", msg["error"])

    def _on_event(self, ev):
        self._events.put(ev)

    def _notify(self, method, params):
        """Sends a JSON-RPC notification (no id: the daemon sends no reply)."""
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self._send_raw((json.dumps(msg, separators=(",", ":")) + "\n").encode())

    def _send_raw(self, data):
        """Sends whole lines as they are (the runtime's acks, formatted without json)."""
        with self._lock:
            if self._error is not None or self._closed:
                raise self._error or ConnectionLost("closed")
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as e:
            raise ConnectionLost("connection lost: %s" % e) from e

    def _request(self, method, params, post=lambda r: r, timeout=-1):
        if timeout == -1:
            timeout = None if method == "wait" else self.timeout
        p = _Pending()
        with self._lock:
            if self._error is not None or self._closed:
                raise self._error or ConnectionLost("closed")
            rid = next(self._ids)
            self._pending[rid] = p
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as e:
            with self._lock:
                self._pending.pop(rid, None)
            raise ConnectionLost("connection lost: %s" % e) from e
        if not p.done.wait(timeout):
            with self._lock:
                self._pending.pop(rid, None)
            raise TimeoutError("tocsind did not answer %s in %ss" % (method, timeout))
        if p.message is None:
            raise self._error or ConnectionLost("closed")
        return post(result_of(p.message))

    # -- events -----------------------------------------------------------------------------
    def next_event(self, timeout=None):
        """The next event of this connection's subscriptions; None after ``timeout`` seconds.
        Raises ConnectionLost when the connection is gone and no event is left."""
        try:
            ev = self._events.get(timeout=timeout) if timeout is None or timeout > 0 \
                else self._events.get_nowait()
        except queue.Empty:
            return None
        if ev is _CLOSED:
            self._events.put(_CLOSED)  # stays closed for every later reader
            raise self._error or ConnectionLost("closed")
        return ev

    def subscribe(self, signals, sources=None, ack=False, prefetch=None, event_params=None):
        """Subscribes to ``signals`` (a list of numbers/names, one of them, or "*"). Returns a
        :class:`Subscription`, an iterator of events (it ends when the connection closes)."""
        params = {"signals": signals_param(signals)}
        if sources is not None:
            params["sources"] = sources_param(sources)
        if ack:
            params["ack"] = True
        if prefetch is not None:
            params["prefetch"] = int(prefetch)  # the most unacked one-of events held at once
        if event_params is not None:  # "by-position": this connection's events as arrays
            params["event_params"] = event_params
        sub_id = self._request("subscribe", params, lambda r: r["subscription"])
        return Subscription(self, sub_id)


class Subscription(object):
    """An iterator over the connection's events. ``id`` is the daemon's subscription id.

    Note: the daemon does not say which subscription an event matched, so every subscription
    of one connection reads the same event stream."""

    def __init__(self, client, sub_id):
        self.client = client
        self.id = sub_id

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self.client.next_event()
        except ConnectionLost:
            raise StopIteration

    def get(self, timeout=None):
        """The next event, or None after ``timeout`` seconds; ConnectionLost when closed."""
        return self.client.next_event(timeout)

    def unsubscribe(self):
        return self.client.unsubscribe(self.id)

    def __repr__(self):
        return "Subscription(%r)" % (self.id,)

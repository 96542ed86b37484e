"""The asyncio client: ``tocsin.aio.Client`` has the methods of ``tocsin.Client`` as
coroutines, and ``async for event in client.subscribe(...)``.

    async with tocsin.aio.Client(path) as c:
        async for ev in c.subscribe(["jobs"], ack=True):
            await c.ack(ev)
"""

import asyncio
import inspect
import itertools
import json
import logging

from ._common import (ConnectionLost, Methods, result_of, signals_param,
                      socket_path as _resolve_path, sources_param)

log = logging.getLogger("tocsin")

_CLOSED = object()
_LINE_LIMIT = 4 * 1024 * 1024


class Client(Methods):
    def __init__(self, socket_path=None, timeout=None):
        self.socket_path = _resolve_path(socket_path)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._pending = {}
        self._events = None
        self._overflow = None
        self._reader = None
        self._writer = None
        self._task = None
        self._error = None

    async def connect(self):
        """Opens the connection (``async with`` does it for you). Returns self."""
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                self.socket_path, limit=_LINE_LIMIT)
        except OSError as e:
            raise ConnectionLost("cannot connect to %s: %s" % (self.socket_path, e)) from e
        self._events = asyncio.Queue()
        self._error = None
        self._task = asyncio.ensure_future(self._read_loop())
        return self

    async def close(self):
        if self._writer is None:
            return
        w, self._writer = self._writer, None
        w.close()
        try:
            await w.wait_closed()
        except OSError:
            pass
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._fail(ConnectionLost("closed"))

    async def __aenter__(self):
        return await self.connect()

    async def __aexit__(self, *exc):
        await self.close()

    def _fail(self, err):
        if self._error is None:
            self._error = err
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(self._error)
        if self._events is not None:
            self._events.put_nowait(_CLOSED)

    async def _read_loop(self):
        reason = "connection closed by tocsind"
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.warning("tocsin: unreadable line from the daemon: %r", line[:200])
                    continue
                self._dispatch(msg)
        except (OSError, ValueError) as e:  # ValueError: line over the limit
            reason = "connection lost: %s" % e
        finally:
            self._fail(ConnectionLost(reason))

    def _on_reply(self, msg):
        fut = self._pending.pop(msg.get("id"), None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _on_event(self, ev):
        self._events.put_nowait(ev)

    async def _notify(self, method, params):
        """Sends a JSON-RPC notification (no id: the daemon sends no reply)."""
        if self._writer is None or self._error is not None:
            raise self._error or ConnectionLost("not connected")
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        try:
            self._writer.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())
            await self._writer.drain()
        except OSError as e:
            raise ConnectionLost("connection lost: %s" % e) from e

    async def _request(self, method, params, post=lambda r: r):
        if self._writer is None or self._error is not None:
            raise self._error or ConnectionLost("not connected")
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        try:
            self._writer.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())
            await self._writer.drain()
        except OSError as e:
            self._pending.pop(rid, None)
            raise ConnectionLost("connection lost: %s" % e) from e
        timeout = None if method == "wait" else self.timeout
        try:
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(rid, None)
        return post(result_of(reply))

    async def next_event(self, timeout=None):
        """The next event of this connection's subscriptions, None after ``timeout`` seconds;
        ConnectionLost when the connection is gone."""
        if self._events is None:
            raise ConnectionLost("not connected")
        try:
            ev = await asyncio.wait_for(self._events.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if ev is _CLOSED:
            self._events.put_nowait(_CLOSED)
            raise self._error or ConnectionLost("closed")
        return ev

    def subscribe(self, signals, sources=None, ack=False, prefetch=None):
        """Returns a Subscription: ``await`` it to subscribe now, or ``async for`` over it (it
        subscribes on first use). Iteration ends when the connection closes."""
        params = {"signals": signals_param(signals)}
        if sources is not None:
            params["sources"] = sources_param(sources)
        if ack:
            params["ack"] = True
        if prefetch is not None:
            params["prefetch"] = int(prefetch)  # the most unacked one-of events held at once
        return Subscription(self, params)


class Subscription(object):
    def __init__(self, client, params):
        self.client = client
        self.params = params
        self.id = None

    async def _ensure(self):
        if self.id is None:
            self.id = await self.client._request("subscribe", self.params,
                                                 lambda r: r["subscription"])
        return self

    def __await__(self):
        return self._ensure().__await__()

    def __aiter__(self):
        return self

    async def __anext__(self):
        await self._ensure()
        try:
            return await self.client.next_event()
        except ConnectionLost:
            raise StopAsyncIteration

    async def get(self, timeout=None):
        await self._ensure()
        return await self.client.next_event(timeout)

    async def unsubscribe(self):
        if self.id is not None:
            await self.client.unsubscribe(self.id)


# -- run(): the registered handlers (tocsin.signal, tocsin.timer, ...) served with asyncio ------

async def _drive(client, steps):
    from ._common import RpcError
    result, exc = None, None
    while True:
        try:
            call = steps.throw(exc) if exc is not None else steps.send(result)
        except StopIteration:
            return
        try:
            result, exc = await getattr(client, call[0])(**call[1]), None
        except RpcError as e:
            result, exc = None, e


async def _dispatch(session, client, event):
    from ._common import RpcError
    ok = True
    for h in session.matching(event):
        try:
            r = h.func(event)
            if inspect.isawaitable(r):
                await r
        except Exception:
            ok = False
            session.failed(h, event)
    if ok and event.ack:
        try:
            await client.ack(event)
        except RpcError as e:
            session.ack_refused(event, e)


async def _cleanup(session, client):
    try:
        await _drive(client, session.cleanup_steps())
    except (ConnectionError, asyncio.TimeoutError):
        pass


async def run(socket_path=None, stop_event=None, name=None, group=None, max_reconnects=None,
              registry=None, ready=None, backoff_max=2.0):
    """tocsin.run() for asyncio: the same registry and behaviour; handlers may be coroutine
    functions (awaited before the ack) or plain functions (called in the event loop).
    ``stop_event`` and ``ready`` are asyncio.Events; tocsin.stop() works from a handler."""
    from . import decorators
    from ._common import RpcError
    path = _resolve_path(socket_path)
    stop_ev = stop_event if stop_event is not None else asyncio.Event()
    decorators._current_stop = stop_ev
    hs = list(registry) if registry is not None else decorators.handlers()
    failures = 0
    try:
        while not stop_ev.is_set():
            client = Client(path, timeout=30.0)
            try:
                await client.connect()
            except ConnectionLost as e:
                failures += 1
                if max_reconnects is not None and failures > max_reconnects:
                    raise
                delay = min(0.05 * (2 ** min(failures - 1, 10)), backoff_max)
                log.info("tocsin: %s; retrying in %.2fs", e, delay)
                try:
                    await asyncio.wait_for(stop_ev.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                continue
            session = decorators._Session(hs)
            try:
                await _drive(client, session.setup_steps(name, group))
                failures = 0
                if ready is not None:
                    ready.set()
                log.info("tocsin: serving %d handler(s) on %s", len(hs), path)
                while not stop_ev.is_set():
                    ev = await client.next_event(timeout=0.1)
                    if ev is not None:
                        await _dispatch(session, client, ev)
            except (ConnectionLost, asyncio.TimeoutError) as e:
                if ready is not None:
                    ready.clear()
                log.warning("tocsin: %s; reconnecting", e)
                continue
            except RpcError:
                await _cleanup(session, client)
                raise
            finally:
                if stop_ev.is_set():
                    await _cleanup(session, client)
                await client.close()
    finally:
        if decorators._current_stop is stop_ev:
            decorators._current_stop = None

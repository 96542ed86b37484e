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

from ._common import (READ_SIZE, ConnectionLost, Lines, Methods, events_by_position,
                      result_of, signals_param, socket_path as _resolve_path, sources_param)

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
        # Events waiting for next_event() at which the reader stops reading until half are
        # taken (None: no bound). run() sets it: broadcast events have no credit, and a burst
        # then waits in the daemon (limits.subscriber_queue, overflow notices), not here.
        self.max_queued = None
        self.paused = 0
        self._room = None

    async def connect(self):
        """Opens the connection (``async with`` does it for you). Returns self."""
        try:
            # The stream's limit is only its flow control here (lines are split by
            # _read_loop, which enforces _LINE_LIMIT): it stops reading the socket when twice
            # this is buffered, so what max_queued holds back stays in the daemon.
            self._reader, self._writer = await asyncio.open_unix_connection(
                self.socket_path, limit=4 * READ_SIZE)
        except OSError as e:
            raise ConnectionLost("cannot connect to %s: %s" % (self.socket_path, e)) from e
        self._events = asyncio.Queue()
        self._room = asyncio.Event()
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
        # A chunk at a time: one read and one split for many lines (a subscriber's events come
        # in bursts), not a readline() each.
        reason = "connection closed by tocsind"
        loads, dispatch, reader = json.loads, self._dispatch, self._reader
        lines = Lines()
        try:
            while True:
                if self.max_queued is not None:
                    await self._wait_for_room()
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                body = lines.feed(data)
                if lines.held > _LINE_LIMIT:
                    raise ValueError("a line over %d bytes" % _LINE_LIMIT)
                if body is None:
                    continue
                fast = events_by_position(body, loads) if self._overflow is None else None
                if fast is not None:
                    put = self._events.put_nowait
                    for ev in fast:
                        put(ev)
                    continue
                for line in body.split(b"\n"):
                    if not line:
                        continue
                    try:
                        msg = loads(line)
                    except ValueError:
                        log.warning("tocsin: unreadable line from the daemon: %r", line[:200])
                        continue
                    dispatch(msg)
        except (OSError, ValueError) as e:  # ValueError: line over the limit
            reason = "connection lost: %s" % e
        finally:
            self._fail(ConnectionLost(reason))

    def _hold_back(self, most):
        """The reader stops while ``most`` events wait for next_event() (None: it never does)."""
        self.max_queued = most
        if self._room is not None:
            self._room.set()  # a reader waiting looks again

    async def _wait_for_room(self):
        events = self._events
        if events.qsize() < self.max_queued:
            return
        self.paused += 1
        # Not while a request waits for its reply (it may be behind the events): _request
        # wakes this; so does next_event(), and run() when it stops (max_queued None).
        while (self.max_queued is not None and events.qsize() > self.max_queued // 2
               and not self._pending):
            self._room.clear()
            await self._room.wait()

    def _on_reply(self, msg):
        fut = self._pending.pop(msg.get("id"), None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _on_event(self, ev):
        self._events.put_nowait(ev)

    def _send_nowait(self, method, params):
        """A notification written without waiting for the socket to drain (acks: small, and
        sent from callbacks)."""
        if self._writer is None or self._error is not None:
            raise self._error or ConnectionLost("not connected")
        msg = {"jsonrpc": "2.0", "method": method, "params": params}
        self._writer.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())

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
        if self._room is not None:
            self._room.set()  # a reader held back (max_queued) reads on to the reply
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
        if self.max_queued is not None and self._events.qsize() <= self.max_queued // 2:
            self._room.set()
        return ev

    def subscribe(self, signals, sources=None, ack=False, prefetch=None, event_params=None):
        """Returns a Subscription: ``await`` it to subscribe now, or ``async for`` over it (it
        subscribes on first use). Iteration ends when the connection closes."""
        params = {"signals": signals_param(signals)}
        if sources is not None:
            params["sources"] = sources_param(sources)
        if ack:
            params["ack"] = True
        if prefetch is not None:
            params["prefetch"] = int(prefetch)  # the most unacked one-of events held at once
        if event_params is not None:  # "by-position": this connection's events as arrays
            params["event_params"] = event_params
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


async def _cleanup(session, client):
    try:
        await _drive(client, session.cleanup_steps())
    except (ConnectionError, asyncio.TimeoutError):
        pass


class _Acks(object):
    """Seqs of handled one-of events, sent as one ``ack`` notification (no reply awaited) when
    ``batch`` are waiting, ``interval`` seconds after the first, or on flush()."""

    def __init__(self, client, batch, interval):
        self.client, self.batch, self.interval = client, batch, interval
        self.seqs = []
        self._timer = None

    def add(self, seq):
        self.seqs.append(seq)
        if len(self.seqs) >= self.batch:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._timed)

    def _timed(self):
        self._timer = None
        try:
            self.flush()
        except ConnectionLost:  # the events go to others after the daemon sees us gone
            pass

    def flush(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.seqs:
            seqs, self.seqs = self.seqs, []
            self.client._send_nowait("ack", {"seqs": seqs})


class _Serving(object):
    """The handlers served on one connection: ``concurrency`` worker tasks take events from it
    and run their handlers; see run()."""

    def __init__(self, client, session, concurrency, acks):
        self.client, self.session, self.acks = client, session, acks
        self.busy = set()  # the workers running a handler
        self.stopping = False
        self.workers = [asyncio.ensure_future(self._worker()) for _ in range(concurrency)]

    async def _worker(self):
        client = self.client
        me = asyncio.current_task()
        while not self.stopping:
            ev = await client.next_event()  # ConnectionLost ends this worker, and the serving
            self.busy.add(me)
            try:
                await self._handle(ev)
            finally:
                self.busy.discard(me)
            if self.acks.seqs and client._events.empty():
                self.acks.flush()  # nothing waits: what is done goes out now, not in 5 ms

    async def _handle(self, ev):
        ok = True
        for h in self.session.matching(ev):
            try:
                r = h.func(ev)
                if inspect.isawaitable(r):
                    await r
            except Exception:
                ok = False
                log.exception("tocsin: handler %s failed on %r%s", h, ev,
                              "; nacked" if ev.ack else "")
        if not ev.ack:
            return
        if ok:
            self.acks.add(ev.seq)
        else:  # handed back at once: another worker (or this one) gets it again
            self.client._send_nowait("nack", {"seqs": [ev.seq], "requeue": True})

    async def stop(self, timeout=10.0):
        """Lets the handlers running finish (up to ``timeout``), then sends what is acked; the
        events not started are left to the daemon, which gives them to others."""
        self.stopping = True
        for w in self.workers:
            if w not in self.busy:
                w.cancel()  # waiting for an event: nothing to finish
        await asyncio.wait(self.workers, timeout=timeout)  # the busy ones end after theirs
        for w in self.workers:
            w.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
        try:
            self.acks.flush()
        except ConnectionLost:
            pass


async def run(socket_path=None, stop_event=None, name=None, group=None, max_reconnects=None,
              registry=None, ready=None, backoff_max=2.0, concurrency=4, prefetch=None,
              linger=30.0, shared=True, replace=False, ack_batch=None, ack_interval=0.005,
              max_queued=1024):
    """The runtime for asyncio (uvicorn, aiohttp, a plain asyncio program): serves the
    registered handlers (tocsin.signal, tocsin.timer, ..., the uWSGI drop-ins) as
    tocsin.runtime does with threads, until ``stop_event`` (an asyncio.Event) is set or
    tocsin.stop() is called; run it as a task beside the rest of the program.

    - Handlers may be coroutine functions (awaited) or plain functions (called in the event
      loop: keep them short, or hand them to an executor). At most ``concurrency`` run at once.
    - The acking subscription asks for ``prefetch`` unacked one-of events (default
      16 x concurrency). A one-of event whose handlers all returned is acked: acks go out
      batched as notifications (no reply awaited) when ``ack_batch`` wait (default prefetch/2)
      or ``ack_interval`` seconds after the first. A handler that raises is logged and its event
      nacked at once (redelivered with ``delivery`` one higher; dead-lettered at the signal's
      ``max_deliveries``).
    - Broadcast events have no credit: when ``max_queued`` events wait for a worker, the reader
      stops reading until half are taken, so a burst waits in the daemon's queue for this
      connection (which drops past ``limits.subscriber_queue`` and says so: ``ev.overflow``).
    - Decorated sources are shared (``lifetime: clients``, kept ``linger`` seconds after the
      last process that declared them disconnects): N processes declaring one make one.
    - The connection drops: it reconnects with backoff (``backoff_max``; ConnectionLost after
      ``max_reconnects`` failed attempts in a row) and sets everything up again. A setup the
      daemon refuses raises RpcError. ``ready`` (an asyncio.Event) is set while set up.
    - On stop, the handlers running finish, their acks are sent, the connection closes.
    """
    from . import decorators, runtime
    from ._common import RpcError
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    prefetch, ack_batch = runtime.credit(concurrency, prefetch, ack_batch)
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
            session = decorators._Session(hs, shared=shared, linger=linger, replace=replace,
                                          prefetch=prefetch)
            serving = None
            try:
                await _drive(client, session.setup_steps(name, group))
                shared = session.shared  # a daemon without shared sources: per-process
                failures = 0
                serving = _Serving(client, session, concurrency,
                                   _Acks(client, ack_batch, ack_interval))
                client._hold_back(max(1, int(max_queued)))  # now that workers take events
                if ready is not None:
                    ready.set()
                log.info("tocsin: serving %d handler(s) on %s", len(hs), path)
                stopped = asyncio.ensure_future(stop_ev.wait())
                try:
                    await asyncio.wait(serving.workers + [stopped],
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopped.cancel()
                if not stop_ev.is_set():  # a worker ended: the connection is gone
                    for w in serving.workers:
                        e = w.exception() if w.done() and not w.cancelled() else None
                        if e is not None and not isinstance(e, ConnectionLost):
                            log.error("tocsin: a worker failed", exc_info=e)
                    raise client._error or ConnectionLost("closed")
            except (ConnectionLost, asyncio.TimeoutError) as e:
                if ready is not None:
                    ready.clear()
                log.warning("tocsin: %s; reconnecting", e)
                continue
            except RpcError:
                await _cleanup(session, client)
                raise
            finally:
                if serving is not None:
                    await serving.stop()
                client._hold_back(None)  # nobody takes events any more: read on
                if stop_ev.is_set():
                    await _cleanup(session, client)
                await client.close()
    finally:
        if decorators._current_stop is stop_ev:
            decorators._current_stop = None

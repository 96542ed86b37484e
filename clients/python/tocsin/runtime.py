"""The runtime for worker processes: serves the registered handlers (``@tocsin.signal``,
``@tocsin.timer``, ..., the uWSGI drop-ins) on a bounded thread pool.

- One connection to tocsind; its reader thread parses what arrives a chunk at a time and hands
  the events to ``concurrency`` worker threads (a deque and a condition; at most
  ``concurrency`` handlers run at once). Caller runs (``inline``, on by default): while
  nothing waits for the pool and a worker is free, the reader runs a chunk's handlers itself,
  which spares a quick handler a wake-up and a GIL switch per event. Handlers whose calls
  average more than ``INLINE_MAX`` (1 ms) go to the pool; one that holds the reader longer than
  ``TAKEOVER_AFTER`` (10 ms) makes another thread take reading over, and counts as one of the
  ``concurrency`` until it returns. So slow handlers get the pool's concurrency.
- The acking subscriptions ask for ``prefetch`` unacked one-of events (default
  ``PREFETCH_PER_WORKER`` x concurrency), so the daemon gives this process no more than it can
  start soon, and the rest to other processes. Broadcast events have no credit: when
  ``max_queued`` events wait for the pool, the reader stops reading until half are taken, so a
  burst waits in the daemon's queue for this connection (``limits.subscriber_queue``), which
  reports what it drops (``ev.overflow``), not in this process's memory.
- A one-of event whose handlers all returned is acked; acks are batched and sent as JSON-RPC
  notifications (no reply awaited): when ``ack_batch`` are waiting, when a worker finds
  nothing more to do, or ``ack_interval`` seconds after the first one waits. A handler that
  raises is logged (logger ``tocsin``) and its event nacked at once (redelivered, with
  ``delivery`` one higher; dead-lettered at the signal's ``max_deliveries``). Broadcast events
  are not acked.
- The connection drops (a daemon restart): it reconnects with backoff and sets everything up
  again. Handlers registered while it runs are set up on the live connection.
- ``start()`` runs it in the background and returns the :class:`Runtime` (``stop()``,
  ``join()``); ``run()`` serves in the calling thread. Fork safety: a runtime is not running
  in a child process forked after it started (its threads are not there and its socket is
  closed in the child without touching the parent's connection); the child starts its own.
"""

import collections
import json
import logging
import os
import threading
import time
import weakref

from . import decorators
from ._common import (READ_SIZE, ConnectionLost, Event, Lines, RpcError, events_by_position,
                      socket_path as _resolve_path)
from .client import Client

log = logging.getLogger("tocsin")

DEFAULT_CONCURRENCY = 4
PREFETCH_PER_WORKER = 16


def credit(concurrency, prefetch=None, ack_batch=None):
    """(prefetch, ack_batch) of a runtime, the threaded one and tocsin.aio.run() alike: what was
    asked for, else PREFETCH_PER_WORKER x concurrency and half of that."""
    prefetch = int(prefetch) if prefetch else PREFETCH_PER_WORKER * concurrency
    return prefetch, int(ack_batch) if ack_batch else max(1, prefetch // 2)

DEFAULT_LINGER = 30.0
DEFAULT_ACK_INTERVAL = 0.005
DEFAULT_MAX_QUEUED = 1024
# Caller runs: while nothing waits for the pool and a worker is free, the reader thread runs a
# chunk's handlers itself instead of handing each event to a worker (a hand-off is a wake-up and
# a GIL switch). Handlers whose calls average more than INLINE_MAX seconds (the newest call
# weighs 1/4) go to the pool; one that holds the reader longer than TAKEOVER_AFTER makes
# another thread take reading over (so a handler that blocks never stops the others).
INLINE_MAX = 0.001
TAKEOVER_AFTER = 0.01

_runtimes = weakref.WeakSet()  # live runtimes of this process, for the fork hook
_global = None                 # the runtime serving the global registry in this process


class _Conn(Client):
    """A Client whose reader parses a chunk at a time and hands the events of each chunk to
    ``sink`` in one call (``sink(None)`` when the connection is gone)."""

    def __init__(self, path, sink, timeout=30.0):
        self._sink = sink
        self._batch = []
        self._lines = Lines()        # the reader's; a reader taking over goes on with it
        super().__init__(path, timeout=timeout)

    def take_over(self):
        """While the reader thread is in ``sink`` (running a handler that takes long), a new
        reader thread goes on reading from where it stopped; the old one ends when ``sink``
        returns. The caller makes sure the old reader is inside ``sink`` until this returns."""
        t = threading.Thread(target=self._read_loop, name="tocsin-reader", daemon=True)
        self._reader = t
        t.start()

    def _on_event(self, ev):
        self._batch.append(ev)

    def _read_loop(self):
        me = threading.current_thread()
        sock = self._sock
        loads = json.loads
        dispatch = self._dispatch
        make = Event.from_params
        batch = self._batch
        reason = "connection closed by tocsind"
        feed = self._lines.feed
        try:
            while True:
                data = sock.recv(READ_SIZE)
                if not data:
                    break
                body = feed(data)
                if body is None:
                    continue
                if self._overflow is None:  # an overflow notice goes on the next event
                    fast = events_by_position(body, loads)
                    if fast is not None:
                        self._sink(self, fast)
                        if self._reader is not me:
                            return  # taken over while a handler ran: the new reader goes on
                        continue
                # Every complete line of the chunk parsed in one call, as one JSON array.
                try:
                    msgs = loads(b"[" + body.replace(b"\n", b",") + b"]")
                except ValueError:
                    msgs = self._each_line(body)
                for msg in msgs:
                    if (msg.__class__ is dict and msg.get("method") == "signal"
                            and self._overflow is None):
                        batch.append(make(msg["params"]))
                    else:
                        dispatch(msg)  # replies, overflow notices, what the fast path skips
                if batch:
                    self._batch = []
                    self._sink(self, batch)
                    if self._reader is not me:
                        return
                    batch = self._batch
        except OSError as e:
            reason = "connection lost: %s" % e
        except Exception:  # a bug must not leave the runtime waiting forever
            log.exception("tocsin: reader failed")
            reason = "reader failed"
        with self._lock:
            self._error = ConnectionLost("closed" if self._closed else reason)
            pending, self._pending = self._pending, {}
        for p in pending.values():
            p.done.set()
        self._sink(self, None)

    @staticmethod
    def _each_line(chunk):
        msgs = []
        for line in chunk.split(b"\n"):
            if not line.strip():
                continue
            try:
                msgs.append(json.loads(line))
            except ValueError:
                log.warning("tocsin: unreadable line from the daemon: %r", line[:200])
        return msgs

    def abandon(self):
        """In a forked child: close our copy of the socket without shutting the parent's
        connection down."""
        self._closed = True
        try:
            self._sock.detach()
        except OSError:
            pass


class _Route(object):
    """The handlers of a signal (or of a signal and a source), and what a call of them costs:
    an average of the calls' wall time, the newest weighing 1/4 (caller runs: see INLINE_MAX)."""

    __slots__ = ("name", "handlers", "cost")

    def __init__(self, name, handlers):
        self.name, self.handlers, self.cost = name, handlers, 0.0

    def took(self, seconds):
        """A call of them took ``seconds`` (on average, for a run of calls timed as one)."""
        self.cost += (seconds - self.cost) * 0.25


class Runtime(object):
    """Serves handlers; see the module's doc. ``handlers``: a list of :class:`Handler` (default:
    every registered one, and those registered later). ``shared``/``linger``/``replace``: how
    decorated sources are declared (one source under its stable id for all the processes that
    declare it, kept ``linger`` seconds after the last one disconnects)."""

    IDLE_TICKS = 20  # the timer thread sleeps after 20 x ack_interval with nothing to do

    def __init__(self, handlers=None, socket_path=None, concurrency=DEFAULT_CONCURRENCY,
                 prefetch=None, name=None, group=None, linger=DEFAULT_LINGER, shared=True,
                 replace=False, ack_batch=None, ack_interval=DEFAULT_ACK_INTERVAL,
                 max_reconnects=None, backoff_max=2.0, stop_event=None, ready=None,
                 inline=True, max_queued=DEFAULT_MAX_QUEUED):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.path = _resolve_path(socket_path)
        self.concurrency = int(concurrency)
        self.prefetch, self.ack_batch = credit(self.concurrency, prefetch, ack_batch)
        self.ack_interval = ack_interval
        self.inline = inline                # caller runs quick handlers while the pool idles
        self.max_queued = max(1, int(max_queued))  # events waiting for the pool: then stop reading
        self.name, self.group = name, group
        self.linger, self.shared, self.replace = linger, shared, replace
        self.max_reconnects, self.backoff_max = max_reconnects, backoff_max
        self._fixed = list(handlers) if handlers is not None else None
        self._pid = os.getpid()
        self.ready = ready if ready is not None else threading.Event()  # set while set up
        self.error = None                   # what ended it (RpcError, ConnectionLost), if any
        self.setup_errors = []              # refusals of handlers registered while serving
        self._external_stop = stop_event is not None
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._done = threading.Event()
        self._wake = threading.Event()      # the control thread has something to do
        self._thread = None
        self._conn = None
        self._served = []                   # handlers set up on the current connection
        self._sessions = []
        self._routes = ({}, {}, {})         # (by signal number or name, by source id, cache)
        self._draining = False              # stop: the workers tell the control thread when idle
        self._queue = collections.deque()
        pool_lock = threading.Lock()
        self._cond = threading.Condition(pool_lock)
        # Where the last worker sits out while a reader taken over runs a handler (a condition
        # of its own on the same lock: a notify for the queue must not wake it instead).
        self._sit_out = threading.Condition(pool_lock)
        # Where the reader waits while max_queued events wait for the pool (see _on_events).
        self._room = threading.Condition(pool_lock)
        self._reader_waits = 0
        self._idle = 0
        self._exit = False
        self._workers = []
        self._busy = []
        # Caller runs: the reader is running handlers, since when the one in hand, whether the
        # timer thread took reading over from it (then it ends after that handler).
        self._reader_busy = False
        self._inline_conn = None
        self._inline_ev = None              # the event whose handlers the reader runs
        self._watched = (None, 0.0)         # the timer's: that event, when it first saw it
        self._taken = False
        self._inline_lock = threading.Lock()
        self._acks = collections.deque()   # seqs done, not acked yet (of _ack_conn)
        self._ack_conn = None
        self._tick = threading.Event()      # the timer thread has something to watch
        self.handled = 0
        self.failed = 0
        self.paused = 0                     # times the reader stopped for a full queue
        _runtimes.add(self)

    # -- public ------------------------------------------------------------------------------
    def start(self):
        """Runs in a background thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("this runtime was started already")
        self._claim()
        self._thread = threading.Thread(target=self._serve_guarded, name="tocsin-runtime",
                                        daemon=True)
        self._thread.start()
        return self

    def serve(self):
        """Serves in the calling thread until stop(); raises what ended it (RpcError for a
        setup the daemon refused, ConnectionLost after max_reconnects)."""
        self._claim()
        self._serve_guarded()
        if self.error is not None:
            raise self.error

    def stop(self, timeout=10.0):
        """Stops serving: the handlers running finish, what they finished is acked, the
        connection closes (unacked events go to other subscribers). Waits up to ``timeout``."""
        if os.getpid() != self._pid:
            return
        self._stop.set()
        self._wake.set()
        me = threading.current_thread()
        if me in self._workers or getattr(me, "_tocsin_runtime", None) is self:
            return  # from a handler: it must return before the runtime can stop
        if self._thread is not None and self._thread is not me:
            self._thread.join(timeout)

    def join(self, timeout=None):
        """Waits until it stopped (stop(), or an error: see ``error``). True when stopped."""
        if os.getpid() != self._pid:
            return True
        return self._done.wait(timeout)

    @property
    def running(self):
        """True while it serves (or tries to connect) in this process."""
        return os.getpid() == self._pid and not self._done.is_set()

    def refresh(self, handler=None):
        """Sets up handlers registered since it started (called for each new registration)."""
        self._wake.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- the process's runtime of the global registry ----------------------------------------
    def _claim(self):
        global _global
        if self._fixed is None:
            if _global is not None and _global is not self and _global._pid == os.getpid():
                _global.stop()
            _global = self
            decorators._listeners.append(self.refresh)

    def _release(self):
        global _global
        try:
            decorators._listeners.remove(self.refresh)
        except ValueError:
            pass
        if _global is self:
            _global = None

    def _handlers(self):
        return list(self._fixed) if self._fixed is not None else decorators.handlers()

    # -- control thread ----------------------------------------------------------------------
    def _serve_guarded(self):
        prev_stop = decorators._current_stop
        decorators._current_stop = handle = _StopHandle(self)
        try:
            self._serve()
        except BaseException as e:  # noqa: B902 (kept for join()/serve())
            self.error = e
            if not isinstance(e, (RpcError, ConnectionLost)):
                log.exception("tocsin: runtime failed")
        finally:
            if decorators._current_stop is handle:
                decorators._current_stop = prev_stop
            self._shutdown_workers()
            self._release()
            self.ready.clear()
            self._done.set()

    def _serve(self):
        self._busy = [False] * self.concurrency
        for i in range(self.concurrency):
            t = threading.Thread(target=self._worker, args=(i,), name="tocsin-worker-%d" % i,
                                 daemon=True)
            t.start()
            self._workers.append(t)
        timer = threading.Thread(target=self._timer, name="tocsin-timer", daemon=True)
        timer.start()
        self._timer_thread = timer
        failures = 0
        while not self._stop.is_set():
            try:
                conn = _Conn(self.path, self._on_events)
            except ConnectionLost as e:
                failures += 1
                if self.max_reconnects is not None and failures > self.max_reconnects:
                    raise
                delay = min(0.05 * (2 ** min(failures - 1, 10)), self.backoff_max)
                log.info("tocsin: %s; retrying in %.2fs", e, delay)
                self._stop.wait(delay)
                continue
            self._acks = collections.deque()
            self._conn = self._ack_conn = conn
            self._served, self._sessions = [], []
            try:
                self._setup(conn, self._handlers(), first=True)
                failures = 0
                self.ready.set()
                log.info("tocsin: serving %d handler(s) on %s", len(self._served), self.path)
                while not self._stop.is_set() and not conn.closed:
                    self._wake.wait(0.1 if self._external_stop else None)
                    self._wake.clear()
                    if self._stop.is_set() or conn.closed:
                        break
                    new = [h for h in self._handlers() if h not in self._served]
                    if new:
                        try:
                            self._setup(conn, new, first=False)
                        except RpcError as e:  # the others go on being served
                            log.error("tocsin: the daemon refused handlers registered "
                                      "while serving (%s): %s", new, e)
                            self.setup_errors.append(e)
                if not self._stop.is_set():
                    raise conn._error or ConnectionLost("closed")
            except (ConnectionLost, TimeoutError) as e:
                self.ready.clear()
                log.warning("tocsin: %s; reconnecting", e)
                continue
            except RpcError:
                self._cleanup(conn)
                raise
            finally:
                if self._stop.is_set():
                    self._drain_and_flush()
                    self._cleanup(conn)
                conn.close()

    def _setup(self, conn, hs, first):
        session = decorators._Session(hs, shared=self.shared, linger=self.linger,
                                      replace=self.replace, prefetch=self.prefetch)
        self._sessions.append(session)
        self._served.extend(hs)
        self._route()  # before subscribing: events may come as soon as it is done
        decorators._drive(conn, session.setup_steps(self.name, self.group) if first
                          else session.setup_steps(None, None))
        self.shared = session.shared  # a daemon without shared sources: per-process from now
        self._route()

    def _route(self):
        by_signal, by_source = {}, {}
        for session in self._sessions:
            for h in session.signal_handlers:
                by_signal.setdefault(h.signal, []).append(h)
            for h in session.sources:
                if h.func is None:
                    continue
                sid = session.ids.get(h) or session.source_id(h)
                by_source.setdefault(sid, []).append(h)
        # The third: a _Route by signal number (or (number, source id)), made at first sight of
        # it (with the name the event carried, which a reload may change: then made again).
        self._routes = (by_signal, by_source, {})

    def _cleanup(self, conn):
        for session in self._sessions:
            try:
                decorators._drive(conn, session.cleanup_steps())
            except (ConnectionError, TimeoutError):
                pass

    def _drain_and_flush(self):
        """On stop: wait for the handlers running to finish (queued ones are left to the
        daemon to hand to others), then send the acks."""
        with self._cond:
            self._draining = True
            self._queue.clear()
            self._room.notify_all()
            self._cond.wait_for(lambda: not any(self._busy) and not self._reader_busy, 10)
        self._flush()

    def _shutdown_workers(self):
        with self._cond:
            self._exit = True
            self._queue.clear()
            self._cond.notify_all()
            self._sit_out.notify_all()
            self._room.notify_all()
        for t in self._workers:
            t.join(10)
        self._workers = []
        self._tick.set()
        # Joined too: when stop() returns, no thread of this runtime is left running.
        timer = getattr(self, "_timer_thread", None)
        if timer is not None and timer is not threading.current_thread():
            timer.join(10)
        self._timer_thread = None

    # -- reader -> workers -------------------------------------------------------------------
    def _on_events(self, conn, batch):
        if batch is None:  # the connection is gone
            self._wake.set()
            return
        # The reader takes an idle worker's turn: nothing is waiting for the pool, a worker is
        # free (so no more than `concurrency` handlers run), no reader taken over still runs one.
        if self.inline and self._idle and not self._queue and not self._reader_busy:
            done = self._run_inline(conn, batch)
            if done == len(batch):
                return
            batch = batch[done:]
        items = [(conn, ev) for ev in batch]
        queue = self._queue
        with self._cond:
            queue.extend(items)
            if self._idle:
                self._cond.notify(min(self._idle, len(items)))
            if (len(queue) < self.max_queued or conn is not self._conn or conn.closed
                    or conn._reader is not threading.current_thread()):
                return  # (a reader taken over, or of a connection gone, is about to end)
            # Back pressure: no more reading until half of the queue is taken. What comes
            # meanwhile waits in the socket and in the daemon's queue for this connection, which
            # drops past limits.subscriber_queue and says so (ev.overflow); one-of events are
            # bounded by the prefetch already. Workers wake the reader (the count is raised
            # before the length is looked at, and they look at it after taking an event). Not
            # while a request of this runtime waits for its reply (a handler set up while
            # serving, the cleanup): the reply may be behind the events, hence the timed wait.
            self.paused += 1
            self._reader_waits += 1
            try:
                low = self.max_queued // 2
                while (len(queue) > low and not self._draining and not self._exit
                       and not conn._pending and not conn.closed):
                    self._room.wait(0.05)
            finally:
                self._reader_waits -= 1

    def _worker(self, i):
        queue, cond, busy = self._queue, self._cond, self._busy
        route_of, run, clock = self._route_of, self._run, time.perf_counter
        last = i == self.concurrency - 1
        while True:
            if last and self._taken:
                # A reader taken over still runs a handler: it counts as this worker, so that
                # no more than `concurrency` handlers run at once (if this worker was running one
                # when the take-over came, one more runs until that call returns).
                with cond:
                    while self._taken and not self._exit:
                        self._sit_out.wait()
                continue
            try:
                conn, ev = queue.popleft()
            except IndexError:
                if self._acks:
                    self._flush()  # nothing to do: what is done goes out now
                with cond:
                    if self._reader_waits:
                        self._room.notify_all()
                    self._idle += 1
                    while not queue and not self._exit:
                        cond.wait()
                    self._idle -= 1
                    if self._exit and not queue:
                        return
                continue
            if self._reader_waits and len(queue) <= self.max_queued // 2:
                with cond:
                    self._room.notify_all()  # the reader reads again
            busy[i] = True
            try:
                r = route_of(ev)
                start = clock()
                if run(conn, ev, r.handlers):
                    self.handled += 1
                else:
                    self.failed += 1
                r.took(clock() - start)
            finally:
                busy[i] = False
                if self._draining:
                    with cond:
                        cond.notify_all()  # _drain_and_flush waits for the busy ones

    def _run_inline(self, conn, batch):
        """Caller runs (see INLINE_MAX): handles events of ``batch`` on the reader thread while
        their handlers are quick; returns how many it took (the rest go to the pool)."""
        clock = time.perf_counter
        route_of, run = self._route_of, self._run
        self._inline_conn = conn
        self._reader_busy = True
        threading.current_thread()._tocsin_runtime = self  # stop() from a handler: no join
        if not self._tick.is_set():
            self._tick.set()  # the timer thread watches for a handler that runs long
        n = len(batch)
        done = k = 0
        cur = None  # the route of the run of events in hand, timed as one (k events so far)
        t0 = clock()
        try:
            for ev in batch:
                if self._draining or self._exit:
                    return n  # stopping: unacked, the daemon hands them to others
                r = route_of(ev)
                if r is not cur:
                    if cur is not None:
                        t = clock()
                        cur.took((t - t0) / k)
                        t0 = t
                    if r.cost > INLINE_MAX:
                        cur = None
                        return done
                    cur, k = r, 0
                self._inline_ev = ev  # what the timer thread sees in hand
                if run(conn, ev, r.handlers):
                    self.handled += 1
                else:
                    self.failed += 1
                k += 1
                done += 1
                if self._taken:
                    return done  # another thread reads now: the rest go to the pool
            return n
        finally:
            with self._inline_lock:
                self._reader_busy = False
                self._inline_ev = None
                taken, self._taken = self._taken, False
            if cur is not None and k:
                cur.took((clock() - t0) / k)
                if taken:  # it blocked: to the pool, until its calls there are quick again
                    cur.cost = max(cur.cost, TAKEOVER_AFTER)
            if taken or self._draining:
                with self._cond:
                    self._sit_out.notify_all()  # the last worker's turn again
                    self._cond.notify_all()  # _drain_and_flush
            if self._acks:
                self._flush()  # the chunk is done: its acks go out before the next read

    def _route_of(self, ev):
        by_signal, by_source, cache = self._routes
        key = ev.signal
        extra = ()
        if by_source:
            src = ev.source
            sid = src[1] if src is not None else None
            if sid in by_source:
                key, extra = (ev.signal, sid), by_source[sid]
        r = cache.get(key)
        if r is None or r.name != ev.name:
            hs = list(by_signal.get(ev.signal, ()))
            if ev.name:
                hs += by_signal.get(ev.name, ())
            r = cache[key] = _Route(ev.name, hs + list(extra))
        return r

    def _run(self, conn, ev, hs):
        ok = True
        if hs:
            for h in hs:
                try:
                    h.func(ev)
                except Exception:
                    ok = False
                    log.exception("tocsin: handler %s failed on %r%s", h, ev,
                                  "; nacked" if ev.ack else "")
        else:
            log.debug("tocsin: no handler for %r", ev)
        if not ev.ack:
            return ok
        if not ok:
            try:
                conn._notify("nack", {"seqs": [ev.seq], "requeue": True})
            except ConnectionLost:
                pass
            return ok
        if conn is not self._ack_conn:
            return ok  # from a connection that is gone: the daemon hands it out again
        acks = self._acks
        acks.append(ev.seq)  # a deque: append and popleft are atomic, no lock
        n = len(acks)
        if n == 1:
            self._tick.set()
        elif n >= self.ack_batch:
            self._flush()
        return ok

    def _flush(self):
        acks, conn = self._acks, self._ack_conn
        n = len(acks)
        if not n or conn is None:
            return
        seqs = []
        try:
            for _ in range(n):
                seqs.append(acks.popleft())
        except IndexError:  # another thread flushed meanwhile
            pass
        if seqs:
            try:
                conn._send_raw(b'{"jsonrpc":"2.0","method":"ack","params":{"seqs":[%s]}}\n'
                               % ",".join(map(str, seqs)).encode())
            except ConnectionLost:
                pass

    def _timer(self):
        """Sends the acks waiting ``ack_interval`` after the first of them, and every
        ``ack_interval`` while the reader runs handlers, looks whether the one in hand has run
        longer than TAKEOVER_AFTER: then another thread takes reading over (a handler that blocks
        must not stop this process from taking its other events)."""
        while not self._exit:
            self._tick.wait()
            self._tick.clear()
            # Awake while there is something to do, and for IDLE_TICKS more: under load the
            # reader's tick then finds it awake (no wake-up per chunk).
            idle = 0
            while not self._exit and idle < self.IDLE_TICKS:
                time.sleep(self.ack_interval)
                self._flush()
                if self._watch_inline() or self._tick.is_set():
                    self._tick.clear()
                    idle = 0
                else:
                    idle += 1

    def _watch_inline(self):
        """True while the reader runs handlers and may still need watching."""
        if not self._reader_busy or self._taken:
            return False
        with self._inline_lock:
            if not self._reader_busy or self._taken:
                return False
            ev, now = self._inline_ev, time.perf_counter()
            if ev is None:
                return True
            if self._watched[0] is not ev:
                self._watched = (ev, now)  # seen in hand from now (at least)
                return True
            if now - self._watched[1] >= TAKEOVER_AFTER:
                conn = self._inline_conn  # (the reader's: a reconnect may have made another)
                if not conn.closed:
                    # Under the lock, the reader cannot leave its chunk (it takes the lock to).
                    self._taken = True
                    log.info("tocsin: a handler runs long on the reader thread; another "
                             "thread reads meanwhile")
                    conn.take_over()
                    return False
        return True

    # -- fork --------------------------------------------------------------------------------
    def _forked(self):
        """In a child process: this runtime is not running here."""
        conn = self._conn
        if conn is not None:
            conn.abandon()
        self._conn = self._ack_conn = None
        self._done = threading.Event()
        self._done.set()
        self.ready = threading.Event()


class _StopHandle(object):
    """What tocsin.stop() sets: stops the runtime without waiting (it may be a handler)."""

    def __init__(self, rt):
        self.rt = rt

    def set(self):
        self.rt._stop.set()
        self.rt._wake.set()


def _after_fork_in_child():
    global _global
    for rt in list(_runtimes):
        if rt._pid != os.getpid():
            rt._forked()
    _global = None
    decorators._listeners[:] = []
    decorators._current_stop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def start(socket_path=None, concurrency=DEFAULT_CONCURRENCY, **kw):
    """Serves the registered handlers (and those registered later) in the background of this
    process; returns the :class:`Runtime` (``.stop()``, ``.join()``, ``.ready``). Keyword
    arguments are :class:`Runtime`'s (name, group, prefetch, linger, handlers, ...)."""
    return Runtime(socket_path=socket_path, concurrency=concurrency, **kw).start()


AUTOSTART = True  # tocsin.uwsgi starts a runtime by itself unless this is False (serve)


def current():
    """The runtime serving the registered handlers in this process, or None."""
    rt = _global
    if rt is not None and rt._pid == os.getpid() and not rt._done.is_set():
        return rt
    return None

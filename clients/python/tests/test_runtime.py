"""The runtime (tocsin.start / Runtime / serve) against a real tocsind: the concurrency bound,
acks batched as notifications, nack on failure (redelivery, dead letter), start/stop in the
background, fork safety, shared sources, and `python3 -m tocsin serve` end to end."""

import json
import logging
import os
import signal as _signal
import subprocess
import sys
import textwrap
import threading
import time
import unittest
from unittest import mock

from tocsind_fixture import PKG, DaemonTestCase, client_named, raise_many, wait_until

import tocsin
from tocsin import runtime


class RuntimeTest(DaemonTestCase):
    CONFIG = """
        limits: {ack_timeout: 30s}
        signals:
          17: {name: jobs, handlers: [{target: subscriber}]}
          18: {name: news, handlers: [{target: subscribers}]}
          20: {name: work, handlers: [{target: subscriber}], max_deliveries: 2, dead_letter: 21}
          21: {name: failed, handlers: [{target: subscribers}]}
        """

    def setUp(self):
        super().setUp()
        tocsin.clear()
        self.addCleanup(tocsin.clear)

    def start(self, handlers, **kw):
        rt = runtime.Runtime(handlers=handlers, socket_path=self.path, **kw).start()
        self.addCleanup(rt.stop)
        wait_until(lambda: rt.ready.is_set() or not rt.running, what="the runtime's setup")
        if rt.error:
            raise rt.error
        return rt

    def unacked(self, c, name):
        d = client_named(c.status(), name)
        return d["unacked"] if d else None

    def test_concurrency_bound(self):
        gate = threading.Event()
        lock = threading.Lock()
        running = [0, 0, 0]  # now, most at once, done

        def slow(ev):
            with lock:
                running[0] += 1
                running[1] = max(running[1], running[0])
            gate.wait(30)
            with lock:
                running[0] -= 1
                running[2] += 1

        rt = self.start([tocsin.Handler("signal", slow, "jobs")], concurrency=3, name="pool")
        self.assertEqual(rt.prefetch, 3 * runtime.PREFETCH_PER_WORKER)
        c = self.client()
        for i in range(10):
            c.raise_signal("jobs", str(i))
        wait_until(lambda: running[0] == 3, what="three handlers at once")
        self.assertEqual(self.unacked(c, "pool"), 10)  # all held (prefetch 48), 3 running
        gate.set()
        wait_until(lambda: running[2] == 10, what="all ten handled")
        self.assertEqual(running[1], 3)
        wait_until(lambda: self.unacked(c, "pool") == 0, what="the acks")

    def test_quick_handlers_run_on_the_reader_while_the_pool_idles(self):
        # A pause of the machine inside a call (a loaded CI runner) must not make this no-op
        # handler look slow: the bar is raised for this test; what a slow one does is tested
        # below.
        patch = mock.patch.object(runtime, "INLINE_MAX", 1.0)
        patch.start()
        self.addCleanup(patch.stop)
        threads = []
        rt = self.start([tocsin.Handler("signal", lambda ev: threads.append(
            threading.current_thread().name), "jobs")], name="inline")
        c = self.client()
        for i in range(20):
            c.raise_signal("jobs", str(i))
        wait_until(lambda: len(threads) == 20, what="twenty handled")
        self.assertEqual(set(threads), {"tocsin-reader"}, "caller runs: no hand-off")
        wait_until(lambda: self.unacked(c, "inline") == 0, what="the acks")
        self.assertEqual(rt.handled, 20)

        # inline=False: every event goes to the pool.
        off = []
        self.start([tocsin.Handler("signal", lambda ev: off.append(
            threading.current_thread().name), "news")], name="pooled", inline=False)
        for i in range(5):
            c.raise_signal("news", str(i))
        wait_until(lambda: len(off) == 5, what="five handled")
        self.assertTrue(all(n.startswith("tocsin-worker-") for n in off), off)

    def test_a_handler_that_blocks_on_the_reader_does_not_stop_the_others(self):
        gate = threading.Event()
        blocked, quick = [], []

        def block(ev):
            blocked.append(threading.current_thread().name)
            gate.wait(30)

        rt = self.start([tocsin.Handler("signal", block, "work"),
                         tocsin.Handler("signal", lambda ev: quick.append(ev.payload), "jobs")],
                        concurrency=2, name="blocker")
        c = self.client()
        c.raise_signal("work", "stuck")
        wait_until(lambda: blocked, what="the blocking handler to start")
        self.assertEqual(blocked, ["tocsin-reader"], "started on the reader (the pool idled)")
        # Another thread reads meanwhile; the blocked reader counts as one of the two workers.
        for i in range(50):
            c.raise_signal("jobs", str(i))
        wait_until(lambda: len(quick) == 50, what="the others handled while one blocks")
        self.assertEqual(sorted(quick, key=int), [str(i) for i in range(50)])
        gate.set()
        wait_until(lambda: rt.handled == 51, what="the blocked one to finish")
        # It ran long once: from now on it goes to the pool.
        c.raise_signal("work", "again")
        wait_until(lambda: len(blocked) == 2, what="the second one")
        self.assertTrue(blocked[1].startswith("tocsin-worker-"), blocked)
        wait_until(lambda: self.unacked(c, "blocker") == 0, what="the acks")

    def test_stop_from_a_handler_returns(self):
        stopped = threading.Event()
        holder, running_after_stop = [], []

        def stop_me(ev):
            holder[0].stop(timeout=30)  # must not wait for itself
            # Returned at once: the runtime waits for this handler, so it is still running. (Had
            # stop() joined, it would have returned only after the runtime gave up waiting.)
            running_after_stop.append(holder[0].running)
            stopped.set()

        holder.append(self.start([tocsin.Handler("signal", stop_me, "jobs")], name="stopper"))
        self.client().raise_signal("jobs", "x")
        wait_until(stopped.is_set, what="stop() to return inside the handler", timeout=40)
        self.assertEqual(running_after_stop, [True])
        self.assertTrue(holder[0].join(10), "stopped")

    def test_acks_are_batched_notifications(self):
        seen = []
        rt = self.start([tocsin.Handler("signal", seen.append, "jobs")], name="batcher")
        sent = []
        real_send, real_request = runtime._Conn._send_raw, runtime._Conn._request

        def send_raw(conn, data):  # notifications: every line sent without an id
            for line in data.splitlines():
                msg = json.loads(line)
                self.assertNotIn("id", msg)
                sent.append((msg["method"], len(msg["params"].get("seqs", [])), "notification"))
            return real_send(conn, data)

        def request(conn, method, params, *a, **kw):
            sent.append((method, 0, "request"))
            return real_request(conn, method, params, *a, **kw)
        with mock.patch.object(runtime._Conn, "_send_raw", send_raw), \
                mock.patch.object(runtime._Conn, "_request", request):
            c = self.client()
            # Raised in one write, so that they come close together (one at a time, each
            # handled before the next arrives, each would be acked by itself, at once).
            c._send_raw(b"".join(b'{"jsonrpc":"2.0","method":"raise","params":'
                                 b'{"signal":"jobs","payload":"%d"}}\n' % i for i in range(300)))
            wait_until(lambda: len(seen) == 300, what="300 events handled")
            wait_until(lambda: self.unacked(c, "batcher") == 0, what="every event acked")
        acks = [n for m, n, kind in sent if m == "ack"]
        self.assertNotIn(("ack", 0, "request"), sent)  # no ack waited for a reply
        self.assertEqual(sum(acks), 300)
        self.assertLess(len(acks), 100)  # batched: fewer notifications than events
        entry = next(e for e in c.table() if e["signal"] == 17)
        self.assertEqual(entry["delivered"], 300)
        self.assertEqual(len({e.seq for e in seen}), 300)
        self.assertEqual(rt.handled, 300)

    def test_broadcast_events_are_not_acked(self):
        seen = []
        self.start([tocsin.Handler("signal", seen.append, "news")], name="listener")
        c = self.client()
        c.raise_signal("news", "hello")
        wait_until(lambda: len(seen) == 1, what="the broadcast")
        self.assertFalse(seen[0].ack)
        self.assertEqual(self.unacked(c, "listener"), 0)

    def test_exception_nacks_redelivers_then_dead_letters(self):
        calls = []

        def failing(ev):
            calls.append(ev.delivery)
            raise RuntimeError("boom %d" % ev.delivery)

        self.start([tocsin.Handler("signal", failing, "work")], name="failer")
        c = self.client()
        dead = c.subscribe(["failed"])
        with self.assertLogs("tocsin", level=logging.ERROR) as logs:
            seq = c.raise_signal("work", "doomed")
            ev = dead.get(timeout=10)
        self.assertIsNotNone(ev, "no dead letter")
        self.assertEqual(calls, [1, 2])  # nacked at once, redelivered, then max_deliveries
        payload = json.loads(ev.payload)
        self.assertEqual((payload["event"]["seq"], payload["deliveries"], payload["reason"]),
                         (seq, 2, "nack"))
        self.assertTrue(any("boom 1" in line for line in logs.output))

    def test_start_and_stop_in_the_background(self):
        seen = []
        tocsin.signal("jobs")(seen.append)
        rt = tocsin.start(socket_path=self.path, name="bg")
        self.addCleanup(rt.stop)
        self.assertIs(runtime.current(), rt)
        wait_until(rt.ready.is_set, what="the setup")
        self.client().raise_signal("jobs", "x")
        wait_until(lambda: len(seen) == 1, what="the event")
        # Registered after start: set up on the live connection.
        later = []
        tocsin.signal("news")(later.append)
        c = self.client()
        wait_until(lambda: c.raise_signal("news") and later, what="the later handler")
        rt.stop()
        self.assertTrue(rt.join(10))
        self.assertFalse(rt.running)
        self.assertIsNone(runtime.current())
        self.assertFalse([t for t in threading.enumerate() if t.name.startswith("tocsin-")
                          and t.is_alive() and t.name != "tocsin-reader"])
        wait_until(lambda: "bg" not in [x["name"] for x in c.status()["clients_detail"]],
                   what="the connection to close")

    def test_fork_after_start(self):
        seen = []
        tocsin.signal("jobs")(seen.append)
        rt = tocsin.start(socket_path=self.path, name="parent")
        self.addCleanup(rt.stop)
        wait_until(rt.ready.is_set, what="the setup")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: nothing of the parent's runtime runs here
            try:
                report = {"current": runtime.current() is not None, "running": rt.running,
                          "threads": [t.name for t in threading.enumerate()
                                      if t.name.startswith("tocsin")],
                          "join": rt.join(0)}
                os.write(w, json.dumps(report).encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            report = json.loads(f.read())
        os.waitpid(pid, 0)
        self.assertEqual(report, {"current": False, "running": False, "threads": [],
                                  "join": True})
        # The parent's runtime still works: the child did not shut its connection down.
        self.assertTrue(rt.running)
        self.client().raise_signal("jobs", "after fork")
        wait_until(lambda: [e.payload for e in seen] == ["after fork"], what="the event")

    def test_shared_source_one_for_many_processes(self):
        self.require_shared()
        a, b = [], []
        ha = tocsin.Handler("timer", a.append, None, {"every": 0.05})
        ha.id = "py:app.tasks.tick"
        hb = tocsin.Handler("timer", b.append, None, {"every": 0.05})
        hb.id = "py:app.tasks.tick"
        self.start([ha], name="w1")
        self.start([hb], name="w2")
        c = self.client()
        mine = [s for s in c.status()["sources"]["list"] if s["id"] == "py:app.tasks.tick"]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["lifetime"], "clients")
        self.assertEqual(mine[0]["declarers"], 2)
        self.assertEqual(ha.bound_signal, hb.bound_signal)
        wait_until(lambda: len(a) + len(b) >= 4, what="timer events")
        seqs = [e.seq for e in a + b]
        self.assertEqual(len(seqs), len(set(seqs)))  # one-of: each tick handled once

    def test_serve_subcommand(self):
        out = os.path.join(self.daemon.dir, "out.txt")
        with open(os.path.join(self.daemon.dir, "served_mod.py"), "w") as f:
            f.write(textwrap.dedent("""
                import tocsin

                @tocsin.signal("jobs")
                def job(ev):
                    with open(%r, "a") as f:
                        f.write(ev.payload + "\\n")
                """ % out))
        env = dict(os.environ, PYTHONPATH=PKG)
        proc = subprocess.Popen([sys.executable, "-m", "tocsin", "serve", "served_mod",
                                 "--socket", self.path, "--name", "served",
                                 "--concurrency", "2"],
                                cwd=self.daemon.dir, env=env, stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        c = self.client()
        wait_until(lambda: "served" in [x["name"] for x in c.status()["clients_detail"]]
                   or proc.poll() is not None, what="serve to connect")
        self.assertIsNone(proc.poll(), proc.stderr.read() if proc.poll() is not None else "")

        def lines():
            try:
                with open(out) as f:
                    return f.read().split()
            except OSError:
                return []
        for i in range(3):
            c.raise_signal("jobs", "job%d" % i)
        wait_until(lambda: sorted(lines()) == ["job0", "job1", "job2"], what="three jobs")
        os.kill(proc.pid, _signal.SIGTERM)
        self.assertEqual(proc.wait(10), 0)
        proc.stderr.close()


class _Gated(object):
    """A runtime named "slow" with one worker and a ``news`` handler held by a gate, and a
    burst of ``news`` events raised at it."""

    CONFIG = """
        signals:
          17: {name: jobs, handlers: [{target: subscriber}]}
          18: {name: news, handlers: [{target: subscribers}]}
        """

    def run_gated(self, n, **kw):
        gate = threading.Event()
        seen, overflows, most = [], [], [0]  # most: the longest queue a handler saw

        def news(ev):
            gate.wait(60)
            seen.append(ev.seq)
            if ev.overflow:
                overflows.append(ev.overflow)
            most[0] = max(most[0], len(rt._queue))

        rt = runtime.Runtime(handlers=[tocsin.Handler("signal", news, "news")],
                             socket_path=self.path, concurrency=1, name="slow", **kw).start()
        self.addCleanup(rt.stop)
        wait_until(rt.ready.is_set, what="the runtime's setup")
        c = self.client()
        raised = raise_many(self.path, 18, n)
        return rt, gate, seen, overflows, most, c, raised

    def client_row(self, c):
        return client_named(c.status(), "slow")


class BackPressureTest(_Gated, DaemonTestCase):
    """Broadcast events have no credit: the runtime must not read a burst into its own memory
    while its handlers are busy; the daemon holds it."""

    def test_a_burst_waits_in_the_daemon_not_in_the_process(self):
        rt, gate, seen, overflows, most, c, raised = self.run_gated(20000, max_queued=100)
        # The reader stopped with at most 100 + one read's events queued; the daemon keeps the
        # rest for this connection (without back pressure it read all 20,000 into its queue).
        wait_until(lambda: self.client_row(c)["queue"] > 5000, what="the daemon holding events")
        self.assertGreaterEqual(rt.paused, 1)
        self.assertLess(len(rt._queue), 100 + 200)
        gate.set()
        wait_until(lambda: len(seen) == len(raised), timeout=60, what="every event handled")
        # Each once. (Not in order: the first event blocked the reader, another thread took
        # reading over, and the rest of the first reader's chunk went to the pool after it.)
        self.assertEqual(sorted(seen), raised)
        self.assertEqual((overflows, self.client_row(c)["dropped"]), ([], 0))
        self.assertLess(most[0], 100 + 200)

    def test_a_handler_registered_while_the_reader_is_held_back_is_set_up(self):
        # The reply to the runtime's own request (subscribe) comes behind the held-back events:
        # the reader reads on while a request waits (else it timed out after 30 s, reconnecting).
        tocsin.clear()
        self.addCleanup(tocsin.clear)
        gate = threading.Event()
        tocsin.signal("news")(lambda ev: gate.wait(60))
        rt = runtime.Runtime(socket_path=self.path, concurrency=1, max_queued=100,
                             name="slow").start()
        self.addCleanup(rt.stop)
        self.addCleanup(gate.set)
        wait_until(rt.ready.is_set, what="the runtime's setup")
        c = self.client()
        raise_many(self.path, 18, 20000)
        wait_until(lambda: self.client_row(c)["queue"] > 5000, what="the daemon holding events")
        tocsin.signal("jobs")(lambda ev: None)  # set up on the live connection
        wait_until(lambda: self.client_row(c)["subscriptions"] == 2, what="the new subscription")
        self.assertEqual((rt.setup_errors, rt.ready.is_set()), ([], True))

    def test_a_reader_taken_over_and_held_back_does_not_stall_the_new_one(self):
        # The first event blocks the reader: another takes reading over and fills the queue;
        # when the first handler returns, the old reader's leftover goes to the pool too. Only
        # the current reader may wait for room: two waiting, and the one woken last was the
        # new one's wake-up taken by the old, and reading stopped for good.
        gate, first = threading.Event(), []
        seen = []

        def handler(ev):
            if not first:
                first.append(ev.seq)
                gate.wait(30)
            else:
                time.sleep(0.001)  # lets the other threads run between events
            seen.append(ev.seq)

        rt = runtime.Runtime(handlers=[tocsin.Handler("signal", handler, "news")],
                             socket_path=self.path, concurrency=1, max_queued=20,
                             name="slow").start()
        self.addCleanup(rt.stop)
        wait_until(rt.ready.is_set, what="the runtime's setup")
        # the worker idle: the first events run on the reader (caller runs)
        wait_until(lambda: rt._idle == 1, what="the worker waiting")
        raised = raise_many(self.path, 18, 3000)
        wait_until(lambda: rt._taken and len(rt._queue) >= 20, what="a take-over, queue full")
        gate.set()
        wait_until(lambda: len(seen) == len(raised), timeout=60, what="every event handled")
        self.assertEqual(sorted(seen), raised)



class DaemonDropsTest(_Gated, DaemonTestCase):
    """Past its limits.subscriber_queue the daemon drops and says what: the handlers hear it."""

    CONFIG = _Gated.CONFIG + """
        limits: {subscriber_queue: 1000}
        """

    def test_what_the_daemon_drops_reaches_the_handlers_as_overflow(self):
        rt, gate, seen, overflows, most, c, raised = self.run_gated(20000, max_queued=100)
        wait_until(lambda: self.client_row(c)["dropped"] > 0, what="the daemon dropping")
        gate.set()
        # Every event raised is handled once or reported dropped: nothing unaccounted for.
        wait_until(lambda: len(seen) + sum(o.dropped for o in overflows) == len(raised),
                   timeout=60, what="handled + dropped")
        dropped = set()
        for o in overflows:
            dropped.update(range(o.first_seq, o.last_seq + 1))
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(sorted(set(seen) | dropped), raised)
        self.assertEqual(set(seen) & dropped, set())
        self.assertEqual(sum(o.dropped for o in overflows), self.client_row(c)["dropped"])


class ReaderTest(unittest.TestCase):
    """The runtime's reader on lines written by hand (a socket of the test's own): the fast
    path for chunks of events by position must give exactly what Event.from_params gives for
    each line, whatever the payloads hold, and mixed chunks (replies, overflow notices, events
    by name) must keep their order and meaning."""

    ENVELOPE = '{"jsonrpc":"2.0","method":"signal","params":'

    def setUp(self):
        import socket
        import tempfile
        self.tmp = tempfile.TemporaryDirectory(prefix="tocsin-reader-")
        self.addCleanup(self.tmp.cleanup)
        path = os.path.join(self.tmp.name, "s.sock")
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(1)
        self.batches = []
        self.counted = 0  # events seen while self.keep is False (not kept)
        self.keep = True
        self.closed = threading.Event()

        def sink(conn, batch):
            if batch is None:
                self.closed.set()
            elif self.keep:
                self.batches.append(batch)
            else:
                self.counted += len(batch)
        self.conn = runtime._Conn(path, sink)
        self.peer, _ = self.server.accept()
        self.addCleanup(self.server.close)
        self.addCleanup(self.peer.close)
        self.addCleanup(self.conn.close)

    def events(self):
        return [ev for b in self.batches for ev in b]

    def line(self, params):
        return (self.ENVELOPE + json.dumps(params, separators=(",", ":")) + "}\n").encode()

    def test_events_by_position_with_hostile_payloads(self):
        payloads = ['', 'a}', '}\n{', ']}', '"quoted"', self.ENVELOPE, 'é\u2028',
                    '{"jsonrpc":"2.0"}', '\\', '[1,2]}\n']
        sent = [[100 + i, 17, "jobs", "raise", "pid:1", "2026-12-03T01:00:00.000000Z", 0, p,
                 i % 3] for i, p in enumerate(payloads)]
        data = b"".join(self.line(a) for a in sent)
        # in pieces that split lines anywhere: the reader must join them
        for i in range(0, len(data), 37):
            self.peer.sendall(data[i:i + 37])
        wait_until(lambda: len(self.events()) == len(sent), what="every event read")
        for ev, a in zip(self.events(), sent):
            want = tocsin.Event.from_params(json.loads(self.line(a))["params"])
            self.assertEqual((ev.seq, ev.signal, ev.name, ev.source, ev.time, ev.iteration,
                              ev.payload, ev.ack, ev.delivery, ev.redelivered),
                             (want.seq, want.signal, want.name, want.source, want.time,
                              want.iteration, want.payload, want.ack, want.delivery,
                              want.redelivered))
            self.assertEqual(ev.payload, a[7])

    def test_lines_longer_than_a_read_are_joined(self):
        from tocsin._common import READ_SIZE
        big = ["x" * (READ_SIZE * 3 + 5), "y" * (READ_SIZE - 60), "z" * (2 * READ_SIZE)]
        sent = [[i, 17, "jobs", "raise", "p", "t", 0, p, 0] for i, p in enumerate(big)]
        data = b"".join(self.line(a) for a in sent)
        self.peer.sendall(data[:READ_SIZE + 7])
        self.peer.sendall(data[READ_SIZE + 7:])
        wait_until(lambda: len(self.events()) == 3, what="three long events")
        self.assertEqual([e.payload for e in self.events()], big)

    def test_a_burst_starts_almost_no_garbage_collections(self):
        # A chunk's events are alive together while the reader hands them on. Read in chunks of
        # 256 KiB, a burst of 20,000 started 77 collections, 6 of them of the middle generation
        # (promoting events into older generations, whose collection scans the app's heap).
        import gc
        events = 20000
        data = b"".join(self.line([i, 18, "news", "raise", "pid:1", "2026-12-03T09:00:00.000000Z",
                                   0, None, 0]) for i in range(events))
        started = [0, 0, 0]

        def count(phase, info):
            if phase == "start":
                started[info["generation"]] += 1

        self.keep = False
        gc.collect()
        gc.callbacks.append(count)
        try:
            self.peer.sendall(data)
            wait_until(lambda: self.counted == events, what="every event read")
        finally:
            gc.callbacks.remove(count)
        self.assertLessEqual(sum(started), 10, "collections by generation: %s" % started)

    def test_the_fast_path_takes_only_chunks_of_events_by_position(self):
        from tocsin._common import events_by_position
        ev = [self.line([i, 17, "jobs", "raise", "p", "t", 0, "}\n" + self.ENVELOPE, 0])[:-1]
              for i in range(3)]
        reply = b'{"jsonrpc":"2.0","id":1,"result":{}}'
        by_name = (self.ENVELOPE + '{"seq":9,"signal":17}}').encode()
        self.assertEqual([e.seq for e in events_by_position(b"\n".join(ev), json.loads)],
                         [0, 1, 2])
        self.assertEqual([e.seq for e in events_by_position(ev[0], json.loads)], [0])
        for body in (reply, reply + b"\n" + ev[0], ev[0] + b"\n" + reply,
                     ev[0] + b"\n" + reply + b"\n" + ev[1], ev[0] + b"\n",
                     ev[0] + b" ", ev[0] + b"\n\n" + ev[1]):
            self.assertIsNone(events_by_position(body, json.loads), body)
        # an event by name with the same envelope is still an event (from_params reads both)
        self.assertEqual([e.seq for e in events_by_position(ev[0] + b"\n" + by_name,
                                                            json.loads)], [0, 9])

    def test_a_mixed_chunk_keeps_order_overflow_and_replies(self):
        by_name = {"seq": 7, "signal": 5, "name": "news", "source": {"kind": "timer", "id": "t"},
                   "time": "2026-12-03T01:00:00.000000Z", "iteration": 2, "payload": "x"}
        overflow = {"jsonrpc": "2.0", "method": "overflow",
                    "params": {"dropped": 3, "first_seq": 4, "last_seq": 6}}
        chunk = (self.line([1, 5, "news", "raise", "a", "t", 0, "one", 0])
                 + (json.dumps(overflow) + "\n").encode()
                 + self.line([8, 5, "news", "raise", "a", "t", 0, "after", 0])
                 + (json.dumps({"jsonrpc": "2.0", "method": "signal", "params": by_name})
                    + "\n").encode())
        with self.assertLogs("tocsin", "WARNING"):
            self.peer.sendall(chunk)
            wait_until(lambda: len(self.events()) == 3, what="three events")
        evs = self.events()
        self.assertEqual([e.seq for e in evs], [1, 8, 7])
        self.assertIsNone(evs[0].overflow)
        self.assertEqual(evs[1].overflow, tocsin.Overflow(3, 4, 6))
        self.assertEqual((evs[2].name, evs[2].source, evs[2].iteration), ("news",
                         tocsin.Source("timer", "t"), 2))

    def test_elements_a_newer_daemon_appends_are_ignored(self):
        # docs/protocol.md: readers ignore extra elements of an event's params array.
        self.peer.sendall(self.line([3, 17, "jobs", "cron", "nightly", "t", 4, "p", 2, "new", 9])
                          + self.line([4, 17, "jobs", "cron", "nightly", "t", 5, "q", 0]))
        wait_until(lambda: len(self.events()) == 2, what="two events")
        ev = self.events()[0]
        self.assertEqual((ev.seq, ev.signal, ev.name, ev.source, ev.time, ev.iteration,
                          ev.payload, ev.delivery, ev.ack, ev.redelivered),
                         (3, 17, "jobs", tocsin.Source("cron", "nightly"), "t", 4, "p", 2, True,
                          True))
        self.assertEqual(len(ev.raw), 11)
        self.assertEqual((self.events()[1].seq, self.events()[1].ack), (4, False))


if __name__ == "__main__":
    unittest.main()

"""The decorators and tocsin.run() against a real tocsind: delivery, acks, a handler that
raises (redelivered), timers on picked signals, reconnect after a daemon restart."""

import json
import logging
import os
import threading
import unittest

from tocsind_fixture import DaemonTestCase, wait_until

import tocsin


class Runner(object):
    """tocsin.run() in a thread; .error is what it raised."""

    def __init__(self, test, **kw):
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.error = None
        self.done = threading.Event()

        def body():
            try:
                tocsin.run(stop_event=self.stop_event, ready=self.ready, **kw)
            except BaseException as e:  # noqa: B902 (reported to the test)
                self.error = e
            finally:
                self.done.set()
        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()
        test.addCleanup(self.stop)

    def wait_ready(self, timeout=10):
        wait_until(lambda: self.ready.is_set() or self.done.is_set(), timeout, "run() to set up")
        if self.error is not None:
            raise self.error

    def stop(self):
        self.stop_event.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "run() did not return after stop"


class Recorder(object):
    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def __call__(self, ev):
        with self.lock:
            self.events.append(ev)

    def count(self):
        with self.lock:
            return len(self.events)


class DecoratorTest(DaemonTestCase):

    def setUp(self):
        super().setUp()
        tocsin.clear()
        self.addCleanup(tocsin.clear)

    def test_signal_one_of_is_acked(self):
        rec = Recorder()
        tocsin.signal("jobs")(rec)
        r = Runner(self, socket_path=self.path, name="py-worker")
        r.wait_ready()
        c = self.client()
        seq = c.raise_signal("jobs", "build 7")
        wait_until(lambda: rec.count() == 1, what="the handler")
        ev = rec.events[0]
        self.assertEqual((ev.seq, ev.signal, ev.name, ev.payload, ev.ack), (seq, 17, "jobs",
                                                                            "build 7", True))

        def acked():
            d = [x for x in c.status()["clients_detail"] if x["name"] == "py-worker"]
            return d and d[0]["unacked"] == 0
        wait_until(acked, what="the ack")
        # Acked: not redelivered after ack_timeout (200ms). Raise another one and see it come
        # next, with nothing in between.
        seq2 = c.raise_signal("jobs", "build 8")
        wait_until(lambda: rec.count() == 2, what="the second event")
        self.assertEqual(rec.events[1].seq, seq2)
        self.assertFalse(any(e.redelivered for e in rec.events))

    def test_signal_by_number_broadcast(self):
        rec = Recorder()
        decorated = tocsin.signal(18)(rec)
        self.assertIs(decorated, rec)  # decorators return the function
        r = Runner(self, socket_path=self.path)
        r.wait_ready()
        seq = self.client().raise_signal(18, "x")
        wait_until(lambda: rec.count() == 1, what="the handler")
        self.assertEqual((rec.events[0].seq, rec.events[0].ack), (seq, False))

    def test_handler_that_raises_is_redelivered(self):
        calls = []

        @tocsin.signal("work")
        def flaky(ev):
            calls.append(ev)
            if len(calls) == 1:
                raise RuntimeError("first time fails")

        r = Runner(self, socket_path=self.path, name="flaky")
        r.wait_ready()
        c = self.client()
        with self.assertLogs("tocsin", level=logging.ERROR) as logs:
            seq = c.raise_signal("work", "retry me")
            wait_until(lambda: len(calls) >= 2, what="the redelivery")
        self.assertTrue(any("first time fails" in line for line in logs.output))
        self.assertEqual([e.seq for e in calls[:2]], [seq, seq])
        self.assertFalse(calls[0].redelivered)
        self.assertTrue(calls[1].redelivered)

        def acked():
            d = [x for x in c.status()["clients_detail"] if x["name"] == "flaky"]
            return d and d[0]["unacked"] == 0
        wait_until(acked, what="the ack after the handler succeeded")
        self.assertEqual(len(calls), 2)

    def _source_decorator_test(self, deco, kind):
        rec = Recorder()
        deco(rec)
        h = tocsin.handlers()[0]
        self.assertEqual(h.id, "py:test_decorators.Recorder")  # module and name: stable
        r = Runner(self, socket_path=self.path, linger=0.1)
        r.wait_ready()
        wait_until(lambda: rec.count() >= 2, what="two timer events")
        ev = rec.events[0]
        sid = self.used_id(h)
        self.assertEqual(ev.source, tocsin.Source(kind, sid))
        self.assertEqual(ev.signal, 200)  # the first free number from 200 down
        self.assertTrue(ev.ack)
        c = self.client()
        ids = [s["id"] for s in c.status()["sources"]["list"]]
        self.assertIn(sid, ids)
        r.stop()
        if self.shared():
            # A shared source: gone once its last declarer left and its linger (0.1 s) ran.
            wait_until(lambda: sid not in [s["id"] for s in c.status()["sources"]["list"]],
                       what="the source to go after its linger")
        else:
            # run() cleans up what it added: the timer and the subscriber target.
            self.assertNotIn(sid, [s["id"] for s in c.status()["sources"]["list"]])
            self.assertNotIn(200, [e["signal"] for e in c.table() if e["handlers"]])

    def test_timer(self):
        self._source_decorator_test(tocsin.timer(0.02), "timer")

    def test_rbtimer(self):
        self._source_decorator_test(tocsin.rbtimer(0.02), "rb_timer")

    def test_timer_on_given_signal_with_iterations(self):
        rec = Recorder()
        tocsin.timer(0.01, signal="jobs", iterations=3)(rec)
        other = Recorder()
        tocsin.signal(200)(other)  # taken by a handler's subscription, not by the table
        r = Runner(self, socket_path=self.path)
        r.wait_ready()
        wait_until(lambda: rec.count() == 3, what="three iterations")
        self.assertEqual([e.signal for e in rec.events], [17, 17, 17])
        self.assertEqual([e.iteration for e in rec.events], [1, 2, 3])
        # Only the timer's own events reach the timer handler.
        self.client().raise_signal("jobs", "not the timer")
        wait_until(lambda: self.client().table()[0]["raised"] >= 4, what="the raise")
        self.assertEqual(rec.count(), 3)

    def test_picked_signal_avoids_the_table(self):
        self.daemon.stop()
        self.daemon = type(self.daemon)(self.daemon.dir, """
            signals:
              200: {name: taken}
              199: {name: also-taken}
            """).start()
        rec = Recorder()
        tocsin.timer(0.02)(rec)
        r = Runner(self, socket_path=self.path)
        r.wait_ready()
        wait_until(lambda: rec.count() >= 1, what="a timer event")
        self.assertEqual(rec.events[0].signal, 198)

    def test_reconnect_after_daemon_restart(self):
        rec = Recorder()
        tocsin.signal("jobs")(rec)
        ticks = Recorder()
        tocsin.timer(0.05)(ticks)
        r = Runner(self, socket_path=self.path, name="survivor")
        r.wait_ready()
        c = tocsin.Client(self.path)
        c.raise_signal("jobs", "before")
        c.close()
        wait_until(lambda: rec.count() == 1, what="the event before the restart")
        old_pid = self.daemon.pid
        self.assertEqual(self.daemon.stop(), 0)
        self.daemon.start()  # same config, same socket
        self.assertNotEqual(self.daemon.pid, old_pid)
        c = self.client()
        seq = c.raise_signal("jobs", "after")  # backlog until run() subscribes again
        wait_until(lambda: rec.count() == 2, 15, "the event after the restart")
        self.assertEqual((rec.events[1].payload, rec.events[1].seq), ("after", seq))
        # The timer was added again on the new daemon.
        mark = ticks.count()
        wait_until(lambda: ticks.count() >= mark + 2, 15, "timer events after the restart")
        self.assertIn(self.used_id(tocsin.handlers()[1]),
                      [s["id"] for s in c.status()["sources"]["list"]])
        self.assertIsNone(r.error)

    def test_stop_function(self):
        @tocsin.signal("jobs")
        def stopper(ev):
            tocsin.stop()

        r = Runner(self, socket_path=self.path)
        r.wait_ready()
        self.client().raise_signal("jobs")
        wait_until(r.done.is_set, what="run() to return after tocsin.stop()")
        self.assertIsNone(r.error)

    def test_unknown_signal_is_an_error(self):
        tocsin.signal("nope")(Recorder())
        r = Runner(self, socket_path=self.path)
        wait_until(r.done.is_set, what="run() to fail")
        self.assertIsInstance(r.error, tocsin.RpcError)
        self.assertEqual(r.error.code, tocsin.UNKNOWN_SIGNAL)

    def test_max_reconnects(self):
        tocsin.signal("jobs")(Recorder())
        r = Runner(self, socket_path=os.path.join(self.daemon.dir, "nothing.sock"),
                   max_reconnects=2)
        wait_until(r.done.is_set, what="run() to give up")
        self.assertIsInstance(r.error, tocsin.ConnectionLost)

    def test_cron_fires_the_function(self):
        every_second = Recorder()
        tocsin.cron("* * * * * *", tz="Asia/Tokyo")(every_second)
        r = Runner(self, socket_path=self.path, linger=0)
        r.wait_ready()
        wait_until(lambda: every_second.count() >= 2, 15, "two cron events")
        ev = every_second.events[0]
        self.assertEqual(ev.source.kind, "cron")
        payload = json.loads(ev.payload)
        self.assertEqual(payload["zone"], "Asia/Tokyo")
        self.assertTrue(payload["scheduled"].endswith("+09:00"), payload)
        tocsin.stop()
        wait_until(r.done.is_set, what="run() to return")
        self.assertIsNone(r.error)
        # run() removed its job on the way out (shared: its last declarer left, no linger).
        wait_until(lambda: [s for s in self.client().status()["sources"]["list"]
                            if s["kind"] == "cron"] == [], what="the cron job to go")

    def test_bad_cron_expression_is_reported_and_nothing_is_left_behind(self):
        tocsin.cron("*/5 * 32 * *")(Recorder())
        tocsin.timer(1)(Recorder())
        r = Runner(self, socket_path=self.path)
        wait_until(r.done.is_set, what="run() to fail")
        self.assertIsInstance(r.error, tocsin.RpcError)
        self.assertEqual(r.error.code, tocsin.INVALID_PARAMS)
        self.assertIn("day-of-month 32", r.error.message)
        self.assertEqual(self.client().status()["sources"]["list"], [])

    def test_filemon(self):
        watched = os.path.join(self.daemon.dir, "watched")
        os.mkdir(watched)
        rec = Recorder()
        tocsin.filemon(watched, recursive=True, match="*.txt")(rec)
        h = tocsin.handlers()[0]
        r = Runner(self, socket_path=self.path, linger=0)
        r.wait_ready()
        with open(os.path.join(watched, "a.txt"), "w") as f:
            f.write("x")
        wait_until(lambda: rec.count() >= 1, what="the file event")
        sid = self.used_id(h)
        self.assertEqual(rec.events[0].source, tocsin.Source("file", sid))
        c = self.client()
        self.assertIn(sid, [m["id"] for m in c.status()["file_monitors"]])
        r.stop()
        wait_until(lambda: sid not in [m["id"] for m in c.status()["file_monitors"]],
                   what="the monitor to go")


if __name__ == "__main__":
    unittest.main()

"""tocsin.Client against a real tocsind: every method."""

import json
import os
import threading
import unittest

from tocsind_fixture import DaemonTestCase, wait_until

import tocsin


class ClientTest(DaemonTestCase):

    def test_hello(self):
        c = self.client()
        r = c.hello(name="worker-1", group="builders")
        self.assertIsInstance(r["client"], int)
        self.assertEqual(r["name"], "worker-1")
        self.assertEqual(r["group"], "builders")
        other = self.client()
        with self.assertRaises(tocsin.RpcError):  # names are unique among connected clients
            other.hello(name="worker-1")

    def test_raise_and_broadcast_event_fields(self):
        listener = self.client()
        sub = listener.subscribe(["news"])
        self.assertIsInstance(sub.id, int)
        c = self.client()
        c.hello(name="raiser")
        seq = c.raise_signal("news", "hello")
        self.assertIsInstance(seq, int)
        self.assertEqual(c.raise_signal(18), seq + 1)
        ev = sub.get(timeout=5)
        self.assertIsInstance(ev, tocsin.Event)
        self.assertEqual((ev.signal, ev.name, ev.seq), (18, "news", seq))
        self.assertEqual(ev.source, tocsin.Source("raise", "raiser"))
        self.assertEqual(ev.source.kind, "raise")
        self.assertRegex(ev.time, r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(ev.iteration, 0)
        self.assertEqual(ev.payload, "hello")
        self.assertFalse(ev.ack)
        self.assertFalse(ev.redelivered)
        ev2 = next(iter(sub))
        self.assertEqual(ev2.seq, seq + 1)
        self.assertEqual(ev2.payload, "")  # the daemon sends "" when there was no payload

    def test_subscribe_sources_filter(self):
        listener = self.client()
        sub = listener.subscribe("*", sources=["someone-else"])
        c = self.client()
        c.hello(name="me")
        c.raise_signal("news", "not for the filter")
        c2 = self.client()
        c2.hello(name="someone-else")
        seq = c2.raise_signal("news", "for the filter")
        ev = sub.get(timeout=5)
        self.assertEqual(ev.seq, seq)
        self.assertEqual(ev.payload, "for the filter")

    def test_one_of_and_ack(self):
        c = self.client()
        seq = c.raise_signal("jobs", "build 7")  # waits in the backlog: no candidate yet
        sub = c.subscribe(["jobs"], ack=True)
        ev = sub.get(timeout=5)
        self.assertEqual((ev.seq, ev.payload, ev.ack), (seq, "build 7", True))
        self.assertEqual(c.ack(ev), {})
        with self.assertRaises(tocsin.RpcError) as cm:
            c.ack(ev.seq)
        self.assertEqual(cm.exception.code, tocsin.NO_SUCH_EVENT)
        self.assertIn("no unacknowledged event", cm.exception.message)

    def test_unacked_event_is_redelivered(self):
        c = self.client()
        sub = c.subscribe(["jobs"], ack=True)
        seq = c.raise_signal("jobs", "x")
        first = sub.get(timeout=5)
        self.assertFalse(first.redelivered)
        again = sub.get(timeout=5)  # ack_timeout 200ms, the only candidate: us again
        self.assertEqual(again.seq, seq)
        self.assertTrue(again.redelivered)
        c.ack(again)

    def test_unsubscribe(self):
        c = self.client()
        sub = c.subscribe(["news"])
        self.assertEqual(sub.unsubscribe(), {})
        with self.assertRaises(tocsin.RpcError) as cm:
            c.unsubscribe(sub)
        self.assertEqual(cm.exception.code, tocsin.NO_SUCH_EVENT)

    def test_wait(self):
        c = self.client()
        self.assertIsNone(c.wait("loose", timeout=0.05))
        got = {}
        t = threading.Thread(target=lambda: got.setdefault("ev", c.wait("loose", timeout=10)))
        t.start()
        other = self.client()
        wait_until(lambda: other.status()["waiters"] == 1, what="the wait to be registered")
        self.assertEqual(c.version()["protocol"], 1)  # the connection stays usable meanwhile
        seq = other.raise_signal("loose", "p")
        t.join(10)
        ev = got["ev"]
        self.assertEqual((ev.signal, ev.name, ev.seq, ev.payload), (19, "loose", seq, "p"))

    def test_wait_any_signal(self):
        c = self.client()
        got = {}
        t = threading.Thread(target=lambda: got.setdefault("ev", c.wait(timeout=10)))
        t.start()
        wait_until(lambda: c.status()["waiters"] == 1, what="the wait to be registered")
        seq = c.raise_signal(77)
        t.join(10)
        self.assertEqual((got["ev"].signal, got["ev"].seq), (77, seq))

    def test_register_and_unregister(self):
        c = self.client()
        self.assertEqual(c.register(30, "subscribers"), {})
        entry = [e for e in c.table() if e["signal"] == 30][0]
        self.assertIn("target[subscribers]", entry["handlers"])
        sub = c.subscribe([30])
        seq = c.raise_signal(30)
        self.assertEqual(sub.get(timeout=5).seq, seq)
        with self.assertRaises(tocsin.RpcError) as cm:
            c.register(30, "subscribers")
        self.assertEqual(cm.exception.code, tocsin.INVALID_PARAMS)
        self.assertEqual(c.unregister(30, "subscribers"), {})
        with self.assertRaises(tocsin.RpcError) as cm:
            c.unregister(30, "subscribers")
        self.assertEqual(cm.exception.code, tocsin.NO_SUCH_EVENT)

    def _timer_test(self, add, kind):
        c = self.client()
        c.register(31, "subscribers")
        sub = c.subscribe([31], sources=[kind])
        sid = add(c)(31, 0.02, iterations=2, id="t-" + kind)
        self.assertEqual(sid, "t-" + kind)
        events = [sub.get(timeout=5), sub.get(timeout=5)]
        self.assertEqual([e.source for e in events], [tocsin.Source(kind, sid)] * 2)
        self.assertEqual([e.signal for e in events], [31, 31])
        generated = add(c)(31, "1h")
        self.assertTrue(generated.startswith(kind + ":"), generated)
        listed = [s["id"] for s in c.status()["sources"]["list"]]
        self.assertIn(generated, listed)
        self.assertEqual(c.remove_source(generated), {})
        with self.assertRaises(tocsin.RpcError) as cm:
            c.remove_source(generated)
        self.assertEqual(cm.exception.code, tocsin.NO_SUCH_EVENT)
        with self.assertRaises(tocsin.RpcError) as cm:
            add(c)(31, 0)
        self.assertEqual(cm.exception.code, tocsin.INVALID_PARAMS)

    def test_add_timer_and_remove_source(self):
        self._timer_test(lambda c: c.add_timer, "timer")

    def test_add_rb_timer_and_remove_source(self):
        self._timer_test(lambda c: c.add_rb_timer, "rb_timer")

    def test_shared_sources_join_conflict_replace_and_force(self):
        a, b = self.client(), self.client()
        first = a.add_timer(32, "1h", id="shared", lifetime="clients", linger=0.5)
        self.assertEqual((first, first.joined), ("shared", False))
        again = b.add_timer(32, "1h", id="shared", lifetime="clients", linger="500ms")
        self.assertEqual((again, again.joined), ("shared", True))
        s = [s for s in a.status()["sources"]["list"] if s["id"] == "shared"][0]
        self.assertEqual((s["lifetime"], s["declarers"], s["linger_ms"]), ("clients", 2, 500))
        with self.assertRaises(tocsin.RpcError) as cm:
            b.add_timer(32, "2h", id="shared", lifetime="clients", linger=0.5)
        self.assertEqual(cm.exception.code, tocsin.SOURCE_CONFLICT)
        replaced = b.add_timer(32, "2h", id="shared", lifetime="clients", linger=0.5,
                               replace=True)
        self.assertEqual((replaced, replaced.joined), ("shared", False))
        other = self.client()
        with self.assertRaises(tocsin.RpcError) as cm:
            other.remove_source("shared")
        self.assertEqual(cm.exception.code, tocsin.SOURCE_CONFLICT)
        self.assertEqual(a.remove_source("shared"), {})  # a leaves; b still declares it
        self.assertIn("shared", [s["id"] for s in other.status()["sources"]["list"]])
        self.assertEqual(other.remove_source("shared", force=True), {})
        self.assertNotIn("shared", [s["id"] for s in other.status()["sources"]["list"]])

    def test_timer_fields(self):
        c = self.client()
        c.add_timer(32, "2s", after=0.5, clock="boottime", iterations=3, id="fields")
        s = [s for s in c.status()["sources"]["list"] if s["id"] == "fields"][0]
        self.assertEqual((s["kind"], s["signal"], s["every_ms"], s["clock"], s["iterations"]),
                         ("timer", 32, 2000, "boottime", 3))

    def test_add_at_fires_once_and_refuses_the_past(self):
        import datetime
        c = self.client()
        c.register(34, "subscribers")
        sub = c.subscribe([34])
        when = (datetime.datetime.now(datetime.timezone.utc)
                + datetime.timedelta(seconds=2)).replace(microsecond=0)
        self.assertEqual(c.add_at(34, when, id="a1"), "a1")
        s = [s for s in c.status()["sources"]["list"] if s["id"] == "a1"][0]
        self.assertEqual((s["kind"], s["signal"], s["state"]), ("at", 34, "ok"))
        ev = sub.get(timeout=10)
        self.assertEqual((ev.signal, ev.source), (34, tocsin.Source("at", "a1")))
        self.assertEqual(json.loads(ev.payload)["catch_up"], False)
        with self.assertRaises(tocsin.RpcError) as cm:
            c.add_at(34, "2020-01-01T00:00:00Z")
        self.assertEqual(cm.exception.code, tocsin.INVALID_PARAMS)
        self.assertIn("has passed", cm.exception.message)

    def test_add_cron_with_every_field(self):
        c = self.client()
        self.assertEqual(c.add_cron(33, "*/5 * * * *", tz="Europe/Berlin", jitter=1,
                                    missed="once", iterations=0, id="c1"), "c1")
        s = [s for s in c.status()["sources"]["list"] if s["id"] == "c1"][0]
        self.assertEqual((s["kind"], s["signal"], s["schedule"], s["zone"], s["missed_policy"]),
                         ("cron", 33, "*/5 * * * *", "Europe/Berlin", "once"))
        self.assertTrue(s["next"].endswith(("+01:00", "+02:00")), s["next"])
        with self.assertRaises(tocsin.RpcError) as cm:
            c.add_cron(33, "0 0 ? * 1")
        self.assertEqual(cm.exception.code, tocsin.INVALID_PARAMS)
        self.assertIn("Quartz", cm.exception.message)
        c.remove_source("c1")

    def test_add_file_monitor(self):
        c = self.client()
        watched = os.path.join(self.daemon.dir, "watched")
        os.mkdir(watched)
        self.assertEqual(c.add_file_monitor(18, watched, recursive=True,
                                            events=["create", "close_write"], match="*.txt",
                                            settle=0.05, max_delay="1s", iterations=0, id="f1"),
                         "f1")
        sub = self.client().subscribe(["news"])
        with open(os.path.join(watched, "a.txt"), "w") as f:
            f.write("x")
        ev = sub.get(timeout=5)
        self.assertEqual(ev.source, tocsin.Source("file", "f1"))
        payload = json.loads(ev.payload)
        self.assertEqual(payload["changes"][0]["path"], os.path.join(watched, "a.txt"))
        st = [m for m in c.status()["file_monitors"] if m["id"] == "f1"][0]
        self.assertEqual((st["state"], st["recursive"], st["path"]), ("ok", True, watched))
        self.assertEqual(c.remove_source("f1"), {})
        with self.assertRaises(tocsin.RpcError) as cm:
            c.add_file_monitor(34, "/tmp", events="write")
        self.assertEqual(cm.exception.code, tocsin.INVALID_PARAMS)

    def test_table(self):
        t = {e["signal"]: e for e in self.client().table()}
        self.assertEqual(t[17]["name"], "jobs")
        self.assertEqual(t[17]["handlers"], ["target[subscriber]"])
        self.assertIn("raised", t[17])

    def test_status_version_metrics_call(self):
        c = self.client()
        st = c.status()
        self.assertEqual(st["pid"], self.daemon.pid)
        self.assertEqual(st["socket"], self.path)
        self.assertGreaterEqual(st["clients"], 1)
        self.assertEqual(c.version()["protocol"], 1)
        self.assertIsInstance(c.metrics(), str)
        self.assertEqual(c.call("version"), c.version())

    def test_errors_carry_code_and_message(self):
        c = self.client()
        with self.assertRaises(tocsin.RpcError) as cm:
            c.raise_signal("nope")
        self.assertEqual(cm.exception.code, tocsin.UNKNOWN_SIGNAL)
        self.assertEqual(cm.exception.message, 'unknown signal "nope"')
        with self.assertRaises(tocsin.RpcError) as cm:
            c.call("nope")
        self.assertEqual(cm.exception.code, tocsin.METHOD_NOT_FOUND)
        self.assertEqual(c.version()["protocol"], 1)  # still usable

    def test_env_socket_path(self):
        old = os.environ.get("TOCSIN_SOCKET")
        os.environ["TOCSIN_SOCKET"] = self.path
        try:
            with tocsin.Client() as c:
                self.assertEqual(c.socket_path, self.path)
                self.assertEqual(c.version()["protocol"], 1)
        finally:
            if old is None:
                del os.environ["TOCSIN_SOCKET"]
            else:
                os.environ["TOCSIN_SOCKET"] = old

    def test_connection_lost(self):
        with self.assertRaises(tocsin.ConnectionLost) as cm:
            tocsin.Client(os.path.join(self.daemon.dir, "nothing.sock"))
        self.assertIsInstance(cm.exception, ConnectionError)
        c = self.client()
        sub = c.subscribe(["news"])
        got = {}

        def waiter():
            try:
                c.wait("loose", timeout=30)
            except tocsin.ConnectionLost as e:
                got["err"] = e
        t = threading.Thread(target=waiter)
        t.start()
        wait_until(lambda: c.status()["waiters"] == 1, what="the wait")
        self.daemon.stop()
        t.join(10)
        self.assertIsInstance(got.get("err"), tocsin.ConnectionLost)
        self.assertEqual(list(sub), [])  # the iterator ends
        with self.assertRaises(tocsin.ConnectionLost):
            c.version()



class CreditTest(DaemonTestCase):
    """Credit, batched acks and nack (docs/protocol.md, Delivery), with a long ack timeout."""

    CONFIG = """
    limits: {ack_timeout: 60s}
    signals:
      17: {name: jobs, handlers: [{target: subscriber}]}
    """

    def test_prefetch_batched_acks_and_nack(self):
        a = self.client()
        b = self.client()
        sub_a = a.subscribe(["jobs"], ack=True, prefetch=2)
        sub_b = b.subscribe(["jobs"], ack=True, prefetch=1)
        raiser = self.client()
        seqs = [raiser.raise_signal("jobs", str(i)) for i in range(3)]
        got_a = [sub_a.get(timeout=5), sub_a.get(timeout=5)]
        got_b = sub_b.get(timeout=5)
        self.assertEqual(sorted([e.seq for e in got_a] + [got_b.seq]), seqs)
        self.assertEqual([e.delivery for e in got_a], [1, 1])
        # b hands its event back: a is full (prefetch 2), so b gets it again, delivery 2.
        self.assertEqual(b.nack(got_b), {})
        again = sub_b.get(timeout=5)
        self.assertEqual((again.seq, again.delivery, again.redelivered), (got_b.seq, 2, True))
        b.send_acks([again])  # a notification: no reply
        self.assertEqual(a.ack(got_a + [12345]), {"settled": 2, "not_held": [12345]})
        wait_until(lambda: all(c["unacked"] == 0 for c in raiser.status()["clients_detail"]))


if __name__ == "__main__":
    unittest.main()

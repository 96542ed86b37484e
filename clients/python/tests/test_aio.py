"""tocsin.aio.Client against a real tocsind: every method as a coroutine, async for."""

import asyncio
import json
import os
import unittest

from tocsind_fixture import DaemonTestCase, client_named, raise_many

import tocsin
import tocsin.aio


class AioTest(DaemonTestCase):

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 20))

    def test_methods(self):
        async def body():
            async with tocsin.aio.Client(self.path) as c:
                hello = await c.hello(name="aio", group="g")
                self.assertEqual((hello["name"], hello["group"]), ("aio", "g"))
                self.assertEqual((await c.version())["protocol"], 1)
                self.assertEqual((await c.status())["pid"], self.daemon.pid)
                table = {e["signal"]: e for e in await c.table()}
                self.assertEqual(table[17]["name"], "jobs")
                self.assertIsInstance(await c.metrics(), str)

                # raise + async for over a broadcast subscription
                sub = await c.subscribe(["news"])
                self.assertIsInstance(sub.id, int)
                seq = await c.raise_signal("news", "hi")
                async for ev in sub:
                    self.assertEqual((ev.seq, ev.signal, ev.name, ev.payload),
                                     (seq, 18, "news", "hi"))
                    self.assertEqual(ev.source, tocsin.Source("raise", "aio"))
                    break
                await sub.unsubscribe()

                # wait: timeout, then an event raised while waiting
                self.assertIsNone(await c.wait("loose", timeout=0.05))
                waiting = asyncio.ensure_future(c.wait("loose", timeout=10))
                while (await c.status())["waiters"] != 1:
                    await asyncio.sleep(0.01)
                seq = await c.raise_signal("loose", "w")
                ev = await waiting
                self.assertEqual((ev.seq, ev.payload), (seq, "w"))

                # register / unregister, add_timer, add_rb_timer, remove_source
                self.assertEqual(await c.register(40, "subscriber"), {})
                events = []
                for add, kind in ((c.add_timer, "timer"), (c.add_rb_timer, "rb_timer")):
                    sid = await add(40, 0.01, iterations=1, id="aio-" + kind)
                    self.assertEqual(sid, "aio-" + kind)
                async for ev in c.subscribe([40], ack=True):  # subscribes on first use
                    self.assertTrue(ev.ack)
                    await c.ack(ev)
                    events.append(ev)
                    if len(events) == 2:
                        break
                self.assertEqual(sorted(e.source.kind for e in events), ["rb_timer", "timer"])
                with self.assertRaises(tocsin.RpcError) as cm:
                    await c.ack(events[0])
                self.assertEqual(cm.exception.code, tocsin.NO_SUCH_EVENT)
                sid = await c.add_timer(40, "1h")
                self.assertEqual(await c.remove_source(sid), {})
                with self.assertRaises(tocsin.RpcError) as cm:
                    await c.remove_source(sid)
                self.assertEqual(cm.exception.code, tocsin.NO_SUCH_EVENT)
                self.assertEqual(await c.unregister(40, "subscriber"), {})

                with self.assertRaises(tocsin.RpcError) as cm:
                    await c.raise_signal("nope")
                self.assertEqual(cm.exception.code, tocsin.UNKNOWN_SIGNAL)
        self.run_async(body())

    def test_add_cron_and_file_monitor(self):
        async def body():
            async with tocsin.aio.Client(self.path) as c:
                self.assertEqual(await c.add_cron(41, "@hourly", tz="UTC", id="hourly"), "hourly")
                with self.assertRaises(tocsin.RpcError) as cm:
                    await c.add_cron(41, "61 * * * *")
                self.assertEqual(cm.exception.code, tocsin.INVALID_PARAMS)
                self.assertIn("column 1", cm.exception.message)
                self.assertEqual(await c.remove_source("hourly"), {})
                sid = await c.add_file_monitor(42, "/tmp", recursive=False, settle="50ms")
                self.assertEqual(await c.remove_source(sid), {})
        self.run_async(body())

    def test_one_of_redelivered_when_not_acked(self):
        async def body():
            async with tocsin.aio.Client(self.path) as c:
                sub = c.subscribe("jobs", ack=True)
                await sub
                seq = await c.raise_signal("jobs")
                first = await sub.get(timeout=5)
                again = await sub.get(timeout=5)
                self.assertEqual((first.seq, again.seq), (seq, seq))
                self.assertTrue(again.redelivered)
                await c.ack(again)
        self.run_async(body())

    def test_events_longer_than_a_read(self):
        from tocsin._common import READ_SIZE
        payloads = ["a" * 65000, "b", "\u00e9\n" * 20000, "c" * (READ_SIZE - 100)]

        async def body():
            async with tocsin.aio.Client(self.path) as c:
                sub = await c.subscribe(["news"])
                for p in payloads:
                    await c.raise_signal("news", p)
                got = []
                async for ev in sub:
                    got.append(ev.payload)
                    if len(got) == len(payloads):
                        break
                self.assertEqual(got, payloads)
        self.run_async(body())

    def test_connection_lost(self):
        async def body():
            with self.assertRaises(tocsin.ConnectionLost):
                await tocsin.aio.Client(os.path.join(self.daemon.dir, "x.sock")).connect()
            c = await tocsin.aio.Client(self.path).connect()
            sub = await c.subscribe("news")
            waiting = asyncio.ensure_future(c.wait("loose", timeout=30))
            while (await c.status())["waiters"] != 1:
                await asyncio.sleep(0.01)
            await asyncio.get_running_loop().run_in_executor(None, self.daemon.stop)
            with self.assertRaises(tocsin.ConnectionLost):
                await waiting
            self.assertEqual([ev async for ev in sub], [])
            with self.assertRaises(tocsin.ConnectionLost):
                await c.version()
            await c.close()
        self.run_async(body())


class AioCreditTest(DaemonTestCase):
    """Credit and nack over asyncio, with an ack timeout that cannot fire during the test."""

    CONFIG = """
    limits: {ack_timeout: 60s}
    signals:
      17: {name: jobs, handlers: [{target: subscriber}]}
    """

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 20))

    def test_prefetch_nack_and_acks_as_a_notification(self):
        async def body():
            async with tocsin.aio.Client(self.path) as c:
                sub = c.subscribe("jobs", ack=True, prefetch=1)
                await sub
                seq = await c.raise_signal("jobs")
                first = await sub.get(timeout=5)
                self.assertEqual((first.seq, first.delivery), (seq, 1))
                self.assertEqual(await c.nack(first), {})
                again = await sub.get(timeout=5)  # the only candidate: back to us
                self.assertEqual((again.seq, again.delivery), (seq, 2))
                await c.send_acks([again])
                st = await c.status()
                self.assertEqual([cl["prefetch"] for cl in st["clients_detail"]], [1])
        self.run_async(body())


class AioRunTest(DaemonTestCase):
    """tocsin.aio.run(): the same decorators served with asyncio."""

    def setUp(self):
        super().setUp()
        tocsin.clear()
        self.addCleanup(tocsin.clear)

    def test_run_async_handlers_raise_redeliver_timer_reconnect(self):
        calls = []
        ticks = []

        @tocsin.signal("work")
        async def flaky(ev):
            await asyncio.sleep(0)
            calls.append(ev)
            if len(calls) == 1:
                raise RuntimeError("first time fails")

        @tocsin.rbtimer(0.05)
        def tick(ev):
            ticks.append(ev)

        async def until(cond, what, timeout=15):
            deadline = asyncio.get_running_loop().time() + timeout
            while not cond():
                if asyncio.get_running_loop().time() > deadline:
                    self.fail("timed out waiting for " + what)
                await asyncio.sleep(0.01)

        async def body():
            stop, ready = asyncio.Event(), asyncio.Event()
            task = asyncio.ensure_future(tocsin.aio.run(self.path, stop_event=stop,
                                                        ready=ready, name="aio-run"))
            await until(lambda: ready.is_set() or task.done(), "run() to set up")
            async with tocsin.aio.Client(self.path) as c:
                with self.assertLogs("tocsin", "ERROR"):
                    seq = await c.raise_signal("work", "p")
                    await until(lambda: len(calls) >= 2, "the redelivery")
                self.assertEqual([e.seq for e in calls], [seq, seq])
                self.assertTrue(calls[1].redelivered)
                await until(lambda: len(ticks) >= 2, "rb_timer events")
                self.assertEqual(ticks[0].source.kind, "rb_timer")
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.daemon.stop)
            await loop.run_in_executor(None, self.daemon.start)
            async with tocsin.aio.Client(self.path) as c:
                seq = await c.raise_signal("work", "after restart")
                await until(lambda: len(calls) >= 3, "the event after the restart")
                self.assertEqual((calls[2].seq, calls[2].payload), (seq, "after restart"))
                mark = len(ticks)
                await until(lambda: len(ticks) >= mark + 2, "rb_timer events after restart")
            tocsin.stop()
            await asyncio.wait_for(task, 10)
        self.run_async(body())

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 40))

    def test_run_reports_a_source_the_daemon_refuses(self):
        for deco, says in ((tocsin.cron("*/5 * 32 * *"), "day-of-month 32"),
                           (tocsin.filemon("relative/path"), "an absolute path")):
            tocsin.clear()
            deco(lambda ev: None)
            with self.assertRaises(tocsin.RpcError) as cm:
                self.run_async(tocsin.aio.run(self.path))
            self.assertEqual(cm.exception.code, tocsin.INVALID_PARAMS)
            self.assertIn(says, cm.exception.message)


class AioRuntimeTest(DaemonTestCase):
    """tocsin.aio.run() as a worker pool: concurrency, prefetch, batched acks, nack, dead
    letters and shared sources. The ack timeout (60 s) cannot fire during a test: whatever is
    redelivered here was nacked, and whatever is settled was acked."""

    CONFIG = """
    limits: {ack_timeout: 60s}
    signals:
      30: {name: jobs, max_deliveries: 3, dead_letter: 31, handlers: [{target: subscriber}]}
      31: {name: jobs-failed, handlers: [{target: subscribers}]}
      32: {name: news, handlers: [{target: subscribers}]}
    """

    def setUp(self):
        super().setUp()
        tocsin.clear()
        self.addCleanup(tocsin.clear)

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 30))

    async def until(self, cond, what, timeout=15):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not cond():
            if loop.time() > deadline:
                self.fail("timed out waiting for " + what)
            await asyncio.sleep(0.005)

    async def status_until(self, read, done, what, timeout=15):
        """Reads ``await read()`` again until ``done(value)``; fails naming ``what`` and the last
        value at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        value = await read()
        while not done(value):
            if loop.time() > deadline:
                self.fail("timed out waiting for %s; last seen %r" % (what, value))
            await asyncio.sleep(0.005)
            value = await read()
        return value

    async def start(self, **kw):
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.ensure_future(tocsin.aio.run(self.path, stop_event=stop, ready=ready,
                                                    **kw))
        await self.until(lambda: ready.is_set() or task.done(), "run() to set up")
        if task.done():
            task.result()  # raises what ended it
        return stop, task

    def test_handlers_run_concurrently_up_to_concurrency_and_acks_are_batched(self):
        gate = None
        running, most, handled = [0], [0], []

        @tocsin.signal("jobs")
        async def job(ev):
            running[0] += 1
            most[0] = max(most[0], running[0])
            try:
                if ev.payload == "block":
                    await gate.wait()
                else:
                    await asyncio.sleep(0)
                handled.append(ev.seq)
            finally:
                running[0] -= 1

        async def body():
            nonlocal gate
            gate = asyncio.Event()
            stop, task = await self.start(name="aio-pool", concurrency=3)
            async with tocsin.aio.Client(self.path) as c:
                for _ in range(3):
                    await c.raise_signal("jobs", "block")
                await self.until(lambda: running[0] == 3, "three handlers running at once")
                seqs = [await c.raise_signal("jobs", "n%d" % i) for i in range(200)]

                async def pool():
                    st = await c.status()
                    return [x for x in st["clients_detail"] if x["name"] == "aio-pool"][0]
                # the prefetch follows the concurrency; the pool holds what it was given
                self.assertEqual((await pool())["prefetch"], 48)
                held = await self.status_until(pool, lambda p: p["unacked"] == 48,
                                               "the pool to hold its 48")
                self.assertEqual(held["unacked"], 48)
                self.assertEqual(running[0], 3, "a fourth handler started")
                gate.set()
                await self.until(lambda: len(handled) == 203, "every event handled")
                self.assertEqual(len(set(handled)), 203, "an event handled twice")
                self.assertEqual(set(seqs) - set(handled), set())
                self.assertEqual(most[0], 3)
                # every ack went out (as notifications, batched): nothing is held any more
                done = await self.status_until(pool, lambda p: p["unacked"] == 0, "every ack")
                self.assertEqual(done["unacked"], 0)
                entry = [e for e in await c.table() if e["signal"] == 30][0]
                self.assertEqual(entry["delivered"], 203)
            stop.set()
            await asyncio.wait_for(task, 10)
        self.run_async(body())

    def test_a_failing_handler_nacks_at_once_and_ends_on_the_dead_letter_signal(self):
        deliveries = []

        @tocsin.signal("jobs")
        def poison(ev):
            deliveries.append(ev.delivery)
            raise ValueError("cannot handle " + ev.payload)

        async def body():
            async with tocsin.aio.Client(self.path) as watcher:
                dead = watcher.subscribe("jobs-failed")
                await dead
                stop, task = await self.start(name="aio-poison", concurrency=2)
                with self.assertLogs("tocsin", "ERROR") as logs:
                    seq = await watcher.raise_signal("jobs", "bad")
                    ev = await dead.get(timeout=15)
                self.assertIsNotNone(ev, "no dead letter (a nack must not wait the 60 s ack "
                                         "timeout)")
                self.assertEqual(deliveries, [1, 2, 3])
                letter = json.loads(ev.payload)
                self.assertEqual((letter["event"]["seq"], letter["deliveries"], letter["reason"]),
                                 (seq, 3, "nack"))
                self.assertIn("nacked", logs.output[0])
                stop.set()
                await asyncio.wait_for(task, 10)
        self.run_async(body())

    async def held_burst(self, seen, **kw):
        """run() with one worker whose ``news`` handler waits for the returned gate, and
        max_queued 100; 20,000 news events raised; returns once the daemon holds > 5,000 of
        them for the connection: (gate, stop, task, client, row(), seqs raised)."""
        gate = asyncio.Event()

        @tocsin.signal("news")
        async def news(ev):
            await gate.wait()
            seen.append(ev.seq)

        stop, task = await self.start(concurrency=1, max_queued=100, name="slow-aio", **kw)
        c = await tocsin.aio.Client(self.path).connect()

        async def row():
            return client_named(await c.status(), "slow-aio")
        loop = asyncio.get_running_loop()
        raised = await loop.run_in_executor(None, raise_many, self.path, 32, 20000)
        await self.status_until(row, lambda r: r["queue"] > 5000, "the daemon holding")
        return gate, stop, task, c, row, raised

    def test_a_broadcast_burst_waits_in_the_daemon(self):
        # Broadcast has no credit: with max_queued 100, the reader stops while the handler is
        # held, and the daemon keeps the burst for this connection (without the bound the
        # reader took all 20,000 into its queue and the daemon's queue stayed near 0).
        seen = []

        async def body():
            gate, stop, task, c, row, raised = await self.held_burst(seen)
            gate.set()
            await self.until(lambda: len(seen) == len(raised), "every event handled", 60)
            self.assertEqual(sorted(seen), raised)
            self.assertEqual((await row())["dropped"], 0)
            stop.set()
            await task
            await c.close()
        asyncio.run(asyncio.wait_for(body(), 90))

    def test_stopping_while_held_back_cleans_up_at_once(self):
        # Per-process sources are removed on stop with requests whose replies come behind the
        # held-back events, after the workers are gone: the reader must read on (it waited for
        # room that nobody would make, and the cleanup timed out after 30 s).
        async def body():
            tocsin.timer(3600)(lambda ev: None)  # removed on stop: shared=False
            gate, stop, task, c, row, raised = await self.held_burst([], shared=False)
            self.assertEqual(len((await c.status())["sources"]["list"]), 1)
            stop.set()
            gate.set()
            await asyncio.wait_for(task, 15)  # (the cleanup's request timeout is 30 s)
            self.assertEqual((await c.status())["sources"]["list"], [])
            await c.close()
        asyncio.run(asyncio.wait_for(body(), 90))

    def test_two_runs_declaring_one_timer_make_one_source(self):
        self.require_shared()
        ticks = []

        @tocsin.timer(0.02)
        def tick(ev):
            ticks.append(ev.seq)

        async def body():
            stop1, task1 = await self.start(name="aio-a")
            stop2, task2 = await self.start(name="aio-b")
            async with tocsin.aio.Client(self.path) as c:
                st = await c.status()
                ids = [s["id"] for s in st["sources"]["list"]]
                h = [h for h in tocsin.decorators.handlers() if h.func is tick][0]
                self.assertEqual(ids.count(h.id), 1, ids)
                await self.until(lambda: len(ticks) >= 10, "ten ticks")
                self.assertEqual(len(set(ticks)), len(ticks), "a tick handled twice")
            for stop, task in ((stop1, task1), (stop2, task2)):
                stop.set()
                await asyncio.wait_for(task, 10)
        self.run_async(body())


if __name__ == "__main__":
    unittest.main()

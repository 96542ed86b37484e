"""gunicorn (Debian's, under /usr/bin/python3) with 4 workers serving an application that
declares a timer, a cron job and a one-of handler, against the real daemon: one timer and one
cron job in `status` (shared sources), 1,000 one-of events each handled once while the workers
answer HTTP requests, and a worker killed with -9 while it holds events: nothing lost, the only
second deliveries those of the events it held. The same with `--preload`, where the master
(which imports the application) must not serve anything itself. And the hooks the README
recommends for the tocsin decorators (tocsin.contrib.gunicorn)."""

import collections
import json
import os
import re
import signal as _signal
import subprocess
import textwrap
import unittest
import urllib.request

import system_python
from system_python import SYSTEM_PYTHON
from tocsind_fixture import DaemonTestCase, wait_until

# The uWSGI drop-ins for the timer and the cron job (their runtime starts by itself in each
# worker), a tocsin handler for the one-of signal (it needs the event's payload). A "k" event is
# held while the file `hold` exists, after it was recorded: a worker killed then has handled
# events it never acked.
DROPIN_APP = """
    import json
    import os
    import time

    import tocsin
    from tocsin.uwsgidecorators import cron, timer

    OUT = os.environ["GAPP_OUT"]
    HOLD = os.path.join(OUT, "hold")


    @timer(60)
    def every_minute(num):
        pass


    @cron(-1, -1, -1, -1, -1)
    def each_minute(num):
        pass


    @tocsin.signal("jobs")
    def job(event):
        with open(os.path.join(OUT, "%d.seen" % os.getpid()), "a") as f:
            f.write(event.payload + "\\n")
        if event.payload.startswith("k"):
            while os.path.exists(HOLD):  # simulated work, until the test lets it go
                time.sleep(0.005)


    def app(environ, start_response):
        body = json.dumps({"pid": os.getpid()}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    """

# Only tocsin's own decorators; gunicorn.conf.py starts the runtime in each worker.
NATIVE_APP = """
    import json
    import os

    import tocsin

    OUT = os.environ["GAPP_OUT"]


    @tocsin.timer(60)
    def tick(event):
        pass


    @tocsin.cron("* * * * *")
    def minute(event):
        pass


    @tocsin.signal("jobs")
    def job(event):
        with open(os.path.join(OUT, "%d.seen" % os.getpid()), "a") as f:
            f.write(event.payload + "\\n")


    def app(environ, start_response):
        body = json.dumps({"pid": os.getpid()}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    """

GUNICORN_CONF = """
    from tocsin.contrib.gunicorn import post_worker_init, worker_exit  # noqa: F401
    """


def children(pid):
    """The pids whose parent is ``pid``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(name))
    return sorted(out)


def setUpModule():
    system_python.require("gunicorn")


class GunicornTest(DaemonTestCase):
    CONFIG = """
        signals:
          40: {name: jobs, handlers: [{target: subscriber}]}
        """

    def setUp(self):
        super().setUp()
        self.out = os.path.join(self.daemon.dir, "out")
        os.mkdir(self.out)
        self.c = self.client()

    def gunicorn(self, module, source, workers, *args):
        with open(os.path.join(self.daemon.dir, module + ".py"), "w") as f:
            f.write(textwrap.dedent(source))
        self.glog = os.path.join(self.daemon.dir, "gunicorn.log")
        log = open(self.glog, "wb")
        self.addCleanup(log.close)
        env = system_python.env(PYTHONPATH=self.daemon.dir, TOCSIN_SOCKET=self.path,
                                GAPP_OUT=self.out)
        proc = subprocess.Popen(
            [SYSTEM_PYTHON, "-m", "gunicorn", "--workers", str(workers),
             "--bind", "127.0.0.1:0", "--graceful-timeout", "10", "--log-level", "info"]
            + list(args) + ["%s:app" % module],
            cwd=self.daemon.dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        self.master = proc

        def stop():  # the master and the workers it started, by pid
            if proc.poll() is None:
                pids = children(proc.pid)
                proc.kill()
                for pid in pids:
                    try:
                        os.kill(pid, _signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            proc.wait()
        self.addCleanup(stop)
        port = wait_until(lambda: self.alive() and re.search(
            r"Listening at: http://127\.0\.0\.1:(\d+)", self.log()), 30, "gunicorn to listen")
        self.url = "http://127.0.0.1:%s/" % port.group(1)
        self.wait_workers(workers)
        return proc

    def alive(self):
        self.assertIsNone(self.master.poll(), "gunicorn exited:\n" + self.log())
        return True

    def log(self):
        with open(self.glog, errors="replace") as f:
            return f.read()

    def clients(self):
        return self.c.status()["clients_detail"]

    def wait_workers(self, n):
        """Until n workers of the master are connected, each with its three subscriptions (the
        one-of signal, the timer's, the cron job's); returns their pids."""
        def ready():
            self.alive()
            pids = children(self.master.pid)
            subs = {x["pid"]: x["subscriptions"] for x in self.clients()}
            return len(pids) == n and all(subs.get(p, 0) >= 3 for p in pids) and pids
        return wait_until(ready, 30, "%d workers subscribed" % n)

    def seen(self):
        """{pid: [payload, ...]} of every worker that handled something."""
        out = {}
        for name in os.listdir(self.out):
            if name.endswith(".seen"):
                with open(os.path.join(self.out, name)) as f:
                    out[int(name[:-5])] = f.read().split()
        return out

    def handled(self, prefix):
        return collections.Counter(p for lines in self.seen().values() for p in lines
                                   if p.startswith(prefix))

    def get(self):
        with urllib.request.urlopen(self.url, timeout=10) as r:
            self.assertEqual(r.status, 200)
            return json.loads(r.read())["pid"]

    def settled(self):
        return (all(x["unacked"] == 0 for x in self.clients())
                and self.c.status()["backlog"] == 0)

    def assert_one_timer_and_one_cron(self, timer_id, cron_id, declarers):
        sources = self.c.status()["sources"]["list"]
        timers = [s for s in sources if s["kind"] == "timer"]
        crons = [s for s in sources if s["kind"] == "cron"]
        self.assertEqual([(s["id"], s["declarers"], s["lifetime"]) for s in timers],
                         [(timer_id, declarers, "clients")])
        self.assertEqual([(s["id"], s["declarers"], s["lifetime"]) for s in crons],
                         [(cron_id, declarers, "clients")])
        self.assertEqual(timers[0]["every_ms"], 60000)

    def assert_master_serves_nothing(self):
        self.assertNotIn(self.master.pid, [x["pid"] for x in self.clients()])

    def four_workers(self, *args):
        self.require_shared()
        self.gunicorn("gapp", DROPIN_APP, 4, *args)
        workers = self.wait_workers(4)
        self.assert_master_serves_nothing()
        self.assert_one_timer_and_one_cron("py:gapp.every_minute", "py:gapp.each_minute", 4)

        # 1,000 one-of events, each handled once, while the workers answer HTTP requests.
        answered = set()
        for i in range(1000):
            self.c.raise_signal("jobs", "a%d" % i)
            if i % 50 == 0:
                answered.add(self.get())
        wait_until(lambda: len(self.handled("a")) == 1000, 30, "1,000 events handled")
        wait_until(self.settled, 10, "every event acked")
        counts = self.handled("a")
        self.assertEqual(set(counts), {"a%d" % i for i in range(1000)})
        self.assertEqual(set(counts.values()), {1})
        self.assertLessEqual(answered, set(workers))
        self.assertLessEqual(set(self.seen()), set(workers))

        # A worker killed with -9 while it holds events: nothing lost.
        hold = os.path.join(self.out, "hold")
        open(hold, "w").close()
        for i in range(1000):
            self.c.raise_signal("jobs", "k%d" % i)
        wait_until(lambda: all(any(p.startswith("k") for p in self.seen().get(pid, []))
                               for pid in workers), 20, "every worker to hold 'k' events")
        victim = workers[0]
        os.kill(victim, _signal.SIGKILL)
        wait_until(lambda: victim not in children(self.master.pid), 10, "the victim to go")
        os.unlink(hold)
        for i in range(10):  # HTTP still answered meanwhile
            self.get()
        wait_until(lambda: len(self.handled("k")) == 1000, 30, "1,000 'k' events handled")
        wait_until(self.settled, 10, "every event acked")
        counts = self.handled("k")
        self.assertEqual(set(counts), {"k%d" % i for i in range(1000)})
        held = [p for p in self.seen()[victim] if p.startswith("k")]
        self.assertTrue(held)
        # A second delivery for exactly the events the victim had started and not acked.
        self.assertEqual({p for p, n in counts.items() if n > 1}, set(held))
        self.assertEqual(set(counts.values()) - {1}, {2})
        # gunicorn replaced it; the new worker joined the same timer and cron job.
        replaced = self.wait_workers(4)
        self.assertNotIn(victim, replaced)
        self.assert_one_timer_and_one_cron("py:gapp.every_minute", "py:gapp.each_minute", 4)
        self.assert_master_serves_nothing()
        self.stop_gunicorn()

    def stop_gunicorn(self):
        self.master.send_signal(_signal.SIGTERM)
        self.assertEqual(self.master.wait(30), 0, self.log())

    def test_four_workers(self):
        self.four_workers()

    def test_four_workers_preload(self):
        self.four_workers("--preload")

    def test_tocsin_decorators_with_the_gunicorn_hooks(self):
        self.require_shared()
        conf = os.path.join(self.daemon.dir, "gunicorn.conf.py")
        with open(conf, "w") as f:
            f.write(textwrap.dedent(GUNICORN_CONF))
        self.gunicorn("napp", NATIVE_APP, 2, "--config", conf, "--preload")
        workers = self.wait_workers(2)
        self.assert_master_serves_nothing()
        self.assert_one_timer_and_one_cron("py:napp.tick", "py:napp.minute", 2)
        for i in range(200):
            self.c.raise_signal("jobs", "n%d" % i)
        self.assertIn(self.get(), workers)
        wait_until(lambda: len(self.handled("n")) == 200, 30, "200 events handled")
        wait_until(self.settled, 10, "every event acked")
        self.assertEqual(set(self.handled("n").values()), {1})
        self.stop_gunicorn()
        wait_until(lambda: [x["pid"] for x in self.clients()] == [os.getpid()], 10,
                   "the workers' connections to close")


if __name__ == "__main__":
    unittest.main()

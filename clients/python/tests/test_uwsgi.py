"""tocsin.uwsgi and tocsin.uwsgidecorators against a real tocsind: uWSGI's documented examples
(the Signals and PythonDecorators pages of uwsgi-docs) run with only their imports changed
(`print` is captured), a test per decorator and per function."""

import json
import os
import tempfile
import textwrap
import threading
import unittest

from tocsind_fixture import DaemonTestCase, wait_until

import tocsin
from tocsin import runtime
import tocsin.uwsgi as tuwsgi
import tocsin.uwsgidecorators as tdeco


class Printed(object):
    def __init__(self):
        self.lines = []
        self.lock = threading.Lock()

    def __call__(self, *args):
        with self.lock:
            self.lines.append(" ".join(str(a) for a in args))

    def has(self, text):
        with self.lock:
            return any(text in line for line in self.lines)


class UwsgiTestCase(DaemonTestCase):

    def setUp(self):
        super().setUp()
        os.environ["TOCSIN_SOCKET"] = self.path
        self.addCleanup(os.environ.pop, "TOCSIN_SOCKET", None)
        tocsin.clear()
        tuwsgi._reset()
        self.addCleanup(self._reset)
        self.printed = Printed()

    def _reset(self):
        rt = runtime.current()
        if rt is not None:
            rt.stop()
        tocsin.clear()
        tuwsgi._reset()
        del tdeco.postfork_chain[:]

    def run_example(self, code, imports):
        """Runs a documented example: its import line replaced by ``imports``."""
        ns = {"print": self.printed, "__name__": "uwsgi_example_%s" % self._testMethodName}
        exec(compile(imports + "\n" + textwrap.dedent(code), "<example>", "exec"), ns)
        rt = runtime.current()
        self.assertIsNotNone(rt, "registration did not start a runtime")
        wait_until(lambda: rt.ready.is_set() and not rt._wake.is_set() or rt.error,
                   what="the runtime's setup")
        self.assertIsNone(rt.error)
        return ns

    def sources(self):
        return self.client().status()["sources"]["list"]


class SignalsPageTest(UwsgiTestCase):
    """docs: Signals.rst."""

    def test_register_signal_worker_and_workers(self):
        self.run_example('''
            def hello_signal(num):
                print("i am the signal %d" % num)

            def hello_signal2(num):
                print("Hi, i am the signal %d" % num)

            # define 2 signal table items (30 and 22)
            uwsgi.register_signal(30, "worker", hello_signal)
            uwsgi.register_signal(22, "workers", hello_signal2)
            ''', "import tocsin.uwsgi as uwsgi")
        table = {e["signal"]: e for e in self.client().table()}
        wait_until(lambda: "target[subscriber]" in
                   {e["signal"]: e for e in self.client().table()}[30]["handlers"],
                   what="the worker target")
        self.assertIn("target[subscribers]", {e["signal"]: e for e in self.client().table()}
                      [22]["handlers"])
        del table
        tuwsgi.signal(30)
        tuwsgi.signal(22)
        wait_until(lambda: self.printed.has("i am the signal 30"), what="signal 30")
        wait_until(lambda: self.printed.has("Hi, i am the signal 22"), what="signal 22")

    def test_add_file_monitor(self):
        self.run_example('''
            def hello_file(num):
                print("/tmp has been modified !!!")

            uwsgi.register_signal(17, "worker", hello_file)
            uwsgi.add_file_monitor(17, "/tmp")
            ''', "import tocsin.uwsgi as uwsgi")
        wait_until(lambda: any(s["kind"] == "file" for s in self.sources()),
                   what="the file monitor")
        with tempfile.NamedTemporaryFile(dir="/tmp", prefix="tocsin-uwsgi-test-"):
            wait_until(lambda: self.printed.has("/tmp has been modified"), what="the handler")

    def test_add_timer_and_add_rb_timer(self):
        self.run_example('''
            def hello_timer(num):
                print("2 seconds elapsed, signal %d raised" % num)

            def oneshot_timer(num):
                print("40 seconds elapsed, signal %d raised. You will never see me again." % num)


            uwsgi.register_signal(26, "worker", hello_timer)
            uwsgi.register_signal(30, "", oneshot_timer)

            uwsgi.add_timer(26, 2) # never-ending timer every 2 seconds
            uwsgi.add_rb_timer(30, 40, 1) # one shot rb timer after 40 seconds
            ''', "import tocsin.uwsgi as uwsgi")
        wait_until(lambda: len(self.sources()) == 2, what="the two timers")
        by_kind = {s["kind"]: s for s in self.sources()}
        self.assertEqual((by_kind["timer"]["signal"], by_kind["timer"]["every_ms"]), (26, 2000))
        self.assertEqual((by_kind["rb_timer"]["signal"], by_kind["rb_timer"]["every_ms"],
                          by_kind["rb_timer"]["iterations"]), (30, 40000, 1))
        wait_until(lambda: self.printed.has("2 seconds elapsed, signal 26 raised"),
                   what="the 2 s timer")

    def test_signal_wait_and_signal_received(self):
        import tocsin.uwsgi as uwsgi
        got = []

        def waiter():
            uwsgi.signal_wait()
            signum = uwsgi.signal_received()
            got.append(signum)
        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        c = self.client()
        wait_until(lambda: c.status()["waiters"] == 1, what="the waiter")
        uwsgi.signal(19)  # "loose": no handler, so it goes to the waiter
        t.join(10)
        self.assertEqual(got, [19])
        self.assertEqual(uwsgi.signal_received(), -1)  # per thread, as per request in uWSGI


class DecoratorsPageTest(UwsgiTestCase):
    """docs: PythonDecorators.rst."""

    IMPORT = "from tocsin.uwsgidecorators import *"

    def test_signal(self):
        self.run_example('''
            @signal(17)
            def my_signal(num):
                print("i am signal %d" % num)
            ''', self.IMPORT)
        tuwsgi.signal(17)
        wait_until(lambda: self.printed.has("i am signal 17"), what="the handler")

    def test_timer(self):
        self.run_example('''
            @timer(3)
            def three_seconds(num):
                print("3 seconds elapsed")
            ''', self.IMPORT)
        wait_until(lambda: self.printed.has("3 seconds elapsed"), 15, "the timer")
        [src] = self.sources()
        self.assertTrue(src["id"].endswith("uwsgi_example_test_timer.three_seconds"), src)

    def test_timer_target_spooler(self):
        self.run_example('''
            @timer(3, target='spooler')
            def hello(signum):
                print("hello")
            ''', self.IMPORT)
        [src] = self.sources()
        entry = next(e for e in self.client().table() if e["signal"] == src["signal"])
        self.assertIn("target[group:spooler]", entry["handlers"])

    def test_rbtimer_and_mstimer_with_signum(self):
        self.run_example('''
            @rbtimer(1)
            def every_second(num):
                print("rb %d" % num)

            @mstimer(50, signum=40)
            def fast(num):
                print("ms %d" % num)
            ''', self.IMPORT)
        wait_until(lambda: self.printed.has("ms 40"), what="the ms timer on signal 40")
        wait_until(lambda: self.printed.has("rb "), what="the rb timer")

    def test_cron(self):
        self.run_example('''
            @cron(59, 3, -1, -1, -1)
            def execute_me_at_three_and_fiftynine(num):
                print("it's 3:59 in the morning")

            @cron(-5, -1, -1, -1, -1)
            def execute_me_every_five_min(num):
                print("5 minutes, what a long time!")
            ''', self.IMPORT)
        crons = sorted(s["schedule"] for s in self.sources() if s["kind"] == "cron")
        self.assertEqual(len(crons), 2, crons)
        self.assertTrue(any("59" in c and "3" in c for c in crons), crons)
        self.assertTrue(any("*/5" in c or "-5" in c for c in crons), crons)

    def test_filemon(self):
        self.run_example('''
            @filemon("/tmp")
            def tmp_has_been_modified(num):
                print("/tmp directory has been modified. Great magic is afoot")
            ''', self.IMPORT)
        with tempfile.NamedTemporaryFile(dir="/tmp", prefix="tocsin-uwsgi-test-"):
            wait_until(lambda: self.printed.has("Great magic is afoot"), what="the handler")

    def test_postfork(self):
        ns = {"print": self.printed}
        exec(self.IMPORT + "\n" + textwrap.dedent('''
            @postfork
            def reconnect_to_db():
                print("reconnect")

            @postfork
            def hello_world():
                print("Hello World")
            '''), ns)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.write(w, json.dumps(self.printed.lines).encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            child = json.loads(f.read())
        os.waitpid(pid, 0)
        self.assertEqual(child, ["reconnect", "Hello World"])
        self.assertEqual(self.printed.lines, [])  # not in the parent

    def test_thread(self):
        done = threading.Event()
        ns = {"print": self.printed, "done": done}
        exec(self.IMPORT + "\n" + textwrap.dedent('''
            @thread
            def a_running_thread_with_args(who):
                print("Hello %s (from arged-thread)" % who)
                done.set()

            a_running_thread_with_args("uWSGI")
            '''), ns)
        wait_until(done.is_set, what="the thread")
        self.assertTrue(self.printed.has("Hello uWSGI (from arged-thread)"))

    def test_get_free_signal(self):
        n = tdeco.get_free_signal()
        self.assertEqual(n, 0)
        tuwsgi.register_signal(n, "", lambda num: None)
        self.assertEqual(tdeco.get_free_signal(), 1)

    def test_unsupported_say_what_to_use(self):
        for name in ("spool", "spoolforever", "spoolraw", "mulefunc", "rpc", "lock",
                     "harakiri", "mule", "farm"):
            with self.assertRaises(tdeco.NotSupported) as cm:
                getattr(tdeco, name)(lambda: None)
            self.assertIn("no tocsin counterpart", str(cm.exception))
        with self.assertRaises(tuwsgi.NotSupported):
            tuwsgi.lock()


class UwsgiFunctionsTest(UwsgiTestCase):

    def test_signal_registered(self):
        self.assertIsNone(tuwsgi.signal_registered(33))
        self.assertTrue(tuwsgi.signal_registered(17))  # the daemon's table has a handler
        tuwsgi.register_signal(33, "worker", lambda num: None)
        self.assertTrue(tuwsgi.signal_registered(33))
        with self.assertRaises(ValueError):
            tuwsgi.register_signal(33, "worker", lambda num: None)
        with self.assertRaises(OverflowError):
            tuwsgi.register_signal(256, "worker", lambda num: None)

    def test_targets(self):
        t = tuwsgi.target_of
        self.assertEqual([t(""), t("worker"), t("worker0"), t("workers"), t("active-workers"),
                          t("worker3"), t("mule2"), t("mule"), t("spooler"), t("farm_x"),
                          t("mules")],
                         ["subscriber", "subscriber", "subscriber", "subscribers",
                          "subscribers", "subscriber:worker3", "subscriber:mule2",
                          "group:mule", "group:spooler", "group:farm_x", "subscribers"])
        with self.assertRaises(ValueError):
            t("nobody")

    def test_worker_n_target(self):
        tuwsgi.configure(worker_id=2)
        got = []
        tuwsgi.register_signal(34, "worker2", got.append)
        rt = runtime.current()
        wait_until(rt.ready.is_set, what="setup")
        self.assertEqual(rt.name, "worker2")
        tuwsgi.signal(34)
        wait_until(lambda: got == [34], what="the handler on worker2")

    def test_add_ms_timer_and_add_cron(self):
        got = []
        tuwsgi.register_signal(35, "", got.append)
        self.assertIsNone(tuwsgi.add_ms_timer(35, 30))
        self.assertTrue(tuwsgi.add_cron(36, -1, -1, -1, -1, -1))
        wait_until(lambda: len(got) >= 2, what="two ms-timer events")
        self.assertEqual(set(got), {35})
        wait_until(lambda: any(s["kind"] == "cron" and s["signal"] == 36
                               for s in self.sources()), what="the cron job")

    def test_timers_are_one_for_many_processes(self):
        self.require_shared()
        tuwsgi.register_signal(37, "", lambda num: None)
        tuwsgi.add_timer(37, 60)
        other = tocsin.Client(self.path)  # another process adding the same timer joins it
        self.addCleanup(other.close)
        rt = runtime.current()
        wait_until(lambda: any(s["signal"] == 37 for s in self.sources()), what="the timer")
        [src] = [s for s in self.sources() if s["signal"] == 37]
        res = other.call("add_timer", {"id": src["id"], "signal": 37, "every": 60000,
                                       "lifetime": "clients", "linger": int(rt.linger * 1000)})
        self.assertTrue(res.get("joined"), res)


if __name__ == "__main__":
    unittest.main()

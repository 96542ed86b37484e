"""tocsin.contrib.django in a real Django project (Debian's python3-django, run under
/usr/bin/python3): the test writes the project in a temporary directory (settings, an app with
a model whose method sends a Django signal, a tocsin_handlers module, a sqlite database) and runs
its migrations; then `forward` raises the tocsin signal after the commit and `manage.py
tocsin_worker` handles it, a rolled-back transaction raises nothing, and the eager mode runs in a
Django TestCase (`manage.py test`, no daemon)."""

import json
import os
import signal as _signal
import sqlite3
import subprocess
import tempfile
import textwrap
import unittest

import system_python
from system_python import SYSTEM_PYTHON
from tocsind_fixture import DaemonTestCase, wait_until

FILES = {
    "manage.py": """
        import os
        import sys

        if __name__ == "__main__":
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")
            from django.core.management import execute_from_command_line
            execute_from_command_line(sys.argv)
        """,
    "shopsite/__init__.py": "",
    "shopsite/settings.py": """
        import os

        BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        SECRET_KEY = "tocsin-test"
        DEBUG = False
        ALLOWED_HOSTS = ["*"]
        USE_TZ = True
        INSTALLED_APPS = ["tocsin.contrib.django", "shop"]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                                 "NAME": os.path.join(BASE_DIR, "db.sqlite3"),
                                 "OPTIONS": {"timeout": 20}}}
        DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
        # SOCKET left out: $TOCSIN_SOCKET (the test's daemon), else /run/tocsin/tocsin.sock
        TOCSIN = {"NAME": "shop-worker", "CONCURRENCY": 2}
        """,
    "shop/__init__.py": "",
    "shop/signals.py": """
        import django.dispatch

        order_paid = django.dispatch.Signal()  # sent with instance=the order
        """,
    "shop/apps.py": """
        from django.apps import AppConfig


        class ShopConfig(AppConfig):
            name = "shop"

            def ready(self):
                from tocsin.contrib.django import forward
                from .models import Order
                from .signals import order_paid
                forward(order_paid, "orders", sender=Order)
        """,
    "shop/models.py": """
        from django.db import models

        from .signals import order_paid


        class Order(models.Model):
            item = models.CharField(max_length=50)
            paid = models.BooleanField(default=False)

            def mark_paid(self):
                self.paid = True
                self.save(update_fields=["paid"])
                order_paid.send(sender=Order, instance=self)


        class Handled(models.Model):
            seq = models.BigIntegerField(unique=True)
            order_id = models.IntegerField()
            payload = models.TextField()
            fresh_connection = models.BooleanField()
        """,
    "shop/tocsin_handlers.py": """
        import json

        from django.db import connection

        import tocsin

        from .models import Handled


        @tocsin.signal("orders")
        def order_paid(event):
            # True when no database connection was left open in this thread by the previous
            # handler (tocsin_worker closes them around each call, CONN_MAX_AGE being 0).
            fresh = connection.connection is None
            data = json.loads(event.payload)
            Handled.objects.get_or_create(seq=event.seq, defaults={  # idempotent: at-least-once
                "order_id": data["pk"], "payload": event.payload, "fresh_connection": fresh})
        """,
    "shop/tests.py": """
        import json

        from django.db import transaction
        from django.test import TestCase, override_settings

        from tocsin.contrib.django import eager_events, raise_signal

        from .models import Handled, Order


        # No daemon: the socket does not exist, and nothing may connect to it.
        @override_settings(TOCSIN={"EAGER": True, "SOCKET": "/nonexistent/tocsin.sock"})
        class EagerTest(TestCase):
            def setUp(self):
                del eager_events[:]

            def test_paid_order_handled_after_commit(self):
                order = Order.objects.create(item="book")
                with self.captureOnCommitCallbacks(execute=True) as callbacks:
                    order.mark_paid()
                    self.assertEqual(Handled.objects.count(), 0)  # not before the commit
                self.assertEqual(len(callbacks), 1)
                handled = Handled.objects.get()
                self.assertEqual(handled.order_id, order.pk)
                self.assertEqual(json.loads(handled.payload),
                                 {"sender": "shop.Order", "pk": order.pk})
                self.assertEqual([(e.name, e.payload) for e in eager_events],
                                 [("orders", handled.payload)])

            def test_rolled_back_raises_nothing(self):
                order = Order.objects.create(item="pen")
                with self.captureOnCommitCallbacks(execute=True) as callbacks:
                    try:
                        with transaction.atomic():
                            order.mark_paid()
                            raise RuntimeError("payment refused")
                    except RuntimeError:
                        pass
                self.assertEqual(callbacks, [])
                self.assertEqual(Handled.objects.count(), 0)
                self.assertEqual(eager_events, [])

            def test_raise_signal_calls_the_handler_at_once(self):
                seq = raise_signal("orders", {"pk": 7})
                handled = Handled.objects.get()
                self.assertEqual((handled.seq, handled.order_id), (seq, 7))
        """,
}


class DjangoProject(object):
    """The project, written and migrated once for this module's tests."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tocsin-django-")
        self.dir = self._tmp.name
        for rel, text in FILES.items():
            path = os.path.join(self.dir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(textwrap.dedent(text).lstrip())
        self.db = os.path.join(self.dir, "db.sqlite3")
        self.manage("makemigrations", "shop")
        self.manage("migrate", "-v", "0")

    def env(self, socket_path=None):
        return system_python.env(TOCSIN_SOCKET=socket_path or "/nonexistent/tocsin.sock")

    def manage(self, *args, socket_path=None):
        """Runs ``manage.py ARGS`` to the end; fails the test on a non-zero exit."""
        p = subprocess.run([SYSTEM_PYTHON, "manage.py"] + list(args), cwd=self.dir,
                           env=self.env(socket_path), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
        if p.returncode != 0:
            raise AssertionError("manage.py %s exited with %d:\n%s\n%s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def shell(self, code, socket_path):
        return self.manage("shell", "-c", textwrap.dedent(code), socket_path=socket_path).stdout

    def rows(self, query, *params):
        db = sqlite3.connect(self.db, timeout=20)
        try:
            return db.execute(query, params).fetchall()
        finally:
            db.close()

    def cleanup(self):
        self._tmp.cleanup()


_project = None


def setUpModule():
    global _project
    system_python.require("django")
    _project = DjangoProject()


def tearDownModule():
    if _project is not None:
        _project.cleanup()


class DjangoDaemonTest(DaemonTestCase):
    CONFIG = """
        signals:
          40: {name: orders, handlers: [{target: subscriber}]}
        """

    def setUp(self):
        super().setUp()
        self.project = _project

    def worker(self, *args):
        log = open(os.path.join(self.daemon.dir, "worker.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen([SYSTEM_PYTHON, "manage.py", "tocsin_worker"] + list(args),
                                cwd=self.project.dir, env=self.project.env(self.path),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.addCleanup(stop)
        return proc

    def worker_log(self):
        with open(os.path.join(self.daemon.dir, "worker.log"), errors="replace") as f:
            return f.read()

    def test_forward_then_tocsin_worker_handles_it(self):
        proc = self.worker("--concurrency", "1")
        c = self.client()

        def subscribed():
            self.assertIsNone(proc.poll(), self.worker_log())
            return any(x["name"] == "shop-worker" and x["subscriptions"] >= 1
                       for x in c.status()["clients_detail"])
        wait_until(subscribed, 30, "tocsin_worker to subscribe")
        out = self.project.shell("""
            from shop.models import Order
            for item in ("book", "lamp"):
                order = Order.objects.create(item=item)
                order.mark_paid()  # sends order_paid; forward raises "orders" (autocommit)
                print(order.pk)
            """, self.path)
        pks = [int(x) for x in out.split()]
        query = "SELECT order_id, payload, fresh_connection FROM shop_handled WHERE order_id IN " \
                "(?, ?) ORDER BY order_id"
        rows = wait_until(lambda: len(self.project.rows(query, *pks)) == 2
                          and self.project.rows(query, *pks), 20, "the worker's rows")
        self.assertEqual([(r[0], json.loads(r[1])) for r in rows],
                         [(pk, {"sender": "shop.Order", "pk": pk}) for pk in pks])
        # One handler thread: the second call found no connection left over by the first.
        self.assertEqual([r[2] for r in rows], [1, 1])
        wait_until(lambda: all(x["unacked"] == 0 for x in c.status()["clients_detail"]),
                   what="the acks")
        os.kill(proc.pid, _signal.SIGTERM)
        self.assertEqual(proc.wait(30), 0, self.worker_log())
        self.assertIn("serving 1 handler(s) with 1 thread(s)", self.worker_log())

    def test_rolled_back_transaction_raises_nothing(self):
        out = self.project.shell("""
            from django.db import transaction
            from shop.models import Order
            refused = Order.objects.create(item="pen")
            try:
                with transaction.atomic():
                    refused.mark_paid()
                    raise RuntimeError("payment refused")
            except RuntimeError:
                pass
            with transaction.atomic():
                paid = Order.objects.create(item="ink")
                paid.mark_paid()
            print(refused.pk, paid.pk)
            """, self.path)
        refused, paid = [int(x) for x in out.split()]
        c = self.client()
        entry = next(e for e in c.table() if e["signal"] == 40)
        self.assertEqual(entry["raised"], 1)  # the committed one only
        sub = c.subscribe(["orders"], ack=True)
        ev = sub.get(timeout=10)  # waiting in the backlog
        self.assertIsNotNone(ev)
        self.assertEqual(json.loads(ev.payload), {"sender": "shop.Order", "pk": paid})
        c.ack(ev)
        self.assertIsNone(sub.get(timeout=0.3))  # nothing for the rolled-back order

    def test_worker_refuses_eager_mode(self):
        with open(os.path.join(self.project.dir, "shopsite", "eager_settings.py"), "w") as f:
            f.write("from .settings import *  # noqa\nTOCSIN = {'EAGER': True}\n")
        p = subprocess.run([SYSTEM_PYTHON, "manage.py", "tocsin_worker",
                            "--settings", "shopsite.eager_settings"],
                           cwd=self.project.dir, env=self.project.env(self.path),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("EAGER", p.stderr)


class DjangoEagerTest(unittest.TestCase):
    def test_eager_mode_in_a_django_testcase(self):
        p = subprocess.run([SYSTEM_PYTHON, "manage.py", "test", "shop", "-v", "2"],
                           cwd=_project.dir, env=_project.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("Ran 3 tests", p.stdout)
        for name in ("test_paid_order_handled_after_commit", "test_rolled_back_raises_nothing",
                     "test_raise_signal_calls_the_handler_at_once"):
            self.assertRegex(p.stdout, name + r" \(shop\.tests\.EagerTest[.\w]*\) \.\.\. ok")

    def test_settings_typo_is_refused(self):
        with open(os.path.join(_project.dir, "shopsite", "typo_settings.py"), "w") as f:
            f.write("from .settings import *  # noqa\nTOCSIN = {'SOCKT': '/x'}\n")
        p = subprocess.run([SYSTEM_PYTHON, "manage.py", "check",
                            "--settings", "shopsite.typo_settings"],
                           cwd=_project.dir, env=_project.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("unknown key(s) SOCKT", p.stderr)


if __name__ == "__main__":
    unittest.main()

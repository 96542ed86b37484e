"""Starts a real tocsind for a test: config and socket in a temporary directory.

The binary is $TOCSIND (set by ctest); run by hand, build/*/tocsind of the repository is used.
"""

import glob
import json
import os
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)  # clients/python: test the tree, not an installed copy
if PKG not in sys.path:
    sys.path.insert(0, PKG)

import tocsin  # noqa: E402

DEFAULT_CONFIG = """
limits: {ack_timeout: 200ms}
signals:
  17: {name: jobs, handlers: [{target: subscriber}]}
  18: {name: news, handlers: [{target: subscribers}]}
  19: {name: loose}
  20: {name: work, handlers: [{target: subscriber}]}
"""


def tocsind_path():
    path = os.environ.get("TOCSIND")
    if path:
        return path
    root = os.path.dirname(os.path.dirname(PKG))
    found = sorted(glob.glob(os.path.join(root, "build", "*", "tocsind")), key=os.path.getmtime)
    if not found:
        raise RuntimeError("set TOCSIND to the tocsind binary (ctest does)")
    return found[-1]


def wait_until(cond, timeout=10.0, what="condition"):
    """Polls ``cond`` until it is true; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.01)


class Daemon(object):
    def __init__(self, directory, config=DEFAULT_CONFIG):
        self.dir = directory
        self.config = os.path.join(directory, "tocsin.yaml")
        self.socket = os.path.join(directory, "s.sock")
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(config))
        self.proc = None
        self.log_path = os.path.join(directory, "tocsind.log")

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [tocsind_path(), "--config", self.config, "--socket", self.socket,
             "--log-level", "debug"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def accepts():
            if self.proc.poll() is not None:
                raise AssertionError("tocsind exited with %s:\n%s" % (
                    self.proc.returncode, self.log()))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return True
            except OSError:
                return False
            finally:
                s.close()
        wait_until(accepts, 10, "tocsind to accept on its socket")
        return self

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(_signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        rc, self.proc = self.proc.returncode, None
        return rc

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""


_shared_cache = {}


def raise_many(path, signal, n, batch=500):
    """Raises ``n`` events on ``signal`` in pipelined JSON-RPC batches; returns their seqs."""
    seqs = []
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        f = s.makefile("rb")
        for start in range(0, n, batch):
            k = min(n, start + batch) - start
            s.sendall((json.dumps([{"jsonrpc": "2.0", "id": start + i, "method": "raise",
                                    "params": {"signal": signal}} for i in range(k)])
                       + "\n").encode())
            replies = json.loads(f.readline())
            if any("result" not in r for r in replies):
                raise AssertionError("a raise failed: %r" % replies[:3])
            seqs += [r["result"]["seq"] for r in sorted(replies, key=lambda r: r["id"])]
        f.close()
    return seqs


def client_named(status, name):
    """The ``clients_detail`` row of the client called ``name`` in a status reply, or None."""
    rows = [x for x in status["clients_detail"] if x["name"] == name]
    return rows[0] if rows else None


def has_shared_sources(path):
    """True when the daemon at ``path`` knows shared sources (``lifetime`` in add_*); cached per
    binary."""
    key = tocsind_path()
    if key not in _shared_cache:
        with tocsin.Client(path) as c:
            try:
                c.call("add_rb_timer", {"id": "probe-shared", "signal": 255, "every": 3600000,
                                        "lifetime": "clients"})
                c.call("remove_source", {"id": "probe-shared"})
                _shared_cache[key] = True
            except tocsin.RpcError as e:
                if e.code != tocsin.INVALID_PARAMS or "lifetime" not in e.message:
                    raise
                _shared_cache[key] = False
    return _shared_cache[key]


NO_SHARED = "this tocsind refuses `lifetime` in add_* (shared sources not merged yet)"


class DaemonTestCase(unittest.TestCase):
    """Each test gets its own daemon (self.daemon) in its own temporary directory."""

    CONFIG = DEFAULT_CONFIG

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tocsin-py-")
        self.addCleanup(self._tmp.cleanup)
        self.daemon = Daemon(self._tmp.name, self.CONFIG).start()
        self.addCleanup(self._stop_daemon)
        self.path = self.daemon.socket

    def _stop_daemon(self):
        rc = self.daemon.stop()
        if rc not in (0, None):
            self.fail("tocsind exited with %s:\n%s" % (rc, self.daemon.log()))

    def shared(self):
        return has_shared_sources(self.path)

    def require_shared(self):
        if not self.shared():
            self.skipTest(NO_SHARED)

    def used_id(self, handler):
        """The source id the runtime uses for a decorated source on this daemon."""
        if self.shared():
            return handler.id
        return "py:%d:%s" % (os.getpid(), handler.id[3:])

    def client(self, **kw):
        c = tocsin.Client(self.path, **kw)
        self.addCleanup(c.close)
        return c

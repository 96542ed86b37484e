#!/usr/bin/env python3
"""Memory after a burst (issue 17, SPEC §5): tocsind's resident memory before a burst to many
subscribers that do not read, at its peak, and once they have gone.

    python3 bench/burst_memory.py --tocsind build/bench/tocsind [--subscribers 100]
        [--events 40000] [--payload-bytes 1000]

The daemon is started on a temp config (subscriber_queue 1048576) and socket and stopped by its
PID. Every wait has a deadline. Prints RSS (VmRSS, /proc) before, at the peak (VmHWM) and after,
and the after/before ratio (the target: at most 2).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def rss_kib(pid, key="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def call(s, f, method, params, rid):
    s.sendall((json.dumps({"jsonrpc": "2.0", "id": rid, "method": method,
                           "params": params}) + "\n").encode())
    return json.loads(f.readline())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tocsind", default="build/bench/tocsind")
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--events", type=int, default=40000)
    ap.add_argument("--payload-bytes", type=int, default=1000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tocsin-burst-")
    sock = os.path.join(tmp, "s.sock")
    with open(os.path.join(tmp, "c.yaml"), "w") as f:
        f.write("limits: {subscriber_queue: 1048576, clients: 4096}\n"
                "signals:\n  5: {name: news, handlers: [{target: subscribers}]}\n")
    log = open(os.path.join(tmp, "d.log"), "wb")
    d = subprocess.Popen([a.tocsind, "--config", os.path.join(tmp, "c.yaml"), "--socket", sock,
                          "--log-level", "debug"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if time.monotonic() > deadline or d.poll() is not None:
                sys.exit("tocsind did not start")
            time.sleep(0.01)
        admin = connect(sock)
        af = admin.makefile("rb")
        subs = []
        for i in range(a.subscribers):
            s = connect(sock)
            sf = s.makefile("rb")
            r = call(s, sf, "subscribe", {"signals": ["news"]}, 1)
            assert "result" in r, r
            subs.append((s, sf))
        before = rss_kib(d.pid)
        payload = "x" * a.payload_bytes
        sent = 0
        while sent < a.events:
            batch = [{"jsonrpc": "2.0", "id": sent + i, "method": "raise",
                      "params": {"signal": "news", "payload": payload}}
                     for i in range(min(500, a.events - sent))]
            admin.sendall((json.dumps(batch) + "\n").encode())
            json.loads(af.readline())
            sent += len(batch)
        deadline = time.monotonic() + 60
        while True:
            st = call(admin, af, "status", {}, "st")["result"]
            queued = sum(c["queue"] for c in st["clients_detail"])
            if queued > a.subscribers * a.events // 2:
                break
            if time.monotonic() > deadline:
                sys.exit("the queues did not fill: %d queued" % queued)
            time.sleep(0.05)
        peak = rss_kib(d.pid, "VmHWM")
        for s, sf in subs:
            sf.close()
            s.close()
        deadline = time.monotonic() + 10
        after = rss_kib(d.pid)
        while after > 2 * before and time.monotonic() < deadline:
            time.sleep(0.05)
            after = rss_kib(d.pid)
        time.sleep(0.5)  # and what it settles at
        after = rss_kib(d.pid)
        print("subscribers %d, events %d x %d B, queued at the peak %d" % (
            a.subscribers, a.events, a.payload_bytes, queued))
        print("RSS before %d KiB, peak %d KiB, after %d KiB: after/before %.2f" % (
            before, peak, after, after / before))
        return 0 if after <= 2 * before else 1
    finally:
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(10)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

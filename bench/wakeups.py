#!/usr/bin/env python3
"""How often tocsind wakes for writes next to what it monitors (issue 17, docs/BENCHMARKS.md).

Starts TOCSIND with two file monitors in one directory (a directory `tree` and a file
`app.conf`), then appends N times to a third file in that directory (`sibling.log`, which no
monitor names) and prints the daemon's context switches over those writes: voluntary and
nonvoluntary, summed over its threads (/proc/PID/task/*/status). A `status` call before the
count ends makes sure the daemon has handled whatever the writes queued; what one such call
costs by itself is measured first and taken out.

    bench/wakeups.py build/release/tocsind [--writes 100000] [--runs 3]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def switches(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                    total += int(line.split()[1])
    return total


def status(sock_path):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock_path)
        s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status"}\n')
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("tocsind closed the connection")
            buf += chunk
        return json.loads(buf)["result"]


def run(tocsind, writes):
    with tempfile.TemporaryDirectory() as tmp:
        watched = os.path.join(tmp, "watched")
        os.makedirs(os.path.join(watched, "tree"))
        with open(os.path.join(watched, "app.conf"), "w") as f:
            f.write("v1\n")
        config = os.path.join(tmp, "tocsin.yaml")
        with open(config, "w") as f:
            f.write(f"""state_dir: {tmp}/state
signals:
  17: {{name: changed, handlers: [{{target: subscribers}}]}}
file_monitors:
  - {{id: tree, signal: changed, path: {watched}/tree}}
  - {{id: conf, signal: changed, path: {watched}/app.conf}}
""")
        sock = os.path.join(tmp, "tocsin.sock")
        daemon = subprocess.Popen([tocsind, "--config", config, "--socket", sock],
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    status(sock)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("tocsind did not start")
                    time.sleep(0.05)
            sibling = os.path.join(watched, "sibling.log")
            open(sibling, "w").close()
            status(sock)
            a = switches(daemon.pid)
            status(sock)
            sync_cost = switches(daemon.pid) - a
            before = switches(daemon.pid)
            fd = os.open(sibling, os.O_WRONLY | os.O_APPEND)
            for _ in range(writes):
                os.write(fd, b"x\n")
            os.close(fd)
            status(sock)
            raw = switches(daemon.pid) - before
            return max(raw - sync_cost, 0), raw, sync_cost
        finally:
            daemon.terminate()
            daemon.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tocsind")
    p.add_argument("--writes", type=int, default=100000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    for i in range(a.runs):
        wakeups, raw, sync_cost = run(a.tocsind, a.writes)
        print(f"run {i + 1}: {a.writes} writes to a sibling: {wakeups} context switches "
              f"(raw {raw}, minus {sync_cost} for the status call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The Python runtime's handled rate (issue 16): a no-op handler served by
tocsin.start() (its thread pool, batched acks), with N events raised by a raw pipelining raiser
(batches of JSON-RPC raise requests on a plain socket, two in flight). --aio: the same through
tocsin.aio.run() (handlers as asyncio tasks).

    python3 bench/python_runtime.py --tocsind build/bench/tocsind [--events 200000]
        [--concurrency 4] [--prefetch N] [--ack-batch N] [--mode one-of|broadcast|both] [--profile]
        [--read-size BYTES]

Each run also prints the CPU per event of the consumer, tocsind and the raiser, the garbage
collections the consumer's process started (young/middle/full) and the events per read.

- one-of: signal 100 with `target: subscriber`; every event handled once (seqs checked), the
  daemon's table says `delivered` = N and status `unacked` 0 at the end.
- broadcast: signal 101 with `target: subscribers`; every event handled once, no overflow.
The rate is events handled / time from the first raise to the last handled. The daemon is
started in a temp dir and stopped by its PID. Exit 1 on any loss or duplicate.
--profile runs the consumer side under cProfile and prints the top functions.
Beside it, in the same run (issue 16's "side by side"):
--uwsgi   uWSGI's in-process signal handlers (bench/uwsgi_signals.py): handled rate and loss
--peers   Redis Streams and RabbitMQ through their Python clients (bench/oneof_peers.py's rate
          measure, with /usr/bin/python3, where Debian's redis and pika are)
"""

import argparse
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

import tocsin  # noqa: E402
import tocsin.aio  # noqa: E402
from tocsin import runtime  # noqa: E402
from tocsin._common import events_by_position  # noqa: E402


def default_tocsind():
    for p in ("build/bench/tocsind", "build/release/tocsind", "build/debug/tocsind"):
        p = os.path.join(ROOT, p)
        if os.access(p, os.X_OK):
            return p
    return None


class Daemon(object):
    def __init__(self, binary, events):
        self.tmp = tempfile.mkdtemp(prefix="tocsin-pyrt-")
        self.sock = os.path.join(self.tmp, "s.sock")
        room = max(65536, 2 * events)
        cfg = os.path.join(self.tmp, "tocsin.yaml")
        with open(cfg, "w") as f:
            f.write("state_dir: %s/state\nsocket: {path: %s}\n"
                    "limits: {backlog: %d, subscriber_queue: %d}\n"
                    "signals:\n"
                    "  100: {name: bench-oneof, handlers: [{target: subscriber}]}\n"
                    "  101: {name: bench-bcast, handlers: [{target: subscribers}]}\n"
                    % (self.tmp, self.sock, room, room))
        self.log = open(os.path.join(self.tmp, "tocsind.log"), "w")
        self.proc = subprocess.Popen([binary, "--config", cfg, "--log-level", "warn"],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("tocsind exited with %s" % self.proc.returncode)
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.sock)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("tocsind did not accept within 20 s")
                time.sleep(0.05)

    def cpu(self):
        """tocsind's CPU time so far, in seconds (user + system, from /proc)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def raise_all(path, sig, events, batch=500, go=None):
    """Raises `events` events on `sig` with pipelined batches (two in flight); with `go` (a
    file), connected and with its lines made, it says so on stdout and waits for a line there."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        f = s.makefile("rb")
        inflight = 0
        # One line per batch size, sent again and again: the raiser is not what is measured, and
        # it shares the two cores with the runtime (ids repeat across batches: the replies are
        # only checked for errors).
        lines = {}
        for start in range(0, events, batch):
            n = min(events, start + batch) - start
            if n not in lines:
                lines[n] = ("[" + ",".join(
                    '{"jsonrpc":"2.0","id":%d,"method":"raise","params":{"signal":%d}}' % (i, sig)
                    for i in range(n)) + "]\n").encode()
        if go is not None:
            print("ready", flush=True)
            go.readline()
            cpu0 = time.process_time()
        for start in range(0, events, batch):
            n = min(events, start + batch) - start
            s.sendall(lines[n])
            inflight += 1
            while inflight >= 2:
                check_replies(f.readline())
                inflight -= 1
        while inflight:
            check_replies(f.readline())
            inflight -= 1
    if go is not None:
        print("%.6f" % (time.process_time() - cpu0), flush=True)


def check_replies(line):
    """A batch's replies: each has a result. Looked at as bytes (an error reply is the only one
    with "error"), not parsed: the raiser shares the two cores with the runtime it measures."""
    if not line.endswith(b"]\n") or b'"error"' in line:
        raise SystemExit("raise failed: %r" % line[:300])


class AioRuntime(object):
    """tocsin.aio.run() in a thread of its own with its own event loop, shaped like the
    threaded Runtime for measure(): .ready, .prefetch, .ack_batch, .stop()."""

    def __init__(self, handlers, socket_path, concurrency, prefetch, ack_batch, name):
        import asyncio
        import tocsin.aio
        self.prefetch, self.ack_batch = runtime.credit(concurrency, prefetch, ack_batch)
        self.ready = threading.Event()
        self.error = None
        self._loop = None
        self._stop = None

        async def body():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready = asyncio.Event()

            async def mark():
                await ready.wait()
                self.ready.set()
            marker = asyncio.ensure_future(mark())
            try:
                await tocsin.aio.run(socket_path, stop_event=self._stop, ready=ready,
                                     registry=handlers, name=name, concurrency=concurrency,
                                     prefetch=self.prefetch, ack_batch=self.ack_batch)
            except Exception as e:
                self.error = e
            finally:
                marker.cancel()

        self._thread = threading.Thread(target=lambda: asyncio.run(body()), daemon=True)
        self._thread.start()

    def stop(self):
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def measure(daemon, mode, events, concurrency, prefetch, ack_batch=None, aio=False,
            inline=True):
    sig = 100 if mode == "one-of" else 101
    seen = bytearray(events + 64)
    dup = [0]
    done = threading.Event()
    count = [0]
    lock = threading.Lock()

    def handler(ev):
        i = ev.seq
        if seen[i]:
            dup[0] += 1
        seen[i] = 1
        with lock:
            count[0] += 1
            if count[0] >= events:
                done.set()

    h = tocsin.Handler("signal", handler, sig)
    if aio:
        rt = AioRuntime([h], daemon.sock, concurrency, prefetch, ack_batch, "bench-" + mode)
    else:
        rt = runtime.Runtime(handlers=[h], socket_path=daemon.sock, concurrency=concurrency,
                             prefetch=prefetch, ack_batch=ack_batch, inline=inline,
                             name="bench-" + mode).start()
    if not rt.ready.wait(10):
        raise SystemExit("the runtime did not set up: %r" % rt.error)
    c = tocsin.Client(daemon.sock)
    # The raiser is another process: in this one it would take the GIL from the runtime. The
    # clock starts when it is connected and ready (not with the interpreter's start-up).
    raiser = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--raise-only",
                               daemon.sock, str(sig), str(events)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if raiser.stdout.readline() != b"ready\n":
        raise SystemExit("the raiser did not start")
    # Python's collector (its collections by generation) and the reader's chunks (how many
    # events each read brought), over the measured interval.
    collections, chunks = [0, 0, 0], [0, 0]

    def collected(phase, info):
        if phase == "start":
            collections[info["generation"]] += 1

    def counted(body, loads, _parse=events_by_position):
        evs = _parse(body, loads)
        if evs is not None:
            chunks[0] += 1
            chunks[1] += len(evs)
        return evs
    gc.callbacks.append(collected)
    runtime.events_by_position = tocsin.aio.events_by_position = counted
    t0, cpu0, d0 = time.perf_counter(), os.times(), daemon.cpu()
    raiser.stdin.write(b"go\n")
    raiser.stdin.flush()
    ok = done.wait(max(60, events / 5000))
    t1, cpu1, d1 = time.perf_counter(), os.times(), daemon.cpu()
    gc.callbacks.remove(collected)
    runtime.events_by_position = tocsin.aio.events_by_position = events_by_position
    # This process's CPU (the runtime's threads and the handler; the raiser and the daemon are
    # other processes) per event handled.
    cpu_us = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) * 1e6 / max(1, count[0])
    raiser.stdin.close()
    if raiser.wait() != 0:
        raise SystemExit("the raiser failed")
    # The other two processes on the two cores: tocsind over the same interval, and the raiser
    # (all of its CPU after "go", its set-up excluded: it reports that itself).
    daemon_us = (d1 - d0) * 1e6 / max(1, count[0])
    raiser_us = float(raiser.stdout.read() or 0) * 1e6 / max(1, count[0])
    lost = events - count[0]
    unacked = None
    if mode == "one-of":
        # One-of counts `delivered` at the ack: the last acks may still be on their way.
        def unacked_now():
            d = [x for x in c.status()["clients_detail"] if x["name"] == "bench-" + mode]
            return d[0]["unacked"] if d else None
        deadline = time.monotonic() + 5
        unacked = unacked_now()
        while unacked and time.monotonic() < deadline:
            time.sleep(0.01)
            unacked = unacked_now()
    entry = next(e for e in c.table() if e["signal"] == sig)
    rt.stop()
    c.close()
    raiser.stdout.close()
    rate = count[0] / (t1 - t0)
    print("%-9s %sconcurrency %d prefetch %d ack batch %d: %d events in %.3f s = %.0f events/s "
          "(CPU per event: consumer %.1f us, tocsind %.1f, raiser %.1f); lost %d, duplicates %d, "
          "delivered %d, unacked at end %s; gc collections %d/%d/%d, %.0f events per chunk"
          % (mode, "asyncio " if aio else ("" if inline else "no-inline "), concurrency,
             rt.prefetch, rt.ack_batch, count[0], t1 - t0, rate, cpu_us, daemon_us, raiser_us,
             lost, dup[0], entry["delivered"], unacked, collections[0], collections[1],
             collections[2], chunks[1] / max(1, chunks[0])))
    return (ok and lost == 0 and dup[0] == 0 and unacked in (None, 0)
            and entry["delivered"] == events), rate


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--raise-only":
        raise_all(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), go=sys.stdin)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tocsind", default=default_tocsind())
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--prefetch", type=int, default=None)
    ap.add_argument("--ack-batch", type=int, default=None)
    ap.add_argument("--mode", choices=("one-of", "broadcast", "both"), default="both")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--runs", type=int, default=1, help="runs of each measure (medians printed)")
    ap.add_argument("--aio", action="store_true", help="serve with tocsin.aio.run() instead")
    ap.add_argument("--no-inline", action="store_true",
                    help="Runtime(inline=False): every event handed to the pool")
    ap.add_argument("--read-size", type=int, default=None,
                    help="bytes the readers take at a time (default tocsin's READ_SIZE)")
    ap.add_argument("--uwsgi", action="store_true", help="also uWSGI's in-process handlers")
    ap.add_argument("--peers", action="store_true", help="also Redis Streams and RabbitMQ")
    args = ap.parse_args()
    if args.read_size:
        runtime.READ_SIZE = tocsin.aio.READ_SIZE = args.read_size
    if not args.tocsind:
        raise SystemExit("no tocsind: pass --tocsind")
    print("tocsind: %s" % args.tocsind)
    modes = ("one-of", "broadcast") if args.mode == "both" else (args.mode,)
    good = True
    profiles = []
    if args.profile:  # each thread of the runtime under its own profiler, merged at the end
        import cProfile

        def profiled(fn):
            def wrapper(*a, **kw):
                p = cProfile.Profile()
                profiles.append(p)
                p.enable()
                try:
                    return fn(*a, **kw)
                finally:
                    p.disable()
            return wrapper
        runtime.Runtime._worker = profiled(runtime.Runtime._worker)
        runtime._Conn._read_loop = profiled(runtime._Conn._read_loop)
    rates = {m: [] for m in modes}
    for run in range(args.runs):
        for mode in modes:
            d = Daemon(args.tocsind, args.events)
            try:
                ok, rate = measure(d, mode, args.events, args.concurrency, args.prefetch,
                                   args.ack_batch, args.aio, not args.no_inline)
                good &= ok
                rates[mode].append(rate)
            finally:
                d.stop()
            if profiles:
                import pstats
                st = pstats.Stats(profiles[0])
                for p in profiles[1:]:
                    st.add(p)
                st.sort_stats("tottime").print_stats(18)
                del profiles[:]
    if args.runs > 1:
        for mode in modes:
            print("%-9s median of %d runs: %.0f events/s" % (mode, args.runs, median(rates[mode])))
    if args.uwsgi:
        import uwsgi_signals
        uw = []
        for run in range(args.runs):
            try:
                r = uwsgi_signals.measure(args.events)
            except RuntimeError as e:
                print("uwsgi: skipped: %s" % e)
                break
            print(uwsgi_signals.describe(r))
            uw.append(r)
        if len(uw) > 1:
            print("uWSGI     median of %d runs: %.0f events/s handled, %.1f%% lost"
                  % (len(uw), median([r["rate"] for r in uw]),
                     median([100.0 * r["lost"] / r["raised"] for r in uw])))
    if args.peers:
        good &= run_peers(args)
    return 0 if good else 1


def run_peers(args):
    """oneof_peers.py's rate measure for Redis and RabbitMQ (4 consumers, prefetch 100, acks
    batched; one Python producer), printed as rows beside the runtime's."""
    cmd = ["/usr/bin/python3", os.path.join(HERE, "oneof_peers.py"), "--only", "redis,rabbitmq",
           "--json", "--events", str(args.events),
           "--rabbitmq-events", str(min(args.events, 50000)), "--split-events", "200"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        print("peers: failed (exit %d): %s" % (r.returncode, r.stderr[-1500:]))
        return False
    for name, why in out.get("skipped", {}).items():
        print("%-9s skipped: %s" % (name, why))
    for row in out["results"]:
        if row["measure"] != "rate":
            continue
        print("%-9s %d consumers prefetch %d (Python client): %d events in %.3f s = %d acked/s; "
              "lost %d, duplicates %d; %s"
              % (row["system"], row["consumers"], row["prefetch"], row["events"], row["seconds"],
                 row["events_per_s"], row["lost"], row["duplicates"],
                 out["versions"].get(row["system"], "")))
    return not out.get("failures")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""uWSGI's own signal framework, measured the way bench/python_runtime.py measures tocsin's
runtime (issue 16): a no-op Python handler registered for signal 17 with target "workers" in a
uWSGI instance of one worker, and a mule that raises N signals with uwsgi.signal() as fast as it
can. What the worker handled, how fast, and what was lost (and whether the raiser was told).

    python3 bench/uwsgi_signals.py [--events 200000]      # needs uwsgi-core, uwsgi-plugin-python3

uWSGI is started in a temp dir (Unix socket, no network) and stopped by its PID. The handled
rate is handled / (first raise -> last handled). Imported by bench/python_runtime.py --uwsgi.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

APP = '''
import os, time
import uwsgi
OUT = os.environ["BENCH_OUT"]
state = [0, 0.0, 0.0]

def handled(signum):
    now = time.monotonic()
    if state[0] == 0:
        state[1] = now
    state[0] += 1
    state[2] = now

def report(signum):
    with open(OUT + ".tmp", "w") as f:
        f.write("%d %.6f %.6f" % tuple(state))
    os.rename(OUT + ".tmp", OUT)

uwsgi.register_signal(17, "workers", handled)
uwsgi.register_signal(18, "workers", report)

def application(env, start_response):
    start_response("200 OK", [])
    return [b""]
'''

RAISER = '''
import os, time
import uwsgi
N = int(os.environ["BENCH_EVENTS"])
OUT = os.environ["BENCH_OUT"]
while not os.path.exists(OUT + ".ready"):  # the worker is up (the driver saw it in the log)
    time.sleep(0.01)
failed = 0
t0 = time.monotonic()
for i in range(N):
    try:
        uwsgi.signal(17)
    except Exception:
        failed += 1
t1 = time.monotonic()
with open(OUT + ".mule.tmp", "w") as f:
    f.write("%d %d %.6f %.6f" % (N, failed, t0, t1))
os.rename(OUT + ".mule.tmp", OUT + ".mule")
# Ask the worker for its count until it answers (signal 18 may be dropped like the others).
while not os.path.exists(OUT):
    try:
        uwsgi.signal(18)
    except Exception:
        pass
    time.sleep(0.2)
while True:
    time.sleep(60)
'''


def binary():
    for b in ("uwsgi_python3", "uwsgi"):
        p = shutil.which(b)
        if p:
            return p
    return None


def measure(events, timeout=60.0):
    """Returns a dict: raised, raiser_errors, handled, lost, seconds, rate, queue_full_lines,
    version; or raises RuntimeError (uWSGI missing or stuck)."""
    uwsgi = binary()
    if uwsgi is None:
        raise RuntimeError("uWSGI is not installed (apt-get install uwsgi-core "
                           "uwsgi-plugin-python3; scripts/deps bench)")
    tmp = tempfile.mkdtemp(prefix="tocsin-uwsgi-")
    out = os.path.join(tmp, "out")
    log = os.path.join(tmp, "uwsgi.log")
    with open(os.path.join(tmp, "app.py"), "w") as f:
        f.write(APP)
    with open(os.path.join(tmp, "raiser.py"), "w") as f:
        f.write(RAISER)
    env = dict(os.environ, BENCH_OUT=out, BENCH_EVENTS=str(events))
    argv = [uwsgi, "--master", "--workers", "1", "--mule=" + os.path.join(tmp, "raiser.py"),
            "--socket", os.path.join(tmp, "u.sock"), "--pythonpath", tmp, "--module", "app",
            "--logto", log]
    if os.path.basename(uwsgi) == "uwsgi":
        argv[1:1] = ["--plugin", "python3"]
    version = subprocess.run([uwsgi, "--version"], capture_output=True, text=True).stdout.strip()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout

        def log_text():
            try:
                with open(log, errors="replace") as f:
                    return f.read()
            except OSError:
                return ""
        text = log_text()
        while "spawned uWSGI worker 1" not in text or "spawned uWSGI mule 1" not in text:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("uWSGI did not start:\n" + text[-2000:])
            time.sleep(0.05)
            text = log_text()
        open(out + ".ready", "w").close()
        while not os.path.exists(out):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("no count from the uWSGI worker:\n" + log_text()[-2000:])
            time.sleep(0.05)
        with open(out + ".mule") as f:
            raised, failed, t0, t1 = f.read().split()
        with open(out) as f:
            handled, first, last = f.read().split()
        raised, failed, handled = int(raised), int(failed), int(handled)
        seconds = max(float(last), float(t1)) - float(t0)
        text = log_text()
        return {"raised": raised, "raiser_errors": failed, "handled": handled,
                "lost": raised - handled, "seconds": seconds,
                "rate": handled / seconds if seconds > 0 else 0.0,
                "raise_seconds": float(t1) - float(t0),
                "queue_full_lines": text.count("SIGNAL QUEUE IS FULL"),
                "not_delivered_lines": text.count("could not deliver signal"),
                "version": version}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # uWSGI's "stop the whole stack"
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def describe(r):
    return ("uWSGI %s in-process, 1 worker, target workers: raised %d in %.3f s (the raiser "
            "was told of %d failures), handled %d in %.3f s = %.0f events/s; lost %d (%.1f%%; "
            "%d 'SIGNAL QUEUE IS FULL' and %d 'could not deliver' lines in its log)"
            % (r["version"], r["raised"], r["raise_seconds"], r["raiser_errors"], r["handled"],
               r["seconds"], r["rate"], r["lost"], 100.0 * r["lost"] / max(1, r["raised"]),
               r["queue_full_lines"], r["not_delivered_lines"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200000)
    a = ap.parse_args()
    try:
        print(describe(measure(a.events)))
    except RuntimeError as e:
        print("uwsgi_signals: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

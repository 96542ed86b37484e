#!/usr/bin/env python3
"""What parsing an event costs a Python client, per form (issue 16, docs/decisions/0009): the
`signal` notification with its params by name (an object), by position (an array, what the
runtimes ask for), and the runtime's fast path (a chunk of lines by position parsed as one array
without the envelope); then the fast path and the threaded runtime's dispatch to a no-op handler
on the reader (caller runs, a broadcast event: no ack), without a daemon. Lines like the
daemon's, parsed 1,000 to a chunk and dropped, as a reader does; CPU time of this process per
event, best of --repeat.

    python3 bench/python_parse.py [--events 200000] [--repeat 3]
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "clients", "python"))

import tocsin  # noqa: E402
from tocsin import runtime  # noqa: E402
from tocsin._common import Event, events_by_position  # noqa: E402

BY_NAME = ('{"jsonrpc":"2.0","method":"signal","params":{"seq":%d,"signal":101,"name":"bench",'
           '"source":{"kind":"raise","id":"pid:1234"},"time":"2026-12-03T01:20:00.123456Z",'
           '"iteration":0,"payload":"x"}}')
BY_POSITION = ('{"jsonrpc":"2.0","method":"signal","params":[%d,101,"bench","raise","pid:1234",'
               '"2026-12-03T01:20:00.123456Z",0,"x",0]}')


def chunks(form, events, per=1000):
    lines = [(form % i).encode() for i in range(events)]
    return [b"\n".join(lines[i:i + per]) for i in range(0, events, per)]


def general(body):
    """The general path: every line of the chunk in one json.loads, then an Event each."""
    return [Event.from_params(m["params"])
            for m in json.loads(b"[" + body.replace(b"\n", b",") + b"]")]


def fast(body):
    return events_by_position(body, json.loads)


def dispatched():
    """The fast path, then the runtime's caller-runs loop with one no-op handler of signal 101."""
    rt = runtime.Runtime(handlers=[], socket_path="/nonexistent")
    h = tocsin.Handler("signal", lambda ev: None, 101)
    rt._routes = ({101: [h]}, {}, {})

    def run(body):
        rt._routes[2].clear()  # no pool here to bring a route back after a pause made it "slow"
        events = events_by_position(body, json.loads)
        if rt._run_inline(None, events) != len(events):
            raise SystemExit("the runtime did not run every event")
    return run


def cost(fn, bodies, events, repeat):
    best = None
    for _ in range(repeat):
        t0 = time.process_time()
        for b in bodies:
            fn(b)
        t = (time.process_time() - t0) / events * 1e6
        best = t if best is None else min(best, t)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    by_name, by_position = chunks(BY_NAME, a.events), chunks(BY_POSITION, a.events)
    rows = [("by name, json + Event", general, by_name),
            ("by position, json + Event", general, by_position),
            ("by position, fast path + Event", fast, by_position),
            ("fast path + runtime dispatch", dispatched(), by_position)]
    base = None
    for label, fn, bodies in rows:
        us = cost(fn, bodies, a.events, a.repeat)
        base = base or us
        print("%-32s %.2f us/event  (%.2fx)" % (label, us, us / base))
    return 0


if __name__ == "__main__":
    sys.exit(main())

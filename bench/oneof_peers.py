#!/usr/bin/python3
"""One-of delivery next to its peers: tocsin, Redis Streams consumer groups, RabbitMQ (issue 15).

Two measures, the same against each system, every client in Python (the stdlib socket + json for
tocsin, raw redis-py and pika for the others; no client library of this repository):

 1. Rate with acks: one producer publishes E events (--events, 200,000 by default), K consumers
    (--consumers, 4; separate processes) take them with a prefetch (--prefetch, 100) and ack every
    one, acks batched: tocsin an `ack {seqs: [...]}` notification per read, Redis one XACK with the
    ids of each XREADGROUP COUNT 100, RabbitMQ basic_qos(prefetch_count=100) and basic_ack
    multiple=True every 50 or when its buffer is drained. Reported: acked events/s = E / (first
    publish -> last ack sent by a consumer).
 2. The fast+slow split: 2,000 events (--split-events), two consumers with prefetch 1 (tocsin
    `prefetch: 1`, Redis XREADGROUP COUNT 1, RabbitMQ basic_qos(prefetch_count=1)); one sleeps
    20 ms (--slow-ms) per event before its ack, the other acks at once. Reported: time from the
    first publish to the last ack, how many each handled, and the same 2,000 events to the fast
    consumer alone, for the ratio split/alone. tocsin also runs the split with the daemon's
    default credit (no `prefetch` in subscribe: limits.prefetch, 32 in the configuration here).

Every measure checks that each event id (0..E-1, the payload) was handled exactly once: any loss or
duplicate makes the script exit 1. Measures run one at a time.

Each server is started by this script in a fresh temp dir and stopped by its PID (SIGTERM, then
SIGKILL after a deadline), never by name or through systemd; the temp dir is removed. Every process
it starts carries a marker variable in its environment, so that whatever a server left behind (the
epmd RabbitMQ's Erlang starts, on a private ERL_EPMD_PORT) is found through /proc and stopped by
PID too, and nothing else is touched. tocsind listens on TMP/s.sock with `limits.prefetch: 32`
(retried without it if the daemon refuses the key) and limits.backlog and
limits.subscriber_queue raised to hold a whole run (Redis and RabbitMQ queues are unbounded);
redis-server on a Unix socket only (--port 0); rabbitmq-server on 127.0.0.1, free ports. A system
whose server or client package is missing is reported as "skipped: why". The script nices itself
(and so the servers it starts) by --nice (10).

Run (Debian's packages are for /usr/bin/python3; `scripts/deps bench` installs them):

    scripts/deps bench
    cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build build/bench --target tocsind
    /usr/bin/python3 bench/oneof_peers.py [--tocsind build/bench/tocsind] [--only tocsin,redis,rabbitmq]
        [--events 200000] [--rabbitmq-events N] [--consumers 4] [--json]
"""
import argparse
import array
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "TOCSIN_ONEOF_BENCH"  # environment variable every started server carries
RUN_TOKEN = uuid.uuid4().hex
SIGNAL = "bench"


class Skip(Exception):
    """A system that cannot be measured here (package missing, server does not start)."""


class Failure(Exception):
    """A measure that went wrong (a deadline passed, a consumer died)."""


def log(msg):
    try:
        print(f"oneof_peers: {msg}", file=sys.stderr, flush=True)
    except OSError:
        pass  # stderr gone (a closed pipe): the servers must be stopped all the same


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"


def marked_pids():
    """The processes started by this run (and their descendants): they carry MARK=RUN_TOKEN."""
    needle = f"{MARK}={RUN_TOKEN}".encode() + b"\0"
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if needle in f.read():
                    found.append(int(d))
        except OSError:
            continue
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(proc, grace):
    """SIGTERM the process we started, SIGKILL after grace seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            log(f"pid {proc.pid} still running {grace:g} s after SIGTERM: SIGKILL")
            proc.kill()
            proc.wait(10)


def stop_leftovers(what):
    """Whatever this run started that outlived its server (epmd, a stray child): by PID."""
    pids = [p for p in marked_pids() if alive(p)]
    for p in pids:
        log(f"{what}: stopping pid {p} it left behind ({comm(p)})")
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in pids:
        if alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def server_env(extra=None):
    env = dict(os.environ)
    env[MARK] = RUN_TOKEN
    env.update(extra or {})
    return env


def recv_lines(sock, buf):
    """Blocks for at least one complete line; returns (lines, rest)."""
    while b"\n" not in buf:
        chunk = sock.recv(1 << 18)
        if not chunk:
            raise Failure("tocsind closed the connection")
        buf += chunk
    *lines, rest = buf.split(b"\n")
    return lines, rest


def call(sock, buf, request):
    """Sends one request and returns (reply, events that came first, rest of the buffer)."""
    sock.sendall(json.dumps(request).encode() + b"\n")
    before = []
    while True:
        lines, buf = recv_lines(sock, buf)
        for i, line in enumerate(lines):
            msg = json.loads(line)
            if isinstance(msg, dict) and msg.get("id") == request["id"]:
                rest = b"\n".join(lines[i + 1:] + [buf]) if i + 1 < len(lines) else buf
                return msg, before, rest
            before.append(msg)


# --------------------------------------------------------------------------------------------
# Servers: start(), stop(), version; the consumer and producer functions below take `addr`.

class Tocsin:
    name = "tocsin"

    def __init__(self, tocsind, events):
        self.tocsind = tocsind
        self.events = events
        self.proc = None
        self.tmp = None
        self.notes = []

    def start(self):
        if not self.tocsind or not os.access(self.tocsind, os.X_OK):
            raise Skip(f"no tocsind at {self.tocsind or 'build/bench/tocsind or build/debug/tocsind'}")
        self.tmp = tempfile.mkdtemp(prefix="tocsin-oneof-")
        self.addr = os.path.join(self.tmp, "s.sock")
        cfg = os.path.join(self.tmp, "tocsin.yaml")
        room = max(65536, 2 * self.events)
        for prefetch in ("prefetch: 32, ", ""):
            with open(cfg, "w") as f:
                f.write(f"""state_dir: {self.tmp}/state
socket: {{path: {self.addr}}}
limits: {{{prefetch}backlog: {room}, subscriber_queue: {room}}}
signals:
  100: {{name: {SIGNAL}, handlers: [{{target: subscriber}}]}}
""")
            check = subprocess.run([self.tocsind, "--check", "--config", cfg],
                                   capture_output=True, text=True, timeout=30)
            if check.returncode == 0:
                break
            out = (check.stdout + check.stderr).strip()
            if prefetch and "prefetch" in out:
                self.notes.append("limits.prefetch refused: config without it")
                continue
            raise Failure(f"tocsind --check refused the configuration: {out}")
        self.version = subprocess.run([self.tocsind, "--version"], capture_output=True,
                                      text=True, timeout=30).stdout.strip()
        logf = os.path.join(self.tmp, "tocsind.log")
        with open(logf, "w") as lf:
            self.proc = subprocess.Popen([self.tocsind, "--config", cfg, "--log-level", "warn"],
                                         stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                                         env=server_env(), start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise Failure(f"tocsind exited with {self.proc.returncode}:\n{tail(logf)}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(5)
                    s.connect(self.addr)
                    reply, _, _ = call(s, b"", {"jsonrpc": "2.0", "id": 1, "method": "version"})
                    self.version += f" (protocol {reply['result'].get('protocol')})"
                break
            except (OSError, Failure):
                if time.monotonic() > deadline:
                    raise Failure(f"tocsind did not answer on {self.addr} within 20 s:\n{tail(logf)}")
                time.sleep(0.05)

    def stop(self):
        if self.proc:
            stop_pid(self.proc, 10)
        stop_leftovers("tocsind")
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def prepare(self, tag):
        pass

    def cleanup(self, tag):
        pass

    def credit_note(self, consumers):
        """What the daemon says about the subscribers' credit (status clients_detail)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.addr)
            reply, _, _ = call(s, b"", {"jsonrpc": "2.0", "id": 1, "method": "status"})
        detail = [c for c in reply["result"].get("clients_detail", []) if c.get("subscriptions")]
        if not detail or "prefetch" not in detail[0]:
            return "no credit in status: prefetch ignored (round robin)"
        return "credit " + ",".join(str(c["prefetch"]) for c in detail)


class Redis:
    name = "redis"

    def __init__(self):
        self.proc = None
        self.tmp = None
        self.notes = []

    def start(self):
        exe = shutil.which("redis-server")
        if not exe:
            raise Skip("redis-server is not installed (scripts/deps bench)")
        try:
            import redis
        except ImportError:
            raise Skip(f"python3-redis is not installed for {sys.executable} (scripts/deps bench)")
        self.version = subprocess.run([exe, "--version"], capture_output=True, text=True,
                                      timeout=30).stdout.strip()
        self.tmp = tempfile.mkdtemp(prefix="redis-oneof-")
        self.addr = os.path.join(self.tmp, "redis.sock")
        logf = os.path.join(self.tmp, "redis.log")
        with open(logf, "w") as lf:
            self.proc = subprocess.Popen(
                [exe, "--port", "0", "--unixsocket", self.addr, "--save", "", "--appendonly", "no",
                 "--dir", self.tmp], stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                env=server_env(), start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise Failure(f"redis-server exited with {self.proc.returncode}:\n{tail(logf)}")
            try:
                redis.Redis(unix_socket_path=self.addr, socket_timeout=2).ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise Failure(f"redis-server did not answer on {self.addr} within 20 s:\n"
                                  f"{tail(logf)}")
                time.sleep(0.05)

    def stop(self):
        if self.proc:
            stop_pid(self.proc, 10)
        stop_leftovers("redis-server")
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def prepare(self, tag):
        import redis
        r = redis.Redis(unix_socket_path=self.addr)
        r.xgroup_create(tag, "workers", id="0", mkstream=True)
        r.close()

    def cleanup(self, tag):
        import redis
        r = redis.Redis(unix_socket_path=self.addr)
        r.delete(tag)
        r.close()

    def credit_note(self, consumers):
        return ""


class RabbitMQ:
    name = "rabbitmq"

    def __init__(self, start_timeout):
        self.proc = None
        self.tmp = None
        self.start_timeout = start_timeout
        self.notes = []

    def start(self):
        exe = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # not /usr/sbin's wrapper: it su's
        if not os.access(exe, os.X_OK):
            raise Skip("rabbitmq-server is not installed (scripts/deps bench)")
        try:
            import pika
        except ImportError:
            raise Skip(f"python3-pika is not installed for {sys.executable} (scripts/deps bench)")
        logging.getLogger("pika").setLevel(logging.CRITICAL)  # refused connects while it starts
        self.tmp = tempfile.mkdtemp(prefix="rabbitmq-oneof-")
        t = self.tmp
        self.port = free_port()
        dist, epmd = free_port(), free_port()
        while len({self.port, dist, epmd}) < 3:
            dist, epmd = free_port(), free_port()
        for name, text in (("rabbitmq.conf", "log.console = false\nlog.file.level = warning\n"),
                           ("advanced.config", "[].\n"), ("enabled_plugins", ""),
                           ("rabbitmq-env.conf", "")):
            with open(os.path.join(t, name), "w") as f:
                f.write(text)
        env = server_env({
            "HOME": t,  # the Erlang cookie
            "RABBITMQ_NODENAME": "tocsinbench@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist),
            "ERL_EPMD_PORT": str(epmd),  # a private epmd: found by the marker, stopped by PID
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONF_ENV_FILE": f"{t}/rabbitmq-env.conf",
            "RABBITMQ_CONFIG_FILE": f"{t}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{t}/advanced.config",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{t}/enabled_plugins",
            "RABBITMQ_MNESIA_BASE": f"{t}/mnesia",
            "RABBITMQ_LOG_BASE": f"{t}/log",
            "RABBITMQ_PID_FILE": f"{t}/rabbitmq.pid",
        })
        logf = os.path.join(t, "server.out")
        with open(logf, "w") as lf:
            self.proc = subprocess.Popen([exe], cwd=t, stdin=subprocess.DEVNULL, stdout=lf,
                                         stderr=lf, env=env, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise Failure(f"rabbitmq-server exited with {self.proc.returncode}:\n{tail(logf)}")
            try:
                c = pika.BlockingConnection(self.params(socket_timeout=2))
                v = c._impl.server_properties.get("version", "?")
                self.version = "RabbitMQ " + (v.decode() if isinstance(v, bytes) else str(v))
                c.close()
                break
            except Exception as e:
                if time.monotonic() > deadline:
                    raise Failure(f"rabbitmq-server did not accept AMQP on 127.0.0.1:{self.port} "
                                  f"within {self.start_timeout:g} s (last: {e!r}):\n{tail(logf)}")
                time.sleep(0.5)
        self.addr = ("127.0.0.1", self.port)

    def params(self, **kw):
        import pika
        return pika.ConnectionParameters(host="127.0.0.1", port=self.port, connection_attempts=1,
                                         heartbeat=0, **kw)

    def stop(self):
        if self.proc:
            stop_pid(self.proc, 30)  # the start script's TERM trap stops the node
        stop_leftovers("rabbitmq-server")
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def prepare(self, tag):
        import pika
        c = pika.BlockingConnection(self.params())
        c.channel().queue_declare(tag, durable=False, auto_delete=False)
        c.close()

    def cleanup(self, tag):
        import pika
        c = pika.BlockingConnection(self.params())
        c.channel().queue_delete(tag)
        c.close()

    def credit_note(self, consumers):
        return ""


# --------------------------------------------------------------------------------------------
# Producers (in the main process). Each returns once every event is published; payload: the id.

def publish_tocsin(addr, tag, events, batch=500):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(addr)
        buf = b""
        inflight = 0
        answered = 0

        def read_one():
            nonlocal buf, answered
            lines, buf = recv_lines(s, buf)
            for line in lines:
                replies = json.loads(line)
                if not isinstance(replies, list):
                    replies = [replies]
                for r in replies:
                    if "result" not in r:
                        raise Failure(f"raise failed: {r}")
                    answered += 1
            return len(lines)

        for start in range(0, events, batch):
            line = "[" + ",".join(
                f'{{"jsonrpc":"2.0","id":{i},"method":"raise","params":{{"signal":"{SIGNAL}",'
                f'"payload":"{i}"}}}}' for i in range(start, min(events, start + batch))) + "]\n"
            s.sendall(line.encode())
            inflight += 1
            while inflight >= 2:  # two batches in flight
                inflight -= read_one()
        while answered < events:
            read_one()


def publish_redis(addr, tag, events, batch=500):
    import redis
    r = redis.Redis(unix_socket_path=addr)
    for start in range(0, events, batch):
        p = r.pipeline(transaction=False)
        for i in range(start, min(events, start + batch)):
            p.xadd(tag, {"i": i})
        p.execute()
    r.close()


def publish_rabbitmq(addr, tag, events):
    import pika
    c = pika.BlockingConnection(pika.ConnectionParameters(host=addr[0], port=addr[1], heartbeat=0))
    ch = c.channel()
    for i in range(events):
        ch.basic_publish(exchange="", routing_key=tag, body=str(i).encode())
    c.close()


PUBLISH = {"tocsin": publish_tocsin, "redis": publish_redis, "rabbitmq": publish_rabbitmq}


# --------------------------------------------------------------------------------------------
# Consumers (one process each). `st` collects what the consumer saw; `acked(n)` is called after
# each ack is sent (the time of the last one ends the measure).

class Stats:
    def __init__(self, counter):
        self.ids = array.array("i")
        self.counter = counter
        self.last_ack = 0.0
        self.redelivered = 0
        self.ack_errors = 0
        self.notes = []

    def acked(self, n):
        self.last_ack = time.monotonic()
        with self.counter.get_lock():
            self.counter.value += n


def consume_tocsin(addr, tag, prefetch, delay, st, ready, stop):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(addr)
    params = {"signals": [SIGNAL], "ack": True}
    if prefetch:
        params["prefetch"] = prefetch
    reply, early, buf = call(s, b"", {"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                                      "params": params})
    if "error" in reply and prefetch:
        st.notes.append(f"subscribe refused prefetch ({reply['error'].get('message')}): "
                        "subscribed without")
        del params["prefetch"]
        reply, more, buf = call(s, buf, {"jsonrpc": "2.0", "id": 1, "method": "subscribe",
                                         "params": params})
        early += more
    if "error" in reply:
        raise Failure(f"subscribe failed: {reply['error']}")
    ready.set()
    s.settimeout(0.1)
    mode = None  # "seqs" once the daemon took an ack {seqs}, "seq" if it refused it
    probe = []   # the seqs of the first ack, sent as a request to learn which form works
    held = []    # acks waiting for that answer

    def ack(seqs):
        nonlocal mode, probe
        if mode == "seqs":
            s.sendall(('{"jsonrpc":"2.0","method":"ack","params":{"seqs":['
                       + ",".join(map(str, seqs)) + "]}}\n").encode())
            st.acked(len(seqs))
        elif mode == "seq":
            s.sendall(("[" + ",".join('{"jsonrpc":"2.0","method":"ack","params":{"seq":%d}}' % q
                                      for q in seqs) + "]\n").encode())
            st.acked(len(seqs))
        elif not probe:
            probe = list(seqs)
            s.sendall(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ack",
                                  "params": {"seqs": probe}}).encode() + b"\n")
        else:
            held.extend(seqs)

    def handle(msg, to_ack):
        nonlocal mode
        if not isinstance(msg, dict):
            return  # a batch's replies (none are expected)
        m = msg.get("method")
        if m == "signal":
            p = msg["params"]
            st.ids.append(int(p["payload"]))
            if p.get("redelivered") or p.get("delivery", 1) > 1:
                st.redelivered += 1
            if delay:
                time.sleep(delay)
                ack([p["seq"]])
            else:
                to_ack.append(p["seq"])
        elif m == "overflow":
            st.notes.append(f"overflow notice: {msg['params']}")
        elif msg.get("id") == 2 and mode is None:
            if "error" in msg:
                mode = "seq"
                st.notes.append("ack {seqs} refused: a batch of ack {seq} notifications")
                ack(probe)
            else:
                mode = "seqs"
                st.acked(len(probe))
            if held:
                ack(held)
                held.clear()
        elif "error" in msg:
            st.ack_errors += 1

    pending = []
    for msg in early:
        handle(msg, pending)
    if pending:
        ack(pending)
    lines, buf = buf.split(b"\n")[:-1], buf.split(b"\n")[-1]
    while True:
        to_ack = []
        for line in lines:
            handle(json.loads(line), to_ack)
        if to_ack:
            ack(to_ack)
        if stop.is_set():
            break
        try:
            chunk = s.recv(1 << 18)
        except socket.timeout:
            lines = []
            continue
        if not chunk:
            raise Failure("tocsind closed the connection")
        buf += chunk
        *lines, buf = buf.split(b"\n")
    s.close()


def consume_redis(addr, tag, prefetch, delay, st, ready, stop):
    import redis
    r = redis.Redis(unix_socket_path=addr)
    me = f"c{os.getpid()}"
    r.ping()
    ready.set()
    while not stop.is_set():
        resp = r.xreadgroup("workers", me, {tag: ">"}, count=prefetch or 100, block=100)
        for _, entries in resp or []:
            ids = []
            for eid, fields in entries:
                st.ids.append(int(fields[b"i"]))
                if delay:
                    time.sleep(delay)
                    r.xack(tag, "workers", eid)
                    st.acked(1)
                else:
                    ids.append(eid)
            if ids:
                r.xack(tag, "workers", *ids)
                st.acked(len(ids))
    r.close()


def consume_rabbitmq(addr, tag, prefetch, delay, st, ready, stop):
    import pika
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    c = pika.BlockingConnection(pika.ConnectionParameters(host=addr[0], port=addr[1], heartbeat=0))
    ch = c.channel()
    prefetch = prefetch or 100
    ch.basic_qos(prefetch_count=prefetch)
    every = max(1, prefetch // 2)
    unacked = [0, None]  # count, last delivery tag

    def flush():
        if unacked[0]:
            ch.basic_ack(delivery_tag=unacked[1], multiple=True)
            st.acked(unacked[0])
            unacked[0] = 0

    def on_message(chan, method, props, body):
        st.ids.append(int(body))
        if method.redelivered:
            st.redelivered += 1
        if delay:
            time.sleep(delay)
            chan.basic_ack(delivery_tag=method.delivery_tag)
            st.acked(1)
            return
        unacked[0] += 1
        unacked[1] = method.delivery_tag
        if unacked[0] >= every:
            flush()

    ch.basic_consume(tag, on_message)
    ready.set()
    while not stop.is_set():
        c.process_data_events(time_limit=0.1)
        flush()  # what the read delivered, acked once it is drained
    c.close()


CONSUME = {"tocsin": consume_tocsin, "redis": consume_redis, "rabbitmq": consume_rabbitmq}


def consumer_main(system, addr, tag, prefetch, delay, ready, stop, counter, out, idx):
    st = Stats(counter)
    try:
        CONSUME[system](addr, tag, prefetch, delay, st, ready, stop)
        out.put({"idx": idx, "ids": st.ids.tobytes(), "last_ack": st.last_ack,
                 "redelivered": st.redelivered, "ack_errors": st.ack_errors, "notes": st.notes})
    except BaseException:
        out.put({"idx": idx, "error": traceback.format_exc()})


# --------------------------------------------------------------------------------------------

def measure(server, measure_name, events, consumers, timeout, label):
    """consumers: [(prefetch, delay_s)]. Returns one result record."""
    system = server.name
    tag = f"oneof{uuid.uuid4().hex[:8]}"
    server.prepare(tag)
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    counter = ctx.Value("q", 0)
    out = ctx.Queue()
    readies = [ctx.Event() for _ in consumers]
    procs = [ctx.Process(target=consumer_main, daemon=True,
                         args=(system, server.addr, tag, pf, delay, readies[i], stop, counter, out, i))
             for i, (pf, delay) in enumerate(consumers)]
    results = {}

    def collect(block_until):
        while len(results) < len(procs):
            left = block_until - time.monotonic()
            try:
                r = out.get(timeout=max(0.01, left)) if left > 0 else out.get_nowait()
            except Exception:
                return
            results[r["idx"]] = r

    def check_alive():
        collect(0)
        for r in results.values():
            if "error" in r:
                raise Failure(f"{system} consumer {r['idx']} failed:\n{r['error']}")
        for i, p in enumerate(procs):
            if p.exitcode is not None and i not in results:
                raise Failure(f"{system} consumer {i} exited with {p.exitcode}")

    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + 60
        for r in readies:
            while not r.wait(0.1):
                check_alive()
                if time.monotonic() > deadline:
                    raise Failure(f"{system}: a consumer did not subscribe within 60 s")
        note = server.credit_note(len(consumers))
        t0 = time.monotonic()
        PUBLISH[system](server.addr, tag, events)
        published = time.monotonic() - t0
        deadline = t0 + timeout
        while counter.value < events:
            check_alive()
            if time.monotonic() > deadline:
                raise Failure(f"{counter.value} of {events} events acked after "
                              f"{timeout:g} s (--timeout)")
            time.sleep(0.005)
        time.sleep(0.3)  # room for a duplicate to show
        stop.set()
        collect(time.monotonic() + 30)
        check_alive()
        if len(results) < len(procs):
            raise Failure(f"{system}: consumers did not report within 30 s of the stop")
    finally:
        stop.set()
        for p in procs:
            p.join(5)
            if p.exitcode is None:
                p.kill()
                p.join(5)
        try:
            server.cleanup(tag)
        except Exception as e:
            log(f"{system}: cleanup of {tag}: {e}")

    seen = bytearray(events)
    total = 0
    stray = 0
    per = []
    notes = [note] if note else []
    redelivered = ack_errors = 0
    for i in range(len(procs)):
        r = results[i]
        ids = array.array("i")
        ids.frombytes(r["ids"])
        per.append(len(ids))
        total += len(ids)
        for x in ids:
            if 0 <= x < events:
                if seen[x] < 255:
                    seen[x] += 1
            else:
                stray += 1
        redelivered += r["redelivered"]
        ack_errors += r["ack_errors"]
        for n in r["notes"]:
            if n not in notes:
                notes.append(n)
    lost = seen.count(0)
    dup = total - stray - (events - lost)
    last = max(r["last_ack"] for r in results.values())
    seconds = last - t0
    if redelivered:
        notes.append(f"{redelivered} redelivered")
    if ack_errors:
        notes.append(f"{ack_errors} ack errors")
    if stray:
        notes.append(f"{stray} ids out of range")
    return {"system": system, "measure": measure_name, "label": label, "events": events,
            "consumers": len(consumers),
            "prefetch": consumers[0][0], "slow_ms": [round(d * 1000) for _, d in consumers],
            "seconds": round(seconds, 4), "events_per_s": round(events / seconds) if seconds else None,
            "publish_seconds": round(published, 4), "per_consumer": per, "lost": lost,
            "duplicates": dup + stray, "notes": notes}


def run_system(server, a, results, skipped, versions, failures):
    log(f"{server.name}: starting")
    try:
        server.start()
    except Skip as e:
        skipped[server.name] = str(e)
        log(f"{server.name}: skipped: {e}")
        return
    except Exception as e:
        skipped[server.name] = f"did not start: {e}"
        log(f"{server.name}: skipped: did not start: {e}")
        server.stop()
        return
    except BaseException:
        server.stop()  # interrupted while it started
        raise
    try:
        versions[server.name] = server.version
        log(f"{server.name}: {server.version}")
        events = a.events
        if server.name == "rabbitmq" and a.rabbitmq_events:
            events = a.rabbitmq_events
        runs = [("rate", events, [(a.prefetch, 0.0)] * a.consumers, "rate with acks")]
        slow = a.slow_ms / 1000
        runs.append(("split", a.split_events, [(1, slow), (1, 0.0)], "fast+slow, prefetch 1"))
        if server.name == "tocsin":
            runs.append(("split", a.split_events, [(None, slow), (None, 0.0)],
                         "fast+slow, default prefetch"))
        runs.append(("alone", a.split_events, [(1, 0.0)], "fast alone, prefetch 1"))
        for measure_name, n, consumers, label in runs:
            log(f"{server.name}: {label}: {n} events, {len(consumers)} consumers")
            try:
                r = measure(server, measure_name, n, consumers, a.timeout, label)
            except Failure as e:
                failures.append(f"{server.name} {label}: {e}")
                log(f"{server.name}: {label}: FAILED: {e}")
                continue
            r["notes"] = server.notes + r["notes"]
            results.append(r)
            log(f"{server.name}: {label}: {r['seconds']:.3f} s, {r['per_consumer']}, "
                f"lost {r['lost']}, dup {r['duplicates']}")
    finally:
        log(f"{server.name}: stopping")
        server.stop()


def fmt_table(rows, header):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    out = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))
    return "\n".join(out)


def report(results, skipped, versions, failures, a):
    print(f"one-of delivery, peers side by side ({time.strftime('%Y-%m-%d %H:%M %Z')}, "
          f"{os.cpu_count()} CPUs, nice {a.nice})")
    for k, v in versions.items():
        print(f"  {k}: {v}")
    for k, v in skipped.items():
        print(f"  {k}: skipped: {v}")
    print()
    print("1. Rate with acks: one producer, every event acked, acks batched "
          "(seconds: first publish -> last ack;")
    print("   publish s: how long the one Python producer took to publish them all: "
          "when it is close to seconds, the producer set the rate)")
    rows = [[r["system"], f"{r['events']:,}", r["consumers"], r["prefetch"], f"{r['seconds']:.3f}",
             f"{r['events_per_s']:,}", f"{r['publish_seconds']:.3f}",
             "/".join(map(str, r["per_consumer"])), r["lost"], r["duplicates"],
             "; ".join(r["notes"])] for r in results if r["measure"] == "rate"]
    print(fmt_table(rows, ["system", "events", "consumers", "prefetch", "seconds", "acked/s",
                           "publish s", "per consumer", "lost", "dup", "notes"]))
    print()
    print(f"2. Fast+slow split: {a.split_events:,} events, one consumer sleeps {a.slow_ms} ms per "
          "event before its ack, the other acks at once (seconds: first publish -> last ack)")
    alone = {r["system"]: r["seconds"] for r in results if r["measure"] == "alone"}
    rows = []
    for r in results:
        if r["measure"] not in ("split", "alone"):
            continue
        pf = "default" if r["prefetch"] is None else r["prefetch"]
        ratio = (f"{r['seconds'] / alone[r['system']]:.2f}"
                 if r["measure"] == "split" and alone.get(r["system"]) else "")
        counts = ("slow " + "/fast ".join(map(str, r["per_consumer"])) if r["measure"] == "split"
                  else f"fast {r['per_consumer'][0]}")
        rows.append([r["system"], r["label"], f"{r['events']:,}", r["consumers"], pf,
                     f"{r['seconds']:.3f}", f"{r['events_per_s']:,}", ratio, counts, r["lost"],
                     r["duplicates"], "; ".join(r["notes"])])
    print(fmt_table(rows, ["system", "run", "events", "consumers", "prefetch", "seconds",
                           "events/s", "split/alone", "handled", "lost", "dup", "notes"]))
    if failures:
        print()
        for f in failures:
            print(f"FAILED: {f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_tocsind = next((os.path.join(REPO, d, "tocsind") for d in ("build/bench", "build/debug")
                            if os.access(os.path.join(REPO, d, "tocsind"), os.X_OK)), None)
    p.add_argument("--tocsind", default=default_tocsind,
                   help="the daemon (default build/bench/tocsind, else build/debug/tocsind)")
    p.add_argument("--only", default="tocsin,redis,rabbitmq",
                   help="comma-separated systems among tocsin, redis, rabbitmq")
    p.add_argument("--events", type=int, default=200000, help="events for the rate measure")
    p.add_argument("--rabbitmq-events", type=int, default=None,
                   help="events for RabbitMQ's rate measure (default: --events)")
    p.add_argument("--consumers", type=int, default=4, help="consumers for the rate measure")
    p.add_argument("--prefetch", type=int, default=100, help="prefetch for the rate measure")
    p.add_argument("--split-events", type=int, default=2000)
    p.add_argument("--slow-ms", type=int, default=20)
    p.add_argument("--timeout", type=float, default=300, help="deadline of each measure, seconds")
    p.add_argument("--rabbitmq-start-timeout", type=float, default=60)
    p.add_argument("--nice", type=int, default=10, help="niceness of this script and its servers")
    p.add_argument("--json", action="store_true", help="print the results as JSON, not tables")
    a = p.parse_args()
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    bad = [s for s in only if s not in ("tocsin", "redis", "rabbitmq")]
    if bad or not only:
        p.error(f"--only: unknown system {bad}: choose among tocsin, redis, rabbitmq")
    if a.events < 1 or a.consumers < 1 or a.prefetch < 1 or a.split_events < 1:
        p.error("--events, --consumers, --prefetch and --split-events must be at least 1")
    if a.nice:
        os.nice(a.nice)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    results, skipped, versions, failures = [], {}, {}, []
    servers = {"tocsin": lambda: Tocsin(a.tocsind, max(a.events, a.split_events)),
               "redis": Redis, "rabbitmq": lambda: RabbitMQ(a.rabbitmq_start_timeout)}
    for name in only:
        run_system(servers[name](), a, results, skipped, versions, failures)

    bad_counts = [r for r in results if r["lost"] or r["duplicates"]]
    for r in bad_counts:
        failures.append(f"{r['system']} {r['label']}: {r['lost']} lost, {r['duplicates']} duplicates")
    if a.json:
        json.dump({"cpus": os.cpu_count(), "nice": a.nice, "versions": versions,
                   "skipped": skipped, "results": results, "failures": failures},
                  sys.stdout, indent=1)
        print()
    else:
        report(results, skipped, versions, failures, a)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

// tocsin_load — end-to-end load tool for tocsind (issue 3; results in docs/BENCHMARKS.md).
//
// One run: start a tocsind on a temp config and temp socket (or use --socket), fork+exec N
// subscriber processes and one raiser process (this binary again, in the hidden --role modes),
// raise --events events of signal `bench` (100), and check and report what every subscriber got.
//
//   coordinator (no threads)
//     ├─ tocsind --config TMP/tocsin.yaml --socket TMP/s.sock --log-level warn
//     ├─ N × tocsin_load --role subscriber   fd 3: result pipe ('R' when subscribed, then JSON)
//     │                                       fd 4: control pipe (EOF = the raiser is done)
//     └─ 1 × tocsin_load --role raiser        fd 3: result pipe (JSON)
//
// Clocks: every time stamp is CLOCK_MONOTONIC in ns, which is system-wide, so times taken in
// different processes of one machine compare directly. The raiser writes its send time as the
// first 20 characters of each payload (zero-padded decimal); a subscriber's latency for an event
// is the time right after the read() that returned it minus that stamp.
//
// Throughput: raise rate = events / (first send .. last reply, in the raiser);
// delivery rate = deliveries / (first send .. the last subscriber's last event).
//
// One-of mode (--one-of, issue 15): signal `bench` goes to `target: subscriber`; every subscriber
// subscribes with ack (and --prefetch), acks what it handled in notifications of --ack-batch seqs
// (and whenever its socket is drained, so credit comes back), and the first --slow of them spend
// --delay-us on each event. The run FAILS when the subscribers' counts do not add up to the
// events raised, when the seqs they saw (summed, and their squares summed) are not the raised
// range, when an event comes with a delivery number other than 1 (given twice), or out of order
// for a subscriber. Rate: events / (first send .. the last ack sent).
//
// Loss accounting (the run FAILS otherwise): for every subscriber, received + the `dropped` of
// every overflow notice == events raised; its seqs strictly increase (no duplicate, no reordering,
// overflow ranges included); when the daemon gave our raises contiguous seqs (always so with our
// own daemon), every seq of that range is accounted for: delivered, or inside an overflow range.
//
// Bounds: every loop is bounded by a count and by --timeout (per run); on timeout the run fails
// with a message and every process it started is killed.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Json = nlohmann::json;

constexpr int kSignal = 100;  // signal `bench` in the config we write
constexpr std::string_view kSignalName = "bench";
constexpr int kResultFd = 3;      // in a child: where it reports
constexpr int kControlFd = 4;     // in a subscriber: EOF when the raiser is done
constexpr int kStampDigits = 20;  // send time at the start of every payload
constexpr std::int64_t kIdleGraceNs = 2'000'000'000;  // after the raiser is done
constexpr std::size_t kReadChunk = std::size_t{256} * 1024;

// ------------------------------------------------------------------------------------------
// Small helpers

std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

void write_all(int fd, std::string_view data, std::int64_t deadline) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (now_ns() > deadline) throw Failure("timed out writing");
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    throw Failure(errno_text("write"));
  }
}

void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) throw Failure("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Failure(errno_text("socket"));
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

// Parses an unsigned decimal at s[pos...]; advances pos. False if there is no digit.
inline bool parse_u64(std::string_view s, std::size_t& pos, std::uint64_t& out) {
  auto [ptr, ec] = std::from_chars(s.data() + pos, s.data() + s.size(), out);
  if (ec != std::errc()) return false;
  pos = static_cast<std::size_t>(ptr - s.data());
  return true;
}

inline bool expect(std::string_view s, std::size_t& pos, std::string_view lit) {
  if (s.substr(pos, lit.size()) != lit) return false;
  pos += lit.size();
  return true;
}

// Reads whole lines from a non-blocking fd. Lines may be up to `max_line` bytes.
class LineReader {
 public:
  explicit LineReader(std::size_t max_line) : max_line_(max_line), buf_(2 * kReadChunk) {}

  // One read(). Returns bytes read, 0 on EOF, -1 if nothing is available (EAGAIN).
  ssize_t fill(int fd) {
    if (begin_ > 0 && (end_ == begin_ || buf_.size() - end_ < kReadChunk)) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < kReadChunk) {
      if (buf_.size() > max_line_ + 2 * kReadChunk) throw Failure("a line longer than the limit");
      buf_.resize(buf_.size() * 2);
    }
    for (;;) {
      std::size_t room = buf_.size() - end_;
      ssize_t n = ::read(fd, buf_.data() + end_, room);
      if (n >= 0) {
        end_ += static_cast<std::size_t>(n);
        short_ = static_cast<std::size_t>(n) < room;
        return n;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return -1;
      throw Failure(errno_text("read"));
    }
  }

  // The last read() returned less than it asked for: the socket was (very likely) drained, so
  // the next read() can wait for poll() instead of costing a syscall that says EAGAIN.
  bool drained() const { return short_; }

  // Calls f(line) for every complete line (without '\n').
  template <class F>
  void lines(F&& f) {
    while (begin_ < end_) {
      const char* start = buf_.data() + begin_;
      const void* nl = std::memchr(start, '\n', end_ - begin_);
      if (!nl) break;
      std::size_t len = static_cast<std::size_t>(static_cast<const char*>(nl) - start);
      begin_ += len + 1;
      f(std::string_view(start, len));
    }
  }

 private:
  std::size_t max_line_;
  std::vector<char> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  bool short_ = false;
};

// ------------------------------------------------------------------------------------------
// Latency histogram: exact below 128 ns, then 64 buckets per power of two (< 1.6% relative
// error). Every delivery is counted; percentiles report the upper edge of their bucket (never
// flattering), capped at the exact maximum.

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr std::uint64_t kSub = 1u << kSubBits;
  static constexpr std::size_t kBuckets = kSub + 57 * (kSub / 2);

  Histogram() : counts_(kBuckets, 0) {}

  static std::size_t index(std::uint64_t v) {
    if (v < kSub) return static_cast<std::size_t>(v);
    int msb = 63 - std::countl_zero(v);
    int shift = msb - kSubBits + 1;
    std::uint64_t top = v >> shift;  // in [kSub/2, kSub)
    return static_cast<std::size_t>(kSub + static_cast<std::uint64_t>(shift - 1) * (kSub / 2) +
                                    (top - kSub / 2));
  }
  static std::uint64_t upper(std::size_t i) {
    if (i < kSub) return i;
    std::uint64_t shift = (i - kSub) / (kSub / 2) + 1;
    std::uint64_t top = (i - kSub) % (kSub / 2) + kSub / 2;
    return ((top + 1) << shift) - 1;
  }

  void add(std::int64_t v) {
    std::uint64_t u = v < 0 ? 0 : static_cast<std::uint64_t>(v);
    ++counts_[index(u)];
    ++count_;
    sum_ += u;
    max_ = std::max(max_, u);
  }
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    count_ += o.count_;
    sum_ += o.sum_;
    max_ = std::max(max_, o.max_);
  }
  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }
  std::uint64_t percentile(double q) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper(i), max_);
    }
    return max_;
  }

  Json to_json() const {
    Json sparse = Json::array();
    for (std::size_t i = 0; i < kBuckets; ++i) {
      if (counts_[i]) sparse.push_back({i, counts_[i]});
    }
    return {{"buckets", sparse}, {"count", count_}, {"sum", sum_}, {"max", max_}};
  }
  static Histogram from_json(const Json& j) {
    Histogram h;
    for (const auto& b : j.at("buckets")) {
      auto i = b.at(0).get<std::size_t>();
      if (i >= kBuckets) throw Failure("bad histogram bucket");
      h.counts_[i] = b.at(1).get<std::uint64_t>();
    }
    h.count_ = j.at("count").get<std::uint64_t>();
    h.sum_ = j.at("sum").get<std::uint64_t>();
    h.max_ = j.at("max").get<std::uint64_t>();
    return h;
  }

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t max_ = 0;
};

// ------------------------------------------------------------------------------------------
// Options

struct Options {
  std::string role;  // "" (coordinator), "subscriber", "raiser"
  std::string socket;
  std::string tocsind;
  int subscribers = 1;
  std::uint64_t events = 1'000'000;
  std::string mode = "pipelined";
  std::uint64_t batch = 100;
  std::uint64_t window = 16;
  double rate = 0;
  std::size_t payload_bytes = 32;
  std::uint64_t queue = 65536;
  double timeout = 120;
  int runs = 1;
  bool json = false;
  // One-of mode (issue 15): `target: subscriber`; every subscriber acks, with this credit, acks
  // batched into notifications; the first `slow` subscribers spend `delay_us` on each event.
  bool one_of = false;
  std::uint64_t prefetch = 0;  // 0: the daemon's limits.prefetch
  std::uint64_t ack_batch = 64;
  int slow = 0;
  std::uint64_t delay_us = 0;
  std::int64_t deadline_ns = 0;  // children: absolute CLOCK_MONOTONIC deadline
};

// ------------------------------------------------------------------------------------------
// Subscriber role

constexpr std::string_view kEventPrefix = R"({"jsonrpc":"2.0","method":"signal","params":{"seq":)";
constexpr std::string_view kPayloadKey = R"("payload":")";
constexpr std::string_view kDeliveryKey = R"("delivery":)";

struct SubscriberState {
  std::uint64_t expected = 0;
  std::uint64_t received = 0;
  std::uint64_t dropped = 0;
  std::uint64_t overflow_notices = 0;
  std::uint64_t last_seq = 0;    // newest seq seen, event or overflow range
  std::uint64_t first_seq = 0;   // oldest seq seen, event or overflow range
  std::uint64_t gap_events = 0;  // seqs skipped that no overflow notice covered
  std::uint64_t order_errors = 0;
  std::uint64_t bad_lines = 0;
  std::string first_error;
  std::int64_t first_recv_ns = 0;
  std::int64_t last_recv_ns = 0;
  Histogram latency;
  // One-of: what to ack, and what was seen (sums over seqs, compared across subscribers).
  bool one_of = false;
  std::vector<std::uint64_t> to_ack;
  std::uint64_t redelivered = 0;  // events with delivery != 1: given twice
  std::uint64_t seq_sum = 0;
  std::uint64_t seq_square_sum = 0;  // (mod 2^64)

  void error(std::string e) {
    if (first_error.empty()) first_error = std::move(e);
  }
  // Records that seqs [a, b] were seen (delivered or reported dropped), in order.
  void see(std::uint64_t a, std::uint64_t b) {
    if (last_seq != 0 && a <= last_seq) {
      ++order_errors;
      error("seq " + std::to_string(a) + " after seq " + std::to_string(last_seq) +
            " (duplicate or out of order)");
      return;
    }
    if (first_seq == 0) first_seq = a;
    if (last_seq != 0) gap_events += a - last_seq - 1;
    last_seq = b;
  }

  void on_line(std::string_view line, std::int64_t t) {
    if (line.starts_with(kEventPrefix)) {
      std::size_t pos = kEventPrefix.size();
      std::uint64_t seq = 0;
      std::size_t p = line.find(kPayloadKey, pos);
      std::uint64_t stamp = 0;
      if (!parse_u64(line, pos, seq) || p == std::string_view::npos) {
        ++bad_lines;
        error("unparsable event: " + std::string(line.substr(0, 200)));
        return;
      }
      p += kPayloadKey.size();
      if (!parse_u64(line, p, stamp)) {
        ++bad_lines;
        error("event without a send time in its payload: " + std::string(line.substr(0, 200)));
        return;
      }
      if (received == 0) first_recv_ns = t;
      last_recv_ns = t;
      ++received;
      see(seq, seq);
      latency.add(t - static_cast<std::int64_t>(stamp));
      if (one_of) {
        std::size_t d = line.find(kDeliveryKey, p);
        std::uint64_t delivery = 0;
        if (d == std::string_view::npos ||
            !parse_u64(line, d += kDeliveryKey.size(), delivery)) {
          ++bad_lines;
          error("a one-of event without its delivery number: " +
                std::string(line.substr(0, 200)));
        } else if (delivery != 1) {
          ++redelivered;
          error("seq " + std::to_string(seq) + " came as delivery " + std::to_string(delivery));
        }
        to_ack.push_back(seq);
        seq_sum += seq;
        seq_square_sum += seq * seq;
      }
      return;
    }
    Json j = Json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.value("method", "") == "overflow") {
      const Json& p = j.at("params");
      auto n = p.at("dropped").get<std::uint64_t>();
      auto a = p.at("first_seq").get<std::uint64_t>();
      auto b = p.at("last_seq").get<std::uint64_t>();
      ++overflow_notices;
      dropped += n;
      see(a, b);
      // With only our events in the range, it holds exactly the N lost seqs; a wider range hides
      // seqs neither delivered nor counted (the coordinator relies on this only when our raises
      // got contiguous seqs, i.e. no other event was raised meanwhile).
      if (b >= a && b - a + 1 > n) gap_events += (b - a + 1) - n;
      last_recv_ns = t;
      return;
    }
    ++bad_lines;
    error("unexpected line: " + std::string(line.substr(0, 200)));
  }

  std::uint64_t accounted() const { return received + dropped; }
};

int run_subscriber(const Options& o) {
  ::signal(SIGPIPE, SIG_IGN);
  SubscriberState st;
  st.expected = o.events;
  st.one_of = o.one_of;
  std::int64_t last_ack_ns = 0;
  std::uint64_t ack_messages = 0;
  int sock = -1;
  std::string ack_line;
  // Sends what is to be acked as one notification (no reply comes).
  auto flush_acks = [&] {
    if (st.to_ack.empty()) return;
    ack_line.assign(R"({"jsonrpc":"2.0","method":"ack","params":{"seqs":[)");
    for (std::size_t i = 0; i < st.to_ack.size(); ++i) {
      if (i) ack_line += ',';
      ack_line += std::to_string(st.to_ack[i]);
    }
    ack_line += "]}}\n";
    write_all(sock, ack_line, o.deadline_ns);
    st.to_ack.clear();
    ++ack_messages;
    last_ack_ns = now_ns();
  };
  // A slow worker's handler: `delay_us` of work per event, then its ack.
  auto handle = [&](std::string_view line, std::int64_t t) {
    st.on_line(line, t);
    if (!o.one_of || st.to_ack.empty()) return;
    if (o.delay_us > 0) {
      timespec ts{static_cast<time_t>(o.delay_us / 1'000'000),
                  static_cast<long>(o.delay_us % 1'000'000) * 1000};
      while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
      }
      flush_acks();
    } else if (st.to_ack.size() >= o.ack_batch) {
      flush_acks();
    }
  };
  auto report = [&](const std::string& fatal) {
    Json result = {{"received", st.received},
                   {"dropped", st.dropped},
                   {"overflow_notices", st.overflow_notices},
                   {"first_seq", st.first_seq},
                   {"last_seq", st.last_seq},
                   {"gap_events", st.gap_events},
                   {"order_errors", st.order_errors},
                   {"bad_lines", st.bad_lines},
                   {"first_error", st.first_error},
                   {"first_recv_ns", st.first_recv_ns},
                   {"last_recv_ns", st.last_recv_ns},
                   {"latency", st.latency.to_json()},
                   {"redelivered", st.redelivered},
                   {"seq_sum", st.seq_sum},
                   {"seq_square_sum", st.seq_square_sum},
                   {"last_ack_ns", last_ack_ns},
                   {"ack_messages", ack_messages},
                   {"fatal", fatal}};
    try {
      write_all(kResultFd, result.dump() + "\n", o.deadline_ns + 5'000'000'000);
    } catch (const std::exception&) {
      return 4;
    }
    return fatal.empty() ? 0 : 1;
  };
  try {
    int fd = connect_unix(o.socket);
    if (fd < 0) throw Failure(errno_text(("connect " + o.socket).c_str()));
    sock = fd;
    std::string sub = R"({"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"signals":[")" +
                      std::string(kSignalName) + "\"]";
    if (o.one_of) {
      sub += R"(,"ack":true)";
      if (o.prefetch > 0) sub += R"(,"prefetch":)" + std::to_string(o.prefetch);
    }
    sub += "}}\n";
    write_all(fd, sub, o.deadline_ns);
    set_nonblocking(fd);
    LineReader reader(1 << 20);
    // The subscribe reply; nothing else can come before it.
    bool subscribed = false;
    while (!subscribed) {
      if (now_ns() > o.deadline_ns) throw Failure("timed out waiting for the subscribe reply");
      ssize_t n = reader.fill(fd);
      if (n == 0) throw Failure("the daemon closed the connection before the subscribe reply");
      if (n < 0) {
        pollfd p{fd, POLLIN, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      reader.lines([&](std::string_view line) {
        Json j = Json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("result") ||
            !j["result"].contains("subscription")) {
          throw Failure("subscribe failed: " + std::string(line));
        }
        subscribed = true;
      });
    }
    write_all(kResultFd, "R", o.deadline_ns);  // subscribed: the coordinator may start raising

    bool control_open = true;
    bool readable = true;         // worth a read() before the next poll()
    std::int64_t idle_since = 0;  // once the raiser is done: last time anything arrived
    while (o.one_of || st.accounted() < st.expected) {
      std::int64_t now = now_ns();
      if (now > o.deadline_ns) {
        throw Failure("timed out: " + std::to_string(st.received) + " received + " +
                      std::to_string(st.dropped) + " reported dropped of " +
                      std::to_string(st.expected));
      }
      if (!control_open && now - idle_since > kIdleGraceNs) break;  // nothing more will come
      if (readable) {
        ssize_t n = reader.fill(fd);
        if (n == 0) throw Failure("the daemon closed the connection");
        readable = n > 0 && !reader.drained();
        if (n > 0) {
          std::int64_t t = now_ns();
          reader.lines([&](std::string_view line) { handle(line, t); });
          // Nothing more to read now: ack what was handled, so credit comes back.
          if (!readable) flush_acks();
          if (!control_open) idle_since = t;
          continue;
        }
      }
      pollfd p[2] = {{fd, POLLIN, 0}, {control_open ? kControlFd : -1, POLLIN, 0}};
      std::int64_t limit =
          control_open ? o.deadline_ns : std::min(o.deadline_ns, idle_since + kIdleGraceNs);
      int ms = static_cast<int>(std::clamp<std::int64_t>((limit - now) / 1'000'000 + 1, 1, 1000));
      ::poll(p, 2, ms);
      if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) readable = true;
      if (control_open && (p[1].revents & (POLLIN | POLLHUP))) {
        char c;
        if (::read(kControlFd, &c, 1) <= 0) {
          control_open = false;
          idle_since = now_ns();
        }
      }
    }
    flush_acks();
    ::close(fd);
  } catch (const std::exception& e) {
    return report(e.what());
  }
  return report("");
}

// ------------------------------------------------------------------------------------------
// Raiser role

struct RaiserState {
  std::vector<std::uint64_t> seq_by_id;  // index: request id (1..E); 0 = no reply yet
  std::uint64_t replied = 0;
  std::uint64_t errors = 0;
  std::string first_error;
  void error(std::string e) {
    ++errors;
    if (first_error.empty()) first_error = std::move(e);
  }
  void record(std::uint64_t id, std::uint64_t seq) {
    if (id == 0 || id >= seq_by_id.size()) {
      return error("reply with unknown id " + std::to_string(id));
    }
    if (seq_by_id[id] != 0) return error("two replies for id " + std::to_string(id));
    seq_by_id[id] = seq;
    ++replied;
  }
  // Fast path for the daemon's reply encodings ({"jsonrpc":"2.0","id":N,"result":{"seq":S}} or
  // {"id":N,"jsonrpc":"2.0",...}, alone or in an array); anything else (an error reply) goes
  // through nlohmann.
  bool fast(std::string_view line) {
    std::size_t pos = 0;
    bool array = !line.empty() && line[0] == '[';
    if (array) pos = 1;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> found;
    for (;;) {
      std::uint64_t id = 0, seq = 0;
      // The fast raise path writes "jsonrpc" first; nlohmann (the full path) sorts "id" first.
      bool ok = expect(line, pos, R"({"jsonrpc":"2.0","id":)")
                    ? parse_u64(line, pos, id) && expect(line, pos, R"(,"result":{"seq":)")
                    : expect(line, pos, R"({"id":)") && parse_u64(line, pos, id) &&
                          expect(line, pos, R"(,"jsonrpc":"2.0","result":{"seq":)");
      if (!ok || !parse_u64(line, pos, seq) || !expect(line, pos, "}}")) return false;
      found.emplace_back(id, seq);
      if (!array) {
        if (pos != line.size()) return false;
        break;
      }
      if (expect(line, pos, ",")) continue;
      if (!expect(line, pos, "]") || pos != line.size()) return false;
      break;
    }
    for (auto [id, seq] : found) record(id, seq);
    return true;
  }
  void slow_one(const Json& r) {
    if (!r.is_object()) return error("unexpected reply element: " + r.dump());
    auto id = r.contains("id") && r["id"].is_number_unsigned() ? r["id"].get<std::uint64_t>() : 0;
    if (r.contains("error")) {
      error("raise " + std::to_string(id) + " failed: " + r["error"].dump());
      if (id > 0 && id < seq_by_id.size() && seq_by_id[id] == 0) {
        seq_by_id[id] = UINT64_MAX;  // answered, with an error
        ++replied;
      }
      return;
    }
    if (r.contains("result") && r["result"].contains("seq")) {
      return record(id, r["result"]["seq"].get<std::uint64_t>());
    }
    error("unexpected reply: " + r.dump());
  }
  void on_line(std::string_view line) {
    if (fast(line)) return;
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded()) return error("unparsable reply: " + std::string(line.substr(0, 200)));
    if (j.is_array()) {
      for (const auto& r : j) slow_one(r);
    } else {
      slow_one(j);
    }
  }
};

void append_payload(std::string& out, std::int64_t stamp, std::size_t payload_bytes) {
  char digits[kStampDigits + 1];
  std::snprintf(digits, sizeof digits, "%020lld", static_cast<long long>(stamp));
  out.append(digits, kStampDigits);
  if (payload_bytes > kStampDigits) out.append(payload_bytes - kStampDigits, 'x');
}

int run_raiser(const Options& o) {
  ::signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // pacing sleeps wake on time
  const bool sync = o.mode == "sync";
  const std::uint64_t batch = sync ? 1 : o.batch;
  const std::uint64_t window_events = sync ? 1 : o.window * o.batch;
  const std::uint64_t E = o.events;
  RaiserState st;
  st.seq_by_id.assign(E + 1, 0);
  std::uint64_t sent = 0;
  std::int64_t first_send = 0, last_reply = 0;
  std::string fatal;
  try {
    int fd = connect_unix(o.socket);
    if (fd < 0) throw Failure(errno_text(("connect " + o.socket).c_str()));
    set_nonblocking(fd);
    LineReader reader(1 << 20);
    std::string out;
    out.reserve(batch * (100 + o.payload_bytes) + 16);
    std::size_t out_off = 0;
    bool readable = true;  // worth a read() before the next poll()
    const std::string head = R"({"jsonrpc":"2.0","id":)";
    const std::string mid =
        R"(,"method":"raise","params":{"signal":)" + std::to_string(kSignal) + R"(,"payload":")";
    const double ns_per_event = o.rate > 0 ? 1e9 / o.rate : 0;
    while (st.replied < E) {
      std::int64_t now = now_ns();
      if (now > o.deadline_ns) {
        throw Failure("timed out: " + std::to_string(sent) + " raises sent, " +
                      std::to_string(st.replied) + " replies of " + std::to_string(E));
      }
      bool progress = false;
      std::int64_t due = 0;
      // Build the next batch when the previous one is written and the window allows it.
      if (out_off == out.size() && sent < E) {
        std::uint64_t n = std::min(batch, E - sent);
        if (sent - st.replied + n <= window_events) {
          if (ns_per_event > 0 && sent > 0) {
            due = first_send + static_cast<std::int64_t>(static_cast<double>(sent) * ns_per_event);
          }
          if (due <= now) {
            due = 0;
            out.clear();
            out_off = 0;
            std::int64_t stamp = now_ns();
            if (sent == 0) first_send = stamp;
            bool array = !sync && batch > 1;
            if (array) out += '[';
            for (std::uint64_t i = 0; i < n; ++i) {
              if (i) out += ',';
              out += head;
              out += std::to_string(sent + i + 1);
              out += mid;
              append_payload(out, stamp, o.payload_bytes);
              out += "\"}}";
            }
            if (array) out += ']';
            out += '\n';
            sent += n;
          }
        }
      }
      if (out_off < out.size()) {
        ssize_t w = ::write(fd, out.data() + out_off, out.size() - out_off);
        if (w > 0) {
          out_off += static_cast<std::size_t>(w);
          progress = true;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          throw Failure(errno_text("write to the daemon"));
        }
      }
      ssize_t r = readable ? reader.fill(fd) : -1;
      if (r == 0) throw Failure("the daemon closed the connection");
      if (readable) readable = r > 0 && !reader.drained();
      if (r > 0) {
        progress = true;
        reader.lines([&](std::string_view line) { st.on_line(line); });
        last_reply = now_ns();
        if (st.errors > 0) throw Failure(st.first_error);
      }
      if (progress) continue;
      // Nothing to do right now: wait for a reply, for room to write, or for the next deadline.
      // While paced (waiting for `due`) replies do not wake us: they are read after the next
      // send, which halves the raiser's wake-ups (and the CPU it takes from the daemon).
      short events = static_cast<short>((due ? 0 : POLLIN) | (out_off < out.size() ? POLLOUT : 0));
      pollfd p{events ? fd : -1, events, 0};
      std::int64_t limit =
          due ? std::min(due, o.deadline_ns) : std::min(now + 100'000'000, o.deadline_ns);
      std::int64_t wait = std::max<std::int64_t>(limit - now_ns(), 0);
      timespec ts{static_cast<time_t>(wait / 1'000'000'000),
                  static_cast<long>(wait % 1'000'000'000)};
      ::ppoll(&p, 1, &ts, nullptr);
      if (due || (p.revents & (POLLIN | POLLHUP | POLLERR))) readable = true;
    }
    ::close(fd);
  } catch (const std::exception& e) {
    fatal = e.what();
  }
  // Seqs must increase with the request id; on our own daemon they are contiguous.
  std::uint64_t first_seq = 0, last_seq = 0, non_contiguous = 0, decreasing = 0;
  for (std::uint64_t id = 1; id <= E; ++id) {
    std::uint64_t s = st.seq_by_id[id];
    if (s == 0 || s == UINT64_MAX) continue;
    if (first_seq == 0) first_seq = s;
    if (last_seq != 0) {
      if (s <= last_seq) {
        ++decreasing;
      } else if (s != last_seq + 1) {
        ++non_contiguous;
      }
    }
    last_seq = s;
  }
  Json result = {{"sent", sent},
                 {"replied", st.replied},
                 {"errors", st.errors},
                 {"first_error", st.first_error},
                 {"first_send_ns", first_send},
                 {"last_reply_ns", last_reply},
                 {"first_seq", first_seq},
                 {"last_seq", last_seq},
                 {"non_contiguous", non_contiguous},
                 {"decreasing", decreasing},
                 {"fatal", fatal}};
  try {
    write_all(kResultFd, result.dump() + "\n", o.deadline_ns + 5'000'000'000);
  } catch (const std::exception&) {
    return 4;
  }
  return fatal.empty() ? 0 : 1;
}

// ------------------------------------------------------------------------------------------
// Coordinator

// SIGINT/SIGTERM to the coordinator: the current run fails, and what it started is killed and
// reaped and its temp files removed (RunScope) instead of being left behind.
volatile sig_atomic_t g_interrupted = 0;
extern "C" void on_interrupt(int) { g_interrupted = 1; }

struct Child {
  pid_t pid = -1;
  int result_fd = -1;  // read end
  std::string out;     // what it reported
  bool eof = false;
  int status = 0;
  rusage usage{};
  bool reaped = false;
};

double cpu_seconds(const rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// fork+exec argv with `fds` dup2'ed onto 3, 4, ... (every other descriptor we hold is CLOEXEC).
pid_t spawn(const std::vector<std::string>& args, const std::vector<int>& fds) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw Failure(errno_text("fork"));
  if (pid == 0) {
    // Only async-signal-safe calls until exec. Move the sources out of the way first.
    std::vector<int> tmp;
    for (int fd : fds) tmp.push_back(fcntl(fd, F_DUPFD_CLOEXEC, 64));
    for (std::size_t i = 0; i < tmp.size(); ++i) {
      if (tmp[i] < 0 || ::dup2(tmp[i], 3 + static_cast<int>(i)) < 0) _exit(127);
    }
    ::execv(argv[0], argv.data());
    const char msg[] = "tocsin_load: exec failed\n";
    ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
  }
  return pid;
}

// Waits for pid up to `deadline`; true if it was reaped.
bool reap(pid_t pid, std::int64_t deadline, int* status, rusage* usage) {
  for (;;) {
    pid_t r = ::wait4(pid, status, WNOHANG, usage);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return false;
    if (now_ns() > deadline) return false;
    ::usleep(5000);
  }
}

std::string self_exe() {
  std::vector<char> buf(4096);
  ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) throw Failure(errno_text("readlink /proc/self/exe"));
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

// Everything one run started; the destructor kills and reaps what is left and removes files.
class RunScope {
 public:
  ~RunScope() {
    for (auto& c : children) {
      if (c.result_fd >= 0) ::close(c.result_fd);
      if (c.pid > 0 && !c.reaped) {
        ::kill(c.pid, SIGKILL);
        reap(c.pid, now_ns() + 5'000'000'000, &c.status, &c.usage);
      }
    }
    if (control_write >= 0) ::close(control_write);
    if (control_read >= 0) ::close(control_read);
    if (daemon_pid > 0 && !daemon_reaped) {
      ::kill(daemon_pid, SIGTERM);
      int st;
      rusage u;
      if (!reap(daemon_pid, now_ns() + 5'000'000'000, &st, &u)) {
        ::kill(daemon_pid, SIGKILL);
        reap(daemon_pid, now_ns() + 5'000'000'000, &st, &u);
      }
    }
    if (!dir.empty()) {
      ::unlink((dir + "/tocsin.yaml").c_str());
      ::unlink((dir + "/s.sock").c_str());
      ::rmdir(dir.c_str());
    }
  }
  std::string dir;
  pid_t daemon_pid = -1;
  bool daemon_reaped = false;
  std::vector<Child> children;  // [0] is the raiser, then the subscribers
  int control_read = -1;
  int control_write = -1;
};

struct RunResult {
  bool ok = true;
  std::vector<std::string> failures;
  Json json;
  double raise_rate = 0, delivery_rate = 0;
  std::uint64_t p50 = 0, p99 = 0, p999 = 0, max = 0;
};

void start_daemon(const Options& o, RunScope& scope, std::string& socket_path,
                  std::int64_t deadline) {
  char tmpl[] = "/tmp/tocsin-load.XXXXXX";
  if (!::mkdtemp(tmpl)) throw Failure(errno_text("mkdtemp"));
  scope.dir = tmpl;
  socket_path = scope.dir + "/s.sock";
  std::string config = scope.dir + "/tocsin.yaml";
  {
    std::ofstream f(config);
    f << "# written by tocsin_load\n"
      << "limits: {subscriber_queue: " << o.queue
      << ", clients: 4096, line_bytes: 1048576, ack_timeout: 10m"
      // One-of: a pipelined raiser outruns acking subscribers, and what waits for credit sits
      // in the backlog: room for the whole run, as a broker's unbounded queue would have.
      << ", backlog: " << std::max<std::uint64_t>(65536, o.one_of ? 2 * o.events : 0) << "}\n"
      << "signals:\n"
      << "  " << kSignal << ": {name: " << kSignalName << ", handlers: [{target: "
      << (o.one_of ? "subscriber" : "subscribers") << "}]}\n";
    if (!f) throw Failure("cannot write " + config);
  }
  if (::access(o.tocsind.c_str(), X_OK) != 0) {
    throw Failure("tocsind not found or not executable: " + o.tocsind + " (use --tocsind)");
  }
  scope.daemon_pid =
      spawn({o.tocsind, "--config", config, "--socket", socket_path, "--log-level", "warn"}, {});
  std::int64_t limit = std::min(deadline, now_ns() + 10'000'000'000);
  for (;;) {
    int st;
    rusage u;
    if (::wait4(scope.daemon_pid, &st, WNOHANG, &u) == scope.daemon_pid) {
      scope.daemon_reaped = true;
      throw Failure("tocsind exited before it listened (" + describe_status(st) + ")");
    }
    int fd = connect_unix(socket_path);
    if (fd >= 0) {
      ::close(fd);
      return;
    }
    if (g_interrupted) throw Failure("interrupted");
    if (now_ns() > limit) throw Failure("tocsind did not listen on " + socket_path + " in time");
    ::usleep(10'000);
  }
}

// Reads from every child's result pipe until `done()` or all EOF; bounded by deadline.
template <class Done, class OnEof>
void pump(RunScope& scope, std::int64_t deadline, const char* what, Done done, OnEof on_eof) {
  std::vector<char> buf(64 * 1024);
  while (!done()) {
    std::vector<pollfd> pfds;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < scope.children.size(); ++i) {
      if (!scope.children[i].eof && scope.children[i].result_fd >= 0) {
        pfds.push_back({scope.children[i].result_fd, POLLIN, 0});
        which.push_back(i);
      }
    }
    if (pfds.empty()) return;
    std::int64_t now = now_ns();
    if (g_interrupted) throw Failure("interrupted");
    if (now > deadline) throw Failure(std::string("timed out (--timeout) ") + what);
    int ms = static_cast<int>(std::clamp<std::int64_t>((deadline - now) / 1'000'000 + 1, 1, 200));
    int r = ::poll(pfds.data(), pfds.size(), ms);
    if (r < 0 && errno != EINTR) throw Failure(errno_text("poll"));
    for (std::size_t k = 0; k < pfds.size(); ++k) {
      if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Child& c = scope.children[which[k]];
      ssize_t n = ::read(c.result_fd, buf.data(), buf.size());
      if (n > 0) {
        c.out.append(buf.data(), static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        c.eof = true;
        ::close(c.result_fd);
        c.result_fd = -1;
        on_eof(which[k]);
      }
    }
  }
}

std::string fmt_rate(double r) {
  char b[64];
  std::snprintf(b, sizeof b, "%.0f", r);
  std::string s = b, out;
  int n = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (n && n % 3 == 0) out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++n;
  }
  return out;
}

std::string fmt_us(std::uint64_t ns) {
  char b[64];
  std::snprintf(b, sizeof b, "%.1f µs", static_cast<double>(ns) / 1e3);
  return b;
}

RunResult run_once(const Options& o, int run_index) {
  RunResult res;
  RunScope scope;
  const std::int64_t t_start = now_ns();
  const std::int64_t deadline = t_start + static_cast<std::int64_t>(o.timeout * 1e9);
  std::string socket_path = o.socket;
  const bool own_daemon = o.socket.empty();
  if (own_daemon) start_daemon(o, scope, socket_path, deadline);

  const std::string exe = self_exe();
  auto child_args = [&](const char* role, bool slow = false) {
    std::vector<std::string> args{exe,
                                    "--role",
                                    role,
                                    "--socket",
                                    socket_path,
                                    "--events",
                                    std::to_string(o.events),
                                    "--mode",
                                    o.mode,
                                    "--batch",
                                    std::to_string(o.batch),
                                    "--window",
                                    std::to_string(o.window),
                                    "--rate",
                                    std::to_string(o.rate),
                                    "--payload-bytes",
                                    std::to_string(o.payload_bytes),
                                    "--deadline-ns",
                                    std::to_string(deadline)};
    if (o.one_of) {
      args.insert(args.end(), {"--one-of", "--prefetch", std::to_string(o.prefetch),
                               "--ack-batch", std::to_string(o.ack_batch)});
      if (slow) args.insert(args.end(), {"--delay-us", std::to_string(o.delay_us)});
    }
    return args;
  };
  int control[2];
  if (::pipe2(control, O_CLOEXEC) != 0) throw Failure(errno_text("pipe"));
  scope.control_read = control[0];
  scope.control_write = control[1];
  scope.children.resize(1 + static_cast<std::size_t>(o.subscribers));

  // Subscribers first; the raiser starts when all of them are subscribed.
  for (int i = 0; i < o.subscribers; ++i) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw Failure(errno_text("pipe"));
    Child& c = scope.children[1 + static_cast<std::size_t>(i)];
    c.result_fd = p[0];
    c.pid = spawn(child_args("subscriber", i < o.slow), {p[1], scope.control_read});
    ::close(p[1]);
  }
  scope.children[0].eof = true;  // the raiser does not exist yet
  auto all_ready = [&] {
    for (std::size_t i = 1; i < scope.children.size(); ++i) {
      if (scope.children[i].out.empty()) return false;
    }
    return true;
  };
  pump(scope, deadline, "waiting for the subscribers to subscribe", all_ready, [](std::size_t) {});
  for (std::size_t i = 1; i < scope.children.size(); ++i) {
    const Child& c = scope.children[i];
    if (c.out.empty() || c.out[0] != 'R') {
      Json j = Json::parse(c.out, nullptr, false);
      std::string why = !j.is_discarded() && j.is_object() && j.contains("fatal")
                            ? j["fatal"].get<std::string>()
                            : "ended before subscribing";
      throw Failure("subscriber " + std::to_string(i) + " did not subscribe: " + why);
    }
  }
  ::close(scope.control_read);
  scope.control_read = -1;

  {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw Failure(errno_text("pipe"));
    Child& r = scope.children[0];
    r.result_fd = p[0];
    r.eof = false;
    r.pid = spawn(child_args("raiser"), {p[1]});
    ::close(p[1]);
  }
  // Until every pipe is at EOF; when the raiser is done, tell the subscribers (control EOF).
  // The clients give up at `deadline` themselves and say why; a little grace to hear it.
  pump(
      scope, deadline + 3'000'000'000, "waiting for the raiser and the subscribers",
      [] { return false; },
      [&](std::size_t i) {
        if (i == 0 && scope.control_write >= 0) {
          ::close(scope.control_write);
          scope.control_write = -1;
        }
      });
  for (auto& c : scope.children) {
    c.reaped = reap(c.pid, deadline + 5'000'000'000, &c.status, &c.usage);
    if (!c.reaped) throw Failure("a client process did not exit in time");
  }
  double daemon_cpu = -1;
  if (own_daemon) {
    ::kill(scope.daemon_pid, SIGTERM);
    int st = 0;
    rusage u{};
    if (!reap(scope.daemon_pid, now_ns() + 10'000'000'000, &st, &u)) {
      res.failures.push_back("tocsind did not stop within 10 s of SIGTERM");
    } else {
      scope.daemon_reaped = true;
      daemon_cpu = cpu_seconds(u);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        res.failures.push_back("tocsind stopped with " + describe_status(st));
      }
    }
  }

  // ---- Collect and check.
  auto parse = [&](const Child& c, const char* what, std::size_t i) -> Json {
    std::string_view text = c.out;
    if (!text.empty() && text[0] == 'R') text.remove_prefix(1);
    Json j = Json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      throw Failure(std::string(what) + " " + std::to_string(i) + " reported nothing (" +
                    describe_status(c.status) + ")");
    }
    return j;
  };
  Json raiser = parse(scope.children[0], "raiser", 0);
  const auto raised = raiser.at("replied").get<std::uint64_t>();
  // A client that failed (timed out, lost its connection) did not see the run to its end: its
  // counts cannot be checked against the raised ones, so only its own reason is reported.
  const bool raiser_failed = !raiser.at("fatal").get<std::string>().empty();
  if (raiser_failed) {
    res.failures.push_back("raiser: " + raiser.at("fatal").get<std::string>());
  }
  if (!raiser_failed && raised != o.events) {
    res.failures.push_back("raiser: " + std::to_string(raised) + " replies for " +
                           std::to_string(o.events) + " raises");
  }
  if (raiser.at("decreasing").get<std::uint64_t>() > 0) {
    res.failures.push_back("raiser: seqs in replies do not increase with request order");
  }
  const auto first_seq = raiser.at("first_seq").get<std::uint64_t>();
  const auto last_seq = raiser.at("last_seq").get<std::uint64_t>();
  const bool contiguous = raiser.at("non_contiguous").get<std::uint64_t>() == 0;
  if (own_daemon && !contiguous) {
    res.failures.push_back("raiser: the daemon's seqs for our raises are not contiguous");
  }
  // Contiguous seqs: no other event (of any signal) was raised between our first and last, so
  // every seq in that range is ours and each subscriber must account for each one of them.
  const std::int64_t first_send = raiser.at("first_send_ns").get<std::int64_t>();
  const std::int64_t last_reply = raiser.at("last_reply_ns").get<std::int64_t>();

  Histogram all;
  std::uint64_t received = 0, dropped = 0, overflow_notices = 0;
  std::uint64_t min_received = UINT64_MAX, max_received = 0;
  std::int64_t last_delivery = 0;
  std::uint64_t seq_sum = 0, seq_square_sum = 0, redelivered = 0;
  Json per_subscriber = Json::array();
  double sub_cpu = 0;
  for (std::size_t i = 1; i < scope.children.size(); ++i) {
    const Child& c = scope.children[i];
    sub_cpu += cpu_seconds(c.usage);
    Json s = parse(c, "subscriber", i);
    auto r = s.at("received").get<std::uint64_t>();
    auto d = s.at("dropped").get<std::uint64_t>();
    received += r;
    dropped += d;
    overflow_notices += s.at("overflow_notices").get<std::uint64_t>();
    min_received = std::min(min_received, r);
    max_received = std::max(max_received, r);
    last_delivery = std::max(last_delivery, s.at("last_recv_ns").get<std::int64_t>());
    per_subscriber.push_back(r);
    if (o.one_of) {
      // Acked throughput ends with the last ack sent, not the last event read.
      last_delivery = std::max(last_delivery, s.at("last_ack_ns").get<std::int64_t>());
      seq_sum += s.at("seq_sum").get<std::uint64_t>();
      seq_square_sum += s.at("seq_square_sum").get<std::uint64_t>();
      redelivered += s.at("redelivered").get<std::uint64_t>();
      if (s.at("redelivered").get<std::uint64_t>() > 0) {
        res.failures.push_back("subscriber " + std::to_string(i) + ": " +
                               std::to_string(s.at("redelivered").get<std::uint64_t>()) +
                               " events delivered again, first: " +
                               s.at("first_error").get<std::string>());
      }
    }
    all.merge(Histogram::from_json(s.at("latency")));
    std::string who = "subscriber " + std::to_string(i) + ": ";
    const bool failed = raiser_failed || !s.at("fatal").get<std::string>().empty();
    if (!s.at("fatal").get<std::string>().empty()) {
      res.failures.push_back(who + s.at("fatal").get<std::string>());
    }
    if (!failed && !o.one_of && r + d != raised) {
      res.failures.push_back(who + std::to_string(r) + " received + " + std::to_string(d) +
                             " reported dropped != " + std::to_string(raised) + " raised (" +
                             (r + d < raised
                                  ? std::to_string(raised - r - d) + " lost silently"
                                  : std::to_string(r + d - raised) + " more than raised") +
                             ")");
    }
    if (s.at("order_errors").get<std::uint64_t>() > 0) {
      res.failures.push_back(
          who + std::to_string(s.at("order_errors").get<std::uint64_t>()) +
          " seqs duplicated or out of order, first: " + s.at("first_error").get<std::string>());
    }
    if (s.at("bad_lines").get<std::uint64_t>() > 0) {
      res.failures.push_back(who +
                             "unexpected lines, first: " + s.at("first_error").get<std::string>());
    }
    auto sf = s.at("first_seq").get<std::uint64_t>(), sl = s.at("last_seq").get<std::uint64_t>();
    if (!failed && r + d > 0 && (sf < first_seq || sl > last_seq)) {
      res.failures.push_back(who + "saw seqs " + std::to_string(sf) + ".." + std::to_string(sl) +
                             " outside the raised " + std::to_string(first_seq) + ".." +
                             std::to_string(last_seq));
    }
    if (!failed && !o.one_of && contiguous && r + d > 0 &&
        (sf != first_seq || sl != last_seq || s.at("gap_events").get<std::uint64_t>() != 0)) {
      res.failures.push_back(who + "seqs missing without an overflow notice (saw " +
                             std::to_string(sf) + ".." + std::to_string(sl) + ", " +
                             std::to_string(s.at("gap_events").get<std::uint64_t>()) +
                             " uncovered gaps, raised " + std::to_string(first_seq) + ".." +
                             std::to_string(last_seq) + ")");
    }
    if (c.reaped && (!WIFEXITED(c.status) || WEXITSTATUS(c.status) > 1)) {
      res.failures.push_back(who + "process ended with " + describe_status(c.status));
    }
  }
  if (o.subscribers == 0) min_received = 0;
  if (o.one_of && !raiser_failed && o.subscribers > 0) {
    // Each event to exactly one subscriber: the counts add up to what was raised, and the seqs
    // seen, summed (and their squares), are those of the raised range: a loss with a duplicate
    // elsewhere does not cancel out in both sums.
    if (received != raised) {
      res.failures.push_back(std::to_string(received) + " one-of events received for " +
                             std::to_string(raised) + " raised (" +
                             (received < raised ? std::to_string(raised - received) + " lost"
                                                : std::to_string(received - raised) + " twice") +
                             ")");
    } else if (contiguous) {
      std::uint64_t want = 0, want_sq = 0;
      for (std::uint64_t q = first_seq; q <= last_seq; ++q) {
        want += q;
        want_sq += q * q;
      }
      if (want != seq_sum || want_sq != seq_square_sum) {
        res.failures.push_back("the seqs received are not the raised range: some twice, some lost");
      }
    }
  }
  if (raiser_failed) res.failures.push_back("loss accounting not checked: the raiser failed");

  const double raise_s = static_cast<double>(last_reply - first_send) / 1e9;
  const double deliver_s = static_cast<double>(last_delivery - first_send) / 1e9;
  res.raise_rate = raise_s > 0 ? static_cast<double>(raised) / raise_s : 0;
  res.delivery_rate = deliver_s > 0 ? static_cast<double>(received) / deliver_s : 0;
  res.p50 = all.percentile(0.50);
  res.p99 = all.percentile(0.99);
  res.p999 = all.percentile(0.999);
  res.max = all.max();
  res.ok = res.failures.empty();
  const double raiser_cpu = cpu_seconds(scope.children[0].usage);

  res.json = {
      {"run", run_index},
      {"ok", res.ok},
      {"failures", res.failures},
      {"mode", o.mode},
      {"batch", o.mode == "sync" ? 1 : o.batch},
      {"window", o.mode == "sync" ? 1 : o.window},
      {"rate_cap", o.rate},
      {"payload_bytes", std::max<std::size_t>(o.payload_bytes, kStampDigits)},
      {"queue", own_daemon ? Json(o.queue) : Json()},
      {"subscribers", o.subscribers},
      {"one_of", o.one_of},
      {"prefetch", o.one_of ? Json(o.prefetch) : Json()},
      {"ack_batch", o.one_of ? Json(o.ack_batch) : Json()},
      {"slow", o.one_of ? Json(o.slow) : Json()},
      {"delay_us", o.one_of ? Json(o.delay_us) : Json()},
      {"received_per_subscriber", per_subscriber},
      {"redelivered", redelivered},
      {"events", raised},
      {"received", received},
      {"received_min_per_subscriber", min_received},
      {"received_max_per_subscriber", max_received},
      {"reported_dropped", dropped},
      {"overflow_notices", overflow_notices},
      {"silent_loss", o.one_of ? static_cast<long long>(raised) - static_cast<long long>(received)
                               : static_cast<long long>(raised) * o.subscribers -
                                     static_cast<long long>(received + dropped)},
      {"raise_seconds", raise_s},
      {"raise_rate", res.raise_rate},
      {"delivery_seconds", deliver_s},
      {"delivery_rate", res.delivery_rate},
      {"latency_ns",
       {{"count", all.count()},
        {"p50", res.p50},
        {"p99", res.p99},
        {"p99.9", res.p999},
        {"max", res.max},
        {"mean", all.mean()}}},
      {"cpu_seconds",
       {{"daemon", daemon_cpu >= 0 ? Json(daemon_cpu) : Json()},
        {"raiser", raiser_cpu},
        {"subscribers", sub_cpu}}},
  };
  FILE* h = o.json ? stderr : stdout;
  // Without subscribers nothing is delivered and there is no last delivery to time.
  std::string delivery_text = "(no subscribers)";
  if (o.subscribers > 0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s deliveries/s (%.3f s, first send to last delivery)",
                  fmt_rate(res.delivery_rate).c_str(), deliver_s);
    delivery_text = buf;
  }
  std::fprintf(
      h,
      "run %d: %s, batch %llu, window %llu, rate %s, payload %zu B, queue %s\n"
      "  events %llu, subscribers %d: received %llu, reported dropped %llu "
      "(%llu overflow notices) -> %s\n"
      "  raise:    %s events/s (%.3f s, first send to last reply)\n"
      "  delivery: %s\n"
      "  latency over %llu deliveries: p50 %s, p99 %s, p99.9 %s, max %s\n",
      run_index, o.mode.c_str(), static_cast<unsigned long long>(o.mode == "sync" ? 1 : o.batch),
      static_cast<unsigned long long>(o.mode == "sync" ? 1 : o.window),
      o.rate > 0 ? (fmt_rate(o.rate) + "/s").c_str() : "max",
      std::max<std::size_t>(o.payload_bytes, kStampDigits),
      own_daemon ? std::to_string(o.queue).c_str() : "(daemon's)",
      static_cast<unsigned long long>(raised), o.subscribers,
      static_cast<unsigned long long>(received), static_cast<unsigned long long>(dropped),
      static_cast<unsigned long long>(overflow_notices), res.ok ? "OK, no silent loss" : "FAILED",
      fmt_rate(res.raise_rate).c_str(), raise_s, delivery_text.c_str(),
      static_cast<unsigned long long>(all.count()), fmt_us(res.p50).c_str(),
      fmt_us(res.p99).c_str(), fmt_us(res.p999).c_str(), fmt_us(res.max).c_str());
  if (daemon_cpu >= 0) {
    std::fprintf(h, "  cpu: daemon %.2f s (%.2f µs/event), raiser %.2f s, subscribers %.2f s\n",
                 daemon_cpu, raised ? daemon_cpu * 1e6 / static_cast<double>(raised) : 0.0,
                 raiser_cpu, sub_cpu);
  } else {
    std::fprintf(h, "  cpu: raiser %.2f s, subscribers %.2f s\n", raiser_cpu, sub_cpu);
  }
  if (o.one_of) {
    std::fprintf(h, "  one-of: prefetch %s, acks batched by %llu, %d slow (%llu µs/event); "
                    "per subscriber %s; %s acked/s (first send to last ack)\n",
                 o.prefetch ? std::to_string(o.prefetch).c_str() : "default",
                 static_cast<unsigned long long>(o.ack_batch), o.slow,
                 static_cast<unsigned long long>(o.delay_us), per_subscriber.dump().c_str(),
                 fmt_rate(res.delivery_rate).c_str());
  }
  for (const auto& f : res.failures) std::fprintf(h, "  FAILED: %s\n", f.c_str());
  std::fflush(h);
  if (o.json) {
    std::printf("%s\n", res.json.dump().c_str());
    std::fflush(stdout);
  }
  return res;
}

template <class T>
T median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run_coordinator(const Options& o) {
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  std::vector<RunResult> results;
  bool ok = true;
  for (int i = 1; i <= o.runs; ++i) {
    try {
      results.push_back(run_once(o, i));
      ok = ok && results.back().ok;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tocsin_load: run %d FAILED: %s\n", i, e.what());
      if (o.json) {
        std::printf("%s\n",
                    Json{{"run", i}, {"ok", false}, {"failures", {e.what()}}}.dump().c_str());
      }
      return 1;
    }
  }
  if (results.size() > 1) {
    auto pick = [&](auto f) {
      std::vector<double> v;
      for (const auto& r : results) v.push_back(static_cast<double>(f(r)));
      return median(v);
    };
    double rr = pick([](const RunResult& r) { return r.raise_rate; });
    double dr = pick([](const RunResult& r) { return r.delivery_rate; });
    auto p50 = static_cast<std::uint64_t>(pick([](const RunResult& r) { return r.p50; }));
    auto p99 = static_cast<std::uint64_t>(pick([](const RunResult& r) { return r.p99; }));
    auto p999 = static_cast<std::uint64_t>(pick([](const RunResult& r) { return r.p999; }));
    auto mx = static_cast<std::uint64_t>(pick([](const RunResult& r) { return r.max; }));
    FILE* h = o.json ? stderr : stdout;
    std::fprintf(h,
                 "median of %zu runs: raise %s events/s, delivery %s deliveries/s, latency p50 "
                 "%s, p99 %s, p99.9 %s, max %s; %s\n",
                 results.size(), fmt_rate(rr).c_str(), fmt_rate(dr).c_str(), fmt_us(p50).c_str(),
                 fmt_us(p99).c_str(), fmt_us(p999).c_str(), fmt_us(mx).c_str(),
                 ok ? "all runs OK (no silent loss)" : "SOME RUNS FAILED");
    if (o.json) {
      std::printf("%s\n",
                  Json{{"run", "median"},
                       {"runs", results.size()},
                       {"ok", ok},
                       {"raise_rate", rr},
                       {"delivery_rate", dr},
                       {"latency_ns", {{"p50", p50}, {"p99", p99}, {"p99.9", p999}, {"max", mx}}}}
                      .dump()
                      .c_str());
    }
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "tocsin_load: end-to-end load on tocsind over its Unix socket: raise throughput, "
      "fan-out, latency and loss accounting (docs/BENCHMARKS.md)"};
  std::string self_dir;
  try {
    std::string exe = self_exe();
    self_dir = exe.substr(0, exe.rfind('/'));
  } catch (const std::exception&) {
    self_dir = ".";
  }
  o.tocsind = self_dir + "/tocsind";
  app.add_option("--tocsind", o.tocsind, "the tocsind to start")->capture_default_str();
  app.add_option("--socket", o.socket,
                 "use a running daemon at this socket instead of starting one (it needs signal "
                 "100 named bench with a `target: subscribers` handler)");
  app.add_option("--subscribers", o.subscribers, "subscriber processes")
      ->capture_default_str()
      ->check(CLI::Range(0, 4000));
  app.add_option("--events", o.events, "events to raise")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100'000'000}));
  app.add_option("--mode", o.mode,
                 "pipelined (batches, a window in flight) or sync (one at a time)")
      ->capture_default_str()
      ->check(CLI::IsMember({"pipelined", "sync"}));
  app.add_option("--batch", o.batch, "raises per JSON-RPC batch line (pipelined)")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{10'000}));
  app.add_option("--window", o.window, "batches in flight (pipelined)")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100'000}));
  app.add_option("--rate", o.rate, "events/s cap, paced with absolute deadlines (0: no cap)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--payload-bytes", o.payload_bytes,
                 "payload size; the first 20 bytes are the send time, so at least 20")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{65536}));
  app.add_option("--queue", o.queue, "limits.subscriber_queue of the daemon we start")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  app.add_option("--timeout", o.timeout, "seconds a run may take before it fails")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--runs", o.runs, "runs (a fresh daemon each); a median line follows")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_flag("--one-of", o.one_of,
               "one-of delivery (target: subscriber): each event to one acking subscriber");
  app.add_option("--prefetch", o.prefetch, "one-of: each subscriber's credit (0: the daemon's)")
      ->capture_default_str();
  app.add_option("--ack-batch", o.ack_batch,
                 "one-of: acks per notification (also sent whenever the socket is drained)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--slow", o.slow, "one-of: how many subscribers are slow")->capture_default_str();
  app.add_option("--delay-us", o.delay_us,
                 "one-of: time a slow subscriber spends on each event before its ack")
      ->capture_default_str();
  app.add_flag("--json", o.json, "one JSON object per run on stdout (the summary goes to stderr)");
  // Hidden: the client processes.
  app.add_option("--role", o.role)->group("")->check(CLI::IsMember({"subscriber", "raiser"}));
  app.add_option("--deadline-ns", o.deadline_ns)->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (o.payload_bytes < static_cast<std::size_t>(kStampDigits)) o.payload_bytes = kStampDigits;
  if (o.role == "subscriber") return run_subscriber(o);
  if (o.role == "raiser") return run_raiser(o);
  if (!o.socket.empty() && app.count("--queue")) {
    std::fprintf(
        stderr, "tocsin_load: --queue is ignored with --socket (the daemon's own limit applies)\n");
  }
  return run_coordinator(o);
}

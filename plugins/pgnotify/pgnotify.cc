// pgnotify — LISTEN/NOTIFY on a Postgres server (SPEC §3 pg, plugins/pgnotify/README.md).
//
// One libpq connection in non-blocking mode, its socket in the reactor: connecting
// (PQconnectStartParams/PQconnectPoll), queries (PQsendQueryParams, PQflush, PQconsumeInput,
// PQgetResult) and notifications (PQnotifies) never block the reactor's thread. Queries run one
// at a time from a bounded queue: LISTENs after each (re)connect, heartbeats, `pgnotify.notify`
// calls, cluster claims. A self-NOTIFY on a private channel every `heartbeat` must come back
// within `heartbeat_timeout`, which catches a dead server or a half-open connection that TCP
// alone would not notice for minutes; TCP keepalives are on too. A broken connection is retried
// with exponential backoff and jitter (reconnect.min .. reconnect.max); after each reconnect the
// `on_reconnect` signal carries the outage's length and a generation counter, since NOTIFYs sent
// meanwhile are lost and subscribers must resync.
#include <libpq-fe.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <spdlog/spdlog.h>

#include "settings.h"
#include "tocsin/event_source.h"
#include "tocsin/plugin.h"

namespace tocsin::pgnotify {
namespace {

namespace asio = boost::asio;
using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// libpq's messages span lines ("server closed the connection unexpectedly\n\tThis probably
// means..."): one line for the log and the payload.
std::string trim(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Server notices (e.g. "terminating connection due to administrator command") go to the log,
// not to the daemon's stderr unformatted.
void log_notice(void*, const char* message) {
  spdlog::info("pgnotify: server says: {}", trim(message ? message : ""));
}

std::string event_json(const Event& e) {
  return Json{{"signal", e.signal},
              {"name", e.name},
              {"seq", e.seq},
              {"source", {{"kind", to_string(e.source.kind)}, {"id", e.source.id}}},
              {"time", format_rfc3339(e.time)},
              {"iteration", e.iteration},
              {"payload", e.payload}}
      .dump();
}

class PgNotify;

// A query waiting for (or on) the connection.
struct Query {
  std::string sql;
  std::vector<std::string> params;
  bool fails_when_disconnected = false;  // claims and heartbeats; notify calls wait for a reconnect
  // (ok, error message, rows affected)
  std::function<void(bool, const std::string&, std::uint64_t)> done;
};

class NotifyHandler final : public Handler {
 public:
  NotifyHandler(std::weak_ptr<PgNotify> plugin, std::string channel)
      : plugin_(std::move(plugin)), channel_(std::move(channel)) {}
  Result<void> handle(const EventPtr& event) override;
  std::string describe() const override { return "pgnotify.notify[" + channel_ + "]"; }

 private:
  std::weak_ptr<PgNotify> plugin_;
  std::string channel_;
};

class PgNotify : public std::enable_shared_from_this<PgNotify> {
 public:
  PgNotify() : rng_(std::random_device{}()) {}
  ~PgNotify() { close(); }

  void start(PluginHost& host, Settings settings) {
    host_ = &host;
    retry_timer_.emplace(host.io());
    resolver_.emplace(host.io());
    heartbeat_timer_.emplace(host.io());
    heartbeat_deadline_.emplace(host.io());
    prune_timer_.emplace(host.io());
    configure(std::move(settings));
    stopped_ = false;
    connect();
  }

  void configure(Settings settings) {
    bool reconnect = settings.conninfo != s_.conninfo || channels_changed(settings);
    s_ = std::move(settings);
    if (s_.node.empty()) {
      char host[256] = {};
      ::gethostname(host, sizeof host - 1);
      s_.node = std::string(host) + ":" + std::to_string(::getpid());
    }
    // A channel that stays keeps its counts.
    std::map<std::string, Channel, std::less<>> next;
    for (const auto& c : s_.channels) {
      auto sig = host_->resolve_signal(c.signal);
      if (!sig) continue;
      Channel& ch = next[c.name];
      if (auto old = signals_.find(c.name); old != signals_.end()) ch = old->second;
      ch.signal = *sig;
    }
    signals_ = std::move(next);
    on_reconnect_.reset();
    if (s_.on_reconnect) {
      if (auto sig = host_->resolve_signal(*s_.on_reconnect)) on_reconnect_ = *sig;
    }
    if (reconnect && conn_ != nullptr) {
      spdlog::info("pgnotify: settings changed; reconnecting");
      fail("reconfigured", /*log=*/false);
    }
  }

  bool channels_changed(const Settings& next) const {
    if (next.channels.size() != s_.channels.size()) return true;
    for (std::size_t i = 0; i < next.channels.size(); ++i) {
      if (next.channels[i].name != s_.channels[i].name) return true;
    }
    return false;
  }

  void stop() {
    stopped_ = true;
    close();
    for (auto& q : queue_) {
      if (q.done) q.done(false, "pgnotify stopped", 0);
    }
    queue_.clear();
    if (retry_timer_) retry_timer_->cancel();
    if (heartbeat_timer_) heartbeat_timer_->cancel();
    if (heartbeat_deadline_) heartbeat_deadline_->cancel();
    if (prune_timer_) prune_timer_->cancel();
    if (resolver_) resolver_->cancel();
  }

  SignalStats* stats() { return host_ ? &host_->stats() : nullptr; }

  Json status() const {
    Json s{{"state", state_name()},
           {"generation", generation_},
           {"channels", s_.channels.size()},
           {"received", received_},
           {"sent", sent_},
           {"queued", queue_.size()},
           {"dropped", dropped_},
           {"reconnects", generation_ > 0 ? generation_ - 1 : 0},
           {"node", s_.node}};
    if (!last_error_.empty()) s["error"] = last_error_;
    if (claims_used_) {
      s["cluster"] = state_ == State::ready
                         ? "claiming"
                         : "not firing cluster jobs: no connection to Postgres";
    }
    return s;
  }

  // A pg_notify call for `pgnotify.notify`. False when the queue is full.
  bool notify(const std::string& channel, std::string payload,
              std::function<void(bool, const std::string&)> done) {
    if (queue_.size() >= s_.queue) {
      ++dropped_;
      return false;
    }
    queue_.push_back(Query{"SELECT pg_notify($1, $2)", {channel, std::move(payload)}, false,
                           [this, done = std::move(done)](bool ok, const std::string& why,
                                                          std::uint64_t) {
                             if (ok) ++sent_;
                             done(ok, why);
                           }});
    send_next();
    return true;
  }

  void claim(const std::string& job, std::int64_t slot, Plugin::ClaimDone done) {
    claims_used_ = true;
    if (state_ != State::ready) {
      done(false, "no connection to Postgres" + (last_error_.empty() ? "" : ": " + last_error_));
      return;
    }
    if (queue_.size() + 2 >= s_.queue) {
      done(false, "the pgnotify queue is full");
      return;
    }
    if (!table_ready_) {
      queue_.push_back(Query{
          "CREATE TABLE IF NOT EXISTS tocsin_claims (job text NOT NULL, slot bigint NOT NULL, "
          "node text NOT NULL, claimed_at timestamptz NOT NULL DEFAULT now(), "
          "PRIMARY KEY (job, slot))",
          {},
          true,
          [this](bool ok, const std::string& why, std::uint64_t) {
            if (ok) {
              table_ready_ = true;
              schedule_prune(std::chrono::seconds(1));
            } else {
              spdlog::error("pgnotify: cannot create the claim table tocsin_claims: {}", why);
            }
          }});
    }
    queue_.push_back(Query{"INSERT INTO tocsin_claims (job, slot, node) VALUES ($1, $2, $3) "
                           "ON CONFLICT DO NOTHING",
                           {job, std::to_string(slot), s_.node},
                           true,
                           [done = std::move(done)](bool ok, const std::string& why,
                                                    std::uint64_t rows) {
                             if (!ok) {
                               done(false, why);
                             } else {
                               done(rows == 1, rows == 1 ? "" : "claimed by another daemon");
                             }
                           }});
    send_next();
  }

 private:
  enum class State { idle, connecting, ready, backoff, stopped };

  std::string state_name() const {
    switch (state_) {
      case State::idle: return "idle";
      case State::connecting: return "connecting";
      case State::ready: return "listening";
      case State::backoff: return "reconnecting";
      case State::stopped: return "stopped";
    }
    return "?";
  }

  template <typename F>
  auto guard(F f) {
    std::weak_ptr<PgNotify> weak = weak_from_this();
    std::uint64_t gen = conn_gen_;
    return [weak, gen, f = std::move(f)](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self || ec || self->stopped_ || gen != self->conn_gen_) return;
      f(*self);
    };
  }

  // ---- connecting ----

  // libpq resolves host names with a blocking getaddrinfo inside PQconnectPoll; that must not
  // happen on the reactor's thread. So names are resolved here first, asynchronously (Asio's
  // resolver runs getaddrinfo on a thread of its own), and given to libpq as `hostaddr` next to
  // `host` (which TLS still verifies against). Unix sockets and given hostaddrs need nothing.
  void connect() {
    if (stopped_) return;
    close();
    ++conn_gen_;
    state_ = State::connecting;
    // A name that does not resolve, or a server that accepts the socket and then says nothing,
    // must not hold us here forever.
    heartbeat_deadline_->expires_after(s_.connect_timeout);
    heartbeat_deadline_->async_wait(guard([](PgNotify& self) {
      if (self.state_ == State::connecting) {
        self.fail("no answer within " + std::to_string(self.s_.connect_timeout.count()) +
                  "ms while connecting");
      }
    }));
    std::vector<std::string> hosts, ports;
    std::string hostaddr;
    if (!conninfo_hosts(&hosts, &ports, &hostaddr)) {
      fail("cannot parse conninfo");
      return;
    }
    bool names = false;
    for (const auto& h : hosts) names |= !h.empty() && h[0] != '/' && h[0] != '@';
    if (!names || !hostaddr.empty()) {
      start_connect("");
      return;
    }
    resolved_.assign(hosts.size(), "");
    pending_resolves_ = hosts.size();
    for (std::size_t i = 0; i < hosts.size(); ++i) {
      if (hosts[i].empty() || hosts[i][0] == '/' || hosts[i][0] == '@') {
        if (--pending_resolves_ == 0) start_connect(join(resolved_));
        continue;
      }
      std::string port = i < ports.size() && !ports[i].empty() ? ports[i]
                         : !ports.empty() && ports.size() == 1 ? ports[0]
                                                               : "5432";
      std::weak_ptr<PgNotify> weak = weak_from_this();
      std::uint64_t gen = conn_gen_;
      resolver_->async_resolve(
          hosts[i], port,
          [weak, gen, i, host = hosts[i]](const boost::system::error_code& ec,
                                          asio::ip::tcp::resolver::results_type results) {
            auto self = weak.lock();
            if (!self || self->stopped_ || gen != self->conn_gen_) return;
            if (ec || results.empty()) {
              self->fail("cannot resolve " + host + ": " + ec.message());
              return;
            }
            self->resolved_[i] = results.begin()->endpoint().address().to_string();
            spdlog::debug("pgnotify: resolved {} to {}", host, self->resolved_[i]);
            if (--self->pending_resolves_ == 0) self->start_connect(join(self->resolved_));
          });
    }
  }

  static std::string join(const std::vector<std::string>& parts) {
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? "," : "") + parts[i];
    return out;
  }

  // The host, port and hostaddr lists of the conninfo (a key=value string or a URI).
  bool conninfo_hosts(std::vector<std::string>* hosts, std::vector<std::string>* ports,
                      std::string* hostaddr) const {
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(s_.conninfo.c_str(), &err);
    if (opts == nullptr) {
      if (err != nullptr) PQfreemem(err);
      return false;
    }
    auto split = [](const char* v) {
      std::vector<std::string> out;
      if (v == nullptr || *v == '\0') return out;
      std::string s = v;
      for (std::size_t start = 0;;) {
        std::size_t comma = s.find(',', start);
        out.push_back(s.substr(start, comma == std::string::npos ? comma : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      return out;
    };
    for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
      std::string_view k = o->keyword;
      if (k == "host") *hosts = split(o->val);
      if (k == "port") *ports = split(o->val);
      if (k == "hostaddr" && o->val != nullptr) *hostaddr = o->val;
    }
    PQconninfoFree(opts);
    return true;
  }

  void start_connect(const std::string& hostaddr) {
    // Keepalives first, so that the user's conninfo (expanded from dbname) overrides them; the
    // resolved addresses last, so that they are used.
    std::vector<const char*> keys{"keepalives", "keepalives_idle", "keepalives_interval",
                                  "keepalives_count", "application_name", "dbname"};
    std::vector<const char*> values{"1", "30", "10", "3", "tocsind", s_.conninfo.c_str()};
    if (!hostaddr.empty()) {
      keys.push_back("hostaddr");
      values.push_back(hostaddr.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn_ = PQconnectStartParams(keys.data(), values.data(), /*expand_dbname=*/1);
    if (conn_ == nullptr) {
      fail("out of memory in libpq");
      return;
    }
    if (PQstatus(conn_) == CONNECTION_BAD) {
      fail(trim(PQerrorMessage(conn_)));
      return;
    }
    PQsetnonblocking(conn_, 1);
    PQsetNoticeProcessor(conn_, &log_notice, nullptr);
    wait_socket(true, [](PgNotify& self) { self.poll_connect(); });
  }

  void poll_connect() {
    switch (PQconnectPoll(conn_)) {
      case PGRES_POLLING_READING:
        wait_socket(false, [](PgNotify& self) { self.poll_connect(); });
        return;
      case PGRES_POLLING_WRITING:
        wait_socket(true, [](PgNotify& self) { self.poll_connect(); });
        return;
      case PGRES_POLLING_OK:
        connected();
        return;
      default:
        fail(trim(PQerrorMessage(conn_)));
        return;
    }
  }

  // Waits for the connection's socket (which may change while connecting) to be ready.
  template <typename F>
  void wait_socket(bool write, F then) {
    int fd = PQsocket(conn_);
    if (fd < 0) {
      fail("libpq has no socket");
      return;
    }
    if (!sock_ || sock_->native_handle() != fd) {
      if (sock_) sock_->release();
      sock_.emplace(host_->io(), fd);
    }
    sock_->async_wait(write ? asio::posix::descriptor_base::wait_write
                            : asio::posix::descriptor_base::wait_read,
                      guard(std::move(then)));
  }

  void connected() {
    attempt_ = 0;
    heartbeat_deadline_->cancel();  // the connect timeout
    heartbeat_channel_ = "tocsin_heartbeat_" + std::to_string(::getpid()) + "_" +
                         std::to_string(reinterpret_cast<std::uintptr_t>(this) % 1000000);
    std::string sql;
    for (const auto& c : s_.channels) sql += "LISTEN " + quoted(c.name) + ";";
    sql += "LISTEN " + quoted(heartbeat_channel_) + ";";
    state_ = State::ready;  // queries may go; the LISTENs are first in line
    queue_.push_front(Query{sql, {}, true, [this](bool ok, const std::string& why, std::uint64_t) {
                              if (!ok) {
                                fail("LISTEN failed: " + why);
                                return;
                              }
                              listening();
                            }});
    read_loop();
    send_next();
  }

  void listening() {
    ++generation_;
    const bool reconnect = generation_ > 1;
    std::int64_t outage_ms = 0;
    if (reconnect) {
      outage_ms = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() -
                                                                        down_since_)
                      .count();
    }
    spdlog::info("pgnotify: listening on {} channel(s) (generation {}{})", s_.channels.size(),
                 generation_,
                 reconnect ? ", after an outage of " + std::to_string(outage_ms) + "ms" : "");
    if (reconnect && on_reconnect_) {
      host_->raise(*on_reconnect_, SourceKind::pg, "pgnotify",
                   Json{{"generation", generation_},
                        {"outage_ms", outage_ms},
                        {"error", last_error_},
                        {"channels", s_.channels.size()}}
                       .dump());
    }
    last_error_.clear();
    schedule_heartbeat();
    if (table_ready_) schedule_prune(std::chrono::seconds(1));
  }

  std::string quoted(const std::string& identifier) {
    char* q = PQescapeIdentifier(conn_, identifier.data(), identifier.size());
    if (q == nullptr) return "\"\"";
    std::string out(q);
    PQfreemem(q);
    return out;
  }

  // ---- the connection at work ----

  void read_loop() {
    wait_socket(false, [](PgNotify& self) {
      if (PQconsumeInput(self.conn_) == 0) {
        self.fail(trim(PQerrorMessage(self.conn_)));
        return;
      }
      self.collect_results();
      if (self.conn_ == nullptr || self.state_ != State::ready) return;
      self.collect_notifies();
      if (self.conn_ == nullptr || self.state_ != State::ready) return;
      self.read_loop();
    });
  }

  void collect_results() {
    while (in_flight_ && conn_ != nullptr && PQisBusy(conn_) == 0) {
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr) {
        Query q = std::move(current_);
        in_flight_ = false;
        bool ok = current_error_.empty();
        std::string why = std::move(current_error_);
        current_error_.clear();
        if (q.done) q.done(ok, why, current_rows_);
        send_next();
        return;
      }
      ExecStatusType st = PQresultStatus(r);
      if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && current_error_.empty()) {
        current_error_ = trim(PQresultErrorMessage(r));
        if (current_error_.empty()) current_error_ = PQresStatus(st);
      }
      const char* rows = PQcmdTuples(r);
      if (rows != nullptr && *rows != '\0') current_rows_ = std::strtoull(rows, nullptr, 10);
      PQclear(r);
    }
  }

  void collect_notifies() {
    while (PGnotify* n = PQnotifies(conn_)) {
      std::string_view channel = n->relname;
      std::string_view payload = n->extra ? n->extra : "";
      if (channel == heartbeat_channel_) {
        if (payload == std::to_string(heartbeat_seq_)) heartbeat_deadline_->cancel();
        PQfreemem(n);
        continue;
      }
      auto it = signals_.find(channel);
      if (it == signals_.end()) {
        PQfreemem(n);
        continue;
      }
      ++received_;
      ++it->second.received;
      const SignalId signal = it->second.signal;
      std::string id(channel), text(payload);
      PQfreemem(n);
      host_->raise(signal, SourceKind::pg, std::move(id), std::move(text));
      if (conn_ == nullptr) return;  // a handler stopped us
    }
  }

  void send_next() {
    if (in_flight_ || queue_.empty() || state_ != State::ready || conn_ == nullptr) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    current_error_.clear();
    current_rows_ = 0;
    std::vector<const char*> values;
    for (const auto& p : current_.params) values.push_back(p.c_str());
    int sent = current_.params.empty()
                   ? PQsendQuery(conn_, current_.sql.c_str())
                   : PQsendQueryParams(conn_, current_.sql.c_str(),
                                       static_cast<int>(values.size()), nullptr, values.data(),
                                       nullptr, nullptr, 0);
    if (sent == 0) {
      queue_.push_front(std::move(current_));
      fail(trim(PQerrorMessage(conn_)));
      return;
    }
    in_flight_ = true;
    flush();
  }

  void flush() {
    int r = PQflush(conn_);
    if (r < 0) {
      fail(trim(PQerrorMessage(conn_)));
    } else if (r == 1) {
      // The rest goes when the socket can take it; reading goes on meanwhile.
      int fd = PQsocket(conn_);
      if (!flush_sock_ || flush_sock_->native_handle() != fd) {
        if (flush_sock_) flush_sock_->release();
        flush_sock_.emplace(host_->io(), ::dup(fd));
      }
      flush_sock_->async_wait(asio::posix::descriptor_base::wait_write,
                              guard([](PgNotify& self) { self.flush(); }));
    }
  }

  // ---- heartbeat, pruning ----

  void schedule_heartbeat() {
    heartbeat_timer_->expires_after(s_.heartbeat);
    heartbeat_timer_->async_wait(guard([](PgNotify& self) { self.heartbeat(); }));
  }

  void heartbeat() {
    if (state_ != State::ready) return;
    ++heartbeat_seq_;
    queue_.push_front(Query{"SELECT pg_notify($1, $2)",
                            {heartbeat_channel_, std::to_string(heartbeat_seq_)},
                            true,
                            {}});
    send_next();
    heartbeat_deadline_->expires_after(s_.heartbeat_timeout);
    std::weak_ptr<PgNotify> weak = weak_from_this();
    std::uint64_t gen = conn_gen_;
    heartbeat_deadline_->async_wait([weak, gen](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self || self->stopped_ || gen != self->conn_gen_) return;
      if (ec) {  // cancelled: the heartbeat came back
        self->schedule_heartbeat();
        return;
      }
      self->fail("no heartbeat within " + std::to_string(self->s_.heartbeat_timeout.count()) +
                 "ms: the server or the network is not answering");
    });
  }

  void schedule_prune(std::chrono::milliseconds after) {
    prune_timer_->expires_after(after);
    prune_timer_->async_wait(guard([](PgNotify& self) {
      if (self.state_ == State::ready && self.queue_.size() < self.s_.queue) {
        self.queue_.push_back(Query{
            "DELETE FROM tocsin_claims WHERE claimed_at < now() - interval '1 day'", {}, true,
            [](bool ok, const std::string& why, std::uint64_t rows) {
              if (!ok) spdlog::warn("pgnotify: pruning tocsin_claims: {}", why);
              if (ok && rows > 0) spdlog::debug("pgnotify: pruned {} old claim(s)", rows);
            }});
        self.send_next();
      }
      self.schedule_prune(std::chrono::hours(1));
    }));
  }

  // ---- failure and backoff ----

  void close() {
    ++conn_gen_;
    if (sock_) {
      sock_->release();
      sock_.reset();
    }
    if (flush_sock_) {
      flush_sock_->close();  // a dup: ours to close
      flush_sock_.reset();
    }
    if (conn_ != nullptr) {
      PQfinish(conn_);
      conn_ = nullptr;
    }
    if (heartbeat_deadline_) heartbeat_deadline_->cancel();
    if (heartbeat_timer_) heartbeat_timer_->cancel();
  }

  void fail(const std::string& why, bool log = true) {
    const bool was_ready = state_ == State::ready;
    if (was_ready) down_since_ = SteadyClock::now();  // the outage on_reconnect reports
    close();
    if (in_flight_) {
      in_flight_ = false;
      Query q = std::move(current_);
      if (q.fails_when_disconnected) {
        if (q.done) q.done(false, why, 0);
      } else {
        queue_.push_front(std::move(q));  // a notify call: sent again after the reconnect
      }
    }
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->fails_when_disconnected) {
        if (it->done) it->done(false, "connection lost: " + why, 0);
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (stopped_) return;
    last_error_ = why;
    state_ = State::backoff;
    auto base = s_.reconnect_min * (1LL << std::min(attempt_, 20));
    auto capped = std::min<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(base), s_.reconnect_max);
    // Jitter: 50-100% of the delay, so that many daemons do not reconnect in step.
    auto delay = std::chrono::milliseconds(std::uniform_int_distribution<std::int64_t>(
        capped.count() / 2, capped.count())(rng_));
    ++attempt_;
    if (log) {
      if (was_ready) {
        spdlog::warn("pgnotify: connection lost: {}; reconnecting in {}ms", why, delay.count());
      } else {
        spdlog::warn("pgnotify: cannot connect: {}; retrying in {}ms (attempt {})", why,
                     delay.count(), attempt_);
      }
    }
    retry_timer_->expires_after(delay);
    std::weak_ptr<PgNotify> weak = weak_from_this();
    retry_timer_->async_wait([weak](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self || ec || self->stopped_) return;
      self->connect();
    });
  }

  PluginHost* host_ = nullptr;
  Settings s_;
 public:
  // A LISTENed channel: its signal, and what the `pg` source kind reports of it (status).
  struct Channel {
    SignalId signal = 0;
    std::uint64_t received = 0;
  };
  const std::map<std::string, Channel, std::less<>>& channels() const { return signals_; }

 private:
  std::map<std::string, Channel, std::less<>> signals_;
  std::optional<SignalId> on_reconnect_;
  PGconn* conn_ = nullptr;
  std::optional<asio::posix::stream_descriptor> sock_;        // libpq's socket, not ours to close
  std::optional<asio::posix::stream_descriptor> flush_sock_;  // a dup of it, for write waits
  std::optional<asio::steady_timer> retry_timer_, heartbeat_timer_, heartbeat_deadline_,
      prune_timer_;
  std::optional<asio::ip::tcp::resolver> resolver_;
  std::vector<std::string> resolved_;
  std::size_t pending_resolves_ = 0;
  std::deque<Query> queue_;
  Query current_;
  std::string current_error_;
  std::uint64_t current_rows_ = 0;
  bool in_flight_ = false;
  State state_ = State::idle;
  bool stopped_ = true;
  bool table_ready_ = false;
  bool claims_used_ = false;
  std::uint64_t conn_gen_ = 0;
  std::uint64_t generation_ = 0;
  std::uint64_t heartbeat_seq_ = 0;
  std::uint64_t received_ = 0, sent_ = 0, dropped_ = 0;
  int attempt_ = 0;
  SteadyClock::time_point down_since_{};
  std::string last_error_;
  std::string heartbeat_channel_;
  std::mt19937_64 rng_;
};

Result<void> NotifyHandler::handle(const EventPtr& event) {
  auto plugin = plugin_.lock();
  if (!plugin || plugin->stats() == nullptr) return Error{"pgnotify is not running"};
  std::string payload = event_json(*event);
  if (payload.size() > kMaxPayload) {
    // Postgres refuses it; cutting it would deliver something else than the event.
    return Error{"the event as JSON is " + std::to_string(payload.size()) +
                 " bytes; a NOTIFY payload holds at most 7999 (not sent, not truncated)"};
  }
  SignalStats* stats = plugin->stats();
  SignalId signal = event->signal;
  std::shared_ptr<HandlerCounters> counters = shared_counters();
  std::string channel = channel_;
  bool queued = plugin->notify(channel_, std::move(payload),
                               [stats, signal, counters, channel, seq = event->seq](
                                   bool ok, const std::string& why) {
                                 if (ok) {
                                   ++(*stats)[signal].delivered;
                                   return;
                                 }
                                 ++(*stats)[signal].failed;
                                 ++counters->failures;
                                 spdlog::error("pgnotify.notify[{}]: seq {}: {}", channel, seq,
                                               why);
                               });
  if (!queued) {
    ++(*stats)[signal].dropped;
    spdlog::error("pgnotify.notify[{}]: seq {} dropped: the queue is full", channel_, event->seq);
  }
  return ok();
}

// ---- the `pg` source kind: the LISTENed channels, in the daemon's source registry ----

// A channel's events have source {"kind":"pg","id":CHANNEL}; its id in the registry is the channel
// name. Channels are configured in the plugin's settings (plugins.pgnotify.channels), so the kind
// has no YAML section and no add method, and remove_source refuses them.
class PgSchema final : public SourceSchema {
 public:
  SourceKind kind() const override { return SourceKind::pg; }
  std::string_view config_key() const override { return ""; }
  std::string_view add_method() const override { return ""; }
  std::shared_ptr<SourceSpec> parse(spec::Reader& r, const spec::Value& item) const override {
    r.fail(item, "pg channels are configured in plugins.pgnotify.channels");
    return nullptr;
  }
};

class PgChannels final : public EventSource {
 public:
  explicit PgChannels(std::shared_ptr<PgNotify> core) : core_(std::move(core)) {}
  const SourceSchema& schema() const override {
    static const PgSchema schema;
    return schema;
  }
  Result<void> add(const SourceSpec&, bool) override {
    return Error{"pg channels are configured in plugins.pgnotify.channels",
                 ErrorCode::invalid_params};
  }
  bool remove(std::string_view) override { return false; }
  bool contains(std::string_view id) const override {
    return core_->channels().find(id) != core_->channels().end();
  }
  bool unchanged(const SourceSpec&) const override { return false; }
  std::optional<bool> runtime(std::string_view id) const override {
    if (!contains(id)) return std::nullopt;
    return false;
  }
  std::vector<std::string> config_ids() const override { return {}; }
  std::size_t count() const override { return core_->channels().size(); }
  void status(std::vector<SourceStatus>& out, std::size_t limit) const override {
    std::size_t n = 0;
    for (const auto& [name, channel] : core_->channels()) {
      if (n++ >= limit) break;
      SourceStatus st;
      st.id = name;
      st.kind = SourceKind::pg;
      st.signal = channel.signal;
      st.from_config = true;
      st.schedule = "LISTEN " + name;
      st.fired = channel.received;
      out.push_back(std::move(st));
    }
  }
  // The connection's state and counts (docs/metrics.md): from the same numbers as `status`.
  void metrics(std::vector<MetricSample>& out) const override {
    const Json st = core_->status();
    const std::string state = st.value("state", "");
    out.push_back({"tocsin_pgnotify_up",
                   "1 while pgnotify is connected and listening, else 0.",
                   false,
                   {},
                   state == "listening" ? 1.0 : 0.0});
    for (const char* s : {"idle", "connecting", "listening", "reconnecting", "stopped"}) {
      out.push_back({"tocsin_pgnotify_state",
                     "pgnotify's connection state (1 for the current one).",
                     false,
                     {{"state", s}},
                     state == s ? 1.0 : 0.0});
    }
    auto number = [&](const char* key) { return st.value(key, 0.0); };
    out.push_back({"tocsin_pgnotify_reconnects_total",
                   "Connections to Postgres made again after "
                   "a loss.",
                   true,
                   {},
                   number("reconnects")});
    out.push_back({"tocsin_pgnotify_notifications_received_total",
                   "NOTIFYs received.",
                   true,
                   {},
                   number("received")});
    out.push_back({"tocsin_pgnotify_notifications_sent_total",
                   "pg_notify calls made by "
                   "pgnotify.notify handlers.",
                   true,
                   {},
                   number("sent")});
    out.push_back({"tocsin_pgnotify_notifications_dropped_total",
                   "pgnotify.notify calls dropped "
                   "(queue full).",
                   true,
                   {},
                   number("dropped")});
    out.push_back(
        {"tocsin_pgnotify_queue", "Queries waiting to be sent.", false, {}, number("queued")});
  }
  void stop() override {}

 private:
  std::shared_ptr<PgNotify> core_;
};

// ---- the Plugin the daemon sees ----

class PgNotifyPlugin final : public tocsin::Plugin {
 public:
  std::vector<std::string> check(const Json& settings, const SignalKnown& known) const override {
    return parse_settings(settings, known).errors;
  }
  std::vector<std::string> check_handler(const std::string& handler,
                                         const Json& with) const override {
    if (handler != "notify") return {"unknown handler \"" + handler + "\" (pgnotify has notify)"};
    std::vector<std::string> errors;
    parse_notify_with(with, &errors);
    return errors;
  }
  ~PgNotifyPlugin() override { detach(); }

  Result<void> start(PluginHost& host, const Json& settings) override {
    host_ = &host;
    Parsed p = parse_settings(settings, [&](const Json& ref) {
      return static_cast<bool>(host.resolve_signal(ref));
    });
    if (!p.errors.empty()) return Error{"pgnotify: " + p.errors.front()};
    core_->start(host, std::move(p.settings));
    host.source_registry().attach(channels_);
    attached_ = true;
    return ok();
  }
  Result<void> reconfigure(const Json& settings) override {
    Parsed p = parse_settings(settings, [&](const Json& ref) {
      return static_cast<bool>(host_->resolve_signal(ref));
    });
    if (!p.errors.empty()) return Error{"pgnotify: " + p.errors.front()};
    core_->configure(std::move(p.settings));
    return ok();
  }
  void stop() override {
    detach();
    core_->stop();
  }
  Result<std::shared_ptr<Handler>> make_handler(const std::string& handler, const Json& with,
                                                SignalId) override {
    std::vector<std::string> errors;
    auto w = handler == "notify" ? parse_notify_with(with, &errors) : std::nullopt;
    if (!w) {
      return Error{"pgnotify." + handler + ": " +
                   (errors.empty() ? "unknown handler" : errors.front())};
    }
    return std::shared_ptr<Handler>(
        std::make_shared<NotifyHandler>(core_, w->channel));
  }
  Json status() const override { return core_->status(); }
  bool provides_claims() const override { return true; }
  void claim(const std::string& job, std::int64_t slot, ClaimDone done) override {
    core_->claim(job, slot, std::move(done));
  }

 private:
  void detach() {
    if (attached_ && host_ != nullptr) host_->source_registry().detach(channels_);
    attached_ = false;
  }

  PluginHost* host_ = nullptr;
  std::shared_ptr<PgNotify> core_ = std::make_shared<PgNotify>();
  PgChannels channels_{core_};
  bool attached_ = false;
};

tocsin::Plugin* create() { return new PgNotifyPlugin(); }

const tocsin_plugin_descriptor kDescriptor{TOCSIN_PLUGIN_ABI_VERSION, "pgnotify", "1.0", &create};

}  // namespace
}  // namespace tocsin::pgnotify

extern "C" __attribute__((visibility("default"))) const tocsin_plugin_descriptor*
tocsin_plugin_entry(void) {
  return &tocsin::pgnotify::kDescriptor;
}

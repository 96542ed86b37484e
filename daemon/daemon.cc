#include "daemon.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "dispatch/table_builder.h"
#include <malloc.h>

#include <algorithm>


#include "server/hub.h"
#include "server/server.h"
#include "sources/file_monitor.h"
#include "sources/timers.h"
#include "log/log.h"
#include "os/process.h"
#include "os/systemd.h"
#include "sources/posix_source.h"
#include "sources/cron_source.h"
#include "plugins/registry.h"
#include "tocsin/plugin.h"
#include "cron/expression.h"

namespace tocsin {

namespace asio = boost::asio;

config::LoadResult load_for_daemon(const DaemonOptions& options) {
  config::LoadResult result = config::load_config_file(options.config_path);
  if (!result.config) return result;
  if (options.socket_path) result.config->socket.path = *options.socket_path;
  if (options.log_level) result.config->log_level = *options.log_level;
  result.errors = check_supported(*result.config);
  for (auto& e : check_plugins(*result.config)) result.errors.push_back(std::move(e));
  if (!result.errors.empty()) result.config.reset();
  return result;
}

std::vector<config::ConfigError> check_supported(const config::Config& config) {
  std::vector<config::ConfigError> errors;
  // Whether a plugin claims the slots of cluster jobs is the plugins' to say: check_plugins().
  for (const auto& t : config.rb_timers) {
    if (t.cluster) {
      errors.push_back({t.where, "`cluster: true` is for timers and cron jobs; rb_timer `" + t.id +
                                     "` cannot be clustered (make it a timer)"});
    }
  }
  return errors;
}

class Daemon::Impl final : public ServerHost, public PluginHost {
 public:
  Impl(DaemonOptions options, std::unique_ptr<Clock> clock)
      : options_(std::move(options)),
        clock_(clock ? std::move(clock) : std::make_unique<SystemClock>()),
        dispatcher_(*clock_, stats_),
        hub_(*clock_, stats_),
        supervisor_(io_),
        posix_(io_, dispatcher_,
               {.reload = [this] { (void)reload(); }, .stop = [this](int) { request_stop(); }}),
        timers_(io_, dispatcher_, *clock_),
        cron_(io_, dispatcher_, *clock_),
        files_(io_, dispatcher_, *clock_),
        server_(io_, hub_, *this),
        plugins_(*this),
        stop_timer_(io_),
        started_(clock_->steady_now()) {
    Claimer claimer = [this](const std::string& job, std::int64_t slot, ClaimDone done) {
      if (Plugin* p = plugins_.claims()) {
        p->claim(job, slot, std::move(done));
      } else {
        done(false, "no plugin makes claims (cluster jobs need pgnotify)");
      }
    };
    timers_.set_claimer(claimer);
    cron_.set_claimer(claimer);
  }

  ~Impl() override {
    // The handlers (and their children's callbacks) go before the reactor they live in.
    dispatcher_.set_table(std::make_shared<SignalTable>());
    dispatcher_.set_unhandled_sink(nullptr);
    supervisor_.kill_all();
  }

  Result<void> start(config::Config config) {
    hub_.set_limits(hub_limits(config.limits));
    state_dir_ = config.state_dir;
    if (auto r = plugins_.prepare(config); !r) return r;
    auto table = build(config, nullptr);
    if (!table) return table.error();
    if (auto r = posix_.start(config.posix_signals); !r) return r;
    dispatcher_.set_table(std::move(table.value()));
    if (auto r = plugins_.commit(config); !r) return r;
    dispatcher_.set_unhandled_sink(
        [this](const EventPtr& event) { return server_.offer_unhandled(event); });
    if (auto r = server_.start(config.socket, config.limits,
                               os::systemd::activated_socket("tocsind.socket"));
        !r) {
      return r;
    }
    if (auto r = timers_.apply_config(config.timers, config.rb_timers); !r) return r;
    files_.set_payload_limit(config.limits.payload_bytes);
    if (auto r = files_.apply_config(config.file_monitors); !r) return r;
    // Last: @reboot jobs fire now, with the table and the socket in place.
    if (auto r = cron_.apply_config(config.cron, config.state_dir, /*at_start=*/true); !r) return r;
    config_ = std::move(config);
    release_applied_config();
    spdlog::info(
        "tocsind {} ready: config {}, socket {}, {} signals, {} posix signal mappings, {} timers, "
        "{} rb_timers, {} cron jobs, {} file monitors",
        TOCSIN_VERSION, config_.file, server_.path(), dispatcher_.table().size(),
        config_.posix_signals.size(), timers_.timer_count(), timers_.rb_timer_count(),
        cron_.count(), files_.count());
    os::systemd::notify("READY=1\nSTATUS=" + status_line());
    if (auto interval = os::systemd::watchdog_ping_interval()) {
      watchdog_interval_ = *interval;
      spdlog::info("watchdog: pinging systemd every {}ms", interval->count() / 1000);
      ping_watchdog();
    }
    return ok();
  }

  // One line for systemctl status.
  std::string status_line() const {
    return std::to_string(dispatcher_.table().size()) + " signals, " +
           std::to_string(timers_.timer_count() + timers_.rb_timer_count()) + " timers, " +
           std::to_string(cron_.count()) + " cron jobs, " +
           std::to_string(server_.sessions()) + " clients, " +
           std::to_string(supervisor_.live()) + " children, " +
           std::to_string(dispatcher_.last_seq()) + " events";
  }

  // Pinged from the reactor itself: a stalled reactor stops pinging and systemd kills it.
  void ping_watchdog() {
    os::systemd::notify("WATCHDOG=1\nSTATUS=" + status_line());
    watchdog_timer_.expires_after(watchdog_interval_);
    watchdog_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec && !stopping_) ping_watchdog();
    });
  }

  int run() {
    io_.run();
    return exit_code_;
  }

  void request_stop() {
    if (stopping_) return;
    stopping_ = true;
    os::systemd::notify("STOPPING=1\nSTATUS=stopping");
    watchdog_timer_.cancel();
    spdlog::info("stopping: {} client(s), {} child process(es)", server_.sessions(),
                 supervisor_.live());
    posix_.stop();
    timers_.stop();
    cron_.stop();
    files_.stop();
    plugins_.stop_all();
    // Removing the handlers drops exec queues (logged, counted) and lets no new child start;
    // every child's process group is killed and reaped through the reactor; every client gets
    // what is queued for it. All of it within kStopGrace.
    dispatcher_.set_table(std::make_shared<SignalTable>());
    supervisor_.kill_all();
    stop_timer_.expires_after(kStopGrace);
    stop_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      spdlog::error("stop: after {}s, {} child process(es) not reaped, {} client(s) not flushed",
                    kStopGrace.count(), supervisor_.live(), server_.sessions());
      io_.stop();
    });
    pending_stop_parts_ = 2;
    auto part_done = [this] {
      if (--pending_stop_parts_ > 0) return;
      stop_timer_.cancel();
      spdlog::info("stopped");
      io_.stop();
    };
    server_.stop(part_done);
    supervisor_.when_idle(part_done);
  }

  Result<void> reload() override {
    if (stopping_) return Error{"the daemon is stopping"};
    os::systemd::notify(os::systemd::reloading_message());
    Result<void> r = apply_reload();
    // Ready again either way: a failed reload leaves the old configuration running.
    os::systemd::notify("READY=1\nSTATUS=" +
                        (r ? status_line() : "reload failed, previous configuration running; " +
                                                 status_line()));
    return r;
  }

  Result<void> apply_reload() {
    config::LoadResult loaded = load_for_daemon(options_);
    if (!loaded.config) {
      std::string why;
      for (const auto& e : loaded.errors) {
        spdlog::error("reload: {}", config::to_string(e));
        if (!why.empty()) why += "\n";
        why += config::to_string(e);
      }
      spdlog::error("reload failed ({} error(s)); the running configuration stays in force",
                    loaded.errors.size());
      return Error{why};
    }
    config::Config next = std::move(*loaded.config);
    if (auto r = plugins_.prepare(next); !r) {
      plugins_.abort();
      spdlog::error("reload failed: {}; the running configuration stays in force",
                    r.error().message);
      return r;
    }
    auto table = build(next, &dispatcher_.table());
    if (!table) {
      plugins_.abort();
      spdlog::error("reload failed: {}; the running configuration stays in force",
                    table.error().message);
      return table.error();
    }
    if (auto r = posix_.set_mappings(next.posix_signals); !r) {
      plugins_.abort();
      spdlog::error("reload failed: {}; the running configuration stays in force",
                    r.error().message);
      return r;
    }
    if (next.socket.path != config_.socket.path || next.socket.mode != config_.socket.mode ||
        next.socket.group != config_.socket.group) {
      spdlog::warn("reload: socket settings changed; they take effect at the next start");
    }
    if (auto r = check_source_ids(next); !r) {
      plugins_.abort();
      spdlog::error("reload failed: {}; the running configuration stays in force",
                    r.error().message);
      return r;
    }
    if (auto r = cron_.check_config(next.cron); !r) {
      plugins_.abort();
      spdlog::error("reload failed: {}; the running configuration stays in force",
                    r.error().message);
      return r;
    }
    if (auto r = timers_.apply_config(next.timers, next.rb_timers); !r) {
      plugins_.abort();
      spdlog::error("reload failed: {}; the running configuration stays in force",
                    r.error().message);
      return r;
    }
    (void)cron_.apply_config(next.cron, next.state_dir, /*at_start=*/false);  // checked above
    files_.set_payload_limit(next.limits.payload_bytes);
    if (auto r = files_.apply_config(next.file_monitors); !r) {
      // Only a monitor that cannot start at all (no inotify fd) gets here: the check above
      // refused id clashes before anything changed.
      spdlog::error("reload: {}", r.error().message);
    }
    dispatcher_.set_table(std::move(table.value()));
    state_dir_ = next.state_dir;
    if (auto r = plugins_.commit(next); !r) {
      // The table is in place; a plugin that cannot take its new settings keeps running with
      // its old ones (or not at all) and says so.
      spdlog::error("reload: {}", r.error().message);
    }
    hub_.set_limits(hub_limits(next.limits));
    server_.set_limits(next.limits);
    logging::set_level(next.log_level);
    next.socket = config_.socket;  // what is in force
    config_ = std::move(next);
    release_applied_config();
    spdlog::info(
        "reloaded: config {}, {} signals, {} posix signal mappings, {} timers, {} rb_timers, {} "
        "cron jobs, {} file monitors",
        config_.file, dispatcher_.table().size(), config_.posix_signals.size(),
        timers_.timer_count(), timers_.rb_timer_count(), cron_.count(), files_.count());
    return ok();
  }

  // ---- ServerHost ----
  Dispatcher& dispatcher() override { return dispatcher_; }
  const SignalStats& stats() const override { return stats_; }
  const config::Config& config() const override { return config_; }
  std::size_t children() const override { return supervisor_.live(); }
  double uptime_seconds() const override {
    return std::chrono::duration<double>(clock_->steady_now() - started_).count();
  }

  // Ids are unique across every kind of source; a generated one is KIND:N.
  bool source_exists(const std::string& id) const {
    return timers_.contains(id) || cron_.contains(id) || files_.contains(id);
  }
  std::size_t source_count() const {
    return timers_.timer_count() + timers_.rb_timer_count() + cron_.count() + files_.count();
  }
  Result<std::string> new_source_id(std::string id, SourceKind kind) {
    if (id.empty()) {
      do {
        id = std::string(to_string(kind)) + ":" + std::to_string(++generated_ids_);
      } while (source_exists(id));
    } else if (source_exists(id)) {
      return Error{"the id \"" + id + "\" is already used by another source", -32602};
    }
    if (source_count() >= config_.limits.sources) {
      return Error{"limits.sources (" + std::to_string(config_.limits.sources) + ") reached",
                   -32002};
    }
    return id;
  }

  Result<std::string> add_timer(config::TimerSpec spec, SourceKind kind) override {
    auto id = new_source_id(spec.id, kind);
    if (!id) return id.error();
    spec.id = *id;
    if (auto r = timers_.add(spec, kind, /*from_config=*/false); !r) return r.error();
    return spec.id;
  }

  Result<std::string> add_cron(config::CronSpec spec) override {
    auto id = new_source_id(spec.id, SourceKind::cron);
    if (!id) return id.error();
    spec.id = *id;
    if (auto r = cron_.add(spec); !r) return r.error();
    spdlog::info("cron job {} added: {}", spec.id,
                 spec.uwsgi ? std::string("uwsgi form") : spec.schedule);
    return spec.id;
  }

  Result<std::string> add_file_monitor(config::FileMonitorSpec spec) override {
    auto id = new_source_id(spec.id, SourceKind::file);
    if (!id) return id.error();
    spec.id = *id;
    spec.where = config::Location{"<add_file_monitor>", 0, 0};
    if (auto r = files_.add(spec, /*from_config=*/false); !r) return r.error();
    return spec.id;
  }

  FileMonitorSummary file_monitors(std::size_t limit) const override {
    FileMonitorSummary s;
    s.count = files_.count();
    s.degraded = files_.degraded_count();
    s.watches = files_.watch_count();
    s.overflows = files_.overflow_count();
    for (auto& f : files_.list(limit)) {
      s.list.push_back(FileMonitorInfo{f.id, f.signal, f.path, f.recursive, std::move(f.degraded),
                                       f.watches, f.unwatched, f.iterations, f.batches,
                                       f.from_config});
    }
    return s;
  }

  Result<void> remove_source(const std::string& id) override {
    if (timers_.remove(id) || cron_.remove(id) || files_.remove(id)) {
      spdlog::info("source {} removed", id);
      return ok();
    }
    return Error{"no source with id \"" + id + "\"", -32005};
  }

  // A reload may not give a configuration source the id of a run-time source of another kind
  // (same-kind clashes are checked by each kind's apply_config). Changes nothing.
  bool runtime_source(const std::string& id) const {
    if (auto t = timers_.find(id); t && !t->from_config) return true;
    if (auto f = files_.find(id); f && !f->from_config) return true;
    return cron_.is_runtime(id);
  }
  Result<void> check_source_ids(const config::Config& next) const {
    auto taken = [&](const std::string& id, const config::Location& where, const char* kind,
                     bool same_kind_runtime) -> Result<void> {
      if (!same_kind_runtime && runtime_source(id)) {
        return Error{config::to_string(where) + ": " + kind + " id \"" + id +
                     "\" is taken by a source added at run time (remove_source it first)"};
      }
      return ok();
    };
    for (const auto& c : next.cron) {
      if (auto r = taken(c.id, c.where, "cron job", cron_.is_runtime(c.id)); !r) return r;
    }
    for (const auto& f : next.file_monitors) {
      auto own = files_.find(f.id);
      if (auto r = taken(f.id, f.where, "file monitor", own && !own->from_config); !r) return r;
    }
    for (const auto* list : {&next.timers, &next.rb_timers}) {
      for (const auto& t : *list) {
        auto own = timers_.find(t.id);
        if (auto r = taken(t.id, t.where, "timer", own && !own->from_config); !r) return r;
      }
    }
    return files_.check_config(next.file_monitors);
  }

  std::size_t cron_count() const override { return cron_.count(); }

  nlohmann::json plugins_status() const override { return plugins_.status(); }

  // ---- PluginHost ----
  asio::io_context& io() override { return io_; }
  EventPtr raise(SignalId signal, SourceKind kind, std::string source_id,
                 std::string payload) override {
    return dispatcher_.raise(signal, SourceRef{kind, std::move(source_id)}, std::move(payload));
  }
  Result<SignalId> resolve_signal(const nlohmann::json& ref) const override {
    if (ref.is_number_integer()) {
      auto n = ref.get<std::int64_t>();
      if (n >= 0 && n <= 255) return static_cast<SignalId>(n);
      return Error{"a signal number is 0-255"};
    }
    if (ref.is_string()) {
      if (const SignalEntry* e = dispatcher_.table().find(std::string_view(ref.get_ref<const std::string&>()))) {
        return e->number;
      }
      return Error{"no signal named \"" + ref.get<std::string>() + "\""};
    }
    return Error{"a signal is a number or a name"};
  }
  SignalStats& stats() override { return stats_; }
  const std::string& state_dir() const override { return state_dir_; }

  CronStateHealth cron_state() const override { return cron_.state_health(); }
  std::vector<CronInfo> cron_list(std::size_t limit) const override {
    std::vector<CronInfo> out;
    for (const auto& j : cron_.list(limit)) {
      CronInfo info{.id = j.id,
                    .signal = j.signal,
                    .schedule = j.schedule,
                    .zone = j.zone,
                    .missed_policy = j.missed_policy == config::Missed::once ? "once" : "skip",
                    .fired = j.fired,
                    .missed = j.missed,
                    .iterations = j.iterations,
                    .from_config = j.from_config};
      if (j.next) {
        info.next = cron::format_in_zone(*j.next, *cron::find_zone(j.zone, nullptr));
      }
      out.push_back(std::move(info));
    }
    return out;
  }

  std::pair<std::size_t, std::size_t> timer_counts() const override {
    return {timers_.timer_count(), timers_.rb_timer_count()};
  }

  std::vector<SourceInfo> timer_list(std::size_t limit) const override {
    std::vector<SourceInfo> out;
    for (const auto& t : timers_.list(limit)) {
      out.push_back({t.id, t.kind, t.signal, t.every_ms, to_string(t.clock), t.iterations, t.fired,
                     t.overruns, (t.next_ns - clock_->now_ns(t.clock)) / 1000000, t.from_config});
    }
    return out;
  }

  Result<void> register_target(SignalId signal, const config::TargetHandler& target) override {
    for (const auto& [s, t] : runtime_targets_) {
      if (s == signal && t == target) {
        return Error{"signal " + std::to_string(signal) + " already has this target", -32602};
      }
    }
    runtime_targets_.emplace_back(signal, target);
    auto table = build(config_, &dispatcher_.table());
    if (!table) {
      runtime_targets_.pop_back();
      return table.error();
    }
    dispatcher_.set_table(std::move(table.value()));
    return ok();
  }

  Result<void> unregister_target(SignalId signal, const config::TargetHandler& target) override {
    auto it = std::find(runtime_targets_.begin(), runtime_targets_.end(),
                        std::pair<SignalId, config::TargetHandler>{signal, target});
    if (it == runtime_targets_.end()) {
      return Error{"signal " + std::to_string(signal) +
                       " has no such run-time target (handlers from the configuration file are "
                       "changed there)",
                   -32005};
    }
    auto saved = *it;
    runtime_targets_.erase(it);
    auto table = build(config_, &dispatcher_.table());
    if (!table) {
      runtime_targets_.push_back(saved);
      return table.error();
    }
    dispatcher_.set_table(std::move(table.value()));
    return ok();
  }

  // The table of `config` plus the targets registered at run time, reusing the unchanged
  // handlers of `previous`.
  Result<std::shared_ptr<SignalTable>> build(const config::Config& config,
                                             const SignalTable* previous) {
    std::vector<config::SignalSpec> signals = config.signals;
    for (const auto& runtime : runtime_targets_) {
      const SignalId signal = runtime.first;  // not a structured binding: lambdas capture it
      const config::TargetHandler& target = runtime.second;
      auto it = std::find_if(signals.begin(), signals.end(),
                             [&](const config::SignalSpec& s) { return s.number == signal; });
      if (it == signals.end()) {
        config::SignalSpec spec;
        spec.number = signal;
        it = signals.insert(std::lower_bound(signals.begin(), signals.end(), signal,
                                             [](const config::SignalSpec& s, SignalId n) {
                                               return s.number < n;
                                             }),
                            spec);
      }
      it->handlers.push_back(config::HandlerSpec{target, config::Location{"<register>", 0, 0}});
    }
    HandlerContext ctx{supervisor_, stats_, config.limits, hub_, &plugins_};
    return build_table(signals, previous, ctx);
  }

  // Once applied, the timer lists live in TimerSources (reload compares against the live timers),
  // so the config's copies go; and what parsing a big file left in malloc's free lists goes back
  // to the kernel. A million rb_timers in YAML would otherwise cost kilobytes each.
  void release_applied_config() {
    std::vector<config::TimerSpec>().swap(config_.timers);
    std::vector<config::TimerSpec>().swap(config_.rb_timers);
    std::vector<config::CronSpec>().swap(config_.cron);
    ::malloc_trim(0);
  }

  static Hub::Limits hub_limits(const config::Limits& l) {
    return Hub::Limits{static_cast<std::size_t>(l.subscriber_queue),
                       static_cast<std::size_t>(l.backlog),
                       static_cast<std::size_t>(l.subscriptions), l.ack_timeout};
  }

  DaemonOptions options_;
  std::unique_ptr<Clock> clock_;
  asio::io_context io_{1};
  SignalStats stats_;
  Dispatcher dispatcher_;
  Hub hub_;
  os::ProcessSupervisor supervisor_;
  PosixSignalSource posix_;
  TimerSources timers_;
  CronSource cron_;
  FileMonitors files_;
  Server server_;
  PluginRegistry plugins_;
  std::string state_dir_;
  asio::steady_timer stop_timer_;
  asio::steady_timer watchdog_timer_{io_};
  std::chrono::microseconds watchdog_interval_{0};
  std::chrono::steady_clock::time_point started_;
  config::Config config_;
  std::vector<std::pair<SignalId, config::TargetHandler>> runtime_targets_;
  bool stopping_ = false;
  std::uint64_t generated_ids_ = 0;
  int pending_stop_parts_ = 0;
  int exit_code_ = 0;
};

Daemon::Daemon(DaemonOptions options, std::unique_ptr<Clock> clock)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(clock))) {}
Daemon::~Daemon() = default;

Result<void> Daemon::start(config::Config config) { return impl_->start(std::move(config)); }
int Daemon::run() { return impl_->run(); }
void Daemon::request_stop() { impl_->request_stop(); }
Result<void> Daemon::reload() { return impl_->reload(); }
asio::io_context& Daemon::io() { return impl_->io_; }
Dispatcher& Daemon::dispatcher() { return impl_->dispatcher_; }
const SignalStats& Daemon::stats() const { return impl_->stats_; }
const config::Config& Daemon::config() const { return impl_->config_; }

}  // namespace tocsin

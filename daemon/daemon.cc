#include "daemon.h"

#include <malloc.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "dispatch/hub.h"
#include "protocol/line.h"
#include "dispatch/table_builder.h"
#include "log/log.h"
#include "os/process.h"
#include "os/systemd.h"
#include "plugins/registry.h"
#include "server/metrics_http.h"
#include "server/server.h"
#include "tocsin/event_source.h"
#include "tocsin/plugin.h"

namespace tocsin {

namespace asio = boost::asio;

config::LoadResult load_for_daemon(const DaemonOptions& options) {
  config::LoadResult result = config::load_config_file(options.config_path);
  if (!result.config) return result;
  if (options.socket_path) result.config->socket.path = *options.socket_path;
  if (options.log_level) result.config->log_level = *options.log_level;
  result.errors = check_plugins(*result.config);
  if (!result.errors.empty()) result.config.reset();
  return result;
}

class Daemon::Impl final : public ServerHost, public PluginHost {
 public:
  // Queued events (all clients together) that make a burst worth trimming memory after.
  static constexpr std::size_t kTrimAfterQueued = 65536;

  Impl(DaemonOptions options, std::unique_ptr<Clock> clock)
      : options_(std::move(options)),
        clock_(clock ? std::move(clock) : std::make_unique<SystemClock>()),
        dispatcher_(*clock_, stats_),
        hub_(*clock_, stats_),
        supervisor_(io_),
        sources_(SourceContext{
            .io = io_,
            .dispatcher = dispatcher_,
            .clock = *clock_,
            .claimer =
                [this](const std::string& job, std::int64_t slot, ClaimDone done) {
                  if (Plugin* p = plugins_.claims()) {
                    p->claim(job, slot, std::move(done));
                  } else {
                    done(false, "no plugin makes claims (cluster jobs need pgnotify)");
                  }
                },
            .claims_available = [this] { return plugins_.claims() != nullptr; },
            .reload = [this] { (void)reload(); },
            .stop = [this](int) { request_stop(); }}),
        server_(io_, hub_, *this),
        plugins_(*this),
        stop_timer_(io_),
        started_(clock_->steady_now()) {}

  ~Impl() override {
    // The handlers (and their children's callbacks) go before the reactor they live in.
    dispatcher_.set_table(std::make_shared<SignalTable>());
    dispatcher_.set_unhandled_sink(nullptr);
    supervisor_.kill_all();
  }

  Result<void> start(config::Config config) {
    hub_.set_dispatcher(&dispatcher_);
    // After a burst, once every queue is empty: what the queues and their lines took goes back
    // to the kernel (glibc keeps freed chunks in its arenas otherwise: a burst to 100 subscribers
    // left 330 MB resident). Posted: pop() and disconnect() call this mid-operation.
    hub_.set_drained(kTrimAfterQueued, [this](std::size_t peak) {
      asio::post(io_, [peak] {
        Line::release_pool();
        ::malloc_trim(0);
        spdlog::debug("queues drained after a burst of {} queued events: memory returned", peak);
      });
    });
    hub_.set_limits(hub_limits(config.limits));
    state_dir_ = config.state_dir;
    if (auto r = plugins_.prepare(config); !r) return r;
    auto table = build(config, nullptr);
    if (!table) return table.error();
    dispatcher_.set_table(std::move(table.value()));
    if (auto r = plugins_.commit(config); !r) return r;
    dispatcher_.set_unhandled_sink(
        [this](const EventPtr& event) { return server_.offer_unhandled(event); });
    if (auto r = server_.start(config.socket, config.limits,
                               os::systemd::activated_socket("tocsind.socket"));
        !r) {
      return r;
    }
    if (config.metrics) {
      auto http = bind_metrics(*config.metrics);
      if (!http) return http.error();
      metrics_http_ = std::move(http.value());
      metrics_http_->start();
      spdlog::info("metrics: listening on http://{}/metrics", metrics_http_->endpoint());
    }
    // Last: @reboot jobs fire now, with the table and the socket in place.
    if (auto r = sources_.apply_config(config, /*at_start=*/true); !r) return r;
    config_ = std::move(config);
    release_applied_config();
    spdlog::info("tocsind {} ready: config {}, socket {}, {} signals, sources: {}", TOCSIN_VERSION,
                 config_.file, server_.path(), dispatcher_.table().size(), sources_.summary());
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
           std::to_string(sources_.count()) + " sources, " + std::to_string(server_.sessions()) +
           " clients, " + std::to_string(supervisor_.live()) + " children, " +
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
    metrics_http_.reset();
    sources_.stop();
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

  // Everything that can fail is checked before anything changes: the file, the plugins, the
  // table, and every source kind's configuration.
  Result<void> apply_reload() {
    auto failed = [this](const Error& e) -> Result<void> {
      plugins_.abort();
      spdlog::error("reload failed: {}; the running configuration stays in force", e.message);
      return e;
    };
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
    if (auto r = plugins_.prepare(next); !r) return failed(r.error());
    auto table = build(next, &dispatcher_.table());
    if (!table) return failed(table.error());
    if (auto r = sources_.check_config(next); !r) return failed(r.error());
    // A new metrics address is bound before anything changes: one that cannot be bound fails
    // the reload, and the old endpoint keeps serving. (An endpoint lost by a failed rebind is
    // bound again by the next reload.)
    const bool metrics_changed =
        next.metrics != config_.metrics || (next.metrics && !metrics_http_);
    std::unique_ptr<MetricsHttp> next_http;
    if (metrics_changed && next.metrics) {
      auto http = rebind_metrics(*next.metrics);
      if (!http) return failed(http.error());
      next_http = std::move(http.value());
    }
    if (next.socket.path != config_.socket.path || next.socket.mode != config_.socket.mode ||
        next.socket.group != config_.socket.group) {
      spdlog::warn("reload: socket settings changed; they take effect at the next start");
    }
    if (auto r = sources_.apply_config(next, /*at_start=*/false); !r) {
      // Only a source that cannot start at all (no timerfd, no inotify fd) gets here: the check
      // above refused everything a configuration can get wrong.
      spdlog::error("reload: {}", r.error().message);
    }
    dispatcher_.set_table(std::move(table.value()));
    state_dir_ = next.state_dir;
    if (auto r = plugins_.commit(next); !r) {
      // The table is in place; a plugin that cannot take its new settings keeps running with
      // its old ones (or not at all) and says so.
      spdlog::error("reload: {}", r.error().message);
    }
    if (metrics_changed) {
      if (metrics_http_)
        spdlog::info("metrics: no longer listening on {}", metrics_http_->endpoint());
      metrics_http_ = std::move(next_http);
      if (metrics_http_) {
        metrics_http_->start();
        spdlog::info("metrics: listening on http://{}/metrics", metrics_http_->endpoint());
      }
    }
    hub_.set_limits(hub_limits(next.limits));
    server_.set_limits(next.limits);
    logging::set_level(next.log_level);
    next.socket = config_.socket;  // what is in force
    config_ = std::move(next);
    release_applied_config();
    spdlog::info("reloaded: config {}, {} signals, sources: {}", config_.file,
                 dispatcher_.table().size(), sources_.summary());
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
  SourceRegistry& sources() override { return sources_; }
  nlohmann::json plugins_status() const override { return plugins_.status(); }
  std::string metrics_endpoint() const override {
    return metrics_http_ ? metrics_http_->endpoint() : std::string();
  }

  Result<void> register_target(SignalId signal, const config::TargetHandler& target) override {
    for (const auto& [s, t] : runtime_targets_) {
      if (s == signal && t == target) {
        return Error{"signal " + std::to_string(signal) + " already has this target",
                     ErrorCode::invalid_params};
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
                   ErrorCode::not_found};
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
      if (const SignalEntry* e =
              dispatcher_.table().find(std::string_view(ref.get_ref<const std::string&>()))) {
        return e->number;
      }
      return Error{"no signal named \"" + ref.get<std::string>() + "\""};
    }
    return Error{"a signal is a number or a name"};
  }
  SignalStats& stats() override { return stats_; }
  const std::string& state_dir() const override { return state_dir_; }
  SourceRegistry& source_registry() override { return sources_; }

 private:
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

  // Once applied, the sources live in their kinds (a reload compares against the live ones), so
  // the configuration's copies go; and what parsing a big file left in malloc's free lists goes
  // back to the kernel. A million rb_timers in YAML would otherwise cost kilobytes each.
  void release_applied_config() {
    std::vector<std::shared_ptr<const SourceSpec>>().swap(config_.sources);
    ::malloc_trim(0);
  }

  Result<std::unique_ptr<MetricsHttp>> bind_metrics(const config::MetricsSpec& spec) {
    return MetricsHttp::bind(io_, spec, [this] { return server_.metrics_text(); });
  }

  // For a reload: a new address may overlap the old one (0.0.0.0:9750 -> 127.0.0.1:9750), which
  // cannot be bound while the old listens; then the old is closed first, and bound again if the
  // new one still fails.
  Result<std::unique_ptr<MetricsHttp>> rebind_metrics(const config::MetricsSpec& spec) {
    auto http = bind_metrics(spec);
    if (http || !metrics_http_ || metrics_http_->spec().port != spec.port) return http;
    const config::MetricsSpec old = metrics_http_->spec();
    metrics_http_.reset();
    http = bind_metrics(spec);
    if (http) return http;
    if (auto back = bind_metrics(old)) {
      metrics_http_ = std::move(back.value());
      metrics_http_->start();
    } else {
      spdlog::error("metrics: cannot listen on {} again: {}", old.listen, back.error().message);
    }
    return http;
  }

  static Hub::Limits hub_limits(const config::Limits& l) {
    return Hub::Limits{static_cast<std::size_t>(l.subscriber_queue),
                       static_cast<std::size_t>(l.backlog),
                       static_cast<std::size_t>(l.subscriptions), l.ack_timeout,
                       static_cast<std::size_t>(l.prefetch)};
  }

 public:
  DaemonOptions options_;
  std::unique_ptr<Clock> clock_;
  asio::io_context io_{1};
  SignalStats stats_;
  Dispatcher dispatcher_;
  Hub hub_;
  os::ProcessSupervisor supervisor_;
  SourceRegistry sources_;
  Server server_;
  std::unique_ptr<MetricsHttp> metrics_http_;
  PluginRegistry plugins_;
  std::string state_dir_;
  asio::steady_timer stop_timer_;
  asio::steady_timer watchdog_timer_{io_};
  std::chrono::microseconds watchdog_interval_{0};
  std::chrono::steady_clock::time_point started_;
  config::Config config_;
  std::vector<std::pair<SignalId, config::TargetHandler>> runtime_targets_;
  bool stopping_ = false;
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

#include "daemon.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "dispatch/table_builder.h"
#include "log/log.h"
#include "os/process.h"
#include "sources/posix_source.h"

namespace tocsin {

namespace asio = boost::asio;

config::LoadResult load_for_daemon(const DaemonOptions& options) {
  config::LoadResult result = config::load_config_file(options.config_path);
  if (!result.config) return result;
  if (options.socket_path) result.config->socket.path = *options.socket_path;
  if (options.log_level) result.config->log_level = *options.log_level;
  result.errors = check_supported(*result.config);
  if (!result.errors.empty()) result.config.reset();
  return result;
}

std::vector<config::ConfigError> check_supported(const config::Config& config) {
  std::vector<config::ConfigError> errors;
  auto refuse = [&](const config::Location& where, const std::string& what) {
    errors.push_back({where, what + " is not implemented yet in this version of tocsind"});
  };
  for (const auto& s : config.signals) {
    for (const auto& h : s.handlers) {
      if (std::holds_alternative<config::TargetHandler>(h.kind)) {
        refuse(h.where, "the `target:` handler (subscribers over the socket)");
      } else if (std::holds_alternative<config::PluginHandler>(h.kind)) {
        refuse(h.where, "the `plugin:` handler");
      }
    }
  }
  for (const auto& t : config.timers) refuse(t.where, "timers (timer `" + t.id + "`)");
  for (const auto& t : config.rb_timers) refuse(t.where, "rb_timers (rb_timer `" + t.id + "`)");
  for (const auto& f : config.file_monitors) {
    refuse(f.where, "file_monitors (file monitor `" + f.id + "`)");
  }
  for (const auto& c : config.cron) refuse(c.where, "cron (cron entry `" + c.id + "`)");
  for (const auto& p : config.plugins) refuse(p.where, "plugins (plugin `" + p.name + "`)");
  return errors;
}

class Daemon::Impl {
 public:
  Impl(DaemonOptions options, std::unique_ptr<Clock> clock)
      : options_(std::move(options)),
        clock_(clock ? std::move(clock) : std::make_unique<SystemClock>()),
        dispatcher_(*clock_, stats_),
        supervisor_(io_),
        posix_(io_, dispatcher_,
               {.reload = [this] { (void)reload(); }, .stop = [this](int) { request_stop(); }}),
        stop_timer_(io_) {}

  ~Impl() {
    // The handlers (and their children's callbacks) go before the reactor they live in.
    dispatcher_.set_table(std::make_shared<SignalTable>());
    supervisor_.kill_all();
  }

  Result<void> start(config::Config config) {
    HandlerContext ctx{supervisor_, stats_, config.limits};
    auto table = build_table(config.signals, nullptr, ctx);
    if (!table) return table.error();
    if (auto r = posix_.start(config.posix_signals); !r) return r;
    dispatcher_.set_table(std::move(table.value()));
    config_ = std::move(config);
    spdlog::info("tocsind {} ready: config {}, {} signals, {} posix signal mappings",
                 TOCSIN_VERSION, config_.file, dispatcher_.table().size(),
                 config_.posix_signals.size());
    return ok();
  }

  int run() {
    io_.run();
    return exit_code_;
  }

  void request_stop() {
    if (stopping_) return;
    stopping_ = true;
    spdlog::info("stopping: {} child process(es) to stop", supervisor_.live());
    posix_.stop();
    // Removing the handlers drops their queued events (logged, counted) and lets no new child
    // start; then every child's process group is killed and reaped through the reactor.
    dispatcher_.set_table(std::make_shared<SignalTable>());
    supervisor_.kill_all();
    stop_timer_.expires_after(kStopGrace);
    stop_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      spdlog::error("stop: {} child process(es) not reaped after {}s", supervisor_.live(),
                    kStopGrace.count());
      io_.stop();
    });
    supervisor_.when_idle([this] {
      stop_timer_.cancel();
      spdlog::info("stopped");
      io_.stop();
    });
  }

  Result<void> reload() {
    if (stopping_) return Error{"the daemon is stopping"};
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
    HandlerContext ctx{supervisor_, stats_, next.limits};
    auto table = build_table(next.signals, &dispatcher_.table(), ctx);
    if (!table) {
      spdlog::error("reload failed: {}; the running configuration stays in force",
                    table.error().message);
      return table.error();
    }
    if (auto r = posix_.set_mappings(next.posix_signals); !r) {
      spdlog::error("reload failed: {}; the running configuration stays in force",
                    r.error().message);
      return r;
    }
    dispatcher_.set_table(std::move(table.value()));
    logging::set_level(next.log_level);
    config_ = std::move(next);
    spdlog::info("reloaded: config {}, {} signals, {} posix signal mappings", config_.file,
                 dispatcher_.table().size(), config_.posix_signals.size());
    return ok();
  }

  DaemonOptions options_;
  std::unique_ptr<Clock> clock_;
  asio::io_context io_{1};
  SignalStats stats_;
  Dispatcher dispatcher_;
  os::ProcessSupervisor supervisor_;
  PosixSignalSource posix_;
  asio::steady_timer stop_timer_;
  config::Config config_;
  bool stopping_ = false;
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

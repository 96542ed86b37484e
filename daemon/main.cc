// tocsind — argv, config, Daemon, run. Errors become exit codes:
//   0  clean stop, or --check found no error
//   1  the configuration has errors (each printed as file:line:column: message)
//   2  bad command line
//   3  the daemon could not start (e.g. a signalfd could not be created)
#include <signal.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <spdlog/spdlog.h>

#include "daemon.h"
#include "tocsin/event_source.h"
#include "log/log.h"
#include "os/systemd.h"
#include "sources/posix/posix_source.h"

int main(int argc, char** argv) {
  // Before anything else: SIGHUP/SIGTERM/SIGINT wait for the reactor instead of killing us, and a
  // client or child that goes away never kills us with SIGPIPE.
  tocsin::PosixSignalSource::block_daemon_signals();
  ::signal(SIGPIPE, SIG_IGN);
  // Every timer, client and child pipe is an fd: take the hard limit, not the 1024 default.
  if (rlimit nofile{}; ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }

  CLI::App app{"tocsind: numbered signals from timers, files, cron and POSIX signals, "
               "delivered to programs, logs and subscribers"};
  tocsin::DaemonOptions options;
  options.config_path = "/etc/tocsin/tocsin.yaml";
  bool check = false;
  std::string socket_path;
  std::string log_level;
  app.add_option("-c,--config", options.config_path, "configuration file")
      ->capture_default_str();
  app.add_flag("--check", check, "validate the configuration and exit (0: valid, 1: errors)");
  std::string positional_config;  // `tocsind --check CONFIG` (SPEC §4) and `tocsind CONFIG`
  app.add_option("CONFIG", positional_config, "configuration file (same as --config)");
  app.add_option("--socket", socket_path, "Unix socket path (overrides socket.path)");
  app.add_option("--log-level", log_level,
                 "trace, debug, info, warn, error, critical or off (overrides log.level)");
  app.set_version_flag("--version", std::string("tocsind ") + TOCSIN_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (!positional_config.empty()) options.config_path = positional_config;
  if (!socket_path.empty()) options.socket_path = socket_path;
  if (!log_level.empty()) {
    options.log_level = tocsin::config::log_level_from_string(log_level);
    if (!options.log_level) {
      std::cerr << "tocsind: --log-level: unknown level \"" << log_level << "\"\n";
      return 2;
    }
  }

  tocsin::config::LoadResult loaded = tocsin::load_for_daemon(options);
  if (check) {
    for (const auto& e : loaded.errors) std::cerr << tocsin::config::to_string(e) << "\n";
    if (!loaded.config) {
      std::cerr << loaded.errors.size() << " error(s) in " << options.config_path << "\n";
      return 1;
    }
    std::cout << options.config_path << ": ok (" << loaded.config->signals.size() << " signals";
    for (const auto& kind : tocsin::source_kinds()) {
      std::size_t n = 0;
      for (const auto& s : loaded.config->sources) n += s->kind == kind.schema->kind() ? 1 : 0;
      std::cout << ", " << n << " " << kind.schema->config_key();
    }
    std::cout << ")\n";
    return 0;
  }
  if (!loaded.config) {
    for (const auto& e : loaded.errors) std::cerr << tocsin::config::to_string(e) << "\n";
    std::cerr << "tocsind: not started: " << loaded.errors.size() << " error(s) in "
              << options.config_path << "\n";
    return 1;
  }

  tocsin::logging::init(loaded.config->log_level, tocsin::os::systemd::stderr_is_journal());
  try {
    tocsin::Daemon daemon(options);
    if (auto r = daemon.start(std::move(*loaded.config)); !r) {
      spdlog::critical("not started: {}", r.error().message);
      return 3;
    }
    return daemon.run();
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 3;
  }
}

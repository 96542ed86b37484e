// tocsinctl — the command-line client. This version has the commands that need no running daemon;
// the socket commands (raise, subscribe, wait, table, status, metrics, reload) come with the
// socket protocol.
//   exit 0: ok; 1: the configuration has errors; 2: bad command line
#include <CLI/CLI.hpp>
#include <iostream>

#include "daemon.h"

int main(int argc, char** argv) {
  CLI::App app{"tocsinctl: drive and inspect tocsind"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tocsinctl ") + TOCSIN_VERSION);

  std::string config_path;
  auto* check = app.add_subcommand("check", "validate a configuration file (as tocsind --check)");
  check->add_option("CONFIG", config_path, "configuration file")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  if (*check) {
    tocsin::DaemonOptions options;
    options.config_path = config_path;
    auto loaded = tocsin::load_for_daemon(options);
    for (const auto& e : loaded.errors) std::cerr << tocsin::config::to_string(e) << "\n";
    if (!loaded.config) return 1;
    std::cout << config_path << ": ok\n";
    return 0;
  }
  return 2;
}

// registry.h — loading plugins (include/tocsin/plugin.h) and keeping them running across reloads.
//
// find_module() dlopens NAME.so from the first `plugin_path` directory that has it and checks the
// entry point and ABI version; a library once loaded stays loaded for the life of the process (a
// handler of an old table may still point into it). check_plugins() is what `tocsind --check`
// and every start and reload run first: a missing plugin, a wrong ABI version, bad settings or a
// bad handler `with:` is a ConfigError at the plugin's (or the handler's) location.
// PluginRegistry owns the running instances: prepare() creates the new ones (so the signal
// table's plugin handlers can be made), commit() starts, reconfigures and stops them once the
// table is published. Reactor thread only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tocsin/config.h"
#include "tocsin/plugin.h"
#include "tocsin/result.h"

namespace tocsin {

struct PluginModule {
  std::string name;
  std::string path;
  const tocsin_plugin_descriptor* descriptor = nullptr;
};

// The loaded module for `name`, or why there is none.
Result<const PluginModule*> find_module(const std::string& name,
                                        const std::vector<std::string>& plugin_path);

// Every problem with the plugins of `config`, each at its location.
std::vector<config::ConfigError> check_plugins(const config::Config& config);

class PluginRegistry {
 public:
  explicit PluginRegistry(PluginHost& host);
  ~PluginRegistry();
  PluginRegistry(const PluginRegistry&) = delete;
  PluginRegistry& operator=(const PluginRegistry&) = delete;

  // Creates instances for plugins of `config` not running yet (nothing is started).
  Result<void> prepare(const config::Config& config);
  // Starts the new ones, reconfigures those whose settings changed, stops those no longer listed.
  Result<void> commit(const config::Config& config);
  // Drops instances prepare() made that were never committed (a failed reload).
  void abort();
  void stop_all();

  Result<std::shared_ptr<Handler>> make_handler(const config::PluginHandler& spec,
                                                SignalId signal);
  // The first running plugin that makes cluster claims, or nullptr.
  Plugin* claims();
  nlohmann::json status() const;

 private:
  struct Instance {
    const PluginModule* module = nullptr;
    std::unique_ptr<Plugin> plugin;
    std::string settings;  // JSON text it runs with
  };
  PluginHost& host_;
  std::map<std::string, Instance> running_;
  std::map<std::string, Instance> pending_;
};

}  // namespace tocsin

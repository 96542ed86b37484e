#include "plugins/registry.h"

#include "tocsin/event_source.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <spdlog/spdlog.h>

namespace tocsin {

namespace {

using Json = nlohmann::json;

std::map<std::string, std::unique_ptr<PluginModule>>& modules() {
  static std::map<std::string, std::unique_ptr<PluginModule>> loaded;
  return loaded;
}

// Calls into a plugin never let an exception through (plugin.h asks them not to throw; this is
// the boundary that makes sure).
template <typename F>
auto guarded(const std::string& name, const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Error{"plugin `" + name + "`: " + what + " threw: " + e.what()};
  } catch (...) {
    return Error{"plugin `" + name + "`: " + what + " threw"};
  }
}

}  // namespace

Result<const PluginModule*> find_module(const std::string& name,
                                        const std::vector<std::string>& plugin_path) {
  if (auto it = modules().find(name); it != modules().end()) return it->second.get();
  std::string looked;
  for (const auto& dir : plugin_path) {
    std::string path = dir + "/" + name + ".so";
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      looked += (looked.empty() ? "" : ", ") + path;
      continue;
    }
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* e = ::dlerror();
      return Error{"plugin `" + name + "`: cannot load " + path + ": " + (e ? e : "?")};
    }
    auto entry = reinterpret_cast<tocsin_plugin_entry_fn>(::dlsym(handle, TOCSIN_PLUGIN_ENTRY));
    if (entry == nullptr) {
      ::dlclose(handle);
      return Error{"plugin `" + name + "`: " + path + " is not a tocsin plugin (it has no " +
                   TOCSIN_PLUGIN_ENTRY + ")"};
    }
    const tocsin_plugin_descriptor* d = entry();
    if (d == nullptr || d->abi_version != TOCSIN_PLUGIN_ABI_VERSION) {
      std::string got = d ? std::to_string(d->abi_version) : "none";
      ::dlclose(handle);
      return Error{"plugin `" + name + "`: " + path + " was built for plugin ABI version " + got +
                   "; this tocsind speaks version " + std::to_string(TOCSIN_PLUGIN_ABI_VERSION) +
                   " (rebuild the plugin with this tocsin)"};
    }
    if (d->name == nullptr || name != d->name || d->create == nullptr) {
      ::dlclose(handle);
      return Error{"plugin `" + name + "`: " + path + " calls itself `" +
                   (d->name ? d->name : "") + "`"};
    }
    // Never dlclosed: handlers of an old table may still run its code.
    auto m = std::make_unique<PluginModule>(PluginModule{name, path, d});
    const PluginModule* out = m.get();
    modules().emplace(name, std::move(m));
    spdlog::debug("plugin {}: loaded {} (version {})", name, path, d->version ? d->version : "?");
    return out;
  }
  std::string dirs;
  for (const auto& dir : plugin_path) dirs += (dirs.empty() ? "" : ", ") + dir;
  return Error{"plugin `" + name + "` not found in plugin_path (" +
               (dirs.empty() ? std::string("empty") : dirs) + ")" +
               (looked.empty() ? "" : ": no " + looked)};
}

std::vector<config::ConfigError> check_plugins(const config::Config& config) {
  std::vector<config::ConfigError> errors;
  Plugin::SignalKnown known = [&config](const Json& ref) {
    if (ref.is_number_integer()) return ref.get<std::int64_t>() >= 0 && ref.get<std::int64_t>() <= 255;
    if (!ref.is_string()) return false;
    const std::string& name = ref.get_ref<const std::string&>();
    return std::any_of(config.signals.begin(), config.signals.end(),
                       [&](const config::SignalSpec& s) { return s.name == name; });
  };
  std::map<std::string, std::unique_ptr<Plugin>> made;
  for (const auto& spec : config.plugins) {
    auto module = find_module(spec.name, config.plugin_path);
    if (!module) {
      errors.push_back({spec.where, module.error().message});
      continue;
    }
    std::unique_ptr<Plugin> plugin;
    try {
      plugin.reset((*module)->descriptor->create());
    } catch (...) {
    }
    if (!plugin) {
      errors.push_back({spec.where, "plugin `" + spec.name + "`: could not be created"});
      continue;
    }
    Json settings = Json::parse(spec.settings_json, nullptr, false);
    std::vector<std::string> problems;
    try {
      problems = plugin->check(settings, known);
    } catch (const std::exception& e) {
      problems.push_back(std::string("check threw: ") + e.what());
    }
    for (const auto& p : problems) errors.push_back({spec.where, "plugins." + spec.name + "." + p});
    made.emplace(spec.name, std::move(plugin));
  }
  // Cluster jobs claim their slots through a plugin that says it makes claims (docs/cluster.md).
  const bool claims = std::any_of(made.begin(), made.end(),
                                  [](const auto& m) { return m.second->provides_claims(); });
  auto needs_claims = [&](bool cluster, const config::Location& where, const std::string& what) {
    if (!cluster || claims) return;
    errors.push_back({where, "`cluster: true` (" + what +
                                 ") needs the pgnotify plugin to claim its slots: add "
                                 "plugins: {pgnotify: {conninfo: ...}}"});
  };
  for (const auto& source : config.sources) {
    const SourceSchema* schema = schema_for_kind(source->kind);
    needs_claims(source->cluster(), source->where,
                 std::string(schema ? schema->noun() : source->kind.name()) + " `" + source->id +
                     "`");
  }
  for (const auto& s : config.signals) {
    for (const auto& h : s.handlers) {
      const auto* ph = std::get_if<config::PluginHandler>(&h.kind);
      if (ph == nullptr) continue;
      auto it = made.find(ph->plugin);
      if (it == made.end()) continue;  // reported above, or by the loader
      Json with = Json::parse(ph->with_json, nullptr, false);
      std::vector<std::string> problems;
      try {
        problems = it->second->check_handler(ph->handler, with);
      } catch (const std::exception& e) {
        problems.push_back(std::string("check threw: ") + e.what());
      }
      for (const auto& p : problems) {
        errors.push_back({h.where, ph->plugin + "." + ph->handler + ": " + p});
      }
    }
  }
  return errors;
}

PluginRegistry::PluginRegistry(PluginHost& host) : host_(host) {}

PluginRegistry::~PluginRegistry() { stop_all(); }

Result<void> PluginRegistry::prepare(const config::Config& config) {
  pending_.clear();
  for (const auto& spec : config.plugins) {
    if (running_.contains(spec.name)) continue;
    auto module = find_module(spec.name, config.plugin_path);
    if (!module) return module.error();
    Instance inst;
    inst.module = *module;
    auto made = guarded(spec.name, "create", [&]() -> Result<Plugin*> {
      return (*module)->descriptor->create();
    });
    if (!made || *made == nullptr) return Error{"plugin `" + spec.name + "`: could not be created"};
    inst.plugin.reset(*made);
    inst.settings = spec.settings_json;
    pending_.emplace(spec.name, std::move(inst));
  }
  return ok();
}

Result<void> PluginRegistry::commit(const config::Config& config) {
  // Stop those no longer listed.
  for (auto it = running_.begin(); it != running_.end();) {
    bool listed = std::any_of(config.plugins.begin(), config.plugins.end(),
                              [&](const config::PluginSpec& p) { return p.name == it->first; });
    if (listed) {
      ++it;
      continue;
    }
    spdlog::info("plugin {}: stopped (no longer configured)", it->first);
    it->second.plugin->stop();
    it = running_.erase(it);
  }
  for (const auto& spec : config.plugins) {
    Json settings = Json::parse(spec.settings_json, nullptr, false);
    if (auto p = pending_.find(spec.name); p != pending_.end()) {
      Instance inst = std::move(p->second);
      pending_.erase(p);
      auto r = guarded(spec.name, "start", [&] { return inst.plugin->start(host_, settings); });
      if (!r) return r;
      spdlog::info("plugin {}: started ({})", spec.name, inst.module->path);
      running_.emplace(spec.name, std::move(inst));
      continue;
    }
    auto& inst = running_.at(spec.name);
    if (inst.settings == spec.settings_json) continue;
    auto r = guarded(spec.name, "reconfigure", [&] { return inst.plugin->reconfigure(settings); });
    if (!r) return r;
    inst.settings = spec.settings_json;
    spdlog::info("plugin {}: reconfigured", spec.name);
  }
  return ok();
}

void PluginRegistry::abort() { pending_.clear(); }

void PluginRegistry::stop_all() {
  for (auto& [name, inst] : running_) inst.plugin->stop();  // running_ holds started ones only
  running_.clear();
  pending_.clear();
}

Result<std::shared_ptr<Handler>> PluginRegistry::make_handler(const config::PluginHandler& spec,
                                                              SignalId signal) {
  Plugin* p = nullptr;
  if (auto it = pending_.find(spec.plugin); it != pending_.end()) p = it->second.plugin.get();
  if (auto it = running_.find(spec.plugin); p == nullptr && it != running_.end()) {
    p = it->second.plugin.get();
  }
  if (p == nullptr) return Error{"plugin `" + spec.plugin + "` is not loaded"};
  Json with = Json::parse(spec.with_json, nullptr, false);
  return guarded(spec.plugin, "make_handler",
                 [&] { return p->make_handler(spec.handler, with, signal); });
}

Plugin* PluginRegistry::claims() {
  for (auto& [name, inst] : running_) {
    if (inst.plugin->provides_claims()) return inst.plugin.get();
  }
  return nullptr;
}

nlohmann::json PluginRegistry::status() const {
  Json out = Json::object();
  for (const auto& [name, inst] : running_) {
    Json s;
    try {
      s = inst.plugin->status();
    } catch (const std::exception& e) {
      s = {{"state", "unknown"}, {"error", std::string("status threw: ") + e.what()}};
    }
    s["path"] = inst.module->path;
    s["version"] = inst.module->descriptor->version ? inst.module->descriptor->version : "";
    out[name] = std::move(s);
  }
  return out;
}

}  // namespace tocsin

// plugin.h — the plugin ABI (SPEC §9, docs/plugins.md).
//
// A plugin is a shared library `NAME.so` in one of the `plugin_path` directories, loaded when
// `plugins:` names it. It exports one C function, `tocsin_plugin_entry`, returning a descriptor
// whose `abi_version` must equal TOCSIN_PLUGIN_ABI_VERSION (the daemon refuses anything else, at
// `tocsind --check` already) and whose `create` makes a tocsin::Plugin.
//
// The C++ interface behind the entry point is only stable within one ABI version: a plugin is
// built against the same tocsin headers, compiler and Boost as the daemon (they ship together);
// any change to these classes bumps the version. The daemon exports its symbols (Asio's
// separately compiled parts, spdlog), so a plugin uses the reactor with Asio directly.
//
// Threading: everything happens on the reactor's thread. A plugin never blocks it: sockets go
// into the reactor (Asio descriptors), timers are Asio timers on host.io(). Errors are values;
// a plugin must not let an exception escape into the daemon.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tocsin/dispatcher.h"
#include "tocsin/result.h"
#include "tocsin/signal.h"
#include "tocsin/signal_table.h"

#define TOCSIN_PLUGIN_ABI_VERSION 2u
#define TOCSIN_PLUGIN_ENTRY "tocsin_plugin_entry"

namespace boost::asio {
class io_context;
}

namespace tocsin {

class SourceRegistry;

// What the daemon gives a plugin.
class PluginHost {
 public:
  virtual ~PluginHost() = default;
  // The reactor (one io_context, one thread).
  virtual boost::asio::io_context& io() = 0;
  // Raises an event, as every source does; returns it stamped (seq, time).
  virtual EventPtr raise(SignalId signal, SourceKind kind, std::string source_id,
                         std::string payload) = 0;
  // A signal given in settings as a number or a name of the current table.
  virtual Result<SignalId> resolve_signal(const nlohmann::json& ref) const = 0;
  // Per-signal counters, for handlers (delivered / dropped / failed).
  virtual SignalStats& stats() = 0;
  // The daemon's state directory (may be written to).
  virtual const std::string& state_dir() const = 0;
  // The daemon's sources: a plugin that raises events of its own (pgnotify's channels) attaches an
  // EventSource (include/tocsin/event_source.h) for them while it runs, so that they have ids,
  // count against limits.sources and show in `status` as every source does.
  virtual SourceRegistry& source_registry() = 0;
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  // Whether a signal reference in settings (a number 0-255, or a name) names a signal of the
  // configuration's table; numbers need no table entry.
  using SignalKnown = std::function<bool(const nlohmann::json& ref)>;
  // Validates settings without doing any I/O (runs for `tocsind --check`): each problem as
  // "key: what is wrong".
  virtual std::vector<std::string> check(const nlohmann::json& settings,
                                         const SignalKnown& known) const = 0;
  // Validates the `with:` settings of a handler `PLUGIN.HANDLER`.
  virtual std::vector<std::string> check_handler(const std::string& handler,
                                                 const nlohmann::json& with) const = 0;
  // Starts with checked settings. Connection problems are not errors: the plugin retries and
  // reports them in status(); an error here stops the daemon's start.
  virtual Result<void> start(PluginHost& host, const nlohmann::json& settings) = 0;
  // A reload with (possibly) new settings.
  virtual Result<void> reconfigure(const nlohmann::json& settings) = 0;
  // Stops: closes connections, cancels timers. No callback into the host after this.
  virtual void stop() = 0;
  // A handler for `plugin: NAME.HANDLER`, `with:` settings; may be called before start().
  virtual Result<std::shared_ptr<Handler>> make_handler(const std::string& handler,
                                                        const nlohmann::json& with,
                                                        SignalId signal) = 0;
  // For `status`: free-form, but "state" and "error" are what tocsinctl shows.
  virtual nlohmann::json status() const = 0;

  // Cluster jobs (docs/cluster.md): whether this daemon may fire `job`'s `slot`. `done` is
  // called exactly once on the reactor, with false when the claim went to another daemon or
  // cannot be made (then `why` says so).
  using ClaimDone = std::function<void(bool claimed, const std::string& why)>;
  virtual bool provides_claims() const { return false; }
  virtual void claim(const std::string& /*job*/, std::int64_t /*slot*/, ClaimDone done) {
    done(false, "this plugin makes no claims");
  }
};

}  // namespace tocsin

extern "C" {
struct tocsin_plugin_descriptor {
  std::uint32_t abi_version;  // TOCSIN_PLUGIN_ABI_VERSION when the plugin was built
  const char* name;           // must equal the file's NAME
  const char* version;
  tocsin::Plugin* (*create)(void);
};
typedef const tocsin_plugin_descriptor* (*tocsin_plugin_entry_fn)(void);
}

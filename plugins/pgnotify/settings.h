// settings.h — pgnotify's settings (plugins/pgnotify/README.md), parsed and checked without I/O.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tocsin/plugin.h"

namespace tocsin::pgnotify {

using Millis = std::chrono::milliseconds;

struct Channel {
  std::string name;         // as written: case, spaces and dots are kept (quoted on the wire)
  nlohmann::json signal;    // a number or a name, resolved at start
};

struct Settings {
  std::string conninfo;
  std::vector<Channel> channels;
  std::optional<nlohmann::json> on_reconnect;
  Millis reconnect_min{250};   // the first retry's delay; doubled each failure
  Millis reconnect_max{30000}; // the cap
  Millis heartbeat{10000};     // a self-NOTIFY this often while connected
  Millis heartbeat_timeout{5000};  // ... that must come back within this, else reconnect
  Millis connect_timeout{10000};   // a connection attempt that takes longer is given up
  std::size_t queue = 65536;   // pending pg_notify calls and claims while busy or disconnected
  std::string node;            // this daemon's name in the claim table (default host:pid)
};

struct Parsed {
  Settings settings;
  std::vector<std::string> errors;  // "key: what is wrong"
};

Parsed parse_settings(const nlohmann::json& json, const Plugin::SignalKnown& known);

// The handler `pgnotify.notify`: `with: {channel: NAME}`.
struct NotifyWith {
  std::string channel;
};
std::optional<NotifyWith> parse_notify_with(const nlohmann::json& with, std::vector<std::string>* errors);

// PostgreSQL's limit on a NOTIFY payload: 8000 bytes including the terminating zero.
constexpr std::size_t kMaxPayload = 7999;

}  // namespace tocsin::pgnotify

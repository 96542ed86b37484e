#include "settings.h"

#include "tocsin/config.h"

namespace tocsin::pgnotify {

namespace {

using Json = nlohmann::json;

constexpr const char* kKeys[] = {"conninfo",  "channels",          "on_reconnect",   "reconnect",
                                 "heartbeat", "heartbeat_timeout", "connect_timeout", "queue",
                                 "node"};

std::optional<Millis> duration(const Json& v, const std::string& key, std::vector<std::string>& errors) {
  if (!v.is_string()) {
    errors.push_back(key + ": expected a duration such as \"5s\"");
    return std::nullopt;
  }
  std::string why;
  auto d = config::parse_duration(v.get<std::string>(), &why);
  if (!d) errors.push_back(key + ": " + why);
  return d;
}

}  // namespace

Parsed parse_settings(const Json& json, const Plugin::SignalKnown& known) {
  Parsed out;
  auto& e = out.errors;
  auto& s = out.settings;
  if (!json.is_object()) {
    e.push_back("settings: expected a mapping with conninfo and channels");
    return out;
  }
  for (const auto& [key, value] : json.items()) {
    if (std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys)) {
      e.push_back(key + ": unknown key (pgnotify takes conninfo, channels, on_reconnect, "
                        "reconnect, heartbeat, heartbeat_timeout, connect_timeout, queue, node)");
    }
  }
  if (auto c = json.find("conninfo"); c == json.end() || !c->is_string() || c->get<std::string>().empty()) {
    e.push_back("conninfo: required, a libpq connection string such as \"host=/run/postgresql dbname=app\"");
  } else {
    s.conninfo = c->get<std::string>();
  }
  if (auto ch = json.find("channels"); ch != json.end()) {
    if (!ch->is_object()) {
      e.push_back("channels: expected a mapping from channel name to signal, such as {jobs: 50}");
    } else {
      for (const auto& [name, signal] : ch->items()) {
        if (name.empty() || name.size() > 63) {
          e.push_back("channels." + name + ": a channel name is 1-63 bytes");
        } else if (!known(signal)) {
          e.push_back("channels." + name + ": " + signal.dump() +
                      " is not a signal (a number 0-255 or a name in signals:)");
        } else {
          s.channels.push_back({name, signal});
        }
      }
    }
  }
  if (auto r = json.find("on_reconnect"); r != json.end() && !r->is_null()) {
    if (!known(*r)) {
      e.push_back("on_reconnect: " + r->dump() + " is not a signal (a number 0-255 or a name in signals:)");
    } else {
      s.on_reconnect = *r;
    }
  }
  if (auto r = json.find("reconnect"); r != json.end()) {
    if (!r->is_object()) {
      e.push_back("reconnect: expected {min: 250ms, max: 30s}");
    } else {
      for (const auto& [key, value] : r->items()) {
        if (key == "min") {
          if (auto d = duration(value, "reconnect.min", e)) s.reconnect_min = *d;
        } else if (key == "max") {
          if (auto d = duration(value, "reconnect.max", e)) s.reconnect_max = *d;
        } else {
          e.push_back("reconnect." + key + ": unknown key (min, max)");
        }
      }
      if (s.reconnect_min.count() < 1) e.push_back("reconnect.min: at least 1ms");
      if (s.reconnect_max < s.reconnect_min) e.push_back("reconnect.max: at least reconnect.min");
    }
  }
  if (auto h = json.find("heartbeat"); h != json.end()) {
    if (auto d = duration(*h, "heartbeat", e)) {
      if (d->count() < 10) e.push_back("heartbeat: at least 10ms");
      s.heartbeat = *d;
    }
  }
  if (auto h = json.find("heartbeat_timeout"); h != json.end()) {
    if (auto d = duration(*h, "heartbeat_timeout", e)) {
      if (d->count() < 10) e.push_back("heartbeat_timeout: at least 10ms");
      s.heartbeat_timeout = *d;
    }
  }
  if (auto h = json.find("connect_timeout"); h != json.end()) {
    if (auto d = duration(*h, "connect_timeout", e)) {
      if (d->count() < 10) e.push_back("connect_timeout: at least 10ms");
      s.connect_timeout = *d;
    }
  }
  if (auto q = json.find("queue"); q != json.end()) {
    if (!q->is_number_unsigned() || q->get<std::uint64_t>() < 1 || q->get<std::uint64_t>() > 10000000) {
      e.push_back("queue: a count 1-10000000");
    } else {
      s.queue = q->get<std::size_t>();
    }
  }
  if (auto n = json.find("node"); n != json.end()) {
    if (!n->is_string() || n->get<std::string>().empty()) {
      e.push_back("node: a non-empty name");
    } else {
      s.node = n->get<std::string>();
    }
  }
  return out;
}

std::optional<NotifyWith> parse_notify_with(const Json& with, std::vector<std::string>* errors) {
  if (!with.is_object() || !with.contains("channel") || !with["channel"].is_string() ||
      with["channel"].get<std::string>().empty() || with["channel"].get<std::string>().size() > 63) {
    errors->push_back("with: expected {channel: NAME}, a channel name of 1-63 bytes");
    return std::nullopt;
  }
  for (const auto& [key, value] : with.items()) {
    if (key != "channel") {
      errors->push_back("with." + key + ": unknown key (pgnotify.notify takes channel)");
      return std::nullopt;
    }
  }
  return NotifyWith{with["channel"].get<std::string>()};
}

}  // namespace tocsin::pgnotify

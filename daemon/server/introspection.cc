#include "server/introspection.h"

#include <unistd.h>

#include <map>
#include <unordered_map>

#include "dispatch/hub.h"
#include "server/json_node.h"
#include "server/server_core.h"
#include "server/session.h"
#include "tocsin/event_source.h"

namespace tocsin::introspection {

using methods::result_reply;

namespace {

// One source of `status.sources.list`: the fields every kind has, then the kind's own.
Json source_json(const SourceStatus& s) {
  Json j{{"id", s.id},
         {"kind", std::string(s.kind.name())},
         {"signal", s.signal},
         {"schedule", s.schedule},
         {"iterations", s.iterations},
         {"fired", s.fired},
         {"state", s.state},
         {"next_fire", s.next ? Json(format_rfc3339(*s.next)) : Json()},
         {"last_fire", s.last ? Json(format_rfc3339(*s.last)) : Json()},
         {"from_config", s.from_config}};
  if (!s.why.empty()) j["why"] = s.why;
  if (!s.from_config) {
    // How a run-time source is shared (SPEC §3): its lifetime and the clients declaring it.
    j["lifetime"] = std::string(to_string(s.lifetime));
    j["declarers"] = s.declarers;
    if (s.lifetime == SourceLifetime::clients) j["linger_ms"] = s.linger.count();
    if (s.lingering_until) j["lingering_until"] = format_rfc3339(*s.lingering_until);
  }
  for (const auto& e : s.details.entries()) j[e.key.text()] = to_json(e.value);
  return j;
}

}  // namespace

Json table(methods::Context& ctx, const Json&) {
  const SignalTable& t = ctx.core.host.dispatcher().table();
  const SignalStats& stats = ctx.core.host.stats();
  Json list = Json::array();
  for (int n = 0; n < kSignalCount; ++n) {
    auto id = static_cast<SignalId>(n);
    const SignalEntry* e = t.find(id);
    const SignalCounters& c = stats[id];
    if (!e && c.raised == 0) continue;
    Json handlers = Json::array();
    if (e) {
      for (const auto& h : e->handlers) handlers.push_back(h->describe());
    }
    list.push_back({{"signal", n},
                    {"name", e ? e->name : ""},
                    {"description", e ? e->description : ""},
                    {"in_table", e != nullptr},
                    {"handlers", std::move(handlers)},
                    {"raised", c.raised},
                    {"delivered", c.delivered},
                    {"dropped", c.dropped},
                    {"failed", c.failed},
                    {"unhandled", c.unhandled},
                    {"last_raised", c.raised ? Json(format_rfc3339(c.last_raised)) : Json()}});
    if (e && e->max_deliveries > 0) list.back()["max_deliveries"] = e->max_deliveries;
    if (e && e->dead_letter) list.back()["dead_letter"] = *e->dead_letter;
  }
  return result_reply(ctx.id, {{"signals", std::move(list)}});
}

Json status(methods::Context& ctx, const Json&) {
  ServerCore& core = ctx.core;
  std::unordered_map<ClientId, const Peer*> peers;
  auto sessions = core.sessions();
  for (const auto& s : sessions) peers[s->client()] = &s->peer();
  Json clients = Json::array();
  for (const auto& c : core.hub.clients()) {
    Json entry{{"client", c.id},      {"name", c.name},
               {"group", c.group},    {"subscriptions", c.subscriptions},
               {"queue", c.queue},    {"unacked", c.unacked},
               {"prefetch", c.prefetch}, {"dropped", c.dropped}};
    if (auto it = peers.find(c.id); it != peers.end()) {
      entry["uid"] = it->second->uid;
      entry["pid"] = it->second->pid;
      entry["user"] = it->second->user;
    }
    clients.push_back(std::move(entry));
  }
  const SourceRegistry& registry = core.host.sources();
  Json sources = Json::object();
  for (const auto& [name, count] : registry.counts()) sources[name] = count;
  Json list = Json::array();
  for (const SourceStatus& s : registry.list(100)) list.push_back(source_json(s));
  sources["list"] = std::move(list);

  auto uptime_ms = static_cast<std::int64_t>(core.host.uptime_seconds() * 1000);
  Json result{{"version", TOCSIN_VERSION},
              {"pid", ::getpid()},
              {"uptime_ms", uptime_ms},
              {"last_seq", core.host.dispatcher().last_seq()},
              {"config", core.host.config().file},
              {"socket", core.path},
              {"clients", core.hub.client_count()},
              {"children", core.host.children()},
              {"backlog", core.hub.backlog_size()},
              {"waiters", core.waiter_count()},
              {"sources", std::move(sources)},
              {"plugins", core.host.plugins_status()}};
  spec::Node sections = spec::Node::mapping();
  registry.status_sections(sections);
  for (const auto& e : sections.entries()) result[e.key.text()] = to_json(e.value);
  result["clients_detail"] = std::move(clients);
  return result_reply(ctx.id, std::move(result));
}

std::string metrics_text(ServerCore& core) {
  std::string out;
  const SignalTable& t = core.host.dispatcher().table();
  const SignalStats& stats = core.host.stats();
  struct Counter {
    const char* name;
    const char* help;
    std::uint64_t SignalCounters::*field;
  };
  static constexpr Counter kCounters[] = {
      {"tocsin_signal_raised_total", "Events raised, per signal.", &SignalCounters::raised},
      {"tocsin_signal_delivered_total", "Handler deliveries that succeeded, per signal.",
       &SignalCounters::delivered},
      {"tocsin_signal_dropped_total", "Deliveries dropped (overflow, overlap, backlog).",
       &SignalCounters::dropped},
      {"tocsin_signal_failed_total", "Handler deliveries that failed.", &SignalCounters::failed},
      {"tocsin_signal_unhandled_total", "Events with no handler and no waiter.",
       &SignalCounters::unhandled},
  };
  auto label = [&](int n) {
    const SignalEntry* e = t.find(static_cast<SignalId>(n));
    std::string l = "{signal=\"" + std::to_string(n) + "\"";
    if (e && !e->name.empty()) l += ",name=\"" + e->name + "\"";
    return l + "}";
  };
  for (const auto& c : kCounters) {
    out += std::string("# HELP ") + c.name + " " + c.help + "\n# TYPE " + c.name + " counter\n";
    for (int n = 0; n < kSignalCount; ++n) {
      const SignalCounters& sc = stats[static_cast<SignalId>(n)];
      if (!t.find(static_cast<SignalId>(n)) && sc.raised == 0) continue;
      out += c.name + label(n) + " " + std::to_string(sc.*(c.field)) + "\n";
    }
  }
  out +=
      "# HELP tocsin_handler_runs_total Events given to a handler (index: its place in the "
      "signal's list).\n# TYPE tocsin_handler_runs_total counter\n";
  std::string failures =
      "# HELP tocsin_handler_failures_total Handler runs that failed (error, exception, exit "
      "status, timeout).\n# TYPE tocsin_handler_failures_total counter\n";
  for (const SignalEntry* e : t.entries()) {
    for (std::size_t i = 0; i < e->handlers.size(); ++i) {
      std::string labels = "{signal=\"" + std::to_string(e->number) + "\",index=\"" +
                           std::to_string(i) + "\",handler=\"" + e->handlers[i]->describe() + "\"}";
      out += "tocsin_handler_runs_total" + labels + " " +
             std::to_string(e->handlers[i]->counters().runs) + "\n";
      failures += "tocsin_handler_failures_total" + labels + " " +
                  std::to_string(e->handlers[i]->counters().failures) + "\n";
    }
  }
  out += failures;
  out +=
      "# HELP tocsin_events_total Events raised since the daemon started.\n"
      "# TYPE tocsin_events_total counter\ntocsin_events_total " +
      std::to_string(core.host.dispatcher().last_seq()) + "\n";
  out += "# HELP tocsin_clients Connected clients.\n# TYPE tocsin_clients gauge\ntocsin_clients " +
         std::to_string(core.hub.client_count()) + "\n";
  out +=
      "# HELP tocsin_children Running exec handler processes.\n"
      "# TYPE tocsin_children gauge\ntocsin_children " +
      std::to_string(core.host.children()) + "\n";
  out +=
      "# HELP tocsin_backlog_events One-of events waiting for a subscriber.\n"
      "# TYPE tocsin_backlog_events gauge\ntocsin_backlog_events " +
      std::to_string(core.hub.backlog_size()) + "\n";
  // Each source kind's own metrics, grouped by name.
  std::vector<MetricSample> samples;
  core.host.sources().metrics(samples);
  std::map<std::string, std::vector<const MetricSample*>> by_name;
  std::vector<std::string> order;
  for (const MetricSample& m : samples) {
    if (!by_name.contains(m.name)) order.push_back(m.name);
    by_name[m.name].push_back(&m);
  }
  for (const std::string& name : order) {
    const MetricSample& first = *by_name[name].front();
    out += "# HELP " + name + " " + first.help + "\n# TYPE " + name + " " +
           (first.counter ? "counter" : "gauge") + "\n";
    for (const MetricSample* m : by_name[name]) {
      out += name;
      if (!m->labels.empty()) {
        out += '{';
        for (std::size_t i = 0; i < m->labels.size(); ++i) {
          if (i > 0) out += ',';
          out += m->labels[i].first + "=\"" + m->labels[i].second + "\"";
        }
        out += '}';
      }
      char value[32];
      std::snprintf(value, sizeof value, "%.17g", m->value);
      out += std::string(" ") + value + "\n";
    }
  }
  auto clients = core.hub.clients();
  out +=
      "# HELP tocsin_subscriber_queue_depth Events queued for a client.\n"
      "# TYPE tocsin_subscriber_queue_depth gauge\n";
  for (const auto& c : clients) {
    out += "tocsin_subscriber_queue_depth{client=\"" + std::to_string(c.id) + "\",name=\"" +
           c.name + "\"} " + std::to_string(c.queue) + "\n";
  }
  out +=
      "# HELP tocsin_subscriber_unacked One-of events a client holds unacknowledged.\n"
      "# TYPE tocsin_subscriber_unacked gauge\n";
  for (const auto& c : clients) {
    out += "tocsin_subscriber_unacked{client=\"" + std::to_string(c.id) + "\",name=\"" + c.name +
           "\"} " + std::to_string(c.unacked) + "\n";
  }
  out +=
      "# HELP tocsin_subscriber_prefetch The most one-of events a client may hold unacknowledged "
      "(its credit).\n"
      "# TYPE tocsin_subscriber_prefetch gauge\n";
  for (const auto& c : clients) {
    out += "tocsin_subscriber_prefetch{client=\"" + std::to_string(c.id) + "\",name=\"" +
           c.name + "\"} " + std::to_string(c.prefetch) + "\n";
  }
  out +=
      "# HELP tocsin_subscriber_dropped_total Broadcast events dropped from a client's queue.\n"
      "# TYPE tocsin_subscriber_dropped_total counter\n";
  for (const auto& c : clients) {
    out += "tocsin_subscriber_dropped_total{client=\"" + std::to_string(c.id) + "\",name=\"" +
           c.name + "\"} " + std::to_string(c.dropped) + "\n";
  }
  return out;
}

Json metrics(methods::Context& ctx, const Json&) {
  return result_reply(ctx.id, {{"text", metrics_text(ctx.core)}});
}

}  // namespace tocsin::introspection

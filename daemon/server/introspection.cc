#include "server/introspection.h"

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <unordered_map>

#include "dispatch/exec_handler.h"
#include "dispatch/hub.h"
#include "os/proc_self.h"
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
  const SourceSchema* schema = schema_for_kind(s.kind);
  j["timed"] = schema != nullptr && schema->fires_by_time();
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
              {"metrics",
               core.host.metrics_endpoint().empty() ? Json() : Json(core.host.metrics_endpoint())},
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

namespace {

// Prometheus text format 0.0.4 (docs/metrics.md): label values escape \, " and newlines; HELP
// text escapes \ and newlines.
std::string escape(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

using Labels = std::vector<std::pair<std::string, std::string>>;

std::string format_labels(const Labels& labels) {
  if (labels.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first + "=\"" + escape(labels[i].second, true) + "\"";
  }
  return out + "}";
}

std::string format_value(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[32];  // the shortest text that reads back as v: 0.005, not 0.0050000000000000001
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += escape(help, false);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, std::string_view name, const Labels& labels, std::string_view value) {
  out += name;
  out += format_labels(labels);
  out += ' ';
  out += value;
  out += '\n';
}
void sample(std::string& out, std::string_view name, const Labels& labels, std::uint64_t value) {
  sample(out, name, labels, std::to_string(value));
}

// One histogram's _bucket, _sum and _count lines.
void histogram(std::string& out, std::string_view name, const Labels& labels, const Histogram& h) {
  const std::string bucket = std::string(name) + "_bucket";
  for (std::size_t i = 0; i < h.bounds().size(); ++i) {
    Labels l = labels;
    l.emplace_back("le", format_value(h.bounds()[i]));
    sample(out, bucket, l, h.cumulative(i));
  }
  Labels l = labels;
  l.emplace_back("le", "+Inf");
  sample(out, bucket, l, h.count());
  sample(out, std::string(name) + "_sum", labels, format_value(h.sum()));
  sample(out, std::string(name) + "_count", labels, h.count());
}

// The standard process_* families of Prometheus' client libraries.
void process_metrics(std::string& out) {
  auto self = os::read_proc_self();
  if (!self) return;
  family(out, "process_cpu_seconds_total", "counter",
         "Total user and system CPU time spent in seconds.");
  sample(out, "process_cpu_seconds_total", {}, format_value(self->cpu_seconds));
  family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
  sample(out, "process_open_fds", {}, self->open_fds);
  if (self->max_fds) {
    family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    sample(out, "process_max_fds", {}, *self->max_fds);
  }
  family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  sample(out, "process_virtual_memory_bytes", {}, self->virtual_bytes);
  family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  sample(out, "process_resident_memory_bytes", {}, self->resident_bytes);
  family(out, "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.");
  sample(out, "process_start_time_seconds", {}, format_value(self->start_time_seconds));
}

}  // namespace

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
  // {signal, name}: the name only for a signal that has one.
  auto signal_labels = [&](int n) {
    Labels l{{"signal", std::to_string(n)}};
    const SignalEntry* e = t.find(static_cast<SignalId>(n));
    if (e && !e->name.empty()) l.emplace_back("name", e->name);
    return l;
  };
  for (const auto& c : kCounters) {
    family(out, c.name, "counter", c.help);
    for (int n = 0; n < kSignalCount; ++n) {
      const SignalCounters& sc = stats[static_cast<SignalId>(n)];
      if (!t.find(static_cast<SignalId>(n)) && sc.raised == 0) continue;
      sample(out, c.name, signal_labels(n), sc.*(c.field));
    }
  }
  // Per handler: {signal, index (its place in the signal's list), handler (describe())}.
  auto handler_labels = [](const SignalEntry& e, std::size_t i) {
    return Labels{{"signal", std::to_string(e.number)},
                  {"index", std::to_string(i)},
                  {"handler", e.handlers[i]->describe()}};
  };
  struct HandlerCounter {
    const char* name;
    const char* help;
    std::uint64_t HandlerCounters::*field;
  };
  static constexpr HandlerCounter kHandlerCounters[] = {
      {"tocsin_handler_runs_total",
       "Events given to a handler (index: its place in the signal's list).",
       &HandlerCounters::runs},
      {"tocsin_handler_failures_total",
       "Handler runs that failed (error, exception, exit status, timeout).",
       &HandlerCounters::failures},
  };
  for (const auto& hc : kHandlerCounters) {
    family(out, hc.name, "counter", hc.help);
    for (const SignalEntry* e : t.entries()) {
      for (std::size_t i = 0; i < e->handlers.size(); ++i) {
        sample(out, hc.name, handler_labels(*e, i), e->handlers[i]->counters().*(hc.field));
      }
    }
  }
  family(out, "tocsin_exec_duration_seconds", "histogram",
         "Run time of exec handler children, from spawn to exit, whatever the outcome.");
  for (const SignalEntry* e : t.entries()) {
    for (std::size_t i = 0; i < e->handlers.size(); ++i) {
      if (const auto* x = dynamic_cast<const ExecHandler*>(e->handlers[i].get())) {
        histogram(out, "tocsin_exec_duration_seconds", handler_labels(*e, i), x->durations());
      }
    }
  }
  family(out, "tocsin_ack_duration_seconds", "histogram",
         "One-of events: time from being given to a subscriber to its ack.");
  for (const auto& [signal, h] : core.hub.ack_durations()) {
    histogram(out, "tocsin_ack_duration_seconds", signal_labels(signal), h);
  }
  family(out, "tocsin_events_total", "counter", "Events raised since the daemon started.");
  sample(out, "tocsin_events_total", {}, core.host.dispatcher().last_seq());
  family(out, "tocsin_clients", "gauge", "Connected clients.");
  sample(out, "tocsin_clients", {}, core.hub.client_count());
  family(out, "tocsin_children", "gauge", "Running exec handler processes.");
  sample(out, "tocsin_children", {}, core.host.children());
  family(out, "tocsin_backlog_events", "gauge", "One-of events waiting for a subscriber.");
  sample(out, "tocsin_backlog_events", {}, core.hub.backlog_size());
  // Each source kind's own metrics (and tocsin_sources by kind and state), grouped by name.
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
    family(out, name, first.counter ? "counter" : "gauge", first.help);
    for (const MetricSample* m : by_name[name]) {
      sample(out, name, m->labels, format_value(m->value));
    }
  }
  // Per client: {client (its id), name (from hello; may be empty)}.
  auto clients = core.hub.clients();
  struct ClientGauge {
    const char* name;
    const char* type;
    const char* help;
    std::uint64_t (*value)(const Hub::ClientInfo&);
  };
  static constexpr ClientGauge kClientGauges[] = {
      {"tocsin_subscriber_queue_depth", "gauge", "Events queued for a client.",
       [](const Hub::ClientInfo& c) -> std::uint64_t { return c.queue; }},
      {"tocsin_subscriber_unacked", "gauge", "One-of events a client holds unacknowledged.",
       [](const Hub::ClientInfo& c) -> std::uint64_t { return c.unacked; }},
      {"tocsin_subscriber_prefetch", "gauge",
       "The most one-of events a client may hold unacknowledged (its credit).",
       [](const Hub::ClientInfo& c) -> std::uint64_t { return c.prefetch; }},
      {"tocsin_subscriber_dropped_total", "counter",
       "Broadcast events dropped from a client's queue.",
       [](const Hub::ClientInfo& c) -> std::uint64_t { return c.dropped; }},
  };
  for (const auto& g : kClientGauges) {
    family(out, g.name, g.type, g.help);
    for (const auto& c : clients) {
      sample(out, g.name, {{"client", std::to_string(c.id)}, {"name", c.name}}, g.value(c));
    }
  }
  process_metrics(out);
  return out;
}

Json metrics(methods::Context& ctx, const Json&) {
  return result_reply(ctx.id, {{"text", metrics_text(ctx.core)}});
}

}  // namespace tocsin::introspection

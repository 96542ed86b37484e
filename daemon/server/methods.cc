#include "server/methods.h"

#include <unistd.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "dispatch/target_handler.h"
#include "server/server_core.h"
#include "server/session.h"
#include "sources/cron_source.h"

namespace tocsin::methods {

namespace {

// A parameter problem, reported as one error reply.
struct ParamError {
  int code;
  std::string message;
};

template <typename T>
using Param = std::variant<T, ParamError>;

ParamError invalid(const std::string& what) { return {-32602, "invalid params: " + what}; }

Param<SignalId> signal_param(ServerCore& core, const Json& v, const char* key) {
  if (v.is_number_integer()) {
    auto n = v.get<std::int64_t>();
    if (n < 0 || n >= kSignalCount) {
      return invalid(std::string(key) + ": a signal number is 0-255, got " + std::to_string(n));
    }
    return static_cast<SignalId>(n);
  }
  if (v.is_string()) {
    const auto& text = v.get_ref<const std::string&>();
    if (auto id = core.host.dispatcher().table().resolve(text)) return *id;
    if (!text.empty() && text[0] >= '0' && text[0] <= '9') {
      return invalid(std::string(key) + ": a signal number is 0-255, got \"" + text + "\"");
    }
    return ParamError{-32003, "unknown signal \"" + text + "\""};
  }
  return invalid(std::string(key) + ": expected a signal number or name");
}

Param<std::chrono::milliseconds> duration_param(const Json& v, const char* key) {
  if (v.is_number_integer()) {
    auto n = v.get<std::int64_t>();
    if (n < 0) return invalid(std::string(key) + ": a duration cannot be negative");
    return std::chrono::milliseconds(n);
  }
  if (v.is_string()) {
    std::string why;
    if (auto d = config::parse_duration(v.get_ref<const std::string&>(), &why)) return *d;
    return invalid(std::string(key) + ": " + why);
  }
  return invalid(std::string(key) + ": expected a duration (\"250ms\") or integer milliseconds");
}

// An optional duration param: absent or null leaves `out` as it is. `Out` is a milliseconds or an
// optional of one.
template <typename Out>
std::optional<ParamError> optional_duration(const Json& params, const char* key, Out& out) {
  auto it = params.find(key);
  if (it == params.end() || it->is_null()) return std::nullopt;
  auto d = duration_param(*it, key);
  if (auto* e = std::get_if<ParamError>(&d)) return *e;
  out = std::get<std::chrono::milliseconds>(d);
  return std::nullopt;
}

Json from(const Context& ctx, const ParamError& e) { return error_reply(ctx.id, e.code, e.message); }

Json denied(const Context& ctx, const std::string& what) {
  const Peer& p = ctx.session.peer();
  spdlog::warn("client {} (uid {} {}, pid {}): denied: {}", ctx.session.client(), p.uid, p.user,
               p.pid, what);
  return error_reply(ctx.id, -32001, "permission denied: " + what);
}

Json admin_only(const Context& ctx, const char* method) {
  return denied(ctx, std::string(method) +
                         " needs root or the admin group (socket.admin_group)");
}


}  // namespace

Json error_reply(const Json& id, int code, const std::string& message) {
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}};
}

Json result_reply(const Json& id, Json result) {
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

Json raise(Context& ctx, const Json& params) {
  auto s = params.find("signal");
  if (s == params.end()) return from(ctx, invalid("signal is required"));
  auto sig = signal_param(ctx.core, *s, "signal");
  if (auto* e = std::get_if<ParamError>(&sig)) return from(ctx, *e);
  SignalId signal = std::get<SignalId>(sig);
  std::string payload;
  if (auto p = params.find("payload"); p != params.end() && !p->is_null()) {
    if (!p->is_string()) return from(ctx, invalid("payload: expected a string"));
    payload = p->get<std::string>();
  }
  if (payload.size() > ctx.core.limits.payload_bytes) {
    return error_reply(ctx.id, -32004,
                       "payload too large: " + std::to_string(payload.size()) +
                           " bytes, limits.payload_bytes is " +
                           std::to_string(ctx.core.limits.payload_bytes));
  }
  Dispatcher& d = ctx.core.host.dispatcher();
  if (const SignalEntry* entry = d.table().find(signal)) {
    if (!acl_allows(entry->acl.raise, ctx.session.peer())) {
      return denied(ctx, "raise " + std::to_string(signal) + " (its acl.raise)");
    }
  }
  EventPtr ev =
      d.raise(signal, SourceRef{SourceKind::raise, ctx.session.source_id()}, std::move(payload));
  return result_reply(ctx.id, {{"seq", ev->seq}});
}

Json hello(Context& ctx, const Json& params) {
  std::string name = params.value("name", "");
  std::string group = params.value("group", "");
  if (!name.empty() && !is_valid_client_name(name)) {
    return from(ctx, invalid("name: 1-64 letters, digits, . _ -"));
  }
  if (!group.empty() && !is_valid_client_name(group)) {
    return from(ctx, invalid("group: 1-64 letters, digits, . _ -"));
  }
  if (auto r = ctx.core.hub.hello(ctx.session.client(), name, group); !r) {
    return error_reply(ctx.id, r.error().code, r.error().message);
  }
  auto me = ctx.core.hub.client_info(ctx.session.client());
  return result_reply(ctx.id, {{"client", ctx.session.client()},
                               {"name", me ? me->name : name},
                               {"group", me ? me->group : group}});
}

Json subscribe(Context& ctx, const Json& params) {
  auto sigs = params.find("signals");
  if (sigs == params.end()) return from(ctx, invalid("signals is required"));
  SubscriptionSpec spec;
  Json excluded = Json::array();
  const SignalTable& table = ctx.core.host.dispatcher().table();
  const Peer& peer = ctx.session.peer();
  if (sigs->is_string() && *sigs == "*") {
    // Every signal this client may subscribe to; the others are named in the result.
    for (int n = 0; n < kSignalCount; ++n) {
      const SignalEntry* e = table.find(static_cast<SignalId>(n));
      if (e && !acl_allows(e->acl.subscribe, peer)) {
        excluded.push_back(n);
      } else {
        spec.signals.set(static_cast<std::size_t>(n));
      }
    }
  } else if (sigs->is_array() && !sigs->empty()) {
    for (const auto& v : *sigs) {
      auto sig = signal_param(ctx.core, v, "signals");
      if (auto* e = std::get_if<ParamError>(&sig)) return from(ctx, *e);
      SignalId n = std::get<SignalId>(sig);
      if (const SignalEntry* e = table.find(n); e && !acl_allows(e->acl.subscribe, peer)) {
        return denied(ctx, "subscribe " + std::to_string(n) + " (its acl.subscribe)");
      }
      spec.signals.set(n);
    }
  } else {
    return from(ctx, invalid("signals: expected a non-empty list of signals, or \"*\""));
  }
  if (auto src = params.find("sources"); src != params.end() && !src->is_null()) {
    if (!src->is_array()) return from(ctx, invalid("sources: expected a list of kinds or ids"));
    for (const auto& v : *src) {
      if (!v.is_string()) return from(ctx, invalid("sources: expected strings"));
      const auto& text = v.get_ref<const std::string&>();
      if (auto kind = source_kind_from_string(text)) {
        spec.kinds.push_back(*kind);
      } else {
        spec.ids.push_back(text);
      }
    }
  }
  if (auto a = params.find("ack"); a != params.end() && !a->is_null()) {
    if (!a->is_boolean()) return from(ctx, invalid("ack: expected true or false"));
    spec.ack = a->get<bool>();
  }
  auto r = ctx.core.hub.subscribe(ctx.session.client(), std::move(spec));
  if (!r) return error_reply(ctx.id, r.error().code, r.error().message);
  Json result{{"subscription", *r}};
  if (!excluded.empty()) result["excluded"] = std::move(excluded);
  return result_reply(ctx.id, std::move(result));
}

Json unsubscribe(Context& ctx, const Json& params) {
  auto s = params.find("subscription");
  if (s == params.end() || !s->is_number_unsigned()) {
    return from(ctx, invalid("subscription: expected the id subscribe returned"));
  }
  auto r = ctx.core.hub.unsubscribe(ctx.session.client(), s->get<std::uint64_t>());
  if (!r) return error_reply(ctx.id, r.error().code, r.error().message);
  return result_reply(ctx.id, Json::object());
}

Json ack(Context& ctx, const Json& params) {
  auto s = params.find("seq");
  if (s == params.end() || !s->is_number_unsigned()) {
    return from(ctx, invalid("seq: expected the event's seq"));
  }
  auto r = ctx.core.hub.ack(ctx.session.client(), s->get<std::uint64_t>());
  if (!r) return error_reply(ctx.id, r.error().code, r.error().message);
  return result_reply(ctx.id, Json::object());
}

Json wait(Context& ctx, const Json& params, const std::shared_ptr<Session>& session) {
  std::optional<SignalId> signal;
  if (auto s = params.find("signal"); s != params.end() && !s->is_null()) {
    auto sig = signal_param(ctx.core, *s, "signal");
    if (auto* e = std::get_if<ParamError>(&sig)) return from(ctx, *e);
    signal = std::get<SignalId>(sig);
  }
  std::optional<std::chrono::milliseconds> timeout;
  if (auto e = optional_duration(params, "timeout", timeout)) return from(ctx, *e);
  if (ctx.id.is_null()) return from(ctx, invalid("wait needs an id to answer to"));
  ctx.core.add_waiter(session, ctx.id, signal, timeout);
  return nullptr;
}

Json register_target(Context& ctx, const Json& params, bool add) {
  const char* method = add ? "register" : "unregister";
  if (!ctx.session.peer().admin) return admin_only(ctx, method);
  auto s = params.find("signal");
  if (s == params.end()) return from(ctx, invalid("signal is required"));
  auto sig = signal_param(ctx.core, *s, "signal");
  if (auto* e = std::get_if<ParamError>(&sig)) return from(ctx, *e);
  auto t = params.find("target");
  if (t == params.end() || !t->is_string()) {
    return from(ctx, invalid("target: subscribers, subscriber, subscriber:NAME or group:NAME"));
  }
  auto target = parse_target(t->get<std::string>());
  if (!target) {
    return from(ctx, invalid("target: subscribers, subscriber, subscriber:NAME or group:NAME"));
  }
  SignalId signal = std::get<SignalId>(sig);
  auto r = add ? ctx.core.host.register_target(signal, *target)
               : ctx.core.host.unregister_target(signal, *target);
  if (!r) return error_reply(ctx.id, r.error().code ? r.error().code : -32602, r.error().message);
  spdlog::info("client {} ({}): {} {} on signal {}", ctx.session.client(),
               ctx.session.peer().user, method, to_string(*target), signal);
  return result_reply(ctx.id, Json::object());
}

// The fields every run-time source has: an optional id and the signal. Sets them, or returns
// the error reply.
std::optional<Json> source_id_and_signal(Context& ctx, const Json& params, std::string& id,
                                         SignalId& signal) {
  if (auto i = params.find("id"); i != params.end() && !i->is_null()) {
    if (!i->is_string() || !is_valid_source_id(i->get_ref<const std::string&>())) {
      return from(ctx, invalid("id: a non-empty string of letters, digits and . _ : - only"));
    }
    id = i->get<std::string>();
  }
  auto s = params.find("signal");
  if (s == params.end()) return from(ctx, invalid("signal is required"));
  auto sig = signal_param(ctx.core, *s, "signal");
  if (auto* e = std::get_if<ParamError>(&sig)) return from(ctx, *e);
  signal = std::get<SignalId>(sig);
  return std::nullopt;
}

Json add_timer(Context& ctx, const Json& params, SourceKind kind) {
  const char* method = kind == SourceKind::timer ? "add_timer" : "add_rb_timer";
  if (!ctx.session.peer().admin) return admin_only(ctx, method);
  config::TimerSpec spec;
  if (auto e = source_id_and_signal(ctx, params, spec.id, spec.signal)) return *e;
  auto every = params.find("every");
  if (every == params.end()) return from(ctx, invalid("every is required"));
  auto d = duration_param(*every, "every");
  if (auto* e = std::get_if<ParamError>(&d)) return from(ctx, *e);
  spec.every = std::get<std::chrono::milliseconds>(d);
  if (spec.every.count() < 1) return from(ctx, invalid("every: at least 1ms"));
  if (auto e = optional_duration(params, "after", spec.after)) return from(ctx, *e);
  if (auto c = params.find("clock"); c != params.end() && !c->is_null()) {
    std::string clock = c->is_string() ? c->get<std::string>() : "";
    if (clock == "monotonic") {
      spec.clock = config::ClockKind::monotonic;
    } else if (clock == "boottime") {
      spec.clock = config::ClockKind::boottime;
    } else if (clock == "realtime") {
      spec.clock = config::ClockKind::realtime;
    } else {
      return from(ctx, invalid("clock: monotonic, boottime or realtime"));
    }
  }
  if (auto it = params.find("iterations"); it != params.end() && !it->is_null()) {
    if (!it->is_number_unsigned()) return from(ctx, invalid("iterations: a count, 0 = forever"));
    spec.iterations = it->get<std::uint64_t>();
  }
  auto r = ctx.core.host.add_timer(std::move(spec), kind);
  if (!r) return error_reply(ctx.id, r.error().code ? r.error().code : -32603, r.error().message);
  return result_reply(ctx.id, {{"id", *r}});
}

Json add_cron(Context& ctx, const Json& params) {
  if (!ctx.session.peer().admin) return admin_only(ctx, "add_cron");
  config::CronSpec spec;
  static constexpr std::string_view kKnown[] = {"id",     "signal", "schedule",  "uwsgi",
                                                "tz",     "jitter", "missed",    "iterations"};
  for (const auto& [key, value] : params.items()) {
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
      return from(ctx, invalid("unknown field \"" + key + "\" (a cron job has id, signal, "
                               "schedule or uwsgi, tz, jitter, missed, iterations)"));
    }
  }
  if (auto e = source_id_and_signal(ctx, params, spec.id, spec.signal)) return *e;
  auto schedule = params.find("schedule");
  auto uwsgi = params.find("uwsgi");
  bool has_schedule = schedule != params.end() && !schedule->is_null();
  bool has_uwsgi = uwsgi != params.end() && !uwsgi->is_null();
  if (has_schedule == has_uwsgi) {
    return from(ctx, invalid("a cron job has exactly one of schedule (\"*/5 * * * *\") and uwsgi "
                             "([minute, hour, day, month, weekday])"));
  }
  if (has_schedule) {
    if (!schedule->is_string()) return from(ctx, invalid("schedule: a cron expression"));
    spec.schedule = schedule->get<std::string>();
  } else {
    if (!uwsgi->is_array() || uwsgi->size() != 5 ||
        !std::all_of(uwsgi->begin(), uwsgi->end(), [](const Json& v) {
          return v.is_number_integer() && v.get<std::int64_t>() >= -1000 &&
                 v.get<std::int64_t>() <= 1000;
        })) {
      return from(ctx, invalid("uwsgi: five integers [minute, hour, day, month, weekday]"));
    }
    spec.uwsgi = uwsgi->get<std::vector<int>>();
  }
  if (auto tz = params.find("tz"); tz != params.end() && !tz->is_null()) {
    if (!tz->is_string()) return from(ctx, invalid("tz: an IANA zone such as Europe/Berlin"));
    spec.tz = tz->get<std::string>();
  }
  if (auto e = optional_duration(params, "jitter", spec.jitter)) return from(ctx, *e);
  if (auto m = params.find("missed"); m != params.end() && !m->is_null()) {
    if (*m == "skip") {
      spec.missed = config::Missed::skip;
    } else if (*m == "once") {
      spec.missed = config::Missed::once;
    } else {
      return from(ctx, invalid("missed: skip or once"));
    }
  }
  if (auto it = params.find("iterations"); it != params.end() && !it->is_null()) {
    if (!it->is_number_unsigned()) return from(ctx, invalid("iterations: a count, 0 = forever"));
    spec.iterations = it->get<std::uint64_t>();
  }
  auto r = ctx.core.host.add_cron(std::move(spec));
  if (!r) {
    std::string message = r.error().message;
    if (r.error().code == -32602 && !message.starts_with("invalid params")) {
      message = "invalid params: " + message;
    }
    return error_reply(ctx.id, r.error().code ? r.error().code : -32603, message);
  }
  return result_reply(ctx.id, {{"id", *r}});
}

Json add_file_monitor(Context& ctx, const Json& params) {
  if (!ctx.session.peer().admin) return admin_only(ctx, "add_file_monitor");
  static constexpr std::string_view kKeys[] = {"id",    "signal", "path",      "recursive",
                                               "events", "match", "settle", "max_delay",
                                               "iterations"};
  static constexpr std::pair<std::string_view, std::uint32_t> kEvents[] = {
      {"create", config::kFileCreate}, {"modify", config::kFileModify},
      {"close_write", config::kFileCloseWrite}, {"delete", config::kFileDelete},
      {"move", config::kFileMove}, {"attrib", config::kFileAttrib}};
  constexpr const char* kEventList = "create, modify, close_write, delete, move, attrib";
  for (const auto& [key, value] : params.items()) {
    if (std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys)) {
      return from(ctx, invalid("unknown field \"" + key + "\" (fields: id, signal, path, "
                               "recursive, events, match, settle, max_delay, iterations)"));
    }
  }
  config::FileMonitorSpec spec;
  if (auto e = source_id_and_signal(ctx, params, spec.id, spec.signal)) return *e;
  auto path = params.find("path");
  if (path == params.end() || !path->is_string() ||
      path->get_ref<const std::string&>().empty() || path->get_ref<const std::string&>()[0] != '/') {
    return from(ctx, invalid("path: an absolute path (a file or a directory) is required"));
  }
  spec.path = path->get<std::string>();
  if (auto r = params.find("recursive"); r != params.end() && !r->is_null()) {
    if (!r->is_boolean()) return from(ctx, invalid("recursive: expected true or false"));
    spec.recursive = r->get<bool>();
  }
  if (auto ev = params.find("events"); ev != params.end() && !ev->is_null()) {
    if (!ev->is_array() || ev->empty()) {
      return from(ctx, invalid(std::string("events: a non-empty list of ") + kEventList));
    }
    spec.events = 0;
    for (const auto& name : *ev) {
      auto found = std::find_if(std::begin(kEvents), std::end(kEvents), [&](const auto& e) {
        return name.is_string() && name.get_ref<const std::string&>() == e.first;
      });
      if (found == std::end(kEvents)) {
        return from(ctx, invalid("events: unknown event " + name.dump() + "; expected one of " +
                                 kEventList));
      }
      spec.events |= found->second;
    }
  }
  if (auto m = params.find("match"); m != params.end() && !m->is_null()) {
    if (!m->is_string()) return from(ctx, invalid("match: expected a glob such as \"*.conf\""));
    if (auto bad = config::glob_error(m->get_ref<const std::string&>())) {
      return from(ctx, invalid("match: " + *bad));
    }
    spec.match = m->get<std::string>();
  }
  if (auto e = optional_duration(params, "settle", spec.settle)) return from(ctx, *e);
  if (auto e = optional_duration(params, "max_delay", spec.max_delay)) return from(ctx, *e);
  if (auto it = params.find("iterations"); it != params.end() && !it->is_null()) {
    if (!it->is_number_unsigned()) return from(ctx, invalid("iterations: a count, 0 = forever"));
    spec.iterations = it->get<std::uint64_t>();
  }
  auto r = ctx.core.host.add_file_monitor(std::move(spec));
  if (!r) return error_reply(ctx.id, r.error().code ? r.error().code : -32603, r.error().message);
  return result_reply(ctx.id, {{"id", *r}});
}

Json remove_source(Context& ctx, const Json& params) {
  if (!ctx.session.peer().admin) return admin_only(ctx, "remove_source");
  auto id = params.find("id");
  if (id == params.end() || !id->is_string()) return from(ctx, invalid("id: the source's id"));
  auto r = ctx.core.host.remove_source(id->get<std::string>());
  if (!r) return error_reply(ctx.id, r.error().code ? r.error().code : -32603, r.error().message);
  return result_reply(ctx.id, Json::object());
}

Json table(Context& ctx) {
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
  }
  return result_reply(ctx.id, {{"signals", std::move(list)}});
}

Json sources_json(const ServerHost& host, std::size_t limit) {
  Json list = Json::array();
  for (const auto& t : host.timer_list(limit)) {
    list.push_back({{"id", t.id},
                    {"kind", to_string(t.kind)},
                    {"signal", t.signal},
                    {"every_ms", t.every_ms},
                    {"clock", std::string(t.clock)},
                    {"iterations", t.iterations},
                    {"fired", t.fired},
                    {"overruns", t.overruns},
                    {"next_in_ms", t.next_in_ms},
                    {"from_config", t.from_config}});
  }
  for (const auto& c : host.cron_list(limit)) {
    Json entry{{"id", c.id},
               {"kind", "cron"},
               {"signal", c.signal},
               {"schedule", c.schedule},
               {"zone", c.zone},
               {"missed_policy", c.missed_policy},
               {"next", c.next.empty() ? Json() : Json(c.next)},
               {"iterations", c.iterations},
               {"fired", c.fired},
               {"missed", c.missed},
               {"from_config", c.from_config}};
    list.push_back(std::move(entry));
  }
  auto [timers, rb_timers] = host.timer_counts();
  return {{"timers", timers},
          {"rb_timers", rb_timers},
          {"cron", host.cron_count()},
          {"file_monitors", host.file_monitors(0).count},
          {"list", std::move(list)}};
}

Json file_monitors_json(const ServerHost& host, std::size_t limit) {
  Json list = Json::array();
  for (const auto& f : host.file_monitors(limit).list) {
    list.push_back({{"id", f.id},
                    {"signal", f.signal},
                    {"path", f.path},
                    {"recursive", f.recursive},
                    {"state", f.degraded.empty() ? "ok" : "degraded"},
                    {"why", f.degraded},
                    {"watches", f.watches},
                    {"unwatched", f.unwatched},
                    {"iterations", f.iterations},
                    {"raised", f.batches},
                    {"from_config", f.from_config}});
  }
  return list;
}

// The cron state file: `ok`, `failing` (with the error and since when) or `none` (not written
// yet: no job has fired, or no state_dir).
Json cron_state_json(const ServerHost& host) {
  CronStateHealth s = host.cron_state();
  if (s.path.empty()) return {{"state", "none"}};
  if (s.error.empty()) return {{"state", "ok"}, {"path", s.path}};
  return {{"state", "failing"},
          {"path", s.path},
          {"error", s.error},
          {"failing_since", format_rfc3339(s.failing_since)}};
}

Json status(Context& ctx) {
  ServerCore& core = ctx.core;
  std::unordered_map<ClientId, const Peer*> peers;
  auto sessions = core.sessions();
  for (const auto& s : sessions) peers[s->client()] = &s->peer();
  Json clients = Json::array();
  for (const auto& c : core.hub.clients()) {
    Json entry{{"client", c.id},
               {"name", c.name},
               {"group", c.group},
               {"subscriptions", c.subscriptions},
               {"queue", c.queue},
               {"unacked", c.unacked},
               {"dropped", c.dropped}};
    if (auto it = peers.find(c.id); it != peers.end()) {
      entry["uid"] = it->second->uid;
      entry["pid"] = it->second->pid;
      entry["user"] = it->second->user;
    }
    clients.push_back(std::move(entry));
  }
  auto uptime_ms = static_cast<std::int64_t>(core.host.uptime_seconds() * 1000);
  return result_reply(ctx.id, {{"version", TOCSIN_VERSION},
                               {"pid", ::getpid()},
                               {"uptime_ms", uptime_ms},
                               {"last_seq", core.host.dispatcher().last_seq()},
                               {"config", core.host.config().file},
                               {"socket", core.path},
                               {"clients", core.hub.client_count()},
                               {"children", core.host.children()},
                               {"backlog", core.hub.backlog_size()},
                               {"waiters", core.waiter_count()},
                               {"sources", sources_json(core.host, 100)},
                               {"plugins", core.host.plugins_status()},
                               {"file_monitors", file_monitors_json(core.host, 100)},
                               {"cron_state", cron_state_json(core.host)},
                               {"clients_detail", std::move(clients)}});
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
  out += "# HELP tocsin_handler_runs_total Events given to a handler (index: its place in the "
         "signal's list).\n# TYPE tocsin_handler_runs_total counter\n";
  std::string failures =
      "# HELP tocsin_handler_failures_total Handler runs that failed (error, exception, exit "
      "status, timeout).\n# TYPE tocsin_handler_failures_total counter\n";
  for (const SignalEntry* e : t.entries()) {
    for (std::size_t i = 0; i < e->handlers.size(); ++i) {
      std::string labels = "{signal=\"" + std::to_string(e->number) + "\",index=\"" +
                           std::to_string(i) + "\",handler=\"" + e->handlers[i]->describe() +
                           "\"}";
      out += "tocsin_handler_runs_total" + labels + " " +
             std::to_string(e->handlers[i]->counters().runs) + "\n";
      failures += "tocsin_handler_failures_total" + labels + " " +
                  std::to_string(e->handlers[i]->counters().failures) + "\n";
    }
  }
  out += failures;
  out += "# HELP tocsin_events_total Events raised since the daemon started.\n"
         "# TYPE tocsin_events_total counter\ntocsin_events_total " +
         std::to_string(core.host.dispatcher().last_seq()) + "\n";
  out += "# HELP tocsin_clients Connected clients.\n# TYPE tocsin_clients gauge\ntocsin_clients " +
         std::to_string(core.hub.client_count()) + "\n";
  out += "# HELP tocsin_children Running exec handler processes.\n"
         "# TYPE tocsin_children gauge\ntocsin_children " +
         std::to_string(core.host.children()) + "\n";
  out += "# HELP tocsin_backlog_events One-of events waiting for a subscriber.\n"
         "# TYPE tocsin_backlog_events gauge\ntocsin_backlog_events " +
         std::to_string(core.hub.backlog_size()) + "\n";
  FileMonitorSummary files = core.host.file_monitors(0);
  out += "# HELP tocsin_file_monitors File monitors.\n# TYPE tocsin_file_monitors gauge\n"
         "tocsin_file_monitors " +
         std::to_string(files.count) + "\n";
  out += "# HELP tocsin_file_monitors_degraded File monitors not fully watching their path.\n"
         "# TYPE tocsin_file_monitors_degraded gauge\ntocsin_file_monitors_degraded " +
         std::to_string(files.degraded) + "\n";
  out += "# HELP tocsin_file_watches Kernel inotify watches held.\n"
         "# TYPE tocsin_file_watches gauge\ntocsin_file_watches " +
         std::to_string(files.watches) + "\n";
  out += "# HELP tocsin_file_overflows_total inotify queue overflows (each followed by a "
         "rescan).\n# TYPE tocsin_file_overflows_total counter\ntocsin_file_overflows_total " +
         std::to_string(files.overflows) + "\n";
  auto clients = core.hub.clients();
  out += "# HELP tocsin_subscriber_queue_depth Events queued for a client.\n"
         "# TYPE tocsin_subscriber_queue_depth gauge\n";
  for (const auto& c : clients) {
    out += "tocsin_subscriber_queue_depth{client=\"" + std::to_string(c.id) + "\",name=\"" +
           c.name + "\"} " + std::to_string(c.queue) + "\n";
  }
  out += "# HELP tocsin_subscriber_unacked One-of events a client holds unacknowledged.\n"
         "# TYPE tocsin_subscriber_unacked gauge\n";
  for (const auto& c : clients) {
    out += "tocsin_subscriber_unacked{client=\"" + std::to_string(c.id) + "\",name=\"" + c.name +
           "\"} " + std::to_string(c.unacked) + "\n";
  }
  out += "# HELP tocsin_subscriber_dropped_total Broadcast events dropped from a client's queue.\n"
         "# TYPE tocsin_subscriber_dropped_total counter\n";
  for (const auto& c : clients) {
    out += "tocsin_subscriber_dropped_total{client=\"" + std::to_string(c.id) + "\",name=\"" +
           c.name + "\"} " + std::to_string(c.dropped) + "\n";
  }
  return out;
}

Json metrics(Context& ctx) { return result_reply(ctx.id, {{"text", metrics_text(ctx.core)}}); }

Json reload(Context& ctx) {
  if (!ctx.session.peer().admin) return admin_only(ctx, "reload");
  spdlog::info("client {} ({}): reload", ctx.session.client(), ctx.session.peer().user);
  auto r = ctx.core.host.reload();
  if (!r) return error_reply(ctx.id, -32006, "reload failed:\n" + r.error().message);
  return result_reply(ctx.id, Json::object());
}

Json version(Context& ctx) {
  return result_reply(ctx.id, {{"version", TOCSIN_VERSION}, {"protocol", 1}});
}

}  // namespace tocsin::methods

#include "server/methods.h"

#include <algorithm>
#include <array>

#include <spdlog/spdlog.h>

#include "dispatch/target_handler.h"
#include "protocol/rpc_errors.h"
#include "server/introspection.h"
#include "server/json_node.h"
#include "server/raise_rules.h"
#include "server/server_core.h"
#include "server/session.h"
#include "server/source_request.h"
#include "tocsin/event_source.h"

namespace tocsin::methods {

namespace {

Json invalid(const Context& ctx, const std::string& what) {
  return error_reply(ctx.id, ErrorCode::invalid_params, what);
}

// A signal param as a SignalRef: a JSON integer or string; nullopt for any other type.
std::optional<SignalRef> signal_ref(const Json& v) {
  if (v.is_number_integer()) return SignalRef{false, v.get<std::int64_t>(), {}};
  if (v.is_string()) return SignalRef{true, 0, v.get_ref<const std::string&>()};
  return std::nullopt;
}

// The signal `key` of `params`: resolved, or the error reply in `reply`.
std::optional<SignalId> signal_param(Context& ctx, const Json& v, const char* key, Json& reply) {
  auto ref = signal_ref(v);
  if (!ref) {
    reply = invalid(ctx, std::string(key) + ": expected a signal number or name");
    return std::nullopt;
  }
  auto id = resolve_signal(ctx.core.host.dispatcher().table(), *ref, key);
  if (!id) {
    reply = error_reply(ctx.id, id.error());
    return std::nullopt;
  }
  return *id;
}

Json raise(Context& ctx, const Json& params) {
  auto s = params.find("signal");
  if (s == params.end()) return invalid(ctx, "signal is required");
  auto ref = signal_ref(*s);
  if (!ref) return invalid(ctx, "signal: expected a signal number or name");
  std::string payload;
  if (auto p = params.find("payload"); p != params.end() && !p->is_null()) {
    if (!p->is_string()) return invalid(ctx, "payload: expected a string");
    payload = p->get<std::string>();
  }
  Dispatcher& d = ctx.core.host.dispatcher();
  auto signal = check_raise(d.table(), ctx.core.limits, ctx.session.peer(), *ref, payload.size());
  if (!signal) {
    if (signal.error().code == ErrorCode::permission_denied) {
      return denied(ctx, signal.error().message.substr(sizeof("permission denied: ") - 1));
    }
    return error_reply(ctx.id, signal.error());
  }
  EventPtr ev = d.raise(*signal, SourceRef{SourceKind::raise, ctx.session.source_id()},
                        std::move(payload));
  return result_reply(ctx.id, {{"seq", ev->seq}});
}

Json hello(Context& ctx, const Json& params) {
  std::string name = params.value("name", "");
  std::string group = params.value("group", "");
  if (!name.empty() && !is_valid_client_name(name)) {
    return invalid(ctx, "name: 1-64 letters, digits, . _ -");
  }
  if (!group.empty() && !is_valid_client_name(group)) {
    return invalid(ctx, "group: 1-64 letters, digits, . _ -");
  }
  if (auto r = ctx.core.hub.hello(ctx.session.client(), name, group); !r) {
    return error_reply(ctx.id, r.error());
  }
  auto me = ctx.core.hub.client_info(ctx.session.client());
  ctx.session.set_name(me ? me->name : name);
  return result_reply(ctx.id, {{"client", ctx.session.client()},
                               {"name", me ? me->name : name},
                               {"group", me ? me->group : group}});
}

Json subscribe(Context& ctx, const Json& params) {
  auto sigs = params.find("signals");
  if (sigs == params.end()) return invalid(ctx, "signals is required");
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
      Json reply;
      auto n = signal_param(ctx, v, "signals", reply);
      if (!n) return reply;
      if (const SignalEntry* e = table.find(*n); e && !acl_allows(e->acl.subscribe, peer)) {
        return denied(ctx, "subscribe " + std::to_string(*n) + " (its acl.subscribe)");
      }
      spec.signals.set(*n);
    }
  } else {
    return invalid(ctx, "signals: expected a non-empty list of signals, or \"*\"");
  }
  if (auto src = params.find("sources"); src != params.end() && !src->is_null()) {
    if (!src->is_array()) return invalid(ctx, "sources: expected a list of kinds or ids");
    for (const auto& v : *src) {
      if (!v.is_string()) return invalid(ctx, "sources: expected strings");
      spec.sources.push_back(v.get<std::string>());
    }
  }
  if (auto a = params.find("ack"); a != params.end() && !a->is_null()) {
    if (!a->is_boolean()) return invalid(ctx, "ack: expected true or false");
    spec.ack = a->get<bool>();
  }
  if (auto pf = params.find("prefetch"); pf != params.end() && !pf->is_null()) {
    if (!pf->is_number_unsigned() || pf->get<std::uint64_t>() < 1 ||
        pf->get<std::uint64_t>() > config::kMaxPrefetch) {
      return invalid(ctx, "prefetch: expected a count 1-" + std::to_string(config::kMaxPrefetch));
    }
    if (!spec.ack) {
      return invalid(ctx, "prefetch: only with ack: true (it is the acking subscriber's credit)");
    }
    spec.prefetch = static_cast<std::uint32_t>(pf->get<std::uint64_t>());
  }
  if (auto ep = params.find("event_params"); ep != params.end() && !ep->is_null()) {
    if (*ep == "by-name") {
      spec.event_params = EventParams::by_name;
    } else if (*ep == "by-position") {
      spec.event_params = EventParams::by_position;
    } else {
      return invalid(ctx, "event_params: expected \"by-name\" or \"by-position\"");
    }
  }
  auto r = ctx.core.hub.subscribe(ctx.session.client(), std::move(spec));
  if (!r) return error_reply(ctx.id, r.error());
  Json result{{"subscription", *r}};
  if (!excluded.empty()) result["excluded"] = std::move(excluded);
  return result_reply(ctx.id, std::move(result));
}

Json unsubscribe(Context& ctx, const Json& params) {
  auto s = params.find("subscription");
  if (s == params.end() || !s->is_number_unsigned()) {
    return invalid(ctx, "subscription: expected the id subscribe returned");
  }
  auto r = ctx.core.hub.unsubscribe(ctx.session.client(), s->get<std::uint64_t>());
  if (!r) return error_reply(ctx.id, r.error());
  return result_reply(ctx.id, Json::object());
}

// `seq` (one event) or `seqs` (many: a worker's batched acks). Returns the seqs, or nothing
// after writing the error reply.
std::optional<std::vector<std::uint64_t>> seqs_param(Context& ctx, const Json& params,
                                                     Json& reply, bool* one) {
  auto s = params.find("seq");
  auto many = params.find("seqs");
  if ((s == params.end()) == (many == params.end())) {
    reply = invalid(ctx, "expected seq (one event's seq) or seqs (a list of them)");
    return std::nullopt;
  }
  std::vector<std::uint64_t> out;
  if (s != params.end()) {
    if (!s->is_number_unsigned()) {
      reply = invalid(ctx, "seq: expected the event's seq");
      return std::nullopt;
    }
    out.push_back(s->get<std::uint64_t>());
    *one = true;
    return out;
  }
  if (!many->is_array() || many->empty()) {
    reply = invalid(ctx, "seqs: expected a non-empty list of seqs");
    return std::nullopt;
  }
  out.reserve(many->size());
  for (const Json& v : *many) {
    if (!v.is_number_unsigned()) {
      reply = invalid(ctx, "seqs: expected seqs (unsigned integers)");
      return std::nullopt;
    }
    out.push_back(v.get<std::uint64_t>());
  }
  *one = false;
  return out;
}

Json settled_reply(Context& ctx, const Hub::Settled& s) {
  Json result{{"settled", s.done}};
  if (!s.not_held.empty()) result["not_held"] = s.not_held;
  return result_reply(ctx.id, std::move(result));
}

Json ack(Context& ctx, const Json& params) {
  Json reply;
  bool one = false;
  auto seqs = seqs_param(ctx, params, reply, &one);
  if (!seqs) return reply;
  if (one) {
    auto r = ctx.core.hub.ack(ctx.session.client(), seqs->front());
    if (!r) return error_reply(ctx.id, r.error());
    return result_reply(ctx.id, Json::object());
  }
  return settled_reply(ctx, ctx.core.hub.ack_many(ctx.session.client(), *seqs));
}

Json nack(Context& ctx, const Json& params) {
  Json reply;
  bool one = false;
  auto seqs = seqs_param(ctx, params, reply, &one);
  if (!seqs) return reply;
  bool requeue = true;
  if (auto q = params.find("requeue"); q != params.end() && !q->is_null()) {
    if (!q->is_boolean()) return invalid(ctx, "requeue: expected true or false");
    requeue = q->get<bool>();
  }
  if (one) {
    auto r = ctx.core.hub.nack(ctx.session.client(), seqs->front(), requeue);
    if (!r) return error_reply(ctx.id, r.error());
    return result_reply(ctx.id, Json::object());
  }
  return settled_reply(ctx, ctx.core.hub.nack_many(ctx.session.client(), *seqs, requeue));
}

// A duration param as the YAML reads one ("250ms", or an integer of milliseconds), through the
// same reader; the error reply, if any, in `reply`.
std::optional<std::chrono::milliseconds> duration_param(Context& ctx, const Json& v,
                                                        const char* name, Json& reply) {
  TableNames names(ctx.core.host.dispatcher().table());
  spec::Reader r("", names);
  spec::Node node = to_node(v);
  auto d = r.duration(spec::Value{&node, {}, name}, std::chrono::milliseconds{0});
  if (!d) reply = error_reply(ctx.id, r.problems().front().code, r.problems().front().message);
  return d;
}

Json wait(Context& ctx, const Json& params) {
  std::optional<SignalId> signal;
  if (auto s = params.find("signal"); s != params.end() && !s->is_null()) {
    Json reply;
    signal = signal_param(ctx, *s, "signal", reply);
    if (!signal) return reply;
  }
  std::optional<std::chrono::milliseconds> timeout;
  if (auto t = params.find("timeout"); t != params.end() && !t->is_null()) {
    Json reply;
    timeout = duration_param(ctx, *t, "timeout", reply);
    if (!timeout) return reply;
  }
  if (ctx.id.is_null()) return invalid(ctx, "wait needs an id to answer to");
  ctx.core.add_waiter(ctx.self, ctx.id, signal, timeout);
  return nullptr;
}

// Methods that declare (add_*, register, unregister, remove_source) are open to admins and to
// the peers a signal's acl.declare names (SPEC §7). A signal with no declare ACL: admins only.
bool may_declare(const Context& ctx, SignalId signal) {
  const Peer& peer = ctx.session.peer();
  if (peer.admin) return true;
  const SignalEntry* e = ctx.core.host.dispatcher().table().find(signal);
  return e != nullptr && e->acl.declare && acl_allows(e->acl.declare, peer);
}

Json declare_denied(const Context& ctx, SignalId signal) {
  return denied(ctx, std::string(ctx.method) + " on signal " + std::to_string(signal) +
                         " (needs root, socket.admin_group or its acl.declare)");
}

Json register_target(Context& ctx, const Json& params) {
  const bool add = ctx.method == "register";
  auto s = params.find("signal");
  if (s == params.end()) return invalid(ctx, "signal is required");
  Json reply;
  auto signal = signal_param(ctx, *s, "signal", reply);
  if (!signal) return reply;
  if (!may_declare(ctx, *signal)) return declare_denied(ctx, *signal);
  auto t = params.find("target");
  auto target = t != params.end() && t->is_string() ? parse_target(t->get<std::string>())
                                                    : std::nullopt;
  if (!target) {
    return invalid(ctx, "target: subscribers, subscriber, subscriber:NAME or group:NAME");
  }
  auto r = add ? ctx.core.host.register_target(*signal, *target)
               : ctx.core.host.unregister_target(*signal, *target);
  if (!r) return error_reply(ctx.id, r.error());
  spdlog::info("client {} ({}): {} {} on signal {}", ctx.session.client(),
               ctx.session.peer().user, ctx.method, to_string(*target), *signal);
  return result_reply(ctx.id, Json::object());
}

// The request-level fields of an `add_*` (lifetime, linger, replace): taken out of `params`,
// which keeps only the kind's spec. The error reply, if any, in `reply`.
std::optional<Declaration> declaration_param(Context& ctx, Json& params, Json& reply) {
  Declaration how;
  if (auto l = params.find("lifetime"); l != params.end()) {
    if (!l->is_null()) {
      if (*l == "clients") {
        how.lifetime = SourceLifetime::clients;
      } else if (*l != "daemon") {
        reply = invalid(ctx, "lifetime: expected daemon or clients; got " + l->dump());
        return std::nullopt;
      }
    }
    params.erase(l);
  }
  if (auto l = params.find("linger"); l != params.end()) {
    if (!l->is_null()) {
      auto d = duration_param(ctx, *l, "linger", reply);
      if (!d) return std::nullopt;
      if (how.lifetime != SourceLifetime::clients && d->count() != 0) {
        reply = invalid(ctx, "linger: only with lifetime: clients");
        return std::nullopt;
      }
      how.linger = *d;
    }
    params.erase(l);
  }
  if (auto r = params.find("replace"); r != params.end()) {
    if (!r->is_null()) {
      if (!r->is_boolean()) {
        reply = invalid(ctx, "replace: expected true or false");
        return std::nullopt;
      }
      how.replace = r->get<bool>();
    }
    params.erase(r);
  }
  how.declarer = ctx.session.client();
  return how;
}

// add_timer, add_cron, ...: the params are the kind's spec, read by its schema exactly as the
// YAML loader reads an entry of its section, and the request's own fields (lifetime, linger,
// replace), which the registry's sharing of run-time sources uses (SPEC §3).
Json add_source(Context& ctx, const Json& params) {
  const SourceSchema* schema = schema_for_add_method(ctx.method);
  Json spec_params = params;
  Json reply;
  auto how = declaration_param(ctx, spec_params, reply);
  if (!how) return reply;
  auto spec = parse_source_request(*schema, ctx.core.host.dispatcher().table(), spec_params);
  if (!spec) return error_reply(ctx.id, spec.error());
  if (!may_declare(ctx, spec.value()->signal)) return declare_denied(ctx, spec.value()->signal);
  if (!ctx.session.peer().admin && !spec.value()->id.empty()) {
    // A taken id: joining or replacing it needs the right to declare on its signal too (an
    // acl.declare on one signal must not replace another signal's source).
    auto taken = ctx.core.host.sources().signal_of(spec.value()->id);
    if (taken && *taken != spec.value()->signal && !may_declare(ctx, *taken)) {
      return declare_denied(ctx, *taken);
    }
  }
  auto done = ctx.core.host.sources().declare(std::move(spec.value()), *how);
  if (!done) return error_reply(ctx.id, done.error());
  spdlog::info("client {} ({}): {} {}{}", ctx.session.client(), ctx.session.peer().user, ctx.method,
               done->id,
               done->joined     ? " (joined)"
               : done->replaced ? " (replaced)"
                                : "");
  Json result{{"id", done->id}};
  if (done->joined) result["joined"] = true;
  return result_reply(ctx.id, std::move(result));
}

// remove_source {id, force?}: with force (admin), removed for all; without, a declarer leaves
// it (SourceRegistry::leave).
Json remove_source(Context& ctx, const Json& params) {
  auto id = params.find("id");
  if (id == params.end() || !id->is_string()) return invalid(ctx, "id: the source's id");
  bool force = false;
  if (auto f = params.find("force"); f != params.end() && !f->is_null()) {
    if (!f->is_boolean()) return invalid(ctx, "force: expected true or false");
    force = f->get<bool>();
  }
  const std::string& name = id->get_ref<const std::string&>();
  SourceRegistry& sources = ctx.core.host.sources();
  if (force && !ctx.session.peer().admin) {
    return denied(ctx,
                  "remove_source with force needs root or the admin group (socket.admin_group)");
  }
  if (!ctx.session.peer().admin) {
    auto signal = sources.signal_of(name);
    if (!signal)
      return error_reply(ctx.id, ErrorCode::not_found, "no source with id \"" + name + "\"");
    if (!may_declare(ctx, *signal)) return declare_denied(ctx, *signal);
  }
  if (force) {
    auto r = sources.remove(name);
    if (!r) return error_reply(ctx.id, r.error());
    spdlog::info("client {} ({}): remove_source {} (force)", ctx.session.client(),
                 ctx.session.peer().user, name);
    return result_reply(ctx.id, Json::object());
  }
  ctx.core.release_declarers_of_gone_peers(&ctx.session);  // one that has just exited has left
  auto r = sources.leave(name, ctx.session.client());
  if (!r) return error_reply(ctx.id, r.error());
  return result_reply(ctx.id, Json::object());
}

Json reload(Context& ctx, const Json&) {
  spdlog::info("client {} ({}): reload", ctx.session.client(), ctx.session.peer().user);
  auto r = ctx.core.host.reload();
  if (!r) return error_reply(ctx.id, ErrorCode::reload_failed, "reload failed:\n" + r.error().message);
  return result_reply(ctx.id, Json::object());
}

Json version(Context& ctx, const Json&) {
  return result_reply(ctx.id, {{"version", TOCSIN_VERSION}, {"protocol", 1}});
}

constexpr std::array kMethods = {
    Method{"raise", raise},
    Method{"ack", ack},
    Method{"nack", nack},
    Method{"subscribe", subscribe},
    Method{"unsubscribe", unsubscribe},
    Method{"hello", hello},
    Method{"wait", wait, false, /*batchable=*/false},
    // Declaring methods check admin or the signal's acl.declare themselves (may_declare).
    Method{"register", register_target},
    Method{"unregister", register_target},
    Method{"remove_source", remove_source},
    Method{"table", introspection::table},
    Method{"status", introspection::status},
    Method{"metrics", introspection::metrics},
    Method{"reload", reload, /*admin=*/true},
    Method{"version", version},
};

}  // namespace

const Method* find(std::string_view name) {
  // The fixed methods, then each source kind's add method: fixed for the daemon's life.
  static const std::vector<Method> all = [] {
    std::vector<Method> m(kMethods.begin(), kMethods.end());
    for (const SourceKindEntry& kind : source_kinds()) {
      if (!kind.schema->add_method().empty()) {
        m.push_back(Method{kind.schema->add_method(), add_source});  // may_declare
      }
    }
    return m;
  }();
  for (const Method& m : all) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

Json error_reply(const Json& id, ErrorCode code, const std::string& message) {
  std::string text = message;
  if (code == ErrorCode::invalid_params && !text.starts_with("invalid params")) {
    text = "invalid params: " + text;
  }
  return Json{{"jsonrpc", "2.0"},
              {"id", id},
              {"error", {{"code", rpc_code(code)}, {"message", std::move(text)}}}};
}

Json error_reply(const Json& id, const Error& error) {
  return error_reply(id, error.code == ErrorCode::generic ? ErrorCode::internal : error.code,
                     error.message);
}

Json result_reply(const Json& id, Json result) {
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

Json denied(const Context& ctx, const std::string& what) {
  const Peer& p = ctx.session.peer();
  spdlog::warn("client {} (uid {} {}, pid {}): denied: {}", ctx.session.client(), p.uid, p.user,
               p.pid, what);
  return error_reply(ctx.id, ErrorCode::permission_denied, "permission denied: " + what);
}

}  // namespace tocsin::methods

// source_registry.cc — SourceRegistry and the defaults of EventSource
// (include/tocsin/event_source.h).
#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <set>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "tocsin/event_source.h"

namespace tocsin {

SourceKind source_kind_of(const SourceSpec& spec) { return spec.kind; }

std::string_view to_string(SourceLifetime lifetime) {
  return lifetime == SourceLifetime::clients ? "clients" : "daemon";
}

std::shared_ptr<SourceSpec> SourceSchema::parse_field(spec::Reader& reader,
                                                      const spec::Field& field) const {
  reader.error(field.key_at, "this section is a list, not a mapping");
  return nullptr;
}

const SourceSchema* schema_for_config_key(std::string_view key) {
  for (const auto& k : source_kinds()) {
    if (!k.schema->config_key().empty() && k.schema->config_key() == key) return k.schema;
  }
  return nullptr;
}

const SourceSchema* schema_for_kind(SourceKind kind) {
  for (const auto& k : source_kinds()) {
    if (k.schema->kind() == kind) return k.schema;
  }
  return nullptr;
}

const SourceSchema* schema_for_add_method(std::string_view method) {
  for (const auto& k : source_kinds()) {
    if (!k.schema->add_method().empty() && k.schema->add_method() == method) return k.schema;
  }
  return nullptr;
}

// ---- EventSource defaults --------------------------------------------------------------------

Result<void> EventSource::check_config(std::span<const SourceSpec* const>,
                                       const SourceSettings&) const {
  return ok();
}

Result<void> EventSource::apply_config(std::span<const SourceSpec* const> specs,
                                       const SourceSettings& settings, bool) {
  if (auto r = check_config(specs, settings); !r) return r;
  std::unordered_map<std::string_view, const SourceSpec*> wanted;
  for (const SourceSpec* s : specs) wanted.emplace(s->id, s);
  for (const std::string& id : config_ids()) {
    auto it = wanted.find(id);
    if (it == wanted.end() || !unchanged(*it->second)) remove(id);
  }
  for (const SourceSpec* s : specs) {
    if (contains(s->id)) continue;  // unchanged: keeps its phase
    if (auto r = add(*s, /*from_config=*/true); !r) {
      return Error{config::to_string(s->where) + ": " + std::string(schema().noun()) + " `" +
                       s->id + "`: " + r.error().message,
                   r.error().code};
    }
  }
  return ok();
}

// ---- SourceRegistry --------------------------------------------------------------------------

// Who declared each shared run-time source, and its lifetime. An entry is kept for every
// run-time source added with a given id (it can be joined: its spec is kept to compare) and for
// every `lifetime: clients` one; a source with a generated id and lifetime daemon has none, which
// keeps a million generated rb_timers as cheap as they were. An entry whose source retired by
// itself (iterations done) is dropped when next looked at.
struct SourceRegistry::Sharing {
  struct Entry {
    SourceSpecPtr spec;
    SourceLifetime lifetime = SourceLifetime::daemon;
    std::chrono::milliseconds linger{0};
    std::set<std::uint64_t> declarers;
    // While the last declarer's linger runs: when it ends, and the timer. `epoch` tells a
    // completion that was already queued when the linger was cancelled from the current one.
    std::optional<std::chrono::system_clock::time_point> lingering_until;
    std::unique_ptr<boost::asio::steady_timer> timer;
    std::uint64_t epoch = 0;
  };
  std::unordered_map<std::string, Entry> entries;
  std::unordered_map<std::uint64_t, std::set<std::string>> by_client;

  Entry* find(std::string_view id) {
    auto it = entries.find(std::string(id));
    return it == entries.end() ? nullptr : &it->second;
  }
  void forget_declarer(const std::string& id, std::uint64_t client) {
    auto it = by_client.find(client);
    if (it == by_client.end()) return;
    it->second.erase(id);
    if (it->second.empty()) by_client.erase(it);
  }
  void add_declarer(const std::string& id, Entry& e, std::uint64_t client) {
    e.declarers.insert(client);
    by_client[client].insert(id);
  }
  // Records `spec` under its id with who declares it; true when nobody does and it lives by its
  // clients (the caller starts its linger).
  bool record(const SourceSpecPtr& spec, SourceLifetime lifetime,
              std::chrono::milliseconds linger, const std::set<std::uint64_t>& who) {
    Entry& e = entries[spec->id];
    e.spec = spec;
    e.lifetime = lifetime;
    e.linger = linger;
    for (std::uint64_t c : who) add_declarer(spec->id, e, c);
    return e.declarers.empty() && lifetime == SourceLifetime::clients;
  }
  // A join, or a replace by a declarer, ends a linger.
  static void stop_linger(Entry& e) {
    if (!e.lingering_until) return;
    e.lingering_until.reset();
    ++e.epoch;
    if (e.timer) e.timer->cancel();
  }
};

SourceRegistry::SourceRegistry(SourceContext context)
    : context_(std::move(context)), sharing_(std::make_unique<Sharing>()) {
  for (const auto& k : source_kinds()) {
    owned_.push_back(k.make(context_));
    kinds_.push_back(owned_.back().get());
  }
}

SourceRegistry::~SourceRegistry() = default;

void SourceRegistry::attach(EventSource& kind) {
  if (std::find(kinds_.begin(), kinds_.end(), &kind) == kinds_.end()) kinds_.push_back(&kind);
}

void SourceRegistry::detach(EventSource& kind) {
  kinds_.erase(std::remove(kinds_.begin(), kinds_.end(), &kind), kinds_.end());
}

EventSource* SourceRegistry::find_kind(SourceKind kind) const {
  for (EventSource* k : kinds_) {
    if (k->kind() == kind) return k;
  }
  return nullptr;
}

namespace {

std::vector<const SourceSpec*> specs_of(const config::Config& config, SourceKind kind) {
  std::vector<const SourceSpec*> out;
  for (const auto& s : config.sources) {
    if (s->kind == kind) out.push_back(s.get());
  }
  return out;
}

SourceSettings settings_of(const config::Config& config) {
  return SourceSettings{config.state_dir, config.limits.payload_bytes};
}

}  // namespace

Result<void> SourceRegistry::check_config(const config::Config& config) const {
  // The loader made ids unique within the file; here they must not take the id of a source that
  // is not configured (a run-time one), nor of another kind's (a plugin's sources).
  for (const auto& s : config.sources) {
    for (EventSource* k : kinds_) {
      std::optional<bool> runtime = k->runtime(s->id);
      if (!runtime) continue;
      if (*runtime) {
        return Error{config::to_string(s->where) + ": the id \"" + s->id + "\" is taken by a " +
                     std::string(k->schema().noun()) +
                     " added at run time (remove_source it first)"};
      }
      // Configured sources of the YAML kinds are replaced by the new configuration; a plugin's
      // are configured elsewhere and stay.
      if (k->schema().config_key().empty()) {
        return Error{config::to_string(s->where) + ": the id \"" + s->id + "\" is taken by " +
                     std::string(k->schema().noun()) + " \"" + s->id + "\" (" +
                     std::string(k->kind().name()) + ", configured in its plugin)"};
      }
    }
  }
  const SourceSettings settings = settings_of(config);
  for (EventSource* k : kinds_) {
    if (k->schema().config_key().empty()) continue;
    std::vector<const SourceSpec*> specs = specs_of(config, k->kind());
    if (auto r = k->check_config(specs, settings); !r) return r;
  }
  return ok();
}

Result<void> SourceRegistry::apply_config(const config::Config& config, bool at_start) {
  if (auto r = check_config(config); !r) return r;
  limit_ = config.limits.sources;
  const SourceSettings settings = settings_of(config);
  // Sources that move from one kind to another keep their id: every kind first lets go of what
  // it no longer has, then takes what is new.
  for (EventSource* k : kinds_) {
    if (k->schema().config_key().empty()) continue;
    std::vector<const SourceSpec*> specs = specs_of(config, k->kind());
    std::set<std::string_view> wanted;
    for (const SourceSpec* s : specs) wanted.insert(s->id);
    for (const std::string& id : k->config_ids()) {
      if (!wanted.contains(id)) k->remove(id);
    }
  }
  Result<void> first = ok();
  for (EventSource* k : kinds_) {
    if (k->schema().config_key().empty()) continue;
    std::vector<const SourceSpec*> specs = specs_of(config, k->kind());
    if (auto r = k->apply_config(specs, settings, at_start); !r && first) first = r;
  }
  return first;
}

bool SourceRegistry::contains(std::string_view id) const {
  return std::any_of(kinds_.begin(), kinds_.end(),
                     [&](const EventSource* k) { return k->contains(id); });
}

std::size_t SourceRegistry::count() const {
  std::size_t n = 0;
  for (const EventSource* k : kinds_) n += k->count();
  return n;
}

Result<std::string> SourceRegistry::add(std::shared_ptr<SourceSpec> spec) {
  auto r = declare(std::move(spec), Declaration{});
  if (!r) return r.error();
  return std::move(r->id);
}

namespace {

// What differs between a source's spec and a request for the same id, for the conflict message.
std::string what_differs(const SourceSpec& had, SourceLifetime had_lifetime,
                         std::chrono::milliseconds had_linger, const SourceSpec& want,
                         const Declaration& how) {
  std::vector<std::string> diff;
  if (had.kind != want.kind) {
    diff.push_back("it is a " + std::string(had.kind.name()) + ", not a " +
                   std::string(want.kind.name()));
  } else {
    if (had.signal != want.signal) {
      diff.push_back("it raises signal " + std::to_string(had.signal) + ", not " +
                     std::to_string(want.signal));
    }
    if (!had.same_as(want) && had.signal == want.signal) {
      diff.push_back("its " + std::string(had.kind.name()) + " fields differ");
    }
  }
  if (had_lifetime != how.lifetime) {
    diff.push_back("its lifetime is " + std::string(to_string(had_lifetime)));
  }
  if (had_linger != how.linger) {
    diff.push_back("its linger is " + std::to_string(had_linger.count()) + "ms");
  }
  std::string out;
  for (const std::string& d : diff) out += (out.empty() ? "" : ", ") + d;
  return out;
}

}  // namespace

Result<Declared> SourceRegistry::declare(std::shared_ptr<SourceSpec> spec, const Declaration& how) {
  EventSource* kind = find_kind(spec->kind);
  if (kind == nullptr) {
    return Error{"no source kind \"" + std::string(spec->kind.name()) + "\"", ErrorCode::internal};
  }
  const bool generated = spec->id.empty();
  Sharing& sh = *sharing_;
  Declared out;
  std::set<std::uint64_t> inherited;  // the declarers of a replaced source
  SourceSpecPtr replaced_spec;
  SourceLifetime replaced_lifetime = SourceLifetime::daemon;
  std::chrono::milliseconds replaced_linger{0};
  if (generated) {
    do {
      spec->id = std::string(spec->kind.name()) + ":" + std::to_string(++generated_);
    } while (contains(spec->id));
  } else if (contains(spec->id)) {
    EventSource* holder = nullptr;
    for (EventSource* k : kinds_) {
      if (k->contains(spec->id)) holder = k;
    }
    if (holder == nullptr || holder->runtime(spec->id) != true) {
      return Error{"id: \"" + spec->id + "\" is already used by a source of the configuration",
                   ErrorCode::invalid_params};
    }
    Sharing::Entry* e = sh.find(spec->id);
    const bool equal = e != nullptr && e->spec->kind == spec->kind && e->spec->same_as(*spec) &&
                       e->lifetime == how.lifetime && e->linger == how.linger;
    if (equal) {
      if (how.declarer) {
        Sharing::stop_linger(*e);
        sh.add_declarer(spec->id, *e, *how.declarer);
      }
      out.id = spec->id;
      out.joined = true;
      return out;
    }
    if (!how.replace) {
      std::string why = e != nullptr ? what_differs(*e->spec, e->lifetime, e->linger, *spec, how)
                                     : "it was added under a generated id, and cannot be joined";
      return Error{"id: \"" + spec->id + "\" is taken by a run-time " +
                       std::string(holder->schema().noun()) + " that differs (" + why +
                       "); replace: true replaces it",
                   ErrorCode::source_conflict};
    }
    // Replace: the old source goes, its declarers stay declarers of the new one (they still want
    // "the source under this id").
    if (e != nullptr) {
      inherited = e->declarers;
      replaced_spec = e->spec;
      replaced_lifetime = e->lifetime;
      replaced_linger = e->linger;
    }
    holder->remove(spec->id);
    drop_sharing(spec->id);
    out.replaced = true;
  }
  if (!out.replaced && count() >= limit_) {
    return Error{"limits.sources (" + std::to_string(limit_) + ") reached",
                 ErrorCode::limit_reached};
  }
  if (auto r = kind->add(*spec, /*from_config=*/false); !r) {
    if (replaced_spec) {
      // Put the replaced one back (with a new phase) rather than leave nothing under its id.
      if (EventSource* old = find_kind(replaced_spec->kind);
          old != nullptr && old->add(*replaced_spec, /*from_config=*/false) &&
          sh.record(replaced_spec, replaced_lifetime, replaced_linger, inherited)) {
        start_linger(replaced_spec->id);
      }
    }
    return r.error();
  }
  out.id = spec->id;
  if (out.replaced) spdlog::info("source {} replaced", out.id);
  if ((!generated || how.lifetime == SourceLifetime::clients) && kind->contains(out.id)) {
    std::set<std::uint64_t> who = std::move(inherited);
    if (how.declarer) who.insert(*how.declarer);
    if (sh.record(spec, how.lifetime, how.linger, who)) start_linger(out.id);
  }
  return out;
}

void SourceRegistry::drop_sharing(const std::string& id) {
  Sharing& sh = *sharing_;
  auto it = sh.entries.find(id);
  if (it == sh.entries.end()) return;
  for (std::uint64_t c : it->second.declarers) sh.forget_declarer(id, c);
  sh.entries.erase(it);  // its timer's wait completes with operation_aborted
}

void SourceRegistry::start_linger(const std::string& id) {
  Sharing::Entry* e = sharing_->find(id);
  if (e == nullptr || stopped_) return;
  ++e->epoch;
  e->lingering_until = context_.clock.wall_now() + e->linger;
  if (!e->timer) e->timer = std::make_unique<boost::asio::steady_timer>(context_.io);
  e->timer->expires_after(e->linger);
  e->timer->async_wait([this, id, epoch = e->epoch](boost::system::error_code ec) {
    if (ec) return;
    Sharing::Entry* now = sharing_->find(id);
    if (now == nullptr || now->epoch != epoch || !now->declarers.empty()) return;
    spdlog::info("source {}: its last client left {}ms ago (lifetime: clients); removing it", id,
                 now->linger.count());
    (void)remove(id);
  });
  spdlog::info("source {}: its last client left; removed in {}ms unless one declares it again", id,
               e->linger.count());
}

void SourceRegistry::client_left(std::uint64_t client) {
  if (stopped_) return;
  Sharing& sh = *sharing_;
  auto it = sh.by_client.find(client);
  if (it == sh.by_client.end()) return;
  std::set<std::string> ids = std::move(it->second);
  sh.by_client.erase(it);
  for (const std::string& id : ids) {
    Sharing::Entry* e = sh.find(id);
    if (e == nullptr) continue;
    e->declarers.erase(client);
    if (!contains(id)) {
      drop_sharing(id);  // it retired by itself
    } else if (e->declarers.empty() && e->lifetime == SourceLifetime::clients) {
      start_linger(id);
    }
  }
}

Result<Left> SourceRegistry::leave(std::string_view id, std::uint64_t client) {
  Sharing& sh = *sharing_;
  Sharing::Entry* e = sh.find(id);
  if (e != nullptr && !contains(id)) {
    drop_sharing(std::string(id));
    e = nullptr;
  }
  if (e != nullptr && e->declarers.contains(client)) {
    e->declarers.erase(client);
    sh.forget_declarer(std::string(id), client);
    if (!e->declarers.empty()) {
      spdlog::info("source {}: client {} left it; {} client(s) still declare it", id, client,
                   e->declarers.size());
      return Left::left;
    }
  } else if (e != nullptr && !e->declarers.empty()) {
    return Error{"the source \"" + std::string(id) + "\" is declared by " +
                     std::to_string(e->declarers.size()) +
                     " other connected client(s); force: true removes it for all (admin)",
                 ErrorCode::source_conflict};
  }
  if (auto r = remove(id); !r) return r.error();
  return Left::removed;
}

std::optional<SignalId> SourceRegistry::signal_of(std::string_view id) const {
  if (const Sharing::Entry* e = sharing_->find(id); e != nullptr && contains(id)) {
    return e->spec->signal;
  }
  // Not tracked (a configured source, or one with a generated id): asked of its kind's status,
  // which lists them all. Only a non-admin's remove_source comes here.
  for (const EventSource* k : kinds_) {
    if (!k->contains(id)) continue;
    std::vector<SourceStatus> all;
    k->status(all, k->count());
    for (const SourceStatus& s : all) {
      if (s.id == id) return s.signal;
    }
  }
  return std::nullopt;
}

Result<void> SourceRegistry::remove(std::string_view id) {
  for (EventSource* k : kinds_) {
    std::optional<bool> runtime = k->runtime(id);
    if (!runtime) continue;
    if (!k->remove(id)) {
      return Error{"the source \"" + std::string(id) +
                       "\" cannot be removed (it is configured in " +
                       (k->schema().config_key().empty()
                            ? std::string("its plugin's settings")
                            : "`" + std::string(k->schema().config_key()) + "`") +
                       ")",
                   ErrorCode::invalid_params};
    }
    drop_sharing(std::string(id));
    spdlog::info("source {} removed", id);
    return ok();
  }
  return Error{"no source with id \"" + std::string(id) + "\"", ErrorCode::not_found};
}

std::vector<std::pair<std::string, std::size_t>> SourceRegistry::counts() const {
  std::vector<std::pair<std::string, std::size_t>> out;
  for (const EventSource* k : kinds_) {
    std::string_view key = k->schema().config_key();
    out.emplace_back(std::string(key.empty() ? k->kind().name() : key), k->count());
  }
  return out;
}

std::vector<SourceStatus> SourceRegistry::list(std::size_t limit) const {
  std::vector<SourceStatus> out;
  for (const EventSource* k : kinds_) k->status(out, limit);
  for (SourceStatus& s : out) {
    if (s.from_config) continue;
    const Sharing::Entry* e = sharing_->find(s.id);
    if (e == nullptr) continue;
    s.lifetime = e->lifetime;
    s.declarers = e->declarers.size();
    s.linger = e->linger;
    s.lingering_until = e->lingering_until;
  }
  return out;
}

void SourceRegistry::status_sections(spec::Node& status) const {
  for (const EventSource* k : kinds_) k->status_sections(status);
}

void SourceRegistry::metrics(std::vector<MetricSample>& out) const {
  // tocsin_sources{kind,state}: a kind reports the states other than ok it has (file monitors
  // degraded, `at` entries fired...); the rest of its sources are ok.
  static const std::string kSources = "tocsin_sources";
  static const std::string kHelp = "Sources, by kind and state.";
  for (const EventSource* k : kinds_) {
    const std::size_t first = out.size();
    k->metrics(out);
    const std::string kind(k->kind().name());
    double not_ok = 0;
    for (std::size_t i = first; i < out.size(); ++i) {
      if (out[i].name != kSources) continue;
      not_ok += out[i].value;
      out[i].help = kHelp;
      out[i].labels.insert(out[i].labels.begin(), {"kind", kind});
    }
    out.push_back(MetricSample{kSources,
                               kHelp,
                               false,
                               {{"kind", kind}, {"state", "ok"}},
                               static_cast<double>(k->count()) - not_ok});
  }
}

std::string SourceRegistry::summary() const {
  std::string out;
  for (const auto& [name, n] : counts()) {
    if (!out.empty()) out += ", ";
    out += std::to_string(n) + " " + name;
  }
  return out;
}

void SourceRegistry::stop() {
  stopped_ = true;
  for (auto& [id, e] : sharing_->entries) {
    ++e.epoch;
    if (e.timer) e.timer->cancel();
  }
  for (EventSource* k : kinds_) k->stop();
}

}  // namespace tocsin

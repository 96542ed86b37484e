// source_registry.cc — SourceRegistry and the defaults of EventSource
// (include/tocsin/event_source.h).
#include <algorithm>
#include <set>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "tocsin/event_source.h"

namespace tocsin {

SourceKind source_kind_of(const SourceSpec& spec) { return spec.kind; }

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

SourceRegistry::SourceRegistry(SourceContext context) : context_(std::move(context)) {
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
  EventSource* kind = find_kind(spec->kind);
  if (kind == nullptr) {
    return Error{"no source kind \"" + std::string(spec->kind.name()) + "\"", ErrorCode::internal};
  }
  if (spec->id.empty()) {
    do {
      spec->id = std::string(spec->kind.name()) + ":" + std::to_string(++generated_);
    } while (contains(spec->id));
  } else if (contains(spec->id)) {
    return Error{"id: \"" + spec->id + "\" is already used by another source",
                 ErrorCode::invalid_params};
  }
  if (count() >= limit_) {
    return Error{"limits.sources (" + std::to_string(limit_) + ") reached",
                 ErrorCode::limit_reached};
  }
  if (auto r = kind->add(*spec, /*from_config=*/false); !r) return r.error();
  return spec->id;
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
  return out;
}

void SourceRegistry::status_sections(spec::Node& status) const {
  for (const EventSource* k : kinds_) k->status_sections(status);
}

void SourceRegistry::metrics(std::vector<MetricSample>& out) const {
  for (const EventSource* k : kinds_) k->metrics(out);
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
  for (EventSource* k : kinds_) k->stop();
}

}  // namespace tocsin

#include "sources/at/at_source.h"

#include <array>

#include <boost/asio/io_context.hpp>
#include <date/tz.h>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <spdlog/spdlog.h>

#include "cron/expression.h"
#include "sources/wall_timer.h"

namespace tocsin {

namespace asio = boost::asio;
using Json = nlohmann::json;
using Seconds = std::chrono::sys_seconds;

namespace {

// How long past its instant the state keeps an entry no longer held, so that the same `add_at`
// after a restart neither fires it again nor misses its catch-up.
constexpr std::chrono::hours kRememberFor{24 * 7};

spec::Node text(std::string s) {
  return spec::Node::scalar(std::move(s), spec::Node::Style::quoted);
}

std::int64_t seconds_of(Seconds t) { return t.time_since_epoch().count(); }

}  // namespace

class AtSource::Impl {
 public:
  enum class State { pending, fired, missed, passed };

  struct Entry {
    config::AtSpec spec;
    bool from_config = false;
    State state = State::pending;
    bool catch_up = false;
    std::optional<Seconds> fired_at;
  };

  // What an entry is remembered by across restarts.
  struct Remembered {
    Seconds instant{};
    Seconds seen{};  // when the daemon first had the entry
    std::optional<Seconds> fired;
  };

  explicit Impl(SourceContext& context)
      : context_(context),
        timer_(context.io, "at", /*notice_clock_set=*/false, [this](bool) {
          if (!stopped_) fire();
        }) {}

  Seconds now() const {
    return std::chrono::time_point_cast<std::chrono::seconds>(context_.clock.wall_now());
  }

  Result<void> apply_config(std::span<const SourceSpec* const> specs, const std::string& state_dir,
                            bool at_start) {
    if (at_start || state_dir != state_dir_) {
      state_dir_ = state_dir;
      load_state();
    }
    std::set<std::string_view> wanted;
    for (const SourceSpec* s : specs) wanted.insert(s->id);
    for (const std::string& id : config_ids()) {
      auto it = entries_.find(id);
      bool keep = wanted.contains(id);
      if (keep) {
        for (const SourceSpec* s : specs) {
          if (s->id == id) keep = it->second.spec.same_as(*s);
        }
      }
      if (!keep) {
        drop(it);
        if (!wanted.contains(id)) forget(id);  // gone from the configuration
      }
    }
    for (const SourceSpec* s : specs) {
      if (entries_.contains(s->id)) continue;  // unchanged: keeps its state
      (void)admit(static_cast<const config::AtSpec&>(*s), /*from_config=*/true);
    }
    persist();
    rearm();
    return ok();
  }

  Result<void> add(const config::AtSpec& spec) {
    if (auto r = admit(spec, /*from_config=*/false); !r) return r;
    persist();
    rearm();
    return ok();
  }

  bool remove(std::string_view id) {
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    drop(it);
    forget(id);
    persist();
    rearm();
    return true;
  }

  const Entry* find(std::string_view id) const {
    auto it = entries_.find(id);
    return it == entries_.end() ? nullptr : &it->second;
  }

  std::vector<std::string> config_ids() const {
    std::vector<std::string> out;
    for (const auto& [id, e] : entries_) {
      if (e.from_config) out.push_back(id);
    }
    return out;
  }

  std::size_t count() const { return entries_.size(); }
  // Entries fired, missed and passed (the rest are pending: "ok").
  std::array<std::size_t, 3> retired_counts() const {
    std::array<std::size_t, 3> n{};
    for (const auto& [id, e] : entries_) {
      if (e.state == State::fired) ++n[0];
      if (e.state == State::missed) ++n[1];
      if (e.state == State::passed) ++n[2];
    }
    return n;
  }

  void status(std::vector<SourceStatus>& out, std::size_t limit) const {
    std::size_t n = 0;
    for (const auto& [id, e] : entries_) {
      if (n++ >= limit) break;
      const date::time_zone* zone = cron::find_zone(e.spec.tz, nullptr);
      SourceStatus s;
      s.id = id;
      s.kind = kAtKind;
      s.signal = e.spec.signal;
      s.from_config = e.from_config;
      s.iterations = 1;
      s.fired = e.fired_at ? 1 : 0;
      if (e.state == State::pending) s.next = std::chrono::system_clock::time_point(e.spec.instant);
      if (e.fired_at) s.last = std::chrono::system_clock::time_point(*e.fired_at);
      s.schedule = e.spec.time + (e.spec.tz.empty() ? "" : " " + e.spec.tz);
      s.state = e.state == State::pending  ? "ok"
                : e.state == State::fired  ? "fired"
                : e.state == State::missed ? "missed"
                                           : "passed";
      if (e.state == State::missed) s.why = "the daemon was down at the instant (missed: skip)";
      if (e.state == State::passed) s.why = "the instant had passed when the entry was given";
      s.details.add("time", text(zone ? cron::format_in_zone(e.spec.instant, *zone) : e.spec.time));
      s.details.add("zone", text(zone ? std::string(zone->name()) : e.spec.tz));
      s.details.add("missed_policy", text(e.spec.missed == config::Missed::once ? "once" : "skip"));
      out.push_back(std::move(s));
    }
  }

  StateFileHealth state_health() const { return writer_.health(); }

  void stop() {
    stopped_ = true;
    persist();
    writer_.flush();
    timer_.close();
  }

 private:
  using Entries = std::map<std::string, Entry, std::less<>>;

  // Takes an entry in: pending, or (its instant past) fired before, missed, or passed.
  Result<void> admit(const config::AtSpec& spec, bool from_config) {
    const Seconds t = now();
    Entry e{spec, from_config};
    e.spec.where = {};
    std::optional<Remembered> known;
    if (auto r = remembered_.find(spec.id);
        r != remembered_.end() && r->second.instant == spec.instant) {
      known = r->second;
    }
    if (spec.instant > t) {
      if (!known) {
        remembered_[spec.id] = Remembered{spec.instant, t, std::nullopt};
        dirty_ = true;
      }
    } else if (known && known->fired) {
      e.state = State::fired;
      e.fired_at = known->fired;
      if (!from_config) {
        spdlog::info("at {}: fired at {} already; not again", spec.id,
                     format_rfc3339(std::chrono::system_clock::time_point(*known->fired)));
        return ok();  // a run-time entry that fired retires
      }
    } else if (known && known->seen < spec.instant) {
      // Seen before its instant, which passed while the daemon was down.
      if (spec.missed == config::Missed::once) {
        spdlog::info(
            "at {}: its instant {} passed while the daemon was down; firing it now "
            "(missed: once)",
            spec.id, spec.time);
        e.catch_up = true;
      } else {
        spdlog::warn(
            "at {}: its instant {} passed while the daemon was down; missed: skip drops it",
            spec.id, spec.time);
        e.state = State::missed;
      }
    } else if (from_config) {
      spdlog::info("at {}: its instant {} had passed when it was configured; it does not fire",
                   spec.id, spec.time);
      e.state = State::passed;
    } else {
      return Error{"time: " + spec.time + " has passed (it is " +
                       format_rfc3339(std::chrono::system_clock::time_point(t)) + ")",
                   ErrorCode::invalid_params};
    }
    auto [it, fresh] = entries_.insert_or_assign(spec.id, std::move(e));
    if (it->second.state == State::pending) queue_.emplace(seconds_of(spec.instant), spec.id);
    return ok();
  }

  void drop(Entries::iterator it) {
    queue_.erase({seconds_of(it->second.spec.instant), it->first});
    entries_.erase(it);
  }

  void forget(std::string_view id) {
    if (auto r = remembered_.find(std::string(id)); r != remembered_.end()) {
      remembered_.erase(r);
      dirty_ = true;
    }
  }

  // ---- the kernel timer ----

  void rearm() {
    if (stopped_) return;
    timer_.arm(queue_.empty() ? std::nullopt
                              : std::optional<std::int64_t>(queue_.begin()->first * 1000));
  }

  void fire() {
    const Seconds t = now();
    std::vector<std::string> due;
    for (auto it = queue_.begin(); it != queue_.end() && it->first <= seconds_of(t); ++it) {
      due.push_back(it->second);
    }
    for (const std::string& id : due) {
      auto it = entries_.find(id);
      if (it == entries_.end() || it->second.state != State::pending) continue;
      Entry& e = it->second;
      queue_.erase({seconds_of(e.spec.instant), id});
      e.state = State::fired;
      e.fired_at = t;
      Remembered& r = remembered_[id];
      r.instant = e.spec.instant;
      if (r.seen == Seconds{}) r.seen = t;
      r.fired = t;
      dirty_ = true;
      const date::time_zone* zone = cron::find_zone(e.spec.tz, nullptr);
      Json payload{{"scheduled", zone ? cron::format_in_zone(e.spec.instant, *zone) : e.spec.time},
                   {"zone", zone ? std::string(zone->name()) : e.spec.tz},
                   {"late_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                   context_.clock.wall_now() -
                                   std::chrono::system_clock::time_point(e.spec.instant))
                                   .count()},
                   {"catch_up", e.catch_up}};
      const SignalId signal = e.spec.signal;
      if (!e.from_config) {
        entries_.erase(it);  // a run-time entry retires once it fired
        spdlog::info("at {}: fired; retired", id);
      }
      persist();
      context_.dispatcher.raise(signal, SourceRef{kAtKind, id}, payload.dump(), 1);
      if (stopped_) return;
    }
    rearm();
  }

  // ---- the state file ----

  std::string state_path() const { return state_dir_ + "/" + kStateFile; }

  void load_state() {
    remembered_.clear();
    if (state_dir_.empty()) return;
    const std::string path = state_path();
    bool corrupt = false;
    auto entries = read_state(
        path, "at state", "at",
        [](const Json& v) {
          return v.is_object() && v.contains("time") && v["time"].is_number_integer() &&
                 v.contains("seen") && v["seen"].is_number_integer();
        },
        "entries start afresh", &corrupt);
    if (corrupt) {
      dirty_ = true;
      return;
    }
    for (const auto& [id, v] : entries) {
      Remembered r{Seconds{std::chrono::seconds{v["time"].get<std::int64_t>()}},
                   Seconds{std::chrono::seconds{v["seen"].get<std::int64_t>()}}, std::nullopt};
      if (auto f = v.find("fired"); f != v.end() && f->is_number_integer()) {
        r.fired = Seconds{std::chrono::seconds{f->get<std::int64_t>()}};
      }
      remembered_.emplace(id, r);
    }
    if (!remembered_.empty()) {
      spdlog::info("at state {}: {} remembered entr{}", path, remembered_.size(),
                   remembered_.size() == 1 ? "y" : "ies");
    }
  }

  void persist() {
    // Entries no longer held (run-time ones that fired, or were not added again after a
    // restart) are remembered for a while past their instant, then forgotten.
    const Seconds t = now();
    for (auto it = remembered_.begin(); it != remembered_.end();) {
      bool old = !entries_.contains(it->first) && it->second.instant + kRememberFor < t;
      if (old) {
        it = remembered_.erase(it);
        dirty_ = true;
      } else {
        ++it;
      }
    }
    if (!dirty_) return;
    dirty_ = false;
    if (state_dir_.empty()) return;
    Json at = Json::object();
    for (const auto& [id, r] : remembered_) {
      Json entry{{"time", seconds_of(r.instant)},
                 {"seen", seconds_of(r.seen)},
                 {"fired", r.fired ? Json(seconds_of(*r.fired)) : Json()},
                 {"time_iso", format_rfc3339(std::chrono::system_clock::time_point(r.instant))}};
      at[id] = std::move(entry);
    }
    writer_.submit(state_dir_, state_path(), state_text("at", std::move(at)));
  }

  SourceContext& context_;
  WallTimer timer_;
  Entries entries_;
  std::set<std::pair<std::int64_t, std::string>> queue_;  // pending: (instant, id)
  std::map<std::string, Remembered> remembered_;
  std::string state_dir_;
  StateWriter writer_{"at state"};
  bool stopped_ = false;
  bool dirty_ = false;
};

AtSource::AtSource(SourceContext& context) : impl_(std::make_unique<Impl>(context)) {}
AtSource::~AtSource() = default;

Result<void> AtSource::apply_config(std::span<const SourceSpec* const> specs,
                                    const SourceSettings& settings, bool at_start) {
  return impl_->apply_config(specs, settings.state_dir, at_start);
}
Result<void> AtSource::add(const SourceSpec& spec, bool from_config) {
  if (from_config) {
    return Error{"at entries of the configuration are added by apply_config", ErrorCode::internal};
  }
  return impl_->add(static_cast<const config::AtSpec&>(spec));
}
bool AtSource::remove(std::string_view id) { return impl_->remove(id); }
bool AtSource::contains(std::string_view id) const { return impl_->find(id) != nullptr; }
bool AtSource::unchanged(const SourceSpec& spec) const {
  const Impl::Entry* e = impl_->find(spec.id);
  return e != nullptr && e->from_config && e->spec.same_as(spec);
}
std::optional<bool> AtSource::runtime(std::string_view id) const {
  const Impl::Entry* e = impl_->find(id);
  if (e == nullptr) return std::nullopt;
  return !e->from_config;
}
std::vector<std::string> AtSource::config_ids() const { return impl_->config_ids(); }
std::size_t AtSource::count() const { return impl_->count(); }
void AtSource::status(std::vector<SourceStatus>& out, std::size_t limit) const {
  impl_->status(out, limit);
}
void AtSource::status_sections(spec::Node& status) const {
  status.add("at_state", health_node(impl_->state_health()));
}
void AtSource::metrics(std::vector<MetricSample>& out) const {
  auto n = impl_->retired_counts();
  const char* states[] = {"fired", "missed", "passed"};
  for (std::size_t i = 0; i < n.size(); ++i) {
    out.push_back({"tocsin_sources", "", false, {{"state", states[i]}}, static_cast<double>(n[i])});
  }
  state_file_metric(impl_->state_health(), "at", out);
}
void AtSource::stop() { impl_->stop(); }

const SourceKindEntry& tocsin_source_kind_at() {
  static const SourceKindEntry entry{
      &at_schema(), [](SourceContext& c) { return std::unique_ptr<EventSource>(new AtSource(c)); }};
  return entry;
}

}  // namespace tocsin

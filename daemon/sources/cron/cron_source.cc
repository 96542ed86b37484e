#include "sources/cron/cron_source.h"

#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <date/tz.h>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <spdlog/spdlog.h>
#include <utility>

#include "sources/wall_timer.h"

namespace tocsin {

namespace asio = boost::asio;
using Json = nlohmann::json;

namespace {

std::string payload(const cron::Fire& f) {
  Json p{{"scheduled", cron::format_in_zone(f.scheduled, *f.zone)},
         {"zone", f.zone->name()},
         {"late_ms", std::max<std::int64_t>(f.late_ms, 0)},
         {"missed", f.missed},
         {"catch_up", f.catch_up}};
  return p.dump();
}

Result<void> validate(const config::CronSpec& spec) {
  cron::Parsed parsed = spec.uwsgi ? cron::uwsgi(*spec.uwsgi) : cron::parse(spec.schedule);
  if (!parsed.schedule) {
    return Error{config::to_string(spec.where) + ": cron job `" + spec.id + "`: " +
                     parsed.error.message,
                 ErrorCode::invalid_params};
  }
  std::string why;
  const std::string& zone = !parsed.schedule->zone.empty() ? parsed.schedule->zone : spec.tz;
  if (cron::find_zone(zone, &why) == nullptr) {
    return Error{config::to_string(spec.where) + ": cron job `" + spec.id + "`: " + why,
                 ErrorCode::invalid_params};
  }
  return ok();
}

spec::Node number(std::uint64_t n) {
  return spec::Node::scalar(std::to_string(n), spec::Node::Style::number);
}
spec::Node text(std::string s) { return spec::Node::scalar(std::move(s), spec::Node::Style::quoted); }

}  // namespace

class CronSource::Impl {
 public:
  explicit Impl(SourceContext& context)
      : io_(context.io),
        dispatcher_(context.dispatcher),
        clock_(context.clock),
        rng_(std::random_device{}()),
        scheduler_([this](std::int64_t bound) {
          return std::uniform_int_distribution<std::int64_t>(0, bound)(rng_);
        }),
        timer_(context.io, "cron", /*notice_clock_set=*/true,
               [this](bool clock_set) {
                 if (!stopped_) fire(clock_set);
               }),
        claimer_(context.claimer),
        claims_available_(context.claims_available) {}


  std::int64_t now_ms() const { return clock_.now_ns(ClockId::realtime) / 1000000; }

  Result<void> check_config(std::span<const SourceSpec* const> jobs) const {
    for (const SourceSpec* spec : jobs) {
      if (auto r = validate(static_cast<const config::CronSpec&>(*spec)); !r) return r;
    }
    return ok();
  }

  Result<void> apply_config(std::span<const SourceSpec* const> specs,
                            const std::string& state_dir, bool at_start) {
    if (auto r = check_config(specs); !r) return r;
    if (at_start || state_dir != state_dir_) {
      state_dir_ = state_dir;
      load_state();
    }
    for (const auto& [id, slot] : scheduler_.last_slots()) saved_[id] = slot;
    for (const std::string& id : scheduler_.ids(/*from_config=*/true)) {
      auto it = std::find_if(specs.begin(), specs.end(),
                             [&](const SourceSpec* s) { return s->id == id; });
      if (it == specs.end() || !(*it)->same_as(*scheduler_.spec(id))) scheduler_.remove(id);
      if (it == specs.end()) saved_.erase(id);  // gone from the configuration: forget it
    }
    const std::int64_t now = now_ms();
    for (const SourceSpec* s : specs) {
      const auto& spec = static_cast<const config::CronSpec&>(*s);
      if (scheduler_.contains(spec.id)) continue;
      if (auto r = scheduler_.add(spec, true, now, saved_for(spec.id), at_start); !r) {
        spdlog::error("cron job {}: {}", spec.id, r.error().message);  // checked above
      }
      saved_.erase(spec.id);
    }
    // What is left belongs to no configured job: a run-time job (the Python client's, say) that
    // is added again after the restart still catches up.
    persist();
    rearm();
    return ok();
  }

  Result<void> add(const config::CronSpec& spec) {
    cron::Parsed parsed = cron::parse(spec.schedule);  // uwsgi specs have no text: no @reboot
    if (!spec.uwsgi && parsed.schedule && parsed.schedule->reboot) {
      return Error{"@reboot fires once when the daemon starts; put it in the configuration file",
                   ErrorCode::invalid_params};
    }
    if (spec.clustered && !(claims_available_ && claims_available_())) {
      return Error{"cluster: true needs a plugin that makes cluster claims (pgnotify)",
                   ErrorCode::invalid_params};
    }
    if (auto r = scheduler_.add(spec, false, now_ms(), saved_for(spec.id), false); !r) return r;
    saved_.erase(spec.id);
    persist();
    rearm();
    return ok();
  }

  bool remove(std::string_view id) {
    if (!scheduler_.remove(std::string(id))) return false;
    saved_.erase(std::string(id));
    persist();
    rearm();
    return true;
  }

  void stop() {
    stopped_ = true;
    persist();
    writer_.flush();
    timer_.close();
  }

  std::optional<cron::SavedSlot> saved_for(const std::string& id) const {
    auto it = saved_.find(id);
    if (it == saved_.end()) return std::nullopt;
    return it->second;
  }

  // ---- the kernel timer ----

  void rearm() {
    if (stopped_ || firing_) return;
    timer_.arm(scheduler_.next_deadline());
  }

  void fire(bool clock_set) {
    if (stopped_) return;
    if (clock_set) spdlog::info("cron: the wall clock was set; re-planning {} job(s)", scheduler_.size());
    firing_ = true;
    std::vector<cron::Fire> fires;
    scheduler_.collect(now_ms(), clock_set, fires, kFireBatch);
    for (const auto& [id, count] : scheduler_.skipped()) {
      spdlog::warn("cron job {}: {} slot(s) missed (downtime, suspend or a clock step); "
                   "missed: skip drops them", id, count);
    }
    persist();
    for (const auto& f : fires) {
      if (f.catch_up) {
        spdlog::info("cron job {}: catch-up for {} missed slot(s), the latest {}", f.id, f.missed,
                     cron::format_in_zone(f.scheduled, *f.zone));
      }
      if (f.reboot) spdlog::info("cron job {}: @reboot, fired at start", f.id);
      if (!scheduler_.contains(f.id)) {
        spdlog::info("cron job {}: retired after {} iteration(s)", f.id, f.iteration);
      }
      if (f.cluster) {
        claim_and_raise(f);
      } else {
        dispatcher_.raise(f.signal, SourceRef{SourceKind::cron, f.id}, payload(f), f.iteration);
      }
      if (stopped_) return;
    }
    firing_ = false;
    if (fires.size() == kFireBatch) {
      asio::post(io_, [this] { fire(false); });
      return;
    }
    rearm();
  }

  // A cluster job's slot fires here only if this daemon wins it (docs/cluster.md).
  void claim_and_raise(const cron::Fire& f) {
    if (!claimer_) {
      spdlog::warn("cron job {}: cluster: true but no plugin makes claims; slot not fired", f.id);
      return;
    }
    std::weak_ptr<bool> alive = alive_;
    const std::int64_t slot = f.scheduled.time_since_epoch().count();
    claimer_(f.id, slot, [this, alive, f](bool claimed, const std::string& why) {
      if (alive.expired() || stopped_) return;
      if (claimed) {
        dispatcher_.raise(f.signal, SourceRef{SourceKind::cron, f.id}, payload(f), f.iteration);
      } else if (why == "claimed by another daemon") {
        spdlog::debug("cron job {}: slot {} fired by another daemon", f.id,
                      cron::format_in_zone(f.scheduled, *f.zone));
      } else {
        spdlog::warn("cron job {}: slot {} not fired: {}", f.id,
                     cron::format_in_zone(f.scheduled, *f.zone), why);
      }
    });
  }

  StateFileHealth state_health() const { return writer_.health(); }
  const cron::CronScheduler& scheduler() const { return scheduler_; }

  // ---- the state file ----

  std::string state_path() const { return state_dir_ + "/" + kStateFile; }

  void load_state() {
    saved_.clear();
    if (state_dir_.empty()) return;
    const std::string path = state_path();
    bool corrupt = false;
    auto entries = read_state(
        path, "cron state", "jobs",
        [](const Json& v) {
          return v.is_object() && v.contains("schedule") && v["schedule"].is_string() &&
                 v.contains("zone") && v["zone"].is_string() && v.contains("last") &&
                 v["last"].is_number_integer();
        },
        "missed: once jobs start afresh", &corrupt);
    if (corrupt) {
      state_dirty_ = true;
      return;
    }
    if (entries.empty() && !std::filesystem::exists(path)) return;
    for (const auto& [id, v] : entries) {
      saved_[id] = cron::SavedSlot{v["schedule"].get<std::string>(), v["zone"].get<std::string>(),
                                   cron::Seconds{std::chrono::seconds{v["last"].get<std::int64_t>()}}};
    }
    spdlog::info("cron state {}: {} remembered slot(s)", path, saved_.size());
  }

  void persist() {
    if (!scheduler_.state_dirty() && !state_dirty_) return;
    scheduler_.clear_state_dirty();
    state_dirty_ = false;
    if (state_dir_.empty()) return;
    Json jobs = Json::object();
    std::map<std::string, cron::SavedSlot> slots = saved_;  // not (yet) claimed by a job
    for (auto& [id, slot] : scheduler_.last_slots()) slots[id] = std::move(slot);
    static const date::time_zone* const utc = cron::find_zone("UTC", nullptr);
    for (const auto& [id, slot] : slots) {
      jobs[id] = {{"schedule", slot.schedule},
                  {"zone", slot.zone},
                  {"last", slot.last.time_since_epoch().count()},
                  {"last_iso", cron::format_in_zone(slot.last, *utc)}};  // for a reader
    }
    if (jobs.empty() && !wrote_once_) {
      // Nothing to remember and nothing on disk from us: leave the directory alone.
      struct stat st {};
      if (::stat(state_path().c_str(), &st) != 0) return;
    }
    writer_.submit(state_dir_, state_path(), state_text("jobs", std::move(jobs)));
    wrote_once_ = true;
  }

  asio::io_context& io_;
  Dispatcher& dispatcher_;
  const Clock& clock_;
  std::mt19937_64 rng_;
  cron::CronScheduler scheduler_;
  WallTimer timer_;
  std::map<std::string, cron::SavedSlot> saved_;
  std::string state_dir_;
  StateWriter writer_{"cron state"};
  Claimer claimer_;
  std::function<bool()> claims_available_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool firing_ = false;
  bool stopped_ = false;
  bool state_dirty_ = false;
  bool wrote_once_ = false;
};

CronSource::CronSource(SourceContext& context) : impl_(std::make_unique<Impl>(context)) {}
CronSource::~CronSource() = default;

Result<void> CronSource::check_config(std::span<const SourceSpec* const> specs,
                                      const SourceSettings&) const {
  return impl_->check_config(specs);
}
Result<void> CronSource::apply_config(std::span<const SourceSpec* const> specs,
                                      const SourceSettings& settings, bool at_start) {
  return impl_->apply_config(specs, settings.state_dir, at_start);
}
Result<void> CronSource::add(const SourceSpec& spec, bool from_config) {
  if (from_config) {
    return Error{"cron jobs of the configuration are added by apply_config", ErrorCode::internal};
  }
  return impl_->add(static_cast<const config::CronSpec&>(spec));
}
bool CronSource::remove(std::string_view id) { return impl_->remove(id); }
bool CronSource::contains(std::string_view id) const {
  return impl_->scheduler().contains(std::string(id));
}
bool CronSource::unchanged(const SourceSpec& spec) const {
  const config::CronSpec* mine = impl_->scheduler().spec(spec.id);
  return mine != nullptr && !impl_->scheduler().is_runtime(spec.id) && mine->same_as(spec);
}
std::optional<bool> CronSource::runtime(std::string_view id) const {
  if (!contains(id)) return std::nullopt;
  return impl_->scheduler().is_runtime(std::string(id));
}
std::vector<std::string> CronSource::config_ids() const {
  return impl_->scheduler().ids(/*from_config=*/true);
}
std::size_t CronSource::count() const { return impl_->scheduler().size(); }

void CronSource::status(std::vector<SourceStatus>& out, std::size_t limit) const {
  for (const cron::JobInfo& j : impl_->scheduler().list(limit)) {
    SourceStatus s;
    s.id = j.id;
    s.kind = SourceKind::cron;
    s.signal = j.signal;
    s.from_config = j.from_config;
    s.iterations = j.iterations;
    s.fired = j.fired;
    if (j.next) s.next = std::chrono::system_clock::time_point(j.next->time_since_epoch());
    if (j.last) s.last = std::chrono::system_clock::time_point(j.last->time_since_epoch());
    s.schedule = j.schedule;
    const date::time_zone* zone = cron::find_zone(j.zone, nullptr);
    s.details.add("zone", text(j.zone));
    s.details.add("missed_policy", text(j.missed_policy == config::Missed::once ? "once" : "skip"));
    s.details.add("next", j.next && zone != nullptr ? text(cron::format_in_zone(*j.next, *zone))
                                                     : spec::Node::null());
    s.details.add("missed", number(j.missed));
    out.push_back(std::move(s));
  }
}

void CronSource::status_sections(spec::Node& status) const {
  status.add("cron_state", health_node(impl_->state_health()));
}

void CronSource::metrics(std::vector<MetricSample>& out) const {
  state_file_metric(impl_->state_health(), "cron", out);
}

void CronSource::stop() { impl_->stop(); }

StateFileHealth CronSource::state_health() const { return impl_->state_health(); }

const SourceKindEntry& tocsin_source_kind_cron() {
  static const SourceKindEntry entry{&cron_schema(), [](SourceContext& c) {
                                       return std::unique_ptr<EventSource>(new CronSource(c));
                                     }};
  return entry;
}

}  // namespace tocsin

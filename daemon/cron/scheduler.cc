#include "cron/scheduler.h"

#include <date/tz.h>

#include <algorithm>

namespace tocsin::cron {
namespace {

Seconds floor_seconds(std::int64_t ms) {
  std::int64_t s = ms / 1000;
  if (ms < 0 && ms % 1000 != 0) --s;
  return Seconds{std::chrono::seconds{s}};
}

std::int64_t to_ms(Seconds s) { return s.time_since_epoch().count() * 1000; }

// What a job is remembered and listed by: the expression as written, or the uWSGI form.
std::string text_of(const config::CronSpec& spec, const Schedule& schedule) {
  return spec.uwsgi ? schedule.text : spec.schedule;
}

}  // namespace

struct CronScheduler::Job : TimerNode {
  config::CronSpec spec;
  Schedule schedule;
  const date::time_zone* zone = nullptr;
  bool from_config = false;
  std::optional<Seconds> next_slot;
  std::int64_t deadline_ms = 0;
  std::optional<Seconds> last_fired;  // the latest slot an event stood for
  std::optional<Seconds> remembered;  // `missed: once`: the last slot, or when first seen
  std::uint64_t fired = 0;
  std::uint64_t missed = 0;
};

CronScheduler::CronScheduler(Jitter jitter) : jitter_(std::move(jitter)) {}

CronScheduler::~CronScheduler() {
  for (auto& [id, job] : jobs_) {
    if (job->armed()) queue_.cancel(*job);
  }
}

Result<void> CronScheduler::add(const config::CronSpec& spec, bool from_config,
                                std::int64_t now_ms, const std::optional<SavedSlot>& saved,
                                bool at_start) {
  if (spec.id.empty()) return Error{"a cron job needs an id"};
  if (jobs_.contains(spec.id)) return Error{"the id \"" + spec.id + "\" is already used", ErrorCode::invalid_params};
  Parsed parsed = spec.uwsgi ? uwsgi(*spec.uwsgi) : parse(spec.schedule);
  if (!parsed.schedule) {
    return Error{"schedule: " + parsed.error.message + " (column " +
                     std::to_string(parsed.error.column) + ")",
                 ErrorCode::invalid_params};
  }
  std::string why;
  const std::string& zone_name = !parsed.schedule->zone.empty() ? parsed.schedule->zone : spec.tz;
  const date::time_zone* zone = find_zone(zone_name, &why);
  if (zone == nullptr) return Error{"tz: " + why, ErrorCode::invalid_params};

  auto job = std::make_unique<Job>();
  // A hundred thousand jobs: keep only what reload and status need (docs/BENCHMARKS.md): not the
  // spec's location, which is not even copied (a copy freed at once leaves a hole between jobs).
  config::CronSpec& kept = job->spec;
  kept.kind = spec.kind;
  kept.id = spec.id;
  kept.signal = spec.signal;
  kept.schedule = spec.schedule;
  kept.uwsgi = spec.uwsgi;
  kept.tz = spec.tz;
  kept.jitter = spec.jitter;
  kept.missed = spec.missed;
  kept.iterations = spec.iterations;
  kept.clustered = spec.clustered;
  job->schedule = std::move(*parsed.schedule);
  if (!spec.uwsgi) std::string().swap(job->schedule.text);
  job->zone = zone;
  job->from_config = from_config;
  const Seconds now = floor_seconds(now_ms);
  Job& j = *job;
  jobs_.emplace(spec.id, std::move(job));

  if (j.schedule.reboot) {
    if (at_start) {
      j.next_slot = now;
      j.deadline_ms = now_ms + (spec.jitter.count() > 0 && jitter_ ? jitter_(spec.jitter.count()) : 0);
      queue_.arm(j, j.deadline_ms);
    }
    return ok();
  }
  Seconds from = now;
  if (spec.missed == config::Missed::once) {
    // Slots after the remembered one that passed while the daemon was down are due at once:
    // collect() sees them late and fires one catch-up.
    if (saved && saved->schedule == text_of(j.spec, j.schedule) && saved->zone == zone->name() &&
        saved->last <= now + kBackwardLimit) {
      from = std::min(saved->last, now + kBackwardLimit);
      j.remembered = saved->last;
    } else {
      j.remembered = now;
      state_dirty_ = true;
    }
  }
  if (auto first = next_fire(j.schedule, *zone, from)) arm(j, *first);
  return ok();
}

void CronScheduler::arm(Job& job, Seconds slot) {
  job.next_slot = slot;
  std::int64_t jitter = 0;
  if (job.spec.jitter.count() > 0 && jitter_) jitter = jitter_(job.spec.jitter.count());
  job.deadline_ms = to_ms(slot) + jitter;
  queue_.arm(job, job.deadline_ms);
}

bool CronScheduler::remove(const std::string& id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return false;
  if (it->second->armed()) queue_.cancel(*it->second);
  if (it->second->spec.missed == config::Missed::once) state_dirty_ = true;
  jobs_.erase(it);
  return true;
}

bool CronScheduler::contains(const std::string& id) const { return jobs_.contains(id); }

bool CronScheduler::is_runtime(const std::string& id) const {
  auto it = jobs_.find(id);
  return it != jobs_.end() && !it->second->from_config;
}

const config::CronSpec* CronScheduler::spec(const std::string& id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second->spec;
}

std::optional<std::int64_t> CronScheduler::next_deadline() const {
  if (queue_.empty()) return std::nullopt;
  return queue_.earliest_deadline();
}

void CronScheduler::replan_after_clock_set(std::int64_t now_ms) {
  const Seconds now = floor_seconds(now_ms);
  for (auto& [id, job] : jobs_) {
    Job& j = *job;
    if (!j.next_slot || j.schedule.reboot) continue;
    auto fresh = next_fire(j.schedule, *j.zone, now);
    if (!fresh || *fresh >= *j.next_slot) continue;  // forward steps: collect() sees them late
    // The clock went back. A fixed-time job does not fire again what it already fired (a small
    // step, as an NTP correction); a wildcard job keeps its cadence in the new time.
    Seconds from = now;
    if (j.schedule.fixed_time && j.last_fired && *j.last_fired > now &&
        *j.last_fired - now <= kBackwardLimit) {
      from = *j.last_fired;
    }
    if (j.armed()) queue_.cancel(j);
    if (auto next = next_fire(j.schedule, *j.zone, from)) arm(j, *next);
    if (j.remembered && *j.remembered > now + kBackwardLimit) {
      j.remembered = now;
      state_dirty_ = true;
    }
  }
}

void CronScheduler::collect(std::int64_t now_ms, bool clock_was_set, std::vector<Fire>& out,
                            std::size_t max) {
  skipped_.clear();
  if (clock_was_set) replan_after_clock_set(now_ms);
  const Seconds now = floor_seconds(now_ms);
  while (out.size() < max) {
    TimerNode* node = queue_.pop_due(now_ms);
    if (node == nullptr) break;
    Job& j = static_cast<Job&>(*node);
    const Seconds slot = *j.next_slot;
    const std::int64_t late = now_ms - j.deadline_ms;
    j.next_slot.reset();
    Fire fire{.id = j.spec.id, .signal = j.spec.signal, .scheduled = slot, .late_ms = late,
              .cluster = j.spec.clustered, .zone = j.zone};
    if (j.schedule.reboot) {
      fire.reboot = true;
      fire.iteration = ++j.fired;
      out.push_back(std::move(fire));
      continue;
    }
    // The slots that passed since: counted, never silently merged.
    Seconds latest = slot;
    std::uint64_t extra = 0;
    for (auto n = next_fire(j.schedule, *j.zone, slot); n && *n <= now && extra < kMaxMissedCount;
         n = next_fire(j.schedule, *j.zone, *n)) {
      latest = *n;
      ++extra;
    }
    bool fires = true;
    if (late <= std::chrono::milliseconds(kLateGrace).count()) {
      fire.scheduled = latest;
      fire.missed = extra;
      j.missed += extra;
    } else {
      j.missed += extra + 1;
      if (j.spec.missed == config::Missed::once) {
        fire.scheduled = latest;
        fire.missed = extra + 1;
        fire.catch_up = true;
      } else {
        skipped_.emplace_back(j.spec.id, extra + 1);
        fires = false;
      }
    }
    j.last_fired = latest;
    if (j.spec.missed == config::Missed::once) {
      j.remembered = latest;
      state_dirty_ = true;
    }
    bool retire = false;
    if (fires) {
      fire.iteration = ++j.fired;
      retire = j.spec.iterations != 0 && j.fired >= j.spec.iterations;
      out.push_back(std::move(fire));
    }
    if (retire) {
      if (j.spec.missed == config::Missed::once) state_dirty_ = true;
      jobs_.erase(j.spec.id);  // `j` is gone
      continue;
    }
    if (auto next = next_fire(j.schedule, *j.zone, std::max(latest, now))) arm(j, *next);
  }
}

std::map<std::string, SavedSlot> CronScheduler::last_slots() const {
  std::map<std::string, SavedSlot> out;
  for (const auto& [id, job] : jobs_) {
    if (job->spec.missed != config::Missed::once || !job->remembered) continue;
    out.emplace(id, SavedSlot{text_of(job->spec, job->schedule), job->zone->name(),
                              *job->remembered});
  }
  return out;
}

std::size_t CronScheduler::size() const { return jobs_.size(); }

std::vector<JobInfo> CronScheduler::list(std::size_t limit) const {
  std::vector<JobInfo> out;
  for (const auto& [id, job] : jobs_) {
    if (out.size() >= limit) break;
    out.push_back(JobInfo{.id = id,
                          .signal = job->spec.signal,
                          .schedule = text_of(job->spec, job->schedule),
                          .zone = job->zone->name(),
                          .missed_policy = job->spec.missed,
                          .next = job->next_slot,
                          .last = job->last_fired,
                          .fired = job->fired,
                          .missed = job->missed,
                          .iterations = job->spec.iterations,
                          .from_config = job->from_config});
  }
  return out;
}

std::vector<std::string> CronScheduler::ids(bool from_config) const {
  std::vector<std::string> out;
  for (const auto& [id, job] : jobs_) {
    if (job->from_config == from_config) out.push_back(id);
  }
  return out;
}

}  // namespace tocsin::cron

#include "sources/cron_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <climits>
#include <cstring>
#include <date/tz.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <spdlog/spdlog.h>
#include <sstream>

#include "os/unique_fd.h"

namespace tocsin {

namespace asio = boost::asio;
using Json = nlohmann::json;

namespace {

constexpr std::uint64_t kStateVersion = 1;
constexpr std::size_t kMaxStateBytes = 64u << 20;

bool same_job(const config::CronSpec& a, const config::CronSpec& b) {
  return a.signal == b.signal && a.schedule == b.schedule && a.uwsgi == b.uwsgi && a.tz == b.tz &&
         a.jitter == b.jitter && a.missed == b.missed && a.iterations == b.iterations &&
         a.cluster == b.cluster;
}

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
    return Error{"cron job `" + spec.id + "`: " + parsed.error.message, -32602};
  }
  std::string why;
  const std::string& zone = !parsed.schedule->zone.empty() ? parsed.schedule->zone : spec.tz;
  if (cron::find_zone(zone, &why) == nullptr) {
    return Error{"cron job `" + spec.id + "`: " + why, -32602};
  }
  return ok();
}

}  // namespace

// Writes `text` to `path` so that a crash at any moment leaves the old file or the new one,
// whole: a temp file, fsync, rename, fsync of the directory.
Result<void> write_atomically(const std::string& dir, const std::string& path,
                              const std::string& text) {
  ::mkdir(dir.c_str(), 0755);  // systemd's StateDirectory= makes it; by hand, we do
  const std::string tmp = path + ".tmp";
  os::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return Error{"open " + tmp + ": " + std::strerror(errno)};
  // A half-written temporary file is removed: on a full disk it would hold the space a later
  // write needs.
  auto fail = [&](const std::string& what) {
    Error e{what + " " + tmp + ": " + std::strerror(errno)};
    fd.reset();
    ::unlink(tmp.c_str());
    return e;
  };
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("fsync");
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e{"rename to " + path + ": " + std::strerror(errno)};
    ::unlink(tmp.c_str());
    return e;
  }
  os::UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d) ::fsync(d.get());
  return ok();
}

// The state file is written on a thread of its own: fsync can take a long time on a busy disk,
// and the reactor must never wait for a disk. Only the newest state is written (a newer one
// supersedes one still waiting). flush() writes what is pending and stops the thread.
class StateWriter {
 public:
  ~StateWriter() { flush(); }

  void submit(std::string dir, std::string path, std::string text) {
    {
      std::lock_guard lock(mu_);
      pending_ = Pending{std::move(dir), std::move(path), std::move(text)};
      if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    }
    cv_.notify_one();
  }

  void flush() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mu_);
    stop_ = false;
    if (pending_) write(std::move(*pending_));  // submitted after the thread had stopped
    pending_.reset();
  }

  CronStateHealth health() const {
    std::lock_guard lock(health_mu_);
    return health_;
  }

 private:
  struct Pending {
    std::string dir, path, text;
  };

  void run() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return pending_ || stop_; });
      if (pending_) {
        Pending p = std::move(*pending_);
        pending_.reset();
        lock.unlock();
        write(std::move(p));
        lock.lock();
        continue;
      }
      if (stop_) return;
    }
  }

  // Writes, records how it went for status(), and logs a new error once and the first success
  // after errors.
  void write(Pending p) {
    auto r = write_atomically(p.dir, p.path, p.text);
    std::string error = r ? std::string() : r.error().message;
    std::string previous;
    {
      std::lock_guard lock(health_mu_);
      if (!error.empty() && health_.error.empty()) {
        health_.failing_since = std::chrono::system_clock::now();
      }
      health_.path = p.path;
      previous = std::exchange(health_.error, error);
    }
    if (error.empty()) {
      if (!previous.empty()) spdlog::info("cron state {}: written again", p.path);
    } else if (error != previous) {
      spdlog::error("cron state {}: {}; missed: once cannot survive a restart", p.path, error);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Pending> pending_;
  bool stop_ = false;
  std::thread thread_;
  // How the last write went: written by write() (on the thread, or in flush() with mu_ held, so
  // it has a mutex of its own), read by health() on the reactor's thread.
  mutable std::mutex health_mu_;
  CronStateHealth health_;
};

class CronSource::Impl {
 public:
  Impl(asio::io_context& io, Dispatcher& dispatcher, const Clock& clock)
      : io_(io),
        dispatcher_(dispatcher),
        clock_(clock),
        rng_(std::random_device{}()),
        scheduler_([this](std::int64_t bound) {
          return std::uniform_int_distribution<std::int64_t>(0, bound)(rng_);
        }),
        fd_(io) {}

  ~Impl() { fd_.close(); }

  std::int64_t now_ms() const { return clock_.now_ns(ClockId::realtime) / 1000000; }

  Result<void> check_config(const std::vector<config::CronSpec>& jobs) const {
    for (const auto& spec : jobs) {
      if (auto r = validate(spec); !r) return r;
      if (scheduler_.is_runtime(spec.id)) {
        return Error{"cron job `" + spec.id + "`: the id is taken by a job added at run time"};
      }
    }
    return ok();
  }

  Result<void> apply_config(const std::vector<config::CronSpec>& jobs, const std::string& state_dir,
                            bool at_start) {
    if (auto r = check_config(jobs); !r) return r;
    if (at_start || state_dir != state_dir_) {
      state_dir_ = state_dir;
      load_state();
    }
    for (const auto& [id, slot] : scheduler_.last_slots()) saved_[id] = slot;
    for (const std::string& id : scheduler_.ids(/*from_config=*/true)) {
      auto it = std::find_if(jobs.begin(), jobs.end(),
                             [&](const config::CronSpec& s) { return s.id == id; });
      if (it == jobs.end() || !same_job(*it, *scheduler_.spec(id))) scheduler_.remove(id);
      if (it == jobs.end()) saved_.erase(id);  // gone from the configuration: forget it
    }
    const std::int64_t now = now_ms();
    for (const auto& spec : jobs) {
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
                   -32602};
    }
    if (auto r = scheduler_.add(spec, false, now_ms(), saved_for(spec.id), false); !r) return r;
    saved_.erase(spec.id);
    persist();
    rearm();
    return ok();
  }

  bool remove(const std::string& id) {
    if (!scheduler_.remove(id)) return false;
    saved_.erase(id);
    persist();
    rearm();
    return true;
  }

  void stop() {
    stopped_ = true;
    persist();
    writer_.flush();
    fd_.close();
  }

  std::optional<cron::SavedSlot> saved_for(const std::string& id) const {
    auto it = saved_.find(id);
    if (it == saved_.end()) return std::nullopt;
    return it->second;
  }

  // ---- the kernel timer ----

  void rearm() {
    if (stopped_ || firing_) return;
    auto deadline = scheduler_.next_deadline();
    if (!deadline) {
      if (fd_.is_open() && armed_for_ != LLONG_MAX) {
        itimerspec off{};
        ::timerfd_settime(fd_.native_handle(), 0, &off, nullptr);
        armed_for_ = LLONG_MAX;
      }
      return;
    }
    if (!fd_.is_open()) {
      int fd = ::timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
      if (fd < 0) {
        spdlog::error("cron: timerfd_create: {}; cron jobs cannot fire", std::strerror(errno));
        return;
      }
      fd_.assign(fd);
    }
    if (*deadline == armed_for_ && waiting_) return;
    itimerspec its{};
    const std::int64_t ms = std::max<std::int64_t>(*deadline, 1);
    its.it_value.tv_sec = static_cast<time_t>(ms / 1000);
    its.it_value.tv_nsec = static_cast<long>(ms % 1000) * 1000000;
    if (::timerfd_settime(fd_.native_handle(), TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its,
                          nullptr) != 0) {
      if (errno == ECANCELED) {
        // The clock was set between our last look and now: re-plan at once.
        asio::post(io_, [this] { fire(true); });
        return;
      }
      spdlog::error("cron: timerfd_settime: {}", std::strerror(errno));
      return;
    }
    armed_for_ = *deadline;
    if (!waiting_) {
      waiting_ = true;
      fd_.async_wait(asio::posix::descriptor_base::wait_read, [this](boost::system::error_code ec) {
        waiting_ = false;
        if (ec || stopped_) return;
        std::uint64_t n = 0;
        bool clock_set = false;
        if (::read(fd_.native_handle(), &n, sizeof n) < 0 && errno == ECANCELED) clock_set = true;
        armed_for_ = LLONG_MAX;
        fire(clock_set);
      });
    }
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

  void set_claimer(Claimer claimer) { claimer_ = std::move(claimer); }
  CronStateHealth state_health() const { return writer_.health(); }

  // ---- the state file ----

  std::string state_path() const { return state_dir_ + "/" + kStateFile; }

  void load_state() {
    saved_.clear();
    if (state_dir_.empty()) return;
    const std::string path = state_path();
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      if (errno != ENOENT) spdlog::warn("cron state {}: {}", path, std::strerror(errno));
      return;
    }
    std::ostringstream text;
    text << in.rdbuf();
    std::string why;
    std::map<std::string, cron::SavedSlot> slots;
    if (text.str().size() > kMaxStateBytes) {
      why = "larger than " + std::to_string(kMaxStateBytes) + " bytes";
    } else {
      Json j = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) {
        why = "not valid JSON";
      } else if (!j.is_object() || j.value("version", Json()) != kStateVersion ||
                 !j.contains("jobs") || !j["jobs"].is_object()) {
        why = "not a version 1 state file";
      } else {
        for (const auto& [id, v] : j["jobs"].items()) {
          if (!v.is_object() || !v.contains("schedule") || !v["schedule"].is_string() ||
              !v.contains("zone") || !v["zone"].is_string() || !v.contains("last") ||
              !v["last"].is_number_integer()) {
            why = "the entry for \"" + id + "\" is malformed";
            break;
          }
          slots[id] = cron::SavedSlot{v["schedule"].get<std::string>(),
                                      v["zone"].get<std::string>(),
                                      cron::Seconds{std::chrono::seconds{v["last"].get<std::int64_t>()}}};
        }
      }
    }
    if (!why.empty()) {
      spdlog::error("cron state {}: {}; ignored (missed: once jobs start afresh), kept as {}.corrupt",
                    path, why, path);
      ::rename(path.c_str(), (path + ".corrupt").c_str());
      state_dirty_ = true;
      return;
    }
    saved_ = std::move(slots);
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
    std::string text = Json{{"version", kStateVersion}, {"jobs", std::move(jobs)}}.dump(1) + "\n";
    writer_.submit(state_dir_, state_path(), std::move(text));
    wrote_once_ = true;
  }

  asio::io_context& io_;
  Dispatcher& dispatcher_;
  const Clock& clock_;
  std::mt19937_64 rng_;
  cron::CronScheduler scheduler_;
  asio::posix::stream_descriptor fd_;
  std::map<std::string, cron::SavedSlot> saved_;
  std::string state_dir_;
  StateWriter writer_;
  Claimer claimer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::int64_t armed_for_ = LLONG_MAX;
  bool waiting_ = false;
  bool firing_ = false;
  bool stopped_ = false;
  bool state_dirty_ = false;
  bool wrote_once_ = false;
};

CronSource::CronSource(asio::io_context& io, Dispatcher& dispatcher, const Clock& clock)
    : impl_(std::make_unique<Impl>(io, dispatcher, clock)) {}
CronSource::~CronSource() = default;

Result<void> CronSource::check_config(const std::vector<config::CronSpec>& jobs) const {
  return impl_->check_config(jobs);
}
Result<void> CronSource::apply_config(const std::vector<config::CronSpec>& jobs,
                                      const std::string& state_dir, bool at_start) {
  return impl_->apply_config(jobs, state_dir, at_start);
}
Result<void> CronSource::add(const config::CronSpec& spec) { return impl_->add(spec); }
bool CronSource::remove(const std::string& id) { return impl_->remove(id); }
bool CronSource::contains(const std::string& id) const { return impl_->scheduler_.contains(id); }
bool CronSource::is_runtime(const std::string& id) const {
  return impl_->scheduler_.is_runtime(id);
}
std::size_t CronSource::count() const { return impl_->scheduler_.size(); }
std::vector<cron::JobInfo> CronSource::list(std::size_t limit) const {
  return impl_->scheduler_.list(limit);
}
void CronSource::stop() { impl_->stop(); }
void CronSource::set_claimer(Claimer claimer) { impl_->set_claimer(std::move(claimer)); }
CronStateHealth CronSource::state_health() const { return impl_->state_health(); }

}  // namespace tocsin

#include "sources/file_monitor.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>
#include <unordered_map>

#include "sources/watch_tree.h"

namespace tocsin {

namespace asio = boost::asio;

namespace {

bool same_spec(const config::FileMonitorSpec& a, const config::FileMonitorSpec& b) {
  return a.id == b.id && a.signal == b.signal && a.path == b.path && a.recursive == b.recursive &&
         a.events == b.events && a.match == b.match && a.settle == b.settle &&
         a.max_delay == b.max_delay && a.iterations == b.iterations;
}

FileMonitorState state_of(const fs::Monitor& m) {
  return FileMonitorState{m.spec.id,      m.spec.signal, m.path,          m.spec.recursive,
                          m.degraded,     m.watches,     m.unwatched,     m.spec.iterations,
                          m.batches,      m.from_config};
}

}  // namespace

class FileMonitors::Impl {
 public:
  Impl(asio::io_context& io, Dispatcher& d, const Clock& clock)
      : io_(io), dispatcher_(d), clock_(clock), fd_(io), retry_timer_(io) {}

  ~Impl() { stop(); }

  Result<void> add(const config::FileMonitorSpec& spec, bool from_config) {
    if (stopped_) return Error{"the daemon is stopping"};
    if (auto r = open(); !r) return r;
    auto m = set_->add(spec, from_config);
    if (!m) return m.error();
    spdlog::info("file monitor {}: watching {}{} ({} director{})", spec.id, m.value()->path,
                 spec.recursive ? " recursively" : "", m.value()->watches,
                 m.value()->watches == 1 ? "y" : "ies");
    if (set_->needs_retry()) arm_retry();
    return ok();
  }

  bool remove(const std::string& id) {
    if (!set_ || !set_->remove(id)) return false;
    timers_.erase(id);
    return true;
  }

  bool contains(const std::string& id) const {
    return set_ && set_->monitors().contains(id);
  }

  std::optional<FileMonitorState> find(const std::string& id) const {
    if (!set_) return std::nullopt;
    auto it = set_->monitors().find(id);
    if (it == set_->monitors().end()) return std::nullopt;
    return state_of(*it->second);
  }

  Result<void> check_config(const std::vector<config::FileMonitorSpec>& specs) const {
    if (!set_) return ok();
    for (const auto& s : specs) {
      auto it = set_->monitors().find(s.id);
      if (it != set_->monitors().end() && !it->second->from_config) {
        return Error{config::to_string(s.where) + ": id \"" + s.id +
                     "\" is taken by a file monitor added at run time (remove_source it first)"};
      }
    }
    return ok();
  }

  Result<void> apply_config(const std::vector<config::FileMonitorSpec>& specs) {
    if (auto r = check_config(specs); !r) return r;
    std::vector<std::string> drop;
    if (set_) {
      for (const auto& [id, m] : set_->monitors()) {
        if (!m->from_config) continue;
        auto s = std::find_if(specs.begin(), specs.end(),
                              [&](const config::FileMonitorSpec& x) { return x.id == id; });
        if (s == specs.end() || !same_spec(*s, m->spec)) drop.push_back(id);
      }
    }
    for (const auto& id : drop) remove(id);
    for (const auto& s : specs) {
      if (contains(s.id)) continue;
      if (auto r = add(s, /*from_config=*/true); !r) {
        return Error{config::to_string(s.where) + ": file monitor `" + s.id + "`: " +
                     r.error().message};
      }
    }
    return ok();
  }

  void set_payload_limit(std::uint64_t bytes) {
    cap_ = static_cast<std::size_t>(
        std::clamp<std::uint64_t>(bytes, kMinPayloadCap, kMaxPayloadCap));
  }

  std::size_t count() const { return set_ ? set_->monitors().size() : 0; }
  std::size_t degraded_count() const {
    std::size_t n = 0;
    if (set_) {
      for (const auto& [id, m] : set_->monitors()) n += m->degraded.empty() ? 0 : 1;
    }
    return n;
  }
  std::size_t watch_count() const { return set_ ? set_->watch_count() : 0; }
  std::uint64_t overflow_count() const { return overflows_; }

  std::vector<FileMonitorState> list(std::size_t limit) const {
    std::vector<FileMonitorState> out;
    if (!set_) return out;
    for (const auto& [id, m] : set_->monitors()) {
      if (out.size() >= limit) break;
      out.push_back(state_of(*m));
    }
    return out;
  }

  void stop() {
    stopped_ = true;
    timers_.clear();
    retry_timer_.cancel();
    set_.reset();  // removes its watches while the fd is open
    fs_.reset();
    boost::system::error_code ignored;
    fd_.close(ignored);
  }

 private:
  // The monitors work without an inotify instance too: when none can be made (the per-user
  // instance limit, or the fd limit), every monitor is degraded and says why, and the retry timer
  // tries again. A kernel limit never keeps the daemon from starting.
  Result<void> open() {
    if (set_) return ok();
    fs_ = std::make_unique<fs::SystemFs>(-1);
    set_ = std::make_unique<fs::WatchSet>(*fs_, clock_);
    set_->set_state_log([](const fs::Monitor& m, const std::string& old) {
      if (!m.degraded.empty() && old.empty()) {
        spdlog::warn("file monitor {}: degraded: {}", m.spec.id, m.degraded);
      } else if (!m.degraded.empty()) {
        spdlog::info("file monitor {}: degraded: {}", m.spec.id, m.degraded);
      } else {
        spdlog::info("file monitor {}: ok again (was: {})", m.spec.id, old);
      }
    });
    buf_.resize(256 * 1024);
    make_instance();
    return ok();
  }

  // Makes the inotify instance if there is none yet; false when the kernel still refuses.
  bool make_instance() {
    if (fd_.is_open()) return true;
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (!instance_refused_) {
        spdlog::warn("file monitors: inotify_init1: {} (fs.inotify.max_user_instances, or the "
                     "daemon's open-file limit): the monitors are degraded; trying again every {}s",
                     std::strerror(err), kRetryInterval.count());
      }
      instance_refused_ = true;
      return false;
    }
    if (instance_refused_) spdlog::info("file monitors: the inotify instance is made");
    instance_refused_ = false;
    fd_.assign(fd);
    fs_->set_fd(fd);
    wait();
    return true;
  }

  void wait() {
    if (stopped_ || !fd_.is_open()) return;
    fd_.async_wait(asio::posix::descriptor_base::wait_read, [this](boost::system::error_code ec) {
      if (ec) return;
      drain();
    });
  }

  // Reads everything the kernel has queued (up to kMaxReadsPerTurn reads), then raises what is
  // due. Directories moved out of a tree are only decided on when the queue is empty, so that a
  // MOVED_FROM at the end of one read still finds its MOVED_TO in the next.
  void drain() {
    if (!set_) return;
    bool empty = false;
    for (std::size_t reads = 0; reads < kMaxReadsPerTurn;) {
      ssize_t n = ::read(fd_.native_handle(), buf_.data(), buf_.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) spdlog::error("file monitors: read: {}", std::strerror(errno));
        empty = true;
        break;
      }
      ++reads;
      for (const char* p = buf_.data(); p < buf_.data() + n;) {
        inotify_event ev;
        std::memcpy(&ev, p, sizeof ev);
        const char* name = p + sizeof(inotify_event);
        std::string_view name_view(name, ev.len ? ::strnlen(name, ev.len) : 0);
        p += sizeof(inotify_event) + ev.len;
        if (ev.mask & IN_Q_OVERFLOW) {
          ++overflows_;
          spdlog::warn(
              "file monitors: the inotify queue overflowed (fs.inotify.max_queued_events); "
              "rescanning every monitored tree, the events say overflow: true");
        }
        set_->handle(fs::RawEvent{ev.wd, ev.mask, ev.cookie, name_view});
        if (!set_) return;  // stopped by a handler
      }
    }
    if (empty) set_->end_of_drain();
    flush();
    if (set_ && set_->needs_retry()) arm_retry();
    if (empty) {
      wait();
    } else {
      asio::post(io_, [this] {
        if (!stopped_) drain();
      });
    }
  }

  void flush() {
    if (!set_) return;
    std::vector<std::string> ids;
    for (fs::Monitor* m : set_->take_touched()) ids.push_back(m->spec.id);
    for (const auto& id : ids) schedule(id);
  }

  // Raises the monitor's batch if it is due, else arms its timer for when it is.
  void schedule(const std::string& id) {
    if (!set_) return;
    fs::Monitor* m = set_->find(id);
    if (!m) return;
    auto due = m->batch.due();
    if (!due) return;
    if (*due <= clock_.steady_now()) {
      raise_batch(*m);
      return;
    }
    auto& slot = timers_[id];
    if (!slot) slot = std::make_unique<Timer>(io_);
    if (slot->armed && slot->at <= *due) return;  // fires first; looks again then
    slot->armed = true;
    slot->at = *due;
    slot->timer.expires_at(*due);
    slot->timer.async_wait([this, id, t = slot.get()](boost::system::error_code ec) {
      if (ec) return;
      t->armed = false;
      schedule(id);
    });
  }

  void raise_batch(fs::Monitor& m) {
    fs::Batch batch = m.batch.take();
    const std::string id = m.spec.id;
    const SignalId signal = m.spec.signal;
    const std::uint64_t iteration = ++m.batches;
    const bool last = m.spec.iterations != 0 && iteration >= m.spec.iterations;
    auto payloads = fs::encode_payloads(id, m.path, batch, cap_);
    if (batch.overflow) {
      spdlog::warn("file monitor {}: {} change(s) after the overflow, in {} event(s)", id,
                   batch.changes.size(), payloads.size());
    }
    for (auto& p : payloads) {
      dispatcher_.raise(signal, SourceRef{SourceKind::file, id}, std::move(p), iteration);
    }
    if (last) {
      spdlog::info("file monitor {}: retired after {} iteration(s)", id, iteration);
      remove(id);
    }
  }

  void arm_retry() {
    if (retry_armed_ || stopped_) return;
    retry_armed_ = true;
    retry_timer_.expires_after(kRetryInterval);
    retry_timer_.async_wait([this](boost::system::error_code ec) {
      retry_armed_ = false;
      if (ec || !set_) return;
      make_instance();
      bool more = set_->retry();
      flush();
      if (more) arm_retry();
    });
  }

  struct Timer {
    explicit Timer(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    std::chrono::steady_clock::time_point at{};
    bool armed = false;
  };

  asio::io_context& io_;
  Dispatcher& dispatcher_;
  const Clock& clock_;
  asio::posix::stream_descriptor fd_;
  std::unique_ptr<fs::SystemFs> fs_;
  std::unique_ptr<fs::WatchSet> set_;
  std::vector<char> buf_;
  std::unordered_map<std::string, std::unique_ptr<Timer>> timers_;
  asio::steady_timer retry_timer_;
  bool retry_armed_ = false;
  bool instance_refused_ = false;  // inotify_init1 failed (logged once until it works)
  bool stopped_ = false;
  std::size_t cap_ = kMaxPayloadCap;
  std::uint64_t overflows_ = 0;
};

FileMonitors::FileMonitors(asio::io_context& io, Dispatcher& dispatcher, const Clock& clock)
    : impl_(std::make_unique<Impl>(io, dispatcher, clock)) {}
FileMonitors::~FileMonitors() = default;

Result<void> FileMonitors::add(const config::FileMonitorSpec& spec, bool from_config) {
  return impl_->add(spec, from_config);
}
bool FileMonitors::remove(const std::string& id) { return impl_->remove(id); }
bool FileMonitors::contains(const std::string& id) const { return impl_->contains(id); }
std::optional<FileMonitorState> FileMonitors::find(const std::string& id) const {
  return impl_->find(id);
}
Result<void> FileMonitors::check_config(const std::vector<config::FileMonitorSpec>& m) const {
  return impl_->check_config(m);
}
Result<void> FileMonitors::apply_config(const std::vector<config::FileMonitorSpec>& m) {
  return impl_->apply_config(m);
}
void FileMonitors::set_payload_limit(std::uint64_t bytes) { impl_->set_payload_limit(bytes); }
std::size_t FileMonitors::count() const { return impl_->count(); }
std::size_t FileMonitors::degraded_count() const { return impl_->degraded_count(); }
std::size_t FileMonitors::watch_count() const { return impl_->watch_count(); }
std::uint64_t FileMonitors::overflow_count() const { return impl_->overflow_count(); }
std::vector<FileMonitorState> FileMonitors::list(std::size_t limit) const {
  return impl_->list(limit);
}
void FileMonitors::stop() { impl_->stop(); }

}  // namespace tocsin

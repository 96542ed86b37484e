#include "sources/file/file_source.h"

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

#include "sources/file/change_payload.h"
#include "sources/file/watch_set.h"

namespace tocsin {

namespace asio = boost::asio;

namespace {

spec::Node number(std::uint64_t n) {
  return spec::Node::scalar(std::to_string(n), spec::Node::Style::number);
}
spec::Node text(std::string s) { return spec::Node::scalar(std::move(s), spec::Node::Style::quoted); }
spec::Node boolean(bool b) {
  return spec::Node::scalar(b ? "true" : "false", spec::Node::Style::boolean);
}

SourceStatus status_of(const fs::Monitor& m) {
  SourceStatus s;
  s.id = m.spec.id;
  s.kind = SourceKind::file;
  s.signal = m.spec.signal;
  s.from_config = m.from_config;
  s.iterations = m.spec.iterations;
  s.fired = m.batches;
  s.last = m.last_raised;
  s.schedule = m.path + (m.spec.recursive ? " (recursive)" : "");
  if (!m.degraded.empty()) {
    s.state = "degraded";
    s.why = m.degraded;
  }
  s.details.add("path", text(m.path));
  s.details.add("recursive", boolean(m.spec.recursive));
  s.details.add("watches", number(m.watches));
  s.details.add("unwatched", number(m.unwatched));
  return s;
}

// The entry of `status.file_monitors` (docs/protocol.md).
spec::Node section_entry(const fs::Monitor& m) {
  spec::Node e = spec::Node::mapping();
  e.add("id", text(m.spec.id));
  e.add("signal", number(m.spec.signal));
  e.add("path", text(m.path));
  e.add("recursive", boolean(m.spec.recursive));
  e.add("state", text(m.degraded.empty() ? "ok" : "degraded"));
  e.add("why", text(m.degraded));
  e.add("watches", number(m.watches));
  e.add("unwatched", number(m.unwatched));
  e.add("iterations", number(m.spec.iterations));
  e.add("raised", number(m.batches));
  e.add("from_config", boolean(m.from_config));
  return e;
}

}  // namespace

class FileSource::Impl {
 public:
  explicit Impl(SourceContext& context)
      : io_(context.io),
        dispatcher_(context.dispatcher),
        clock_(context.clock),
        fd_(context.io),
        retry_timer_(context.io) {}

  ~Impl() { stop(); }

  Result<void> add(const config::FileMonitorSpec& spec, bool from_config) {
    if (stopped_) return Error{"the daemon is stopping"};
    if (auto r = open(); !r) return r;
    auto m = set_->add(spec, from_config);
    if (!m) return m.error();
    // Watches, not directories: a monitored file has a watch of its own besides its directory's.
    spdlog::info("file monitor {}: watching {}{} ({} watch{})", spec.id, m.value()->path,
                 spec.recursive ? " recursively" : "", m.value()->watches,
                 m.value()->watches == 1 ? "" : "es");
    if (set_->needs_retry()) arm_retry();
    return ok();
  }

  bool remove(std::string_view id) {
    const std::string key(id);
    if (!set_ || !set_->remove(key)) return false;
    timers_.erase(key);
    return true;
  }

  const fs::Monitor* find(std::string_view id) const {
    if (!set_) return nullptr;
    auto it = set_->monitors().find(std::string(id));
    return it == set_->monitors().end() ? nullptr : it->second.get();
  }

  std::vector<const fs::Monitor*> monitors(std::size_t limit) const {
    std::vector<const fs::Monitor*> out;
    if (!set_) return out;
    for (const auto& [id, m] : set_->monitors()) {
      if (out.size() >= limit) break;
      out.push_back(m.get());
    }
    return out;
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
    m.last_raised = clock_.wall_now();
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

FileSource::FileSource(SourceContext& context) : impl_(std::make_unique<Impl>(context)) {}
FileSource::~FileSource() = default;

Result<void> FileSource::apply_config(std::span<const SourceSpec* const> specs,
                                      const SourceSettings& settings, bool at_start) {
  impl_->set_payload_limit(settings.payload_bytes);
  return EventSource::apply_config(specs, settings, at_start);
}

Result<void> FileSource::add(const SourceSpec& spec, bool from_config) {
  return impl_->add(static_cast<const config::FileMonitorSpec&>(spec), from_config);
}
bool FileSource::remove(std::string_view id) { return impl_->remove(id); }
bool FileSource::contains(std::string_view id) const { return impl_->find(id) != nullptr; }
bool FileSource::unchanged(const SourceSpec& spec) const {
  const fs::Monitor* m = impl_->find(spec.id);
  return m != nullptr && m->from_config && m->spec.same_as(spec);
}
std::optional<bool> FileSource::runtime(std::string_view id) const {
  const fs::Monitor* m = impl_->find(id);
  if (m == nullptr) return std::nullopt;
  return !m->from_config;
}
std::vector<std::string> FileSource::config_ids() const {
  std::vector<std::string> out;
  for (const fs::Monitor* m : impl_->monitors(SIZE_MAX)) {
    if (m->from_config) out.push_back(m->spec.id);
  }
  return out;
}
std::size_t FileSource::count() const { return impl_->count(); }
void FileSource::status(std::vector<SourceStatus>& out, std::size_t limit) const {
  for (const fs::Monitor* m : impl_->monitors(limit)) out.push_back(status_of(*m));
}
void FileSource::status_sections(spec::Node& status) const {
  spec::Node list = spec::Node::sequence();
  for (const fs::Monitor* m : impl_->monitors(100)) list.push_back(section_entry(*m));
  status.add("file_monitors", std::move(list));
}
void FileSource::metrics(std::vector<MetricSample>& out) const {
  out.push_back({"tocsin_file_monitors", "File monitors.", false, {},
                 static_cast<double>(impl_->count())});
  out.push_back({"tocsin_file_monitors_degraded", "File monitors not fully watching their path.",
                 false, {}, static_cast<double>(impl_->degraded_count())});
  out.push_back({"tocsin_sources",
                 "",
                 false,
                 {{"state", "degraded"}},
                 static_cast<double>(impl_->degraded_count())});
  out.push_back({"tocsin_file_watches", "Kernel inotify watches held.", false, {},
                 static_cast<double>(impl_->watch_count())});
  out.push_back({"tocsin_file_overflows_total",
                 "inotify queue overflows (each followed by a rescan).", true, {},
                 static_cast<double>(impl_->overflow_count())});
}
void FileSource::stop() { impl_->stop(); }

const SourceKindEntry& tocsin_source_kind_file() {
  static const SourceKindEntry entry{&file_schema(), [](SourceContext& c) {
                                       return std::unique_ptr<EventSource>(new FileSource(c));
                                     }};
  return entry;
}

}  // namespace tocsin

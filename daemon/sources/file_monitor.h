// file_monitor.h — the `file` source (SPEC §3, docs/file-monitors.md): inotify file monitors.
//
// One inotify fd for the whole daemon, in the reactor; when it is readable it is read with a
// 256 KiB buffer until EAGAIN (at most kMaxReadsPerTurn reads, then the reactor serves others and
// the reading goes on), every event handed to the WatchSet (daemon/sources/watch_tree.h), which
// keeps the watch trees and decides what each monitor reports. Batches are raised when their
// monitor's Coalescer says they are due: at the end of the read with `settle: 0`, else from a
// per-monitor timer armed only while a batch is pending. A batch becomes one event, or several
// (`part`/`parts`) when its paths do not fit in one payload; all parts of a batch carry the same
// `iteration`, and `iterations: N` retires the monitor after its N-th batch.
//
// A degraded monitor (a watch that could not be added, e.g. the watch limit) is retried every
// kRetryInterval, only while one is degraded that way: otherwise idle means no timer at all.
// A monitor whose path does not exist waits on inotify events of an ancestor, not on a timer.
//
// Ids are unique across all sources (checked by the caller for the other kinds); `from_config`
// tells YAML monitors (replaced on reload when changed) from run-time ones (kept). Reactor
// thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tocsin/clock.h"
#include "tocsin/config.h"
#include "tocsin/dispatcher.h"
#include "tocsin/result.h"

namespace boost::asio {
class io_context;
}

namespace tocsin {

struct FileMonitorState {
  std::string id;
  SignalId signal = 0;
  std::string path;
  bool recursive = false;
  std::string degraded;         // empty: ok; else why not
  std::size_t watches = 0;      // directories watched for this monitor
  std::size_t unwatched = 0;    // directories it could not watch
  std::uint64_t iterations = 0;
  std::uint64_t batches = 0;    // batches raised (the last event's iteration)
  bool from_config = false;
};

class FileMonitors {
 public:
  static constexpr std::chrono::seconds kRetryInterval{2};
  static constexpr std::size_t kMaxReadsPerTurn = 64;
  static constexpr std::size_t kMinPayloadCap = 8192;  // one path always fits
  static constexpr std::size_t kMaxPayloadCap = 65536;  // SPEC §1

  FileMonitors(boost::asio::io_context& io, Dispatcher& dispatcher, const Clock& clock);
  ~FileMonitors();
  FileMonitors(const FileMonitors&) = delete;
  FileMonitors& operator=(const FileMonitors&) = delete;

  // Errors: a bad spec (path, match, events: code -32602), an id taken, no inotify fd.
  Result<void> add(const config::FileMonitorSpec& spec, bool from_config);
  bool remove(const std::string& id);
  bool contains(const std::string& id) const;
  std::optional<FileMonitorState> find(const std::string& id) const;

  // Reload, in two steps so that the daemon can check every source kind before changing any:
  // check_config fails when a config id is taken by a run-time monitor; apply_config keeps the
  // unchanged config monitors (their watches, pending batch and counts), removes the others and
  // adds the new ones. Run-time monitors stay.
  Result<void> check_config(const std::vector<config::FileMonitorSpec>& monitors) const;
  Result<void> apply_config(const std::vector<config::FileMonitorSpec>& monitors);

  // limits.payload_bytes, clamped to [kMinPayloadCap, kMaxPayloadCap].
  void set_payload_limit(std::uint64_t bytes);

  std::size_t count() const;
  std::size_t degraded_count() const;
  std::size_t watch_count() const;       // kernel watches (one per directory, shared)
  std::uint64_t overflow_count() const;  // IN_Q_OVERFLOW seen
  std::vector<FileMonitorState> list(std::size_t limit) const;
  void stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin

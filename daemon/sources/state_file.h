// state_file.h — small state files that must survive a crash and must never stall the reactor:
// what `missed: once` sources remember across restarts (STATE_DIR/cron-state.json,
// STATE_DIR/at-state.json). Each is written atomically (a temp file, fsync, rename, fsync of the
// directory) on a thread of its own, since fsync can take a long time on a busy disk; only the
// newest text is written (a newer one supersedes one still waiting). Its health (the last write's
// error, and since when writes fail) is for `status`.
// submit() and health() are called on the reactor's thread; the writing happens on the
// StateWriter's thread (one per file, started on the first submit).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "tocsin/event_source.h"
#include "tocsin/result.h"
#include "tocsin/spec.h"

namespace tocsin {

// How the last write of a state file went, for `status`.
struct StateFileHealth {
  std::string path;   // empty until a state file has been written or tried
  std::string error;  // the last write's error; empty when it succeeded
  std::chrono::system_clock::time_point failing_since{};  // when writes began to fail
};

// `{"version":1,"<key>":{ID:ENTRY,...}}`: what a state file holds.
inline constexpr std::uint64_t kStateVersion = 1;
std::string state_text(std::string_view key, nlohmann::json entries);

// The entries (ID -> JSON) of the state file at `path`, each checked by `valid`. A missing file
// has none. A file that is not JSON, not version 1, too large (64 MiB) or has a malformed entry
// is logged as "WHAT PATH: why; ignored (CONSEQUENCE), kept as PATH.corrupt", renamed so, and read
// as none; `*corrupt` is then set.
std::map<std::string, nlohmann::json> read_state(
    const std::string& path, std::string_view what, std::string_view key,
    const std::function<bool(const nlohmann::json&)>& valid, std::string_view consequence,
    bool* corrupt);

// How a state file's health reads in `status` (`cron_state`, `at_state`): {"state":"none"}
// before the first write, {"state":"ok","path":…}, or {"state":"failing","path":…,"error":…,
// "failing_since":…}.
spec::Node health_node(const StateFileHealth& health);
// The same for `metrics`: tocsin_state_file_failing{file="cron"|"at"}, 1 while writes fail.
void state_file_metric(const StateFileHealth& health, const char* file,
                       std::vector<MetricSample>& out);

// Writes `text` to `path` (in `dir`, made if missing) so that a crash at any moment leaves the
// old file or the new one, whole. A half-written temporary file is removed.
Result<void> write_atomically(const std::string& dir, const std::string& path,
                              const std::string& text);

// The state file is written on a thread of its own: fsync can take a long time on a busy disk,
// and the reactor must never wait for a disk. Only the newest state is written (a newer one
// supersedes one still waiting). flush() writes what is pending and stops the thread.
class StateWriter {
 public:
  // `what` names the file in log lines ("cron state").
  explicit StateWriter(std::string what) : what_(std::move(what)) {}
  ~StateWriter() { flush(); }
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  // Writes `text` to `path` soon, on the writer's thread (started by the first call).
  void submit(std::string dir, std::string path, std::string text);
  // Writes what is pending and stops the thread (the daemon's stop); submit() starts it again.
  void flush();
  StateFileHealth health() const;

 private:
  struct Pending {
    std::string dir, path, text;
  };
  void run();
  // Writes, records how it went for health(), and logs a new error once and the first success
  // after errors.
  void write(Pending p);

  const std::string what_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Pending> pending_;
  bool stop_ = false;
  std::thread thread_;
  // How the last write went: written by write() (on the thread, or in flush() with mu_ held, so
  // it has a mutex of its own), read by health() on the reactor's thread.
  mutable std::mutex health_mu_;
  StateFileHealth health_;
};

}  // namespace tocsin

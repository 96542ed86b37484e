// watch_set.h — the logic of the `file` source (SPEC §3, docs/file-monitors.md), without the
// reactor: what to watch, what an inotify event means, what to report.
//
//  - WatchSet: every file monitor's directories as a tree of nodes (one per directory, holding
//    its inotify watch descriptor, its name in its parent, its watched subdirectories and a
//    snapshot of its entries). Paths are rebuilt from the nodes, so a directory renamed inside
//    a tree keeps its subtree under the new name (MOVED_FROM/MOVED_TO matched by cookie). One
//    kernel watch (wd) may serve several monitors: the registrations per wd are reference
//    counted and the watch is removed with the last one.
//  - A monitor watches the directory that holds its path (the "anchor"), filtering by name, so
//    that an atomic save (rename over) or delete-then-recreate of a watched file is seen and the
//    monitor goes on. The anchor asks only for entries appearing, disappearing or moving
//    (fs_ops.h kAnchorEvents), so a busy neighbour wakes nothing; the path itself is watched
//    for the rest: a file by a watch of its own (re-added on every new inode at the path), a
//    directory as the root of a tree of watches (all subdirectories with `recursive`). While
//    the path has no watch of its own (it does not exist yet, or its watch failed) the anchor
//    also hears writes, by name. A path that does not exist is waited for from its deepest
//    existing ancestor.
//  - Each registration on a wd says which events it needs; the kernel watch asks for their
//    union, set again whenever a registration comes, goes or changes.
//  - A new subdirectory is watched before it is listed, and what the listing finds is reported,
//    so that nothing created in it right after its creation is missed.
//  - An inotify queue overflow rescans every tree against the snapshots and reports what
//    changed, flagged `overflow`. A watch that cannot be added (the watch limit: ENOSPC) leaves
//    that node unwatched and the monitor degraded until retry() succeeds.
// Everything the kernel does goes through FsOps (fs_ops.h). Not thread safe: the reactor thread.
#pragma once

#include <functional>
#include <chrono>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sources/file/coalescer.h"
#include "sources/file/file_spec.h"
#include "sources/file/fs_ops.h"
#include "tocsin/clock.h"
#include "tocsin/result.h"

namespace tocsin::fs {

// ---- the watch trees -------------------------------------------------------------------------------
struct Node;

struct Monitor {
  Monitor(config::FileMonitorSpec s, std::string normalized, bool from_cfg);
  ~Monitor();
  config::FileMonitorSpec spec;  // as given (reload compares it)
  std::string path;              // normalized
  std::string parent_path;       // of `path` ("" for "/")
  std::string base;              // last component of `path`
  bool from_config = false;
  Coalescer batch;

  std::unique_ptr<Node> anchor;  // the deepest existing ancestor directory of `path`
  std::unique_ptr<Node> root;    // `path` itself when it is a directory
  std::unique_ptr<Node> file;    // `path` itself when it is not: its own watch
  bool anchor_is_parent = false;
  std::string pending;           // the name the anchor waits for, toward `path`
  bool exists = false;           // `path` exists

  std::size_t watches = 0;       // nodes holding a kernel watch
  std::size_t unwatched = 0;     // nodes whose watch could not be added
  std::string watch_error;       // why the last watch failed
  std::string degraded;          // empty: ok; else why not
  std::uint64_t batches = 0;     // raised batches (the events' iteration)
  std::optional<std::chrono::system_clock::time_point> last_raised;  // of the last batch
  bool touched = false;          // in WatchSet::touched_
};

// One inotify event as read (the name without its NUL padding).
struct RawEvent {
  int wd = -1;
  std::uint32_t mask = 0;
  std::uint32_t cookie = 0;
  std::string_view name;
};

class WatchSet {
 public:
  // Called when a monitor changes state (degraded: why; recovered: empty why).
  using StateLog = std::function<void(const Monitor&, const std::string& old_why)>;

  WatchSet(FsOps& fs, const Clock& clock);
  ~WatchSet();
  WatchSet(const WatchSet&) = delete;
  WatchSet& operator=(const WatchSet&) = delete;

  void set_state_log(StateLog log) { state_log_ = std::move(log); }

  // Starts watching. Fails only for a bad spec (path, glob); watches that cannot be added make
  // the monitor degraded instead. Nothing is reported for what exists already.
  Result<Monitor*> add(const config::FileMonitorSpec& spec, bool from_config);
  bool remove(const std::string& id);
  Monitor* find(const std::string& id);
  const std::map<std::string, std::unique_ptr<Monitor>>& monitors() const { return monitors_; }

  // One inotify event. After the last of a read that ended in EAGAIN, call end_of_drain():
  // directories moved out of a tree (a MOVED_FROM without its MOVED_TO) are dropped then.
  void handle(const RawEvent& event);
  void end_of_drain();
  // IN_Q_OVERFLOW: every monitor rescans and its next batch is flagged `overflow`.
  void overflow();
  // Degraded monitors try again: watches that failed, an anchor that could not be watched.
  // Returns true while some monitor still needs retrying.
  bool retry();
  bool needs_retry() const;

  // Monitors that got changes since the last call.
  std::vector<Monitor*> take_touched();
  std::size_t watch_count() const { return by_wd_.size(); }

 private:
  enum class Watched { yes, no, gone };
  struct Reg {
    Monitor* monitor;
    Node* node;
    std::uint32_t events;  // what this node needs from the watch (fs_ops.h masks)
    std::uint32_t flags;   // IN_ONLYDIR, IN_DONT_FOLLOW: how its path is watched again
  };
  struct PendingMove {
    Monitor* monitor;
    std::uint32_t cookie;
    std::unique_ptr<Node> subtree;
  };

  void resolve(Monitor& m, bool report);
  void make_root(Monitor& m, bool report);
  Watched watch(Monitor& m, Node& node, const std::string& path, bool follow, std::uint32_t events);
  void watch_file(Monitor& m);
  // Sets the kernel mask of `wd` to the union of its registrations' events.
  void apply_mask(int wd);
  // The anchor's events follow whether the path has a watch of its own.
  void tune_anchor(Monitor& m);
  std::optional<std::string> watch_path(const Reg& r) const;
  void populate(Monitor& m, Node& dir, const std::string& path, bool report);
  void rescan_node(Monitor& m, Node& dir, const std::string& path, bool only_unwatched);
  void rescan(Monitor& m);
  void drop(Monitor& m, std::unique_ptr<Node>& node);
  void drop_detached(Monitor& m, Node& node);
  void unregister(Monitor& m, Node& node);
  void on_anchor(Monitor& m, Node& node, const RawEvent& e);
  void on_tree(Monitor& m, Node& node, const RawEvent& e);
  void on_file(Monitor& m, Node& node, const RawEvent& e);
  std::optional<std::string> path_of(const Node& node) const;
  // Reports a change that inotify told of; `synthetic` ones were found by a listing or a rescan.
  void report(Monitor& m, const std::string& path, std::string_view name, std::uint32_t bits,
              bool synthetic);
  void refresh_state(Monitor& m);

  FsOps& fs_;
  const Clock& clock_;
  StateLog state_log_;
  std::map<std::string, std::unique_ptr<Monitor>> monitors_;
  std::unordered_map<int, std::vector<Reg>> by_wd_;
  std::vector<PendingMove> moves_;
  std::vector<Monitor*> touched_;
  std::vector<Monitor*> to_resolve_;
  bool closing_ = false;  // the destructor: no masks to narrow
};

}  // namespace tocsin::fs

// fs_ops.h — what the file monitors ask of the kernel, behind a seam (FsOps) so that the unit
// tests inject failures and record the watch masks asked for
// (tests/unit/sources/file/watch_set_test.cc), the masks themselves, and the path rules they use.
// SystemFs is the real thing on one inotify fd. Reactor thread only.
#pragma once

#include <sys/inotify.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tocsin/result.h"

namespace tocsin::fs {

// fnmatch(3) without flags: `*` and `?` also match a leading dot.
bool glob_match(const std::string& pattern, const std::string& name);
// An absolute path with `.`, `..`, `//` and a trailing `/` removed lexically; nullopt (and *why)
// for a relative or empty path, a NUL byte, or one longer than PATH_MAX.
std::optional<std::string> normalize_path(std::string_view path, std::string* why);

struct FileStat {
  ino_t ino = 0;
  dev_t dev = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::int64_t size = 0;
  bool dir = false;
  bool operator==(const FileStat&) const = default;
};

struct DirEntry {
  std::string name;
  FileStat stat;
};

// What each kind of watch asks the kernel for (docs/file-monitors.md, "What is watched"). A watch
// wakes the daemon for every event its mask selects, so each asks only for what its users need:
//  - a tree directory (a monitored directory, and with `recursive` its subdirectories): every
//    change to its entries;
//  - an anchor (the directory holding a monitor's path, or the deepest existing ancestor of a
//    path that does not exist yet): only entries appearing, disappearing or moving, so that a
//    busy neighbour of a monitored path wakes nothing;
//  - an anchor waiting for its path to appear in it: also writes and attributes, since a file's
//    first writes come before its own watch can be added;
//  - a monitored file: its own writes and attributes (the anchor no longer hears them).
// The self events (IN_DELETE_SELF, IN_MOVE_SELF; IN_IGNORED and IN_UNMOUNT always come) say that
// a watched directory itself went away.
inline constexpr std::uint32_t kTreeEvents = IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE |
                                             IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |
                                             IN_DELETE_SELF | IN_MOVE_SELF;
inline constexpr std::uint32_t kAnchorEvents =
    IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF;
inline constexpr std::uint32_t kWaitingAnchorEvents =
    kAnchorEvents | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB;
inline constexpr std::uint32_t kFileEvents =
    IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

class FsOps {
 public:
  virtual ~FsOps() = default;
  // inotify_add_watch(2) with `mask` as given (events and flags: IN_ONLYDIR, IN_DONT_FOLLOW,
  // IN_MASK_ADD): the watch descriptor, or -errno.
  virtual int add_watch(const std::string& path, std::uint32_t mask) = 0;
  virtual void rm_watch(int wd) = 0;
  // stat(2) (`follow`) or lstat(2).
  virtual std::optional<FileStat> stat(const std::string& path, bool follow) = 0;
  // The entries of a directory but . and .., with lstat data; the error says why.
  virtual Result<std::vector<DirEntry>> list(const std::string& path, bool follow) = 0;
};

// The real thing, on one inotify fd (not owned).
class SystemFs final : public FsOps {
 public:
  // `inotify_fd` < 0: no instance could be made yet; every watch fails with EMFILE until
  // set_fd() gives one.
  explicit SystemFs(int inotify_fd) : fd_(inotify_fd) {}
  void set_fd(int inotify_fd) { fd_ = inotify_fd; }
  int add_watch(const std::string& path, std::uint32_t mask) override;
  void rm_watch(int wd) override;
  std::optional<FileStat> stat(const std::string& path, bool follow) override;
  Result<std::vector<DirEntry>> list(const std::string& path, bool follow) override;

 private:
  int fd_;
};

}  // namespace tocsin::fs

// fs_ops.h — what the file monitors ask of the kernel, behind a seam (FsOps) so that the unit
// tests inject failures (tests/unit/sources/file/watch_set_test.cc), and the path rules they use.
// SystemFs is the real thing on one inotify fd. Reactor thread only.
#pragma once

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

class FsOps {
 public:
  virtual ~FsOps() = default;
  // inotify_add_watch for a directory (IN_ONLYDIR; IN_DONT_FOLLOW unless `follow`): the watch
  // descriptor, or -errno.
  virtual int add_watch(const std::string& path, bool follow) = 0;
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
  int add_watch(const std::string& path, bool follow) override;
  void rm_watch(int wd) override;
  std::optional<FileStat> stat(const std::string& path, bool follow) override;
  Result<std::vector<DirEntry>> list(const std::string& path, bool follow) override;

 private:
  int fd_;
};

}  // namespace tocsin::fs

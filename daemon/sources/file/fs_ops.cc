#include "sources/file/fs_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tocsin::fs {

namespace {

FileStat from_stat(const struct stat& st) {
  FileStat f;
  f.ino = st.st_ino;
  f.dev = st.st_dev;
  f.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  f.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  f.size = st.st_size;
  f.dir = S_ISDIR(st.st_mode);
  return f;
}

}  // namespace

bool glob_match(const std::string& pattern, const std::string& name) {
  return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

std::optional<std::string> normalize_path(std::string_view path, std::string* why) {
  auto fail = [&](const char* what) -> std::optional<std::string> {
    if (why) *why = what;
    return std::nullopt;
  };
  if (path.empty() || path[0] != '/') return fail("an absolute path is required");
  if (path.find('\0') != std::string_view::npos) return fail("a path cannot contain a NUL byte");
  if (path.size() >= PATH_MAX) return fail("the path is longer than PATH_MAX");
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (i < path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view part = path.substr(i, j - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = j + 1;
  }
  std::string out;
  for (auto p : parts) {
    out += '/';
    out += p;
  }
  return out.empty() ? "/" : out;
}

int SystemFs::add_watch(const std::string& path, std::uint32_t mask) {
  if (fd_ < 0) return -EMFILE;  // inotify_add_watch itself never says EMFILE
  int wd = ::inotify_add_watch(fd_, path.c_str(), mask);
  return wd >= 0 ? wd : -errno;
}

void SystemFs::rm_watch(int wd) {
  if (fd_ >= 0) ::inotify_rm_watch(fd_, wd);
}

std::optional<FileStat> SystemFs::stat(const std::string& path, bool follow) {
  struct stat st;
  int r = follow ? ::stat(path.c_str(), &st) : ::lstat(path.c_str(), &st);
  if (r != 0) return std::nullopt;
  return from_stat(st);
}

Result<std::vector<DirEntry>> SystemFs::list(const std::string& path, bool follow) {
  int dfd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
  if (dfd < 0) return Error{std::strerror(errno)};
  DIR* d = ::fdopendir(dfd);
  if (!d) {
    int err = errno;
    ::close(dfd);
    return Error{std::strerror(err)};
  }
  std::vector<DirEntry> out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0))) {
      continue;
    }
    struct stat st;
    if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
    out.push_back(DirEntry{e->d_name, from_stat(st)});
  }
  ::closedir(d);
  return out;
}

}  // namespace tocsin::fs

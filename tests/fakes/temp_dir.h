// TempDir — a fresh directory under $TMPDIR (or /tmp), removed with everything in it.
#pragma once

#include <filesystem>
#include <string>

namespace tocsin::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  // Writes `text` to path()/name atomically (temp file + rename) and returns the full path.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::filesystem::path path_;
};

}  // namespace tocsin::testing

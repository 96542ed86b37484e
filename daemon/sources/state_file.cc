#include "sources/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include <spdlog/spdlog.h>

#include "os/unique_fd.h"

namespace tocsin {

namespace {
constexpr std::size_t kMaxStateBytes = 64u << 20;

spec::Node text(std::string s) {
  return spec::Node::scalar(std::move(s), spec::Node::Style::quoted);
}
}  // namespace

std::string state_text(std::string_view key, nlohmann::json entries) {
  nlohmann::json doc{{"version", kStateVersion}};
  doc[std::string(key)] = std::move(entries);
  return doc.dump(1) + "\n";
}

std::map<std::string, nlohmann::json> read_state(
    const std::string& path, std::string_view what, std::string_view key,
    const std::function<bool(const nlohmann::json&)>& valid, std::string_view consequence,
    bool* corrupt) {
  using Json = nlohmann::json;
  *corrupt = false;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno != ENOENT) spdlog::warn("{} {}: {}", what, path, std::strerror(errno));
    return {};
  }
  std::ostringstream body;
  body << in.rdbuf();
  std::string why;
  std::map<std::string, Json> entries;
  if (body.str().size() > kMaxStateBytes) {
    why = "larger than " + std::to_string(kMaxStateBytes) + " bytes";
  } else {
    Json j = Json::parse(body.str(), nullptr, /*allow_exceptions=*/false);
    const std::string k(key);
    if (j.is_discarded()) {
      why = "not valid JSON";
    } else if (!j.is_object() || j.value("version", Json()) != kStateVersion || !j.contains(k) ||
               !j[k].is_object()) {
      why = "not a version 1 state file";
    } else {
      for (auto& [id, v] : j[k].items()) {
        if (!valid(v)) {
          why = "the entry for \"" + id + "\" is malformed";
          break;
        }
        entries.emplace(id, std::move(v));
      }
    }
  }
  if (!why.empty()) {
    spdlog::error("{} {}: {}; ignored ({}), kept as {}.corrupt", what, path, why, consequence,
                  path);
    ::rename(path.c_str(), (path + ".corrupt").c_str());
    *corrupt = true;
    return {};
  }
  return entries;
}

void state_file_metric(const StateFileHealth& h, const char* file, std::vector<MetricSample>& out) {
  out.push_back({"tocsin_state_file_failing",
                 "1 while the last write of a state file (missed: once) failed, else 0.",
                 false,
                 {{"file", file}},
                 h.error.empty() ? 0.0 : 1.0});
}

spec::Node health_node(const StateFileHealth& h) {
  spec::Node state = spec::Node::mapping();
  state.add("state", text(h.path.empty() ? "none" : h.error.empty() ? "ok" : "failing"));
  if (!h.path.empty()) state.add("path", text(h.path));
  if (!h.error.empty()) {
    state.add("error", text(h.error));
    state.add("failing_since", text(format_rfc3339(h.failing_since)));
  }
  return state;
}

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

void StateWriter::submit(std::string dir, std::string path, std::string text) {
  {
    std::lock_guard lock(mu_);
    pending_ = Pending{std::move(dir), std::move(path), std::move(text)};
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }
  cv_.notify_one();
}

void StateWriter::flush() {
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

StateFileHealth StateWriter::health() const {
  std::lock_guard lock(health_mu_);
  return health_;
}

void StateWriter::run() {
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

void StateWriter::write(Pending p) {
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
    if (!previous.empty()) spdlog::info("{} {}: written again", what_, p.path);
  } else if (error != previous) {
    spdlog::error("{} {}: {}; missed: once cannot survive a restart", what_, p.path, error);
  }
}

}  // namespace tocsin

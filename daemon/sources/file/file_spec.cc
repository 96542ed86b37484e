#include "sources/file/file_spec.h"

#include <algorithm>

#include "sources/file/fs_ops.h"

namespace tocsin::config {

bool FileMonitorSpec::same_as(const SourceSpec& other) const {
  const auto* o = dynamic_cast<const FileMonitorSpec*>(&other);
  return o != nullptr && id == o->id && signal == o->signal && path == o->path &&
         recursive == o->recursive && events == o->events && match == o->match &&
         settle == o->settle && max_delay == o->max_delay && iterations == o->iterations;
}

std::optional<std::string> glob_error(std::string_view p) {
  static constexpr std::string_view kClasses[] = {"alnum", "alpha", "blank", "cntrl",
                                                  "digit", "graph", "lower", "print",
                                                  "punct", "space", "upper", "xdigit"};
  if (p.find('/') != std::string_view::npos) {
    return std::string("a glob matches one file name and cannot contain '/'");
  }
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      if (++i == p.size()) return std::string("a trailing '\\' escapes nothing");
      continue;
    }
    if (p[i] != '[') continue;
    std::size_t open = i++;
    if (i < p.size() && (p[i] == '!' || p[i] == '^')) ++i;
    if (i < p.size() && p[i] == ']') ++i;  // a leading ']' is a member
    bool closed = false;
    for (; i < p.size(); ++i) {
      if (p[i] == ']') {
        closed = true;
        break;
      }
      if (p[i] == '[' && i + 1 < p.size() &&
          (p[i + 1] == ':' || p[i + 1] == '=' || p[i + 1] == '.')) {
        char kind = p[i + 1];
        auto end = p.find(std::string{kind, ']'}, i + 2);
        if (end == std::string_view::npos) {
          return "unclosed '[" + std::string(1, kind) + "' at position " + std::to_string(i + 1);
        }
        std::string_view name = p.substr(i + 2, end - i - 2);
        if (kind == ':' &&
            std::find(std::begin(kClasses), std::end(kClasses), name) == std::end(kClasses)) {
          return "unknown character class [:" + std::string(name) + ":]";
        }
        i = end + 1;
      }
    }
    if (!closed) return "unclosed '[' at position " + std::to_string(open + 1);
  }
  return std::nullopt;
}

}  // namespace tocsin::config

namespace tocsin::fs {

namespace {
constexpr std::string_view kEventNames[] = {"create", "modify", "close_write",
                                            "delete", "move",   "attrib"};
}  // namespace

std::vector<std::string_view> event_names(std::uint32_t bits) {
  std::vector<std::string_view> out;
  for (std::size_t i = 0; i < std::size(kEventNames); ++i) {
    if (bits & (1u << i)) out.push_back(kEventNames[i]);
  }
  return out;
}

std::optional<std::uint32_t> event_bit(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kEventNames); ++i) {
    if (kEventNames[i] == name) return 1u << i;
  }
  return std::nullopt;
}

}  // namespace tocsin::fs

namespace tocsin {

namespace {

constexpr std::string_view kKeys[] = {"id",    "signal", "path",      "recursive", "events",
                                      "match", "settle", "max_delay", "iterations"};

class FileSchema final : public SourceSchema {
 public:
  SourceKind kind() const override { return SourceKind::file; }
  std::string_view config_key() const override { return "file_monitors"; }
  std::string_view id_prefix() const override { return "file"; }
  std::string_view noun() const override { return "file monitor"; }
  std::string_view add_method() const override { return "add_file_monitor"; }

  std::shared_ptr<SourceSpec> parse(spec::Reader& r, const spec::Value& item) const override {
    const std::size_t problems = r.problem_count();
    auto fields = r.mapping(item, kKeys, spec::IfNull::error,
                            "a file monitor such as {signal: 5, path: /etc/app}");
    if (!fields) return nullptr;
    auto m = std::make_shared<config::FileMonitorSpec>();
    m->kind = SourceKind::file;
    m->where = r.location(item.at);
    bool has_signal = false, has_path = false;
    for (const spec::Field& f : *fields) {
      if (f.key == "id") {
        if (auto id = r.source_id(f.value)) m->id = *id;
      } else if (f.key == "signal") {
        has_signal = true;
        if (auto s = r.signal(f.value)) m->signal = *s;
      } else if (f.key == "path") {
        has_path = true;
        constexpr std::string_view kWhat = "an absolute path";
        auto path = r.text(f.value, kWhat);
        std::string why;
        if (path && (path->empty() || (*path)[0] != '/')) {
          r.expected(f.value, kWhat);
        } else if (path && !fs::normalize_path(*path, &why)) {
          r.fail(f.value, why);
        } else if (path) {
          m->path = *path;
        }
      } else if (f.key == "recursive") {
        if (auto b = r.boolean(f.value)) m->recursive = *b;
      } else if (f.key == "events") {
        constexpr std::string_view kWhat =
            "a list of events from create, modify, close_write, delete, move, attrib";
        auto names = r.sequence(f.value, kWhat);
        if (!names) continue;
        if (names->empty()) {
          r.expected(f.value, kWhat);
          continue;
        }
        std::uint32_t events = 0;
        for (const spec::Value& name : *names) {
          constexpr std::string_view kEvent =
              "an event: create, modify, close_write, delete, move or attrib";
          auto s = r.text(name, kEvent);
          if (!s) continue;
          if (auto bit = fs::event_bit(*s)) {
            events |= *bit;
          } else {
            r.expected(name, kEvent);
          }
        }
        m->events = events;
      } else if (f.key == "match") {
        if (auto s = r.text(f.value, "a glob on the file name, such as \"*.conf\"")) {
          if (auto bad = config::glob_error(*s)) {
            r.fail(f.value, "a glob on the file name: " + *bad);
          } else {
            m->match = *s;
          }
        }
      } else if (f.key == "settle") {
        if (auto d = r.duration(f.value, config::Millis{0})) m->settle = *d;
      } else if (f.key == "max_delay") {
        if (auto d = r.duration(f.value, config::Millis{0})) m->max_delay = *d;
      } else if (f.key == "iterations") {
        if (auto n = r.count(f.value, 0)) m->iterations = *n;
      }
    }
    if (!has_signal) r.missing(item, "signal");
    if (!has_path) r.missing(item, "path");
    if (r.problem_count() != problems) return nullptr;
    return m;
  }
};

}  // namespace

const SourceSchema& file_schema() {
  static const FileSchema schema;
  return schema;
}

}  // namespace tocsin

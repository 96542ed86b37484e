// file_spec.h — the spec of `file_monitors` entries (SPEC §3, docs/config.md,
// docs/file-monitors.md), one schema for the YAML file and for `add_file_monitor`, and the names of
// file events.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tocsin/event_source.h"

namespace tocsin::config {

// Bits of FileMonitorSpec::events.
enum FileEvent : std::uint32_t {
  kFileCreate = 1u << 0,
  kFileModify = 1u << 1,
  kFileCloseWrite = 1u << 2,
  kFileDelete = 1u << 3,
  kFileMove = 1u << 4,
  kFileAttrib = 1u << 5,
  kFileAllEvents = (1u << 6) - 1,
};

struct FileMonitorSpec : SourceSpec {
  std::string path;
  bool recursive = false;
  std::uint32_t events = kFileAllEvents;
  std::string match;                // glob on the file name; empty = everything
  Millis settle{0};                 // quiet period that coalesces a burst
  std::optional<Millis> max_delay;  // a burst never delays a raise longer than this
  std::uint64_t iterations = 0;
  bool same_as(const SourceSpec& other) const override;
};

// Checks a file monitor's `match` glob (fnmatch(3) syntax, on one file name): nullopt when it is
// fine, else what is wrong (a `/`, an unclosed `[`, an unknown `[:class:]`, a trailing `\`).
std::optional<std::string> glob_error(std::string_view pattern);

}  // namespace tocsin::config

namespace tocsin {

const SourceSchema& file_schema();

}  // namespace tocsin

namespace tocsin::fs {

// "create", "modify", ... for the bits of config::FileEvent, in that order.
std::vector<std::string_view> event_names(std::uint32_t bits);
std::optional<std::uint32_t> event_bit(std::string_view name);

}  // namespace tocsin::fs

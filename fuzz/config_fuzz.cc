// libFuzzer target: the YAML configuration loader. Whatever the bytes, load_config_string returns
// (never throws, never crashes), and its answer is consistent: a config xor errors, and every
// error names the file and a position inside the text (line 1..lines+1) or none (line 0).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tocsin/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto result = tocsin::config::load_config_string(text, "fuzz.yaml");
  if (result.config.has_value() == !result.errors.empty()) {
    std::fprintf(stderr, "config and errors both %s\n", result.config ? "present" : "absent");
    std::abort();
  }
  long lines = 1;
  for (char c : text) lines += c == '\n';
  for (const auto& e : result.errors) {
    if (e.where.file != "fuzz.yaml" || e.where.line < 0 || e.where.line > lines + 1 ||
        e.message.empty()) {
      std::fprintf(stderr, "bad error: %s (text has %ld lines)\n",
                   tocsin::config::to_string(e).c_str(), lines);
      std::abort();
    }
  }
  return 0;
}

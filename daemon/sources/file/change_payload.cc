#include "sources/file/change_payload.h"

#include <nlohmann/json.hpp>

#include "sources/file/file_spec.h"

namespace tocsin::fs {

namespace {

std::string json_string(std::string_view s) {
  return nlohmann::json(std::string(s))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::vector<std::string> encode_payloads(std::string_view monitor, std::string_view path,
                                         const Batch& batch, std::size_t cap) {
  const std::string head =
      "{\"monitor\":" + json_string(monitor) + ",\"path\":" + json_string(path) +
      ",\"overflow\":" + (batch.overflow ? "true" : "false") + ",\"changes\":[";
  // `],"part":I,"parts":N}` with room for 20-digit numbers.
  constexpr std::size_t kTail = 2 + 8 + 20 + 9 + 20 + 1;
  std::vector<std::string> bodies;
  std::string body = head;
  std::size_t in_body = 0;
  for (const Change& c : batch.changes) {
    std::string item = "{\"path\":" + json_string(c.path) + ",\"events\":[";
    bool first = true;
    for (auto name : event_names(c.events)) {
      if (!first) item += ',';
      first = false;
      item += '"';
      item += name;
      item += '"';
    }
    item += "]}";
    if (in_body > 0 && body.size() + 1 + item.size() + kTail > cap) {
      bodies.push_back(std::move(body));
      body = head;
      in_body = 0;
    }
    if (in_body > 0) body += ',';
    body += item;
    ++in_body;
  }
  bodies.push_back(std::move(body));
  const std::string parts = std::to_string(bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    bodies[i] += "],\"part\":" + std::to_string(i + 1) + ",\"parts\":" + parts + "}";
  }
  return bodies;
}

}  // namespace tocsin::fs

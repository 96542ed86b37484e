// listen_address.cc — "ADDRESS:PORT" of `metrics.listen` (include/tocsin/config.h). IP literals
// only: a name would need a lookup, which the reactor must not wait for.
#include <arpa/inet.h>

#include <algorithm>

#include "tocsin/config.h"

namespace tocsin::config {

std::optional<MetricsSpec> parse_listen_address(std::string_view text, std::string* why) {
  auto fail = [&](std::string message) -> std::optional<MetricsSpec> {
    if (why) *why = std::move(message);
    return std::nullopt;
  };
  constexpr std::string_view kForm =
      "expected ADDRESS:PORT with an IP address, such as \"127.0.0.1:9750\", \"0.0.0.0:9750\" or "
      "\"[::1]:9750\"";
  std::string_view address;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return fail(std::string(kForm) + "; got \"" + std::string(text) + "\"");
    }
    address = text.substr(1, close - 1);
    port = text.substr(close + 2);
    in6_addr a6{};
    if (!::inet_pton(AF_INET6, std::string(address).c_str(), &a6)) {
      return fail("\"" + std::string(address) + "\" is not an IPv6 address");
    }
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return fail(std::string(kForm) + "; got \"" + std::string(text) + "\"");
    }
    address = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (address.find(':') != std::string_view::npos) {
      return fail("an IPv6 address goes in brackets: \"[" + std::string(address) +
                  "]:" + std::string(port) + "\"");
    }
    in_addr a4{};
    if (!::inet_pton(AF_INET, std::string(address).c_str(), &a4)) {
      return fail("\"" + std::string(address) +
                  "\" is not an IPv4 address (names are not looked up; use an IP address)");
    }
  }
  bool digits = !port.empty() && port.size() <= 5 &&
                std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  unsigned long number = digits ? std::stoul(std::string(port)) : 0;
  if (!digits || number > 65535) {
    return fail("expected a port 0-65535 after the colon; got \"" + std::string(port) + "\"");
  }
  MetricsSpec spec;
  spec.listen = std::string(text);
  spec.address = std::string(address);
  spec.port = static_cast<std::uint16_t>(number);
  return spec;
}

}  // namespace tocsin::config

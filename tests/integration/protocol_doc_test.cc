// Replays every example of docs/protocol.md against the daemon: lines starting "→ " are sent
// as they are, lines starting "← " are the replies expected, in order. "…" in an expected line
// matches any value; notifications that arrive in between (events) are skipped.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;

constexpr const char* kEllipsis = "\xe2\x80\xa6";  // …

// `…` outside strings becomes the string "…" so the line parses.
std::string quote_ellipses(const std::string& line) {
  std::string out;
  bool in_string = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '"' && (i == 0 || line[i - 1] != '\\')) in_string = !in_string;
    if (!in_string && line.compare(i, 3, kEllipsis) == 0) {
      out += std::string("\"") + kEllipsis + "\"";
      i += 2;
      continue;
    }
    out += c;
  }
  return out;
}

bool matches(const Json& expected, const Json& actual, std::string* why, const std::string& at) {
  if (expected.is_string() && expected.get<std::string>() == kEllipsis) return true;
  if (expected.is_object()) {
    if (!actual.is_object()) return *why = at + ": expected an object", false;
    for (auto it = expected.begin(); it != expected.end(); ++it) {
      if (!actual.contains(it.key())) return *why = at + "." + it.key() + ": missing", false;
      if (!matches(it.value(), actual[it.key()], why, at + "." + it.key())) return false;
    }
    for (auto it = actual.begin(); it != actual.end(); ++it) {
      if (!expected.contains(it.key())) return *why = at + "." + it.key() + ": unexpected", false;
    }
    return true;
  }
  if (expected.is_array()) {
    if (!actual.is_array() || actual.size() != expected.size()) {
      return *why = at + ": expected an array of " + std::to_string(expected.size()), false;
    }
    for (std::size_t i = 0; i < expected.size(); ++i) {
      if (!matches(expected[i], actual[i], why, at + "[" + std::to_string(i) + "]")) return false;
    }
    return true;
  }
  if (expected != actual) {
    *why = at + ": expected " + expected.dump() + ", got " + actual.dump();
    return false;
  }
  return true;
}

TEST(ProtocolDoc, EveryExampleReplaysVerbatim) {
  std::ifstream doc(TOCSIN_SOURCE_DIR "/docs/protocol.md");
  ASSERT_TRUE(doc) << "docs/protocol.md not found";
  TempDir dir;
  std::string config = dir.write("tocsin.yaml", R"Y(
signals:
  7: {name: loose}
  26: {name: jobs, handlers: [{target: subscriber}]}
)Y");
  DaemonProcess daemon({"--config", config, "--socket", dir.file("s.sock")});
  daemon.expect_ready();
  LineClient c(dir.file("s.sock"));

  int sent = 0;
  int checked = 0;
  std::string line;
  int lineno = 0;
  while (std::getline(doc, line)) {
    ++lineno;
    if (line.rfind("\xe2\x86\x92 ", 0) == 0) {  // "→ "
      c.send_raw(line.substr(4) + "\n");
      ++sent;
    } else if (line.rfind("\xe2\x86\x90 ", 0) == 0) {  // "← "
      Json expected = Json::parse(quote_ellipses(line.substr(4)), nullptr, false);
      ASSERT_FALSE(expected.is_discarded()) << "docs/protocol.md:" << lineno << ": not JSON";
      std::optional<Json> actual;
      while ((actual = c.read(deadline_in(kWait))) && actual->is_object() &&
             !actual->contains("id")) {
      }
      ASSERT_TRUE(actual) << "docs/protocol.md:" << lineno << ": no reply";
      std::string why;
      EXPECT_TRUE(matches(expected, *actual, &why, "reply"))
          << "docs/protocol.md:" << lineno << ": " << why << "\n  got " << actual->dump();
      ++checked;
    }
  }
  EXPECT_GE(sent, 4);
  EXPECT_EQ(checked, sent) << "every example request has its expected reply";
}

}  // namespace
}  // namespace tocsin::testing

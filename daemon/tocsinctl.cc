// tocsinctl — the command-line client of tocsind (SPEC §8, docs/tocsinctl.md), over the C++
// client (include/tocsin/client.h) and the socket protocol (docs/protocol.md).
//
//   tocsinctl [--socket PATH] [--json] COMMAND ...
//     raise SIGNAL [PAYLOAD]                         prints the event's seq
//     subscribe SIGNAL... [--ack [--prefetch N]] [--source S]... [--count N]
//                                                    prints events until Ctrl-C or N events
//     wait [SIGNAL] [--timeout T]                    prints the next unhandled event
//     table | status | metrics | reload
//     timers [--all]                                 timers, rb_timers, cron jobs and `at`
//                                                    entries by next fire (systemctl list-timers)
//     add-timer SIGNAL EVERY [--after T] [--clock C] [--iterations N] [--id ID] [--rb]
//     add-rb-timer SIGNAL EVERY [...]                 prints the new source's id
//     add-cron SIGNAL 'EXPR' [--tz Z] [--jitter T] [--missed skip|once] [--iterations N] [--id ID]
//                                                    prints the new cron job's id
//     add-file-monitor SIGNAL PATH [--recursive] [--event E]... [--match GLOB] [--settle T]
//                      [--max-delay T] [--iterations N] [--id ID]   prints the new source's id
//     add-at SIGNAL TIME [--tz Z] [--missed skip|once] [--id ID]   prints the new source's id
//     add KIND KEY=VALUE...                          add_KIND with those params (any kind)
//     remove ID [--force]                             removes a source
//     cron-next 'EXPR' [--tz ZONE] [--from ISO-8601] [--count N]
//                                                    the next N fire instants (no daemon)
//     check CONFIG                                   validates a configuration file (no daemon)
//
// Output: on a terminal, human-readable (aligned tables, one line per event); with --json or when
// stdout is not a terminal, one JSON object per line (the raw result, or an event's params).
// `metrics` prints the Prometheus text as is unless --json is given.
//
// Exit codes:
//   0  ok
//   1  the daemon answered with an error (printed on stderr with its code); for `check`, the
//      configuration has errors; for `reload`, the reload failed (its errors on stderr); for
//      `cron-next`, the expression, zone or --from is not valid
//   2  bad command line
//   3  cannot connect to the daemon, or a transport error (connection lost, no reply in time)
//   4  `wait` timed out
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cron/expression.h"
#include "daemon.h"
#include "protocol/rpc_errors.h"
#include "tocsin/client.h"
#include "tocsin/config.h"

namespace {

using Json = nlohmann::json;
using tocsin::Client;

constexpr int kExitOk = 0;
constexpr int kExitDaemonError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitTransport = 3;
constexpr int kExitTimeout = 4;

constexpr const char* kDefaultSocket = "/run/tocsin/tocsin.sock";

// A signal on the command line: all digits is a number, anything else a name.
Json signal_arg(const std::string& s) {
  bool digits = !s.empty() && s.size() <= 9 &&
                std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) return std::stoll(s);
  return s;
}

// Prints an error from the client and returns the exit code it maps to.
int fail(const std::string& what, const tocsin::Error& e) {
  if (e.code == tocsin::ErrorCode::transport) {
    std::cerr << "tocsinctl: " << what << ": " << e.message << "\n";
    return kExitTransport;
  }
  std::cerr << "tocsinctl: " << what << ": " << e.message << " (code " << tocsin::rpc_code(e.code) << ")\n";
  return kExitDaemonError;
}

std::string str(const Json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  return v.dump();
}

// A payload as text on one line: as is when it is printable, else as a JSON string.
std::string payload_text(const Json& p) {
  if (!p.is_string()) return p.is_null() ? "" : p.dump();
  const auto& s = p.get_ref<const std::string&>();
  bool plain = std::none_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  return plain ? s : p.dump();
}

// `seq signal(name) source time payload`
std::string event_line(const Json& ev) {
  std::string line = str(ev.value("seq", Json())) + " " + str(ev.value("signal", Json()));
  if (auto name = ev.value("name", Json()); name.is_string() && !name.get<std::string>().empty()) {
    line += "(" + name.get<std::string>() + ")";
  }
  Json source = ev.value("source", Json());
  std::string src = "-";
  if (source.is_object()) {
    src = str(source.value("kind", Json()));
    if (auto id = source.value("id", Json()); !id.is_null()) src += ":" + str(id);
  } else if (!source.is_null()) {
    src = str(source);
  }
  line += " " + src + " " + str(ev.value("time", Json()));
  std::string payload = payload_text(ev.value("payload", Json()));
  if (!payload.empty()) line += " " + payload;
  if (ev.value("redelivered", false)) line += " [redelivered]";
  return line;
}

// Columns left-aligned, two spaces apart, each line after `indent`.
void print_table(const std::vector<std::vector<std::string>>& rows,
                 const std::string& indent = "") {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line = indent;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

// ---- times for a person ----------------------------------------------------------------------

using Ms = std::int64_t;  // milliseconds since the epoch, or a span

Ms now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The daemon's times: RFC 3339 in UTC ("2026-12-02T15:40:00Z", maybe with a fraction).
std::optional<Ms> parse_utc(const Json& v) {
  if (!v.is_string()) return std::nullopt;
  const std::string& s = v.get_ref<const std::string&>();
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  Ms ms = static_cast<Ms>(::timegm(&tm)) * 1000;
  std::size_t i = static_cast<std::size_t>(consumed);
  if (i < s.size() && s[i] == '.') {
    Ms scale = 100;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, scale /= 10)
      ms += (s[i] - '0') * scale;
  }
  return ms;
}

// In the local zone (TZ), as systemctl list-timers shows it: "Wed 2026-12-02 15:40:00 UTC".
std::string local_time(Ms ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a %Y-%m-%d %H:%M:%S %Z", &tm);
  return buf;
}

// A span as a person says it, to its two largest units: "4min 59s", "1h 2min", "3 days".
std::string human_span(Ms ms) {
  if (ms < 0) ms = 0;
  if (ms < 1000) return std::to_string(ms) + "ms";
  std::int64_t s = ms / 1000;
  struct Unit {
    std::int64_t seconds;
    const char* one;
    const char* many;
  };
  static constexpr Unit kUnits[] = {{7 * 86400, " week", " weeks"},
                                    {86400, " day", " days"},
                                    {3600, "h", "h"},
                                    {60, "min", "min"},
                                    {1, "s", "s"}};
  std::string out;
  int parts = 0;
  for (const Unit& u : kUnits) {
    if (parts == 2 || (parts == 1 && s == 0)) break;
    std::int64_t n = s / u.seconds;
    if (n == 0) {
      if (parts == 1) break;  // "1h 5s" says too little: "1h"
      continue;
    }
    s -= n * u.seconds;
    out += (out.empty() ? "" : " ") + std::to_string(n) + (n == 1 ? u.one : u.many);
    ++parts;
  }
  return out;
}

// The UTC offset, in seconds, at the end of an ISO 8601 time ("...+05:30", "...Z").
std::optional<long> iso_offset(const std::string& iso) {
  if (!iso.empty() && iso.back() == 'Z') return 0;
  if (iso.size() < 6) return std::nullopt;
  std::string tail = iso.substr(iso.size() - 6);
  int h = 0, m = 0;
  if ((tail[0] != '+' && tail[0] != '-') || std::sscanf(tail.c_str() + 1, "%2d:%2d", &h, &m) != 2) {
    return std::nullopt;
  }
  long off = h * 3600L + m * 60L;
  return tail[0] == '-' ? -off : off;
}

long local_offset(Ms ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  return tm.tm_gmtoff;
}

struct Options {
  std::string socket = kDefaultSocket;
  bool json = false;   // --json given
  bool human = false;  // stdout is a terminal and no --json
};

void print_json(const Json& j) { std::cout << j.dump() << std::endl; }

int cmd_raise(Client& c, const Options& o, const std::string& signal, const std::string& payload) {
  Json params = {{"signal", signal_arg(signal)}};
  if (!payload.empty()) params["payload"] = payload;
  auto r = c.call("raise", std::move(params));
  if (!r) return fail("raise", r.error());
  if (o.human) {
    std::cout << str(r->value("seq", Json())) << "\n";
  } else {
    print_json(*r);
  }
  return kExitOk;
}

int cmd_subscribe(Client& c, const Options& o, const std::vector<std::string>& signals, bool ack,
                  std::int64_t prefetch, const std::vector<std::string>& sources,
                  std::int64_t count) {
  Json params = Json::object();
  if (signals.size() == 1 && signals[0] == "*") {
    params["signals"] = "*";
  } else {
    params["signals"] = Json::array();
    for (const auto& s : signals) params["signals"].push_back(signal_arg(s));
  }
  if (!sources.empty()) params["sources"] = sources;
  if (ack) params["ack"] = true;
  if (prefetch > 0) params["prefetch"] = prefetch;
  auto r = c.call("subscribe", std::move(params));
  if (!r) return fail("subscribe", r.error());

  std::int64_t seen = 0;
  while (count <= 0 || seen < count) {
    auto n = c.next_notification(std::chrono::hours(1));
    if (!n) {
      if (c.connected()) continue;
      std::cerr << "tocsinctl: subscribe: connection closed by tocsind\n";
      return kExitTransport;
    }
    std::string method = n->value("method", "");
    Json p = n->value("params", Json::object());
    if (method == "overflow") {
      std::cerr << "tocsinctl: overflow: " << str(p.value("dropped", Json()))
                << " event(s) dropped, seq " << str(p.value("first_seq", Json())) << ".."
                << str(p.value("last_seq", Json())) << "\n";
      if (!o.human) print_json(Json{{"overflow", p}});
      continue;
    }
    if (method != "signal") continue;
    if (o.human) {
      std::cout << event_line(p) << std::endl;
    } else {
      print_json(p);
    }
    ++seen;
    if (ack && p.value("ack", false)) {
      auto a = c.ack(p.value("seq", std::uint64_t{0}));
      if (!a) {
        int rc = fail("ack " + str(p.value("seq", Json())), a.error());
        if (rc == kExitTransport) return rc;
      }
    }
  }
  return kExitOk;
}

int cmd_wait(Client& c, const Options& o, const std::string& signal, const std::string& timeout) {
  Json params = Json::object();
  if (!signal.empty()) params["signal"] = signal_arg(signal);
  Client::Millis client_timeout = Client::Millis::max();  // no --timeout: as long as it takes
  if (!timeout.empty()) {
    params["timeout"] = timeout;  // the daemon parses it; locally only for our own deadline
    if (auto d = tocsin::config::parse_duration(timeout, nullptr)) {
      client_timeout = *d + Client::kDefaultTimeout;
    }
  }
  auto r = c.call("wait", std::move(params), client_timeout);
  if (!r) return fail("wait", r.error());
  if (r->is_null()) {
    std::cerr << "tocsinctl: wait: timed out\n";
    return kExitTimeout;
  }
  if (o.human) {
    std::cout << event_line(*r) << "\n";
  } else {
    print_json(*r);
  }
  return kExitOk;
}

int cmd_table(Client& c, const Options& o) {
  auto r = c.call("table");
  if (!r) return fail("table", r.error());
  if (!o.human) {
    print_json(*r);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows{{"SIGNAL", "NAME", "RAISED", "DELIVERED", "DROPPED",
                                              "FAILED", "UNHANDLED", "LAST RAISED", "HANDLERS"}};
  for (const auto& s : r->value("signals", Json::array())) {
    std::string handlers;
    for (const auto& h : s.value("handlers", Json::array())) {
      handlers += (handlers.empty() ? "" : ", ") + str(h);
    }
    rows.push_back({str(s.value("signal", Json())), str(s.value("name", Json())),
                    str(s.value("raised", Json())), str(s.value("delivered", Json())),
                    str(s.value("dropped", Json())), str(s.value("failed", Json())),
                    str(s.value("unhandled", Json())), str(s.value("last_raised", Json())),
                    handlers.empty() ? "-" : handlers});
  }
  print_table(rows);
  return kExitOk;
}

// A source's SCHEDULE cell: what the daemon says, and for a cron job whose zone keeps another
// time than the local one, the next fire in that zone too (NEXT is local, so that the column
// reads and sorts in one zone; the job's own wall time is what its expression speaks of).
std::string schedule_cell(const Json& s, std::optional<Ms> next) {
  std::string out = str(s.value("schedule", Json()));
  if (s.value("kind", "") != "cron") return out;
  std::string zone = s.value("zone", "");
  std::string in_zone = s.value("next", "");
  auto offset = iso_offset(in_zone);
  if (!next || !offset || *offset == local_offset(*next)) return out;
  std::string shown = in_zone;
  if (shown.size() > 10 && shown[10] == 'T') shown[10] = ' ';
  return out + " (" + (zone.empty() ? "" : zone + ": ") + "next " + shown + ")";
}

// `timers`: the kinds that fire by time, as `systemctl list-timers` lists them.
int cmd_timers(Client& c, const Options& o, bool all) {
  auto r = c.call("status");
  if (!r) return fail("status", r.error());
  struct Row {
    Json source;
    std::optional<Ms> next, last;
  };
  std::vector<Row> rows;
  std::size_t left_out = 0;
  const Json sources = r->value("sources", Json::object());
  for (const auto& s : sources.value("list", Json::array())) {
    if (!s.value("timed", false)) continue;  // its kind does not fire by time
    Row row{s, parse_utc(s.value("next_fire", Json())), parse_utc(s.value("last_fire", Json()))};
    // Retired: an `at` entry that fired, was missed or had passed, or any source not `ok`.
    if (!all && (!row.next || s.value("state", "ok") != "ok")) {
      ++left_out;
      continue;
    }
    rows.push_back(std::move(row));
  }
  // By next fire; those without one last, in the daemon's order.
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    if (!a.next || !b.next) return a.next.has_value() && !b.next.has_value();
    return *a.next < *b.next;
  });
  if (!o.human) {
    for (const Row& row : rows) print_json(row.source);
    return kExitOk;
  }
  const Ms now = now_ms();
  std::vector<std::vector<std::string>> table{
      {"NEXT", "LEFT", "LAST", "PASSED", "ID", "KIND", "SIGNAL", "SCHEDULE"}};
  for (const Row& row : rows) {
    const Json& s = row.source;
    std::string state = s.value("state", "ok");
    table.push_back({row.next ? local_time(*row.next) : "-",
                     row.next ? human_span(*row.next - now) : (state == "ok" ? "-" : state),
                     row.last ? local_time(*row.last) : "-",
                     row.last ? human_span(now - *row.last) + " ago" : "-",
                     str(s.value("id", Json())), str(s.value("kind", Json())),
                     str(s.value("signal", Json())), schedule_cell(s, row.next)});
  }
  print_table(table);
  std::cout << "\n" << rows.size() << (rows.size() == 1 ? " timer" : " timers") << " listed.\n";
  if (left_out > 0) {
    std::cout << left_out << " without a next fire (fired, missed, passed or failing) left out: "
              << "pass --all to see them too.\n";
  }
  return kExitOk;
}

// `status` on a terminal: one section per part of the daemon.
void print_status(const Json& r) {
  auto section = [first = true](const std::string& title) mutable {
    std::cout << (first ? "" : "\n") << title << "\n";
    first = false;
  };
  section("Daemon");
  std::vector<std::vector<std::string>> kv;
  auto field = [&](const std::string& label, const std::string& value) {
    kv.push_back({label + ":", value});
  };
  field("version", str(r.value("version", Json())));
  field("pid", str(r.value("pid", Json())));
  if (auto up = r.value("uptime_ms", Json()); up.is_number()) {
    field("uptime", human_span(up.get<Ms>()));
  }
  field("config", str(r.value("config", Json())));
  field("socket", str(r.value("socket", Json())));
  if (auto m = r.value("metrics", Json()); m.is_string()) {
    field("metrics", "http://" + m.get<std::string>() + "/metrics");
  } else {
    field("metrics", "off");
  }
  for (const char* key : {"clients", "children", "backlog", "waiters"}) {
    field(key, str(r.value(key, Json())));
  }
  field("last seq", str(r.value("last_seq", Json())));
  // Whatever a newer daemon adds is shown too rather than hidden.
  static const char* kShown[] = {
      "version", "pid",           "uptime_ms",  "config",   "socket",        "metrics",
      "clients", "children",      "backlog",    "waiters",  "last_seq",      "sources",
      "plugins", "file_monitors", "cron_state", "at_state", "clients_detail"};
  for (const auto& [key, value] : r.items()) {
    if (std::find(std::begin(kShown), std::end(kShown), key) == std::end(kShown)) {
      field(key, str(value));
    }
  }
  print_table(kv, "  ");

  section("Sources");
  const Json sources = r.value("sources", Json::object());
  std::string counts;
  for (const auto& [kind, n] : sources.items()) {
    if (kind == "list") continue;
    counts += (counts.empty() ? "" : "  ") + kind + ": " + str(n);
  }
  std::cout << "  " << (counts.empty() ? "none" : counts) << "\n";
  const Json list = sources.value("list", Json::array());
  if (!list.empty()) {
    const Ms now = now_ms();
    std::vector<std::vector<std::string>> rows{
        {"ID", "KIND", "SIGNAL", "STATE", "FIRED", "NEXT", "LEFT", "LAST", "SCHEDULE", "WHY"}};
    for (const auto& s : list) {
      auto next = parse_utc(s.value("next_fire", Json()));
      auto last = parse_utc(s.value("last_fire", Json()));
      // WHY last: it is long when there is one, and the other columns stay narrow.
      rows.push_back({str(s.value("id", Json())), str(s.value("kind", Json())),
                      str(s.value("signal", Json())), str(s.value("state", Json())),
                      str(s.value("fired", Json())), next ? local_time(*next) : "-",
                      next ? human_span(*next - now) : "-", last ? local_time(*last) : "-",
                      schedule_cell(s, next), str(s.value("why", Json()))});
    }
    std::cout << "\n";
    print_table(rows, "  ");
  }

  auto files = r.value("file_monitors", Json::array());
  if (!files.empty()) {
    section("File monitors");
    std::vector<std::vector<std::string>> rows{
        {"ID", "SIGNAL", "PATH", "RECURSIVE", "STATE", "WATCHES", "UNWATCHED", "RAISED", "WHY"}};
    for (const auto& f : files) {
      rows.push_back({str(f.value("id", Json())), str(f.value("signal", Json())),
                      str(f.value("path", Json())), str(f.value("recursive", Json())),
                      str(f.value("state", Json())), str(f.value("watches", Json())),
                      str(f.value("unwatched", Json())), str(f.value("raised", Json())),
                      str(f.value("why", Json()))});
    }
    print_table(rows, "  ");
  }

  section("State files");
  std::vector<std::vector<std::string>> health;
  for (const char* key : {"cron_state", "at_state"}) {
    Json h = r.value(key, Json());
    if (!h.is_object()) continue;
    std::string state = h.value("state", "none");
    std::string text = state;
    if (h.contains("path")) text += "  " + str(h["path"]);
    if (state == "failing") {
      text +=
          "  since " + str(h.value("failing_since", Json())) + ": " + str(h.value("error", Json()));
    }
    health.push_back({std::string(key) + ":", text});
  }
  print_table(health, "  ");

  auto plugins = r.value("plugins", Json::object());
  if (!plugins.empty()) {
    section("Plugins");
    std::vector<std::vector<std::string>> rows{{"PLUGIN", "STATE", "ERROR"}};
    for (const auto& [name, p] : plugins.items()) {
      rows.push_back({name, str(p.value("state", Json())), str(p.value("error", Json()))});
    }
    print_table(rows, "  ");
  }

  section("Clients");
  auto detail = r.value("clients_detail", Json::array());
  if (detail.empty()) {
    std::cout << "  none\n";
  } else {
    std::vector<std::vector<std::string>> rows{
        {"CLIENT", "NAME", "GROUP", "UID", "PID", "SUBSCRIPTIONS", "QUEUE", "UNACKED", "DROPPED"}};
    for (const auto& cl : detail) {
      rows.push_back({str(cl.value("client", Json())), str(cl.value("name", Json())),
                      str(cl.value("group", Json())), str(cl.value("uid", Json())),
                      str(cl.value("pid", Json())), str(cl.value("subscriptions", Json())),
                      str(cl.value("queue", Json())), str(cl.value("unacked", Json())),
                      str(cl.value("dropped", Json()))});
    }
    print_table(rows, "  ");
  }
}

int cmd_status(Client& c, const Options& o) {
  auto r = c.call("status");
  if (!r) return fail("status", r.error());
  if (o.human) {
    print_status(*r);
  } else {
    print_json(*r);
  }
  return kExitOk;
}

int cmd_metrics(Client& c, const Options& o) {
  auto r = c.call("metrics");
  if (!r) return fail("metrics", r.error());
  if (o.json) {
    print_json(*r);
  } else {
    std::cout << r->value("text", "");
  }
  return kExitOk;
}

int cmd_reload(Client& c, const Options& o) {
  auto r = c.call("reload", Json::object(), std::chrono::minutes(5));
  if (!r) {
    if (r.error().code == tocsin::ErrorCode::transport) return fail("reload", r.error());
    std::cerr << "tocsinctl: reload failed (code " << tocsin::rpc_code(r.error().code) << "):\n"
              << r.error().message << "\n";
    return kExitDaemonError;
  }
  if (o.human) {
    std::cout << "reloaded\n";
  } else {
    print_json(*r);
  }
  return kExitOk;
}

// Any add_* method: prints the new source's id.
int cmd_add(Client& c, const Options& o, const std::string& method, const Json& params) {
  auto r = c.call(method, params);
  if (!r) return fail(method, r.error());
  if (o.human) {
    std::cout << r->value("id", "") << "\n";
  } else {
    print_json(*r);
  }
  return kExitOk;
}

// `add KIND KEY=VALUE...`: the params of add_KIND, each VALUE as JSON when it reads as JSON (a
// number, true, a list) and as a string otherwise. Works for every source kind, present or to
// come, since the daemon reads the params with the kind's own schema.
int cmd_add_generic(Client& c, const Options& o, const std::string& kind,
                    const std::vector<std::string>& fields) {
  Json params = Json::object();
  for (const std::string& f : fields) {
    auto eq = f.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "tocsinctl: add: expected KEY=VALUE, got \"" << f << "\"\n";
      return kExitUsage;
    }
    std::string value = f.substr(eq + 1);
    Json parsed = Json::parse(value, nullptr, /*allow_exceptions=*/false);
    params[f.substr(0, eq)] = parsed.is_discarded() || parsed.is_string() ? Json(value) : parsed;
  }
  if (auto s = params.find("signal"); s != params.end() && s->is_string()) {
    *s = signal_arg(s->get<std::string>());
  }
  return cmd_add(c, o, "add_" + kind, params);
}

struct TimerArgs {
  std::string signal, every, after, clock, id;
  std::uint64_t iterations = 0;
  bool rb = false;
};

int cmd_add_timer(Client& c, const Options& o, const TimerArgs& a) {
  Json params{{"signal", signal_arg(a.signal)}, {"every", a.every}};
  if (!a.after.empty()) params["after"] = a.after;
  if (!a.clock.empty()) params["clock"] = a.clock;
  if (!a.id.empty()) params["id"] = a.id;
  if (a.iterations) params["iterations"] = a.iterations;
  return cmd_add(c, o, a.rb ? "add_rb_timer" : "add_timer", params);
}

struct CronArgs {
  std::string signal, schedule, tz, jitter, missed, id;
  std::uint64_t iterations = 0;
};

int cmd_add_cron(Client& c, const Options& o, const CronArgs& a) {
  Json params{{"signal", signal_arg(a.signal)}, {"schedule", a.schedule}};
  if (!a.tz.empty()) params["tz"] = a.tz;
  if (!a.jitter.empty()) params["jitter"] = a.jitter;
  if (!a.missed.empty()) params["missed"] = a.missed;
  if (!a.id.empty()) params["id"] = a.id;
  if (a.iterations) params["iterations"] = a.iterations;
  return cmd_add(c, o, "add_cron", params);
}

struct AtArgs {
  std::string signal, time, tz, missed, id;
};

int cmd_add_at(Client& c, const Options& o, const AtArgs& a) {
  Json params{{"signal", signal_arg(a.signal)}, {"time", a.time}};
  if (!a.tz.empty()) params["tz"] = a.tz;
  if (!a.missed.empty()) params["missed"] = a.missed;
  if (!a.id.empty()) params["id"] = a.id;
  return cmd_add(c, o, "add_at", params);
}

// Pure: parses the expression and prints its next instants; needs no daemon.
int cmd_cron_next(const std::string& expr, const std::string& tz, const std::string& from,
                  std::int64_t count) {
  namespace cron = tocsin::cron;
  cron::Parsed p = cron::parse(expr);
  if (!p.schedule) {
    std::cerr << "tocsinctl: cron-next: column " << p.error.column << ": " << p.error.message
              << "\n  " << expr << "\n  " << std::string(static_cast<std::size_t>(p.error.column - 1), ' ')
              << "^\n";
    return 1;
  }
  if (!p.schedule->zone.empty() && !tz.empty() && p.schedule->zone != tz) {
    std::cerr << "tocsinctl: cron-next: the expression sets CRON_TZ=" << p.schedule->zone
              << " and --tz says " << tz << "; keep one\n";
    return 1;
  }
  std::string why;
  const date::time_zone* zone =
      cron::find_zone(p.schedule->zone.empty() ? tz : p.schedule->zone, &why);
  if (zone == nullptr) {
    std::cerr << "tocsinctl: cron-next: " << why << "\n";
    return 1;
  }
  cron::Seconds t = std::chrono::time_point_cast<std::chrono::seconds>(
      std::chrono::system_clock::now());
  if (!from.empty()) {
    auto f = cron::parse_instant(from, *zone);
    if (!f) {
      std::cerr << "tocsinctl: cron-next: --from " << from
                << ": expected ISO 8601 such as 2026-03-29T01:30:00+01:00, 2026-03-29T01:30 (in "
                   "the zone) or 2026-03-29\n";
      return 1;
    }
    t = *f - std::chrono::seconds{1};  // --from itself counts when it is an instant
  }
  if (p.schedule->reboot) {
    std::cerr << "tocsinctl: cron-next: @reboot has no instants; it fires once when tocsind starts\n";
    return 0;
  }
  for (std::int64_t i = 0; i < count; ++i) {
    auto next = cron::next_fire(*p.schedule, *zone, t);
    if (!next) break;
    std::cout << cron::format_in_zone(*next, *zone) << "\n";
    t = *next;
  }
  return 0;
}

struct FileMonitorArgs {
  std::string signal, path, match, settle, max_delay, id;
  std::vector<std::string> events;
  std::uint64_t iterations = 0;
  bool recursive = false;
};

int cmd_add_file_monitor(Client& c, const Options& o, const FileMonitorArgs& a) {
  Json params{{"signal", signal_arg(a.signal)}, {"path", a.path}};
  if (a.recursive) params["recursive"] = true;
  if (!a.events.empty()) params["events"] = a.events;
  if (!a.match.empty()) params["match"] = a.match;
  if (!a.settle.empty()) params["settle"] = a.settle;
  if (!a.max_delay.empty()) params["max_delay"] = a.max_delay;
  if (a.iterations) params["iterations"] = a.iterations;
  if (!a.id.empty()) params["id"] = a.id;
  return cmd_add(c, o, "add_file_monitor", params);
}

int cmd_remove(Client& c, const Options& o, const std::string& id, bool force) {
  Json params{{"id", id}};
  if (force) params["force"] = true;
  auto r = c.call("remove_source", params);
  if (!r) return fail("remove_source", r.error());
  if (!o.human) print_json(*r);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tocsinctl: drive and inspect tocsind"};
  app.require_subcommand(1);
  app.fallthrough();  // --socket and --json are accepted after the command too
  app.set_version_flag("--version", std::string("tocsinctl ") + TOCSIN_VERSION);

  Options o;
  app.add_option("--socket", o.socket, "the daemon's Unix socket")
      ->envname("TOCSIN_SOCKET")
      ->capture_default_str();
  app.add_flag("--json", o.json, "print one JSON object per line");

  std::string raise_signal, raise_payload;
  auto* raise = app.add_subcommand("raise", "raise a signal; prints the event's seq");
  raise->add_option("SIGNAL", raise_signal, "signal number or name")->required();
  raise->add_option("PAYLOAD", raise_payload, "the event's payload (a string)");

  std::vector<std::string> sub_signals, sub_sources;
  bool sub_ack = false;
  std::int64_t sub_prefetch = 0;
  std::int64_t sub_count = 0;
  auto* subscribe = app.add_subcommand("subscribe", "print events until Ctrl-C or --count");
  subscribe->add_option("SIGNAL", sub_signals, "signal numbers or names, or '*' for all")
      ->required();
  auto* ack_flag =
      subscribe->add_flag("--ack", sub_ack, "take one-of deliveries and acknowledge each event");
  subscribe
      ->add_option("--prefetch", sub_prefetch,
                   "with --ack: the most unacked one-of events held at once (default: the "
                   "daemon's limits.prefetch)")
      ->check(CLI::Range(1, 65536))
      ->needs(ack_flag);
  subscribe->add_option("--source", sub_sources, "only events from this source kind or id")
      ->allow_extra_args(false);
  subscribe->add_option("--count", sub_count, "stop after N events")
      ->check(CLI::PositiveNumber);

  std::string wait_signal, wait_timeout;
  auto* wait = app.add_subcommand("wait", "print the next unhandled event; exit 4 on timeout");
  wait->add_option("SIGNAL", wait_signal, "signal number or name (default: any)");
  wait->add_option("--timeout", wait_timeout, "give up after this long (\"250ms\", \"2s\")");

  auto* table = app.add_subcommand("table", "the signal table with its counters");
  auto* status = app.add_subcommand("status", "the daemon's state and its clients");
  bool timers_all = false;
  auto* timers = app.add_subcommand(
      "timers", "timers, rb_timers, cron jobs and at entries, by next fire (list-timers)");
  timers->add_flag("--all", timers_all, "also those without a next fire (fired, missed, passed)");
  auto* metrics = app.add_subcommand("metrics", "Prometheus metrics (text)");
  auto* reload = app.add_subcommand("reload", "re-read the configuration; waits for the outcome");

  TimerArgs timer_args;
  auto add_timer_options = [&](CLI::App* cmd) {
    cmd->add_option("SIGNAL", timer_args.signal, "signal number or name")->required();
    cmd->add_option("EVERY", timer_args.every, "period (\"10ms\", \"2s\", \"5m\")")->required();
    cmd->add_option("--after", timer_args.after, "first expiry (default: EVERY)");
    cmd->add_option("--clock", timer_args.clock, "monotonic (default), boottime or realtime");
    cmd->add_option("--iterations", timer_args.iterations, "fire this many times (0 = forever)");
    cmd->add_option("--id", timer_args.id, "the source's id (default: generated)");
  };
  auto* add_timer = app.add_subcommand("add-timer", "add a kernel timer; prints its id");
  add_timer_options(add_timer);
  add_timer->add_flag("--rb", timer_args.rb, "an rb_timer instead (same as add-rb-timer)");
  auto* add_rb_timer = app.add_subcommand("add-rb-timer", "add a user-space timer; prints its id");
  add_timer_options(add_rb_timer);
  CronArgs cron_args;
  auto* add_cron = app.add_subcommand("add-cron", "add a cron job; prints its id");
  add_cron->add_option("SIGNAL", cron_args.signal, "signal number or name")->required();
  add_cron->add_option("SCHEDULE", cron_args.schedule, "cron expression, e.g. '*/5 * * * *'")
      ->required();
  add_cron->add_option("--tz", cron_args.tz, "IANA zone (default: the daemon's)");
  add_cron->add_option("--jitter", cron_args.jitter, "random delay up to this (\"30s\")");
  add_cron->add_option("--missed", cron_args.missed, "skip (default) or once")
      ->check(CLI::IsMember({"skip", "once"}));
  add_cron->add_option("--iterations", cron_args.iterations, "fire this many times (0 = forever)");
  add_cron->add_option("--id", cron_args.id, "the job's id (default: generated)");

  std::string cron_expr, cron_tz, cron_from;
  std::int64_t cron_count = 5;
  auto* cron_next = app.add_subcommand(
      "cron-next", "print the next instants of a cron expression (needs no daemon)");
  cron_next->add_option("EXPR", cron_expr, "cron expression, e.g. '0 3 * * *'")->required();
  cron_next->add_option("--tz", cron_tz, "IANA zone (default: the local zone)");
  cron_next->add_option("--from", cron_from, "start here, ISO 8601 (default: now)");
  cron_next->add_option("--count", cron_count, "how many (default 5)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100000}));

  FileMonitorArgs file_args;
  auto* add_file_monitor =
      app.add_subcommand("add-file-monitor", "add an inotify file monitor; prints its id");
  add_file_monitor->add_option("SIGNAL", file_args.signal, "signal number or name")->required();
  add_file_monitor->add_option("PATH", file_args.path, "absolute path, a file or a directory")
      ->required();
  add_file_monitor->add_flag("--recursive", file_args.recursive, "watch subdirectories too");
  add_file_monitor
      ->add_option("--event", file_args.events,
                   "create, modify, close_write, delete, move or attrib (repeat; default: all)")
      ->allow_extra_args(false);
  add_file_monitor->add_option("--match", file_args.match, "glob on the file name (\"*.conf\")");
  add_file_monitor->add_option("--settle", file_args.settle,
                               "quiet period that coalesces a burst (\"50ms\")");
  add_file_monitor->add_option("--max-delay", file_args.max_delay,
                               "a burst never delays an event longer than this");
  add_file_monitor->add_option("--iterations", file_args.iterations,
                               "raise this many times (0 = forever)");
  add_file_monitor->add_option("--id", file_args.id, "the source's id (default: generated)");
  AtArgs at_args;
  auto* add_at = app.add_subcommand("add-at", "fire a signal once at an instant; prints its id");
  add_at->add_option("SIGNAL", at_args.signal, "signal number or name")->required();
  add_at->add_option("TIME", at_args.time,
                     "2026-12-24T18:00:00+01:00, or a wall time 2026-12-24T18:00 (see --tz)")
      ->required();
  add_at->add_option("--tz", at_args.tz, "IANA zone of a wall time (default: the daemon's)");
  add_at->add_option("--missed", at_args.missed,
                     "skip (default) or once: fire if the instant passed while tocsind was down")
      ->check(CLI::IsMember({"skip", "once"}));
  add_at->add_option("--id", at_args.id, "the source's id (default: generated)");
  std::string add_kind;
  std::vector<std::string> add_fields;
  auto* add = app.add_subcommand(
      "add", "add a source of any kind: add KIND KEY=VALUE... calls add_KIND; prints its id");
  add->add_option("KIND", add_kind, "timer, rb_timer, cron, file_monitor, at, ...")->required();
  add->add_option("FIELDS", add_fields, "KEY=VALUE, as in the YAML (VALUE as JSON if it is)");
  std::string remove_id;
  auto* remove = app.add_subcommand("remove", "remove a source by id");
  remove->add_option("ID", remove_id, "the source's id")->required();
  bool remove_force = false;
  remove->add_flag("--force", remove_force,
                   "remove it for every client that declared it (admin); without, this client "
                   "leaves a shared source");

  std::string config_path;
  auto* check = app.add_subcommand("check", "validate a configuration file (as tocsind --check)");
  check->add_option("CONFIG", config_path, "configuration file")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }

  if (*check) {
    tocsin::DaemonOptions options;
    options.config_path = config_path;
    auto loaded = tocsin::load_for_daemon(options);
    for (const auto& e : loaded.errors) std::cerr << tocsin::config::to_string(e) << "\n";
    if (!loaded.config) return 1;
    std::cout << config_path << ": ok\n";
    return 0;
  }
  if (*cron_next) return cmd_cron_next(cron_expr, cron_tz, cron_from, cron_count);
  if (*wait && !wait_timeout.empty()) {
    std::string why;
    if (!tocsin::config::parse_duration(wait_timeout, &why)) {
      std::cerr << "tocsinctl: wait: --timeout " << wait_timeout << ": " << why << "\n";
      return kExitUsage;
    }
  }

  if (*add_file_monitor) {
    for (const auto& [flag, value] : {std::pair{"--settle", &file_args.settle},
                                      std::pair{"--max-delay", &file_args.max_delay}}) {
      std::string why;
      if (!value->empty() && !tocsin::config::parse_duration(*value, &why)) {
        std::cerr << "tocsinctl: add-file-monitor: " << flag << " " << *value << ": " << why
                  << "\n";
        return kExitUsage;
      }
    }
  }

  o.human = !o.json && ::isatty(STDOUT_FILENO);
  auto client = Client::connect(o.socket);
  if (!client) {
    std::cerr << "tocsinctl: " << client.error().message << "\n";
    return kExitTransport;
  }
  Client& c = *client;
  if (*raise) return cmd_raise(c, o, raise_signal, raise_payload);
  if (*subscribe) return cmd_subscribe(c, o, sub_signals, sub_ack, sub_prefetch, sub_sources, sub_count);
  if (*wait) return cmd_wait(c, o, wait_signal, wait_timeout);
  if (*table) return cmd_table(c, o);
  if (*status) return cmd_status(c, o);
  if (*timers) return cmd_timers(c, o, timers_all);
  if (*metrics) return cmd_metrics(c, o);
  if (*reload) return cmd_reload(c, o);
  if (*add_rb_timer) timer_args.rb = true;
  if (*add_timer || *add_rb_timer) return cmd_add_timer(c, o, timer_args);
  if (*add_cron) return cmd_add_cron(c, o, cron_args);
  if (*add_file_monitor) return cmd_add_file_monitor(c, o, file_args);
  if (*add_at) return cmd_add_at(c, o, at_args);
  if (*add) return cmd_add_generic(c, o, add_kind, add_fields);
  if (*remove) return cmd_remove(c, o, remove_id, remove_force);
  return kExitUsage;
}

// What a person sees of `tocsinctl timers` and `tocsinctl status` (issue 17): tocsinctl prints
// tables only when its stdout is a terminal, so these tests give it one (a pseudo-terminal from
// openpty) against the real daemon, and read the screen. The local zone is fixed (TZ=UTC) so that
// a cron job in Asia/Kolkata keeps another wall time than the NEXT column.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

extern char** environ;

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

struct Screen {
  std::vector<std::string> lines;  // without the terminal's \r
  int exit_code = -1;
};

// Runs tocsinctl with its stdout on a pseudo-terminal and reads what it printed there until it
// closed the terminal; stderr stays the test's.
Screen run_on_tty(const std::vector<std::string>& args) {
  Screen screen;
  int master = -1, slave = -1;
  winsize size{};
  size.ws_row = 50;
  size.ws_col = 250;
  if (::openpty(&master, &slave, nullptr, nullptr, &size) != 0) {
    ADD_FAILURE() << "openpty: " << std::strerror(errno);
    return screen;
  }
  ::fcntl(master, F_SETFD, FD_CLOEXEC);
  ::fcntl(slave, F_SETFD, FD_CLOEXEC);  // dup2 onto 1 clears it for the child's stdout
  std::vector<std::string> env_s{"TZ=UTC"};
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "TZ=", 3) != 0) env_s.emplace_back(*e);
  }
  std::vector<char*> env;
  for (auto& e : env_s) env.push_back(e.data());
  env.push_back(nullptr);
  std::vector<std::string> argv_s{TOCSINCTL_PATH};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, slave, 1);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, TOCSINCTL_PATH, &actions, nullptr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(slave);
  if (rc != 0) {
    ::close(master);
    ADD_FAILURE() << "spawn " << TOCSINCTL_PATH << ": " << std::strerror(rc);
    return screen;
  }
  std::string text;
  const Deadline until = deadline_in(kWait);
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO: the child closed the terminal's last slave fd
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  screen.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::erase(text, '\r');
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) screen.lines.push_back(line);
  return screen;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(' ');
  auto e = s.find_last_not_of(' ');
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// A table's cells, cut at the header's column starts (cells themselves hold single spaces).
struct Table {
  std::vector<std::string> columns;
  std::vector<std::size_t> starts;
  std::vector<std::vector<std::string>> rows;

  std::string cell(std::size_t row, const std::string& column) const {
    auto it = std::find(columns.begin(), columns.end(), column);
    if (it == columns.end()) return "<no column " + column + ">";
    return rows.at(row).at(static_cast<std::size_t>(it - columns.begin()));
  }
};

// The table whose header line is lines[at]; its rows go to the first empty line.
Table table_at(const std::vector<std::string>& lines, std::size_t at) {
  Table t;
  const std::string& header = lines.at(at);
  for (std::size_t i = header.find_first_not_of(' '); i < header.size();) {
    std::size_t end = header.find("  ", i);
    if (end == std::string::npos) end = header.size();
    t.columns.push_back(header.substr(i, end - i));
    t.starts.push_back(i);
    i = header.find_first_not_of(' ', end);
  }
  for (std::size_t r = at + 1; r < lines.size() && !trim(lines[r]).empty(); ++r) {
    std::vector<std::string> cells;
    for (std::size_t c = 0; c < t.starts.size(); ++c) {
      std::size_t from = t.starts[c];
      std::size_t to = c + 1 < t.starts.size() ? t.starts[c + 1] : std::string::npos;
      cells.push_back(from < lines[r].size() ? trim(lines[r].substr(from, to - from)) : "");
    }
    t.rows.push_back(std::move(cells));
  }
  return t;
}

std::size_t line_starting(const std::vector<std::string>& lines, const std::string& prefix) {
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (trim(lines[i]).rfind(prefix, 0) == 0) return i;
  }
  return lines.size();
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// "2026-12-02T15:40:00Z" (or with a fraction) -> "2026-12-02 15:40:00": what TZ=UTC shows.
std::string utc_wall(const std::string& rfc3339) {
  return rfc3339.substr(0, 10) + " " + rfc3339.substr(11, 8);
}

struct TocsinctlTtyTest : ::testing::Test {
  TempDir dir;
  std::string sock = dir.file("tocsin.sock");
  std::unique_ptr<DaemonProcess> daemon;

  void SetUp() override {
    std::time_t later = std::time(nullptr) + 3 * 86400;
    std::tm tm{};
    ::gmtime_r(&later, &tm);
    char at_time[32];
    std::strftime(at_time, sizeof at_time, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::string config = dir.write("tocsin.yaml", "state_dir: " + dir.file("state") + R"Y(
signals:
  40: {name: tick, handlers: [{target: subscribers}]}
timers: [{id: t-hourly, signal: tick, every: 1h}]
rb_timers: [{id: rb-half, signal: tick, every: 30m}]
cron: [{id: ist-morning, signal: tick, schedule: '0 9 * * *', tz: Asia/Kolkata}]
posix_signals: {USR2: tick}
at:
  - {id: at-gone, signal: tick, time: '2020-01-01T00:00:00Z'}
  - {id: at-later, signal: tick, time: ')Y" + std::string(at_time) +
                                                      "'}\n");
    daemon = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"--config", config, "--socket", sock, "--log-level", "info"});
    daemon->expect_ready();
  }

  Json status() {
    LineClient c(sock);
    return c.call("status")["result"];
  }

  Json source(const Json& st, const std::string& id) {
    for (const auto& s : st["sources"]["list"]) {
      if (s["id"] == id) return s;
    }
    return Json();
  }
};

TEST_F(TocsinctlTtyTest, TimersAreListedByNextFireWithTheCronJobsZone) {
  Screen s = run_on_tty({"--socket", sock, "timers"});
  ASSERT_EQ(s.exit_code, 0) << joined(s.lines);
  ASSERT_FALSE(s.lines.empty());
  Table t = table_at(s.lines, 0);
  EXPECT_EQ(t.columns, (std::vector<std::string>{"NEXT", "LEFT", "LAST", "PASSED", "ID", "KIND",
                                                 "SIGNAL", "SCHEDULE"}))
      << joined(s.lines);

  // The order is the daemon's next fires, sorted; the passed entry and the posix signal are not
  // timers that will fire. Which kinds are timers is the daemon's to say (`timed`), not a list of
  // kind names in tocsinctl.
  Json st = status();
  for (const auto& src : st["sources"]["list"]) {
    EXPECT_EQ(src.value("timed", false), src["kind"] != "posix") << src.dump();
  }
  std::vector<std::pair<std::string, std::string>> due;  // next_fire, id
  for (const char* id : {"t-hourly", "rb-half", "ist-morning", "at-later"}) {
    Json src = source(st, id);
    ASSERT_TRUE(src["next_fire"].is_string()) << src.dump();
    due.emplace_back(src["next_fire"].get<std::string>().substr(0, 19), id);
  }
  std::sort(due.begin(), due.end());
  std::vector<std::string> want, got;
  for (const auto& [next, id] : due) want.push_back(id);
  for (std::size_t r = 0; r < t.rows.size(); ++r) got.push_back(t.cell(r, "ID"));
  EXPECT_EQ(got, want) << joined(s.lines);
  EXPECT_EQ(want.back(), "at-later") << "three days ahead: after the others";

  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    Json src = source(st, t.cell(r, "ID"));
    EXPECT_EQ(t.cell(r, "KIND"), src["kind"].get<std::string>());
    EXPECT_EQ(t.cell(r, "SIGNAL"), "40");
    // NEXT in the local zone (UTC here), as systemctl shows it: "Wed 2026-12-02 15:40:00 UTC".
    std::string next = t.cell(r, "NEXT");
    EXPECT_NE(next.find(utc_wall(src["next_fire"].get<std::string>()) + " UTC"), std::string::npos)
        << next;
    EXPECT_EQ(t.cell(r, "LAST"), "-");
    EXPECT_EQ(t.cell(r, "PASSED"), "-");
  }
  EXPECT_EQ(t.cell(0, "LEFT").empty(), false);
  const std::size_t at_row = want.size() - 1;
  EXPECT_NE(t.cell(at_row, "LEFT").find("days"), std::string::npos) << t.cell(at_row, "LEFT");

  // The cron job fires at 09:00 in its own zone: that wall time is in its SCHEDULE cell, as the
  // daemon computed it.
  auto cron_row =
      static_cast<std::size_t>(std::find(got.begin(), got.end(), "ist-morning") - got.begin());
  ASSERT_LT(cron_row, got.size());
  std::string zone_next = source(st, "ist-morning")["next"];
  zone_next[10] = ' ';
  std::string schedule = t.cell(cron_row, "SCHEDULE");
  EXPECT_NE(schedule.find("0 9 * * *"), std::string::npos) << schedule;
  EXPECT_NE(schedule.find("Asia/Kolkata"), std::string::npos) << schedule;
  EXPECT_NE(schedule.find(zone_next), std::string::npos) << schedule;
  EXPECT_NE(schedule.find(" 09:00:00+05:30"), std::string::npos) << schedule;

  EXPECT_NE(joined(s.lines).find("4 timers listed."), std::string::npos) << joined(s.lines);
  EXPECT_NE(joined(s.lines).find("--all"), std::string::npos) << "one was left out";
}

TEST_F(TocsinctlTtyTest, TimersAllShowsRetiredEntriesLastAndJsonIsOneObjectPerRow) {
  Screen s = run_on_tty({"--socket", sock, "timers", "--all"});
  ASSERT_EQ(s.exit_code, 0) << joined(s.lines);
  Table t = table_at(s.lines, 0);
  ASSERT_EQ(t.rows.size(), 5u) << joined(s.lines);
  EXPECT_EQ(t.cell(4, "ID"), "at-gone");
  EXPECT_EQ(t.cell(4, "NEXT"), "-");
  EXPECT_EQ(t.cell(4, "LEFT"), "passed") << "the state where there is no next fire";
  EXPECT_NE(joined(s.lines).find("5 timers listed."), std::string::npos) << joined(s.lines);
  EXPECT_EQ(joined(s.lines).find("pass --all"), std::string::npos);

  Screen j = run_on_tty({"--socket", sock, "timers", "--all", "--json"});
  ASSERT_EQ(j.exit_code, 0);
  std::vector<std::string> ids;
  for (const auto& line : j.lines) {
    Json row = Json::parse(line, nullptr, false);
    ASSERT_TRUE(row.is_object()) << line;
    ids.push_back(row["id"]);
  }
  std::vector<std::string> table_ids;
  for (std::size_t r = 0; r < t.rows.size(); ++r) table_ids.push_back(t.cell(r, "ID"));
  EXPECT_EQ(ids, table_ids) << "the same rows, in the same order";
}

TEST_F(TocsinctlTtyTest, StatusOnATerminalIsSectionsAndTablesAndJsonIsUnchanged) {
  Screen s = run_on_tty({"--socket", sock, "status"});
  ASSERT_EQ(s.exit_code, 0) << joined(s.lines);
  const std::string all = joined(s.lines);
  std::size_t last = 0;
  for (const char* title : {"Daemon", "Sources", "State files", "Clients"}) {
    std::size_t at = line_starting(s.lines, title);
    ASSERT_LT(at, s.lines.size()) << title << " missing:\n" << all;
    EXPECT_GE(at, last) << title << " out of order:\n" << all;
    last = at;
  }
  std::size_t pid_line = line_starting(s.lines, "pid:");
  ASSERT_LT(pid_line, s.lines.size()) << all;
  EXPECT_EQ(trim(trim(s.lines[pid_line]).substr(4)), std::to_string(daemon->pid())) << all;
  EXPECT_LT(line_starting(s.lines, "last seq:"), s.lines.size()) << all;
  EXPECT_LT(line_starting(s.lines, "cron_state:"), s.lines.size()) << all;
  // The sources table: every source, the cron job with its zone's next fire.
  std::size_t header = line_starting(s.lines, "ID  ");
  ASSERT_LT(header, s.lines.size()) << all;
  Table t = table_at(s.lines, header);
  EXPECT_EQ(t.columns, (std::vector<std::string>{"ID", "KIND", "SIGNAL", "STATE", "FIRED", "NEXT",
                                                 "LEFT", "LAST", "SCHEDULE", "WHY"}))
      << all;
  std::vector<std::string> ids;
  for (std::size_t r = 0; r < t.rows.size(); ++r) ids.push_back(t.cell(r, "ID"));
  for (const char* id : {"t-hourly", "rb-half", "ist-morning", "at-gone", "at-later"}) {
    EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id << "\n" << all;
  }
  EXPECT_EQ(all.find("{\""), std::string::npos) << "no raw JSON on a terminal:\n" << all;

  Screen j = run_on_tty({"--socket", sock, "status", "--json"});
  ASSERT_EQ(j.exit_code, 0);
  ASSERT_EQ(j.lines.size(), 1u) << joined(j.lines);
  Json raw = Json::parse(j.lines[0], nullptr, false);
  ASSERT_TRUE(raw.is_object()) << j.lines[0];
  EXPECT_EQ(raw["pid"], daemon->pid());
  EXPECT_TRUE(raw["sources"]["list"].is_array());
}

}  // namespace
}  // namespace tocsin::testing

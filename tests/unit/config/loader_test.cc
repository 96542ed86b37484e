// Tests of the YAML configuration loader (daemon/config/): valid files and the values they give,
// invalid files and the exact position and message of each error, durations, POSIX signal names.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sources/cron/cron_spec.h"
#include "sources/file/file_spec.h"
#include "sources/posix/posix_spec.h"
#include "sources/timer/timer_spec.h"
#include "tocsin/config.h"

namespace tocsin::config {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string all_errors(const LoadResult& result) {
  std::string out;
  for (const ConfigError& e : result.errors) out += to_string(e) + "\n";
  return out;
}

// A configuration's sources of one kind, as their specs (copies).
template <typename Spec>
std::vector<Spec> of(const Config& c, SourceKind kind) {
  std::vector<Spec> out;
  for (const Spec* s : c.sources_of<Spec>(kind)) out.push_back(*s);
  return out;
}
std::vector<TimerSpec> timers_of(const Config& c) { return of<TimerSpec>(c, SourceKind::timer); }
std::vector<TimerSpec> rb_timers_of(const Config& c) {
  return of<TimerSpec>(c, SourceKind::rb_timer);
}
std::vector<FileMonitorSpec> file_monitors_of(const Config& c) {
  return of<FileMonitorSpec>(c, SourceKind::file);
}
std::vector<CronSpec> cron_of(const Config& c) { return of<CronSpec>(c, SourceKind::cron); }
std::vector<PosixSignalSpec> posix_of(const Config& c) {
  return of<PosixSignalSpec>(c, SourceKind::posix);
}

// Loads text that must be valid; the failure message lists every error.
Config load_valid(std::string_view yaml) {
  LoadResult result = load_config_string(yaml, "test.yaml");
  EXPECT_TRUE(result.errors.empty()) << all_errors(result);
  EXPECT_TRUE(result.config.has_value());
  return result.config.value_or(Config{});
}

// ---- valid configurations ----------------------------------------------------------------------

// SPEC §4's example, verbatim.
constexpr std::string_view kSpecExample =
    R"(socket: {path: /run/tocsin/tocsin.sock, mode: "0660", group: tocsin}
limits: {clients: 1024, line_bytes: 1048576, subscriber_queue: 65536, backlog: 65536}
log: {level: info}
state_dir: /var/lib/tocsin
plugin_path: [/usr/lib/tocsin/plugins]   # where plugins: are looked up
signals:                      # the table, keyed by number
  5:  {name: usr1, handlers: [{log: info}]}
  17:
    name: tmp-changed
    description: something in /tmp changed
    handlers:
      - exec: [/usr/local/bin/rebuild, --fast]
        timeout: 30s
        concurrency: 1
        overlap: queue          # queue | skip | kill
      - log: info
      - target: subscribers     # subscribers | subscriber | subscriber:NAME | group:NAME
    acl: {raise: [root, "@deploy"], subscribe: ["@tocsin"], declare: ["@webapp"]}   # users, @groups
  26: {name: tick, handlers: [{target: subscriber}]}
  30: {name: once}
timers:        [{id: tick, signal: tick, every: 2s}]
rb_timers:     [{signal: once, every: 40s, iterations: 1}]
file_monitors: [{signal: 17, path: /tmp, recursive: false, settle: 50ms, max_delay: 1s}]
cron:
  - {signal: 40, schedule: "*/5 * * * *", tz: Europe/Berlin, missed: once}
  - {signal: 41, uwsgi: [-5, -1, -1, -1, -1]}
posix_signals: {SIGUSR1: 5}
plugins:
  pgnotify: {conninfo: "host=/run/postgresql dbname=app", channels: {jobs: 50}, on_reconnect: 51}
)";

TEST(ConfigLoader, SpecExample) {
  Config c = load_valid(kSpecExample);
  EXPECT_EQ(c.file, "test.yaml");
  EXPECT_EQ(c.socket.path, "/run/tocsin/tocsin.sock");
  EXPECT_EQ(c.socket.mode, 0660u);
  EXPECT_EQ(c.socket.group, "tocsin");
  EXPECT_EQ(c.socket.admin_group, "");
  EXPECT_EQ(c.limits.clients, 1024u);
  EXPECT_EQ(c.limits.line_bytes, 1048576u);
  EXPECT_EQ(c.limits.payload_bytes, 65536u);  // default
  EXPECT_EQ(c.limits.ack_timeout, 30s);       // default
  EXPECT_EQ(c.log_level, LogLevel::info);
  EXPECT_EQ(c.state_dir, "/var/lib/tocsin");
  EXPECT_THAT(c.plugin_path, ElementsAre("/usr/lib/tocsin/plugins"));
  EXPECT_EQ(c.signals_where, (Location{"test.yaml", 6, 1}));

  ASSERT_EQ(c.signals.size(), 4u);
  EXPECT_EQ(c.signals[0].number, 5);
  EXPECT_EQ(c.signals[0].name, "usr1");
  EXPECT_EQ(c.signals[0].where, (Location{"test.yaml", 7, 3}));
  ASSERT_EQ(c.signals[0].handlers.size(), 1u);
  EXPECT_EQ(std::get<LogHandler>(c.signals[0].handlers[0].kind).level, LogLevel::info);

  const SignalSpec& tmp = c.signals[1];
  EXPECT_EQ(tmp.number, 17);
  EXPECT_EQ(tmp.name, "tmp-changed");
  EXPECT_EQ(tmp.description, "something in /tmp changed");
  ASSERT_EQ(tmp.handlers.size(), 3u);
  const auto& exec = std::get<ExecHandler>(tmp.handlers[0].kind);
  EXPECT_THAT(exec.argv, ElementsAre("/usr/local/bin/rebuild", "--fast"));
  EXPECT_EQ(exec.timeout, Millis{30s});
  EXPECT_EQ(exec.concurrency, 1u);
  EXPECT_EQ(exec.overlap, Overlap::queue);
  EXPECT_EQ(tmp.handlers[0].where, (Location{"test.yaml", 12, 9}));
  EXPECT_EQ(std::get<LogHandler>(tmp.handlers[1].kind).level, LogLevel::info);
  EXPECT_EQ(std::get<TargetHandler>(tmp.handlers[2].kind).kind, TargetKind::subscribers);
  ASSERT_TRUE(tmp.acl.raise.has_value());
  EXPECT_THAT(*tmp.acl.raise, ElementsAre("root", "@deploy"));
  ASSERT_TRUE(tmp.acl.subscribe.has_value());
  EXPECT_THAT(*tmp.acl.subscribe, ElementsAre("@tocsin"));
  ASSERT_TRUE(tmp.acl.declare.has_value());
  EXPECT_THAT(*tmp.acl.declare, ElementsAre("@webapp"));
  EXPECT_FALSE(c.signals[0].acl.raise.has_value());

  EXPECT_EQ(c.signals[2].number, 26);
  EXPECT_EQ(std::get<TargetHandler>(c.signals[2].handlers[0].kind).kind, TargetKind::subscriber);
  EXPECT_EQ(c.signals[3].number, 30);
  EXPECT_EQ(c.signals[3].name, "once");
  EXPECT_TRUE(c.signals[3].handlers.empty());

  ASSERT_EQ(timers_of(c).size(), 1u);
  EXPECT_EQ(timers_of(c)[0].id, "tick");
  EXPECT_EQ(timers_of(c)[0].signal, 26);  // resolved from the name
  EXPECT_EQ(timers_of(c)[0].every, 2s);
  EXPECT_FALSE(timers_of(c)[0].after.has_value());
  EXPECT_EQ(timers_of(c)[0].clock, ClockKind::monotonic);
  EXPECT_EQ(timers_of(c)[0].iterations, 0u);
  EXPECT_FALSE(timers_of(c)[0].clustered);
  EXPECT_EQ(timers_of(c)[0].where, (Location{"test.yaml", 21, 17}));

  ASSERT_EQ(rb_timers_of(c).size(), 1u);
  EXPECT_EQ(rb_timers_of(c)[0].id, "rb_timer-1");
  EXPECT_EQ(rb_timers_of(c)[0].signal, 30);
  EXPECT_EQ(rb_timers_of(c)[0].every, 40s);
  EXPECT_EQ(rb_timers_of(c)[0].iterations, 1u);

  ASSERT_EQ(file_monitors_of(c).size(), 1u);
  const FileMonitorSpec fm = file_monitors_of(c)[0];
  EXPECT_EQ(fm.id, "file-1");
  EXPECT_EQ(fm.signal, 17);
  EXPECT_EQ(fm.path, "/tmp");
  EXPECT_FALSE(fm.recursive);
  EXPECT_EQ(fm.events, static_cast<std::uint32_t>(kFileAllEvents));
  EXPECT_EQ(fm.match, "");
  EXPECT_EQ(fm.settle, 50ms);
  EXPECT_EQ(fm.max_delay, Millis{1s});

  ASSERT_EQ(cron_of(c).size(), 2u);
  EXPECT_EQ(cron_of(c)[0].id, "cron-1");
  EXPECT_EQ(cron_of(c)[0].signal, 40);  // a number with no table entry is fine
  EXPECT_EQ(cron_of(c)[0].schedule, "*/5 * * * *");
  // The first character of the expression, inside the quotes.
  EXPECT_FALSE(cron_of(c)[0].uwsgi.has_value());
  EXPECT_EQ(cron_of(c)[0].tz, "Europe/Berlin");
  EXPECT_EQ(cron_of(c)[0].missed, Missed::once);
  EXPECT_EQ(cron_of(c)[1].id, "cron-2");
  EXPECT_EQ(cron_of(c)[1].schedule, "");
  ASSERT_TRUE(cron_of(c)[1].uwsgi.has_value());
  EXPECT_THAT(*cron_of(c)[1].uwsgi, ElementsAre(-5, -1, -1, -1, -1));
  EXPECT_EQ(cron_of(c)[1].missed, Missed::skip);

  ASSERT_EQ(posix_of(c).size(), 1u);
  EXPECT_EQ(posix_of(c)[0].signame, "SIGUSR1");
  EXPECT_EQ(posix_of(c)[0].signo, SIGUSR1);
  EXPECT_EQ(posix_of(c)[0].signal, 5);

  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].name, "pgnotify");
  EXPECT_EQ(
      c.plugins[0].settings_json,
      R"({"channels":{"jobs":50},"conninfo":"host=/run/postgresql dbname=app","on_reconnect":51})");
  EXPECT_EQ(c.plugins[0].where, (Location{"test.yaml", 29, 3}));
}

TEST(ConfigLoader, MinimalConfigHasTheDefaults) {
  Config c = load_valid("signals: {}\n");
  Config defaults;
  EXPECT_TRUE(c.signals.empty());
  EXPECT_EQ(c.socket.path, defaults.socket.path);
  EXPECT_EQ(c.socket.mode, 0660u);
  EXPECT_EQ(c.limits.clients, 1024u);
  EXPECT_EQ(c.limits.sources, 1100000u);
  EXPECT_EQ(c.limits.exec_queue, 1024u);
  EXPECT_EQ(c.log_level, LogLevel::info);
  EXPECT_EQ(c.state_dir, "/var/lib/tocsin");
  EXPECT_THAT(c.plugin_path, ElementsAre("/usr/lib/tocsin/plugins"));
  EXPECT_TRUE(timers_of(c).empty());
  EXPECT_TRUE(posix_of(c).empty());
  EXPECT_EQ(c.signals_where, (Location{"test.yaml", 1, 1}));
}

TEST(ConfigLoader, EmptyEntriesAndEmptySections) {
  Config c = load_valid(R"(signals:
  30:
  7: {}
  2: {handlers: []}
  9: {name: nine, handlers:}
timers:
file_monitors: []
cron:
posix_signals:
plugins:
)");
  ASSERT_EQ(c.signals.size(), 4u);
  // Sorted by number, whatever the order in the file.
  EXPECT_EQ(c.signals[0].number, 2);
  EXPECT_EQ(c.signals[1].number, 7);
  EXPECT_EQ(c.signals[2].number, 9);
  EXPECT_EQ(c.signals[3].number, 30);
  for (const SignalSpec& s : c.signals) EXPECT_TRUE(s.handlers.empty());
  EXPECT_EQ(c.signals[3].name, "");
  EXPECT_EQ(c.signals[3].where, (Location{"test.yaml", 2, 3}));
  EXPECT_TRUE(timers_of(c).empty());
  EXPECT_TRUE(cron_of(c).empty());
}

TEST(ConfigLoader, DaemonWideSettings) {
  Config c = load_valid(R"(signals: {}
socket: {path: /tmp/t.sock, mode: 600, group: ops, admin_group: wheel}
limits:
  clients: 1
  line_bytes: 4096
  subscriber_queue: 10
  backlog: 20
  payload_bytes: 1
  subscriptions: 3
  sources: 4
  exec_queue: 5
  ack_timeout: 1m30s
log: {level: warning}
state_dir: /srv/state
plugin_path: [/a, /b]
)");
  EXPECT_EQ(c.socket.path, "/tmp/t.sock");
  EXPECT_EQ(c.socket.mode, 0600u);  // the text is read as octal, quoted or not
  EXPECT_EQ(c.socket.group, "ops");
  EXPECT_EQ(c.socket.admin_group, "wheel");
  EXPECT_EQ(c.limits.clients, 1u);
  EXPECT_EQ(c.limits.line_bytes, 4096u);
  EXPECT_EQ(c.limits.subscriber_queue, 10u);
  EXPECT_EQ(c.limits.backlog, 20u);
  EXPECT_EQ(c.limits.payload_bytes, 1u);
  EXPECT_EQ(c.limits.subscriptions, 3u);
  EXPECT_EQ(c.limits.sources, 4u);
  EXPECT_EQ(c.limits.exec_queue, 5u);
  EXPECT_EQ(c.limits.ack_timeout, 90s);
  EXPECT_EQ(c.log_level, LogLevel::warn);
  EXPECT_EQ(c.state_dir, "/srv/state");
  EXPECT_THAT(c.plugin_path, ElementsAre("/a", "/b"));

  EXPECT_EQ(load_valid("signals: {}\nlog: {level: off}\n").log_level, LogLevel::off);
  EXPECT_EQ(load_valid("signals: {}\nsocket: {mode: \"0o640\"}\n").socket.mode, 0640u);
  EXPECT_TRUE(load_valid("signals: {}\nplugin_path: []\n").plugin_path.empty());
}

TEST(ConfigLoader, MetricsListen) {
  EXPECT_FALSE(load_valid("signals: {}\n").metrics.has_value());  // off unless set
  Config v4 = load_valid("signals: {}\nmetrics: {listen: \"127.0.0.1:9750\"}\n");
  ASSERT_TRUE(v4.metrics.has_value());
  EXPECT_EQ(v4.metrics->address, "127.0.0.1");
  EXPECT_EQ(v4.metrics->port, 9750);
  EXPECT_EQ(v4.metrics->listen, "127.0.0.1:9750");
  EXPECT_EQ(v4.metrics->where.line, 2);
  Config v6 = load_valid("signals: {}\nmetrics:\n  listen: \"[::1]:0\"\n");
  ASSERT_TRUE(v6.metrics.has_value());
  EXPECT_EQ(v6.metrics->address, "::1");
  EXPECT_EQ(v6.metrics->port, 0);
  Config any = load_valid("signals: {}\nmetrics: {listen: 0.0.0.0:9100}\n");
  EXPECT_EQ(any.metrics->address, "0.0.0.0");
}

TEST(ConfigLoader, AllHandlerKinds) {
  Config c = load_valid(R"(signals:
  1:
    handlers:
      - {exec: [/bin/echo, "", hi], timeout: 250ms, concurrency: 4, overlap: kill}
      - {exec: [/bin/true], overlap: skip}
      - {log: trace}
      - {log: critical}
      - {target: subscriber:web-1}
      - {target: group:workers}
      - {plugin: pgnotify.notify}
      - plugin: pgnotify.notify
        with:
          channel: events
          port: 5432
          neg: -7
          big: 18446744073709551615
          quoted: "5"
          flag: true
          other: yes
          ratio: 1.5
          nothing: ~
          list: [1, a, false, {x: y}]
plugins: {pgnotify: }
)");
  ASSERT_EQ(c.signals.size(), 1u);
  const auto& h = c.signals[0].handlers;
  ASSERT_EQ(h.size(), 8u);
  const auto& e0 = std::get<ExecHandler>(h[0].kind);
  EXPECT_THAT(e0.argv, ElementsAre("/bin/echo", "", "hi"));
  EXPECT_EQ(e0.timeout, Millis{250});
  EXPECT_EQ(e0.concurrency, 4u);
  EXPECT_EQ(e0.overlap, Overlap::kill);
  const auto& e1 = std::get<ExecHandler>(h[1].kind);
  EXPECT_FALSE(e1.timeout.has_value());
  EXPECT_EQ(e1.concurrency, 1u);
  EXPECT_EQ(e1.overlap, Overlap::skip);
  EXPECT_EQ(std::get<LogHandler>(h[2].kind).level, LogLevel::trace);
  EXPECT_EQ(std::get<LogHandler>(h[3].kind).level, LogLevel::critical);
  EXPECT_EQ(std::get<TargetHandler>(h[4].kind),
            (TargetHandler{TargetKind::subscriber_named, "web-1"}));
  EXPECT_EQ(std::get<TargetHandler>(h[5].kind), (TargetHandler{TargetKind::group, "workers"}));
  EXPECT_EQ(std::get<PluginHandler>(h[6].kind), (PluginHandler{"pgnotify", "notify", "{}"}));
  const auto& p = std::get<PluginHandler>(h[7].kind);
  EXPECT_EQ(p.plugin, "pgnotify");
  EXPECT_EQ(p.handler, "notify");
  EXPECT_EQ(p.with_json,
            R"({"big":18446744073709551615,"channel":"events","flag":true,"list":[1,"a",false,)"
            R"({"x":"y"}],"neg":-7,"nothing":null,"other":"yes","port":5432,"quoted":"5",)"
            R"("ratio":"1.5"})");
  EXPECT_EQ(h[7].where, (Location{"test.yaml", 11, 9}));
  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].settings_json, "{}");
}

// One-of delivery settings (issue 15): a dead letter may name an entry further down the file.
TEST(ConfigLoader, CreditAndDeadLetters) {
  Config c = load_valid(R"(limits: {prefetch: 4}
signals:
  26: {name: tick, handlers: [{target: subscriber}], max_deliveries: 5, dead_letter: tick-failed}
  27: {name: tick-failed, handlers: [{log: warn}]}
  28: {name: plain}
)");
  EXPECT_EQ(c.limits.prefetch, 4u);
  EXPECT_EQ(c.signals[0].max_deliveries, 5u);
  EXPECT_EQ(c.signals[0].dead_letter, std::optional<SignalId>(27));
  EXPECT_EQ(c.signals[2].max_deliveries, 0u);
  EXPECT_EQ(c.signals[2].dead_letter, std::nullopt);
  EXPECT_EQ(load_valid("signals: {}\n").limits.prefetch, 32u);
}

TEST(ConfigLoader, HandlerEqualityIgnoresTheLocation) {
  Config a = load_valid("signals: {1: {handlers: [{log: info}]}}\n");
  Config b = load_valid("signals:\n  1:\n    handlers:\n      - log: info\n");
  ASSERT_EQ(a.signals[0].handlers.size(), 1u);
  ASSERT_EQ(b.signals[0].handlers.size(), 1u);
  EXPECT_NE(a.signals[0].handlers[0].where, b.signals[0].handlers[0].where);
  EXPECT_EQ(a.signals[0].handlers[0], b.signals[0].handlers[0]);
}

TEST(ConfigLoader, SourcesAndGeneratedIds) {
  Config c = load_valid(R"(signals: {200: {name: a.b_c-d}}
timers:
  - {signal: 3, every: 1h30m, after: 0ms, clock: boottime, iterations: 7, cluster: true}
  - {id: "my:timer.1", signal: a.b_c-d, every: 1ms, clock: realtime}
  - {signal: 255, every: 10s}
rb_timers:
  - {signal: 0, every: 5m, after: 1s}
  - {signal: 0, every: 5m}
file_monitors:
  - {id: conf, signal: 1, path: /etc/app, recursive: true, events: [create, close_write],
     match: "*.conf", settle: 0ms, iterations: 2}
  - {signal: 1, path: /var/x, events: [modify, delete, move, attrib]}
cron:
  - {signal: 1, schedule: '@reboot', jitter: 30s, iterations: 1, cluster: true}
  - {signal: 1, schedule: CRON_TZ=UTC 0 3 * * *}
  - {id: weekly, signal: 1, uwsgi: [0, 23, 31, 12, 6]}
posix_signals:
  usr2: 200
  SIGRTMIN+3: 4
  SIGRTMAX-1: 4
  SIGRTMIN: a.b_c-d
  sigwinch: 1
  SIGPOLL: 1
)");
  ASSERT_EQ(timers_of(c).size(), 3u);
  EXPECT_EQ(timers_of(c)[0].id, "timer-1");
  EXPECT_EQ(timers_of(c)[0].every, 90min);
  EXPECT_EQ(timers_of(c)[0].after, Millis{0});
  EXPECT_EQ(timers_of(c)[0].clock, ClockKind::boottime);
  EXPECT_EQ(timers_of(c)[0].iterations, 7u);
  EXPECT_TRUE(timers_of(c)[0].clustered);
  EXPECT_EQ(timers_of(c)[1].id, "my:timer.1");
  EXPECT_EQ(timers_of(c)[1].signal, 200);
  EXPECT_EQ(timers_of(c)[1].every, 1ms);
  EXPECT_EQ(timers_of(c)[1].clock, ClockKind::realtime);
  EXPECT_EQ(timers_of(c)[2].id, "timer-3");  // the index in its list, given ids or not
  EXPECT_EQ(timers_of(c)[2].signal, 255);
  EXPECT_EQ(rb_timers_of(c)[0].id, "rb_timer-1");
  EXPECT_EQ(rb_timers_of(c)[0].after, Millis{1s});
  EXPECT_EQ(rb_timers_of(c)[1].id, "rb_timer-2");

  ASSERT_EQ(file_monitors_of(c).size(), 2u);
  EXPECT_EQ(file_monitors_of(c)[0].id, "conf");
  EXPECT_TRUE(file_monitors_of(c)[0].recursive);
  EXPECT_EQ(file_monitors_of(c)[0].events, kFileCreate | kFileCloseWrite);
  EXPECT_EQ(file_monitors_of(c)[0].match, "*.conf");
  EXPECT_EQ(file_monitors_of(c)[0].settle, 0ms);
  EXPECT_FALSE(file_monitors_of(c)[0].max_delay.has_value());
  EXPECT_EQ(file_monitors_of(c)[0].iterations, 2u);
  EXPECT_EQ(file_monitors_of(c)[1].id, "file-2");
  EXPECT_EQ(file_monitors_of(c)[1].events, kFileModify | kFileDelete | kFileMove | kFileAttrib);

  ASSERT_EQ(cron_of(c).size(), 3u);
  EXPECT_EQ(cron_of(c)[0].schedule, "@reboot");
  EXPECT_EQ(cron_of(c)[0].jitter, 30s);
  EXPECT_TRUE(cron_of(c)[0].clustered);
  EXPECT_EQ(cron_of(c)[1].schedule, "CRON_TZ=UTC 0 3 * * *");
  EXPECT_EQ(cron_of(c)[1].tz, "");
  EXPECT_EQ(cron_of(c)[2].id, "weekly");
  EXPECT_THAT(*cron_of(c)[2].uwsgi, ElementsAre(0, 23, 31, 12, 6));

  ASSERT_EQ(posix_of(c).size(), 6u);
  EXPECT_EQ(posix_of(c)[0].signame, "SIGUSR2");
  EXPECT_EQ(posix_of(c)[0].signo, SIGUSR2);
  EXPECT_EQ(posix_of(c)[0].signal, 200);
  EXPECT_EQ(posix_of(c)[0].where, (Location{"test.yaml", 18, 3}));
  EXPECT_EQ(posix_of(c)[1].signame, "SIGRTMIN+3");
  EXPECT_EQ(posix_of(c)[1].signo, SIGRTMIN + 3);
  EXPECT_EQ(posix_of(c)[2].signo, SIGRTMAX - 1);
  EXPECT_EQ(posix_of(c)[3].signame, "SIGRTMIN");
  EXPECT_EQ(posix_of(c)[3].signal, 200);
  EXPECT_EQ(posix_of(c)[4].signame, "SIGWINCH");
  EXPECT_EQ(posix_of(c)[5].signame, "SIGIO");
}

TEST(ConfigLoader, ReadsAFile) {
  char path[] = "/tmp/tocsin-config-test-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string text = "signals: {1: {name: one}}\n";
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  LoadResult result = load_config_file(path);
  ::unlink(path);
  ASSERT_TRUE(result.errors.empty()) << all_errors(result);
  EXPECT_EQ(result.config->file, path);
  EXPECT_EQ(result.config->signals.at(0).where, (Location{path, 1, 11}));
}

TEST(ConfigLoader, MissingFileNamesThePathAndTheReason) {
  LoadResult result = load_config_file("/nonexistent/tocsin.yaml");
  EXPECT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].where, (Location{"/nonexistent/tocsin.yaml", 0, 0}));
  EXPECT_THAT(result.errors[0].message, HasSubstr(std::strerror(ENOENT)));
  EXPECT_EQ(to_string(result.errors[0]), "/nonexistent/tocsin.yaml: " + result.errors[0].message);
}

TEST(ConfigLoader, DirectoryIsNotAConfig) {
  LoadResult result = load_config_file("/tmp");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0].message, HasSubstr(std::strerror(EISDIR)));
}

// ---- invalid configurations --------------------------------------------------------------------

struct BadCase {
  const char* name;
  const char* yaml;
  int line;
  int column;
  const char* message;  // a substring of the (first) error's message
  size_t errors = 1;    // how many errors the file gives
};

// Each YAML text starts on line 1, column 1.
const BadCase kBadCases[] = {
    {"YamlSyntaxError", "signals: {}\ntimers: [1, 2\nlog: {}\n", 3, 4,
     "YAML syntax error: end of sequence flow not found"},
    {"UnknownTopLevelKeyWithHint", "signals: {}\nsockets: {path: /x}\n", 2, 1,
     "unknown top-level key \"sockets\"; did you mean \"socket\"?"},
    {"UnknownNestedKeyWithHint", "signals: {}\ntimers:\n  - {signal: 1, every: 2s, evrey: 3s}\n", 3,
     28, "timers[0]: unknown key \"evrey\"; did you mean \"every\"?"},
    {"UnknownKeyListsTheKnownOnes", "signals: {}\nsocket: {colour: red}\n", 2, 10,
     "socket: unknown key \"colour\"; expected one of: path, mode, group, admin_group"},
    {"DuplicateTopLevelKey", "signals: {}\nlog: {level: info}\nlog: {level: debug}\n", 3, 1,
     "duplicate key \"log\" (first at line 2, column 1)"},
    {"DuplicateNestedKey", "signals: {}\ntimers: [{signal: 1, every: 1s, every: 2s}]\n", 2, 33,
     "timers[0]: duplicate key \"every\" (first at line 2, column 22)"},
    {"MergeKeysAreNotSupported", "signals: {}\nsocket: {<<: {path: /x}}\n", 2, 10,
     "YAML merge keys are not supported"},
    {"MissingSignals", "timers: []\n", 1, 1, "missing required key \"signals\""},
    {"EmptyFile", "# nothing\n", 1, 1, "the configuration is empty"},
    {"TopLevelNotAMapping", "hello\n", 1, 1, "expected a mapping of sections"},
    {"SecondDocument", "signals: {}\n---\nlog: {}\n", 2, 1, "expected one YAML document"},
    {"SignalsNotAMapping", "signals: [1, 2]\n", 1, 10,
     "signals: expected a mapping from signal numbers to entries"},
    {"SignalNumber256", "signals:\n  256: {name: big}\n", 2, 3,
     "signals: expected a signal number 0-255 as the key; got \"256\""},
    {"SignalNumberNegative", "signals:\n  -1: {}\n", 2, 3,
     "expected a signal number 0-255 as the key; got \"-1\""},
    {"SignalNumberNotANumber", "signals:\n  abc: {}\n", 2, 3,
     "expected a signal number 0-255 as the key; got \"abc\""},
    {"SignalEntryNotAMapping", "signals:\n  5: [log]\n", 2, 6,
     "signals.5: expected a mapping such as {name: usr1"},
    {"BadSignalName", "signals:\n  5: {name: Usr1}\n", 2, 13,
     "signals.5.name: expected a signal name: a lower-case letter"},
    {"DuplicateSignalName", "signals:\n  5: {name: a}\n  6: {name: a}\n", 3, 13,
     "signals.6.name: the name \"a\" is already used by signal 5"},
    {"DuplicateSignalNumber", "signals:\n  5: {}\n  05: {}\n", 3, 3,
     "signals: signal 5 is already defined at line 2"},
    {"HandlersNotAList", "signals:\n  5: {handlers: {log: info}}\n", 2, 17,
     "signals.5.handlers: expected a list of handlers such as [{log: info}]; got a mapping"},
    {"HandlerWithTwoKinds",
     "signals:\n  5:\n    handlers:\n      - {log: info, target: subscribers}\n", 4, 21,
     "a handler has exactly one of exec, log, target, plugin; this one has both log and target"},
    {"HandlerWithNoKind", "signals:\n  5:\n    handlers:\n      - {}\n", 4, 9,
     "signals.5.handlers[0]: a handler needs one of exec, log, target or plugin"},
    {"HandlerIsNull", "signals:\n  5:\n    handlers:\n      -\n      - {log: info}\n", 4, 7,
     "signals.5.handlers[0]: expected a handler such as {log: info}"},
    {"EmptyExecArgv", "signals:\n  5:\n    handlers:\n      - {exec: []}\n", 4, 16,
     "exec: expected a program and its arguments as a list, such as [/usr/local/bin/rebuild, "
     "--fast] (no shell); got an empty list"},
    {"ExecArgvIsAString", "signals:\n  5:\n    handlers:\n      - {exec: /bin/true}\n", 4, 16,
     "exec: expected a program and its arguments as a list"},
    {"ExecArgvNotStrings", "signals:\n  5:\n    handlers:\n      - {exec: [/bin/x, {a: 1}]}\n", 4,
     25, "signals.5.handlers[0].exec[1]: expected a string; got a mapping"},
    {"BadOverlap", "signals:\n  5:\n    handlers:\n      - {exec: [/bin/x], overlap: often}\n", 4,
     35, "overlap: expected queue, skip or kill; got \"often\""},
    {"ConcurrencyZero", "signals:\n  5:\n    handlers:\n      - {exec: [/bin/x], concurrency: 0}\n",
     4, 39, "concurrency: expected an integer from 1 to 4294967295; got \"0\""},
    {"TimeoutWithoutUnit", "signals:\n  5:\n    handlers:\n      - {exec: [/bin/x], timeout: 5}\n",
     4, 35,
     "signals.5.handlers[0].timeout: expected a duration such as 250ms, 2s, 5m, 1h; got \"5\""},
    {"TimeoutOnALogHandler", "signals:\n  5:\n    handlers:\n      - {log: info, timeout: 2s}\n", 4,
     21, "timeout applies only to exec handlers, not to log handlers"},
    {"WithOnAnExecHandler", "signals:\n  5:\n    handlers:\n      - {exec: [/x], with: {}}\n", 4,
     22, "with applies only to plugin handlers"},
    {"BadLogLevel", "signals:\n  5:\n    handlers:\n      - {log: loud}\n", 4, 15,
     "log: expected a log level: trace, debug, info, warn, error or critical; got \"loud\""},
    {"LogHandlerOff", "signals:\n  5:\n    handlers:\n      - {log: off}\n", 4, 15,
     "expected a log level: trace, debug, info, warn, error or critical; got \"off\""},
    {"BadTarget", "signals:\n  5:\n    handlers:\n      - {target: everyone}\n", 4, 18,
     "target: expected subscribers, subscriber, subscriber:NAME or group:NAME"},
    {"TargetWithEmptyName", "signals:\n  5:\n    handlers:\n      - {target: \"group:\"}\n", 4, 18,
     "got \"group:\""},
    {"PluginWithoutDot", "signals:\n  5:\n    handlers:\n      - {plugin: pgnotify}\n", 4, 18,
     "plugin: expected PLUGIN.HANDLER, such as pgnotify.notify; got \"pgnotify\""},
    {"PluginNotLoaded", "signals:\n  5: {handlers: [{plugin: pg.notify}]}\n", 2, 27,
     "signals.5.handlers[0].plugin: the plugin \"pg\" is not loaded; add it under plugins:"},
    {"PluginWithNotAMapping",
     "signals:\n  5: {handlers: [{plugin: p.n, with: [1]}]}\nplugins: {p: {}}\n", 2, 38,
     "with: expected a mapping of settings; got a list"},
    {"AclNotAList", "signals:\n  5: {acl: {raise: root}}\n", 2, 20,
     "signals.5.acl.raise: expected a list of user names and @groups, such as [root, \"@deploy\"]; "
     "got \"root\""},
    {"AclBadName", "signals:\n  5: {acl: {subscribe: [root, \"@\"]}}\n", 2, 31,
     "signals.5.acl.subscribe[1]: expected a user name or @group; got \"@\""},
    {"AclDeclareNotAList", "signals:\n  5: {acl: {declare: \"@webapp\"}}\n", 2, 22,
     "signals.5.acl.declare: expected a list of user names and @groups, such as [root, "
     "\"@deploy\"]; got \"@webapp\""},
    {"AclDeclareBadName", "signals:\n  5: {acl: {declare: [\"@web app\"]}}\n", 2, 23,
     "signals.5.acl.declare[0]: expected a user name or @group; got \"@web app\""},
    {"AclUnknownKey", "signals:\n  5: {acl: {rase: [root]}}\n", 2, 13,
     "unknown key \"rase\"; did you mean \"raise\"?"},
    {"UnknownSignalName", "signals: {5: {name: tick}}\ntimers: [{signal: tock, every: 1s}]\n", 2,
     19,
     "timers[0].signal: unknown signal \"tock\": no entry in signals has that name; did you mean "
     "\"tick\"?"},
    {"SignalReferenceOutOfRange", "signals: {}\ntimers: [{signal: 300, every: 1s}]\n", 2, 19,
     "timers[0].signal: expected a signal number 0-255 or the name of an entry in signals; got "
     "\"300\""},
    {"SignalReferenceNotAName", "signals: {}\ntimers: [{signal: Big Bang, every: 1s}]\n", 2, 19,
     "expected a signal number 0-255 or the name of an entry in signals; got \"Big Bang\""},
    {"TimerEveryZero", "signals: {}\ntimers: [{signal: 1, every: 0ms}]\n", 2, 29,
     "timers[0].every: expected a duration of at least 1ms; got \"0ms\""},
    {"TimerMissingEvery", "signals: {}\ntimers:\n  - signal: 1\n", 3, 5,
     "timers[0]: missing required key \"every\""},
    {"TimerMissingSignal", "signals: {}\nrb_timers: [{every: 1s}]\n", 2, 13,
     "rb_timers[0]: missing required key \"signal\""},
    {"TimersNotAList", "signals: {}\ntimers: {signal: 1, every: 1s}\n", 2, 9,
     "timers: expected a list of timers"},
    {"BadClock", "signals: {}\ntimers: [{signal: 1, every: 1s, clock: wall}]\n", 2, 40,
     "timers[0].clock: expected monotonic, boottime or realtime; got \"wall\""},
    {"BadAfter", "signals: {}\ntimers: [{signal: 1, every: 1s, after: -1s}]\n", 2, 40,
     "got \"-1s\" (durations cannot be negative)"},
    {"BadBoolean", "signals: {}\ntimers: [{signal: 1, every: 1s, cluster: yes}]\n", 2, 42,
     "timers[0].cluster: expected true or false; got \"yes\""},
    {"NegativeIterations", "signals: {}\ntimers: [{signal: 1, every: 1s, iterations: -1}]\n", 2, 45,
     "timers[0].iterations: expected an integer >= 0; got \"-1\""},
    {"DuplicateSourceIds",
     "signals: {}\ntimers: [{id: a, signal: 1, every: 1s}]\ncron: [{id: a, signal: 1, schedule: "
     "\"* * * * *\"}]\n",
     3, 13, "cron[0].id: the id \"a\" is already used by the source at line 2"},
    {"GeneratedIdCollides",
     "signals: {}\ntimers:\n  - {signal: 1, every: 1s}\n  - {id: timer-1, signal: 1, every: 1s}\n",
     3, 5,
     "timers[0]: this source has no id, and the one it would get, \"timer-1\", is taken by the "
     "source at line 4"},
    {"BadSourceId", "signals: {}\ntimers: [{id: \"a b\", signal: 1, every: 1s}]\n", 2, 15,
     "timers[0].id: expected an id of letters, digits and . _ : -; got \"a b\""},
    {"FileMonitorRelativePath", "signals: {}\nfile_monitors: [{signal: 1, path: tmp}]\n", 2, 35,
     "file_monitors[0].path: expected an absolute path; got \"tmp\""},
    {"FileMonitorMissingPath", "signals: {}\nfile_monitors: [{signal: 1}]\n", 2, 17,
     "file_monitors[0]: missing required key \"path\""},
    {"BadFileEvent",
     "signals: {}\nfile_monitors: [{signal: 1, path: /tmp, events: [create, write]}]\n", 2, 58,
     "file_monitors[0].events[1]: expected an event: create, modify, close_write, delete, "
     "move or attrib; got \"write\""},
    {"BadFileGlob", "signals: {}\nfile_monitors: [{signal: 1, path: /tmp, match: \"[abc\"}]\n", 2,
     48, "file_monitors[0].match: a glob on the file name: unclosed '[' at position 1"},
    {"FileGlobWithSlash",
     "signals: {}\nfile_monitors: [{signal: 1, path: /tmp, match: \"a/*.c\"}]\n", 2, 48,
     "file_monitors[0].match: a glob on the file name: a glob matches one file name and cannot "
     "contain '/'"},
    {"NoFileEvents", "signals: {}\nfile_monitors: [{signal: 1, path: /tmp, events: []}]\n", 2, 49,
     "events: expected a list of events"},
    {"CronScheduleAndUwsgi",
     "signals: {}\ncron: [{signal: 1, schedule: \"* * * * *\", uwsgi: [1, 1, 1, 1, 1]}]\n", 2, 43,
     "cron[0]: a cron job has exactly one of schedule and uwsgi; this one has both"},
    {"CronNeitherScheduleNorUwsgi", "signals: {}\ncron: [{signal: 1}]\n", 2, 8,
     "cron[0]: a cron job needs schedule"},
    {"CronUwsgiFourNumbers", "signals: {}\ncron: [{signal: 1, uwsgi: [1, 2, 3, 4]}]\n", 2, 27,
     "cron[0].uwsgi: expected five integers [minute, hour, day, month, weekday]; got 4"},
    {"CronUwsgiOutOfRange", "signals: {}\ncron: [{signal: 1, uwsgi: [-1, 24, -1, -1, -1]}]\n", 2,
     32,
     "cron[0].uwsgi[1]: expected the hour as 0-23, -1 (any) or -N (divisible by N); got \"24\""},
    {"CronBadMissed", "signals: {}\ncron: [{signal: 1, schedule: \"@daily\", missed: always}]\n", 2,
     48, "cron[0].missed: expected skip or once; got \"always\""},
    {"CronTwoZones",
     "signals: {}\ncron: [{signal: 1, schedule: \"CRON_TZ=UTC @daily\", tz: UTC}]\n", 2, 52,
     "the schedule already sets a zone with CRON_TZ=; keep one"},
    {"CronBadExpressionQuoted", "signals: {}\ncron: [{signal: 1, schedule: \"*/5 * 32 * *\"}]\n", 2,
     37, "cron[0].schedule: day-of-month 32 is out of range 1-31"},
    {"CronBadExpressionUnquoted", "signals: {}\ncron:\n  - signal: 1\n    schedule: 0 0 ? * 1\n", 4,
     23, "looks like Quartz"},
    {"CronQuartzSevenFields",
     "signals: {}\ncron:\n  - {signal: 1, schedule: '0 0 12 * * ? 2026'}\n", 3, 41,
     "7 fields look like a Quartz expression"},
    {"CronNeverFires", "signals: {}\ncron: [{signal: 1, schedule: \"0 0 30 2 *\"}]\n", 2, 35,
     "never fires"},
    {"CronUnknownZone", "signals: {}\ncron: [{signal: 1, schedule: \"@daily\", tz: Mars/Base}]\n",
     2, 44, "cron[0].tz: unknown time zone \"Mars/Base\""},
    {"CronUnknownCronTz",
     "signals: {}\ncron: [{signal: 1, schedule: \"CRON_TZ=Nowhere @daily\"}]\n", 2, 39,
     "unknown time zone \"Nowhere\""},
    {"CronUwsgiNeverFires", "signals: {}\ncron: [{signal: 1, uwsgi: [0, 0, 31, 2, -1]}]\n", 2, 27,
     "cron[0].uwsgi: this schedule never fires"},
    {"CronEmptySchedule", "signals: {}\ncron: [{signal: 1, schedule: \"\"}]\n", 2, 30,
     "cron[0].schedule: expected a cron expression"},
    {"PosixSighupRefused", "signals: {}\nposix_signals: {SIGHUP: 5}\n", 2, 17,
     "posix_signals: SIGHUP has its daemon meaning: reload"},
    {"PosixSigtermRefused", "signals: {}\nposix_signals: {TERM: 5}\n", 2, 17,
     "SIGTERM has its daemon meaning: stop"},
    {"PosixSigkillRefused", "signals: {}\nposix_signals: {SIGKILL: 5}\n", 2, 17,
     "SIGKILL cannot be caught"},
    {"PosixUnknownSignal", "signals: {}\nposix_signals: {SIGFOO: 5}\n", 2, 17,
     "posix_signals: unknown POSIX signal \"SIGFOO\""},
    {"PosixDuplicate", "signals: {}\nposix_signals: {USR1: 5, SIGUSR1: 6}\n", 2, 26,
     "posix_signals: \"SIGUSR1\" is SIGUSR1, already mapped as \"USR1\" at line 2"},
    {"PosixUnknownTarget", "signals: {}\nposix_signals: {SIGUSR1: nope}\n", 2, 26,
     "posix_signals.SIGUSR1: unknown signal \"nope\""},
    {"SocketModeNotOctal", "signals: {}\nsocket: {mode: \"999\"}\n", 2, 16,
     "socket.mode: expected an octal mode such as \"0660\" (at most 0777); got \"999\""},
    {"SocketModeTooLarge", "signals: {}\nsocket: {mode: \"01777\"}\n", 2, 16,
     "socket.mode: expected an octal mode"},
    {"SocketPathTooLong",
     "signals: {}\nsocket: {path: "
     "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n",
     2, 16, "socket.path: a Unix socket path holds at most 107 bytes; this one has 123"},
    {"SocketNotAMapping", "signals: {}\nsocket: [a, b]\n", 2, 9,
     "socket: expected a mapping; got a list"},
    {"PayloadBytesTooLarge", "signals: {}\nlimits: {payload_bytes: 100000}\n", 2, 25,
     "limits.payload_bytes: expected an integer from 1 to 65536; got \"100000\""},
    {"LimitZero", "signals: {}\nlimits: {clients: 0}\n", 2, 19,
     "limits.clients: expected an integer >= 1; got \"0\""},
    {"FloatWhereAnIntegerIsExpected", "signals: {}\nlimits: {backlog: 1.5}\n", 2, 19,
     "limits.backlog: expected an integer >= 1; got \"1.5\""},
    {"IntegerTooLarge", "signals: {}\nlimits: {sources: 18446744073709551616}\n", 2, 19,
     "limits.sources: expected an integer >= 1; got \"18446744073709551616\""},
    {"AckTimeoutWithoutUnit", "signals: {}\nlimits: {ack_timeout: 30}\n", 2, 23,
     "limits.ack_timeout: expected a duration"},
    {"GlobalLogLevel", "signals: {}\nlog: {level: verbose}\n", 2, 14,
     "log.level: expected a log level: trace, debug, info, warn, error, critical or off"},
    {"LogNotAMapping", "signals: {}\nlog: info\n", 2, 6,
     "log: expected a mapping such as {level: info}; got \"info\""},
    {"StateDirNotAString", "signals: {}\nstate_dir: [/a]\n", 2, 12,
     "state_dir: expected a directory path; got a list"},
    {"PluginPathEmptyEntry", "signals: {}\nplugin_path: [/a, \"\"]\n", 2, 19,
     "plugin_path[1]: expected a directory; got \"\""},
    {"PluginSettingsNotAMapping", "signals: {}\nplugins: {pgnotify: [1]}\n", 2, 21,
     "plugins.pgnotify: expected a mapping of settings; got a list"},
    {"PluginWithBadSettingsIsStillDeclared",
     "signals:\n  5: {handlers: [{plugin: p.n}]}\nplugins: {p: [1]}\n", 3, 14,
     "plugins.p: expected a mapping of settings; got a list"},
    {"PluginBadName", "signals: {}\nplugins: {\"a b\": {}}\n", 2, 11,
     "plugins: expected a plugin name of letters, digits and . _ -; got \"a b\""},
    {"PluginSettingsCycle", "signals: {}\nplugins: {p: &x {a: *x}}\n", 2, 18,
     "plugins: nested more than 64 levels deep (does an alias contain itself?)"},
    {"DeadLetterToItself", "signals:\n  5: {name: a, dead_letter: a}\n", 2, 29,
     "a signal cannot be its own dead_letter"},
    {"DeadLetterUnknown", "signals:\n  5: {dead_letter: nope}\n", 2, 20, "unknown signal \"nope\""},
    {"MaxDeliveriesZero", "signals:\n  5: {max_deliveries: 0}\n", 2, 23,
     "signals.5.max_deliveries: expected an integer from 1 to 1000000"},
    {"PrefetchTooLarge", "signals: {}\nlimits: {prefetch: 70000}\n", 2, 20,
     "limits.prefetch: expected an integer from 1 to 65536"},
    {"MetricsBadPort", "signals: {}\nmetrics: {listen: \"127.0.0.1:99999\"}\n", 2, 19,
     "metrics.listen: expected a port 0-65535 after the colon; got \"99999\""},
    {"MetricsNoPort", "signals: {}\nmetrics: {listen: \"127.0.0.1\"}\n", 2, 19,
     "metrics.listen: expected ADDRESS:PORT"},
    {"MetricsNameNotAddress", "signals: {}\nmetrics: {listen: localhost:9750}\n", 2, 19,
     "metrics.listen: \"localhost\" is not an IPv4 address"},
    {"MetricsIpv6WithoutBrackets", "signals: {}\nmetrics: {listen: \"::1:9750\"}\n", 2, 19,
     "an IPv6 address goes in brackets"},
    {"MetricsBadIpv6", "signals: {}\nmetrics: {listen: \"[::g]:9750\"}\n", 2, 19,
     "\"::g\" is not an IPv6 address"},
    {"MetricsWithoutListen", "signals: {}\nmetrics: {}\n", 2, 10,
     "metrics: missing required key \"listen\""},
    {"DuplicateKeyInPluginSettings", "signals: {}\nplugins: {p: {a: 1, a: 2}}\n", 2, 21,
     "plugins.p: duplicate key \"a\" (first at line 2, column 15)"},
};

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, ReportsWhereAndWhat) {
  const BadCase& c = GetParam();
  LoadResult result = load_config_string(c.yaml, "bad.yaml");
  EXPECT_FALSE(result.config.has_value());
  ASSERT_FALSE(result.errors.empty()) << c.yaml;
  EXPECT_EQ(result.errors.size(), c.errors) << all_errors(result);
  const ConfigError& e = result.errors[0];
  EXPECT_EQ(e.where.file, "bad.yaml");
  EXPECT_EQ(e.where.line, c.line) << to_string(e);
  EXPECT_EQ(e.where.column, c.column) << to_string(e);
  EXPECT_THAT(e.message, HasSubstr(c.message));
}

INSTANTIATE_TEST_SUITE_P(ConfigLoader, BadConfig, ::testing::ValuesIn(kBadCases),
                         [](const ::testing::TestParamInfo<BadCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(ConfigLoader, ReportsEveryErrorInFileOrder) {
  LoadResult result = load_config_string(R"(timers:
  - {signal: nope, every: 5}
signals:
  5: {name: Bad}
  300: {}
socket: {mode: "888", bogus: 1}
posix_signals: {SIGHUP: 5}
)",
                                         "many.yaml");
  EXPECT_FALSE(result.config.has_value());
  std::vector<std::string> got;
  for (const ConfigError& e : result.errors) got.push_back(to_string(e));
  EXPECT_THAT(got,
              ElementsAre(HasSubstr("many.yaml:2:14: timers[0].signal: unknown signal \"nope\""),
                          HasSubstr("many.yaml:2:27: timers[0].every: expected a duration"),
                          HasSubstr("many.yaml:4:13: signals.5.name: expected a signal name"),
                          HasSubstr("many.yaml:5:3: signals: expected a signal number"),
                          HasSubstr("many.yaml:6:16: socket.mode: expected an octal mode"),
                          HasSubstr("many.yaml:6:23: socket: unknown key \"bogus\""),
                          HasSubstr("many.yaml:7:17: posix_signals: SIGHUP")));
}

TEST(ConfigLoader, NoExceptionEscapesOnOddInput) {
  const char* inputs[] = {
      "\t- x",
      "{",
      "]",
      "signals: {}\n? [a, b]\n: c\n",
      "signals: *nothing\n",
      "!!binary x",
      "signals: {}\ntimers: [[[[[[]]]]]]\n",
      "\xff\xfe\x00",
      "signals: {5: {handlers: [[]]}}\n",
      "signals: {? {a: 1} : {}}\n",
      "signals:\n  5: {name: a, handlers: &h [{log: info}]}\n  6: {handlers: *h}\n",
  };
  for (const char* text : inputs) {
    LoadResult result;
    EXPECT_NO_THROW(result = load_config_string(text, "odd.yaml")) << text;
    EXPECT_EQ(result.config.has_value(), result.errors.empty()) << text;
  }
}

TEST(ConfigLoader, NonScalarKeysAreErrors) {
  LoadResult result = load_config_string("signals: {}\n? [a, b]\n: c\n", "k.yaml");
  ASSERT_EQ(result.errors.size(), 1u) << all_errors(result);
  EXPECT_EQ(result.errors[0].where, (Location{"k.yaml", 2, 3}));
  EXPECT_THAT(result.errors[0].message, HasSubstr("expected a plain key; got a list"));
}

TEST(ConfigLoader, LocationsPrint) {
  EXPECT_EQ(to_string(Location{"a.yaml", 3, 7}), "a.yaml:3:7");
  EXPECT_EQ(to_string(Location{"a.yaml", 0, 0}), "a.yaml");
  EXPECT_EQ(to_string(ConfigError{{"a.yaml", 3, 7}, "oops"}), "a.yaml:3:7: oops");
}

TEST(ConfigLoader, EnumNames) {
  EXPECT_EQ(log_level_from_string("warning"), LogLevel::warn);
  EXPECT_EQ(log_level_from_string("warn"), LogLevel::warn);
  EXPECT_EQ(log_level_from_string("off"), LogLevel::off);
  EXPECT_EQ(log_level_from_string("INFO"), std::nullopt);
  for (LogLevel l : {LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warn,
                     LogLevel::error, LogLevel::critical, LogLevel::off}) {
    EXPECT_EQ(log_level_from_string(to_string(l)), l);
  }
  EXPECT_EQ(to_string(Overlap::queue), "queue");
  EXPECT_EQ(to_string(Overlap::skip), "skip");
  EXPECT_EQ(to_string(Overlap::kill), "kill");
  EXPECT_EQ(to_string(ClockKind::monotonic), "monotonic");
  EXPECT_EQ(to_string(ClockKind::boottime), "boottime");
  EXPECT_EQ(to_string(ClockKind::realtime), "realtime");
}

// ---- durations ---------------------------------------------------------------------------------

TEST(Duration, ParsesUnitsAndConcatenations) {
  struct Good {
    const char* text;
    Millis value;
  };
  const Good cases[] = {
      {"0ms", 0ms},   {"250ms", 250ms},    {"2s", 2s},
      {"5m", 5min},   {"1h", 1h},          {"1h30m", 90min},
      {"1m30s", 90s}, {"1s500ms", 1500ms}, {"1h0m0s1ms", 1h + 1ms},
      {"90m", 90min}, {"0s", 0ms},         {"87600h", 87600h},
      {"007s", 7s},
  };
  for (const Good& c : cases) {
    std::string why;
    EXPECT_EQ(parse_duration(c.text, &why), c.value) << c.text << ": " << why;
  }
}

TEST(Duration, RefusesWithAReason) {
  struct Bad {
    const char* text;
    const char* why;
  };
  const Bad cases[] = {
      {"", "got \"\""},
      {"5", "a unit is required"},
      {"-5s", "cannot be negative"},
      {"1.5s", "fractions are not allowed"},
      {"5x", "unknown unit \"x\""},
      {"5min", "unknown unit \"min\""},
      {"5S", "unknown unit \"S\""},
      {"5d", "unknown unit \"d\""},
      {"30m1h", "from the largest to the smallest"},
      {"1s1s", "from the largest to the smallest"},
      {"ms", "needs a number"},
      {"1h 30m", "needs a number"},
      {"87601h", "at most 87600h"},
      {"99999999999999999999999ms", "at most 87600h"},
      {"5ms5", "a unit is required"},
      {"5 s", "unexpected \" \" after a number"},
  };
  for (const Bad& c : cases) {
    std::string why;
    EXPECT_EQ(parse_duration(c.text, &why), std::nullopt) << c.text;
    EXPECT_THAT(why, HasSubstr("expected a duration such as 250ms, 2s, 5m, 1h")) << c.text;
    EXPECT_THAT(why, HasSubstr(c.why)) << c.text;
  }
  EXPECT_EQ(parse_duration("5", nullptr), std::nullopt);  // why is optional
}

TEST(Duration, Formats) {
  EXPECT_EQ(format_duration(0ms), "0ms");
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(2s), "2s");
  EXPECT_EQ(format_duration(90min), "1h30m");
  EXPECT_EQ(format_duration(1h + 5ms), "1h5ms");
  EXPECT_EQ(format_duration(100h), "100h");
  EXPECT_EQ(format_duration(-1500ms), "-1s500ms");
  EXPECT_EQ(format_duration(Millis::min()).substr(0, 1), "-");
}

TEST(Duration, FormatRoundTrips) {
  for (std::int64_t ms :
       {1LL, 999LL, 1000LL, 59999LL, 60000LL, 3599999LL, 3600000LL, 86400123LL, 315360000000LL}) {
    std::string text = format_duration(Millis{ms});
    EXPECT_EQ(parse_duration(text, nullptr), Millis{ms}) << text;
  }
}

// ---- POSIX signal names ------------------------------------------------------------------------

TEST(PosixSignal, AcceptsTheFreeSignals) {
  struct Good {
    const char* text;
    int signo;
    const char* canonical;
  };
  const Good cases[] = {
      {"SIGUSR1", SIGUSR1, "SIGUSR1"},    {"USR1", SIGUSR1, "SIGUSR1"},
      {"usr2", SIGUSR2, "SIGUSR2"},       {"SIGALRM", SIGALRM, "SIGALRM"},
      {"SIGWINCH", SIGWINCH, "SIGWINCH"}, {"SIGPWR", SIGPWR, "SIGPWR"},
      {"SIGURG", SIGURG, "SIGURG"},       {"SIGTTIN", SIGTTIN, "SIGTTIN"},
      {"SIGTTOU", SIGTTOU, "SIGTTOU"},    {"SIGVTALRM", SIGVTALRM, "SIGVTALRM"},
      {"SIGPROF", SIGPROF, "SIGPROF"},    {"SIGIO", SIGIO, "SIGIO"},
      {"SIGPOLL", SIGIO, "SIGIO"},
  };
  for (const Good& c : cases) {
    std::string canonical, why;
    EXPECT_EQ(parse_posix_signal(c.text, &canonical, &why), c.signo) << c.text << ": " << why;
    EXPECT_EQ(canonical, c.canonical);
  }
}

TEST(PosixSignal, RealtimeSignalsAreRelativeToTheRuntimeRange) {
  std::string canonical, why;
  EXPECT_EQ(parse_posix_signal("SIGRTMIN", &canonical, &why), SIGRTMIN);
  EXPECT_EQ(canonical, "SIGRTMIN");
  EXPECT_EQ(parse_posix_signal("SIGRTMIN+0", &canonical, &why), SIGRTMIN);
  EXPECT_EQ(canonical, "SIGRTMIN");
  EXPECT_EQ(parse_posix_signal("SIGRTMIN+3", &canonical, &why), SIGRTMIN + 3);
  EXPECT_EQ(canonical, "SIGRTMIN+3");
  EXPECT_EQ(parse_posix_signal("RTMIN+3", &canonical, &why), SIGRTMIN + 3);
  EXPECT_EQ(parse_posix_signal("SIGRTMAX", &canonical, &why), SIGRTMAX);
  EXPECT_EQ(canonical, "SIGRTMAX");
  EXPECT_EQ(parse_posix_signal("SIGRTMAX-1", &canonical, &why), SIGRTMAX - 1);
  EXPECT_EQ(canonical, "SIGRTMAX-1");
  // One number, one name: the lower half is named from SIGRTMIN, the upper from SIGRTMAX.
  EXPECT_EQ(
      parse_posix_signal("SIGRTMAX-" + std::to_string(SIGRTMAX - SIGRTMIN - 1), &canonical, &why),
      SIGRTMIN + 1);
  EXPECT_EQ(canonical, "SIGRTMIN+1");
  int span = SIGRTMAX - SIGRTMIN;
  EXPECT_EQ(parse_posix_signal("SIGRTMIN+" + std::to_string(span), &canonical, &why), SIGRTMAX);
  EXPECT_EQ(canonical, "SIGRTMAX");

  EXPECT_EQ(parse_posix_signal("SIGRTMIN+" + std::to_string(span + 1), &canonical, &why),
            std::nullopt);
  EXPECT_THAT(why, HasSubstr("outside the realtime signals of this system"));
  EXPECT_EQ(parse_posix_signal("SIGRTMIN-1", &canonical, &why), std::nullopt);
  EXPECT_THAT(why, HasSubstr("outside the realtime signals"));
  EXPECT_EQ(parse_posix_signal("SIGRTMAX+1", &canonical, &why), std::nullopt);
  EXPECT_EQ(parse_posix_signal("SIGRTMIN+x", &canonical, &why), std::nullopt);
  EXPECT_THAT(why, HasSubstr("expected SIGRTMIN, SIGRTMIN+N, SIGRTMAX or SIGRTMAX-N"));
  EXPECT_EQ(parse_posix_signal("SIGRTMIN3", &canonical, &why), std::nullopt);
}

TEST(PosixSignal, RefusesWithAReason) {
  struct Bad {
    const char* text;
    const char* why;
  };
  const Bad cases[] = {
      {"SIGHUP", "SIGHUP has its daemon meaning: reload"},
      {"HUP", "SIGHUP has its daemon meaning: reload"},
      {"SIGTERM", "SIGTERM has its daemon meaning: stop"},
      {"SIGINT", "SIGINT has its daemon meaning: stop"},
      {"SIGKILL", "SIGKILL cannot be caught"},
      {"SIGSTOP", "SIGSTOP cannot be caught"},
      {"SIGSEGV", "synchronous fault"},
      {"SIGBUS", "synchronous fault"},
      {"SIGFPE", "synchronous fault"},
      {"SIGILL", "synchronous fault"},
      {"SIGCHLD", "exec handlers"},
      {"SIGPIPE", "closed socket"},
      {"SIGABRT", "abort()"},
      {"SIGQUIT", "core dump"},
      {"SIGFOO", "unknown POSIX signal \"SIGFOO\"; expected a name such as SIGUSR1"},
      {"", "expected a name such as SIGUSR1"},
      {"SIG", "expected a name such as SIGUSR1"},
      {"10", "by name"},
      {"SIGUSR1 ", "unknown POSIX signal"},
  };
  for (const Bad& c : cases) {
    std::string canonical = "untouched", why;
    EXPECT_EQ(parse_posix_signal(c.text, &canonical, &why), std::nullopt) << c.text;
    EXPECT_THAT(why, HasSubstr(c.why)) << c.text;
    EXPECT_EQ(canonical, "untouched");
  }
}

}  // namespace
}  // namespace tocsin::config

namespace tocsin::config {
namespace {

// Found by fuzz/config_fuzz.cc: yaml-cpp's LoadAll never returned on this input.
TEST(ConfigLoaderRegression, InputThatHungYamlCppLoadAllIsAnsweredAtOnce) {
  std::ifstream in(TOCSIN_SOURCE_DIR "/fuzz/regressions/config/yaml-cpp-loadall-hang.yaml",
                   std::ios::binary);
  ASSERT_TRUE(in);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto r = load_config_string(text, "hang.yaml");
  EXPECT_FALSE(r.config.has_value());
  EXPECT_FALSE(r.errors.empty());
}

TEST(ConfigLoaderRegression, DocumentMarkersOnlyCountAfterContent) {
  EXPECT_TRUE(load_config_string("---\nsignals: {}\n", "a.yaml").config.has_value());
  EXPECT_TRUE(load_config_string("# c\n--- \nsignals: {}\n", "a.yaml").config.has_value());
  auto r = load_config_string("signals: {}\n...\n", "a.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].where.line, 2);
}

}  // namespace
}  // namespace tocsin::config

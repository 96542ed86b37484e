// One schema, two paths (issue 14): every source kind's specs, valid and invalid, read once as an
// entry of the kind's YAML section (the real loader) and once as the params of its add_* request
// (the server's own parse_source_request), must give the same spec or the same error. The only
// difference is by design and asserted as such: a JSON number is a duration in milliseconds
// (SPEC §6), while YAML wants a unit.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "server/source_request.h"
#include "sources/timer/timer_spec.h"
#include "tocsin/config.h"
#include "tocsin/event_source.h"
#include "tocsin/signal_table.h"

namespace tocsin {
namespace {

using Json = nlohmann::json;

struct Case {
  const char* section;  // the YAML section; its kind's add method is the request
  const char* spec;     // JSON text: a YAML flow mapping too
  const char* error;    // nullptr: valid; else what both messages say after the field's path
};

// The table the socket path resolves names in, and the YAML the file path reads: signal 5 is
// "five" in both.
constexpr const char* kSignals = "signals: {5: {name: five}}\n";

const Case kCases[] = {
    // timers
    {"timers", R"({"id":"t","signal":5,"every":"2s"})", nullptr},
    {"timers",
     R"({"id":"t","signal":"five","every":"1h30m","after":"0ms","clock":"boottime","iterations":3})",
     nullptr},
    {"timers", R"({"signal":5})", "missing required key \"every\" (the period, such as 2s)"},
    {"timers", R"({"every":"2s"})", "missing required key \"signal\""},
    {"timers", R"({"signal":5,"every":"2s","evrey":"1s"})",
     "unknown key \"evrey\"; did you mean \"every\"?"},
    {"timers", R"({"signal":5,"every":"0ms"})",
     "every: expected a duration of at least 1ms; got \"0ms\""},
    {"timers", R"({"signal":5,"every":"2s","clock":"utc"})",
     "clock: expected monotonic, boottime or realtime; got \"utc\""},
    {"timers", R"({"signal":"six","every":"2s"})",
     "signal: unknown signal \"six\": no entry in signals has that name"},
    {"timers", R"({"signal":256,"every":"2s"})",
     "signal: expected a signal number 0-255 or the name of an entry in signals; got \"256\""},
    {"timers", R"({"signal":5,"every":"2s","iterations":-1})",
     "iterations: expected an integer >= 0; got \"-1\""},
    {"timers", R"({"signal":5,"every":"2s","id":"bad id"})",
     "id: expected an id of letters, digits and . _ : -; got \"bad id\""},
    {"timers", R"({"signal":5,"every":"2s","cluster":"yes"})",
     "cluster: expected true or false; got \"yes\""},
    // rb_timers
    {"rb_timers", R"({"id":"r","signal":5,"every":"40s","iterations":1})", nullptr},
    {"rb_timers", R"({"signal":5,"every":"1s","cluster":true})",
     "cluster: cluster: true is for timers and cron jobs; an rb_timer cannot be clustered (make "
     "it a timer)"},
    {"rb_timers", R"({"signal":5,"every":"1s","iterations":4294967296})",
     "iterations: expected an integer from 0 to 4294967295; got \"4294967296\""},
    // file_monitors
    {"file_monitors",
     R"({"id":"f","signal":5,"path":"/tmp","recursive":true,"events":["create","move"],"match":"*.txt","settle":"50ms","max_delay":"1s","iterations":2})",
     nullptr},
    {"file_monitors", R"({"signal":5})", "missing required key \"path\""},
    {"file_monitors", R"({"signal":5,"path":"tmp"})",
     "path: expected an absolute path; got \"tmp\""},
    {"file_monitors", R"({"signal":5,"path":"/tmp","events":["write"]})",
     "events[0]: expected an event: create, modify, close_write, delete, move or attrib; got "
     "\"write\""},
    {"file_monitors", R"({"signal":5,"path":"/tmp","events":[]})",
     "events: expected a list of events from create, modify, close_write, delete, move, attrib; "
     "got an empty list"},
    {"file_monitors", R"({"signal":5,"path":"/tmp","match":"[x"})",
     "match: a glob on the file name: unclosed '[' at position 1"},
    {"file_monitors", R"({"signal":5,"path":"/tmp","recursive":"maybe"})",
     "recursive: expected true or false; got \"maybe\""},
    // cron
    {"cron",
     R"({"id":"c","signal":5,"schedule":"*/5 * * * *","tz":"Europe/Berlin","missed":"once","jitter":"30s"})",
     nullptr},
    {"cron", R"({"id":"u","signal":5,"uwsgi":[-5,-1,-1,-1,-1]})", nullptr},
    {"cron", R"({"signal":5})", "a cron job needs schedule (such as \"*/5 * * * *\") or uwsgi"},
    {"cron", R"({"signal":5,"uwsgi":[0,0,1,1,9]})",
     "uwsgi[4]: expected the weekday as 0-7, -1 (any) or -N (divisible by N); got \"9\""},
    {"cron", R"({"signal":5,"uwsgi":[0,0,0,0]})",
     "uwsgi: expected five integers [minute, hour, day, month, weekday]; got 4"},
    {"cron", R"({"signal":5,"uwsgi":[-61,0,1,1,0]})",
     "uwsgi[0]: expected the minute as 0-59, -1 (any) or -N (divisible by N); got \"-61\""},
    {"cron", R"({"signal":5,"schedule":"@daily","tz":"Mars/Base"})", "tz: unknown time zone"},
    {"cron", R"({"signal":5,"schedule":"@daily","missed":"always"})",
     "missed: expected skip or once; got \"always\""},
    {"cron", R"({"signal":5,"schedule":"@daily","every":"1s"})", "unknown key \"every\""},
    // at
    {"at", R"({"id":"a","signal":5,"time":"2031-12-24T18:00:00+01:00","missed":"once"})", nullptr},
    {"at", R"({"id":"w","signal":5,"time":"2031-03-30T02:30","tz":"Europe/Berlin"})", nullptr},
    {"at", R"({"signal":5})", "missing required key \"time\""},
    {"at", R"({"signal":5,"time":"tomorrow"})", "time: expected an instant such as"},
    {"at", R"({"signal":5,"time":"2031-12-24T18:00:00Z","tz":"UTC"})",
     "the time already has an offset; tz is for a wall time (keep one)"},
    {"at", R"({"signal":5,"time":"2031-12-24T18:00","tz":"Nowhere/City"})",
     "tz: unknown time zone"},
};

// What a YAML error says after its location and the item's path ("timers[0].").
std::string yaml_error(const Case& c) {
  std::string text = std::string(kSignals) + c.section + ": [" + c.spec + "]\n";
  config::LoadResult r = config::load_config_string(text, "t.yaml");
  if (r.errors.empty()) return "";
  std::string m = r.errors.front().message;
  const std::string item = std::string(c.section) + "[0]";
  if (m.starts_with(item + ".")) return m.substr(item.size() + 1);
  if (m.starts_with(item + ": ")) return m.substr(item.size() + 2);
  if (m.starts_with(item)) return m.substr(item.size());
  return m;
}

std::shared_ptr<const SourceSpec> yaml_spec(const Case& c) {
  std::string text = std::string(kSignals) + c.section + ": [" + c.spec + "]\n";
  config::LoadResult r = config::load_config_string(text, "t.yaml");
  if (!r.config || r.config->sources.size() != 1) return nullptr;
  return r.config->sources.front();
}

SignalTable table() {
  SignalTable t;
  SignalEntry five;
  five.number = 5;
  five.name = "five";
  EXPECT_TRUE(t.add(std::move(five)).ok());
  return t;
}

TEST(SchemaTable, EveryKindGivesTheSameSpecOrTheSameErrorFromYamlAndFromARequest) {
  const SignalTable t = table();
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.section) + " " + c.spec);
    const SourceSchema* schema = schema_for_config_key(c.section);
    ASSERT_NE(schema, nullptr);
    auto request = parse_source_request(*schema, t, Json::parse(c.spec));
    const std::string from_yaml = yaml_error(c);
    if (c.error == nullptr) {
      ASSERT_TRUE(request.ok()) << request.error().message;
      ASSERT_EQ(from_yaml, "");
      auto file = yaml_spec(c);
      ASSERT_NE(file, nullptr);
      EXPECT_TRUE(file->same_as(*request.value())) << "the two specs differ";
      EXPECT_EQ(file->kind, schema->kind());
      continue;
    }
    ASSERT_FALSE(request.ok()) << "the request was taken";
    EXPECT_EQ(request.error().message, from_yaml);
    EXPECT_NE(request.error().message.find(c.error), std::string::npos) << request.error().message;
  }
}

// Unknown signal names are their own error code over the socket (-32003), as for `raise`.
TEST(SchemaTable, AnUnknownSignalNameHasItsOwnCode) {
  auto r = parse_source_request(*schema_for_add_method("add_timer"), table(),
                                Json::parse(R"({"signal":"six","every":"1s"})"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::unknown_signal);
}

// The one difference, by design (SPEC §6): integer milliseconds over the socket; a unit in YAML.
TEST(SchemaTable, AJsonNumberIsMillisecondsWhereYamlWantsAUnit) {
  auto r = parse_source_request(*schema_for_add_method("add_timer"), table(),
                                Json::parse(R"({"signal":5,"every":250})"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(static_cast<const config::TimerSpec&>(*r.value()).every, config::Millis(250));
  Case yaml{"timers", R"({"signal":5,"every":250})", ""};
  EXPECT_NE(yaml_error(yaml).find("got \"250\" (a unit is required: ms, s, m or h)"),
            std::string::npos)
      << yaml_error(yaml);
}

// Every kind with a YAML section and an add method is in the table above: a new kind gets rows.
TEST(SchemaTable, CoversEveryKindWithAnAddMethod) {
  for (const SourceKindEntry& k : source_kinds()) {
    if (k.schema->add_method().empty()) continue;
    bool valid = false, invalid = false;
    for (const Case& c : kCases) {
      if (c.section != k.schema->config_key()) continue;
      (c.error ? invalid : valid) = true;
    }
    EXPECT_TRUE(valid && invalid) << k.schema->config_key() << " needs valid and invalid rows";
  }
}

}  // namespace
}  // namespace tocsin

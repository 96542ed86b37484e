#include "sources/cron/cron_spec.h"

#include "cron/expression.h"

namespace tocsin::config {

bool CronSpec::same_as(const SourceSpec& other) const {
  const auto* o = dynamic_cast<const CronSpec*>(&other);
  return o != nullptr && id == o->id && signal == o->signal && schedule == o->schedule &&
         uwsgi == o->uwsgi && tz == o->tz && jitter == o->jitter && missed == o->missed &&
         iterations == o->iterations && clustered == o->clustered;
}

}  // namespace tocsin::config

namespace tocsin {

namespace {

constexpr std::string_view kKeys[] = {"id",     "signal", "schedule",   "uwsgi",  "tz",
                                      "jitter", "missed", "iterations", "cluster"};
constexpr std::string_view kMissed[] = {"skip", "once"};

// The field ranges of uWSGI's cron (minute hour day month weekday).
struct UwsgiField {
  std::string_view name;
  int min;
  int max;
};
constexpr UwsgiField kUwsgiFields[] = {
    {"minute", 0, 59}, {"hour", 0, 23}, {"day", 1, 31}, {"month", 1, 12}, {"weekday", 0, 7}};

std::optional<std::vector<int>> uwsgi_fields(spec::Reader& r, const spec::Value& v) {
  constexpr std::string_view kWhat =
      "a list of five integers [minute, hour, day, month, weekday] (-1 = any, -N = divisible by N)";
  auto items = r.sequence(v, kWhat);
  if (!items) return std::nullopt;
  if (items->size() != std::size(kUwsgiFields)) {
    return r.fail(v, "expected five integers [minute, hour, day, month, weekday]; got " +
                         std::to_string(items->size()));
  }
  std::vector<int> out;
  bool ok = true;
  for (std::size_t i = 0; i < items->size(); ++i) {
    const spec::Value& item = (*items)[i];
    const UwsgiField& field = kUwsgiFields[i];
    // A negative -N means "divisible by N"; N beyond the field's size could never be useful.
    std::string what = "the " + std::string(field.name) + " as " + std::to_string(field.min) + "-" +
                       std::to_string(field.max) + ", -1 (any) or -N (divisible by N)";
    const bool scalar = item.node->is_scalar() && item.node->style() != spec::Node::Style::boolean;
    const std::string s = scalar ? item.node->text() : "";
    bool negative = !s.empty() && s[0] == '-';
    std::optional<std::uint64_t> n = spec::parse_decimal(negative ? s.substr(1) : s);
    bool good =
        n.has_value() && (negative ? (*n >= 1 && *n <= static_cast<std::uint64_t>(field.max) + 1)
                                   : (*n >= static_cast<std::uint64_t>(field.min) &&
                                      *n <= static_cast<std::uint64_t>(field.max)));
    if (!good) {
      r.expected(item, what);
      ok = false;
      continue;
    }
    out.push_back(negative ? -static_cast<int>(*n) : static_cast<int>(*n));
  }
  if (!ok) return std::nullopt;
  return out;
}

class CronSchema final : public SourceSchema {
 public:
  SourceKind kind() const override { return SourceKind::cron; }
  std::string_view config_key() const override { return "cron"; }
  std::string_view noun() const override { return "cron job"; }
  std::string_view add_method() const override { return "add_cron"; }
  bool fires_by_time() const override { return true; }

  std::shared_ptr<SourceSpec> parse(spec::Reader& r, const spec::Value& item) const override {
    const std::size_t problems = r.problem_count();
    auto fields = r.mapping(item, kKeys, spec::IfNull::error,
                            "a cron job such as {signal: 5, schedule: \"*/5 * * * *\"}");
    if (!fields) return nullptr;
    auto c = std::make_shared<config::CronSpec>();
    c->kind = SourceKind::cron;
    c->where = r.location(item.at);
    bool has_signal = false;
    const spec::Field* when = nullptr;  // schedule or uwsgi, whichever came first
    const spec::Field* schedule = nullptr;
    const spec::Field* tz = nullptr;
    for (const spec::Field& f : *fields) {
      if (f.key == "schedule" || f.key == "uwsgi") {
        if (when != nullptr) {
          r.error(f.key_at, (item.path.empty() ? "" : item.path + ": ") +
                                "a cron job has exactly one of schedule and uwsgi; this one "
                                "has both");
          continue;
        }
        when = &f;
      }
      if (f.key == "id") {
        if (auto id = r.source_id(f.value)) c->id = *id;
      } else if (f.key == "signal") {
        has_signal = true;
        if (auto s = r.signal(f.value)) c->signal = *s;
      } else if (f.key == "schedule") {
        if (auto s = r.nonempty_text(f.value, "a cron expression such as \"*/5 * * * *\"")) {
          c->schedule = *s;
          schedule = &f;
        }
      } else if (f.key == "uwsgi") {
        c->uwsgi = uwsgi_fields(r, f.value);
      } else if (f.key == "tz") {
        tz = &f;
        auto s = r.nonempty_text(f.value, "an IANA time zone such as Europe/Berlin");
        if (s && s->find_first_of(" \t") != std::string::npos) {
          r.expected(f.value, "an IANA time zone such as Europe/Berlin");
        } else if (s) {
          c->tz = *s;
        }
      } else if (f.key == "jitter") {
        if (auto d = r.duration(f.value, config::Millis{0})) c->jitter = *d;
      } else if (f.key == "missed") {
        if (auto m = r.choice(f.value, kMissed, "skip or once")) {
          c->missed = static_cast<config::Missed>(*m);
        }
      } else if (f.key == "iterations") {
        if (auto n = r.count(f.value, 0)) c->iterations = *n;
      } else if (f.key == "cluster") {
        if (auto b = r.boolean(f.value)) c->clustered = *b;
      }
    }
    if (!has_signal) r.missing(item, "signal");
    if (when == nullptr) {
      r.fail(item, "a cron job needs schedule (such as \"*/5 * * * *\") or uwsgi");
    }
    // Two zones for one job would leave the reader guessing which one wins.
    if (tz != nullptr && c->schedule.starts_with("CRON_TZ=")) {
      r.error(tz->key_at, (item.path.empty() ? "" : item.path + ": ") +
                              "the schedule already sets a zone with CRON_TZ=; keep one");
    }
    // The expression itself: its errors point at the column within it.
    if (schedule != nullptr) {
      cron::Parsed parsed = cron::parse(c->schedule);
      std::string why;
      if (!parsed.schedule) {
        r.fail_at_column(schedule->value, parsed.error.column, parsed.error.message);
      } else if (!parsed.schedule->zone.empty() &&
                 cron::find_zone(parsed.schedule->zone, &why) == nullptr) {
        r.fail(schedule->value, why);
      }
    } else if (c->uwsgi) {
      cron::Parsed parsed = cron::uwsgi(*c->uwsgi);
      if (!parsed.schedule) r.fail(when->value, parsed.error.message);
    }
    if (!c->tz.empty()) {
      std::string why;
      if (cron::find_zone(c->tz, &why) == nullptr) r.fail(tz->value, why);
    }
    if (r.problem_count() != problems) return nullptr;
    return c;
  }
};

}  // namespace

const SourceSchema& cron_schema() {
  static const CronSchema schema;
  return schema;
}

}  // namespace tocsin

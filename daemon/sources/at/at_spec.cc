#include "sources/at/at_spec.h"

#include "cron/expression.h"

namespace tocsin::config {

bool AtSpec::same_as(const SourceSpec& other) const {
  const auto* o = dynamic_cast<const AtSpec*>(&other);
  return o != nullptr && id == o->id && signal == o->signal && instant == o->instant &&
         time == o->time && tz == o->tz && missed == o->missed;
}

}  // namespace tocsin::config

namespace tocsin {

namespace {

constexpr std::string_view kKeys[] = {"id", "signal", "time", "tz", "missed"};
constexpr std::string_view kMissed[] = {"skip", "once"};
constexpr std::string_view kTimeWhat =
    "an instant such as 2026-12-24T18:00:00+01:00, or a wall time such as 2026-12-24T18:00 "
    "(in tz)";

// Whether an RFC 3339 text gives its offset (Z or +HH:MM / -HH:MM after the time of day).
bool has_offset(std::string_view text) {
  if (text.ends_with('Z') || text.ends_with('z')) return true;
  return text.size() > 10 && text.find_first_of("+-", 10) != std::string_view::npos;
}

class AtSchema final : public SourceSchema {
 public:
  SourceKind kind() const override { return kAtKind; }
  std::string_view config_key() const override { return "at"; }
  std::string_view noun() const override { return "at entry"; }
  std::string_view add_method() const override { return "add_at"; }
  bool fires_by_time() const override { return true; }

  std::shared_ptr<SourceSpec> parse(spec::Reader& r, const spec::Value& item) const override {
    const std::size_t problems = r.problem_count();
    auto fields = r.mapping(item, kKeys, spec::IfNull::error,
                            "an instant such as {signal: 5, time: \"2026-12-24T18:00:00+01:00\"}");
    if (!fields) return nullptr;
    auto a = std::make_shared<config::AtSpec>();
    a->kind = kAtKind;
    a->where = r.location(item.at);
    bool has_signal = false;
    const spec::Field* time = nullptr;
    const spec::Field* tz = nullptr;
    for (const spec::Field& f : *fields) {
      if (f.key == "id") {
        if (auto id = r.source_id(f.value)) a->id = *id;
      } else if (f.key == "signal") {
        has_signal = true;
        if (auto s = r.signal(f.value)) a->signal = *s;
      } else if (f.key == "time") {
        if (auto s = r.nonempty_text(f.value, kTimeWhat)) {
          a->time = *s;
          time = &f;
        }
      } else if (f.key == "tz") {
        if (auto s = r.nonempty_text(f.value, "an IANA time zone such as Europe/Berlin")) {
          std::string why;
          if (cron::find_zone(*s, &why) == nullptr) {
            r.fail(f.value, why);
          } else {
            a->tz = *s;
            tz = &f;
          }
        }
      } else if (f.key == "missed") {
        if (auto m = r.choice(f.value, kMissed, "skip or once")) {
          a->missed = static_cast<config::Missed>(*m);
        }
      }
    }
    if (!has_signal) r.missing(item, "signal");
    if (time == nullptr && r.problem_count() == problems) {
      r.missing(item, "time", "such as \"2026-12-24T18:00:00+01:00\"");
    }
    if (time != nullptr) {
      std::string why;
      const date::time_zone* zone = cron::find_zone(a->tz, &why);
      auto instant = zone ? cron::parse_instant(a->time, *zone) : std::nullopt;
      if (!instant) {
        r.expected(time->value, kTimeWhat);
      } else if (has_offset(a->time) && tz != nullptr) {
        r.error(tz->key_at, (item.path.empty() ? "" : item.path + ": ") +
                                "the time already has an offset; tz is for a wall time (keep one)");
      } else {
        a->instant = *instant;
      }
    }
    if (r.problem_count() != problems) return nullptr;
    return a;
  }
};

}  // namespace

const SourceSchema& at_schema() {
  static const AtSchema schema;
  return schema;
}

}  // namespace tocsin

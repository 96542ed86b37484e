#include "sources/timer/timer_spec.h"

#include <array>

namespace tocsin::config {

namespace {
constexpr std::array<std::string_view, 3> kClockNames = {"monotonic", "boottime", "realtime"};
}  // namespace

std::string_view to_string(ClockKind clock) { return kClockNames[static_cast<size_t>(clock)]; }

bool TimerSpec::same_as(const SourceSpec& other) const {
  const auto* o = dynamic_cast<const TimerSpec*>(&other);
  return o != nullptr && kind == o->kind && id == o->id && signal == o->signal &&
         every == o->every && after == o->after && clock == o->clock &&
         iterations == o->iterations && clustered == o->clustered;
}

}  // namespace tocsin::config

namespace tocsin {

ClockId to_clock_id(config::ClockKind kind) {
  switch (kind) {
    case config::ClockKind::monotonic:
      return ClockId::monotonic;
    case config::ClockKind::boottime:
      return ClockId::boottime;
    case config::ClockKind::realtime:
      return ClockId::realtime;
  }
  return ClockId::monotonic;
}

std::string_view to_string(ClockId clock) {
  switch (clock) {
    case ClockId::monotonic:
      return "monotonic";
    case ClockId::boottime:
      return "boottime";
    case ClockId::realtime:
      return "realtime";
  }
  return "?";
}

namespace {

constexpr std::string_view kKeys[] = {"id",    "signal",     "every",  "after",
                                      "clock", "iterations", "cluster"};

class TimerSchema final : public SourceSchema {
 public:
  explicit TimerSchema(bool rb) : rb_(rb) {}
  SourceKind kind() const override { return rb_ ? SourceKind::rb_timer : SourceKind::timer; }
  std::string_view config_key() const override { return rb_ ? "rb_timers" : "timers"; }
  std::string_view add_method() const override { return rb_ ? "add_rb_timer" : "add_timer"; }
  bool fires_by_time() const override { return true; }

  std::shared_ptr<SourceSpec> parse(spec::Reader& r, const spec::Value& item) const override {
    const std::size_t problems = r.problem_count();
    auto fields =
        r.mapping(item, kKeys, spec::IfNull::error, "a timer such as {signal: 5, every: 2s}");
    if (!fields) return nullptr;
    auto t = std::make_shared<config::TimerSpec>();
    t->kind = kind();
    t->where = r.location(item.at);
    bool has_signal = false, has_every = false;
    for (const spec::Field& f : *fields) {
      if (f.key == "id") {
        if (auto id = r.source_id(f.value)) t->id = *id;
      } else if (f.key == "signal") {
        has_signal = true;
        if (auto s = r.signal(f.value)) t->signal = *s;
      } else if (f.key == "every") {
        has_every = true;
        if (auto d = r.duration(f.value, config::Millis{1})) t->every = *d;
      } else if (f.key == "after") {
        if (auto d = r.duration(f.value, config::Millis{0})) t->after = *d;
      } else if (f.key == "clock") {
        if (auto c = r.choice(f.value, kClockNames, "monotonic, boottime or realtime")) {
          t->clock = static_cast<config::ClockKind>(*c);
        }
      } else if (f.key == "iterations") {
        if (auto n = r.count(f.value, 0, rb_ ? kMaxRbIterations : spec::kAnyCount)) {
          t->iterations = *n;
        }
      } else if (f.key == "cluster") {
        auto b = r.boolean(f.value);
        if (b && *b && rb_) {
          r.fail(f.value,
                 "cluster: true is for timers and cron jobs; an rb_timer cannot be "
                 "clustered (make it a timer)");
        } else if (b) {
          t->clustered = *b;
        }
      }
    }
    if (!has_signal) r.missing(item, "signal");
    if (!has_every) r.missing(item, "every", "the period, such as 2s");
    if (r.problem_count() != problems) return nullptr;
    return t;
  }

 private:
  static constexpr std::array<std::string_view, 3> kClockNames = {"monotonic", "boottime",
                                                                  "realtime"};
  bool rb_;
};

}  // namespace

const SourceSchema& timer_schema() {
  static const TimerSchema schema(false);
  return schema;
}

const SourceSchema& rb_timer_schema() {
  static const TimerSchema schema(true);
  return schema;
}

}  // namespace tocsin

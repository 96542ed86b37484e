#include "sources/posix/posix_spec.h"

namespace tocsin::config {

bool PosixSignalSpec::same_as(const SourceSpec& other) const {
  const auto* o = dynamic_cast<const PosixSignalSpec*>(&other);
  return o != nullptr && signo == o->signo && signal == o->signal;
}

}  // namespace tocsin::config

namespace tocsin {

namespace {

class PosixSchema final : public SourceSchema {
 public:
  SourceKind kind() const override { return SourceKind::posix; }
  std::string_view config_key() const override { return "posix_signals"; }
  std::string_view noun() const override { return "POSIX signal mapping"; }
  std::string_view add_method() const override { return ""; }
  bool keyed_section() const override { return true; }

  std::shared_ptr<SourceSpec> parse(spec::Reader& r, const spec::Value& item) const override {
    r.expected(item, "a mapping such as {SIGUSR1: 5}");
    return nullptr;
  }

  std::shared_ptr<SourceSpec> parse_field(spec::Reader& r, const spec::Field& f) const override {
    auto spec = std::make_shared<config::PosixSignalSpec>();
    spec->kind = SourceKind::posix;
    spec->where = r.location(f.key_at);
    std::string why;
    std::optional<int> signo = config::parse_posix_signal(f.key, &spec->signame, &why);
    std::optional<SignalId> signal = r.signal(f.value);
    if (!signo) {
      r.error(f.key_at, "posix_signals: " + why);
      return nullptr;
    }
    if (!signal) return nullptr;
    spec->id = spec->signame;
    spec->signo = *signo;
    spec->signal = *signal;
    return spec;
  }
};

}  // namespace

const SourceSchema& posix_schema() {
  static const PosixSchema schema;
  return schema;
}

}  // namespace tocsin

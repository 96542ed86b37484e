#include "log/scope.h"

namespace tocsin::logging {

namespace {
thread_local Scope* innermost = nullptr;
}  // namespace

Scope::Scope(const Event* event, std::optional<std::uint64_t> client)
    : event_(event), client_(client), outer_(innermost) {
  innermost = this;
}

Scope::~Scope() { innermost = outer_; }

Scope::Fields Scope::current() {
  Fields f;
  for (const Scope* s = innermost; s != nullptr && (!f.event || !f.client); s = s->outer_) {
    if (!f.event) f.event = s->event_;
    if (!f.client) f.client = s->client_;
  }
  return f;
}

}  // namespace tocsin::logging

#include "sources/file/coalescer.h"

namespace tocsin::fs {

void Coalescer::touch(SteadyTime now) {
  if (!first_) first_ = now;
  last_ = now;
}

void Coalescer::add(std::string_view path, std::uint32_t events, SteadyTime now) {
  auto [it, inserted] = index_.try_emplace(std::string(path), changes_.size());
  if (inserted) {
    changes_.push_back(Change{it->first, events});
  } else {
    changes_[it->second].events |= events;
  }
  touch(now);
}

void Coalescer::mark_overflow(SteadyTime now) {
  overflow_ = true;
  touch(now);
}

std::optional<SteadyTime> Coalescer::due() const {
  if (!first_) return std::nullopt;
  if (settle_.count() <= 0) return *first_;
  SteadyTime d = last_ + settle_;
  if (max_delay_) d = std::min(d, *first_ + *max_delay_);
  return d;
}

Batch Coalescer::take() {
  Batch b{std::move(changes_), overflow_};
  changes_.clear();
  index_.clear();
  overflow_ = false;
  first_.reset();
  return b;
}

}  // namespace tocsin::fs

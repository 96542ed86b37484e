// RecordingHandler — a Handler that records what it got, and can be told to fail or throw.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "tocsin/dispatcher.h"

namespace tocsin::testing {

class RecordingHandler final : public Handler {
 public:
  enum class Mode { ok, fail, throw_ };
  RecordingHandler(std::string name, std::vector<std::string>* order = nullptr,
                   Mode mode = Mode::ok)
      : name_(std::move(name)), order_(order), mode_(mode) {}

  Result<void> handle(const EventPtr& event) override {
    events.push_back(event);
    if (order_) order_->push_back(name_);
    if (mode_ == Mode::fail) return Error{name_ + " failed on purpose"};
    if (mode_ == Mode::throw_) throw std::runtime_error(name_ + " threw on purpose");
    return ok();
  }
  std::string describe() const override { return name_; }

  std::vector<EventPtr> events;

 private:
  std::string name_;
  std::vector<std::string>* order_;
  Mode mode_;
};

}  // namespace tocsin::testing

#include "tocsin/signal_table.h"

#include <charconv>

namespace tocsin {

Result<void> SignalTable::add(SignalEntry entry) {
  if (slots_[entry.number]) {
    return Error{"signal " + std::to_string(entry.number) + " is already in the table"};
  }
  if (!entry.name.empty()) {
    if (!is_valid_signal_name(entry.name)) {
      return Error{"invalid signal name \"" + entry.name + "\" (expected [a-z][a-z0-9._-]{0,63})"};
    }
    auto [it, inserted] = by_name_.emplace(entry.name, entry.number);
    if (!inserted) {
      return Error{"signal name \"" + entry.name + "\" is already used by signal " +
                   std::to_string(it->second)};
    }
  } else {
    ++unnamed_;
  }
  SignalId number = entry.number;
  slots_[number] = std::make_unique<SignalEntry>(std::move(entry));
  return ok();
}

const SignalEntry* SignalTable::find(SignalId id) const { return slots_[id].get(); }

const SignalEntry* SignalTable::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : slots_[it->second].get();
}

std::optional<SignalId> SignalTable::resolve(std::string_view text) const {
  if (!text.empty() && text[0] >= '0' && text[0] <= '9') {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value >= kSignalCount) {
      return std::nullopt;
    }
    return static_cast<SignalId>(value);
  }
  if (const SignalEntry* e = find(text)) return e->number;
  return std::nullopt;
}

std::vector<const SignalEntry*> SignalTable::entries() const {
  std::vector<const SignalEntry*> out;
  for (const auto& slot : slots_) {
    if (slot) out.push_back(slot.get());
  }
  return out;
}

}  // namespace tocsin

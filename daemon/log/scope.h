// scope.h — what a log line is about, for the journal's structured fields (docs/systemd.md).
//
// A Scope names the event and/or the client the code on this thread is busy with; every line
// logged while it lives carries them as TOCSIN_SIGNAL, TOCSIN_SIGNAL_NAME, TOCSIN_SEQ,
// TOCSIN_SOURCE_KIND, TOCSIN_SOURCE_ID and TOCSIN_CLIENT when the log goes to the journal
// (log/journal_sink.h), so `journalctl TOCSIN_SIGNAL=17` finds them. Scopes nest: the innermost
// that names a field wins. Making one costs two pointer stores; it copies nothing, so what it
// names must outlive it.
#pragma once

#include <cstdint>
#include <optional>

#include "tocsin/signal.h"

namespace tocsin::logging {

class Scope {
 public:
  explicit Scope(const Event& event) : Scope(&event, std::nullopt) {}
  explicit Scope(std::uint64_t client) : Scope(nullptr, client) {}
  Scope(const Event& event, std::uint64_t client) : Scope(&event, client) {}
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  // The fields in effect on this thread: the innermost scope's, each missing one from outer ones.
  struct Fields {
    const Event* event = nullptr;
    std::optional<std::uint64_t> client;
  };
  static Fields current();

 private:
  Scope(const Event* event, std::optional<std::uint64_t> client);
  const Event* event_;
  std::optional<std::uint64_t> client_;
  Scope* outer_;
};

}  // namespace tocsin::logging

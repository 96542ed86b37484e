// posix_spec.h — the spec of `posix_signals` entries (SPEC §3 `posix`): `SIGUSR1: 5` maps a POSIX
// signal sent to the daemon to a numbered signal. A keyed section (a mapping, not a list); not
// added at run time. The source's id is the signal's canonical name ("SIGUSR1").
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "tocsin/event_source.h"

namespace tocsin::config {

struct PosixSignalSpec : SourceSpec {
  std::string signame;  // canonical: "SIGUSR1", "SIGRTMIN+3" (also the id)
  int signo = 0;        // the kernel's number
  bool same_as(const SourceSpec& other) const override;
};

// "SIGUSR1", "USR1", "SIGRTMIN+2", "SIGRTMAX-1" -> kernel number, for the signals that
// posix_signals may map. SIGHUP, SIGTERM and SIGINT are refused (daemon meaning, SPEC §5), as are
// SIGKILL, SIGSTOP, the synchronous faults and SIGCHLD/SIGPIPE. Sets *canonical on success.
std::optional<int> parse_posix_signal(std::string_view text, std::string* canonical,
                                      std::string* why);

}  // namespace tocsin::config

namespace tocsin {

const SourceSchema& posix_schema();

}  // namespace tocsin

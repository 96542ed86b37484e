// posix_names.cc — which POSIX signals `posix_signals:` may map to a tocsin signal (SPEC §3).
//
// Only signals that mean nothing to the daemon are allowed. Those with a daemon meaning (SIGHUP,
// SIGTERM, SIGINT: SPEC §5), those that cannot be caught, the synchronous faults of the daemon's
// own code, and those the daemon relies on for itself are refused with the reason, so that a user
// learns why instead of getting a daemon that ignores its own reload signal.
//
// Names are accepted with or without "SIG" and in any case; numbers are refused because they
// differ between architectures. Realtime signals are relative to the runtime SIGRTMIN/SIGRTMAX
// (glibc keeps the first few for itself), and are named as bash's `kill -l` names them: the lower
// half SIGRTMIN+n, the upper half SIGRTMAX-n.

#include <csignal>

#include <array>
#include <cctype>

#include "sources/posix/posix_spec.h"

namespace tocsin::config {

namespace {

struct Allowed {
  std::string_view name;  // without "SIG"
  int signo;
};
constexpr std::array<Allowed, 12> kAllowed = {{
    {"USR1", SIGUSR1},
    {"USR2", SIGUSR2},
    {"ALRM", SIGALRM},
    {"WINCH", SIGWINCH},
    {"PWR", SIGPWR},
    {"URG", SIGURG},
    {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},
    {"VTALRM", SIGVTALRM},
    {"PROF", SIGPROF},
    {"IO", SIGIO},
    {"POLL", SIGIO},  // Linux's other name for SIGIO; canonical name SIGIO
}};

struct Refused {
  std::string_view name;
  std::string_view reason;
};
constexpr std::array<Refused, 22> kRefused = {{
    {"HUP", "has its daemon meaning: reload"},
    {"TERM", "has its daemon meaning: stop"},
    {"INT", "has its daemon meaning: stop"},
    {"KILL", "cannot be caught"},
    {"STOP", "cannot be caught"},
    {"SEGV", "is a synchronous fault of the daemon's own code, not an event"},
    {"BUS", "is a synchronous fault of the daemon's own code, not an event"},
    {"FPE", "is a synchronous fault of the daemon's own code, not an event"},
    {"ILL", "is a synchronous fault of the daemon's own code, not an event"},
    {"TRAP", "is a synchronous fault of the daemon's own code (and debuggers use it)"},
    {"SYS", "is a synchronous fault of the daemon's own code (a bad system call)"},
    {"ABRT", "is raised by abort() when the daemon fails"},
    {"IOT", "is raised by abort() when the daemon fails"},
    {"CHLD", "is how the daemon learns that its exec handlers exited"},
    {"CLD", "is how the daemon learns that its exec handlers exited"},
    {"PIPE", "is ignored by the daemon (a write to a closed socket must not kill it)"},
    {"QUIT", "keeps its default action: quit with a core dump, for debugging"},
    {"TSTP", "is job control (stop from the terminal)"},
    {"CONT", "is job control (continue after a stop)"},
    {"XCPU", "reports the daemon's own CPU limit being reached"},
    {"XFSZ", "reports the daemon's own file size limit being reached"},
    {"STKFLT", "is a fault signal, unused on Linux"},
}};

constexpr std::string_view kExamples = "a name such as SIGUSR1, SIGUSR2, SIGRTMIN+2 or SIGRTMAX";

std::nullopt_t fail(std::string* why, std::string message) {
  if (why != nullptr) *why = std::move(message);
  return std::nullopt;
}

std::string display(std::string_view text) {
  std::string out = "\"";
  for (char c : text.substr(0, 40)) out += static_cast<unsigned char>(c) < 0x20 ? '?' : c;
  if (text.size() > 40) out += "...";
  return out + "\"";
}

// Digits only, small enough to be a signal offset.
std::optional<int> small_number(std::string_view digits) {
  if (digits.empty() || digits.size() > 3) return std::nullopt;
  int value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

std::string realtime_name(int signo) {
  int low = SIGRTMIN;
  int high = SIGRTMAX;
  if (signo == low) return "SIGRTMIN";
  if (signo == high) return "SIGRTMAX";
  if (signo - low <= (high - low) / 2) return "SIGRTMIN+" + std::to_string(signo - low);
  return "SIGRTMAX-" + std::to_string(high - signo);
}

std::optional<int> parse_realtime(std::string_view name, std::string_view original,
                                  std::string* canonical, std::string* why) {
  const int low = SIGRTMIN;
  const int high = SIGRTMAX;
  const bool from_min = name.substr(0, 5) == "RTMIN";
  std::string_view rest = name.substr(5);
  int signo = from_min ? low : high;
  if (!rest.empty()) {
    char sign = rest[0];
    std::optional<int> offset = small_number(rest.substr(1));
    if ((sign != '+' && sign != '-') || !offset) {
      return fail(
          why, "expected SIGRTMIN, SIGRTMIN+N, SIGRTMAX or SIGRTMAX-N; got " + display(original));
    }
    signo += sign == '+' ? *offset : -*offset;
  }
  if (signo < low || signo > high) {
    return fail(why, display(original) + " is outside the realtime signals of this system, " +
                         "SIGRTMIN (" + std::to_string(low) + ") to SIGRTMIN+" +
                         std::to_string(high - low) + " = SIGRTMAX (" + std::to_string(high) + ")");
  }
  if (canonical != nullptr) *canonical = realtime_name(signo);
  return signo;
}

}  // namespace

std::optional<int> parse_posix_signal(std::string_view text, std::string* canonical,
                                      std::string* why) {
  std::string name;
  name.reserve(text.size());
  for (char c : text) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string_view bare = name;
  if (bare.substr(0, 3) == "SIG") bare.remove_prefix(3);

  if (bare.empty())
    return fail(why, "expected " + std::string(kExamples) + "; got " + display(text));
  if (small_number(bare)) {
    return fail(why,
                "give the POSIX signal by name, such as SIGUSR1, not by number (numbers "
                "differ between architectures); got " +
                    display(text));
  }
  if (bare.substr(0, 5) == "RTMIN" || bare.substr(0, 5) == "RTMAX") {
    return parse_realtime(bare, text, canonical, why);
  }
  for (const Allowed& allowed : kAllowed) {
    if (allowed.name != bare) continue;
    if (canonical != nullptr) {
      *canonical = allowed.signo == SIGIO ? "SIGIO" : "SIG" + std::string(allowed.name);
    }
    return allowed.signo;
  }
  for (const Refused& refused : kRefused) {
    if (refused.name != bare) continue;
    return fail(why, "SIG" + std::string(refused.name) + " " + std::string(refused.reason) +
                         "; map another, such as SIGUSR1 or SIGRTMIN+N");
  }
  return fail(why,
              "unknown POSIX signal " + display(text) + "; expected " + std::string(kExamples));
}

}  // namespace tocsin::config

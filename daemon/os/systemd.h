// systemd.h — the service manager's protocols through libsystemd (SPEC §5): readiness and status
// notifications, the watchdog, socket activation, and whether stderr is the journal. Every call
// is a no-op (returning false / nullopt) when not run by systemd, so the daemon behaves the same
// in a terminal. Reactor thread only (sd_notify is a non-blocking datagram send).
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace tocsin::os::systemd {

// sd_notify(3): "READY=1", "STATUS=...", "RELOADING=1\nMONOTONIC_USEC=...", "STOPPING=1",
// "WATCHDOG=1". False when there is no NOTIFY_SOCKET (or the send failed).
bool notify(const std::string& state);
// "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC now>", as Type=notify-reload expects.
std::string reloading_message();
// The interval at which to ping the watchdog (half of WATCHDOG_USEC), when it is enabled for us.
std::optional<std::chrono::microseconds> watchdog_ping_interval();
// The listening socket passed by socket activation (sd_listen_fds_with_names): the one named
// `name`, or the only one passed. The fd is ours (CLOEXEC set) and LISTEN_* are unset.
std::optional<int> activated_socket(const std::string& name);
// Whether stderr is connected to the journal (JOURNAL_STREAM names its device and inode), so log
// lines should carry "<N>" priority prefixes.
bool stderr_is_journal();

}  // namespace tocsin::os::systemd

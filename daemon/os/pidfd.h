// pidfd.h — pidfd_open(2). Called through syscall(2) because glibc 2.36's <sys/pidfd.h> (Debian
// 12) lacks extern "C" and cannot be linked from C++.
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

namespace tocsin::os {

inline int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace tocsin::os

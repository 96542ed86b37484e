// PgCluster — a throwaway PostgreSQL server for the tests (issue 7): initdb in a temp dir (as the
// `postgres` user when the tests run as root), Unix socket only, fsync off; stopped by its PID in
// the destructor. `shared()` is the one scripts/test starts for the whole run (TOCSIN_TEST_PGHOST),
// for tests that do not disturb it; tests that stop, freeze or restart the server make their own.
// Tests skip with a message when no PostgreSQL binaries are installed (scripts/test installs them).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "fakes/temp_dir.h"

namespace tocsin::testing {

class PgCluster {
 public:
  // A new server, started; nullptr with `why` set when it cannot be had.
  static std::unique_ptr<PgCluster> create(std::string* why);
  // The same, also listening on TCP on localhost (all its addresses) at a free port.
  static std::unique_ptr<PgCluster> create_tcp(std::string* why);
  int tcp_port() const { return tcp_port_; }
  // The run's shared server when scripts/test started one, else a new one.
  static std::unique_ptr<PgCluster> shared(std::string* why);
  ~PgCluster();

  const std::string& socket_dir() const { return socket_dir_; }
  // "host=DIR user=postgres dbname=postgres"
  std::string conninfo() const;
  pid_t pid() const { return pid_; }

  // psql -tA -c SQL; the output, or nullopt (and `err`) when psql failed.
  std::optional<std::string> psql(const std::string& sql, std::string* err = nullptr) const;
  bool stop_fast();  // pg_ctl stop -m fast
  bool start();      // pg_ctl start -w
  // SIGSTOP / SIGCONT to the postmaster and every backend: a server that hangs.
  void freeze();
  void thaw();

 private:
  PgCluster() = default;
  static std::unique_ptr<PgCluster> make(std::string* why, int tcp_port);
  std::string bin_;
  std::unique_ptr<TempDir> dir_;
  std::string data_, socket_dir_;
  pid_t pid_ = -1;
  bool owned_ = true;
  bool frozen_ = false;
  int tcp_port_ = 0;
};

}  // namespace tocsin::testing

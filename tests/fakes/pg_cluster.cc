#include "fakes/pg_cluster.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

extern char** environ;

namespace tocsin::testing {

namespace {

std::string find_bin() {
  if (const char* b = std::getenv("TOCSIN_TEST_PG_BIN"); b && *b) return b;
  std::string best;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    std::string bin = e.path().string() + "/bin";
    if (std::filesystem::exists(bin + "/initdb") && bin > best) best = bin;
  }
  return best;
}

// Runs argv (as `postgres` when we are root); returns the exit code, stdout+stderr in *out.
int run(std::vector<std::string> argv, std::string* out) {
  if (::geteuid() == 0) argv.insert(argv.begin(), {"runuser", "-u", "postgres", "--"});
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  if (rc != 0) {
    ::close(pipefd[0]);
    if (out) *out = "cannot start " + argv[0];
    return -1;
  }
  char buf[4096];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) {
    if (out) out->append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

pid_t read_pid(const std::string& data) {
  std::ifstream in(data + "/postmaster.pid");
  pid_t pid = -1;
  in >> pid;
  return pid;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream stat("/proc/" + std::string(e->d_name) + "/stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    pid_t ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) {
      out.push_back(pid);
    }
  }
  ::closedir(d);
  return out;
}

}  // namespace

std::unique_ptr<PgCluster> PgCluster::create_tcp(std::string* why) {
  // A free port: bind to 0, read it, let it go (the server takes it a moment later).
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(s);
    *why = "no free TCP port on 127.0.0.1";
    return nullptr;
  }
  ::close(s);
  return make(why, ntohs(addr.sin_port));
}

std::unique_ptr<PgCluster> PgCluster::create(std::string* why) { return make(why, 0); }

std::unique_ptr<PgCluster> PgCluster::make(std::string* why, int tcp_port) {
  std::unique_ptr<PgCluster> c(new PgCluster());
  c->tcp_port_ = tcp_port;
  c->bin_ = find_bin();
  if (c->bin_.empty()) {
    *why = "no PostgreSQL binaries in /usr/lib/postgresql/*/bin (scripts/test installs them)";
    return nullptr;
  }
  c->dir_ = std::make_unique<TempDir>();
  c->data_ = c->dir_->file("data");
  c->socket_dir_ = c->dir_->path().string();
  if (::geteuid() == 0) {
    passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      *why = "no postgres user to run the server as";
      return nullptr;
    }
    if (::chown(c->socket_dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      *why = "cannot chown " + c->socket_dir_;
      return nullptr;
    }
  }
  std::string out;
  if (run({c->bin_ + "/initdb", "-D", c->data_, "-A", "trust", "-U", "postgres", "--no-sync",
           "-E", "UTF8"},
          &out) != 0) {
    *why = "initdb failed: " + out;
    return nullptr;
  }
  if (!c->start()) {
    *why = "the server did not start: " + out;
    return nullptr;
  }
  return c;
}

std::unique_ptr<PgCluster> PgCluster::shared(std::string* why) {
  const char* host = std::getenv("TOCSIN_TEST_PGHOST");
  if (host == nullptr || *host == '\0') return create(why);
  std::unique_ptr<PgCluster> c(new PgCluster());
  c->bin_ = find_bin();
  c->socket_dir_ = host;
  c->owned_ = false;
  return c;
}

PgCluster::~PgCluster() {
  if (!owned_) return;
  if (frozen_) thaw();
  pid_t pid = read_pid(data_);
  if (pid > 0) {
    ::kill(pid, SIGINT);  // fast shutdown
    for (int i = 0; i < 3000 && ::kill(pid, 0) == 0; ++i) ::usleep(10000);
    if (::kill(pid, 0) == 0) ::kill(pid, SIGKILL);
  }
}

std::string PgCluster::conninfo() const {
  return "host=" + socket_dir_ + (tcp_port_ ? " port=" + std::to_string(tcp_port_) : "") +
         " user=postgres dbname=postgres";
}

std::optional<std::string> PgCluster::psql(const std::string& sql, std::string* err) const {
  std::string out;
  std::vector<std::string> argv{bin_ + "/psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1",
                                "-h", socket_dir_, "-U", "postgres", "-d", "postgres", "-c", sql};
  if (tcp_port_) argv.insert(argv.end() - 2, {"-p", std::to_string(tcp_port_)});
  if (run(argv, &out) != 0) {
    if (err) *err = out;
    return std::nullopt;
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool PgCluster::stop_fast() {
  std::string out;
  bool ok = run({bin_ + "/pg_ctl", "-D", data_, "-m", "fast", "-w", "-t", "30", "stop"}, &out) == 0;
  pid_ = -1;
  return ok;
}

bool PgCluster::start() {
  std::string out;
  std::string listen = tcp_port_ ? "-c listen_addresses='localhost' -p " + std::to_string(tcp_port_)
                                 : std::string("-c listen_addresses=''");
  std::string opts = "-k " + socket_dir_ + " " + listen +
                     " -c fsync=off -c full_page_writes=off -c synchronous_commit=off";
  bool ok = run({bin_ + "/pg_ctl", "-D", data_, "-o", opts, "-l", data_ + "/../server.log", "-w",
                 "-t", "30", "start"},
                &out) == 0;
  pid_ = ok ? read_pid(data_) : -1;
  return ok;
}

void PgCluster::freeze() {
  pid_t pm = read_pid(data_);
  for (pid_t p : children_of(pm)) ::kill(p, SIGSTOP);
  ::kill(pm, SIGSTOP);
  frozen_ = true;
}

void PgCluster::thaw() {
  pid_t pm = read_pid(data_);
  ::kill(pm, SIGCONT);
  for (pid_t p : children_of(pm)) ::kill(p, SIGCONT);
  frozen_ = false;
}

}  // namespace tocsin::testing

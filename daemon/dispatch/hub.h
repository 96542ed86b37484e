// hub.h — delivery to clients of the socket (SPEC §2 subscriber targets, §7), without sockets.
//
// The Hub keeps, for every connected client, its subscriptions, its bounded queue of outgoing
// events and the one-of events it holds unacknowledged. Sessions (daemon/server/session.cc) only
// drain a client's queue with pop() when the hub wakes them; everything about who gets what is
// decided here, so it is unit-tested with a ManualClock and no I/O.
//
// Rules (docs/protocol.md "Delivery"):
// - broadcast: every client with a matching subscription gets the event once; a full queue drops
//   its oldest broadcast event and the client is told with an overflow notice before its next
//   event (dropped count, first and last seq);
// - one-of (subscriber, subscriber:NAME, group:NAME): one candidate, round robin; kept until
//   acked; redelivered when the holder disconnects or misses its ack deadline; waits in a bounded
//   backlog per (signal, target) while there is no candidate. A client whose queue is full is not
//   a candidate, so one-of events are never dropped from a queue.
// Counting into SignalStats: broadcast `delivered` per event handed to a session for writing,
// `dropped` per event pushed out of a queue or a backlog; one-of `delivered` when acked.
// Reactor thread only.
#pragma once

#include <bitset>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/event_encoder.h"
#include "protocol/line.h"
#include "tocsin/clock.h"
#include "tocsin/config.h"
#include "tocsin/result.h"
#include "tocsin/signal.h"
#include "tocsin/signal_table.h"

namespace tocsin {

using ClientId = std::uint64_t;

struct SubscriptionSpec {
  std::bitset<kSignalCount> signals;  // all bits set for "*"
  // The sources filter (Django's `sender`): an event matches when its source's kind or its id is
  // in the list; empty = any source. Kinds are open (a kind names its own), so the list is not
  // sorted into kinds and ids.
  std::vector<std::string> sources;
  bool ack = false;
  bool matches_source(const SourceRef& source) const;
};

struct Overflow {
  std::uint64_t dropped = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
};

// One thing for a session to write.
struct Outgoing {
  enum class Kind { event, overflow } kind = Kind::event;
  Line line;          // the complete JSON line
  Overflow overflow;  // for Kind::overflow
};

class Hub {
 public:
  struct Limits {
    std::size_t queue = 65536;    // per client
    std::size_t backlog = 65536;  // per (signal, one-of target)
    std::size_t subscriptions = 4096;
    std::chrono::milliseconds ack_timeout{30000};
  };

  Hub(const Clock& clock, SignalStats& stats);
  void set_limits(const Limits& limits) { limits_ = limits; }
  const Limits& limits() const { return limits_; }

  // ---- clients (sessions) ----
  // `wake` is called when the client's queue goes from empty to non-empty.
  ClientId connect(std::function<void()> wake);
  // Redelivers every one-of event the client held (queued or unacked) to other candidates.
  void disconnect(ClientId id);
  Result<void> hello(ClientId id, const std::string& name, const std::string& group);
  Result<std::uint64_t> subscribe(ClientId id, SubscriptionSpec spec);
  Result<void> unsubscribe(ClientId id, std::uint64_t subscription);
  Result<void> ack(ClientId id, std::uint64_t seq);
  // The next thing to write for this client (an overflow notice first, if any), or nullopt.
  std::optional<Outgoing> pop(ClientId id);

  // ---- targets (called by TargetHandler) ----
  // Returns how many clients the event was queued for.
  std::size_t broadcast(const EventPtr& event);
  void deliver_one(const EventPtr& event, const config::TargetHandler& target);

  // ---- ack deadlines ----
  std::optional<std::chrono::steady_clock::time_point> next_deadline() const;
  // Redelivers every one-of event whose ack deadline is at or before `now`.
  void expire(std::chrono::steady_clock::time_point now);
  void expire_due() { expire(clock_.steady_now()); }
  // Called when the earliest ack deadline may have moved earlier (to re-arm a timer).
  void set_deadline_changed(std::function<void()> fn) { deadline_changed_ = std::move(fn); }

  // ---- introspection (status, metrics, tests) ----
  struct ClientInfo {
    ClientId id;
    std::string name;
    std::string group;
    std::size_t subscriptions;
    std::size_t queue;
    std::size_t unacked;
    std::uint64_t dropped;  // broadcast events dropped from its queue, in total
  };
  std::vector<ClientInfo> clients() const;
  std::optional<ClientInfo> client_info(ClientId id) const;
  std::size_t client_count() const { return clients_.size(); }
  std::size_t backlog_size() const;

 private:
  struct Pending {
    EventPtr event;
    config::TargetHandler target;
    std::chrono::steady_clock::time_point deadline;
  };
  // A queued broadcast line does not keep its event alive: the event is freed as soon as it is
  // raised, and a queue holds only what it will write.
  struct Queued {
    Line line;
    std::uint64_t seq = 0;
    SignalId signal = 0;
    bool one_of = false;
  };
  struct Client {
    ClientId id = 0;
    std::string name;
    std::string group;
    std::function<void()> wake;
    std::map<std::uint64_t, SubscriptionSpec> subscriptions;
    std::bitset<kSignalCount> any_signals;  // union of all subscriptions
    std::bitset<kSignalCount> ack_signals;  // union of acking subscriptions
    std::deque<Queued> queue;
    std::map<std::uint64_t, Pending> unacked;  // by seq
    Overflow overflow;                          // not yet reported
    std::uint64_t dropped_total = 0;
  };
  // Backlog key: (signal, target kind, name).
  using BacklogKey = std::tuple<SignalId, config::TargetKind, std::string>;
  using DeadlineKey = std::tuple<std::chrono::steady_clock::time_point, ClientId, std::uint64_t>;

  Client* find(ClientId id);
  const Client* find(ClientId id) const;
  void reindex(Client& c);
  bool wants(const Client& c, const Event& e, bool ack_only) const;
  void enqueue(Client& c, Queued item);
  void note_drop(Client& c, std::uint64_t seq, SignalId signal);
  // Tries to hand the event to one candidate (skipping `avoid` when another exists).
  bool assign(const EventPtr& event, const config::TargetHandler& target, bool redelivered,
              std::optional<ClientId> avoid);
  void to_backlog(const EventPtr& event, const config::TargetHandler& target);
  void drain_backlogs();

  const Clock& clock_;
  SignalStats& stats_;
  Limits limits_;
  ClientId next_client_ = 1;
  std::uint64_t next_subscription_ = 1;
  std::unordered_map<ClientId, std::unique_ptr<Client>> clients_;
  // index_[signal]: clients with any subscription including the signal, in connection order.
  std::array<std::vector<Client*>, kSignalCount> index_;
  std::map<BacklogKey, std::deque<EventPtr>> backlog_;
  std::map<BacklogKey, std::size_t> round_robin_;
  std::set<DeadlineKey> deadlines_;
  std::function<void()> deadline_changed_;
  EventEncoder encoder_;
};

}  // namespace tocsin

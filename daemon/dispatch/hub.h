// hub.h — delivery to clients of the socket (SPEC §2 subscriber targets, §7), without sockets.
//
// The Hub keeps, for every connected client, its subscriptions, its bounded queue of outgoing
// events and the one-of events it holds unacknowledged. Sessions (daemon/server/session.cc) only
// drain a client's queue with pop() when the hub wakes them; everything about who gets what is
// decided here, so it is unit-tested with a ManualClock and no I/O.
//
// Rules (docs/protocol.md "Delivery", docs/reliability.md):
// - broadcast: every client with a matching subscription gets the event once; a full queue drops
//   its oldest broadcast event and the client is told with an overflow notice before its next
//   event (dropped count, first and last seq);
// - one-of (subscriber, subscriber:NAME, group:NAME): credit, as RabbitMQ's basic.qos prefetch.
//   Each acking client holds at most `prefetch` unacked one-of events (its own, or
//   limits.prefetch). An event goes to the candidate with free credit holding the fewest unacked
//   events, ties to the one given an event least recently (round robin); the choice is a walk
//   from the front of an ordered set of the candidates with free credit (O(log n) to keep). With
//   no candidate with credit it waits in a bounded backlog per (signal, target), oldest first,
//   and goes out as soon as credit frees. An event comes back when its holder nacks it, misses
//   its ack deadline or goes away; each delivery is counted (`delivery` in the event), and one
//   that reached its signal's max_deliveries, or was nacked without requeue, is dead-lettered:
//   raised on the signal's dead_letter signal with the original, or else dropped, logged and
//   counted. A client whose queue is full is not a candidate, so one-of events are never dropped
//   from a queue.
// Counting into SignalStats: broadcast `delivered` per event handed to a session for writing,
// `dropped` per event pushed out of a queue or a backlog; one-of `delivered` when acked, `failed`
// when dead-lettered onto another signal, `dropped` when dead-lettered with nowhere to go.
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

#include "dispatch/histogram.h"
#include "protocol/event_encoder.h"
#include "protocol/line.h"
#include "tocsin/clock.h"
#include "tocsin/config.h"
#include "tocsin/dispatcher.h"
#include "tocsin/result.h"
#include "tocsin/signal.h"
#include "tocsin/signal_table.h"

namespace tocsin {

using ClientId = std::uint64_t;

// The source of a dead-letter event: {"kind":"dead_letter","id":ORIGINAL SIGNAL'S NAME or number}.
inline constexpr SourceKind kDeadLetterKind{"dead_letter"};

struct SubscriptionSpec {
  std::bitset<kSignalCount> signals;  // all bits set for "*"
  // The sources filter (Django's `sender`): an event matches when its source's kind or its id is
  // in the list; empty = any source. Kinds are open (a kind names its own), so the list is not
  // sorted into kinds and ids.
  std::vector<std::string> sources;
  bool ack = false;
  // With ack: the most unacked one-of events the connection holds (its credit); 0 leaves the
  // connection's credit as it is (limits.prefetch until a subscription gives one).
  std::uint32_t prefetch = 0;
  // How the connection's `signal` notifications carry their params (all of its subscriptions);
  // unset leaves it as it is (by name until a subscription says otherwise).
  std::optional<EventParams> event_params;
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
    std::size_t prefetch = 32;  // credit of a client that did not choose one
  };

  Hub(const Clock& clock, SignalStats& stats);
  ~Hub();
  void set_limits(const Limits& limits);
  // Where each signal's max_deliveries and dead_letter are looked up (its current table), and
  // where dead letters are raised. Without one, nothing is dead-lettered by count and a rejected
  // event is dropped, logged and counted.
  void set_dispatcher(Dispatcher* dispatcher) { dispatcher_ = dispatcher; }
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
  // Hands the event back (SPEC §2): to another candidate when there is one (else to this one),
  // or, with requeue false or at max_deliveries, to the dead letter.
  Result<void> nack(ClientId id, std::uint64_t seq, bool requeue);
  // Many at once (acks batched by a worker): what it held is acked (nacked); the seqs it did not
  // hold are returned, in the order given.
  struct Settled {
    std::size_t done = 0;
    std::vector<std::uint64_t> not_held;
  };
  Settled ack_many(ClientId id, const std::vector<std::uint64_t>& seqs);
  Settled nack_many(ClientId id, const std::vector<std::uint64_t>& seqs, bool requeue);
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

  // ---- memory after a burst (SPEC §5) ----
  // Called once every client's queue is empty again after the queues together held at least
  // `threshold` events: the moment to give what the burst took back to the system. `peak` is
  // the most they held. Called from inside pop() or disconnect(): defer the work.
  void set_drained(std::size_t threshold, std::function<void(std::size_t peak)> fn) {
    drained_threshold_ = threshold;
    drained_ = std::move(fn);
  }
  std::size_t queued() const { return queued_total_; }

  // ---- introspection (status, metrics, tests) ----
  struct ClientInfo {
    ClientId id;
    std::string name;
    std::string group;
    std::size_t subscriptions;
    std::size_t queue;
    std::size_t unacked;
    std::size_t prefetch;   // its credit: the most unacked one-of events it may hold
    std::uint64_t dropped;  // broadcast events dropped from its queue, in total
  };
  std::vector<ClientInfo> clients() const;
  std::optional<ClientInfo> client_info(ClientId id) const;
  std::size_t client_count() const { return clients_.size(); }
  std::size_t backlog_size() const;
  // Per signal: one-of events from when they were given to a client to their ack
  // (tocsin_ack_duration_seconds). Signals with no ack yet have none.
  const std::map<SignalId, Histogram>& ack_durations() const { return ack_durations_; }

 private:
  struct Client;
  // One candidate in a pool: ordered by unacked events held, then by when it was last given one
  // (round robin among equals), then by id.
  struct PoolKey {
    std::size_t unacked = 0;
    std::uint64_t tick = 0;
    ClientId id = 0;
    Client* client = nullptr;
    bool operator<(const PoolKey& o) const {
      return std::tie(unacked, tick, id) < std::tie(o.unacked, o.tick, o.id);
    }
  };
  // The acking clients with free credit for one signal (or for "*"), of one group or of all.
  struct Pool {
    std::set<PoolKey> candidates;
    std::size_t members = 0;  // clients that file themselves here when they have credit
    const std::pair<std::string, int>* group_key = nullptr;  // its key in group_pools_, if any
  };
  struct Pending {
    EventPtr event;
    config::TargetHandler target;
    std::uint32_t delivery = 1;  // this delivery's number
    std::chrono::steady_clock::time_point given;  // when give() handed it out
  };
  // A holder's unacked events in the order they were given, which is deadline order while
  // ack_timeout stays the same. Entries settled since are skipped when they reach the front.
  struct Held {
    std::uint64_t seq = 0;
    std::uint32_t delivery = 0;
    std::chrono::steady_clock::time_point deadline;
  };
  // A queued broadcast line does not keep its event alive: the event is freed as soon as it is
  // raised, and a queue holds only what it will write.
  struct Queued {
    Line line;
    std::uint64_t seq = 0;
    SignalId signal = 0;
    std::uint32_t delivery = 0;  // 0: broadcast
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
    std::unordered_map<std::uint64_t, Pending> unacked;  // by seq
    std::deque<Held> held;
    std::size_t prefetch = 0;  // 0: limits.prefetch
    EventParams params = EventParams::by_name;
    Overflow overflow;         // not yet reported
    std::uint64_t dropped_total = 0;
    // Selection: the pools it files itself in while it has credit, and the key it is filed under.
    std::vector<Pool*> pools;
    bool pooled = false;
    PoolKey key;
    std::uint64_t tick = 0;
    bool in_deadlines = false;
    std::chrono::steady_clock::time_point deadline_at;  // its key in deadlines_, when in it
  };
  enum class Return { nack, rejected, ack_timeout, disconnected };
  static std::string_view reason(Return why);
  // The signal's entry in the dispatcher's current table (max_deliveries, dead_letter).
  const SignalEntry* entry_of(SignalId signal) const;
  struct Backlogged {
    EventPtr event;
    std::uint32_t deliveries = 0;  // made before it came here
  };
  struct DeadLetter {
    EventPtr event;
    std::uint32_t deliveries = 0;
    Return why = Return::nack;
  };
  // Backlog key: (signal, target kind, name).
  using BacklogKey = std::tuple<SignalId, config::TargetKind, std::string>;

  Client* find(ClientId id);
  const Client* find(ClientId id) const;
  std::size_t credit(const Client& c) const { return c.prefetch ? c.prefetch : limits_.prefetch; }
  void reindex(Client& c);
  void refile_pools(Client& c);
  void unpool(Client& c);
  void pool(Client& c);
  Pool& group_pool(const std::string& group, int signal);  // signal -1: "*"
  void release_pool(Pool* p);
  bool wants(const Client& c, const Event& e, bool ack_only) const;
  void enqueue(Client& c, Queued item);
  void note_drop(Client& c, std::uint64_t seq, SignalId signal);
  Client* pick(const Event& event, const config::TargetHandler& target,
               std::optional<ClientId> avoid);
  // Gives the event to a candidate (skipping `avoid` when another has credit); false if none.
  bool assign(const EventPtr& event, const config::TargetHandler& target,
              std::uint32_t deliveries, std::optional<ClientId> avoid);
  void give(Client& c, const EventPtr& event, const config::TargetHandler& target,
            std::uint32_t delivery);
  std::optional<Pending> settle(Client& c, std::uint64_t seq);
  void trim_held(Client& c);
  void give_back(Pending p, Return why, std::optional<ClientId> avoid);
  void to_backlog(const EventPtr& event, const config::TargetHandler& target,
                  std::uint32_t deliveries);
  void drain_backlogs();
  void drain_backlog(std::map<BacklogKey, std::deque<Backlogged>>::iterator it);
  void flush_dead_letters();
  void observe_ack(const Pending& p, std::chrono::steady_clock::time_point now);

  const Clock& clock_;
  SignalStats& stats_;
  Limits limits_;
  Dispatcher* dispatcher_ = nullptr;
  ClientId next_client_ = 1;
  std::uint64_t next_subscription_ = 1;
  std::uint64_t tick_ = 0;
  std::unordered_map<ClientId, std::unique_ptr<Client>> clients_;
  std::unordered_map<std::string, Client*> named_;
  // index_[signal]: clients with any subscription including the signal, in connection order.
  std::array<std::vector<Client*>, kSignalCount> index_;
  std::array<Pool, kSignalCount> pools_;  // `subscriber` candidates by signal
  Pool wild_pool_;                        // ... that subscribed to "*"
  std::map<std::pair<std::string, int>, Pool> group_pools_;  // (group, signal or -1)
  std::map<BacklogKey, std::deque<Backlogged>> backlog_;
  // (deadline of the front of its `held`, client): one entry per client holding anything. An
  // entry may be early (its front was settled since); expire() then files the next one.
  std::set<std::pair<std::chrono::steady_clock::time_point, ClientId>> deadlines_;
  std::function<void()> deadline_changed_;
  std::vector<DeadLetter> dead_;  // raised at the end of the operation that made them
  std::size_t queued_total_ = 0;  // events in every client's queue
  std::size_t queued_peak_ = 0;   // since the queues were last empty
  std::size_t drained_threshold_ = 0;
  std::function<void(std::size_t)> drained_;
  void dequeued(std::size_t n);
  EventEncoder encoder_;
  std::map<SignalId, Histogram> ack_durations_;
};

}  // namespace tocsin

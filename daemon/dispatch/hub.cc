#include "dispatch/hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "log/scope.h"

namespace tocsin {

std::string_view Hub::reason(Return why) {
  switch (why) {
    case Return::nack: return "nack";
    case Return::rejected: return "rejected";
    case Return::ack_timeout: return "ack_timeout";
    case Return::disconnected: return "disconnected";
  }
  return "?";
}

const SignalEntry* Hub::entry_of(SignalId signal) const {
  return dispatcher_ != nullptr ? dispatcher_->table().find(signal) : nullptr;
}

bool SubscriptionSpec::matches_source(const SourceRef& source) const {
  if (sources.empty()) return true;
  for (const std::string& s : sources) {
    if (s == source.kind.name() || s == source.id) return true;
  }
  return false;
}

Hub::Hub(const Clock& clock, SignalStats& stats) : clock_(clock), stats_(stats) {}

Hub::~Hub() = default;

void Hub::set_limits(const Limits& limits) {
  bool credit_changed = limits.prefetch != limits_.prefetch;
  limits_ = limits;
  if (!credit_changed) return;
  // Clients on the default credit get the new one.
  for (auto& [id, c] : clients_) {
    if (c->prefetch == 0) {
      unpool(*c);
      pool(*c);
    }
  }
  drain_backlogs();
}

Hub::Client* Hub::find(ClientId id) {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : it->second.get();
}
const Hub::Client* Hub::find(ClientId id) const {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : it->second.get();
}

ClientId Hub::connect(std::function<void()> wake) {
  auto c = std::make_unique<Client>();
  c->id = next_client_++;
  c->wake = std::move(wake);
  ClientId id = c->id;
  clients_.emplace(id, std::move(c));
  return id;
}

void Hub::disconnect(ClientId id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  std::unique_ptr<Client> c = std::move(it->second);
  clients_.erase(it);
  if (!c->name.empty()) named_.erase(c->name);
  c->subscriptions.clear();
  std::size_t dropped_with_it = c->queue.size();
  reindex(*c);  // out of index_ and of every pool
  if (c->in_deadlines) deadlines_.erase({c->deadline_at, id});
  // Every one-of event it held goes to someone else, in the order it was given.
  for (const Held& h : c->held) {
    auto p = c->unacked.find(h.seq);
    if (p == c->unacked.end() || p->second.delivery != h.delivery) continue;
    Pending pending = std::move(p->second);
    c->unacked.erase(p);
    give_back(std::move(pending), Return::disconnected, std::nullopt);
  }
  c->queue.clear();
  dequeued(dropped_with_it);
  flush_dead_letters();
}

void Hub::dequeued(std::size_t n) {
  queued_total_ -= n;
  if (queued_total_ == 0 && queued_peak_ > 0) {
    std::size_t peak = queued_peak_;
    queued_peak_ = 0;
    if (drained_ && drained_threshold_ > 0 && peak >= drained_threshold_) drained_(peak);
  }
}

Result<void> Hub::hello(ClientId id, const std::string& name, const std::string& group) {
  Client* c = find(id);
  if (!c) return Error{"unknown client", ErrorCode::internal};
  if (!name.empty() && name != c->name) {
    if (auto other = named_.find(name); other != named_.end()) {
      return Error{"the name \"" + name + "\" is taken by client " +
                       std::to_string(other->second->id),
                   ErrorCode::invalid_params};
    }
    if (!c->name.empty()) named_.erase(c->name);
    c->name = name;
    named_[name] = c;
  }
  if (!group.empty() && group != c->group) {
    c->group = group;
    refile_pools(*c);
  }
  drain_backlogs();  // a named or grouped candidate may have just appeared
  return ok();
}

Hub::Pool& Hub::group_pool(const std::string& group, int signal) {
  auto [it, fresh] = group_pools_.try_emplace({group, signal});
  if (fresh) it->second.group_key = &it->first;
  return it->second;
}

// A group's pool goes with its last member; the per-signal and wildcard pools stay.
void Hub::release_pool(Pool* p) {
  if (--p->members > 0 || p->group_key == nullptr) return;
  auto key = *p->group_key;  // (a copy: the node holding it is erased)
  group_pools_.erase(key);
}

// The pools a client files itself in follow from its acking subscriptions and its group.
void Hub::refile_pools(Client& c) {
  unpool(c);
  for (Pool* p : c.pools) release_pool(p);
  c.pools.clear();
  bool all = false;
  std::bitset<kSignalCount> explicit_signals;
  for (const auto& [sid, s] : c.subscriptions) {
    if (!s.ack) continue;
    if (s.signals.all()) {
      all = true;
    } else {
      explicit_signals |= s.signals;
    }
  }
  auto join = [&](Pool& p) {
    ++p.members;
    c.pools.push_back(&p);
  };
  if (all) {
    join(wild_pool_);
    if (!c.group.empty()) join(group_pool(c.group, -1));
  }
  for (int sig = 0; sig < kSignalCount && explicit_signals.any(); ++sig) {
    if (!explicit_signals[sig]) continue;
    join(pools_[sig]);
    if (!c.group.empty()) join(group_pool(c.group, sig));
  }
  pool(c);
}

void Hub::unpool(Client& c) {
  if (!c.pooled) return;
  for (Pool* p : c.pools) p->candidates.erase(c.key);
  c.pooled = false;
}

void Hub::pool(Client& c) {
  if (c.pooled || c.pools.empty() || c.unacked.size() >= credit(c)) return;
  c.key = PoolKey{c.unacked.size(), c.tick, c.id, &c};
  for (Pool* p : c.pools) p->candidates.insert(c.key);
  c.pooled = true;
}

void Hub::reindex(Client& c) {
  std::bitset<kSignalCount> any;
  std::bitset<kSignalCount> ack;
  for (const auto& [sid, s] : c.subscriptions) {
    any |= s.signals;
    if (s.ack) ack |= s.signals;
  }
  std::bitset<kSignalCount> changed = any ^ c.any_signals;
  for (int sig = 0; sig < kSignalCount && changed.any(); ++sig) {
    if (!changed[sig]) continue;
    auto& list = index_[sig];
    if (any[sig]) {
      // Keep connection order so that broadcast order is stable.
      auto pos = std::lower_bound(list.begin(), list.end(), &c,
                                  [](const Client* a, const Client* b) { return a->id < b->id; });
      list.insert(pos, &c);
    } else {
      list.erase(std::remove(list.begin(), list.end(), &c), list.end());
    }
  }
  c.any_signals = any;
  c.ack_signals = ack;
  refile_pools(c);
}

Result<std::uint64_t> Hub::subscribe(ClientId id, SubscriptionSpec spec) {
  Client* c = find(id);
  if (!c) return Error{"unknown client", ErrorCode::internal};
  if (c->subscriptions.size() >= limits_.subscriptions) {
    return Error{"limits.subscriptions (" + std::to_string(limits_.subscriptions) +
                     ") reached for this connection",
                 ErrorCode::limit_reached};
  }
  std::uint64_t sid = next_subscription_++;
  bool acking = spec.ack;
  if (acking && spec.prefetch > 0) c->prefetch = spec.prefetch;
  if (spec.event_params) c->params = *spec.event_params;
  c->subscriptions.emplace(sid, std::move(spec));
  reindex(*c);
  if (acking) drain_backlogs();
  return sid;
}

Result<void> Hub::unsubscribe(ClientId id, std::uint64_t subscription) {
  Client* c = find(id);
  if (!c) return Error{"unknown client", ErrorCode::internal};
  if (c->subscriptions.erase(subscription) == 0) {
    return Error{"no subscription " + std::to_string(subscription) + " on this connection",
                 ErrorCode::not_found};
  }
  reindex(*c);
  return ok();
}

// Takes a held event out of the client's hands (an ack, a nack). The client's pool key is not
// refreshed here: the caller does it once for a batch.
std::optional<Hub::Pending> Hub::settle(Client& c, std::uint64_t seq) {
  auto it = c.unacked.find(seq);
  if (it == c.unacked.end()) return std::nullopt;
  Pending p = std::move(it->second);
  c.unacked.erase(it);
  return p;
}

// Drops settled entries from the front of `held`, and compacts it when settled entries behind
// an old unacked one pile up (acks out of order).
void Hub::trim_held(Client& c) {
  auto live = [&](const Held& h) {
    auto it = c.unacked.find(h.seq);
    return it != c.unacked.end() && it->second.delivery == h.delivery;
  };
  while (!c.held.empty() && !live(c.held.front())) c.held.pop_front();
  if (c.held.size() > 2 * c.unacked.size() + 64) {
    std::erase_if(c.held, [&](const Held& h) { return !live(h); });
  }
  if (c.held.empty() && c.in_deadlines) {
    // Nothing held: no wake-up for it (an idle daemon makes none).
    deadlines_.erase({c.deadline_at, c.id});
    c.in_deadlines = false;
  }
}

Result<void> Hub::ack(ClientId id, std::uint64_t seq) {
  Client* c = find(id);
  if (!c) return Error{"unknown client", ErrorCode::internal};
  auto p = settle(*c, seq);
  if (!p) {
    return Error{"this connection holds no unacknowledged event " + std::to_string(seq),
                 ErrorCode::not_found};
  }
  ++stats_[p->event->signal].delivered;
  observe_ack(*p, clock_.steady_now());
  trim_held(*c);
  unpool(*c);
  pool(*c);
  if (!backlog_.empty()) drain_backlogs();
  return ok();
}

void Hub::observe_ack(const Pending& p, std::chrono::steady_clock::time_point now) {
  auto it = ack_durations_.find(p.event->signal);
  if (it == ack_durations_.end()) {
    it = ack_durations_.emplace(p.event->signal, Histogram(kAckDurationBuckets)).first;
  }
  it->second.observe(now - p.given);
}

Hub::Settled Hub::ack_many(ClientId id, const std::vector<std::uint64_t>& seqs) {
  Settled out;
  Client* c = find(id);
  if (!c) {
    out.not_held = seqs;
    return out;
  }
  const auto now = clock_.steady_now();
  for (std::uint64_t seq : seqs) {
    if (auto p = settle(*c, seq)) {
      ++stats_[p->event->signal].delivered;
      observe_ack(*p, now);
      ++out.done;
    } else {
      out.not_held.push_back(seq);
    }
  }
  if (out.done == 0) return out;
  trim_held(*c);
  unpool(*c);
  pool(*c);
  if (!backlog_.empty()) drain_backlogs();
  return out;
}

Result<void> Hub::nack(ClientId id, std::uint64_t seq, bool requeue) {
  Settled s = nack_many(id, {seq}, requeue);
  if (s.done == 0) {
    return Error{"this connection holds no unacknowledged event " + std::to_string(seq),
                 ErrorCode::not_found};
  }
  return ok();
}

Hub::Settled Hub::nack_many(ClientId id, const std::vector<std::uint64_t>& seqs, bool requeue) {
  Settled out;
  Client* c = find(id);
  if (!c) {
    out.not_held = seqs;
    return out;
  }
  std::vector<Pending> back;
  for (std::uint64_t seq : seqs) {
    if (auto p = settle(*c, seq)) {
      back.push_back(std::move(*p));
    } else {
      out.not_held.push_back(seq);
    }
  }
  out.done = back.size();
  if (back.empty()) return out;
  trim_held(*c);
  unpool(*c);
  pool(*c);
  for (Pending& p : back) {
    give_back(std::move(p), requeue ? Return::nack : Return::rejected, id);
  }
  if (!backlog_.empty()) drain_backlogs();
  flush_dead_letters();
  return out;
}

std::optional<Outgoing> Hub::pop(ClientId id) {
  Client* c = find(id);
  if (!c) return std::nullopt;
  if (c->overflow.dropped > 0) {
    Outgoing out;
    out.kind = Outgoing::Kind::overflow;
    out.overflow = c->overflow;
    c->overflow = {};
    return out;
  }
  while (!c->queue.empty()) {
    Queued q = std::move(c->queue.front());
    c->queue.pop_front();
    dequeued(1);
    if (q.delivery > 0) {
      // A one-of event that came back while it sat here (its ack deadline passed) went on.
      auto it = c->unacked.find(q.seq);
      if (it == c->unacked.end() || it->second.delivery != q.delivery) continue;
    } else {
      ++stats_[q.signal].delivered;  // one-of counts at its ack
    }
    return Outgoing{Outgoing::Kind::event, std::move(q.line), {}};
  }
  return std::nullopt;
}

bool Hub::wants(const Client& c, const Event& e, bool ack_only) const {
  if (!(ack_only ? c.ack_signals : c.any_signals)[e.signal]) return false;
  for (const auto& [sid, s] : c.subscriptions) {
    if (ack_only && !s.ack) continue;
    if (s.signals[e.signal] && s.matches_source(e.source)) return true;
  }
  return false;
}

void Hub::enqueue(Client& c, Queued item) {
  bool was_empty = c.queue.empty() && c.overflow.dropped == 0;
  c.queue.push_back(std::move(item));
  queued_peak_ = std::max(queued_peak_, ++queued_total_);
  if (was_empty && c.wake) c.wake();
}

void Hub::note_drop(Client& c, std::uint64_t seq, SignalId signal) {
  if (c.overflow.dropped == 0) {
    c.overflow.first_seq = seq;
    c.overflow.last_seq = seq;
  }
  c.overflow.first_seq = std::min(c.overflow.first_seq, seq);
  c.overflow.last_seq = std::max(c.overflow.last_seq, seq);
  ++c.overflow.dropped;
  ++c.dropped_total;
  ++stats_[signal].dropped;
}

std::size_t Hub::broadcast(const EventPtr& event) {
  const auto& list = index_[event->signal];
  if (list.empty()) return 0;
  Line lines[2];  // serialized once in each form asked for, shared by every queue
  std::size_t queued = 0;
  for (Client* c : list) {
    if (!wants(*c, *event, false)) continue;
    Line& line = lines[static_cast<std::size_t>(c->params)];
    if (!line) {
      line = encoder_.encode(*event, 0, c->params);
    }
    if (c->queue.size() >= limits_.queue) {
      // Drop the oldest broadcast event; one-of events stay (they are owed an ack). A queue full
      // of one-of events drops this new event instead.
      auto victim = std::find_if(c->queue.begin(), c->queue.end(),
                                 [](const Queued& q) { return q.delivery == 0; });
      if (victim == c->queue.end()) {
        note_drop(*c, event->seq, event->signal);
        continue;
      }
      note_drop(*c, victim->seq, victim->signal);
      c->queue.erase(victim);
      --queued_total_;  // (the event that replaces it comes next: the total is not 0 here)
    }
    enqueue(*c, Queued{line, event->seq, event->signal, 0});
    ++queued;
  }
  return queued;
}

Hub::Client* Hub::pick(const Event& event, const config::TargetHandler& target,
                       std::optional<ClientId> avoid) {
  Client* fallback = nullptr;  // the avoided client, if it is the only candidate
  auto eligible = [&](Client* c) {
    if (c->queue.size() >= limits_.queue || c->unacked.size() >= credit(*c)) return false;
    if (!wants(*c, event, true)) return false;
    if (avoid && c->id == *avoid) {
      fallback = c;
      return false;
    }
    return true;
  };
  if (target.kind == config::TargetKind::subscriber_named) {
    auto it = named_.find(target.name);
    if (it == named_.end()) return nullptr;
    return eligible(it->second) ? it->second : fallback;
  }
  Pool* a = nullptr;
  Pool* b = nullptr;
  if (target.kind == config::TargetKind::group) {
    auto ia = group_pools_.find({target.name, event.signal});
    auto ib = group_pools_.find({target.name, -1});
    if (ia != group_pools_.end()) a = &ia->second;
    if (ib != group_pools_.end()) b = &ib->second;
  } else {
    a = &pools_[event.signal];
    b = &wild_pool_;
  }
  // The two ordered sets walked as one, best first. The first is normally eligible: candidates
  // without credit are not in the pools; a full queue or a sources filter can make it skip.
  static const std::set<PoolKey> kEmpty;
  const auto& sa = a ? a->candidates : kEmpty;
  const auto& sb = b ? b->candidates : kEmpty;
  auto ia = sa.begin();
  auto ib = sb.begin();
  while (ia != sa.end() || ib != sb.end()) {
    const PoolKey& k = (ib == sb.end() || (ia != sa.end() && *ia < *ib)) ? *ia++ : *ib++;
    if (eligible(k.client)) return k.client;
  }
  return fallback;
}

bool Hub::assign(const EventPtr& event, const config::TargetHandler& target,
                 std::uint32_t deliveries, std::optional<ClientId> avoid) {
  Client* chosen = pick(*event, target, avoid);
  if (!chosen) return false;
  give(*chosen, event, target, deliveries + 1);
  return true;
}

void Hub::give(Client& c, const EventPtr& event, const config::TargetHandler& target,
               std::uint32_t delivery) {
  const auto now = clock_.steady_now();
  auto deadline = now + limits_.ack_timeout;
  c.unacked.insert_or_assign(event->seq, Pending{event, target, delivery, now});
  c.held.push_back(Held{event->seq, delivery, deadline});
  c.tick = ++tick_;
  unpool(c);
  pool(c);
  if (!c.in_deadlines) {
    bool earliest = deadlines_.empty() || deadline < deadlines_.begin()->first;
    deadlines_.insert({deadline, c.id});
    c.in_deadlines = true;
    c.deadline_at = deadline;
    if (earliest && deadline_changed_) deadline_changed_();
  }
  enqueue(c, Queued{encoder_.encode(*event, delivery, c.params), event->seq, event->signal,
                    delivery});
}

void Hub::give_back(Pending p, Return why, std::optional<ClientId> avoid) {
  const SignalEntry* entry = entry_of(p.event->signal);
  std::uint32_t max = entry != nullptr ? entry->max_deliveries : 0;
  if (why == Return::rejected || (max > 0 && p.delivery >= max)) {
    dead_.push_back(DeadLetter{std::move(p.event), p.delivery, why});
    return;
  }
  if (!assign(p.event, p.target, p.delivery, avoid)) to_backlog(p.event, p.target, p.delivery);
}

void Hub::flush_dead_letters() {
  // Raising re-enters the hub (through the target handlers): work on a list of our own.
  std::vector<DeadLetter> dead;
  dead.swap(dead_);
  for (DeadLetter& d : dead) {
    const Event& e = *d.event;
    logging::Scope scope(e);
    std::string_view why = reason(d.why);
    const SignalEntry* entry = entry_of(e.signal);
    std::optional<SignalId> to = entry != nullptr ? entry->dead_letter : std::nullopt;
    if (!to) {
      ++stats_[e.signal].dropped;
      spdlog::warn(
          "signal {}: dropped after {} deliveries without an ack (last: {}); it has no "
          "dead_letter signal",
          describe_event(e), d.deliveries, why);
      continue;
    }
    ++stats_[e.signal].failed;
    spdlog::warn("signal {}: dead-lettered to signal {} after {} deliveries without an ack "
                 "(last: {})",
                 describe_event(e), *to, d.deliveries, why);
    std::string payload = "{\"event\":";
    payload += encode_event_object(e);
    payload += ",\"deliveries\":";
    payload += std::to_string(d.deliveries);
    payload += ",\"reason\":\"";
    payload += why;
    payload += "\"}";
    std::string id = e.name.empty() ? std::to_string(e.signal) : e.name;
    dispatcher_->raise(*to, SourceRef{kDeadLetterKind, std::move(id)}, std::move(payload));
  }
}

void Hub::to_backlog(const EventPtr& event, const config::TargetHandler& target,
                     std::uint32_t deliveries) {
  auto& q = backlog_[BacklogKey{event->signal, target.kind, target.name}];
  q.push_back(Backlogged{event, deliveries});
  if (q.size() > limits_.backlog) {
    const Event& lost = *q.front().event;
    logging::Scope scope(lost);
    ++stats_[lost.signal].dropped;
    spdlog::warn(
        "signal {}: dropped from the one-of backlog (limits.backlog = {}): no candidate "
        "subscriber took it",
        describe_event(lost), limits_.backlog);
    q.pop_front();
  }
}

void Hub::deliver_one(const EventPtr& event, const config::TargetHandler& target) {
  if (!backlog_.empty()) {
    // Behind what already waits for this target: per subscriber, events go out in seq order.
    auto it = backlog_.find(BacklogKey{event->signal, target.kind, target.name});
    if (it != backlog_.end()) {
      to_backlog(event, target, 0);
      drain_backlog(it);
      return;
    }
  }
  if (!assign(event, target, 0, std::nullopt)) to_backlog(event, target, 0);
}

void Hub::drain_backlog(std::map<BacklogKey, std::deque<Backlogged>>::iterator it) {
  auto& [key, q] = *it;
  config::TargetHandler target{std::get<1>(key), std::get<2>(key)};
  while (!q.empty() && assign(q.front().event, target, q.front().deliveries, std::nullopt)) {
    q.pop_front();
  }
  if (q.empty()) backlog_.erase(it);
}

void Hub::drain_backlogs() {
  for (auto it = backlog_.begin(); it != backlog_.end();) drain_backlog(it++);
}

std::optional<std::chrono::steady_clock::time_point> Hub::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

void Hub::expire(std::chrono::steady_clock::time_point now) {
  std::vector<std::pair<Pending, ClientId>> late;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    ClientId client_id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    Client* c = find(client_id);
    if (!c) continue;
    c->in_deadlines = false;
    bool freed = false;
    while (!c->held.empty() && c->held.front().deadline <= now) {
      Held h = c->held.front();
      c->held.pop_front();
      auto it = c->unacked.find(h.seq);
      if (it == c->unacked.end() || it->second.delivery != h.delivery) continue;
      late.emplace_back(std::move(it->second), client_id);
      c->unacked.erase(it);
      freed = true;
    }
    trim_held(*c);
    if (!c->held.empty()) {
      c->deadline_at = c->held.front().deadline;
      deadlines_.insert({c->deadline_at, client_id});
      c->in_deadlines = true;
    }
    if (freed) {
      unpool(*c);
      pool(*c);
    }
  }
  for (auto& [p, holder] : late) {
    EventPtr event = p.event;  // give_back may let go of p's; the scope names the event
    logging::Scope scope(*event, holder);
    spdlog::warn("signal {}: client {} did not ack within {}ms (delivery {}): handing it back",
                 describe_event(*event), holder, limits_.ack_timeout.count(), p.delivery);
    give_back(std::move(p), Return::ack_timeout, holder);
  }
  if (!late.empty() && !backlog_.empty()) drain_backlogs();
  flush_dead_letters();
}

std::optional<Hub::ClientInfo> Hub::client_info(ClientId id) const {
  const Client* c = find(id);
  if (!c) return std::nullopt;
  return ClientInfo{id,
                    c->name,
                    c->group,
                    c->subscriptions.size(),
                    c->queue.size(),
                    c->unacked.size(),
                    credit(*c),
                    c->dropped_total};
}

std::vector<Hub::ClientInfo> Hub::clients() const {
  std::vector<ClientInfo> out;
  out.reserve(clients_.size());
  for (const auto& [id, c] : clients_) out.push_back(*client_info(id));
  std::sort(out.begin(), out.end(),
            [](const ClientInfo& a, const ClientInfo& b) { return a.id < b.id; });
  return out;
}

std::size_t Hub::backlog_size() const {
  std::size_t n = 0;
  for (const auto& [key, q] : backlog_) n += q.size();
  return n;
}

}  // namespace tocsin

#include "dispatch/hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace tocsin {

bool SubscriptionSpec::matches_source(const SourceRef& source) const {
  if (sources.empty()) return true;
  for (const std::string& s : sources) {
    if (s == source.kind.name() || s == source.id) return true;
  }
  return false;
}

Hub::Hub(const Clock& clock, SignalStats& stats) : clock_(clock), stats_(stats) {}

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
  c->subscriptions.clear();
  reindex(*c);
  // Every one-of event it held goes to someone else, oldest first.
  for (auto& [seq, p] : c->unacked) {
    deadlines_.erase({p.deadline, c->id, seq});
  }
  for (auto& [seq, p] : c->unacked) {
    if (!assign(p.event, p.target, /*redelivered=*/true, std::nullopt)) {
      to_backlog(p.event, p.target);
    }
  }
}

Result<void> Hub::hello(ClientId id, const std::string& name, const std::string& group) {
  Client* c = find(id);
  if (!c) return Error{"unknown client", ErrorCode::internal};
  if (!name.empty() && name != c->name) {
    for (const auto& [other_id, other] : clients_) {
      if (other_id != id && other->name == name) {
        return Error{"the name \"" + name + "\" is taken by client " + std::to_string(other_id),
                     ErrorCode::invalid_params};
      }
    }
  }
  if (!name.empty()) c->name = name;
  if (!group.empty()) c->group = group;
  drain_backlogs();  // a named or grouped candidate may have just appeared
  return ok();
}

void Hub::reindex(Client& c) {
  std::bitset<kSignalCount> any;
  std::bitset<kSignalCount> ack;
  for (const auto& [sid, s] : c.subscriptions) {
    any |= s.signals;
    if (s.ack) ack |= s.signals;
  }
  std::bitset<kSignalCount> changed = any ^ c.any_signals;
  for (int sig = 0; sig < kSignalCount; ++sig) {
    if (!changed[sig]) continue;
    auto& list = index_[sig];
    if (any[sig]) {
      // Keep connection order so that round robin is stable and fair.
      auto pos = std::lower_bound(list.begin(), list.end(), &c,
                                  [](const Client* a, const Client* b) { return a->id < b->id; });
      list.insert(pos, &c);
    } else {
      list.erase(std::remove(list.begin(), list.end(), &c), list.end());
    }
  }
  c.any_signals = any;
  c.ack_signals = ack;
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

Result<void> Hub::ack(ClientId id, std::uint64_t seq) {
  Client* c = find(id);
  if (!c) return Error{"unknown client", ErrorCode::internal};
  auto it = c->unacked.find(seq);
  if (it == c->unacked.end()) {
    return Error{"this connection holds no unacknowledged event " + std::to_string(seq),
                 ErrorCode::not_found};
  }
  deadlines_.erase({it->second.deadline, id, seq});
  ++stats_[it->second.event->signal].delivered;
  c->unacked.erase(it);
  return ok();
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
    // A one-of event whose ack deadline passed while it sat here went to someone else.
    if (q.one_of && !c->unacked.contains(q.seq)) continue;
    if (!q.one_of) ++stats_[q.signal].delivered;  // one-of counts at its ack
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
  Line line;  // serialized once, shared by every queue
  std::size_t queued = 0;
  for (Client* c : list) {
    if (!wants(*c, *event, false)) continue;
    if (!line) {
      line = encoder_.encode(*event, false, false);
    }
    if (c->queue.size() >= limits_.queue) {
      // Drop the oldest broadcast event; one-of events stay (they are owed an ack). A queue full
      // of one-of events drops this new event instead.
      auto victim =
          std::find_if(c->queue.begin(), c->queue.end(), [](const Queued& q) { return !q.one_of; });
      if (victim == c->queue.end()) {
        note_drop(*c, event->seq, event->signal);
        continue;
      }
      note_drop(*c, victim->seq, victim->signal);
      c->queue.erase(victim);
    }
    enqueue(*c, Queued{line, event->seq, event->signal, false});
    ++queued;
  }
  return queued;
}

bool Hub::assign(const EventPtr& event, const config::TargetHandler& target, bool redelivered,
                 std::optional<ClientId> avoid) {
  const auto& list = index_[event->signal];
  if (list.empty()) return false;
  auto eligible = [&](const Client* c) {
    if (c->queue.size() >= limits_.queue) return false;
    if (target.kind == config::TargetKind::subscriber_named && c->name != target.name) {
      return false;
    }
    if (target.kind == config::TargetKind::group && c->group != target.name) {
      return false;
    }
    return wants(*c, *event, true);
  };
  BacklogKey key{event->signal, target.kind, target.name};
  std::size_t& rr = round_robin_[key];
  Client* chosen = nullptr;
  Client* fallback = nullptr;  // the avoided client, if it is the only candidate
  for (std::size_t i = 0; i < list.size(); ++i) {
    Client* c = list[(rr + i) % list.size()];
    if (!eligible(c)) continue;
    if (avoid && c->id == *avoid) {
      fallback = c;
      continue;
    }
    chosen = c;
    rr = (rr + i + 1) % list.size();
    break;
  }
  if (!chosen) chosen = fallback;
  if (!chosen) return false;
  auto deadline = clock_.steady_now() + limits_.ack_timeout;
  bool earliest = deadlines_.empty() || deadline < std::get<0>(*deadlines_.begin());
  chosen->unacked[event->seq] = Pending{event, target, deadline};
  deadlines_.insert({deadline, chosen->id, event->seq});
  enqueue(*chosen,
          Queued{encoder_.encode(*event, true, redelivered), event->seq, event->signal, true});
  if (earliest && deadline_changed_) deadline_changed_();
  return true;
}

void Hub::to_backlog(const EventPtr& event, const config::TargetHandler& target) {
  auto& q = backlog_[BacklogKey{event->signal, target.kind, target.name}];
  q.push_back(event);
  if (q.size() > limits_.backlog) {
    const Event& lost = *q.front();
    ++stats_[lost.signal].dropped;
    spdlog::warn(
        "signal {}: dropped from the one-of backlog (limits.backlog = {}): no candidate "
        "subscriber took it",
        describe_event(lost), limits_.backlog);
    q.pop_front();
  }
}

void Hub::deliver_one(const EventPtr& event, const config::TargetHandler& target) {
  if (!assign(event, target, false, std::nullopt)) to_backlog(event, target);
}

void Hub::drain_backlogs() {
  for (auto it = backlog_.begin(); it != backlog_.end();) {
    auto& [key, q] = *it;
    config::TargetHandler target{std::get<1>(key), std::get<2>(key)};
    while (!q.empty() && assign(q.front(), target, false, std::nullopt)) q.pop_front();
    it = q.empty() ? backlog_.erase(it) : std::next(it);
  }
}

std::optional<std::chrono::steady_clock::time_point> Hub::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return std::get<0>(*deadlines_.begin());
}

void Hub::expire(std::chrono::steady_clock::time_point now) {
  while (!deadlines_.empty() && std::get<0>(*deadlines_.begin()) <= now) {
    auto [deadline, client_id, seq] = *deadlines_.begin();
    deadlines_.erase(deadlines_.begin());
    Client* c = find(client_id);
    if (!c) continue;
    auto it = c->unacked.find(seq);
    if (it == c->unacked.end()) continue;
    Pending p = std::move(it->second);
    c->unacked.erase(it);
    spdlog::warn("signal {}: client {} did not ack within {}ms: redelivering",
                 describe_event(*p.event), client_id, limits_.ack_timeout.count());
    if (!assign(p.event, p.target, /*redelivered=*/true, client_id)) to_backlog(p.event, p.target);
  }
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

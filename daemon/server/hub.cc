#include "server/hub.h"

#include <cassert>
#include <charconv>
#include <cstring>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <new>
#include <optional>
#include <utility>

namespace tocsin {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// What each byte adds to a JSON string literal: 0 passes through (bytes >= 0x80 too), 1 for the
// two-byte escapes (\" \\ \n \r \t), 5 for \u00XX.
constexpr std::array<std::uint8_t, 256> kEscapeExtra = [] {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 5;
  for (unsigned char c : {'"', '\\', '\n', '\r', '\t'}) t[c] = 1;
  return t;
}();

// Eight bytes at a time: whether any of them needs escaping (< 0x20, '"' or '\\'). Exact as a
// whole (a borrow can mark a byte above a true hit, never create a hit).
constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
bool any_needs_escape(std::uint64_t x) {
  auto zero_byte = [](std::uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  std::uint64_t below_space = (x - kOnes * 0x20) & ~x & kHighs;
  return (below_space | zero_byte(x ^ (kOnes * '"')) | zero_byte(x ^ (kOnes * '\\'))) != 0;
}

std::uint64_t load8(const char* p) {
  std::uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}

// The encoded length of `s` as a JSON string literal, quotes included.
std::size_t json_string_size(std::string_view s) {
  std::size_t n = s.size() + 2;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    if (!any_needs_escape(load8(s.data() + i))) continue;
    for (std::size_t j = i; j < i + 8; ++j) n += kEscapeExtra[static_cast<unsigned char>(s[j])];
  }
  for (; i < s.size(); ++i) n += kEscapeExtra[static_cast<unsigned char>(s[i])];
  return n;
}

char* write_escaped(char* p, unsigned char c) {
  *p++ = '\\';
  switch (c) {
    case '"': *p++ = '"'; break;
    case '\\': *p++ = '\\'; break;
    case '\n': *p++ = 'n'; break;
    case '\r': *p++ = 'r'; break;
    case '\t': *p++ = 't'; break;
    default:
      std::memcpy(p, "u00", 3);
      p[3] = kHex[c >> 4];
      p[4] = kHex[c & 0xf];
      p += 5;
  }
  return p;
}

// Writes `s` as a JSON string literal (quotes, escapes; bytes >= 0x80 pass through) at `p`, which
// has room for json_string_size(s) bytes; returns the end. Eight bytes that need no escaping are
// copied as one word, the rest byte by byte: the strings of an event are mostly short (names, ids,
// small payloads), where calls to memcpy for each run cost more than the bytes.
char* write_json_string(char* p, std::string_view s) {
  auto put = [&p](char ch) {
    auto c = static_cast<unsigned char>(ch);
    if (kEscapeExtra[c] == 0) {
      *p++ = ch;
    } else {
      p = write_escaped(p, c);
    }
  };
  *p++ = '"';
  const char* in = s.data();
  const char* end = in + s.size();
  for (; end - in >= 8; in += 8) {
    std::uint64_t x = load8(in);
    if (any_needs_escape(x)) {
      for (int i = 0; i < 8; ++i) put(in[i]);
    } else {
      std::memcpy(p, &x, 8);
      p += 8;
    }
  }
  for (; in < end; ++in) put(*in);
  *p++ = '"';
  return p;
}

template <std::size_t N>
char* write_literal(char* p, const char (&text)[N]) {
  std::memcpy(p, text, N - 1);
  return p + N - 1;
}

constexpr std::size_t kNumberBytes = 20;  // the longest std::uint64_t

char* write_number(char* p, std::uint64_t n) {
  if (n < 10) {  // the iteration of most events, many signal numbers
    *p = static_cast<char>('0' + n);
    return p + 1;
  }
  return std::to_chars(p, p + kNumberBytes, n).ptr;
}

constexpr std::string_view kNotificationHead = R"({"jsonrpc":"2.0","method":"signal","params":)";

// Room for an event's fields and the notification around them: the fixed text counted exactly,
// the numbers and the time at their longest, the strings by `string_room`.
template <typename StringRoom>
std::size_t event_fields_room(const Event& e, StringRoom string_room) {
  return 128 + 3 * kNumberBytes + kRfc3339MaxBytes + string_room(e.name) +
         string_room(e.source.id) + string_room(e.payload);
}
std::size_t event_fields_size(const Event& e) { return event_fields_room(e, json_string_size); }

// Room enough for `s` without looking at its bytes (each could become \u00XX) where that is
// little; long strings are measured, so that the room stays close to what is written.
std::size_t json_string_room(std::string_view s) {
  return s.size() <= 256 ? 6 * s.size() + 2 : json_string_size(s);
}

// ",\"ack\":true" and ",\"redelivered\":true" and "}}\n": 33 bytes at most.
constexpr std::size_t kNotificationTail = 40;

// The hot path of every delivery, written through a pointer into room reserved once (measured:
// docs/BENCHMARKS.md, pgnotify). `p` has room for event_fields_size(e) bytes.
char* write_event_fields(char* p, const Event& e) {
  p = write_literal(p, "{\"seq\":");
  p = write_number(p, e.seq);
  p = write_literal(p, ",\"signal\":");
  p = write_number(p, e.signal);
  p = write_literal(p, ",\"name\":");
  p = write_json_string(p, e.name);
  p = write_literal(p, ",\"source\":{\"kind\":\"");
  std::string_view kind = to_string(e.source.kind);
  std::memcpy(p, kind.data(), kind.size());
  p += kind.size();
  p = write_literal(p, "\",\"id\":");
  p = write_json_string(p, e.source.id);
  p = write_literal(p, "},\"time\":\"");
  p = write_rfc3339(p, e.time);
  p = write_literal(p, "\",\"iteration\":");
  p = write_number(p, e.iteration);
  p = write_literal(p, ",\"payload\":");
  return write_json_string(p, e.payload);
}

// Reserves `room` bytes at the end of `out`, lets `write` fill them, keeps what it wrote.
template <typename Write>
void append_written(std::string& out, std::size_t room, Write write) {
  std::size_t at = out.size();
  out.resize(at + room);
  char* end = write(out.data() + at);
  assert(static_cast<std::size_t>(end - (out.data() + at)) <= room);
  out.resize(static_cast<std::size_t>(end - out.data()));
}

// The whole `signal` notification line at `p`, which has room for kNotificationHead, the event's
// fields and kNotificationTail.
char* write_event_notification(char* p, const Event& event, bool ack, bool redelivered) {
  std::memcpy(p, kNotificationHead.data(), kNotificationHead.size());
  p = write_event_fields(p + kNotificationHead.size(), event);
  if (ack) p = write_literal(p, ",\"ack\":true");
  if (redelivered) p = write_literal(p, ",\"redelivered\":true");
  return write_literal(p, "}}\n");
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  append_written(out, json_string_size(s), [&](char* p) { return write_json_string(p, s); });
}

std::string encode_event_object(const Event& event) {
  std::string out;
  append_written(out, event_fields_size(event) + 1, [&](char* p) {
    p = write_event_fields(p, event);
    *p++ = '}';
    return p;
  });
  return out;
}

std::string encode_event_notification(const Event& event, bool ack, bool redelivered) {
  std::string out;
  std::size_t room = kNotificationHead.size() + event_fields_size(event) + kNotificationTail;
  append_written(out, room,
                 [&](char* p) { return write_event_notification(p, event, ack, redelivered); });
  return out;
}

// ---- Line ----------------------------------------------------------------------------------
// Lines come and go in bursts: thousands made as a burst of events is queued, freed together once
// written. glibc's per-thread cache keeps seven blocks of a size and sends the rest through its
// bins, which cost about 350 instructions for the malloc and free of a 250-byte line (callgrind,
// docs/BENCHMARKS.md, pgnotify). Freed blocks of up to kPooledMax bytes are kept here instead, in
// size classes of kClassBytes, up to kPoolBytes in all for each thread, and handed out again.
// Under AddressSanitizer nothing is kept, so that it sees every use after free.
namespace {

constexpr std::size_t kClassBytes = 64;
constexpr std::size_t kClasses = 16;
constexpr std::size_t kPooledMax = kClasses * kClassBytes;
#if defined(__has_feature)
#if __has_feature(address_sanitizer)  // Clang's way to say it (the fuzzers)
#define TOCSIN_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(TOCSIN_ASAN)
constexpr std::size_t kPoolBytes = 0;
#else
constexpr std::size_t kPoolBytes = std::size_t{2} << 20;
#endif

struct FreeBlock {
  FreeBlock* next;
};

thread_local bool pool_gone = false;  // trivially destructible: readable while the thread exits

struct LinePool {
  std::array<FreeBlock*, kClasses> free{};
  std::size_t bytes = 0;
  ~LinePool() {
    for (FreeBlock*& head : free) {
      while (head != nullptr) ::operator delete(std::exchange(head, head->next));
    }
    pool_gone = true;  // lines freed later in the thread's exit go back to the heap
  }
};

LinePool* line_pool() {
  if (pool_gone) return nullptr;
  thread_local LinePool pool;
  return &pool;
}

// The pool's size class for a block of `total` bytes (header included), and the size every block
// of that class is allocated with; nothing for blocks too large to pool.
struct SizeClass {
  std::size_t index;
  std::size_t bytes;
};
std::optional<SizeClass> size_class(std::size_t total) {
  if (total > kPooledMax) return std::nullopt;
  std::size_t index = (total - 1) / kClassBytes;
  return SizeClass{index, (index + 1) * kClassBytes};
}

}  // namespace

Line::Line(std::string_view text) {
  std::size_t total = sizeof(Block) + text.size();
  void* memory = nullptr;
  auto c = size_class(total);
  if (c) {
    total = c->bytes;
    LinePool* pool = line_pool();
    if (pool != nullptr && pool->free[c->index] != nullptr) {
      memory = std::exchange(pool->free[c->index], pool->free[c->index]->next);
      pool->bytes -= c->bytes;
    }
  }
  if (memory == nullptr) memory = ::operator new(total);
  block_ = ::new (memory) Block{1, text.size()};
  std::memcpy(block_->bytes(), text.data(), text.size());
}

void Line::release(Block* block) {
  auto c = size_class(sizeof(Block) + block->size);
  LinePool* pool = c ? line_pool() : nullptr;
  if (pool != nullptr && pool->bytes + c->bytes <= kPoolBytes) {
    pool->free[c->index] = ::new (static_cast<void*>(block)) FreeBlock{pool->free[c->index]};
    pool->bytes += c->bytes;
    return;
  }
  ::operator delete(block);
}

bool SubscriptionSpec::matches_source(const SourceRef& source) const {
  if (kinds.empty() && ids.empty()) return true;
  if (std::find(kinds.begin(), kinds.end(), source.kind) != kinds.end()) return true;
  return std::find(ids.begin(), ids.end(), source.id) != ids.end();
}

Hub::Hub(const Clock& clock, SignalStats& stats) : clock_(clock), stats_(stats) {}

// The line is written into a buffer kept from call to call, whose room is reckoned without a pass
// over the event's short strings, and copied into a Line of its exact size.
Line Hub::encode(const Event& event, bool ack, bool redelivered) {
  std::size_t room = kNotificationHead.size() + event_fields_room(event, json_string_room) +
                     kNotificationTail;
  if (scratch_.size() < room) scratch_.resize(room);
  char* end = write_event_notification(scratch_.data(), event, ack, redelivered);
  assert(static_cast<std::size_t>(end - scratch_.data()) <= room);
  return Line({scratch_.data(), static_cast<std::size_t>(end - scratch_.data())});
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
  if (!c) return Error{"unknown client", -32603};
  if (!name.empty() && name != c->name) {
    for (const auto& [other_id, other] : clients_) {
      if (other_id != id && other->name == name) {
        return Error{"the name \"" + name + "\" is taken by client " + std::to_string(other_id),
                     -32602};
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
  if (!c) return Error{"unknown client", -32603};
  if (c->subscriptions.size() >= limits_.subscriptions) {
    return Error{"limits.subscriptions (" + std::to_string(limits_.subscriptions) +
                     ") reached for this connection",
                 -32002};
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
  if (!c) return Error{"unknown client", -32603};
  if (c->subscriptions.erase(subscription) == 0) {
    return Error{"no subscription " + std::to_string(subscription) + " on this connection",
                 -32005};
  }
  reindex(*c);
  return ok();
}

Result<void> Hub::ack(ClientId id, std::uint64_t seq) {
  Client* c = find(id);
  if (!c) return Error{"unknown client", -32603};
  auto it = c->unacked.find(seq);
  if (it == c->unacked.end()) {
    return Error{"this connection holds no unacknowledged event " + std::to_string(seq), -32005};
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
      line = encode(*event, false, false);
    }
    if (c->queue.size() >= limits_.queue) {
      // Drop the oldest broadcast event; one-of events stay (they are owed an ack). A queue full
      // of one-of events drops this new event instead.
      auto victim = std::find_if(c->queue.begin(), c->queue.end(),
                                 [](const Queued& q) { return !q.one_of; });
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
  enqueue(*chosen, Queued{encode(*event, true, redelivered), event->seq, event->signal, true});
  if (earliest && deadline_changed_) deadline_changed_();
  return true;
}

void Hub::to_backlog(const EventPtr& event, const config::TargetHandler& target) {
  auto& q = backlog_[BacklogKey{event->signal, target.kind, target.name}];
  q.push_back(event);
  if (q.size() > limits_.backlog) {
    const Event& lost = *q.front();
    ++stats_[lost.signal].dropped;
    spdlog::warn("signal {}: dropped from the one-of backlog (limits.backlog = {}): no candidate "
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
  return ClientInfo{id, c->name, c->group, c->subscriptions.size(), c->queue.size(),
                    c->unacked.size(), c->dropped_total};
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

std::optional<ClientId> Hub::find_by_name(const std::string& name) const {
  for (const auto& [id, c] : clients_) {
    if (c->name == name) return id;
  }
  return std::nullopt;
}

}  // namespace tocsin

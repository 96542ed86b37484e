// event_source.h — what every source kind implements, and the registry that runs them
// (SPEC §3, DESIGN §6; docs/HACKING.md "Adding a source kind").
//
// A source kind (timer, rb_timer, file, cron, at, posix, a plugin's) is:
//  - a SourceSchema: its names (the events' `source.kind`, its YAML section, its `add_*` method)
//    and the parser of one spec from a neutral spec::Node. The YAML loader and the socket's
//    `add_*` methods both call it, so a field has one rule, one default and one error;
//  - an EventSource: the running kind, which owns every source of that kind and their kernel
//    objects (a timerfd each, one inotify fd, ...): it applies a configuration (unchanged sources
//    keep their phase), adds and removes sources at run time, reports their status and stops.
// Kinds are listed in one place, daemon/sources/kinds.cc, one line each; nothing else names them.
//
// The SourceRegistry owns what is common to all kinds: the id space (ids are unique across
// kinds; generated ones are KIND:N), the `limits.sources` count, the status list and
// `remove_source`. The daemon's start, reload and stop, and the server's `add_*`, `status` and
// `remove_source`, are loops over it. It also owns the sharing of run-time sources (SPEC §3,
// DESIGN §6): who declared each one (opaque client ids, which the server gives), its `lifetime`
// and `linger`, and the removal of a `lifetime: clients` source once its last declarer left and
// its linger passed.
//
// Threading: everything here runs on the reactor's thread. A source raises its events through the
// Dispatcher, synchronously; a handler may remove the very source that is raising, so a source
// keeps itself alive (or re-checks that it exists) across a raise.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tocsin/clock.h"
#include "tocsin/config.h"
#include "tocsin/dispatcher.h"
#include "tocsin/result.h"
#include "tocsin/signal.h"
#include "tocsin/spec.h"

namespace boost::asio {
class io_context;
}

namespace tocsin {

// One parsed source spec: the fields every kind has. Each kind derives its own (TimerSpec, ...).
struct SourceSpec {
  virtual ~SourceSpec() = default;
  SourceKind kind;
  std::string id;  // empty until given or generated
  SignalId signal = 0;
  config::Location where;  // the YAML item; none for a request
  // Whether `other`, a spec of the same kind, describes exactly this source: a reload keeps a
  // source whose spec did not change, with its phase and counts. Ids are compared too.
  virtual bool same_as(const SourceSpec& other) const = 0;
  // Whether it fires on one daemon of a cluster only (`cluster: true`): the configuration then
  // needs a plugin that makes claims (docs/cluster.md).
  virtual bool cluster() const { return false; }
};
using SourceSpecPtr = std::shared_ptr<const SourceSpec>;

// A kind's names and schema: static, no reactor. One object per kind (daemon/sources/kinds.cc).
class SourceSchema {
 public:
  virtual ~SourceSchema() = default;
  // The events' `source.kind` ("timer"); generated run-time ids are "KIND:N".
  virtual SourceKind kind() const = 0;
  // The YAML section ("timers"), or "" for a kind not configured in YAML (a plugin's). Ids
  // generated for YAML entries without one are "ID_PREFIX-N", N the 1-based place in the list.
  virtual std::string_view config_key() const = 0;
  virtual std::string_view id_prefix() const { return kind().name(); }
  // What a person calls one, in messages ("cron job", "file monitor").
  virtual std::string_view noun() const { return kind().name(); }
  // The socket method that adds one at run time ("add_timer"), or "" for none.
  virtual std::string_view add_method() const = 0;
  // Whether its sources fire at instants in time (timers, cron, at): `status` marks them
  // `"timed":true` and `tocsinctl timers` lists them by next fire.
  virtual bool fires_by_time() const { return false; }
  // What the section is: a list of specs (most kinds), or a mapping whose entries are specs
  // (posix_signals: {SIGUSR1: 5}).
  virtual bool keyed_section() const { return false; }
  // Parses one spec: a list item (or, for a keyed section, one field) of its YAML section, or
  // an `add_*` request's params. Every problem goes to `reader`; nullptr when there was one.
  virtual std::shared_ptr<SourceSpec> parse(spec::Reader& reader,
                                            const spec::Value& item) const = 0;
  virtual std::shared_ptr<SourceSpec> parse_field(spec::Reader& reader,
                                                  const spec::Field& field) const;
};

// How long a run-time source lives (SPEC §3): until `remove_source` (daemon), or while a client
// that declared or joined it is connected, plus its linger (clients).
enum class SourceLifetime : std::uint8_t { daemon, clients };
std::string_view to_string(SourceLifetime lifetime);

// The request-level fields of an `add_*` (none of them is part of a kind's spec).
struct Declaration {
  SourceLifetime lifetime = SourceLifetime::daemon;
  std::chrono::milliseconds linger{0};  // only with lifetime clients
  bool replace = false;                 // an unequal spec under a taken run-time id replaces it
  // Who declares it: an opaque client id (the server's); none for a source nobody declares.
  std::optional<std::uint64_t> declarer;
};

// What `declare` did.
struct Declared {
  std::string id;
  bool joined = false;    // the id named an equal run-time source: the declarer joined it
  bool replaced = false;  // an unequal one was replaced (Declaration::replace)
};

// What `remove_source` without force does for a caller (SourceRegistry::leave).
enum class Left : std::uint8_t {
  removed,  // the source is gone
  left,     // the caller was a declarer and left; others still declare it
};

// What a running kind is given by the daemon.
struct SourceContext {
  boost::asio::io_context& io;
  Dispatcher& dispatcher;
  const Clock& clock;
  // Cluster jobs (docs/cluster.md): asks the plugins whether this daemon fires a slot.
  Claimer claimer;
  // Whether a plugin that makes claims is configured (checked when a cluster source is added).
  std::function<bool()> claims_available;
  // The daemon's own meaning of SIGHUP and SIGTERM/SIGINT (the posix kind).
  std::function<void()> reload;
  std::function<void(int signo)> stop;
};

// Settings of the whole configuration that some kinds use.
struct SourceSettings {
  std::string state_dir;                // where `missed: once` state is kept
  std::uint64_t payload_bytes = 65536;  // limits.payload_bytes
};

// How one source looks in `status` and `tocsinctl timers`.
struct SourceStatus {
  using TimePoint = std::chrono::system_clock::time_point;
  std::string id;
  SourceKind kind;
  SignalId signal = 0;
  bool from_config = false;
  std::uint64_t iterations = 0;   // 0 = forever
  std::uint64_t fired = 0;        // events (or batches) raised so far
  std::optional<TimePoint> next;  // wall-clock time of the next fire, when the kind knows one
  std::optional<TimePoint> last;  // of the last fire
  std::string schedule;           // how it fires, for a person: "every 2s", "*/5 * * * *"
  std::string state = "ok";       // ok | degraded | done | ...
  std::string why;                // for a state that is not ok
  // Run-time sources: how they are shared (filled in by the SourceRegistry, not the kinds).
  SourceLifetime lifetime = SourceLifetime::daemon;
  std::size_t declarers = 0;                   // connected clients that declared or joined it
  std::chrono::milliseconds linger{0};         // lifetime clients
  std::optional<TimePoint> lingering_until;    // when it goes, if its last declarer left
  spec::Node details = spec::Node::mapping();  // kind-specific fields, as they are in `status`
};

// One sample a kind reports for `metrics` (Prometheus text, written by the server): samples of
// one name share its help and type. Names follow Prometheus' conventions (tocsin_..._total for
// counters). A kind whose sources can be in a state other than "ok" reports how many are in each
// such state as samples named "tocsin_sources" with a label {state}; the SourceRegistry adds the
// kind label and the "ok" sample (the rest of count()).
struct MetricSample {
  std::string name;
  std::string help;
  bool counter = false;  // else a gauge
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

class EventSource {
 public:
  virtual ~EventSource() = default;
  virtual const SourceSchema& schema() const = 0;
  SourceKind kind() const { return schema().kind(); }

  // ---- configuration (start and reload) ----
  // Whether apply_config would take these specs (this kind's, in file order); changes nothing.
  // Id clashes with other kinds are the registry's to check.
  virtual Result<void> check_config(std::span<const SourceSpec* const> specs,
                                    const SourceSettings& settings) const;
  // The kind's sources as configured: a configured source whose spec is unchanged keeps its
  // phase and counts, changed ones are replaced, those no longer listed go; run-time sources
  // stay. `at_start`: the daemon's start (not a reload). The default does that with the calls
  // below; a kind with more to do (state files, @reboot) overrides it.
  virtual Result<void> apply_config(std::span<const SourceSpec* const> specs,
                                    const SourceSettings& settings, bool at_start);

  // ---- sources ----
  // Adds one (`spec.id` set and free in every kind); `from_config` for a configured one.
  virtual Result<void> add(const SourceSpec& spec, bool from_config) = 0;
  // Stops and forgets one; false when this kind has none by that id.
  virtual bool remove(std::string_view id) = 0;
  virtual bool contains(std::string_view id) const = 0;
  // Whether a configured source `spec.id` exists and is exactly `spec` (kept by a reload).
  virtual bool unchanged(const SourceSpec& spec) const = 0;
  // Whether the source was added at run time (true) or configured (false); nullopt: none.
  virtual std::optional<bool> runtime(std::string_view id) const = 0;
  // The ids of the configured sources.
  virtual std::vector<std::string> config_ids() const = 0;
  virtual std::size_t count() const = 0;

  // ---- status ----
  // Up to `limit` sources, in a stable order.
  virtual void status(std::vector<SourceStatus>& out, std::size_t limit) const = 0;
  // Sections of `status` of the kind's own (file_monitors, cron_state), added to `status`.
  virtual void status_sections(spec::Node& status) const { (void)status; }
  // Metrics of the kind's own (watches held, overflows, ...).
  virtual void metrics(std::vector<MetricSample>& out) const { (void)out; }

  // Stops every source: no event after this. The daemon's stop.
  virtual void stop() = 0;
};

// One entry of the list of kinds: the schema, and how to make the running kind.
struct SourceKindEntry {
  const SourceSchema* schema;
  std::function<std::unique_ptr<EventSource>(SourceContext&)> make;
};
// Every kind built in, in the order they start (daemon/sources/kinds.cc).
const std::vector<SourceKindEntry>& source_kinds();
// The schema of the kind with this YAML section / add method / kind name, or nullptr.
const SourceSchema* schema_for_config_key(std::string_view key);
const SourceSchema* schema_for_kind(SourceKind kind);
const SourceSchema* schema_for_add_method(std::string_view method);

class SourceRegistry {
 public:
  // Makes one running EventSource per kind of source_kinds().
  explicit SourceRegistry(SourceContext context);
  ~SourceRegistry();
  SourceRegistry(const SourceRegistry&) = delete;
  SourceRegistry& operator=(const SourceRegistry&) = delete;

  // A kind that is not built in (a plugin's): its sources join the id space, the count and the
  // status list. It must be detached before it is destroyed.
  void attach(EventSource& kind);
  void detach(EventSource& kind);
  EventSource* find_kind(SourceKind kind) const;

  // ---- configuration ----
  // Everything apply_config would refuse, without changing anything: a configured id taken by
  // a run-time source or another kind's source, and each kind's own checks. Each message starts
  // with the source's file:line:column.
  Result<void> check_config(const config::Config& config) const;
  // Applies every kind's configured sources (check_config first). `at_start`: the first time.
  Result<void> apply_config(const config::Config& config, bool at_start);

  // ---- run time ----
  // Adds a source: an empty id is generated (KIND:N); a taken id, or limits.sources reached, is
  // an error. Returns the id. (declare() with nobody declaring, lifetime daemon.)
  Result<std::string> add(std::shared_ptr<SourceSpec> spec);
  // Adds a source, or joins one (SPEC §3 "Run-time sources ... may be shared"): an id that names
  // a run-time source with an equal spec, lifetime and linger adds the declarer to it (`joined`);
  // an unequal one is ErrorCode::source_conflict, unless `replace`, which removes it and adds
  // `spec` (its declarers stay, with the new one); an id of a configured source is
  // invalid_params. Sources with a generated id and lifetime daemon are not tracked (nobody can
  // name them before they exist): their declarer is not recorded.
  Result<Declared> declare(std::shared_ptr<SourceSpec> spec, const Declaration& how);
  // Removes a source for everyone, at once (remove_source with force, or one nobody declares).
  Result<void> remove(std::string_view id);
  // remove_source without force, by `client`: a declarer leaves (the source goes at once when no
  // declarer remains, whatever its lifetime); a source that connected clients declare and
  // `client` does not is ErrorCode::source_conflict; anything else is removed as remove() does.
  Result<Left> leave(std::string_view id, std::uint64_t client);
  // A client disconnected: it leaves every source it declared; a `lifetime: clients` source
  // whose last declarer it was is removed after its linger, unless someone joins meanwhile.
  void client_left(std::uint64_t client);
  // The signal a source raises; nullopt for an unknown id. Quick for a tracked run-time source;
  // for others it asks the kind's status list (remove_source by a non-admin, rare).
  std::optional<SignalId> signal_of(std::string_view id) const;
  bool contains(std::string_view id) const;
  std::size_t count() const;
  void set_limit(std::uint64_t sources) { limit_ = sources; }

  // ---- status ----
  // How many sources each kind has, by its YAML section's name ("timers"; the kind's name for a
  // kind not in YAML), in kind order.
  std::vector<std::pair<std::string, std::size_t>> counts() const;
  // Up to `limit` sources of each kind.
  std::vector<SourceStatus> list(std::size_t limit) const;
  // Each kind's own sections of `status`, and its own metrics.
  void status_sections(spec::Node& status) const;
  void metrics(std::vector<MetricSample>& out) const;
  // "2 timers, 1 cron, ..." for the log and systemd's STATUS=.
  std::string summary() const;

  void stop();

 private:
  // Sharing of run-time sources (source_registry.cc).
  struct Sharing;
  void drop_sharing(const std::string& id);
  void start_linger(const std::string& id);

  SourceContext context_;
  std::unique_ptr<Sharing> sharing_;
  std::vector<std::unique_ptr<EventSource>> owned_;  // the built-in kinds, in source_kinds() order
  std::vector<EventSource*> kinds_;                  // those and the attached ones
  std::uint64_t limit_ = 1100000;
  std::uint64_t generated_ = 0;
  bool stopped_ = false;
};

}  // namespace tocsin

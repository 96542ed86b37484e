#include "dispatch/table_builder.h"

#include "dispatch/exec_handler.h"
#include "dispatch/log_handler.h"
#include "dispatch/target_handler.h"
#include "plugins/registry.h"

namespace tocsin {

namespace {

Result<std::shared_ptr<Handler>> make_handler(const config::HandlerSpec& spec, SignalId signal,
                                              const HandlerContext& ctx) {
  if (const auto* exec = std::get_if<config::ExecHandler>(&spec.kind)) {
    return std::shared_ptr<Handler>(std::make_shared<ExecHandler>(
        ctx.supervisor, ctx.stats, *exec, static_cast<std::size_t>(ctx.limits.exec_queue)));
  }
  if (const auto* log = std::get_if<config::LogHandler>(&spec.kind)) {
    return std::shared_ptr<Handler>(std::make_shared<LogHandler>(ctx.stats, log->level));
  }
  if (const auto* target = std::get_if<config::TargetHandler>(&spec.kind)) {
    return std::shared_ptr<Handler>(std::make_shared<TargetHandler>(ctx.hub, *target));
  }
  if (const auto* plugin = std::get_if<config::PluginHandler>(&spec.kind)) {
    if (ctx.plugins == nullptr) {
      return Error{config::to_string(spec.where) + ": plugin handlers need the plugin registry"};
    }
    auto made = ctx.plugins->make_handler(*plugin, signal);
    if (!made) return Error{config::to_string(spec.where) + ": " + made.error().message};
    return made;
  }
  return Error{config::to_string(spec.where) + ": unknown handler kind"};
}

}  // namespace

Result<std::shared_ptr<SignalTable>> build_table(const std::vector<config::SignalSpec>& signals,
                                                 const SignalTable* previous,
                                                 const HandlerContext& ctx) {
  auto table = std::make_shared<SignalTable>();
  for (const auto& spec : signals) {
    SignalEntry entry;
    entry.number = spec.number;
    entry.name = spec.name;
    entry.description = spec.description;
    entry.acl = spec.acl;
    entry.max_deliveries = spec.max_deliveries;
    entry.dead_letter = spec.dead_letter;
    entry.handler_specs.reserve(spec.handlers.size());

    const SignalEntry* old = previous ? previous->find(spec.number) : nullptr;
    std::vector<bool> taken(old ? old->handlers.size() : 0, false);
    for (const auto& hspec : spec.handlers) {
      std::shared_ptr<Handler> handler;
      for (std::size_t j = 0; old && j < old->handler_specs.size(); ++j) {
        if (!taken[j] && old->handler_specs[j] == hspec) {
          taken[j] = true;
          handler = old->handlers[j];
          break;
        }
      }
      if (!handler) {
        auto made = make_handler(hspec, spec.number, ctx);
        if (!made) return made.error();
        handler = std::move(made.value());
      }
      entry.handlers.push_back(std::move(handler));
      entry.handler_specs.push_back(hspec);
    }
    if (auto r = table->add(std::move(entry)); !r) {
      return Error{config::to_string(spec.where) + ": " + r.error().message};
    }
  }
  return table;
}

}  // namespace tocsin

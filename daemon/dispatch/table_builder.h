// table_builder.h — turns the `signals` section of a Config into a SignalTable with live
// handlers. Handlers whose spec did not change since `previous` are carried over (same object),
// so a reload keeps an exec handler's running children, queue and concurrency accounting.
// Reactor thread only.
#pragma once

#include <memory>
#include <vector>

#include "os/process.h"
#include "dispatch/hub.h"
#include "tocsin/config.h"
#include "tocsin/result.h"
#include "tocsin/signal_table.h"

namespace tocsin {

class PluginRegistry;

struct HandlerContext {
  os::ProcessSupervisor& supervisor;
  SignalStats& stats;
  const config::Limits& limits;
  Hub& hub;
  PluginRegistry* plugins = nullptr;  // for `plugin:` handlers
};

Result<std::shared_ptr<SignalTable>> build_table(const std::vector<config::SignalSpec>& signals,
                                                 const SignalTable* previous,
                                                 const HandlerContext& context);

}  // namespace tocsin

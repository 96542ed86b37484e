// source_request.h — an `add_*` request's params read as a source spec: turned into a neutral
// spec::Node (json_node.h) and read by the kind's own schema, exactly as the YAML loader reads an
// entry of the kind's section, so that both give the same spec or the same error. Reactor thread
// only.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "tocsin/event_source.h"
#include "tocsin/signal_table.h"

namespace tocsin {

// Signal names as a request may use them: those of the running table.
class TableNames final : public spec::SignalNames {
 public:
  explicit TableNames(const SignalTable& table) : table_(table) {}
  std::optional<SignalId> find(std::string_view name) const override;
  std::vector<std::string> names() const override;

 private:
  const SignalTable& table_;
};

// The spec, or the first problem as an Error (its code and message, the param's path in front).
Result<std::shared_ptr<SourceSpec>> parse_source_request(const SourceSchema& schema,
                                                         const SignalTable& table,
                                                         const nlohmann::json& params);

}  // namespace tocsin

#include "server/source_request.h"

#include "server/json_node.h"

namespace tocsin {

std::optional<SignalId> TableNames::find(std::string_view name) const {
  const SignalEntry* e = table_.find(name);
  if (e == nullptr) return std::nullopt;
  return e->number;
}

std::vector<std::string> TableNames::names() const {
  std::vector<std::string> out;
  for (const SignalEntry* e : table_.entries()) {
    if (!e->name.empty()) out.push_back(e->name);
  }
  return out;
}

Result<std::shared_ptr<SourceSpec>> parse_source_request(const SourceSchema& schema,
                                                         const SignalTable& table,
                                                         const nlohmann::json& params) {
  TableNames names(table);
  spec::Reader reader("", names);
  spec::Node node = to_node(params);
  std::shared_ptr<SourceSpec> spec = schema.parse(reader, reader.root(node));
  if (!spec) {
    const spec::Problem& p = reader.problems().front();
    return Error{p.message, p.code};
  }
  return spec;
}

}  // namespace tocsin

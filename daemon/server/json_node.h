// json_node.h — the socket's edge of the neutral spec::Node (include/tocsin/spec.h): a request's
// params become a Node for the schema readers, and what the daemon reports as Nodes (a source's
// status) becomes JSON. The only place where nlohmann::json and spec::Node meet.
#pragma once

#include <nlohmann/json.hpp>

#include "tocsin/spec.h"

namespace tocsin {

// An object's null members are left out: in a request, a null param is the same as an absent one
// (what JSON-RPC clients send for an optional argument not given). Strings are `quoted`, numbers
// `number`, booleans `boolean`. No positions: messages name the param by its path.
spec::Node to_node(const nlohmann::json& json);
// Numbers and booleans by their style; every other scalar a string.
nlohmann::json to_json(const spec::Node& node);

}  // namespace tocsin

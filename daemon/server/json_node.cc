#include "server/json_node.h"

namespace tocsin {

spec::Node to_node(const nlohmann::json& j) {
  using Style = spec::Node::Style;
  switch (j.type()) {
    case nlohmann::json::value_t::object: {
      spec::Node out = spec::Node::mapping();
      for (const auto& [key, value] : j.items()) {
        if (value.is_null()) continue;
        out.add(key, to_node(value));
      }
      return out;
    }
    case nlohmann::json::value_t::array: {
      spec::Node out = spec::Node::sequence();
      for (const auto& item : j) out.push_back(to_node(item));
      return out;
    }
    case nlohmann::json::value_t::string:
      return spec::Node::scalar(j.get<std::string>(), Style::quoted);
    case nlohmann::json::value_t::boolean:
      return spec::Node::scalar(j.get<bool>() ? "true" : "false", Style::boolean);
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return spec::Node::scalar(j.dump(), Style::number);
    default:
      return spec::Node::null();
  }
}

nlohmann::json to_json(const spec::Node& n) {
  switch (n.kind()) {
    case spec::Node::Kind::mapping: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& e : n.entries()) out[e.key.text()] = to_json(e.value);
      return out;
    }
    case spec::Node::Kind::sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : n.items()) out.push_back(to_json(item));
      return out;
    }
    case spec::Node::Kind::scalar:
      if (n.style() == spec::Node::Style::boolean) return n.text() == "true";
      if (n.style() == spec::Node::Style::number) {
        nlohmann::json number = nlohmann::json::parse(n.text(), nullptr, false);
        if (number.is_number()) return number;
      }
      return n.text();
    case spec::Node::Kind::null:
      break;
  }
  return nullptr;
}

}  // namespace tocsin

#include "protocol/fast_raise.h"

#include <nlohmann/json.hpp>

#include "protocol/event_encoder.h"

namespace tocsin {

namespace {

using Json = nlohmann::json;

// Accepts only the shapes above; returning false stops the parse (the caller falls back).
class RaiseSax {
 public:
  explicit RaiseSax(std::vector<RaiseRequest>& out) : out_(out) {}
  bool is_batch = false;

  bool null() {
    if (where_ == Where::params && key_ == "payload") return true;
    return false;
  }
  bool boolean(bool) { return false; }
  bool number_integer(Json::number_integer_t v) {
    if (v < 0) {
      // A negative signal is an error: the full path words it.
      if (where_ == Where::request && key_ == "id") {
        current().has_id = true;
        current().id_json = std::to_string(v);
        return true;
      }
      return false;
    }
    return number_unsigned(static_cast<Json::number_unsigned_t>(v));
  }
  bool number_unsigned(Json::number_unsigned_t v) {
    if (where_ == Where::request && key_ == "id") {
      current().has_id = true;
      current().id_json = std::to_string(v);
      return true;
    }
    if (where_ == Where::params && key_ == "signal") {
      current().has_signal = true;
      current().signal_is_name = false;
      current().signal_number = v;
      return true;
    }
    return false;
  }
  bool number_float(Json::number_float_t, const std::string&) { return false; }
  bool string(std::string& v) {
    if (where_ == Where::request) {
      if (key_ == "jsonrpc") {
        rpc_ok_ = v == "2.0";
        return rpc_ok_;
      }
      if (key_ == "method") {
        method_ok_ = v == "raise";
        return method_ok_;
      }
      if (key_ == "id") {
        current().has_id = true;
        current().id_json.clear();
        append_json_string(current().id_json, v);
        return true;
      }
      return false;
    }
    if (where_ == Where::params) {
      if (key_ == "signal") {
        current().has_signal = true;
        current().signal_is_name = true;
        current().signal_name = std::move(v);
        return true;
      }
      if (key_ == "payload") {
        current().payload = std::move(v);
        return true;
      }
    }
    return false;
  }
  bool binary(Json::binary_t&) { return false; }
  bool start_object(std::size_t) {
    if (where_ == Where::top || where_ == Where::batch) {
      out_.emplace_back();
      rpc_ok_ = method_ok_ = false;
      where_ = Where::request;
      return true;
    }
    if (where_ == Where::request && key_ == "params") {
      where_ = Where::params;
      return true;
    }
    return false;
  }
  bool key(std::string& k) {
    key_ = k;
    if (where_ == Where::request) {
      return k == "jsonrpc" || k == "method" || k == "id" || k == "params";
    }
    return k == "signal" || k == "payload";
  }
  bool end_object() {
    if (where_ == Where::params) {
      where_ = Where::request;
      key_.clear();
      return true;
    }
    // The end of a request: it must have said what the full path requires.
    if (!rpc_ok_ || !method_ok_ || !current().has_signal) return false;
    where_ = is_batch ? Where::batch : Where::done;
    return true;
  }
  bool start_array(std::size_t) {
    if (where_ != Where::top) return false;
    is_batch = true;
    where_ = Where::batch;
    return true;
  }
  bool end_array() {
    if (where_ != Where::batch || out_.empty()) return false;
    where_ = Where::done;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  enum class Where { top, batch, request, params, done };
  RaiseRequest& current() { return out_.back(); }

  std::vector<RaiseRequest>& out_;
  Where where_ = Where::top;
  std::string key_;
  bool rpc_ok_ = false;
  bool method_ok_ = false;
};

}  // namespace

bool parse_raise_line(std::string_view line, std::vector<RaiseRequest>& out, bool* is_batch) {
  out.clear();
  RaiseSax sax(out);
  bool ok = Json::sax_parse(line.begin(), line.end(), &sax, Json::input_format_t::json, true);
  *is_batch = sax.is_batch;
  if (!ok) out.clear();
  return ok;
}

}  // namespace tocsin

// location.h — where something was declared: file:line:column, as editors show them. Every error
// about the configuration points at one.
#pragma once

#include <string>

namespace tocsin::config {

// 1-based line and column. line == 0 means "no position": a file that could not be opened, or
// a value that came in a request (its path in the request's params says where instead).
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
  bool operator==(const Location&) const = default;
};
// "file:line:column", or "file" when there is no position.
std::string to_string(const Location& where);

}  // namespace tocsin::config

// change_payload.h — a file monitor's batch as event payloads (docs/file-monitors.md). Pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "sources/file/coalescer.h"

namespace tocsin::fs {

// The event payloads of one batch, each at most `cap` bytes (a single change larger than that is
// sent alone): {"monitor":ID,"path":PATH,"overflow":BOOL,"changes":[{"path":P,"events":[...]},
// ...],"part":I,"parts":N}. Bytes that are not UTF-8 in a path become U+FFFD.
std::vector<std::string> encode_payloads(std::string_view monitor, std::string_view path,
                                         const Batch& batch, std::size_t cap);

}  // namespace tocsin::fs

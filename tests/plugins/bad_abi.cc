// A plugin built for another ABI version: tocsind must refuse it with a clear error at --check.
#include "tocsin/plugin.h"

namespace {
tocsin::Plugin* create() { return nullptr; }
const tocsin_plugin_descriptor kDescriptor{999, "bad_abi", "0", &create};
}  // namespace

extern "C" __attribute__((visibility("default"))) const tocsin_plugin_descriptor*
tocsin_plugin_entry(void) {
  return &kDescriptor;
}

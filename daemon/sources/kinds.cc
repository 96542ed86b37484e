// kinds.cc — the one list of source kinds (include/tocsin/event_source.h).
//
// A kind is new files under daemon/sources/ (its spec and schema, its EventSource, and a function
// `const SourceKindEntry& tocsin_source_kind_NAME()` that returns both) plus one line here; the
// YAML section, the `add_*` method, status, ids, limits and remove_source come with it
// (docs/HACKING.md "Adding a source kind"). The order is the order kinds start in, and that of
// `status`.
#include "tocsin/event_source.h"

// Declares the kind's entry function where it is used, so that the line above is all it takes.
#define TOCSIN_SOURCE_KIND(name)                        \
  [] {                                                  \
    const SourceKindEntry& tocsin_source_kind_##name(); \
    return tocsin_source_kind_##name();                 \
  }()

namespace tocsin {

const std::vector<SourceKindEntry>& source_kinds() {
  static const std::vector<SourceKindEntry> kinds = {
      TOCSIN_SOURCE_KIND(posix), TOCSIN_SOURCE_KIND(timer), TOCSIN_SOURCE_KIND(rb_timer),
      TOCSIN_SOURCE_KIND(file),  TOCSIN_SOURCE_KIND(cron),  TOCSIN_SOURCE_KIND(at),
  };
  return kinds;
}

}  // namespace tocsin

// journal_sink.h — log lines to the systemd journal with structured fields (issue 17, item 5).
//
// When stderr is the journal (JOURNAL_STREAM), each line goes through sd_journal_sendv with
// MESSAGE, PRIORITY, SYSLOG_IDENTIFIER=tocsind and the fields of the current logging::Scope
// (TOCSIN_SIGNAL, TOCSIN_SIGNAL_NAME, TOCSIN_SEQ, TOCSIN_SOURCE_KIND, TOCSIN_SOURCE_ID,
// TOCSIN_CLIENT). If the journal's socket cannot take it (journald stopped, a container without
// one), the line goes to stderr as "<P>level text" instead, which the journal's stream reads
// with its priority: a line is never lost for want of its fields.
#pragma once

#include <memory>

#include <spdlog/sinks/sink.h>

namespace tocsin::logging {

std::shared_ptr<spdlog::sinks::sink> make_journal_sink();

}  // namespace tocsin::logging

"""``python3 -m tocsin import-uwsgi FILE.ini``: uWSGI's signal options as tocsin YAML.

The converter reads an ini file the way uWSGI reads it (core/ini.c, core/config.c) and turns
the options of uWSGI's signal family into a tocsin configuration (docs/config.md). Whatever it
cannot convert faithfully is reported with its ini line (``app.ini:12: error: ...``); the YAML
for the rest is still produced. ``convert()`` is the library entry point; ``run()`` and
``add_arguments()`` are the command line glue that ``tocsin.__main__`` dispatches to.

What uWSGI does, and what each option becomes (docs/migrating-from-uwsgi.md has the table):

- ``timer``/``signal-timer = SIGNAL SECONDS`` -> ``timers: [{signal, every}]``;
  ``rbtimer``/``signal-rbtimer`` -> ``rb_timers``. The signal gets a table entry
  ``{handlers: [{target: subscriber}]}``: uWSGI's default target for a registered handler is
  "worker", the first available worker, which is tocsin's one-of ``target: subscriber``.
- ``cron``/``unique-cron = MIN HOUR DAY MONTH WEEKDAY COMMAND`` (five integers, -1 = any,
  -N = divisible by N), ``cron2 = key=val,... COMMAND`` (minute, hour, day, month, week, unique,
  harakiri, legion), ``legion-cron``/``cron-legion = LEGION MIN ... COMMAND``,
  ``unique-legion-cron``/``unique-cron-legion``: a ``cron`` entry in uWSGI's own form
  (``uwsgi: [m, h, d, mon, wd]``, same meaning) raising a signal the importer allocates
  (``FIRST_ALLOCATED_SIGNAL`` downward, skipping numbers the ini uses), whose table entry runs
  the command as uWSGI does: ``exec: [/bin/sh, -c, COMMAND]`` (uwsgi_run_command; the first
  ``binsh`` option replaces /bin/sh). uWSGI runs the commands in its working directory
  (``chdir``) with its environment (``env``/``unenv``): when the ini sets those, the argv starts
  with ``/usr/bin/env --chdir=DIR NAME=VALUE ...``; ``env = TZ=Zone`` also sets ``tz:`` on the
  cron entries, since uWSGI's cron reads localtime().
- unique crons skip a slot while the previous run is going (``overlap: skip``); other crons
  start a new run at each slot even if the previous one still runs, which tocsin bounds at
  ``NON_UNIQUE_CONCURRENCY`` runs at once (``concurrency``; uWSGI has no bound).
- ``cron-harakiri = N`` (global, the last one wins, applied at run time to every cron without a
  harakiri of its own) and cron2 ``harakiri=N`` -> ``timeout: Ns`` (both kill the process
  group with SIGKILL); cron2 ``harakiri=0`` turns the global one off for that cron.
- ``fs-signal = PATH SIGNAL`` (inotify on PATH: IN_ATTRIB, IN_CREATE, IN_DELETE(_SELF),
  IN_MODIFY, IN_MOVE_SELF, IN_MOVED_FROM/TO) -> ``file_monitors`` with
  ``events: [create, modify, delete, move, attrib]``; ``touch-signal = PATH SIGNAL`` (the
  master stat()s PATH each cycle and raises when it appears, disappears or its mtime grows)
  -> a file monitor with every event; ``touch-exec = PATH COMMAND`` -> a file monitor whose
  signal runs the command. Relative paths are taken from ``chdir``.
- legion crons run only on the Lord of their legion; tocsin's equivalent is ``cluster: true``
  (each slot fires on exactly one daemon, claimed in Postgres), which needs the pgnotify plugin:
  ``tocsind --check`` refuses ``cluster: true`` without it. Without ``--pgnotify-conninfo`` the
  importer writes such a cron commented out and exits 1: a legion cron must never silently run
  on every node, and not running is the safe side (as for tocsin's own cluster jobs when
  Postgres is unreachable); the commented entry and the header say what to add. With
  ``--pgnotify-conninfo`` it writes ``plugins: {pgnotify: {conninfo: ...}}`` and the job live.
  The conninfo is never invented.

The ini is read as uWSGI reads it: the ``[uwsgi]`` section (or another), ``;``/``#`` comment
lines (no inline comments: ``;`` in a value is part of it), ``key = value`` split at the first
``=``, repeated keys adding one entry each. Magic variables (``%d``, ``%n``, ``%%``...) are
replaced in the whole text first; the ones that come from the file's path are resolved, the
ones only the running uWSGI knows (``%h``, ``%k``...) make their line unconvertible, and an
undefined one becomes empty as in uWSGI (with a warning). ``%(name)`` is the first value of
option ``name`` in the section; ``$(ENV)`` and ``@(file)`` are read by uWSGI at its start and
are not known here. ``for``/``for-times`` blocks are expanded; options under ``if-*`` and the
other logic blocks depend on uWSGI's run time and are reported. ``ini``/``include``/``inherit``
of another section of the same file (``:name``) are followed; other files are reported.

Exit status of the command: 0 when every signal option was converted (warnings may have been
printed), 1 when some were not (the YAML holds the rest), 2 for a usage error or an unreadable
file. Other uWSGI options (http, module, processes, ...) are ignored without a word.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import sys
import textwrap

__all__ = ["convert", "Result", "Problem", "add_arguments", "run", "main",
           "FIRST_ALLOCATED_SIGNAL", "NON_UNIQUE_CONCURRENCY"]

HELP = "write tocsin YAML for the signal options (timers, crons, file signals) of a uWSGI ini"

FIRST_ALLOCATED_SIGNAL = 199   # signals for commands are allocated from here downward
NON_UNIQUE_CONCURRENCY = 8     # uWSGI starts a run at each slot without bound; tocsin needs one
UWSGI_MAX_TIMERS = 64          # uWSGI's table of timers (and of rb_timers) holds 64
FS_SIGNAL_EVENTS = ("create", "modify", "delete", "move", "attrib")
DEFAULT_SHELL = "/bin/sh"
ENV_PROGRAM = "/usr/bin/env"
_MAX_SECONDS = 87600 * 3600    # tocsin's longest duration

# The signal family, by canonical kind (the id prefix); aliases as uWSGI declares them.
_KINDS = {
    "timer": "timer", "signal-timer": "timer",
    "rbtimer": "rbtimer", "signal-rbtimer": "rbtimer",
    "cron": "cron",
    "unique-cron": "unique-cron",
    "cron2": "cron2",
    "legion-cron": "legion-cron", "cron-legion": "legion-cron",
    "unique-legion-cron": "unique-legion-cron", "unique-cron-legion": "unique-legion-cron",
    "fs-signal": "fs-signal",
    "touch-signal": "touch-signal",
    "touch-exec": "touch-exec",
}
# Signal options with no tocsin equivalent: errors (they change what the instance does).
_UNCONVERTIBLE = {
    "signal": "sends a signal to a running uWSGI once, at start; with tocsin that is "
              "`tocsinctl raise SIGNAL` (or Client.raise_signal)",
}
# Signal options that only tune uWSGI's internals: warnings.
_IGNORED = {
    "signal-bufsize": "tocsin's queues are bounded by limits.subscriber_queue and "
                      "limits.backlog (docs/config.md)",
    "signals-bufsize": "tocsin's queues are bounded by limits.subscriber_queue and "
                       "limits.backlog (docs/config.md)",
    "spooler-signal-as-task": "tocsin has no spoolers",
}
_INCLUDES = {"ini", "include", "inherit", "config", "xml", "xmlconfig", "yaml", "yml", "json",
             "js"}
_ENDS = {"end", "endif", "endfor", "end-if", "end-for"}
_FIELDS = (("minute", 0, 59, 60), ("hour", 0, 23, 24), ("day", 1, 31, 31),
           ("month", 1, 12, 12), ("weekday", 0, 7, 7))
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Magic variables only the running uWSGI knows (core/uwsgi.c, config_magic_table_fill and
# the table filled at start).
_RUNTIME_MAGIC = {
    "o": "the config path as given to uWSGI", "O": "the config path as given to uWSGI",
    "b": "the uWSGI binary's path", "i": "the config file's inode", "I": "the config file's inode",
    "j": "a hash of the config path", "J": "a hash of the config path",
    "h": "the host name", "k": "the number of CPU cores", "u": "uWSGI's uid",
    "U": "uWSGI's user name", "g": "uWSGI's gid", "G": "uWSGI's group name",
    "t": "the time uWSGI started", "T": "the time uWSGI started", "v": "uWSGI's working directory",
    "V": "uWSGI's version",
}


class Problem(object):
    """Something the importer could not convert (``severity`` "error") or converted with a
    caveat ("warning"); ``line`` is the ini line (1-based), or None for the whole file."""

    __slots__ = ("line", "severity", "message")

    def __init__(self, line, severity, message):
        self.line = line
        self.severity = severity
        self.message = message

    def format(self, source_name):
        where = "%s:%d" % (source_name, self.line) if self.line else source_name
        return "%s: %s: %s" % (where, self.severity, self.message)

    def __eq__(self, other):
        return isinstance(other, Problem) and (self.line, self.severity, self.message) == (
            other.line, other.severity, other.message)

    def __repr__(self):
        return "Problem(%r, %r, %r)" % (self.line, self.severity, self.message)


class Result(object):
    """``yaml_text``: the tocsin configuration; ``problems``: every Problem, in line order."""

    __slots__ = ("yaml_text", "problems")

    def __init__(self, yaml_text, problems):
        self.yaml_text = yaml_text
        self.problems = problems

    @property
    def errors(self):
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self):
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self):
        """True when everything of the signal family was converted."""
        return not self.errors


class _Unconvertible(Exception):
    pass


class _Option(object):
    """One option as uWSGI adds it: ``line`` of the ini, ``key``, ``value`` (magic variables
    replaced), ``raw`` (the line as written), and what surrounds it."""

    __slots__ = ("line", "key", "value", "raw", "notes", "loop", "cond", "placeholder_only")

    def __init__(self, line, key, value, raw, notes, loop=None, cond=None,
                 placeholder_only=False):
        self.line, self.key, self.value, self.raw, self.notes = line, key, value, raw, notes
        self.loop, self.cond, self.placeholder_only = loop, cond, placeholder_only


# ---------------------------------------------------------------------------------------------
# Reading the ini as uWSGI does


def _magic_table(path, section_spec):
    """The magic variables that come from the config file's path (core/uwsgi.c,
    config_magic_table_fill): %p full path, %s file name, %d directory (with its trailing
    slash), %c the directory's name, %e extension, %n name without it, %0-%9 the directory's
    components, %x the section given after the file name; upper case: the same for the first
    config file (this one)."""
    table = {}
    if path is None:
        return table
    if os.path.islink(path):
        full = path if path.startswith("/") else os.path.join(os.getcwd(), path)
    else:
        full = os.path.realpath(path)
    s = full.rsplit("/", 1)[-1]
    d = full[:len(full) - len(s)]
    bare = d[:-1] if d.endswith("/") else d
    table["p"], table["s"], table["d"] = full, s, d
    table["c"] = bare.rsplit("/", 1)[-1] if "/" in bare else ""
    for i, part in enumerate([p for p in bare.split("/") if p][:10]):
        table[str(i)] = part
    for i in range(len([p for p in bare.split("/") if p]), 10):
        table[str(i)] = ""
    if "." in s:
        table["e"] = s.rsplit(".", 1)[1]
        table["n"] = s.rsplit(".", 1)[0]
    else:
        table["e"], table["n"] = "", s
    table["x"] = section_spec or ""
    for k in "DSPCENX":
        table[k] = table[k.lower()]
    return table


def _expand_magic(text, table):
    """uWSGI replaces ``%X`` in the whole file before reading its lines (core/utils.c,
    magic_sub): ``%%`` is ``%``, ``%(`` stays, a defined variable is replaced and every other
    ``%X`` becomes empty, even ``%`` before a newline (which joins two lines). Returns the
    logical lines: (first physical line, text, notes) with notes a list of ("runtime"|"empty"|
    "nofile"|"file", char)."""
    out = []
    buf = []
    notes = []
    lineno = start = 1
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "%" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "%":
                buf.append("%")
            elif nxt == "(":
                buf.append("%(")
            elif nxt in table:
                buf.append(table[nxt])
                notes.append(("file", nxt))
            elif nxt in _RUNTIME_MAGIC:
                buf.append("%" + nxt)
                notes.append(("runtime", nxt))
            elif nxt in "psdcenxDSPCENX0123456789":
                buf.append("%" + nxt)
                notes.append(("nofile", nxt))
            else:
                notes.append(("empty", nxt))
                if nxt == "\n":
                    lineno += 1
            i += 2
            continue
        if ch == "\n":
            out.append((start, "".join(buf), notes))
            buf, notes = [], []
            lineno += 1
            start = lineno
        else:
            buf.append(ch)
        i += 1
    if buf or notes:
        out.append((start, "".join(buf), notes))
    return out


def _strip(s):
    return s.strip(" \t\r")


def _read_section(lines, raw_lines, section, problems, depth=0):
    """The options of ``section`` in order (core/ini.c), with for-blocks expanded, options
    under other logic blocks marked, and same-file includes (``ini = :name``) followed.
    Returns (options, whether the section was found)."""
    out = []
    found = False
    current = ""
    logic = None  # ("for", line, key, tokens) or ("cond", line, key, arg)
    for lineno, text, notes in lines:
        s = _strip(text)
        if not s:
            continue
        if s[0] == "[":
            current = s[1:-1]
            continue
        if s[0] in ";#" or current != section:
            continue
        found = True
        key, _, value = s.partition("=")
        key, value = _strip(key), _strip(value)
        raw = _strip(raw_lines[lineno - 1]) if lineno - 1 < len(raw_lines) else s
        if key in _ENDS:
            logic = None
            continue
        if key == "else":
            logic = ("cond", lineno, key, value)
            continue
        if key == "for":
            logic = ("for", lineno, key, [t for t in value.split(" ") if t])
            continue
        if key == "for-times":
            count = _int(value)
            if count is None:
                problems.append(Problem(lineno, "warning", "for-times: %r is not a number; the "
                                        "signal options of its block are not converted" % value))
                logic = ("cond", lineno, key, value)
            else:
                logic = ("for", lineno, key, [str(i) for i in range(1, count + 1)])
            continue
        if key.startswith("if-") or key in ("for-glob", "for-readline"):
            logic = ("cond", lineno, key, value)
            continue
        if key in ("set", "set-placeholder", "set-ph") and "=" in value:
            k, _, v = value.partition("=")
            # `set = k=v` is the option k itself; the other two define a placeholder only.
            options = [_Option(lineno, k, v, raw, notes, placeholder_only=(key != "set"))]
        elif key in ("ini", "include", "inherit") and value.startswith(":") \
                and ":" not in value[1:] and depth < 8:
            options, sub_found = _read_section(lines, raw_lines, value[1:], problems, depth + 1)
            if not sub_found:
                problems.append(Problem(lineno, "warning", "%s: there is no section [%s] in "
                                        "this file" % (key, value[1:])))
        else:
            options = [_Option(lineno, key, value, raw, notes)]
        for opt in options:
            if logic and logic[0] == "for":
                for token in logic[3]:
                    out.append(_Option(opt.line, opt.key, opt.value.replace("%(_)", token),
                                       opt.raw, opt.notes, loop=(logic[1], logic[2], token),
                                       cond=opt.cond, placeholder_only=opt.placeholder_only))
            elif logic:
                opt.cond = opt.cond or (logic[1], logic[2], logic[3])
                out.append(opt)
            else:
                out.append(opt)
    return out, found


# ---------------------------------------------------------------------------------------------
# Values


_INT_RE = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _int(text):
    m = _INT_RE.match(text)
    return int(m.group(1)) if m else None


class _Context(object):
    """The section's options, for %(name) (the first value of each key, as
    uwsgi_get_exported_opt), and what conversion learned on the way."""

    def __init__(self, options, magic):
        self.magic = magic
        self.placeholders = {}
        for opt in options:
            self.placeholders.setdefault(opt.key, opt)


def _resolve(opt, ctx, value=None, in_command=False, depth=0):
    """``value`` (default opt.value) with ``%(name)`` replaced as uWSGI's last config pass does
    (core/utils.c, uwsgi_apply_config_pass); ``$(...)`` and ``@(...)`` are read by uWSGI at
    its start and are reported. Returns (text, warnings); raises _Unconvertible."""
    if value is None:
        value = opt.value
    for kind, ch in opt.notes:
        if kind == "runtime":
            raise _Unconvertible("%%%s is %s, known only to the running uWSGI; write its value"
                                 % (ch, _RUNTIME_MAGIC[ch]))
        if kind == "nofile":
            raise _Unconvertible("%%%s comes from the ini file's path, which was not given" % ch)
    warnings = []
    if depth == 0:
        empties = sorted(set(ch for kind, ch in opt.notes if kind == "empty"))
        if empties:
            shown = ", ".join("%" + (c if c.isprintable() else repr(c)[1:-1]) for c in empties)
            warnings.append("uWSGI replaces %s with nothing (write %%%% for a literal %%); "
                            "converted as uWSGI reads it" % shown)
        files = sorted(set(ch for kind, ch in opt.notes if kind == "file"))
        if files and in_command:
            warnings.append("uWSGI replaces %s in the command with %s (write %%%% for a literal "
                            "%%); converted as uWSGI reads it" % (
                                ", ".join("%" + c for c in files),
                                ", ".join(repr(ctx.magic.get(c, "")) for c in files)))
    if any("\udc80" <= c <= "\udcff" for c in value):
        raise _Unconvertible("the value is not valid UTF-8")
    out = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch in "%$@" and i + 1 < n and value[i + 1] == "(":
            j, nest = i + 2, 0
            while j < n:
                if value[j] == "(":
                    nest += 1
                elif value[j] == ")":
                    if nest == 0:
                        break
                    nest -= 1
                j += 1
            key = value[i + 2:j]
            if j >= n or not key:
                out.append(value[i:j + 1])
                i = j + 1
                continue
            whole = value[i:j + 1]
            if ch == "%":
                if " " in key:
                    raise _Unconvertible("%s is uWSGI placeholder arithmetic, not evaluated "
                                         "here; write its result" % whole)
                ref = ctx.placeholders.get(key)
                if ref is None:
                    raise _Unconvertible("%s: no option or placeholder %r in this section "
                                         "(uWSGI would keep the text as it is unless another "
                                         "config defines it)" % (whole, key))
                if depth > 16:
                    raise _Unconvertible("%s: placeholders refer to each other in a loop" % whole)
                text, more = _resolve(ref, ctx, None, in_command, depth + 1)
                warnings.extend(more)
                out.append(text)
            elif ch == "$":
                if "-" in key:
                    raise _Unconvertible("%s: uWSGI reads it as the environment variable %r "
                                         "with a default, when it starts; write the value"
                                         % (whole, re.split(r":?-", key, 1)[0]))
                if _ENV_NAME.match(key):
                    if in_command and any(c.islower() for c in key):
                        warnings.append("%s is kept for the shell (command substitution); uWSGI "
                                        "would have put the environment variable %r there if it "
                                        "was set when uWSGI started" % (whole, key))
                        out.append(whole)
                    else:
                        raise _Unconvertible("%s is the environment variable %r as uWSGI saw it "
                                             "when it started, not known here; write its value"
                                             % (whole, key))
                else:
                    out.append(whole)  # no such variable name: uWSGI keeps the text
            else:
                raise _Unconvertible("%s is the content of a file, read by uWSGI when it "
                                     "starts; write it out" % whole)
            i = j + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out), warnings


def _signal_number(text, what="signal"):
    n = _int(text)
    if n is None:
        raise _Unconvertible("the %s %r is not a number from 0 to 255" % (what, text.strip()))
    if not 0 <= n <= 255:
        raise _Unconvertible("the %s %d is out of 0-255 (uWSGI would keep its low byte, %d)"
                             % (what, n, n % 256))
    return n


def _seconds(text, what):
    n = _int(text)
    if n is None:
        raise _Unconvertible("the %s %r is not a whole number of seconds" % (what, text.strip()))
    return n


def _duration(seconds):
    if seconds > _MAX_SECONDS:
        raise _Unconvertible("%d s is longer than tocsin's longest duration (87600h)" % seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    text = "".join("%d%s" % (v, u) for v, u in ((h, "h"), (m, "m"), (s, "s")) if v)
    return text or "0s"


def _sscanf_cron(text):
    """What uWSGI's sscanf("%d %d %d %d %d %n") reads (core/cron.c): five numbers, each a
    sign and digits after optional blanks, then the command; None when it refuses the line."""
    pos, nums = 0, []
    for _ in range(5):
        m = re.compile(r"\s*([+-]?[0-9]+)").match(text, pos)
        if not m:
            return None
        nums.append(int(m.group(1)))
        pos = re.compile(r"\s*").match(text, m.end()).end()
    return nums, text[pos:]


_CRON_RE = re.compile(r"\s*([+-]?[0-9]+)\s+([+-]?[0-9]+)\s+([+-]?[0-9]+)\s+([+-]?[0-9]+)"
                      r"\s+([+-]?[0-9]+)(?:\s+(.*))?\Z", re.S)


def _cron_line(text):
    """``MIN HOUR DAY MONTH WEEKDAY COMMAND`` -> (fields, command)."""
    m = _CRON_RE.match(text)
    if not m:
        reading = _sscanf_cron(text)
        why = ("expected five whole numbers and the command (uWSGI's cron has no `*`, ranges or "
               "lists: -1 is any value, -N a value divisible by N)")
        if reading is None:
            raise _Unconvertible(why + "; uWSGI refuses this line too (invalid cron syntax)")
        nums, command = reading
        raise _Unconvertible(why + "; uWSGI reads it as %s and the command %r" % (
            " ".join(str(v) for v in nums), command))
    fields = [int(m.group(k)) for k in range(1, 6)]
    command = m.group(6) or ""
    if not command.strip():
        raise _Unconvertible("no command after the five fields (uWSGI would run an empty one)")
    return fields, command


def _check_fields(fields, warnings):
    """uWSGI's five cron numbers, as tocsin's ``uwsgi:`` form takes them (same meaning), or
    _Unconvertible for a schedule that never fires in uWSGI."""
    out = []
    for value, (name, lo, hi, size) in zip(fields, _FIELDS):
        if value >= 0:
            if not lo <= value <= hi:
                raise _Unconvertible("%s %d is out of %d-%d: uWSGI never matches it"
                                     % (name, value, lo, hi))
        elif value < -1 and -value > size:
            if lo > 0:
                raise _Unconvertible("%s %d: no %s from %d to %d is divisible by %d, so uWSGI "
                                     "never fires it" % (name, value, name, lo, hi, -value))
            warnings.append("%s %d matches only 0 in uWSGI (no other %s is divisible by %d); "
                            "written as 0" % (name, value, name, -value))
            value = 0
        out.append(value)
    minute, hour, day, month, weekday = out
    if day >= 1 and weekday < 0:  # day and weekday are ORed only when both are values
        months = [m for m in range(1, 13)
                  if (month == -1) or (month >= 1 and m == month)
                  or (month < -1 and m % -month == 0)]
        if not any(_MONTH_DAYS[m - 1] >= day for m in months):
            raise _Unconvertible("day %d never comes in month %s, so uWSGI never fires it"
                                 % (day, month))
    return out


def _kvlist(text):
    """uWSGI's key=value list (core/utils.c, uwsgi_kvlist_parse): split at unescaped commas,
    each item at its first '='; items without '=' are skipped; the last value of a key wins."""
    items, buf, escaped = [], [], False
    for ch in text:
        if ch == "," and not escaped:
            items.append("".join(buf))
            buf = []
        elif ch == "\\" and not escaped:
            escaped = True
        else:
            buf.append(ch)
            escaped = False
    if buf:
        items.append("".join(buf))
    out = {}
    for item in items:
        if "=" in item:
            k, _, v = item.partition("=")
            out[k] = v
    return out


# ---------------------------------------------------------------------------------------------
# Conversion


class _Entry(object):
    """One converted option: a source raising ``signal`` (a number, or None: a command's
    signal, allocated later) and, for commands, its exec handler."""

    def __init__(self, opt, kind, ordinal):
        self.opt, self.kind, self.ordinal = opt, kind, ordinal
        self.id = "uwsgi-%s-%d" % (kind, ordinal)
        self.list = None       # timers | rb_timers | file_monitors | cron
        self.fields = []       # (key, rendered value) after id and signal
        self.signal = None
        self.command = None
        self.timeout = None    # seconds
        self.unique = False
        self.legion = None


class _Settings(object):
    """The options that shape how uWSGI runs commands and crons; each value with its
    option (for its line), resolved when first used."""

    def __init__(self):
        self.chdir = None       # the last chdir option
        self.env = []           # env / unenv options, in order
        self.binsh = None       # the first binsh option
        self.harakiri = None    # the last cron-harakiri option
        self.user = []          # uid / gid options
        self.master_as_root = False
        self.targets = []       # mule, mules, farm, spooler options


class _Converter(object):
    def __init__(self, options, ctx, tz, conninfo):
        self.options = options
        self.ctx = ctx
        self.tz_arg = tz
        self.conninfo = conninfo
        self.problems = []
        self.settings = _Settings()
        self.entries = []
        self.counts = {}
        self._resolved = {}    # id(option) -> its setting's value

    def error(self, opt, message):
        self.problems.append(Problem(opt.line, "error", "%s: %s" % (opt.key, message)))

    def warn(self, opt, message):
        self.problems.append(Problem(opt.line, "warning", "%s: %s" % (opt.key, message)))

    def context(self, opt):
        """Why an option under a logic block cannot be converted, or None."""
        if opt.cond:
            line, key, arg = opt.cond
            return ("it is under `%s = %s` (line %d), which uWSGI decides when it starts; "
                    "move it out of the block or convert it by hand" % (key, arg, line))
        return None

    # -- settings ------------------------------------------------------------------------------

    def collect_settings(self):
        s = self.settings
        for opt in self.options:
            if opt.placeholder_only:
                continue
            k = opt.key
            if k == "chdir":
                s.chdir = opt
            elif k in ("env", "unenv"):
                s.env.append(opt)
            elif k == "binsh" and s.binsh is None:
                s.binsh = opt
            elif k == "cron-harakiri":
                s.harakiri = opt
            elif k in ("uid", "gid"):
                s.user.append(opt)
            elif k == "master-as-root":
                s.master_as_root = True
            elif k in ("mule", "mules", "farm", "spooler"):
                s.targets.append(opt)

    def setting(self, opt, convert):
        """The resolved value of a setting option, reported once; None when unusable."""
        if id(opt) not in self._resolved:
            try:
                why = self.context(opt)
                if why:
                    raise _Unconvertible(why)
                value, warnings = _resolve(opt, self.ctx)
                for w in warnings:
                    self.warn(opt, w)
                self._resolved[id(opt)] = convert(value)
            except _Unconvertible as e:
                self.error(opt, str(e) + "; the commands and crons are converted without it")
                self._resolved[id(opt)] = None
        return self._resolved[id(opt)]

    def chdir(self):
        opt = self.settings.chdir
        if opt is None:
            return None

        def check(value):
            if not value.startswith("/"):
                raise _Unconvertible("a relative directory (%r) depends on where uWSGI was "
                                     "started" % value)
            return value
        return self.setting(opt, check)

    def environment(self):
        """(names unset, [(name, value)] set), the net effect of env/unenv in order."""
        state = {}
        for opt in self.settings.env:
            if opt.key == "env":
                value = self.setting(opt, lambda v: v)
                if value is None:
                    continue
                name, eq, val = value.partition("=")
                state.pop(name, None)
                state[name] = val if eq else None  # glibc's putenv("NAME") removes NAME
            else:
                name = self.setting(opt, lambda v: v)
                if name is not None:
                    state.pop(name, None)
                    state[name] = None
        unset = [k for k, v in state.items() if v is None]
        assign = [(k, v) for k, v in state.items() if v is not None]
        return unset, assign

    def time_zone(self):
        if not hasattr(self, "_zone"):
            self._zone = self._time_zone()
        return self._zone

    def _time_zone(self):
        if self.tz_arg:
            return self.tz_arg
        zone = None
        for opt in self.settings.env:
            value = self.setting(opt, lambda v: v)
            if value is None:
                continue
            if opt.key == "env" and value.startswith("TZ="):
                zone = (opt, value[3:])
            elif value == "TZ":
                zone = None
        if zone is None:
            return None
        opt, name = zone
        name = name[1:] if name.startswith(":") else name
        problem = _zone_problem(name)
        if problem:
            self.error(opt, "TZ=%s sets uWSGI's local time for its crons, but %s; the crons "
                       "are converted without tz:" % (name, problem))
            return None
        return name

    def shell(self):
        opt = self.settings.binsh
        if opt is None:
            return DEFAULT_SHELL
        value = self.setting(opt, lambda v: v)
        if value is None:
            return DEFAULT_SHELL
        return value

    # -- the signal family -----------------------------------------------------------------

    def convert_all(self):
        self.collect_settings()
        for opt in self.options:
            if opt.placeholder_only:
                continue
            kind = _KINDS.get(opt.key)
            if kind is None:
                if opt.key in _UNCONVERTIBLE:
                    self.error(opt, "not converted: it " + _UNCONVERTIBLE[opt.key])
                elif opt.key in _IGNORED:
                    self.warn(opt, "ignored: " + _IGNORED[opt.key])
                elif opt.key in _INCLUDES:
                    self.error(opt, "the options in %r are not read: import that file too (only "
                               "`%s = :section` of this same file is followed)"
                               % (opt.value, opt.key))
                continue
            ordinal = self.counts[kind] = self.counts.get(kind, 0) + 1
            entry = _Entry(opt, kind, ordinal)
            try:
                why = self.context(opt)
                if why:
                    raise _Unconvertible(why)
                getattr(self, "_" + kind.replace("-", "_"))(entry)
            except _Unconvertible as e:
                self.error(opt, str(e))
                entry.list = None
            self.entries.append(entry)
        self.check_limits()

    def value(self, entry, command=False, text=None):
        value, warnings = _resolve(entry.opt, self.ctx, text, in_command=command)
        for w in warnings:
            self.warn(entry.opt, w)
        return value

    def _timer(self, entry, rb=False):
        value = self.value(entry)
        if " " not in value:
            raise _Unconvertible('expected "SIGNAL SECONDS"; uWSGI refuses this line too')
        sig, secs = value.split(" ", 1)
        entry.signal = _signal_number(sig)
        n = _seconds(secs, "period")
        if n <= 0:
            raise _Unconvertible("a period of %d s never fires in uWSGI" % n)
        entry.list = "rb_timers" if rb else "timers"
        entry.fields = [("every", _duration(n))]

    def _rbtimer(self, entry):
        self._timer(entry, rb=True)

    def _cron(self, entry, text=None, unique=False, legion=None):
        value = self.value(entry, command=True, text=text)
        fields, command = _cron_line(value)
        self._cron_entry(entry, fields, command, unique=unique, legion=legion,
                         harakiri=self.global_harakiri())

    def _unique_cron(self, entry):
        self._cron(entry, unique=True)

    def _legion_cron(self, entry, unique=False):
        value = self.value(entry, command=True)
        if " " not in value:
            raise _Unconvertible("expected the legion's name first; uWSGI refuses this line "
                                 "too")
        legion, rest = value.split(" ", 1)
        fields, command = _cron_line(rest)
        self._cron_entry(entry, fields, command, unique=unique, legion=legion,
                         harakiri=self.global_harakiri())

    def _unique_legion_cron(self, entry):
        self._legion_cron(entry, unique=True)

    def _cron2(self, entry):
        value = self.value(entry, command=True)
        space = value.find(" ")
        if space >= 0:
            if "=" in value[:space]:
                kv_text, command = value[:space], value[space + 1:]
                from_command = False
            else:
                kv_text, command = value, value
                from_command = True
        else:
            if "=" in value:
                raise _Unconvertible("options but no command; uWSGI refuses this line too")
            kv_text, command, from_command = None, value, False
        opts = _kvlist(kv_text) if kv_text is not None else {}
        known = ("minute", "hour", "day", "month", "week", "unique", "harakiri", "legion")
        if from_command:
            picked = [k for k in known if k in opts]
            if picked:
                raise _Unconvertible(
                    "uWSGI reads %s out of the command itself (its key=value list is parsed "
                    "from the whole line when the first word has no '='); put the options "
                    "first, before a space" % ", ".join("%s=%s" % (k, opts[k]) for k in picked))
            opts = {}
        else:
            for k in opts:
                if k not in known:
                    hint = " (did you mean week?)" if k in ("weekday", "wday", "dow") else ""
                    self.warn(entry.opt, "uWSGI ignores the unknown key %r%s; converted as "
                              "uWSGI runs it" % (k, hint))
        if not command.strip():
            raise _Unconvertible("no command (uWSGI would run an empty one)")
        fields = []
        for name, key in zip(("minute", "hour", "day", "month", "weekday"),
                             ("minute", "hour", "day", "month", "week")):
            if key in opts:
                n = _int(opts[key])
                if n is None:
                    raise _Unconvertible("%s=%s is not a whole number" % (key, opts[key]))
                fields.append(n)
            else:
                fields.append(-1)
        unique = False
        if "unique" in opts:
            n = _int(opts["unique"])
            if n is None:
                raise _Unconvertible("unique=%s is not a whole number" % opts["unique"])
            unique = n != 0
        if "harakiri" in opts:
            n = _int(opts["harakiri"])
            if n is None:
                raise _Unconvertible("harakiri=%s is not a whole number" % opts["harakiri"])
            harakiri = n if n > 0 else None   # 0 (or less) turns cron-harakiri off
        else:
            harakiri = self.global_harakiri()
        legion = opts.get("legion")
        if legion is not None and not legion:
            raise _Unconvertible("legion= is empty: uWSGI never runs it (no Lord of no legion)")
        self._cron_entry(entry, fields, command, unique=unique, legion=legion,
                         harakiri=harakiri)

    def global_harakiri(self):
        opt = self.settings.harakiri
        if opt is None:
            return None

        def check(value):
            n = _int(value)
            if n is None:
                raise _Unconvertible("%r is not a whole number of seconds" % value)
            return n
        n = self.setting(opt, check)
        return n if n and n > 0 else None

    def _cron_entry(self, entry, fields, command, unique, legion, harakiri):
        warnings = []
        fields = _check_fields(fields, warnings)
        for w in warnings:
            self.warn(entry.opt, w)
        entry.list = "cron"
        entry.fields = [("uwsgi", "[%s]" % ", ".join(str(v) for v in fields))]
        zone = self.time_zone()
        if zone:
            entry.fields.append(("tz", _q(zone)))
        entry.command = command
        entry.unique = unique
        entry.timeout = harakiri
        if harakiri:
            _duration(harakiri)
        entry.legion = legion
        if legion is not None and self.conninfo:
            entry.fields.append(("cluster", "true"))

    def _monitor(self, entry, events, without_signal):
        value = self.value(entry)
        if " " not in value:
            raise _Unconvertible('expected "PATH SIGNAL"; ' + without_signal)
        path, sig = value.split(" ", 1)
        entry.signal = _signal_number(sig)
        entry.list = "file_monitors"
        entry.fields = [("path", _q(self.absolute(path)))]
        if events:
            entry.fields.append(("events", "[%s]" % ", ".join(events)))

    def absolute(self, path):
        if path.startswith("/"):
            return path
        base = self.chdir()
        if base is None:
            raise _Unconvertible("the relative path %r depends on uWSGI's working directory; "
                                 "write it absolute (or set chdir)" % path)
        return posixpath.normpath(posixpath.join(base, path))

    def _fs_signal(self, entry):
        self._monitor(entry, FS_SIGNAL_EVENTS, "uWSGI skips this line (invalid syntax)")

    def _touch_signal(self, entry):
        self._monitor(entry, None, "uWSGI would raise signal 0 (the number it reads out of "
                      "the path)")

    def _touch_exec(self, entry):
        value = self.value(entry, command=True)
        if " " not in value:
            raise _Unconvertible('expected "PATH COMMAND" (uWSGI would run the path itself as '
                                 'the command)')
        path, command = value.split(" ", 1)
        if not command.strip():
            raise _Unconvertible("no command after the path")
        entry.list = "file_monitors"
        entry.fields = [("path", _q(self.absolute(path)))]
        entry.command = command

    def check_limits(self):
        for kind, name in (("timer", "timers"), ("rbtimer", "rb_timers")):
            done = [e for e in self.entries if e.kind == kind and e.list]
            for e in done[UWSGI_MAX_TIMERS:]:
                self.warn(e.opt, "uWSGI registers at most %d %s and ignored this one; tocsin "
                          "runs it" % (UWSGI_MAX_TIMERS, name))

    # -- output --------------------------------------------------------------------------------

    def allocate(self):
        # Every number the ini gives, even on a line not converted: fixing that line later
        # does not move the commands' numbers.
        used = set(e.signal for e in self.entries if e.signal is not None and e.command is None)
        free = [n for n in list(range(FIRST_ALLOCATED_SIGNAL, -1, -1))
                + list(range(255, FIRST_ALLOCATED_SIGNAL, -1)) if n not in used]
        for e in self.entries:
            if e.kind in ("cron", "unique-cron", "cron2", "legion-cron", "unique-legion-cron",
                          "touch-exec"):
                number = free.pop(0) if free else None
                if e.list and e.command is not None:
                    if number is None:
                        self.error(e.opt, "no free signal number left for its command")
                        e.list = None
                    else:
                        e.signal = number

    def exec_argv(self):
        unset, assign = self.environment()
        directory = self.chdir()
        argv = []
        if unset or assign or directory:
            argv.append(ENV_PROGRAM)
            argv.extend("--unset=" + k for k in unset)
            if directory:
                argv.append("--chdir=" + directory)
            argv.extend("%s=%s" % kv for kv in assign)
        argv.extend([self.shell(), "-c"])
        return argv

    def render(self, source_name, section):
        base = posixpath.basename(source_name) or source_name
        entries = [e for e in self.entries if e.list]
        commands = [e for e in entries if e.command is not None]
        subscribed = {}
        for e in entries:
            if e.command is None:
                subscribed.setdefault(e.signal, []).append(e)
        pending = [e for e in entries if e.legion is not None and not self.conninfo]
        prefix = self.exec_argv() if commands else []
        if commands:
            self.user_warnings()
        if subscribed and self.settings.targets:
            opt = self.settings.targets[0]
            self.warn(opt, "signals your code registered for mules, farms or the spooler need "
                      "target: subscriber:NAME or group:NAME in their table entry instead of "
                      "target: subscriber (docs/migrating-from-uwsgi.md)")

        out = _paragraph(
            "tocsin configuration imported from uWSGI's %s, section [%s], by `python3 -m tocsin "
            "import-uwsgi`. Check it with tocsind --check --config FILE. Each entry names the "
            "ini line it comes from; docs/migrating-from-uwsgi.md says what differs."
            % (source_name, section))
        if subscribed:
            out += ["#"] + _paragraph(
                "Signals %s are raised by timers and file monitors and go to one subscriber "
                "(`target: subscriber`): uWSGI's default target, \"worker\", is the first "
                "available worker. The Python code that handled them in uWSGI (register_signal, "
                "the decorators) registers its handler at run time through tocsin.uwsgi or "
                "tocsin.uwsgidecorators; these entries are what lets the events reach it "
                "meanwhile. If it used another target (workers, mule1, farm_x, spooler), change "
                "the entry." % ", ".join(str(n) for n in sorted(subscribed)))
        if commands:
            text = ("Commands run as uWSGI ran them, through %s -c, each on a signal of its own "
                    "allocated from %d downward (numbers the ini uses are skipped). A unique cron "
                    "skips a slot while its previous run is going (overlap: skip); the others "
                    "start a run at every slot, at most %d at once (uWSGI has no bound). "
                    "cron-harakiri and harakiri= are timeouts."
                    % (self.shell(), FIRST_ALLOCATED_SIGNAL, NON_UNIQUE_CONCURRENCY))
            if [e for e in commands if e.list == "cron"] and not self.time_zone():
                text += (" The crons fire in tocsind's local time zone, uWSGI's fired in its "
                         "own: add tz: if they differ.")
            out += ["#"] + _paragraph(text)
        if pending:
            out += ["#"] + _paragraph(
                "NOT ACTIVE: a legion cron runs on one node only, which in tocsin is "
                "`cluster: true`; that needs the pgnotify plugin (docs/cluster.md). Add") + [
                "#   plugins:",
                "#     pgnotify: {conninfo: \"host=... dbname=... user=...\"}"] + _paragraph(
                "and uncomment the entries marked NOT ACTIVE, or import again with "
                "--pgnotify-conninfo CONNINFO.")
        out.append("")
        if self.conninfo and [e for e in entries if e.legion is not None]:
            out += ["plugins:",
                    "  # cluster: true (the legion crons) claims each slot in this Postgres",
                    "  pgnotify: {conninfo: %s}" % _q(self.conninfo)]

        out.append("signals:" if subscribed or commands else "signals: {}")
        for number in sorted(subscribed):
            out.append("  %d:" % number)
            out.append("    # raised by %s" % ", ".join(
                "%s:%d (%s)" % (_comment(base), e.opt.line, e.opt.key) for e in subscribed[number]))
            out.append("    handlers: [{target: subscriber}]")
        for e in commands:  # in ini order
            out.append("  %d:" % e.signal)
            out.append("    name: %s" % e.id)
            out.append("    description: %s" % _q("%s:%d: %s" % (base, e.opt.line, e.opt.raw)))
            out.append("    handlers:")
            out.append("      - exec: [%s]" % ", ".join(_q(a) for a in prefix + [e.command]))
            if e.timeout:
                out.append("        timeout: %s" % _duration(e.timeout))
            if e.unique:
                out.append("        overlap: skip")
            else:
                out.append("        concurrency: %d" % NON_UNIQUE_CONCURRENCY)

        for name in ("timers", "rb_timers", "file_monitors", "cron"):
            items = [e for e in entries if e.list == name]
            if not items:
                continue
            active = [e for e in items if e not in pending]
            out.append("%s:%s" % (name, "" if active else " []"))
            for e in items:
                out.append("  # %s" % self.origin(base, e))
                line = "- {%s}" % ", ".join(
                    "%s: %s" % kv for kv in [("id", e.id), ("signal", e.id if e.command is not None
                                                            else str(e.signal))] + e.fields)
                if e in pending:
                    out.append("  # NOT ACTIVE until the pgnotify plugin is configured (legion "
                               "%s):" % _comment(e.legion))
                    out.append("  # " + line[:-1] + ", cluster: true}")
                else:
                    out.append("  " + line)
        return "\n".join(out) + "\n"

    def origin(self, base, e):
        text = "%s:%d: %s" % (base, e.opt.line, e.opt.raw)
        if e.opt.loop:
            text += "  (%s at line %d: _ = %s)" % (e.opt.loop[1], e.opt.loop[0], e.opt.loop[2])
        return _comment(text)

    def user_warnings(self):
        for opt in self.settings.user:
            who = "root (master-as-root)" if self.settings.master_as_root else \
                "%s %s" % (opt.key, opt.value)
            self.warn(opt, "uWSGI ran the cron and touch commands as %s; tocsind runs exec "
                      "handlers as its own user: run tocsind as that user or wrap the commands "
                      "(setpriv, runuser)" % who)
            break

    def finish_pending(self):
        if self.conninfo:
            return
        for e in self.entries:
            if e.list and e.legion is not None:
                self.error(e.opt, "legion %s: written commented out: its tocsin equivalent, "
                           "cluster: true, needs the pgnotify plugin (re-run with "
                           "--pgnotify-conninfo CONNINFO, or add plugins: pgnotify and "
                           "uncomment it)" % e.legion)


def _zone_problem(name):
    """None when ``name`` is a time zone this system knows; else why not."""
    if not name or name.startswith("/") or ".." in name.split("/"):
        return "%r is not an IANA zone name" % name
    try:
        import zoneinfo
    except ImportError:  # Python 3.8: trust it
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "this system knows no time zone %r (tocsind would refuse it)" % name
    return None


# ---------------------------------------------------------------------------------------------
# YAML text


def _escape(s):
    out = []
    for ch in s:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or 0x7f <= code <= 0x9f or ch in "\u2028\u2029\ufeff" or \
                0xd800 <= code <= 0xdfff:
            out.append("\\u%04x" % code)
        else:
            out.append(ch)
    return "".join(out)


def _q(s):
    """A YAML double-quoted scalar: exactly ``s`` once read back."""
    return '"%s"' % _escape(s)


def _paragraph(text, width=96):
    """``text`` as YAML comment lines."""
    return ["# " + line for line in textwrap.wrap(_comment(text), width - 2,
                                                   break_on_hyphens=False, break_long_words=False)]


def _comment(s):
    """Text for a YAML comment: one line, control characters escaped."""
    return "".join(ch if ch.isprintable() or ch == " " else
                   json.dumps(ch)[1:-1] for ch in s)


# ---------------------------------------------------------------------------------------------
# Entry points


def convert(ini_text, *, source_name="uwsgi.ini", path=None, section="uwsgi", tz=None,
            pgnotify_conninfo=None):
    """Converts the signal options of ``ini_text`` (the ini's text) into tocsin YAML.

    ``source_name`` names the file in comments and problems; ``path`` is its path, used for
    the magic variables that come from it (``%d``, ``%n``...; without it they are reported);
    ``section`` is the section uWSGI would read; ``tz`` an IANA zone for the cron entries
    (default: ``env = TZ=...`` of the ini, else tocsind's local zone); ``pgnotify_conninfo``
    makes legion crons live ``cluster: true`` jobs with a ``plugins: pgnotify`` block.
    Returns a Result (``yaml_text``, ``problems``, ``ok``)."""
    if tz:
        problem = _zone_problem(tz)
        if problem:
            raise ValueError("tz: " + problem)
    magic = _magic_table(path, section if section != "uwsgi" else "")
    lines = _expand_magic(ini_text, magic)
    raw_lines = ini_text.split("\n")
    problems = []
    options, found = _read_section(lines, raw_lines, section, problems)
    conv = _Converter(options, _Context(options, magic), tz, pgnotify_conninfo)
    conv.problems.extend(problems)
    if not found:
        conv.problems.append(Problem(None, "error", "there is no section [%s] in this file "
                                     "(uWSGI would read nothing from it)" % section))
    conv.convert_all()
    conv.allocate()
    conv.finish_pending()
    yaml_text = conv.render(source_name, section)
    if found and not conv.entries:
        conv.problems.append(Problem(None, "warning", "no uWSGI signal options (timer, rbtimer, "
                                     "cron, cron2, fs-signal, touch-signal, ...) in [%s]"
                                     % section))
    conv.problems.sort(key=lambda p: (p.line or 0))
    return Result(yaml_text, conv.problems)


def add_arguments(parser):
    """The command line of ``import-uwsgi`` (argparse)."""
    parser.add_argument("ini", metavar="FILE.ini",
                        help="the uWSGI ini file (FILE.ini:SECTION reads that section, as "
                             "uwsgi --ini does)")
    parser.add_argument("-o", "--output", metavar="OUT.yaml",
                        help="write the YAML there (default: standard output)")
    parser.add_argument("--section", help="the ini section to read (default: uwsgi)")
    parser.add_argument("--tz", metavar="ZONE",
                        help="IANA time zone for the cron entries (default: env = TZ=... of the "
                             "ini, else tocsind's local zone, as uWSGI used its own)")
    parser.add_argument("--pgnotify-conninfo", metavar="CONNINFO",
                        help="libpq connection string for tocsin's cluster jobs: legion crons "
                             "become cluster: true with a plugins: pgnotify block (without it "
                             "they are written commented out and the exit status is 1)")


def run(args):
    """Runs ``import-uwsgi`` with parsed ``args``; returns the exit status."""
    path, section = args.ini, args.section
    if not os.path.exists(path) and ":" in path:
        path, _, spec = path.rpartition(":")
        section = section or spec
    section = section or "uwsgi"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        print("import-uwsgi: cannot read %s: %s" % (path, e.strerror or e), file=sys.stderr)
        return 2
    text = data.decode("utf-8", "surrogateescape")
    try:
        result = convert(text, source_name=path, path=path, section=section, tz=args.tz,
                         pgnotify_conninfo=args.pgnotify_conninfo)
    except ValueError as e:
        print("import-uwsgi: %s" % e, file=sys.stderr)
        return 2
    for p in result.problems:
        print(p.format(path), file=sys.stderr)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(result.yaml_text)
        except OSError as e:
            print("import-uwsgi: cannot write %s: %s" % (args.output, e.strerror or e),
                  file=sys.stderr)
            return 2
    else:
        sys.stdout.write(result.yaml_text)
        sys.stdout.flush()
    if result.errors:
        print("import-uwsgi: %d option(s) of %s not converted (listed above); the YAML holds "
              "the rest" % (len(result.errors), path), file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    """``import-uwsgi`` on its own (``python3 -m tocsin import-uwsgi`` goes through
    tocsin.__main__)."""
    from .__main__ import main as dispatch
    return dispatch(["import-uwsgi"] + list(sys.argv[1:] if argv is None else argv))

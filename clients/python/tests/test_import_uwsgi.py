"""`python3 -m tocsin import-uwsgi`: uWSGI's signal options (ini) into tocsin YAML.

Every YAML produced here goes through the real daemon's `tocsind --check` ($TOCSIND, see
tocsind_fixture; skipped with a message when there is no binary). The ini files follow the
examples of uWSGI's documentation (Cron.rst, Signals.rst); the expectations follow uWSGI's
source (core/cron.c, core/master.c, core/fsmon.c, core/ini.c, core/config.c)."""

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

from tocsind_fixture import PKG, Daemon, tocsind_path, wait_until

import tocsin
from tocsin import uwsgi_import
from tocsin.uwsgi_import import convert


def _binary():
    try:
        path = tocsind_path()
    except RuntimeError as e:
        return None, str(e)
    if not os.access(path, os.X_OK):
        return None, "%s is not an executable tocsind" % path
    return path, None


TOCSIND, WHY_NO_TOCSIND = _binary()


def _plugin_dir():
    """Where pgnotify.so is: $TOCSIN_PLUGIN_DIR, else plugins/ next to the daemon (a build
    directory's layout), else None."""
    candidates = [os.environ.get("TOCSIN_PLUGIN_DIR")]
    if TOCSIND:
        candidates.append(os.path.join(os.path.dirname(TOCSIND), "plugins"))
    for d in candidates:
        if d and os.path.exists(os.path.join(d, "pgnotify.so")):
            return d
    return None


def header(result):
    """The YAML's leading comment, as one line of text."""
    lines = []
    for line in result.yaml_text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return " ".join(lines)


def ini(text):
    return textwrap.dedent(text).lstrip("\n")


class ImportTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tocsin-import-")
        self.addCleanup(self._tmp.cleanup)
        self.dir = self._tmp.name

    def check(self, yaml_text, plugin_path=None):
        """tocsind --check on the YAML; fails the test with the daemon's errors."""
        if TOCSIND is None:
            self.skipTest("no tocsind to check the YAML with: " + WHY_NO_TOCSIND)
        path = os.path.join(self.dir, "imported-%d.yaml" % len(os.listdir(self.dir)))
        with open(path, "w", encoding="utf-8") as f:
            if plugin_path:
                f.write("plugin_path: [%s]\n" % plugin_path)
            f.write(yaml_text)
        proc = subprocess.run([TOCSIND, "--check", "--config", path], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True)
        self.assertEqual(proc.returncode, 0, "tocsind --check refused the YAML:\n%s\n%s"
                         % (proc.stdout, yaml_text))

    def imported(self, text, **kw):
        """convert() on the ini text, and the YAML checked by the daemon."""
        kw.setdefault("source_name", "uwsgi.ini")
        result = convert(ini(text), **kw)
        self.check(result.yaml_text)
        return result

    def assertClean(self, result):
        self.assertEqual(result.problems, [], "\n".join(p.format("uwsgi.ini")
                                                      for p in result.problems))

    def assertProblem(self, result, line, severity, *fragments):
        for p in result.problems:
            if p.line == line and p.severity == severity and all(f in p.message
                                                                  for f in fragments):
                return p
        self.fail("no %s at line %s with %r among:\n%s" % (
            severity, line, fragments, "\n".join(p.format("uwsgi.ini") for p in result.problems)))

    def assertLines(self, result, *lines):
        text = result.yaml_text.splitlines()
        for line in lines:
            self.assertIn(line, text, result.yaml_text)


class Timers(ImportTestCase):
    def test_timers_and_rb_timers_with_their_aliases_and_repeated_keys(self):
        r = self.imported("""
            [uwsgi]
            master = true
            timer = 26 2
            signal-timer = 26 3600
            timer = 27 90
            rbtimer = 30 40
            signal-rbtimer = 31 86400
            """)
        self.assertClean(r)
        self.assertLines(
            r,
            "timers:",
            "  # uwsgi.ini:3: timer = 26 2",
            "  - {id: uwsgi-timer-1, signal: 26, every: 2s}",
            "  # uwsgi.ini:4: signal-timer = 26 3600",
            "  - {id: uwsgi-timer-2, signal: 26, every: 1h}",
            "  - {id: uwsgi-timer-3, signal: 27, every: 1m30s}",
            "rb_timers:",
            "  - {id: uwsgi-rbtimer-1, signal: 30, every: 40s}",
            "  - {id: uwsgi-rbtimer-2, signal: 31, every: 24h}",
            # one table entry per signal, one-of delivery (uWSGI's default target "worker")
            "  26:",
            "    # raised by uwsgi.ini:3 (timer), uwsgi.ini:4 (signal-timer)",
            "    handlers: [{target: subscriber}]",
            "  30:", "  31:")
        self.assertEqual(r.yaml_text.count("  26:"), 1)

    def test_bad_timers_are_reported_with_their_line(self):
        r = self.imported("""
            [uwsgi]
            timer = 17
            timer = 17 0
            timer = 300 5
            timer = x 5
            rbtimer = 17 5s
            timer = 18 5
            """)
        self.assertProblem(r, 2, "error", '"SIGNAL SECONDS"', "uWSGI refuses")
        self.assertProblem(r, 3, "error", "never fires")
        self.assertProblem(r, 4, "error", "300", "0-255")
        self.assertProblem(r, 5, "error", "'x'")
        self.assertProblem(r, 6, "error", "'5s'", "whole number of seconds")
        self.assertEqual(len(r.errors), 5)
        # the good one is converted, and keeps the id of its position
        self.assertLines(r, "  - {id: uwsgi-timer-5, signal: 18, every: 5s}")
        self.assertNotIn("uwsgi-timer-1,", r.yaml_text)

    def test_more_than_64_timers_is_a_warning_uwsgi_ignored_them(self):
        lines = "\n".join("timer = %d 10" % (i % 200) for i in range(65))
        r = self.imported("[uwsgi]\n" + lines + "\n")
        self.assertEqual(len(r.errors), 0)
        self.assertProblem(r, 66, "warning", "at most 64")


class Crons(ImportTestCase):
    def test_the_documented_cron_lines_run_their_commands_through_the_shell(self):
        # Cron.rst, "Option-based cron"
        r = self.imported("""
            [uwsgi]
            cron = 59 2 -1 -1 -1 /usr/bin/backup_my_home --recursive
            cron = 9 11 -1 -1 2 /opt/dem/bin/send_reminders
            ; every two hours
            cron = 0 -2 -1 -1 -1 /usr/bin/backup_my_home --recursive
            """)
        self.assertClean(r)
        self.assertLines(
            r,
            "cron:",
            "  # uwsgi.ini:2: cron = 59 2 -1 -1 -1 /usr/bin/backup_my_home --recursive",
            "  - {id: uwsgi-cron-1, signal: uwsgi-cron-1, uwsgi: [59, 2, -1, -1, -1]}",
            "  - {id: uwsgi-cron-2, signal: uwsgi-cron-2, uwsgi: [9, 11, -1, -1, 2]}",
            # -N keeps uWSGI's meaning (divisible by N) in the uwsgi: form, not */N
            "  - {id: uwsgi-cron-3, signal: uwsgi-cron-3, uwsgi: [0, -2, -1, -1, -1]}",
            "  199:",
            "    name: uwsgi-cron-1",
            '      - exec: ["/bin/sh", "-c", "/usr/bin/backup_my_home --recursive"]',
            "        concurrency: %d" % uwsgi_import.NON_UNIQUE_CONCURRENCY,
            "  198:",
            "    name: uwsgi-cron-2",
            "  197:",
            "    name: uwsgi-cron-3")

    def test_allocated_signals_skip_the_numbers_the_ini_uses(self):
        r = self.imported("""
            [uwsgi]
            timer = 199 10
            rbtimer = 197 10
            cron = 0 0 -1 -1 -1 a
            cron = 0 0 -1 -1 -1 b
            """)
        self.assertClean(r)
        self.assertLines(r, "  198:", "    name: uwsgi-cron-1", "  196:", "    name: uwsgi-cron-2")

    def test_unique_cron_skips_a_slot_while_the_previous_run_is_going(self):
        r = self.imported("""
            [uwsgi]
            unique-cron = -1 -1 -1 -1 -1 sleep 70
            """)
        self.assertClean(r)
        self.assertLines(r,
                         "  - {id: uwsgi-unique-cron-1, signal: uwsgi-unique-cron-1, "
                         "uwsgi: [-1, -1, -1, -1, -1]}",
                         '      - exec: ["/bin/sh", "-c", "sleep 70"]',
                         "        overlap: skip")
        self.assertNotIn("concurrency", r.yaml_text)

    def test_cron_harakiri_is_global_the_last_one_wins_wherever_it_is(self):
        # uWSGI reads cron_harakiri when a cron starts, so a later line applies to earlier crons
        r = self.imported("""
            [uwsgi]
            cron-harakiri = 5
            cron = 0 0 -1 -1 -1 a
            unique-cron = 0 0 -1 -1 -1 b
            cron2 = hour=1 c
            cron2 = harakiri=0 my command
            cron2 = harakiri=30 my second command
            cron-harakiri = 90
            """)
        self.assertClean(r)
        text = r.yaml_text
        self.assertEqual(text.count("        timeout: 1m30s"), 3, text)  # a, b, c
        self.assertEqual(text.count("        timeout: 30s"), 1, text)
        self.assertEqual(text.count("timeout:"), 4, text)  # harakiri=0: none for "my command"
        block = text[text.index('"/bin/sh", "-c", "my command"'):]
        self.assertFalse(block.splitlines()[1].strip().startswith("timeout"), block)

    def test_cron2_keys_and_defaults(self):
        # Cron.rst, "New syntax for cron options"
        r = self.imported("""
            [uwsgi]
            cron2 = minute=-2,unique=1 sleep 130
            cron2 = my command
            cron2 = minute=30,hour=5,unique=1 /usr/local/bin/backup.sh
            cron2 = minute=0,hour=9,day=1,month=-3,week=1 /bin/report quarterly
            cron2 = unique=0,minute=7 echo a,b
            """)
        self.assertClean(r)
        self.assertLines(
            r,
            "  - {id: uwsgi-cron2-1, signal: uwsgi-cron2-1, uwsgi: [-2, -1, -1, -1, -1]}",
            "  - {id: uwsgi-cron2-2, signal: uwsgi-cron2-2, uwsgi: [-1, -1, -1, -1, -1]}",
            "  - {id: uwsgi-cron2-3, signal: uwsgi-cron2-3, uwsgi: [30, 5, -1, -1, -1]}",
            "  - {id: uwsgi-cron2-4, signal: uwsgi-cron2-4, uwsgi: [0, 9, 1, -3, 1]}",
            "  - {id: uwsgi-cron2-5, signal: uwsgi-cron2-5, uwsgi: [7, -1, -1, -1, -1]}",
            '      - exec: ["/bin/sh", "-c", "sleep 130"]',
            '      - exec: ["/bin/sh", "-c", "my command"]',
            '      - exec: ["/bin/sh", "-c", "/bin/report quarterly"]',
            '      - exec: ["/bin/sh", "-c", "echo a,b"]')
        self.assertEqual(r.yaml_text.count("        overlap: skip"), 2)

    def test_cron2_oddities_of_uwsgis_parser(self):
        r = self.imported("""
            [uwsgi]
            cron2 = minute=5
            cron2 = /usr/bin/job a,hour=3
            cron2 = weekday=1,minute=0 job
            cron2 = minute=x job
            cron2 = legion= job
            """)
        self.assertProblem(r, 2, "error", "no command", "uWSGI refuses")
        # uWSGI parses the whole line as the key=value list when the first word has no '='
        self.assertProblem(r, 3, "error", "hour=3", "out of the command")
        # unknown keys are ignored by uWSGI: converted as it ran (every day), with a warning
        self.assertProblem(r, 4, "warning", "'weekday'", "did you mean week")
        self.assertLines(r, "  - {id: uwsgi-cron2-3, signal: uwsgi-cron2-3, "
                            "uwsgi: [0, -1, -1, -1, -1]}")
        self.assertProblem(r, 5, "error", "minute=x")
        self.assertProblem(r, 6, "error", "legion= is empty")

    def test_crontab_syntax_is_refused_as_uwsgi_refuses_it(self):
        r = self.imported("""
            [uwsgi]
            cron = */5 * * * * /bin/true
            cron = 0 6-13 -1 -1 1-5 ./bin/cron_job.sh
            cron = 0 0 -1 -1 -1
            cron = sleep 30
            """)
        self.assertProblem(r, 2, "error", "no `*`", "uWSGI refuses this line too")
        # sscanf reads "6-13" as 6 then -13: say what uWSGI would really do
        self.assertProblem(r, 3, "error", "uWSGI reads it as 0 6 -13 -1 -1",
                           "'1-5 ./bin/cron_job.sh'")
        self.assertProblem(r, 4, "error", "no command")
        self.assertProblem(r, 5, "error", "uWSGI refuses this line too")  # Cron.rst's example
        self.assertNotIn("cron:", r.yaml_text)
        self.assertIn("signals: {}", r.yaml_text)

    def test_fields_uwsgi_never_matches(self):
        r = self.imported("""
            [uwsgi]
            cron = 60 0 -1 -1 -1 a
            cron = 0 0 0 -1 -1 b
            cron = 0 0 31 2 -1 c
            cron = 0 0 -1 -13 -1 d
            cron = -61 -25 -1 -1 -8 e
            cron = 0 0 31 2 3 f
            cron = 0 0 -1 -1 7 g
            """)
        self.assertProblem(r, 2, "error", "minute 60", "never")
        self.assertProblem(r, 3, "error", "day 0", "never")
        self.assertProblem(r, 4, "error", "day 31 never comes in month 2")
        self.assertProblem(r, 5, "error", "month -13", "never")
        # -N beyond the field's size matches only 0 in uWSGI: written as 0
        self.assertProblem(r, 6, "warning", "minute -61", "written as 0")
        self.assertProblem(r, 6, "warning", "hour -25")
        self.assertProblem(r, 6, "warning", "weekday -8")
        self.assertLines(r,
                         "  - {id: uwsgi-cron-5, signal: uwsgi-cron-5, uwsgi: [0, 0, -1, -1, 0]}",
                         # day and weekday both values: ORed, so Wednesdays in February
                         "  - {id: uwsgi-cron-6, signal: uwsgi-cron-6, uwsgi: [0, 0, 31, 2, 3]}",
                         "  - {id: uwsgi-cron-7, signal: uwsgi-cron-7, uwsgi: [0, 0, -1, -1, 7]}")
        self.assertEqual(len(r.errors), 4)


class LegionCrons(ImportTestCase):
    LEGION = """
        [uwsgi]
        legion = mycluster 225.1.1.1:1717 100 bf-cbc:hello
        legion-node = mycluster 225.1.1.1:1717
        ; every two hours
        legion-cron = mycluster 0 -2 -1 -1 -1 /usr/bin/backup_my_home --recursive
        cron-legion = mycluster 30 3 -1 -1 -1 /usr/bin/vacuum
        unique-legion-cron = mycluster -1 -1 -1 -1 -1 sleep 70
        unique-cron-legion = mycluster 0 0 1 -1 -1 /usr/bin/monthly
        cron2 = minute=-10,legion=mycluster my command
        cron = 0 4 -1 -1 -1 /usr/bin/local-only
        """

    def test_without_the_plugin_they_are_written_commented_out_and_reported(self):
        r = self.imported(self.LEGION)
        for line in (5, 6, 7, 8, 9):
            self.assertProblem(r, line, "error", "mycluster", "pgnotify", "--pgnotify-conninfo")
        self.assertEqual(len(r.errors), 5)
        live = [line for line in r.yaml_text.splitlines() if line.startswith("  - {")]
        self.assertFalse([line for line in live if "cluster" in line], r.yaml_text)
        self.assertNotIn("\nplugins:", r.yaml_text)
        self.assertLines(
            r,
            "  # NOT ACTIVE until the pgnotify plugin is configured (legion mycluster):",
            "  # - {id: uwsgi-legion-cron-1, signal: uwsgi-legion-cron-1, "
            "uwsgi: [0, -2, -1, -1, -1], cluster: true}",
            "  # - {id: uwsgi-legion-cron-2, signal: uwsgi-legion-cron-2, "
            "uwsgi: [30, 3, -1, -1, -1], cluster: true}",
            "  # - {id: uwsgi-unique-legion-cron-1, signal: uwsgi-unique-legion-cron-1, "
            "uwsgi: [-1, -1, -1, -1, -1], cluster: true}",
            "  # - {id: uwsgi-cron2-1, signal: uwsgi-cron2-1, uwsgi: [-10, -1, -1, -1, -1], "
            "cluster: true}",
            # the node-local cron is live
            "  - {id: uwsgi-cron-1, signal: uwsgi-cron-1, uwsgi: [0, 4, -1, -1, -1]}")

    def test_only_legion_crons_give_an_empty_but_valid_list(self):
        r = self.imported("""
            [uwsgi]
            legion-cron = mycluster 0 -2 -1 -1 -1 /usr/bin/backup
            """)
        self.assertLines(r, "cron: []")
        self.assertEqual(len(r.errors), 1)

    def test_with_a_conninfo_they_are_cluster_jobs(self):
        result = convert(ini(self.LEGION), source_name="uwsgi.ini",
                         pgnotify_conninfo="host=db.internal dbname=ops user=tocsin")
        self.assertClean(result)
        self.assertLines(
            result,
            "plugins:",
            '  pgnotify: {conninfo: "host=db.internal dbname=ops user=tocsin"}',
            "  - {id: uwsgi-legion-cron-1, signal: uwsgi-legion-cron-1, "
            "uwsgi: [0, -2, -1, -1, -1], cluster: true}",
            "  - {id: uwsgi-cron2-1, signal: uwsgi-cron2-1, uwsgi: [-10, -1, -1, -1, -1], "
            "cluster: true}",
            "  - {id: uwsgi-cron-1, signal: uwsgi-cron-1, uwsgi: [0, 4, -1, -1, -1]}")
        self.assertEqual(result.yaml_text.count("        overlap: skip"), 2)  # the unique ones
        plugins = _plugin_dir()
        if plugins is None:
            self.skipTest("no pgnotify.so to check the cluster YAML with (set "
                          "TOCSIN_PLUGIN_DIR, or use a TOCSIND with plugins/ next to it)")
        self.check(result.yaml_text, plugin_path=plugins)

    def test_a_legion_cron_without_a_legion_name(self):
        r = self.imported("""
            [uwsgi]
            legion-cron = 0
            """)
        self.assertProblem(r, 2, "error", "legion's name first")


class FileSignals(ImportTestCase):
    def test_fs_signal_watches_what_uwsgis_inotify_mask_watches(self):
        r = self.imported("""
            [uwsgi]
            fs-signal = /etc/mysite/settings.ini 17
            fs-signal = /var/spool/mysite 18
            """)
        self.assertClean(r)
        self.assertLines(
            r,
            "file_monitors:",
            "  # uwsgi.ini:2: fs-signal = /etc/mysite/settings.ini 17",
            '  - {id: uwsgi-fs-signal-1, signal: 17, path: "/etc/mysite/settings.ini", '
            "events: [create, modify, delete, move, attrib]}",
            '  - {id: uwsgi-fs-signal-2, signal: 18, path: "/var/spool/mysite", '
            "events: [create, modify, delete, move, attrib]}",
            "  17:", "  18:")

    def test_touch_signal_is_a_monitor_on_every_event(self):
        r = self.imported("""
            [uwsgi]
            touch-signal = /tmp/reload-cache 20
            touch-signal = /tmp/reload-cache 21
            """)
        self.assertClean(r)
        self.assertLines(
            r,
            '  - {id: uwsgi-touch-signal-1, signal: 20, path: "/tmp/reload-cache"}',
            '  - {id: uwsgi-touch-signal-2, signal: 21, path: "/tmp/reload-cache"}')

    def test_touch_exec_runs_its_command(self):
        r = self.imported("""
            [uwsgi]
            touch-exec = /tmp/deploy.flag /usr/bin/notify deployed
            """)
        self.assertClean(r)
        self.assertLines(
            r,
            '  - {id: uwsgi-touch-exec-1, signal: uwsgi-touch-exec-1, path: "/tmp/deploy.flag"}',
            "    name: uwsgi-touch-exec-1",
            '      - exec: ["/bin/sh", "-c", "/usr/bin/notify deployed"]')

    def test_relative_paths_come_from_chdir(self):
        r = self.imported("""
            [uwsgi]
            chdir = /srv/mysite
            touch-signal = tmp/reload.txt 20
            fs-signal = ./conf 21
            """)
        self.assertClean(r)
        self.assertLines(r, '  - {id: uwsgi-touch-signal-1, signal: 20, '
                            'path: "/srv/mysite/tmp/reload.txt"}',
                         '  - {id: uwsgi-fs-signal-1, signal: 21, path: "/srv/mysite/conf", '
                         'events: [create, modify, delete, move, attrib]}')
        r = self.imported("""
            [uwsgi]
            touch-signal = tmp/reload.txt 20
            """)
        self.assertProblem(r, 2, "error", "relative path", "working directory")

    def test_a_monitor_without_its_signal(self):
        r = self.imported("""
            [uwsgi]
            fs-signal = /tmp
            touch-signal = /tmp/flag
            touch-exec = /tmp/flag
            """)
        self.assertProblem(r, 2, "error", '"PATH SIGNAL"', "skips")
        self.assertProblem(r, 3, "error", '"PATH SIGNAL"', "signal 0")
        self.assertProblem(r, 4, "error", '"PATH COMMAND"')
        self.assertIn("signals: {}", r.yaml_text)


class IniReading(ImportTestCase):
    def test_sections_comments_and_values_as_uwsgi_reads_them(self):
        r = self.imported("""
            # a comment
            timer = 1 1
            [uwsgi]
            ; uWSGI has no inline comments: a ';' in a value is part of it
            cron = 0 0 -1 -1 -1 cd /tmp; ls   # not a comment either
              timer   =   17    5
            module = mysite.wsgi
            http = :8080
            processes = 4
            master
            [production]
            timer = 2 2
            [uwsgi]
            timer = 18 6
            """)
        self.assertClean(r)  # http, module, processes... ignored without a word
        self.assertLines(
            r,
            '      - exec: ["/bin/sh", "-c", "cd /tmp; ls   # not a comment either"]',
            "  - {id: uwsgi-timer-1, signal: 17, every: 5s}",
            "  - {id: uwsgi-timer-2, signal: 18, every: 6s}")
        self.assertNotIn("signal: 1,", r.yaml_text)
        self.assertNotIn("signal: 2,", r.yaml_text)

    def test_another_section(self):
        text = """
            [uwsgi]
            timer = 1 1
            [production]
            timer = 2 2
            """
        r = self.imported(text, section="production")
        self.assertClean(r)
        self.assertLines(r, "  - {id: uwsgi-timer-1, signal: 2, every: 2s}")
        r = self.imported(text, section="staging")
        self.assertProblem(r, None, "error", "no section [staging]")

    def test_magic_variables(self):
        path = os.path.join(self.dir, "mysite.ini")
        r = self.imported("""
            [uwsgi]
            fs-signal = %dconf/%n.conf 17
            cron = 0 0 -1 -1 -1 tar czf /backup/$(date +%%F).tgz %d
            cron = 0 0 -1 -1 -1 date +%Y
            timer = %k 5
            """, path=path)
        real = os.path.realpath(self.dir) + "/"
        self.assertLines(
            r, '  - {id: uwsgi-fs-signal-1, signal: 17, path: "%sconf/mysite.conf", '
               'events: [create, modify, delete, move, attrib]}' % real,
            '      - exec: ["/bin/sh", "-c", "tar czf /backup/$(date +%%F).tgz %s"]' % real,
            # uWSGI replaces an undefined %Y with nothing: converted as it ran, with a warning
            '      - exec: ["/bin/sh", "-c", "date +"]')
        self.assertProblem(r, 3, "warning", "%d in the command")
        self.assertProblem(r, 4, "warning", "%Y with nothing", "%%")
        self.assertProblem(r, 5, "error", "%k", "CPU cores")
        self.assertEqual(len(r.errors), 1)

    def test_without_a_path_the_file_magic_is_reported(self):
        r = self.imported("""
            [uwsgi]
            fs-signal = %dconf 17
            """)
        self.assertProblem(r, 2, "error", "%d", "path")

    def test_a_percent_at_the_end_of_a_line_joins_it_with_the_next_as_in_uwsgi(self):
        r = self.imported("[uwsgi]\ncron = 0 0 -1 -1 -1 echo a%\nb\ntimer = 17 5\n")
        self.assertLines(r, '      - exec: ["/bin/sh", "-c", "echo ab"]',
                         "  # uwsgi.ini:4: timer = 17 5")  # later lines keep their numbers

    def test_placeholders(self):
        r = self.imported("""
            [uwsgi]
            project = mysite
            base = /srv/%(project)
            set-ph = cache_signal=17
            set = timer=18 60
            fs-signal = %(base)/settings.ini %(cache_signal)
            cron = 0 3 -1 -1 -1 %(base)/bin/backup
            timer = %(undefined) 5
            timer = %(project 1 +) 5
            """)
        self.assertLines(
            r,
            '  - {id: uwsgi-fs-signal-1, signal: 17, path: "/srv/mysite/settings.ini", '
            'events: [create, modify, delete, move, attrib]}',
            '      - exec: ["/bin/sh", "-c", "/srv/mysite/bin/backup"]',
            # `set = timer=...` is the option itself
            "  - {id: uwsgi-timer-1, signal: 18, every: 1m}")
        self.assertProblem(r, 8, "error", "%(undefined)")
        self.assertProblem(r, 9, "error", "arithmetic")
        self.assertEqual(len(r.errors), 2)

    def test_environment_references(self):
        r = self.imported("""
            [uwsgi]
            timer = $(SIGNAL) 5
            cron = 0 0 -1 -1 -1 echo $(DATABASE_URL)
            cron = 0 0 -1 -1 -1 echo $(hostname) $(date +%%F)
            cron = 0 0 -1 -1 -1 echo $(date -u)
            cron = 0 0 -1 -1 -1 cat @(/etc/motd)
            """)
        self.assertProblem(r, 2, "error", "$(SIGNAL)", "environment variable")
        self.assertProblem(r, 3, "error", "$(DATABASE_URL)")
        # lower case in a command: kept for the shell, with a warning
        self.assertProblem(r, 4, "warning", "$(hostname)", "shell")
        self.assertLines(r, '      - exec: ["/bin/sh", "-c", "echo $(hostname) $(date +%F)"]')
        # uWSGI reads $(date -u) as the variable "date " with the default "u"
        self.assertProblem(r, 5, "error", "$(date -u)", "default")
        self.assertProblem(r, 6, "error", "@(/etc/motd)", "file")
        self.assertEqual(len(r.errors), 4)

    def test_for_blocks_are_expanded_if_blocks_are_reported(self):
        r = self.imported("""
            [uwsgi]
            for = 50 51
            timer = %(_) 7
            endfor =
            for-times = 2
            rbtimer = 6%(_) 60
            endfor =
            if-env = PRODUCTION
            cron = 0 0 -1 -1 -1 /usr/bin/prod-only
            endif =
            timer = 17 5
            """)
        self.assertLines(
            r,
            "  # uwsgi.ini:3: timer = %(_) 7  (for at line 2: _ = 50)",
            "  - {id: uwsgi-timer-1, signal: 50, every: 7s}",
            "  - {id: uwsgi-timer-2, signal: 51, every: 7s}",
            "  - {id: uwsgi-rbtimer-1, signal: 61, every: 1m}",
            "  - {id: uwsgi-rbtimer-2, signal: 62, every: 1m}",
            "  - {id: uwsgi-timer-3, signal: 17, every: 5s}")
        self.assertProblem(r, 9, "error", "if-env = PRODUCTION", "line 8")
        self.assertEqual(len(r.errors), 1)

    def test_includes(self):
        r = self.imported("""
            [uwsgi]
            ini = :timers
            include = /etc/uwsgi/base.ini
            [timers]
            timer = 17 5
            """)
        self.assertLines(r, "  # uwsgi.ini:5: timer = 17 5",
                         "  - {id: uwsgi-timer-1, signal: 17, every: 5s}")
        self.assertProblem(r, 3, "error", "/etc/uwsgi/base.ini", "import that file too")
        self.assertEqual(len(r.errors), 1)

    def test_other_signal_options(self):
        r = self.imported("""
            [uwsgi]
            signal = 17 127.0.0.1:1717
            signal-bufsize = 4096
            touch-reload = /tmp/reload
            mules = 2
            """)
        self.assertProblem(r, 2, "error", "tocsinctl raise")
        self.assertProblem(r, 3, "warning", "ignored")
        self.assertEqual(len(r.problems), 3)  # and "no signal options" for the file
        self.assertProblem(r, None, "warning", "no uWSGI signal options")

    def test_quoting_survives_the_yaml(self):
        r = self.imported(r"""
            [uwsgi]
            cron = 0 0 -1 -1 -1 printf '%%s\n' "a \"b\" c" | tee -a "/tmp/x y" # {not: yaml}, [x]
            fs-signal = /tmp/dir:colon,#hash,[x] 17
            """)
        self.assertClean(r)
        self.assertLines(
            r,
            r'''      - exec: ["/bin/sh", "-c", "printf '%s\\n' \"a \\\"b\\\" c\" | tee -a '''
            r'''\"/tmp/x y\" # {not: yaml}, [x]"]''')
        self.assertLines(r, '  - {id: uwsgi-fs-signal-1, signal: 17, '
                            'path: "/tmp/dir:colon,#hash,[x]", '
                            'events: [create, modify, delete, move, attrib]}')
        # uWSGI splits at the first space: the path ends there
        r = self.imported("[uwsgi]\nfs-signal = /tmp/a b 17\n")
        self.assertProblem(r, 2, "error", "'b 17'")


class CommandEnvironment(ImportTestCase):
    def test_chdir_env_and_unenv_shape_the_commands(self):
        r = self.imported("""
            [uwsgi]
            chdir = /srv/old
            env = DJANGO_SETTINGS_MODULE=mysite.settings
            env = LANG=C.UTF-8
            env = DEBUG=1
            unenv = DEBUG
            env = PYTHONPATH
            chdir = /srv/mysite
            cron = 0 3 -1 -1 -1 python manage.py clearsessions
            """)
        self.assertClean(r)
        self.assertLines(
            r,
            '      - exec: ["/usr/bin/env", "--unset=DEBUG", "--unset=PYTHONPATH", '
            '"--chdir=/srv/mysite", "DJANGO_SETTINGS_MODULE=mysite.settings", "LANG=C.UTF-8", '
            '"/bin/sh", "-c", "python manage.py clearsessions"]')

    def test_tz_from_the_environment_or_the_command_line(self):
        text = """
            [uwsgi]
            env = TZ=Europe/Rome
            cron = 0 3 -1 -1 -1 /usr/bin/nightly
            """
        r = self.imported(text)
        self.assertClean(r)
        self.assertLines(r, '  - {id: uwsgi-cron-1, signal: uwsgi-cron-1, '
                            'uwsgi: [0, 3, -1, -1, -1], tz: "Europe/Rome"}')
        self.assertIn('"TZ=Europe/Rome"', r.yaml_text)
        r = self.imported(text, tz="America/New_York")
        self.assertLines(r, '  - {id: uwsgi-cron-1, signal: uwsgi-cron-1, '
                            'uwsgi: [0, 3, -1, -1, -1], tz: "America/New_York"}')
        r = self.imported("""
            [uwsgi]
            env = TZ=Mars/Olympus_Mons
            cron = 0 3 -1 -1 -1 /usr/bin/nightly
            """)
        self.assertProblem(r, 2, "error", "Mars/Olympus_Mons")
        self.assertNotIn('tz: "', r.yaml_text)
        with self.assertRaises(ValueError):
            convert("[uwsgi]\n", tz="Nowhere/Never")
        # without TZ, the header says the zone is tocsind's
        r = self.imported("[uwsgi]\ncron = 0 3 -1 -1 -1 x\n")
        self.assertIn("tocsind's local time zone", header(r))

    def test_binsh_and_the_user(self):
        r = self.imported("""
            [uwsgi]
            binsh = /bin/bash
            binsh = /bin/zsh
            uid = www-data
            cron = 0 3 -1 -1 -1 echo {a,b}
            """)
        self.assertLines(r, '      - exec: ["/bin/bash", "-c", "echo {a,b}"]')
        self.assertProblem(r, 4, "warning", "uid www-data", "own user")
        self.assertEqual(len(r.errors), 0)

    def test_mules_and_farms_warn_about_targets(self):
        r = self.imported("""
            [uwsgi]
            mule = worker.py
            timer = 17 5
            """)
        self.assertProblem(r, 2, "warning", "subscriber:NAME", "group:NAME")


class CommandLine(ImportTestCase):
    def cli(self, *args):
        env = dict(os.environ, PYTHONPATH=PKG + os.pathsep + os.environ.get("PYTHONPATH", ""))
        return subprocess.run([sys.executable, "-m", "tocsin"] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, env=env, cwd=self.dir)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(ini(text))
        return path

    def test_a_clean_import_to_a_file(self):
        path = self.write("mysite.ini", """
            [uwsgi]
            timer = 17 5
            cron = 59 2 -1 -1 -1 /usr/bin/backup_my_home --recursive
            touch-signal = /tmp/reload 18
            """)
        out = os.path.join(self.dir, "tocsin.yaml")
        proc = self.cli("import-uwsgi", path, "-o", out)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stderr, "")
        self.assertEqual(proc.stdout, "")
        with open(out, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("# tocsin configuration imported from uWSGI's %s" % path, text)
        self.assertIn("  # mysite.ini:3: cron = 59 2 -1 -1 -1 /usr/bin/backup_my_home "
                      "--recursive\n", text)
        self.check(text)
        # the same file again: the same YAML (ids and numbers come from the ini)
        again = self.cli("import-uwsgi", path)
        self.assertEqual(again.returncode, 0)
        self.assertEqual(again.stdout, text)

    def test_what_is_not_converted_is_on_stderr_and_the_status_is_1(self):
        path = self.write("bad.ini", """
            [uwsgi]
            timer = 17 5
            cron = */5 * * * * /bin/true
            legion-cron = mycluster 0 -2 -1 -1 -1 /usr/bin/backup
            """)
        proc = self.cli("import-uwsgi", path)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("%s:3: error: cron: " % path, proc.stderr)
        self.assertIn("%s:4: error: legion-cron: " % path, proc.stderr)
        self.assertIn("2 option(s) of %s not converted" % path, proc.stderr)
        self.assertIn("  - {id: uwsgi-timer-1, signal: 17, every: 5s}", proc.stdout)
        self.check(proc.stdout)

    def test_section_after_the_file_name_as_uwsgi_takes_it(self):
        path = self.write("multi.ini", """
            [uwsgi]
            timer = 1 1
            [staging]
            timer = 2 2
            """)
        proc = self.cli("import-uwsgi", path + ":staging")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("signal: 2, every: 2s", proc.stdout)
        proc = self.cli("import-uwsgi", path, "--section", "staging")
        self.assertIn("signal: 2, every: 2s", proc.stdout)

    def test_usage_errors(self):
        proc = self.cli("import-uwsgi", os.path.join(self.dir, "missing.ini"))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("cannot read", proc.stderr)
        proc = self.cli("import-uwsgi", self.write("a.ini", "[uwsgi]\n"), "--tz", "Nowhere/X")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("Nowhere/X", proc.stderr)
        proc = self.cli()
        self.assertEqual(proc.returncode, 2)
        proc = self.cli("--help")
        self.assertEqual(proc.returncode, 0)
        self.assertIn("import-uwsgi", proc.stdout)

    def test_main_is_callable(self):
        from tocsin.__main__ import main
        path = self.write("m.ini", "[uwsgi]\ntimer = 17 5\n")
        out = os.path.join(self.dir, "m.yaml")
        self.assertEqual(main(["import-uwsgi", path, "-o", out]), 0)
        self.assertEqual(uwsgi_import.main([path, "-o", out]), 0)
        self.assertTrue(os.path.exists(out))


class ImportedConfigRuns(ImportTestCase):
    """The imported YAML in a running tocsind: a timer's events reach a subscriber, and a
    cron's command runs through the shell with the ini's chdir and env."""

    def test_events_and_commands(self):
        if TOCSIND is None:
            self.skipTest("no tocsind: " + WHY_NO_TOCSIND)
        work = os.path.join(self.dir, "app dir")
        os.mkdir(work)
        text = """
            [uwsgi]
            chdir = %s
            env = GREETING=hello world
            timer = 17 1
            cron = 0 3 -1 -1 -1 printf %s "`pwd`" "$GREETING" "it's \\"quoted\\"" > out.txt
            """ % (work, r"'%%s|%%s|%%s\n'")
        result = self.imported(text)
        self.assertClean(result)
        daemon = Daemon(self.dir, result.yaml_text).start()
        self.addCleanup(daemon.stop)
        c = tocsin.Client(daemon.socket)
        self.addCleanup(c.close)
        events = c.subscribe([17], ack=True)
        ev = next(iter(events))
        self.assertEqual((ev.signal, ev.source.kind, ev.source.id), (17, "timer", "uwsgi-timer-1"))
        c.ack(ev)
        c.raise_signal("uwsgi-cron-1")
        out = os.path.join(work, "out.txt")

        def written():
            if not os.path.exists(out):
                return None
            with open(out) as f:
                text = f.read()
            return text if text.endswith("\n") else None
        text = wait_until(written, 10, "the cron's command to write %s" % out)
        self.assertEqual(text, '%s|hello world|it\'s "quoted"\n' % work)


if __name__ == "__main__":
    unittest.main()

#include "sources/file/watch_set.h"

#include <sys/inotify.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tocsin::fs {

using config::kFileAttrib;
using config::kFileCloseWrite;
using config::kFileCreate;
using config::kFileDelete;
using config::kFileModify;
using config::kFileMove;

namespace {

std::uint32_t bits_of(std::uint32_t mask) {
  std::uint32_t b = 0;
  if (mask & IN_CREATE) b |= kFileCreate;
  if (mask & IN_MODIFY) b |= kFileModify;
  if (mask & IN_CLOSE_WRITE) b |= kFileCloseWrite;
  if (mask & IN_DELETE) b |= kFileDelete;
  if (mask & (IN_MOVED_FROM | IN_MOVED_TO)) b |= kFileMove;
  if (mask & IN_ATTRIB) b |= kFileAttrib;
  return b;
}

std::string join(const std::string& dir, std::string_view name) {
  std::string p;
  p.reserve(dir.size() + 1 + name.size());
  p = dir;
  if (p != "/") p += '/';
  p += name;
  return p;
}

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == 0 || slash == std::string::npos) return "/";
  return path.substr(0, slash);
}

}  // namespace

// ---- the watch trees -------------------------------------------------------------------------------

struct Node {
  enum class Role { anchor, tree, file };
  explicit Node(Role r) : role(r) {}
  Role role;
  FileStat watched;  // a file node: the inode its watch is on
  int wd = -1;
  bool failed = false;   // the watch could not be added (counted in Monitor::unwatched)
  bool top = false;      // `name` is an absolute path
  Node* parent = nullptr;
  std::string name;
  std::map<std::string, std::unique_ptr<Node>> children;  // watched subdirectories
  std::unordered_map<std::string, FileStat> entries;      // what the directory held, last we knew
};

Monitor::Monitor(config::FileMonitorSpec s, std::string normalized, bool from_cfg)
    : spec(std::move(s)),
      path(std::move(normalized)),
      from_config(from_cfg),
      batch(spec.settle,
            spec.max_delay ? spec.max_delay
                           : (spec.settle.count() > 0 ? std::optional<Millis>(spec.settle * 10)
                                                      : std::nullopt)) {
  if (path != "/") {
    parent_path = parent_of(path);
    base = path.substr(path.rfind('/') + 1);
  }
}
Monitor::~Monitor() = default;

WatchSet::WatchSet(FsOps& fs, const Clock& clock) : fs_(fs), clock_(clock) {}

WatchSet::~WatchSet() {
  closing_ = true;
  for (auto& [id, m] : monitors_) {
    if (m->anchor) drop(*m, m->anchor);
    if (m->root) drop(*m, m->root);
    if (m->file) drop(*m, m->file);
  }
  for (auto& mv : moves_) drop(*mv.monitor, mv.subtree);
}

Result<Monitor*> WatchSet::add(const config::FileMonitorSpec& spec, bool from_config) {
  if (monitors_.contains(spec.id)) return Error{"a source with id \"" + spec.id + "\" exists", ErrorCode::invalid_params};
  std::string why;
  auto path = normalize_path(spec.path, &why);
  if (!path) return Error{"path: " + why, ErrorCode::invalid_params};
  if (auto bad = config::glob_error(spec.match)) return Error{"match: " + *bad, ErrorCode::invalid_params};
  if (spec.events == 0 || (spec.events & ~config::kFileAllEvents)) {
    return Error{"events: a non-empty list of create, modify, close_write, delete, move, attrib",
                 ErrorCode::invalid_params};
  }
  auto m = std::make_unique<Monitor>(spec, *path, from_config);
  Monitor& ref = *m;
  monitors_.emplace(spec.id, std::move(m));
  resolve(ref, /*report=*/false);
  return &ref;
}

bool WatchSet::remove(const std::string& id) {
  auto it = monitors_.find(id);
  if (it == monitors_.end()) return false;
  Monitor& m = *it->second;
  if (m.anchor) drop(m, m.anchor);
  if (m.root) drop(m, m.root);
  if (m.file) drop(m, m.file);
  for (auto mv = moves_.begin(); mv != moves_.end();) {
    if (mv->monitor == &m) {
      drop(m, mv->subtree);
      mv = moves_.erase(mv);
    } else {
      ++mv;
    }
  }
  std::erase(touched_, &m);
  std::erase(to_resolve_, &m);
  monitors_.erase(it);
  return true;
}

Monitor* WatchSet::find(const std::string& id) {
  auto it = monitors_.find(id);
  return it == monitors_.end() ? nullptr : it->second.get();
}

std::vector<Monitor*> WatchSet::take_touched() {
  for (Monitor* m : touched_) m->touched = false;
  return std::exchange(touched_, {});
}

WatchSet::Watched WatchSet::watch(Monitor& m, Node& node, const std::string& path, bool follow,
                                  std::uint32_t events) {
  const std::uint32_t flags =
      (node.role == Node::Role::file ? 0 : IN_ONLYDIR) | (follow ? 0 : IN_DONT_FOLLOW);
  // IN_MASK_ADD: the inode may be watched already for other registrations, which keep needing
  // what they asked for.
  int wd = fs_.add_watch(path, events | flags | IN_MASK_ADD);
  if (wd < 0) {
    int err = -wd;
    if (err == ENOENT || err == ENOTDIR || err == ELOOP) return Watched::gone;
    node.failed = true;
    ++m.unwatched;
    m.watch_error =
        err == ENOSPC   ? "the inotify watch limit is reached (fs.inotify.max_user_watches)"
        : err == EMFILE ? "no inotify instance could be created (fs.inotify.max_user_instances, "
                          "or the daemon's open-file limit)"
                        : "cannot watch " + path + ": " + std::strerror(err);
    return Watched::no;
  }
  auto& regs = by_wd_[wd];
  for (const Reg& r : regs) {
    // The same directory twice in one monitor (a bind mount inside its own tree): not again.
    if (r.monitor == &m) return Watched::gone;
  }
  regs.push_back(Reg{&m, &node, events, flags});
  node.wd = wd;
  ++m.watches;
  return Watched::yes;
}

std::optional<std::string> WatchSet::watch_path(const Reg& r) const {
  if (r.node->role == Node::Role::file) return r.monitor->path;
  return path_of(*r.node);
}

void WatchSet::apply_mask(int wd) {
  auto it = by_wd_.find(wd);
  if (it == by_wd_.end() || closing_) return;
  std::uint32_t events = 0;
  for (const Reg& r : it->second) events |= r.events;
  // inotify sets a mask by path, and a path may name another inode by now: try each
  // registration's path until one reaches this watch. If none does, the watch keeps the larger
  // mask, which costs wake-ups and loses nothing; its node is about to be dropped anyway.
  const std::vector<Reg> regs = it->second;
  for (const Reg& r : regs) {
    auto path = watch_path(r);
    if (!path) continue;
    int got = fs_.add_watch(*path, events | r.flags);
    if (got == wd) return;
    if (got < 0) continue;
    if (auto other = by_wd_.find(got); other != by_wd_.end()) {
      std::uint32_t theirs = 0;
      for (const Reg& o : other->second) theirs |= o.events;
      fs_.add_watch(*path, theirs | r.flags);  // put back what that watch's users need
    } else {
      fs_.rm_watch(got);  // a watch made by this call alone
    }
  }
}

void WatchSet::tune_anchor(Monitor& m) {
  if (!m.anchor || m.anchor->wd < 0) return;
  const bool own_watch = (m.root && m.root->wd >= 0) || (m.file && m.file->wd >= 0);
  const std::uint32_t want =
      m.anchor_is_parent && !own_watch ? fs::kWaitingAnchorEvents : fs::kAnchorEvents;
  for (Reg& r : by_wd_[m.anchor->wd]) {
    if (r.node != m.anchor.get() || r.events == want) continue;
    r.events = want;
    apply_mask(m.anchor->wd);
    return;
  }
}

void WatchSet::watch_file(Monitor& m) {
  auto node = std::make_unique<Node>(Node::Role::file);
  node->top = true;
  node->name = m.path;
  if (watch(m, *node, m.path, /*follow=*/true, fs::kFileEvents) == Watched::gone) return;
  if (auto st = fs_.stat(m.path, true)) node->watched = *st;
  m.file = std::move(node);
}

void WatchSet::unregister(Monitor& m, Node& node) {
  if (node.failed) {
    node.failed = false;
    --m.unwatched;
  }
  if (node.wd < 0) return;
  auto it = by_wd_.find(node.wd);
  if (it != by_wd_.end()) {
    std::uint32_t before = 0, after = 0;
    for (const Reg& r : it->second) {
      before |= r.events;
      if (r.node != &node) after |= r.events;
    }
    std::erase_if(it->second, [&](const Reg& r) { return r.node == &node; });
    if (it->second.empty()) {
      fs_.rm_watch(node.wd);
      by_wd_.erase(it);
    } else if (after != before) {
      apply_mask(node.wd);  // the others need less: the watch asks for less
    }
  }
  node.wd = -1;
  --m.watches;
}

void WatchSet::drop_detached(Monitor& m, Node& node) {
  for (auto& [name, child] : node.children) drop_detached(m, *child);
  unregister(m, node);
}

void WatchSet::drop(Monitor& m, std::unique_ptr<Node>& node) {
  if (!node) return;
  drop_detached(m, *node);
  node.reset();
}

std::optional<std::string> WatchSet::path_of(const Node& node) const {
  const Node* n = &node;
  std::vector<const std::string*> names;
  while (n->parent) {
    names.push_back(&n->name);
    n = n->parent;
  }
  if (!n->top) return std::nullopt;  // a subtree moved out, waiting for its MOVED_TO
  std::string p = n->name;
  for (auto it = names.rbegin(); it != names.rend(); ++it) p = join(p, **it);
  return p;
}

void WatchSet::report(Monitor& m, const std::string& path, std::string_view name,
                      std::uint32_t bits, bool synthetic) {
  const std::uint32_t want = m.spec.events;
  std::uint32_t pass = 0;
  if (synthetic) {
    // Found by a listing or a rescan: it stands for events that were not seen one by one.
    if ((bits & kFileCreate) && (want & (kFileCreate | kFileModify | kFileCloseWrite | kFileMove)))
      pass |= kFileCreate;
    if ((bits & kFileDelete) && (want & (kFileDelete | kFileMove))) pass |= kFileDelete;
    if ((bits & kFileModify) && (want & (kFileModify | kFileCloseWrite))) pass |= kFileModify;
    if ((bits & kFileAttrib) && (want & kFileAttrib)) pass |= kFileAttrib;
  } else {
    pass = bits & want;
  }
  if (!pass) return;
  if (!m.spec.match.empty() && !glob_match(m.spec.match, std::string(name))) return;
  m.batch.add(path, pass, clock_.steady_now());
  if (!m.touched) {
    m.touched = true;
    touched_.push_back(&m);
  }
}

void WatchSet::refresh_state(Monitor& m) {
  tune_anchor(m);
  std::string why;
  if (!m.anchor && m.path != "/") {
    why = "no directory to watch for " + m.path + (m.watch_error.empty() ? "" : ": ") +
          m.watch_error;
  } else if (m.unwatched > 0) {
    const bool file = m.file && m.file->failed;
    const std::size_t dirs = m.unwatched - (file ? 1 : 0);
    why = m.watch_error;
    if (dirs > 0) {
      why += "; " + std::to_string(dirs) + " director" + (dirs == 1 ? "y" : "ies") + " not watched";
    }
    // Its writes are still heard, by name, through the anchor (tune_anchor).
    if (file) why += "; the file is not watched itself";
  } else if (!m.exists) {
    why = "the path does not exist; watching " + m.anchor->name + " for it to appear";
  }
  if (why == m.degraded) return;
  std::string old = std::exchange(m.degraded, why);
  if (state_log_) state_log_(m, old);
}

void WatchSet::make_root(Monitor& m, bool report_contents) {
  auto node = std::make_unique<Node>(Node::Role::tree);
  node->top = true;
  node->name = m.path;
  if (watch(m, *node, m.path, /*follow=*/true, fs::kTreeEvents) == Watched::gone) return;
  m.root = std::move(node);
  populate(m, *m.root, m.path, report_contents);
}

void WatchSet::populate(Monitor& m, Node& dir, const std::string& path, bool report_contents) {
  auto list = fs_.list(path, /*follow=*/&dir == m.root.get());
  if (!list) return;  // gone meanwhile (its parent's event says so) or unreadable
  for (DirEntry& e : list.value()) {
    std::string p = join(path, e.name);
    if (report_contents) report(m, p, e.name, kFileCreate, /*synthetic=*/true);
    bool subdir = e.stat.dir && m.spec.recursive && !dir.children.contains(e.name);
    dir.entries[e.name] = e.stat;
    if (!subdir) continue;
    auto child = std::make_unique<Node>(Node::Role::tree);
    child->parent = &dir;
    child->name = e.name;
    // Watched before it is listed: whatever is created in it from now on has an event.
    if (watch(m, *child, p, /*follow=*/false, fs::kTreeEvents) == Watched::gone) continue;
    Node& c = *child;
    dir.children.emplace(e.name, std::move(child));
    populate(m, c, p, report_contents);
  }
}

void WatchSet::resolve(Monitor& m, bool report_changes) {
  const bool was = m.exists;
  if (m.anchor) drop(m, m.anchor);
  if (m.root) drop(m, m.root);
  if (m.file) drop(m, m.file);
  m.anchor_is_parent = false;
  m.pending.clear();
  m.watch_error.clear();
  if (m.path == "/") {
    m.exists = true;
    make_root(m, report_changes);
    refresh_state(m);
    return;
  }
  m.exists = false;
  for (int attempt = 0; attempt < 64; ++attempt) {
    std::string dir = m.parent_path;
    while (dir != "/") {
      auto st = fs_.stat(dir, true);
      if (st && st->dir) break;
      dir = parent_of(dir);
    }
    auto node = std::make_unique<Node>(Node::Role::anchor);
    node->top = true;
    node->name = dir;
    if (watch(m, *node, dir, /*follow=*/true, fs::kAnchorEvents) == Watched::gone) {
      continue;  // raced: look again
    }
    m.anchor = std::move(node);
    m.anchor_is_parent = dir == m.parent_path;
    std::string_view rest = std::string_view(m.path).substr(dir == "/" ? 1 : dir.size() + 1);
    m.pending = std::string(rest.substr(0, rest.find('/')));
    if (!m.anchor_is_parent) {
      // The next step toward the path may have appeared between the stat and the watch.
      auto next = fs_.stat(join(dir, m.pending), true);
      if (next && next->dir) {
        drop(m, m.anchor);
        continue;
      }
      break;
    }
    auto st = fs_.stat(m.path, false);
    if (st) m.anchor->entries[m.base] = *st;
    m.exists = st.has_value();
    if (report_changes && m.exists && !was) report(m, m.path, m.base, kFileCreate, true);
    auto target = fs_.stat(m.path, true);
    if (target && target->dir) {
      make_root(m, report_changes);
    } else if (m.exists) {
      watch_file(m);
    }
    break;
  }
  if (report_changes && was && !m.exists) report(m, m.path, m.base, kFileDelete, true);
  refresh_state(m);
}

void WatchSet::handle(const RawEvent& e) {
  if (e.mask & IN_Q_OVERFLOW) {
    overflow();
    return;
  }
  auto it = by_wd_.find(e.wd);
  if (it == by_wd_.end()) return;  // a watch removed meanwhile (its IN_IGNORED, late events)
  const std::vector<Reg> regs = it->second;  // handlers may add and remove registrations
  for (const Reg& r : regs) {
    auto now = by_wd_.find(e.wd);
    if (now == by_wd_.end()) break;
    if (std::none_of(now->second.begin(), now->second.end(),
                     [&](const Reg& x) { return x.node == r.node && x.monitor == r.monitor; })) {
      continue;
    }
    switch (r.node->role) {
      case Node::Role::anchor:
        on_anchor(*r.monitor, *r.node, e);
        break;
      case Node::Role::tree:
        on_tree(*r.monitor, *r.node, e);
        break;
      case Node::Role::file:
        on_file(*r.monitor, *r.node, e);
        break;
    }
  }
  if (to_resolve_.empty()) return;
  auto todo = std::exchange(to_resolve_, {});
  std::sort(todo.begin(), todo.end());
  todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
  for (Monitor* m : todo) resolve(*m, /*report=*/true);
}

void WatchSet::on_anchor(Monitor& m, Node& node, const RawEvent& e) {
  if (e.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
    to_resolve_.push_back(&m);  // the anchor went away: wait from an ancestor
    return;
  }
  if (e.name != m.pending) return;
  if (!m.anchor_is_parent) {
    if (e.mask & (IN_CREATE | IN_MOVED_TO)) to_resolve_.push_back(&m);  // a step closer
    return;
  }
  const std::uint32_t bits = bits_of(e.mask);
  if (e.mask & (IN_DELETE | IN_MOVED_FROM)) {
    node.entries.erase(m.base);
    m.exists = false;
    if (m.root) drop(m, m.root);
    if (m.file) drop(m, m.file);
    report(m, m.path, m.base, bits, false);
    refresh_state(m);
    return;
  }
  auto st = fs_.stat(m.path, false);
  if (st) {
    node.entries[m.base] = *st;
  } else {
    node.entries.erase(m.base);
  }
  report(m, m.path, m.base, bits, false);
  if (e.mask & (IN_CREATE | IN_MOVED_TO)) {
    // Created, or something renamed over it (an atomic save): a new inode at the path.
    m.exists = st.has_value();
    if (m.root) drop(m, m.root);
    if (m.file) drop(m, m.file);
    auto target = fs_.stat(m.path, true);
    if (target && target->dir) {
      make_root(m, /*report=*/true);
    } else if (m.exists) {
      watch_file(m);
      // A created file starts empty: content now was written before its watch was added, and
      // the anchor may not have heard it (it hears writes only while the path has no watch).
      if ((e.mask & IN_CREATE) && target && target->size > 0) {
        report(m, m.path, m.base, kFileModify, /*synthetic=*/true);
      }
    }
    refresh_state(m);
  }
}

void WatchSet::on_file(Monitor& m, Node& node, const RawEvent& e) {
  if (e.mask & IN_IGNORED) {
    // The kernel dropped the watch (the file is gone, or its filesystem): the anchor hears
    // writes again until a new inode at the path gets a watch.
    if (m.file.get() == &node) drop(m, m.file);
    tune_anchor(m);
    return;
  }
  std::uint32_t bits = bits_of(e.mask) & (kFileModify | kFileCloseWrite | kFileAttrib);
  if (!bits) return;  // DELETE_SELF, MOVE_SELF: the anchor's events tell what the path did
  if (bits & kFileAttrib) {
    auto now = fs_.stat(m.path, true);
    if (!now || now->ino != node.watched.ino || now->dev != node.watched.dev) {
      // The link count of an unlink or of a rename over the file: the anchor reports that.
      bits &= ~kFileAttrib;
      if (!bits) return;
    }
  }
  if (m.anchor && m.anchor_is_parent) {
    if (auto st = fs_.stat(m.path, false)) m.anchor->entries[m.base] = *st;
  }
  report(m, m.path, m.base, bits, false);
}

void WatchSet::on_tree(Monitor& m, Node& node, const RawEvent& e) {
  if (e.name.empty()) {  // about the directory itself
    if (&node == m.root.get()) {
      if (e.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
        to_resolve_.push_back(&m);
      } else if (e.mask & IN_ATTRIB) {
        report(m, m.path, m.base, kFileAttrib, false);
      }
      return;
    }
    if ((e.mask & IN_IGNORED) && node.parent) {
      // The kernel dropped the watch (the directory is gone): so does the tree.
      Node* parent = node.parent;
      auto c = parent->children.find(node.name);
      if (c != parent->children.end() && c->second.get() == &node) {
        drop(m, c->second);  // `node` is destroyed here
        parent->children.erase(c);
      }
    }
    return;
  }
  auto dir_path = path_of(node);
  if (!dir_path) return;  // in a subtree being moved
  const std::string name(e.name);
  const std::string p = join(*dir_path, name);
  const std::uint32_t bits = bits_of(e.mask);
  if (e.mask & (IN_DELETE | IN_MOVED_FROM)) {
    node.entries.erase(name);
    auto c = node.children.find(name);
    if (c != node.children.end()) {
      if (e.mask & IN_MOVED_FROM) {
        c->second->parent = nullptr;  // detached until its MOVED_TO, or dropped at end_of_drain
        moves_.push_back(PendingMove{&m, e.cookie, std::move(c->second)});
      } else {
        drop(m, c->second);
      }
      node.children.erase(c);
    }
    report(m, p, name, bits, false);
    return;
  }
  auto st = fs_.stat(p, false);
  if (st) {
    node.entries[name] = *st;
  } else {
    node.entries.erase(name);
  }
  report(m, p, name, bits, false);
  if (!(e.mask & (IN_CREATE | IN_MOVED_TO)) || !st || !st->dir || !m.spec.recursive) return;
  if (auto old = node.children.find(name); old != node.children.end()) {
    drop(m, old->second);  // replaced by another directory
    node.children.erase(old);
  }
  if (e.mask & IN_MOVED_TO) {
    for (auto mv = moves_.begin(); mv != moves_.end(); ++mv) {
      if (mv->monitor != &m || mv->cookie != e.cookie) continue;
      // Renamed inside the tree: the same watches, under the new name.
      std::unique_ptr<Node> sub = std::move(mv->subtree);
      moves_.erase(mv);
      sub->parent = &node;
      sub->name = name;
      node.children.emplace(name, std::move(sub));
      return;
    }
  }
  auto child = std::make_unique<Node>(Node::Role::tree);
  child->parent = &node;
  child->name = name;
  // Watched before it is listed: nothing created in it after this point lacks an event, and
  // what was created before is in the listing, reported as created.
  if (watch(m, *child, p, /*follow=*/false, fs::kTreeEvents) == Watched::gone) return;
  Node& c = *child;
  node.children.emplace(name, std::move(child));
  populate(m, c, p, /*report=*/true);
  refresh_state(m);
}

void WatchSet::end_of_drain() {
  // A MOVED_FROM whose MOVED_TO did not come in the same drain was moved out of the tree.
  for (auto& mv : moves_) drop(*mv.monitor, mv.subtree);
  moves_.clear();
}

void WatchSet::rescan_node(Monitor& m, Node& dir, const std::string& path, bool only_unwatched) {
  bool was_unwatched = dir.failed;
  if (dir.failed) {
    // Watch before listing, as for a new directory.
    dir.failed = false;
    --m.unwatched;
    if (watch(m, dir, path, /*follow=*/&dir == m.root.get(), fs::kTreeEvents) == Watched::gone) {
      return;  // gone meanwhile: its parent's rescan reports it
    }
  }
  if (only_unwatched && !was_unwatched) {
    for (auto& [name, child] : dir.children) {
      rescan_node(m, *child, join(path, name), true);
    }
    return;
  }
  auto list = fs_.list(path, /*follow=*/&dir == m.root.get());
  if (!list) return;
  std::unordered_map<std::string, FileStat> now;
  now.reserve(list->size());
  for (DirEntry& e : list.value()) {
    std::string p = join(path, e.name);
    auto old = dir.entries.find(e.name);
    auto child = dir.children.find(e.name);
    bool replaced = false;
    if (old == dir.entries.end()) {
      report(m, p, e.name, kFileCreate, true);
    } else if (old->second.ino != e.stat.ino || old->second.dev != e.stat.dev ||
               old->second.dir != e.stat.dir) {
      report(m, p, e.name, kFileCreate, true);
      replaced = true;
    } else if (old->second.mtime_ns != e.stat.mtime_ns || old->second.size != e.stat.size) {
      // A directory's own content changes are its entries, reported by its rescan below.
      if (!e.stat.dir) report(m, p, e.name, kFileModify, true);
    } else if (old->second.ctime_ns != e.stat.ctime_ns) {
      report(m, p, e.name, kFileAttrib, true);
    }
    if (child != dir.children.end() && (replaced || !e.stat.dir)) {
      drop(m, child->second);
      dir.children.erase(child);
      child = dir.children.end();
    }
    if (e.stat.dir && m.spec.recursive) {
      if (child != dir.children.end()) {
        rescan_node(m, *child->second, p, false);
      } else {
        auto c = std::make_unique<Node>(Node::Role::tree);
        c->parent = &dir;
        c->name = e.name;
        if (watch(m, *c, p, /*follow=*/false, fs::kTreeEvents) != Watched::gone) {
          Node& ref = *c;
          dir.children.emplace(e.name, std::move(c));
          populate(m, ref, p, /*report=*/true);
        }
      }
    }
    now.emplace(std::move(e.name), e.stat);
  }
  for (auto& [name, st] : dir.entries) {
    if (now.contains(name)) continue;
    report(m, join(path, name), name, kFileDelete, true);
    if (auto c = dir.children.find(name); c != dir.children.end()) {
      drop(m, c->second);
      dir.children.erase(c);
    }
  }
  dir.entries = std::move(now);
}

void WatchSet::rescan(Monitor& m) {
  if ((!m.anchor && m.path != "/") || (m.anchor && m.anchor->failed)) {
    resolve(m, true);
    return;
  }
  if (m.path != "/") {
    auto anchor_now = fs_.stat(m.anchor->name, true);
    if (!anchor_now || !anchor_now->dir) {
      resolve(m, true);
      return;
    }
    if (!m.anchor_is_parent) {
      auto next = fs_.stat(join(m.anchor->name, m.pending), true);
      if (next && next->dir) resolve(m, true);
      return;
    }
    auto st = fs_.stat(m.path, false);
    auto& entries = m.anchor->entries;
    auto old = entries.find(m.base);
    if (!st) {
      if (old != entries.end()) {
        entries.erase(old);
        report(m, m.path, m.base, kFileDelete, true);
      }
      m.exists = false;
      if (m.root) drop(m, m.root);
      if (m.file) drop(m, m.file);
    } else {
      m.exists = true;
      if (old == entries.end() || old->second.ino != st->ino || old->second.dev != st->dev) {
        report(m, m.path, m.base, kFileCreate, true);
        if (m.root) drop(m, m.root);
        if (m.file) drop(m, m.file);
      } else if (old->second.mtime_ns != st->mtime_ns || old->second.size != st->size) {
        if (!st->dir) report(m, m.path, m.base, kFileModify, true);
      } else if (old->second.ctime_ns != st->ctime_ns) {
        report(m, m.path, m.base, kFileAttrib, true);
      }
      entries[m.base] = *st;
      auto target = fs_.stat(m.path, true);
      if (target && target->dir) {
        if (m.file) drop(m, m.file);
        if (!m.root) make_root(m, true);
      } else {
        if (m.root) drop(m, m.root);
        if (m.file && (m.file->failed || !target || target->ino != m.file->watched.ino ||
                       target->dev != m.file->watched.dev)) {
          drop(m, m.file);  // not the inode at the path now, or not watched: again
        }
        if (!m.file) watch_file(m);
      }
    }
  }
  if (m.root) rescan_node(m, *m.root, m.path, false);
  refresh_state(m);
}

void WatchSet::overflow() {
  auto now = clock_.steady_now();
  for (auto& [id, m] : monitors_) {
    m->batch.mark_overflow(now);
    if (!m->touched) {
      m->touched = true;
      touched_.push_back(m.get());
    }
    rescan(*m);
  }
}

bool WatchSet::needs_retry() const {
  for (const auto& [id, m] : monitors_) {
    if (m->unwatched > 0 || (!m->anchor && m->path != "/")) return true;
  }
  return false;
}

bool WatchSet::retry() {
  for (auto& [id, mp] : monitors_) {
    Monitor& m = *mp;
    if (!m.anchor && m.path != "/") {
      resolve(m, true);
    } else if (m.unwatched > 0) {
      if (m.anchor && m.anchor->failed) {
        resolve(m, true);
      } else if (m.root) {
        rescan_node(m, *m.root, m.path, /*only_unwatched=*/true);
      }
      if (m.file && m.file->failed) {
        // Its writes were heard through the anchor meanwhile: only the watch is missing.
        drop(m, m.file);
        watch_file(m);
      }
      refresh_state(m);
    }
  }
  return needs_retry();
}

}  // namespace tocsin::fs

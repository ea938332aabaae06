#include "util/access.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <vector>

namespace tpmtoken::access {
namespace {

std::string GroupName(gid_t gid) {
  const group* g = getgrgid(gid);
  return g ? g->gr_name : std::to_string(gid);
}

std::string UserName() {
  const passwd* p = getpwuid(geteuid());
  return p ? p->pw_name : std::to_string(geteuid());
}

bool InGroup(gid_t gid) {
  if (getegid() == gid) return true;
  const int n = getgroups(0, nullptr);
  if (n <= 0) return false;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  const int got = getgroups(n, groups.data());
  for (int i = 0; i < got; ++i)
    if (groups[static_cast<size_t>(i)] == gid) return true;
  return false;
}

// With the effective IDs, as open() checks them (access() uses the real ones).
bool Can(const std::string& path, int mode) {
  return ::faccessat(AT_FDCWD, path.c_str(), mode, AT_EACCESS) == 0;
}

std::string Mode(mode_t m) {
  std::ostringstream out;
  out << std::oct << (m & 07777);
  return out.str();
}

// The sentence for a file or directory this user cannot use.
std::string Explain(const std::string& what, const struct stat& st, mode_t group_needs) {
  const std::string user = UserName();
  const std::string grp = GroupName(st.st_gid);
  const bool shared = (st.st_mode & group_needs) == group_needs;
  if (shared && !InGroup(st.st_gid))
    return "this user (" + user + ") is not in group " + grp + ", which may use " + what +
           " (mode " + Mode(st.st_mode) + "): add it (adduser " + user + " " + grp +
           ") and start the program again";
  return "this user (" + user + ") may not use " + what + " (owner " + std::to_string(st.st_uid) +
         ", group " + grp + ", mode " + Mode(st.st_mode) +
         "): use a store of this user's own, or share this one with a group (README: "
         "\"Sharing a token between services\")";
}

}  // namespace

mode_t CreateMask(const std::string& dir) {
  struct stat st {};
  const std::string d = dir.empty() ? "." : dir;
  if (stat(d.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & S_ISGID) &&
      (st.st_mode & S_IWGRP))
    return 007;
  return 077;
}

void ShareInGroupDir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (CreateMask(dir) != 007) return;
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && st.st_uid == geteuid() && (st.st_mode & 0777) != 0660)
    ::chmod(path.c_str(), 0660);
}

std::string Problem(const std::string& path, bool makes_files_beside) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return {};  // made later, or another error explains it
  if (!Can(dir, X_OK)) return Explain(dir, st, S_IRGRP | S_IXGRP);
  const bool exists = stat(path.c_str(), &st) == 0;
  if (exists && !Can(path, R_OK | W_OK)) return Explain(path, st, S_IRGRP | S_IWGRP);
  // SQLite makes -wal and -shm beside the store: the directory must be writable.
  if ((makes_files_beside || !exists) && !Can(dir, W_OK) && stat(dir.c_str(), &st) == 0)
    return Explain(dir, st, S_IWGRP | S_IXGRP);
  return {};
}

}  // namespace tpmtoken::access

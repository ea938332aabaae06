// Why this process may not use a file that others share through a group:
// the store (a service's own user, a group that owns the store's directory)
// and the TPM device (group tss on Debian). Used to turn EACCES into one line
// that names the group and the fix.
#pragma once
#include <sys/types.h>

#include <string>

namespace tpmtoken::access {

// The umask to create files in dir with: a directory made for sharing
// (setgid and group-writable, e.g. `install -d -m 2770 -g G`) gives new
// files group read/write, so its group's members can use them; anything
// else keeps files private to their owner.
mode_t CreateMask(const std::string& dir);

// In such a directory, makes a file this user owns mode 0660 (SQLite
// creates its database 0644 less the umask; it gives -wal and -shm the
// database's mode, so they follow).
void ShareInGroupDir(const std::string& path);

// Empty when this process can read and write path (or create it in its
// directory, and with makes_files_beside create files beside it, as SQLite
// does); otherwise one sentence naming the cause and the fix: the group that
// may use it and how to join it, or that it is not shared.
std::string Problem(const std::string& path, bool makes_files_beside);

}  // namespace tpmtoken::access

// Whose TPM handles are whose (issue 10, item 1). (Threads of one process
// take the TPM in arrival order: util/fifo_lock.h.)
//
// Processes on a TPM without a resource manager (a bare simulator, /dev/tpm0)
// share its few object and session slots. They coordinate through one small
// file per TPM (Registry), held with flock(2) around each command sequence
// (a Tpm method): inside it no other process sends a command, and the file
// lists the transient handles each process keeps loaded between sequences
// (owner = pid and start time, so a recycled pid is not taken for the owner).
// A process that needs a slot flushes, in this order, its own cached keys,
// handles whose owner is dead or that nobody registered (left by a process
// killed mid-sequence), and only then a live process's cached handle, whose
// entry it removes: that owner sees its entry gone when it next takes the
// lock and reloads (from its own saved context or its blob) before it sends
// anything to that handle, so a handle number another process has since
// reused never receives its authorization (which could count a wrong PIN).
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tpmtoken::tpm {

// A process, told apart from a later one with the same pid by its start time
// (field 22 of /proc/PID/stat, in clock ticks since boot).
struct ProcessId {
  uint32_t pid = 0;
  uint64_t start = 0;
  static ProcessId Self();
  bool Alive() const;
  bool operator==(const ProcessId&) const = default;
};

class Registry {
 public:
  // The registry of the TPM that tcti names: a file under dir (created
  // 0700 if missing) named after a hash of the TCTI string. Throws
  // std::runtime_error naming the file when it cannot be opened.
  static std::unique_ptr<Registry> Open(const std::string& dir, const std::string& tcti);
  // The directory: $TPMTOKEN_RUN_DIR, else /run/tpmtoken when writable, else
  // $XDG_RUNTIME_DIR/tpmtoken, else /tmp/tpmtoken-UID.
  static std::string DefaultDir();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  const std::string& path() const { return path_; }
  // Blocks until no other process is inside a sequence on this TPM. Returns
  // whether another process changed the registry since this one last did.
  bool Lock();
  void Unlock();

  enum class Holder { kMine, kLive, kGone };  // kGone: dead owner or none
  // Under the lock.
  bool Mine(uint32_t handle) const;
  Holder Who(uint32_t handle) const;
  // Replaces this process's entries with handles (writes only on a change).
  void Publish(std::vector<uint32_t> handles);
  // Removes another's entry for handle (flushed as dead, or evicted).
  void Forget(uint32_t handle);

 private:
  Registry() = default;
  struct Entry {
    uint32_t handle;
    uint32_t pid;
    uint64_t start;
  };
  void Read();
  void Write();
  std::string path_;
  int fd_ = -1;
  ProcessId self_;
  uint64_t seen_epoch_ = 0;  // the epoch this process last read or wrote
  std::vector<Entry> entries_;
  std::vector<uint32_t> published_;
};

}  // namespace tpmtoken::tpm

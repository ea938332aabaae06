#include "tpm/coord.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "crypto/ossl.h"
#include "util/bytes.h"
#include "util/log.h"

namespace tpmtoken::tpm {
namespace {

// The file: a header (magic, entry count, epoch) and fixed-size entries.
// The epoch moves on every write, so a process reads the entries only when
// another process changed them (one pread of the header otherwise).
constexpr uint32_t kMagic = 0x544b5231;  // "TKR1"
struct Header {
  uint32_t magic;
  uint32_t count;
  uint64_t epoch;
};
constexpr size_t kMaxEntries = 4096;

uint64_t StartTime(uint32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  return 0;
}

bool WriteAll(int fd, const void* data, size_t n, off_t off) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = pwrite(fd, p, n, off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
    off += w;
  }
  return true;
}

}  // namespace

ProcessId ProcessId::Self() {
  const auto pid = static_cast<uint32_t>(getpid());
  return {pid, StartTime(pid)};
}

bool ProcessId::Alive() const {
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  const uint64_t now = StartTime(pid);
  return now == 0 || now == start;  // without /proc, a running pid counts as alive
}

std::string Registry::DefaultDir() {
  if (const char* d = std::getenv("TPMTOKEN_RUN_DIR"); d && *d) return d;
  if (access("/run/tpmtoken", W_OK) == 0) return "/run/tpmtoken";
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) return std::string(x) + "/tpmtoken";
  return "/tmp/tpmtoken-" + std::to_string(getuid());
}

std::unique_ptr<Registry> Registry::Open(const std::string& dir, const std::string& tcti) {
  std::unique_ptr<Registry> r(new Registry());
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + dir + " for the TPM's process registry: " +
                             std::strerror(errno) + " (set TPMTOKEN_RUN_DIR to a writable "
                             "directory shared by the processes that use this TPM)");
  const Bytes h = crypto::Sha256(View(tcti));
  r->path_ = dir + "/tpm-" + Hex(ByteView(h.data(), 8)) + ".registry";
  r->fd_ = open(r->path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (r->fd_ < 0)
    throw std::runtime_error("cannot open " + r->path_ + " (the process registry of TPM '" +
                             tcti + "'): " + std::strerror(errno));
  r->self_ = ProcessId::Self();
  r->seen_epoch_ = ~uint64_t{0};
  return r;
}

Registry::~Registry() {
  if (fd_ >= 0) close(fd_);
}

bool Registry::Lock() {
  while (flock(fd_, LOCK_EX) != 0)
    if (errno != EINTR)
      throw std::runtime_error("cannot lock " + path_ + ": " + std::strerror(errno));
  Header h{};
  if (pread(fd_, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h) && h.magic == kMagic &&
      h.epoch == seen_epoch_)
    return false;
  Read();
  return true;
}

void Registry::Unlock() { flock(fd_, LOCK_UN); }

void Registry::Read() {
  entries_.clear();
  published_.clear();
  Header h{};
  seen_epoch_ = 0;
  if (pread(fd_, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h) || h.magic != kMagic) return;
  seen_epoch_ = h.epoch;
  // A file cut short (a process killed while writing it) reads as empty:
  // every handle is then unregistered, and owners reload theirs.
  if (h.count > kMaxEntries) return;
  std::vector<Entry> e(h.count);
  const auto want = static_cast<ssize_t>(h.count * sizeof(Entry));
  if (h.count && pread(fd_, e.data(), static_cast<size_t>(want), sizeof h) != want) return;
  entries_ = std::move(e);
  // What the file lists as ours now (another process may have removed some).
  published_.clear();
  for (const Entry& x : entries_)
    if (x.pid == self_.pid && x.start == self_.start) published_.push_back(x.handle);
  std::sort(published_.begin(), published_.end());
}

void Registry::Write() {
  const Header h{kMagic, static_cast<uint32_t>(entries_.size()), seen_epoch_ + 1};
  if (!WriteAll(fd_, &h, sizeof h, 0) ||
      !WriteAll(fd_, entries_.data(), entries_.size() * sizeof(Entry), sizeof h) ||
      ftruncate(fd_, static_cast<off_t>(sizeof h + entries_.size() * sizeof(Entry))) != 0) {
    log::Warn("cannot write ", path_, ": ", std::strerror(errno));
    return;
  }
  seen_epoch_ = h.epoch;
}

bool Registry::Mine(uint32_t handle) const {
  return std::any_of(entries_.begin(), entries_.end(), [&](const Entry& e) {
    return e.handle == handle && e.pid == self_.pid && e.start == self_.start;
  });
}

Registry::Holder Registry::Who(uint32_t handle) const {
  for (const Entry& e : entries_) {
    if (e.handle != handle) continue;
    if (e.pid == self_.pid && e.start == self_.start) return Holder::kMine;
    return ProcessId{e.pid, e.start}.Alive() ? Holder::kLive : Holder::kGone;
  }
  return Holder::kGone;
}

void Registry::Publish(std::vector<uint32_t> handles) {
  std::sort(handles.begin(), handles.end());
  if (handles == published_) return;
  // A handle number is one object at a time: a new entry replaces any
  // other process's stale entry for the same number.
  std::erase_if(entries_, [&](const Entry& e) {
    const bool mine = e.pid == self_.pid && e.start == self_.start;
    return mine || std::binary_search(handles.begin(), handles.end(), e.handle);
  });
  for (uint32_t h : handles) entries_.push_back({h, self_.pid, self_.start});
  published_ = std::move(handles);
  Write();
}

void Registry::Forget(uint32_t handle) {
  std::erase_if(entries_, [&](const Entry& e) { return e.handle == handle; });
  Write();
}

}  // namespace tpmtoken::tpm

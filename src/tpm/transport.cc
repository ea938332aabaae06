#include "tpm/transport.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <tss2/tss2_tctildr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <mutex>

#include "tpm/tpm.h"
#include "util/log.h"

namespace tpmtoken::tpm {

struct Transport::Wrapper {
  TSS2_TCTI_CONTEXT_COMMON_V2 common;  // first: tpm2-tss casts the context to it
  Transport* self;
};

namespace {

constexpr uint64_t kMagic = 0x7470'6d74'6f6b'656eULL;  // "tpmtoken"

Transport* Self(TSS2_TCTI_CONTEXT* ctx) {
  // Wrapper is standard-layout: the context pointer is the Wrapper's.
  auto* w = reinterpret_cast<Transport::Wrapper*>(ctx);
  return w->common.v1.magic == kMagic ? w->self : nullptr;
}

TSS2_RC WrapTransmit(TSS2_TCTI_CONTEXT* ctx, size_t size, const uint8_t* cmd) {
  Transport* t = Self(ctx);
  return t ? t->Transmit(size, cmd) : TSS2_TCTI_RC_BAD_CONTEXT;
}
TSS2_RC WrapReceive(TSS2_TCTI_CONTEXT* ctx, size_t* size, uint8_t* rsp, int32_t timeout) {
  Transport* t = Self(ctx);
  return t ? t->Receive(size, rsp, timeout) : TSS2_TCTI_RC_BAD_CONTEXT;
}
void WrapFinalize(TSS2_TCTI_CONTEXT*) {}  // the Transport owns everything
TSS2_RC WrapCancel(TSS2_TCTI_CONTEXT*) { return TSS2_TCTI_RC_NOT_IMPLEMENTED; }
TSS2_RC WrapPollHandles(TSS2_TCTI_CONTEXT*, TSS2_TCTI_POLL_HANDLE*, size_t*) {
  return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}
TSS2_RC WrapLocality(TSS2_TCTI_CONTEXT*, uint8_t locality) {
  return locality == 0 ? TSS2_RC_SUCCESS : TSS2_TCTI_RC_NOT_IMPLEMENTED;
}
TSS2_RC WrapSticky(TSS2_TCTI_CONTEXT*, TPM2_HANDLE*, uint8_t) {
  return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

// "host=127.0.0.1,port=2321" or "path=/run/swtpm.sock".
void ParseSwtpm(const std::string& conf, std::string* host, std::string* port, std::string* path) {
  size_t pos = 0;
  while (pos < conf.size()) {
    size_t comma = conf.find(',', pos);
    if (comma == std::string::npos) comma = conf.size();
    const std::string item = conf.substr(pos, comma - pos);
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (key == "host") *host = value;
    else if (key == "port") *port = value;
    else if (key == "path") *path = value;
    else if (!item.empty())
      throw TpmError("TCTI 'swtpm:" + conf + "': unknown key '" + key + "'", TSS2_TCTI_RC_BAD_VALUE);
    pos = comma + 1;
  }
}

TpmError CannotOpen(const std::string& device, int err) {
  return TpmError("TCTI 'device:" + device + "': cannot open it (" + std::strerror(err) + ")",
                  TSS2_TCTI_RC_IO_ERROR);
}

// A forked child gets a copy of every descriptor. A copy of a bare TPM
// device's, taken while a turn had it open, keeps the device busy (one
// opener at a time) until the child exits or execs, and the parent's own
// next turn waits on it: a server that forks workers while it signs would
// lock itself out. The child's copies are closed at fork; the module the
// child inherited is never used again (Current() is the parent's only;
// C_Initialize makes the child its own). Each open and close of the device
// happens with its record here under g_fork_mu, which fork() takes too
// (pthread_atfork), so no fork sees a descriptor the record lacks.
std::mutex g_fork_mu;
int g_device_fds[8] = {-1, -1, -1, -1, -1, -1, -1, -1};  // under g_fork_mu

void ForkPrepare() { g_fork_mu.lock(); }
void ForkParent() { g_fork_mu.unlock(); }
void ForkChild() {
  for (int& fd : g_device_fds) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  g_fork_mu.unlock();
}

// Opens path, recorded for the fork handler (unless all eight records are
// taken: more device transports than any process here makes). -1 with errno
// set when the open fails.
int OpenRecorded(const std::string& path) {
  [[maybe_unused]] static const bool handlers = [&] {
    if (pthread_atfork(ForkPrepare, ForkParent, ForkChild) == 0) return true;
    log::Warn("could not register the fork handler: a child forked during a TPM command "
              "keeps ", path, " open until it exits");
    return false;
  }();
  std::lock_guard lock(g_fork_mu);
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -1;
  if (int* free = std::find(std::begin(g_device_fds), std::end(g_device_fds), -1);
      free != std::end(g_device_fds))
    *free = fd;
  return fd;
}

void CloseRecorded(int fd) {
  std::lock_guard lock(g_fork_mu);
  close(fd);
  std::replace(std::begin(g_device_fds), std::end(g_device_fds), fd, -1);
}
}  // namespace

std::string DevicePath(const std::string& conf) {
  const size_t colon = conf.find(':');
  const std::string name = conf.substr(0, colon);
  if (name != "device" && name != "tcti-device" && name.rfind("libtss2-tcti-device.so", 0) != 0)
    return "";
  return colon == std::string::npos || colon + 1 == conf.size() ? "/dev/tpm0"
                                                                 : conf.substr(colon + 1);
}

std::string BareDevicePath(const std::string& conf) {
  const std::string path = DevicePath(conf);
  const size_t slash = path.rfind('/');
  const std::string file = slash == std::string::npos ? path : path.substr(slash + 1);
  return file.rfind("tpmrm", 0) == 0 ? "" : path;
}

std::unique_ptr<Transport> Transport::Open(const std::string& conf, int timeout_ms) {
  std::unique_ptr<Transport> t(new Transport());
  t->conf_ = conf;
  t->timeout_ms_ = timeout_ms;
  t->swtpm_ = conf == "swtpm" || conf.rfind("swtpm:", 0) == 0;
  if (t->swtpm_ && conf.size() > 6) ParseSwtpm(conf.substr(6), &t->host_, &t->port_, &t->path_);
  t->device_ = BareDevicePath(conf);
  t->wrapper_ = std::make_unique<Wrapper>();
  std::memset(&t->wrapper_->common, 0, sizeof t->wrapper_->common);
  auto& v1 = t->wrapper_->common.v1;
  v1.magic = kMagic;
  v1.version = 2;
  v1.transmit = WrapTransmit;
  v1.receive = WrapReceive;
  v1.finalize = WrapFinalize;
  v1.cancel = WrapCancel;
  v1.getPollHandles = WrapPollHandles;
  v1.setLocality = WrapLocality;
  t->wrapper_->common.makeSticky = WrapSticky;
  t->wrapper_->self = t.get();
  t->Connect();
  return t;
}

Transport::~Transport() { Disconnect(); }

TSS2_TCTI_CONTEXT* Transport::tcti() {
  return reinterpret_cast<TSS2_TCTI_CONTEXT*>(&wrapper_->common);
}

void Transport::Connect() {
  if (swtpm_) {
    // tpm2-tss connects once at initialization as a sanity check; so do we,
    // so a wrong port is named at open, not at the first command.
    deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
    const TSS2_RC rc = SwtpmTransmit(0, nullptr);
    if (sock_ >= 0) close(sock_);
    sock_ = -1;
    if (rc != TSS2_RC_SUCCESS) throw TpmError("TCTI 'swtpm:" + conf_.substr(std::min<size_t>(6, conf_.size())) + "'", rc);
    return;
  }
  if (!device_.empty()) {
    // Whether it exists and may be opened is known now; held by another
    // process (EBUSY) it exists: the wait is the first turn's, under the
    // registry's lock, where no other tpmtoken process holds it. (Waiting
    // here, outside that lock, a process could starve while others take
    // turns back to back.) It stays closed until this process's first turn.
    const int fd = OpenRecorded(device_);
    if (fd >= 0) CloseRecorded(fd);
    else if (errno != EBUSY)
      throw CannotOpen(device_, errno);
    return;
  }
  TSS2_RC rc = Tss2_TctiLdr_Initialize(conf_.c_str(), &inner_);
  if (rc != TSS2_RC_SUCCESS) throw TpmError("TCTI '" + conf_ + "'", rc);
}

void Transport::Disconnect() {
  if (sock_ >= 0) close(sock_);
  sock_ = -1;
  Release();
  have_header_ = false;
  if (inner_) Tss2_TctiLdr_Finalize(&inner_);
  inner_ = nullptr;
}

void Transport::Reconnect() {
  Disconnect();
  broken_ = true;
  Connect();
  broken_ = false;
  ++generation_;
  log::Info("reconnected to the TPM through '", conf_, "' after a failed exchange");
}

int Transport::RemainingMs() const {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline_ - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

TSS2_RC Transport::Transmit(size_t size, const uint8_t* cmd) {
  if (broken_) {
    try {
      Reconnect();
    } catch (const TpmError& e) {
      log::Error("the TPM connection could not be re-made: ", e.what());
      return TSS2_TCTI_RC_IO_ERROR;
    }
  }
  deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  const TSS2_RC rc = swtpm_             ? SwtpmTransmit(size, cmd)
                     : !device_.empty() ? DeviceTransmit(size, cmd)
                                        : Tss2_Tcti_Transmit(inner_, size, cmd);
  if (rc != TSS2_RC_SUCCESS) broken_ = true;
  // Sent: until an answer tpm2-tss accepts arrives, its context waits for one.
  interrupted_ = rc == TSS2_RC_SUCCESS;
  return rc;
}

TSS2_RC Transport::Receive(size_t* size, uint8_t* rsp, int32_t timeout) {
  if (broken_) return TSS2_TCTI_RC_BAD_SEQUENCE;
  TSS2_RC rc;
  if (swtpm_) {
    rc = SwtpmReceive(size, rsp);
  } else if (!device_.empty()) {
    rc = DeviceReceive(size, rsp);
  } else {
    // The caller's TSS2_TCTI_TIMEOUT_BLOCK (ESAPI and the system API's
    // one-call functions always block) becomes the configured deadline.
    const int left = RemainingMs();
    rc = Tss2_Tcti_Receive(inner_, size, rsp, timeout >= 0 && timeout < left ? timeout : left);
    if ((rc & 0xFFFF) == TSS2_BASE_RC_TRY_AGAIN && timeout >= 0 && timeout < left) return rc;
    if ((rc & 0xFFFF) == TSS2_BASE_RC_TRY_AGAIN) rc = TSS2_TCTI_RC_IO_ERROR;
  }
  // tpm2-tss leaves its context waiting (stuck mid-command) on an answer
  // whose tag is not a TPM 2.0 one or whose size claims more than arrived;
  // any other answer ends the exchange.
  if (rc == TSS2_RC_SUCCESS && rsp && *size >= 10) {
    const uint16_t tag = static_cast<uint16_t>(rsp[0] << 8 | rsp[1]);
    if ((tag == TPM2_ST_SESSIONS || tag == TPM2_ST_NO_SESSIONS) &&
        DecodeBe32(ByteView(rsp + 2, 4)) <= *size)
      interrupted_ = false;
  }
  if (rc != TSS2_RC_SUCCESS && rc != TSS2_TCTI_RC_INSUFFICIENT_BUFFER) {
    broken_ = true;
    if (RemainingMs() == 0)
      log::Error("the TPM did not answer within ", timeout_ms_ / 1000,
                 " s (tpm_timeout in tpmtoken.conf); the connection will be re-made");
  }
  return rc;
}

// One connection per command, as tpm2-tss's swtpm TCTI does; size 0 only
// connects (the check at open).
TSS2_RC Transport::SwtpmTransmit(size_t size, const uint8_t* cmd) {
  if (sock_ >= 0) close(sock_);
  sock_ = -1;
  have_header_ = false;
  const int ms = std::max(RemainingMs(), 1);
  const timeval tv{ms / 1000, (ms % 1000) * 1000};
  auto configure = [&](int fd) {
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  };
  if (!path_.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) return TSS2_TCTI_RC_BAD_VALUE;
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return TSS2_TCTI_RC_IO_ERROR;
    configure(fd);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd);
      return TSS2_TCTI_RC_IO_ERROR;
    }
    sock_ = fd;
  } else {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    if (getaddrinfo(host_.c_str(), port_.c_str(), &hints, &list) != 0) return TSS2_TCTI_RC_BAD_VALUE;
    for (addrinfo* a = list; a && sock_ < 0; a = a->ai_next) {
      const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      configure(fd);  // SO_SNDTIMEO bounds connect() too (Linux)
      if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) sock_ = fd;
      else close(fd);
    }
    freeaddrinfo(list);
    if (sock_ < 0) return TSS2_TCTI_RC_IO_ERROR;
  }
  for (size_t off = 0; off < size;) {
    const ssize_t n = send(sock_, cmd + off, size - off, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return TSS2_TCTI_RC_IO_ERROR;
    }
    off += static_cast<size_t>(n);
  }
  return TSS2_RC_SUCCESS;
}

TSS2_RC Transport::SwtpmReceive(size_t* size, uint8_t* rsp) {
  if (sock_ < 0 || !size) return TSS2_TCTI_RC_BAD_SEQUENCE;
  auto read_all = [&](uint8_t* out, size_t n) -> bool {
    for (size_t off = 0; off < n;) {
      pollfd p{sock_, POLLIN, 0};
      const int ms = RemainingMs();
      const int r = ms > 0 ? poll(&p, 1, ms) : 0;
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      const ssize_t got = recv(sock_, out + off, n - off, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      off += static_cast<size_t>(got);
    }
    return true;
  };
  if (!have_header_) {
    if (!read_all(header_, sizeof header_)) return TSS2_TCTI_RC_IO_ERROR;
    have_header_ = true;
  }
  const uint32_t total = DecodeBe32(ByteView(header_ + 2, 4));
  if (total < sizeof header_ || total > SysContext::kMaxCommand) return TSS2_TCTI_RC_MALFORMED_RESPONSE;
  if (!rsp) {
    *size = total;
    return TSS2_RC_SUCCESS;
  }
  if (*size < total) {
    *size = total;
    return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
  }
  std::memcpy(rsp, header_, sizeof header_);
  if (!read_all(rsp + sizeof header_, total - sizeof header_)) return TSS2_TCTI_RC_IO_ERROR;
  *size = total;
  close(sock_);
  sock_ = -1;
  have_header_ = false;
  return TSS2_RC_SUCCESS;
}

int Transport::OpenDevice() {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (int pause_ms = 5;; pause_ms = std::min(pause_ms * 2, 200)) {
    const int fd = OpenRecorded(device_);
    if (fd >= 0) return fd;
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EBUSY) throw CannotOpen(device_, err);
    if (std::chrono::steady_clock::now() >= until)
      throw TpmError("TCTI 'device:" + device_ + "': another process kept it open for " +
                           std::to_string(timeout_ms_ / 1000) +
                           " s (tpm_timeout); a TPM device without a resource manager admits one "
                           "opener at a time: use /dev/tpmrm0 or tpm2-abrmd, or end that process",
                       TSS2_TCTI_RC_IO_ERROR);
    if (pause_ms == 5)
      log::Info("waiting for ", device_, ": another process has it open (the TPM device admits ",
                "one opener at a time)");
    usleep(pause_ms * 1000);
  }
}

// The end of a turn, or a failed exchange: the device goes back.
void Transport::Release() {
  if (dev_ >= 0) CloseRecorded(dev_);
  dev_ = -1;
  // Only what an unfinished exchange left (a delivered answer is wiped then):
  // every turn ends here, on any transport.
  Wipe(dev_rsp_, dev_rsp_len_);
  dev_rsp_len_ = 0;
}

// The kernel's TPM device takes a command in one write and answers it whole
// to one read; a stand-in (a pseudo-terminal in the tests) may split either,
// so both loop, within the deadline.
TSS2_RC Transport::DeviceTransmit(size_t size, const uint8_t* cmd) {
  if (dev_ < 0) {
    try {
      dev_ = OpenDevice();
    } catch (const TpmError& e) {
      log::Error(e.what());
      return TSS2_TCTI_RC_IO_ERROR;
    }
    // The wait for the device is not the command's: its timeout starts now.
    deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  }
  dev_rsp_len_ = 0;
  for (size_t off = 0; off < size;) {
    const ssize_t n = write(dev_, cmd + off, size - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return TSS2_TCTI_RC_IO_ERROR;
    off += static_cast<size_t>(n);
  }
  return TSS2_RC_SUCCESS;
}

TSS2_RC Transport::DeviceReceive(size_t* size, uint8_t* rsp) {
  if (dev_ < 0 || !size) return TSS2_TCTI_RC_BAD_SEQUENCE;
  auto claimed = [&] {
    return dev_rsp_len_ < 10 ? 0 : DecodeBe32(ByteView(dev_rsp_ + 2, 4));
  };
  while (dev_rsp_len_ < 10 || dev_rsp_len_ < claimed()) {
    if (dev_rsp_len_ >= 10 && (claimed() < 10 || claimed() > sizeof dev_rsp_))
      return TSS2_TCTI_RC_MALFORMED_RESPONSE;
    pollfd p{dev_, POLLIN, 0};
    const int ms = RemainingMs();
    const int r = ms > 0 ? poll(&p, 1, ms) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return TSS2_TCTI_RC_IO_ERROR;
    const ssize_t got = read(dev_, dev_rsp_ + dev_rsp_len_, sizeof dev_rsp_ - dev_rsp_len_);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return TSS2_TCTI_RC_IO_ERROR;
    dev_rsp_len_ += static_cast<size_t>(got);
  }
  const uint32_t total = claimed();
  if (total < 10 || total > sizeof dev_rsp_ || dev_rsp_len_ > total)
    return TSS2_TCTI_RC_MALFORMED_RESPONSE;  // more than one answer
  if (!rsp) {
    *size = total;
    return TSS2_RC_SUCCESS;
  }
  if (*size < total) {
    *size = total;
    return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
  }
  std::memcpy(rsp, dev_rsp_, total);
  *size = total;
  Wipe(dev_rsp_, total);
  dev_rsp_len_ = 0;
  return TSS2_RC_SUCCESS;
}

namespace {
size_t SysSize() { return Tss2_Sys_GetContextSize(SysContext::kMaxCommand); }
}  // namespace

SysContext::SysContext(TSS2_TCTI_CONTEXT* tcti) : size_(SysSize()), tcti_(tcti) {
  block_.reset(new uint8_t[size_]());
  Reset();
}

SysContext::~SysContext() { Wipe(block_.get(), size_); }

void SysContext::Reset() {
  WipeBuffer();
  if (TSS2_RC rc = Tss2_Sys_Initialize(get(), size_, tcti_, nullptr); rc != TSS2_RC_SUCCESS)
    throw TpmError("Tss2_Sys_Initialize", rc);
}

// tpm2-tss puts the buffer right after its context structure and sizes it
// as the block less that structure (Tss2_Sys_GetContextSize).
uint8_t* SysContext::buffer() const { return block_.get() + (size_ - kMaxCommand); }

void SysContext::WipeBuffer() { Wipe(buffer(), kMaxCommand); }

ByteView SysContext::Response() const {
  const uint32_t claimed = DecodeBe32(ByteView(buffer() + 2, 4));
  if (claimed < 10 || claimed > kMaxCommand) return {};
  return {buffer(), claimed};
}

bool SysContext::InResponse(const uint8_t* p, size_t n) const {
  const ByteView r = Response();
  if (r.empty() || p < r.data() || p > r.data() + r.size()) return false;
  return n <= static_cast<size_t>(r.data() + r.size() - p);
}

void ResetSys(TSS2_SYS_CONTEXT* sys) {
  TSS2_TCTI_CONTEXT* tcti = nullptr;
  if (Tss2_Sys_GetTctiContext(sys, &tcti) == TSS2_RC_SUCCESS && tcti)
    Tss2_Sys_Initialize(sys, SysSize(), tcti, nullptr);
}

}  // namespace tpmtoken::tpm

// The bus to the TPM, treated as hostile (DESIGN.md, "The bus and the caller
// are hostile"): every exchange is bounded in time, a connection that failed
// is replaced before the next command, and the system API context whose
// buffer holds commands and responses is the module's own, so its bounds are
// known and it can be wiped whole.
#pragma once
#include <tss2/tss2_sys.h>
#include <tss2/tss2_tcti.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "util/bytes.h"

namespace tpmtoken::tpm {

// The device of a device TCTI, by any of tpm2-tss's names for it ("device",
// "tcti-device", "libtss2-tcti-device.so[.0]"), alone (its default,
// /dev/tpm0) or with a path; "" for other TCTIs.
std::string DevicePath(const std::string& conf);
// The same, only for a TPM device without a resource manager ("" for
// /dev/tpmrm*, which has the kernel's and goes through tpm2-tss's TCTI).
std::string BareDevicePath(const std::string& conf);

// A TCTI that wraps the configured one (loaded through the TCTI loader) and
// bounds every receive by a deadline set at transmit: a TPM, resource
// manager or proxy that stalls, even half-way through a response, fails the
// command with TSS2_TCTI_RC_IO_ERROR after timeout_ms. The loaded TCTIs for
// device, mssim and tabrmd honour receive timeouts; tpm2-tss's swtpm TCTI
// does not (it blocks in recv), so "swtpm:" is spoken here directly (raw TPM
// commands over TCP or a Unix socket, one connection per command, as
// tpm2-tss does). After a failed exchange the connection is re-made before
// the next command; generation() counts those re-connections.
// A TPM device without a resource manager ("device:/dev/tpm0", or any device
// path but /dev/tpmrm*) admits one opener at a time, so it is spoken here
// too: opened at the first command of a turn (waiting up to the timeout
// while another process has it open) and closed at the turn's end
// (Release), so processes that take turns through the registry (coord.h)
// share it. The kernel flushes nothing at close on such a device: the
// handles each process keeps stay loaded, as the registry expects. A child
// forked during a turn gets its copy of the device's descriptor closed at
// fork, so it cannot keep the device busy.
class Transport {
 public:
  static std::unique_ptr<Transport> Open(const std::string& conf, int timeout_ms);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  TSS2_TCTI_CONTEXT* tcti();
  bool broken() const { return broken_; }
  // Whether a command went out and no answer that tpm2-tss accepts came
  // back (none, or a bad tag or size) since the last call: the system API
  // context is then stuck mid-command (tpm2-tss answers the next Prepare
  // with "called in the wrong order") until reset.
  bool TakeInterrupted() { return std::exchange(interrupted_, false); }
  uint64_t generation() const { return generation_; }
  int timeout_ms() const { return timeout_ms_; }
  // Re-makes the connection now (throws TpmError when it cannot).
  void Reconnect();
  // A TPM device without a resource manager (spoken directly, one opener).
  bool bare_device() const { return !device_.empty(); }
  // The end of a turn: a bare device is closed for the next process.
  void Release();

  struct Wrapper;  // the TCTI structure tpm2-tss sees
  // TCTI entry points (called through the wrapper's function table).
  TSS2_RC Transmit(size_t size, const uint8_t* cmd);
  TSS2_RC Receive(size_t* size, uint8_t* rsp, int32_t timeout);

 private:
  Transport() = default;
  void Connect();     // the inner TCTI (or nothing to do for swtpm)
  void Disconnect();
  TSS2_RC SwtpmTransmit(size_t size, const uint8_t* cmd);
  TSS2_RC SwtpmReceive(size_t* size, uint8_t* rsp);
  int OpenDevice();  // waits while another process has it open; throws
  TSS2_RC DeviceTransmit(size_t size, const uint8_t* cmd);
  TSS2_RC DeviceReceive(size_t* size, uint8_t* rsp);
  int RemainingMs() const;

  std::unique_ptr<Wrapper> wrapper_;
  std::string conf_;
  bool swtpm_ = false;
  std::string host_ = "localhost", port_ = "2321", path_;
  int timeout_ms_ = 120000;
  TSS2_TCTI_CONTEXT* inner_ = nullptr;
  int sock_ = -1;                   // swtpm: this command's connection
  uint8_t header_[10] = {};         // swtpm: the response header, read first
  bool have_header_ = false;
  std::string device_;              // a bare TPM device's path
  int dev_ = -1;                    // open during a turn
  uint8_t dev_rsp_[4096] = {};      // its response, read whole
  size_t dev_rsp_len_ = 0;          // bytes of it received
  std::chrono::steady_clock::time_point deadline_;
  bool broken_ = false;
  bool interrupted_ = false;
  uint64_t generation_ = 0;
};

// The system API context the module owns: a command/response buffer of
// known size inside a block the module allocated.
class SysContext {
 public:
  explicit SysContext(TSS2_TCTI_CONTEXT* tcti);
  ~SysContext();
  SysContext(const SysContext&) = delete;
  SysContext& operator=(const SysContext&) = delete;

  TSS2_SYS_CONTEXT* get() { return reinterpret_cast<TSS2_SYS_CONTEXT*>(block_.get()); }
  // Back to a fresh state (after a failed exchange tpm2-tss refuses the
  // next Prepare); the buffer's contents are wiped.
  void Reset();
  // Wipes the whole command/response buffer: whatever a response claimed,
  // only memory the module owns is written.
  void WipeBuffer();
  // The bytes of the last response, as received (header included); empty
  // when the header's size is not within the buffer.
  ByteView Response() const;
  // Whether [p, p + n) lies within the last response.
  bool InResponse(const uint8_t* p, size_t n) const;

  static constexpr size_t kMaxCommand = 4096;  // TPM2_MAX_COMMAND_SIZE

 private:
  uint8_t* buffer() const;
  std::unique_ptr<uint8_t[]> block_;
  size_t size_ = 0;
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
};

// Re-initializes a SysContext given only its system API pointer (for the
// flushes that RAII owners do while an error unwinds).
void ResetSys(TSS2_SYS_CONTEXT* sys);

}  // namespace tpmtoken::tpm

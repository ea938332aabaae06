// C_Initialize, C_Finalize, C_GetInfo and the process-wide state.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "p11/guard.h"
#include "util/fifo_lock.h"
#include "p11/interface.h"

namespace tpmtoken::p11 {
namespace {

std::mutex g_init_mu;
Module* g_module = nullptr;  // owned; deliberately leaked in a forked child
pid_t g_pid = 0;

FifoLock g_os_lock;  // fair: callers in arrival order (issue 10, item 5)
CK_C_INITIALIZE_ARGS g_app_lock{};
void* g_app_mutex = nullptr;

// Programs such as curl with libp11 exit without C_Finalize. On a TPM
// without a resource manager whatever stays loaded would stay there, so at
// process exit flush what this process cached (never a parent's: Current()
// is null in a child that has not initialized).
void FlushAtExit() {
  Module* m = Current();
  if (!m) return;
  Lock();
  try {
    m->tpm().FlushCached();
  } catch (const std::exception& e) {
    log::Debug("flushing at exit: ", e.what());
  }
  Unlock();
}

}  // namespace

Module* Current() { return (g_module && g_pid == getpid()) ? g_module : nullptr; }

void Lock() {
  if (g_app_mutex)
    g_app_lock.LockMutex(g_app_mutex);
  else
    g_os_lock.lock();
}

void Unlock() {
  if (g_app_mutex)
    g_app_lock.UnlockMutex(g_app_mutex);
  else
    g_os_lock.unlock();
}

CK_RV MapTpmError(const tpm::TpmError& e) {
  switch (e.base()) {
    case TPM2_RC_LOCKOUT:
      // Only PIN seals are DA-protected, and C_Login answers a lockout there
      // itself, after the TPM's audited state confirms it. Anywhere else the
      // code (which carries no HMAC) was forged: a device error, not a PIN.
      log::Error(e.what(),
                 ": the TPM answered 'dictionary-attack lockout' for an operation no lockout "
                 "applies to (the module's keys are NODA): the answer was altered on the way, or "
                 "the TPM is failing");
      return CKR_DEVICE_ERROR;
    case TPM2_RC_NV_SPACE:
      // The code carries no HMAC: only a command that allocates NV memory
      // can truly be short of it.
      if (e.command == TPM2_CC_NV_DefineSpace) {
        log::Error(e.what(), ": the TPM has no NV space left (`tpm2_getcap handles-nv-index` "
                   "lists the indices; `tpmtoken store delete` frees a removed store's)");
        return CKR_DEVICE_MEMORY;
      }
      log::Error(e.what(), ": the TPM answered 'no NV space' to a command that allocates none: "
                 "the answer was altered on the way, or the TPM is failing");
      return CKR_DEVICE_ERROR;
    case TPM2_RC_BAD_AUTH:
    case TPM2_RC_AUTH_FAIL: {
      // Only a hierarchy's authorization can be fixed by configuration;
      // every other authorization is one the module computed itself.
      if (e.RefusedAuthOf(TPM2_RH_OWNER))
        log::Error(e.what(), ": the TPM refused the owner authorization (set owner_auth in "
                   "tpmtoken.conf to the TPM's owner password)");
      else
        log::Error(e.what(), ": the TPM refused an authorization the module computed from its "
                   "own values: the answer was altered on the way, the object was replaced, or "
                   "the TPM is failing");
      return CKR_DEVICE_ERROR;
    }
    case TPM2_RC_NONCE:
      // The module sends only nonces the TPM gave it: the TPM's answer that
      // gave it (TPM2_StartAuthSession's, which carries no HMAC) was altered.
      log::Error(e.what(), ": the TPM refused a session nonce it sent itself: its answer was "
                 "altered on the way, or the TPM is failing");
      return CKR_DEVICE_ERROR;
    case TPM2_RC_POLICY_FAIL:
      // A key bound to PCRs (CKA_TPMTOKEN_PCR_POLICY) after the boot state
      // changed: the TPM itself refuses the use; e names the PCRs.
      if (dynamic_cast<const tpm::KeyPolicyError*>(&e)) {
        log::Error(e.what());
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
      }
      // Anywhere else the module's policies are its own seals, whose
      // failures the store and login paths report themselves.
      log::Error(e.what(),
                 ": the TPM answered 'policy check failed' for a command no key policy "
                 "governs: the answer was altered on the way, or the TPM is failing");
      return CKR_DEVICE_ERROR;
    default:
      log::Error(e.what());
      return CKR_DEVICE_ERROR;
  }
}

CK_RV Initialize(CK_VOID_PTR init_args) {
  std::lock_guard init(g_init_mu);
  if (Current()) return CKR_CRYPTOKI_ALREADY_INITIALIZED;
  // A module inherited across fork() belongs to the parent: leave its TPM
  // connection, store handle and memory alone.
  g_module = nullptr;
  CK_C_INITIALIZE_ARGS args{};
  if (init_args) {
    std::memcpy(&args, init_args, sizeof args);
    if (args.pReserved) return CKR_ARGUMENTS_BAD;
    const int given = !!args.CreateMutex + !!args.DestroyMutex + !!args.LockMutex +
                      !!args.UnlockMutex;
    if (given != 0 && given != 4) return CKR_ARGUMENTS_BAD;
    if (given == 4 && !(args.flags & CKF_OS_LOCKING_OK)) {
      void* mutex = nullptr;
      if (args.CreateMutex(&mutex) != CKR_OK) return CKR_CANT_LOCK;
      g_app_lock = args;
      g_app_mutex = mutex;
    }
  }
  try {
    g_module = Module::Create().release();
  } catch (const std::exception& e) {
    log::Error("C_Initialize: ", e.what());
    return CKR_FUNCTION_FAILED;
  }
  g_pid = getpid();
  static std::once_flag at_exit;
  std::call_once(at_exit, [] { std::atexit(FlushAtExit); });
  return CKR_OK;
}

CK_RV Finalize(CK_VOID_PTR reserved) {
  if (reserved) return CKR_ARGUMENTS_BAD;
  std::lock_guard init(g_init_mu);
  Module* m = Current();
  if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
  Lock();  // wait for calls in flight
  m->FlushAllKeyUses();
  g_module = nullptr;
  Unlock();
  delete m;
  if (g_app_mutex) {
    g_app_lock.DestroyMutex(g_app_mutex);
    g_app_mutex = nullptr;
  }
  return CKR_OK;
}

namespace {
CK_RV FillInfo(CK_INFO_PTR info, CK_VERSION version) {
  if (!Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!info) return CKR_ARGUMENTS_BAD;
  std::memset(info, 0, sizeof *info);
  info->cryptokiVersion = version;
  PadField(info->manufacturerID, sizeof info->manufacturerID, "tpmtoken project");
  // Under 32 characters: clients print it whole (a full field showed as
  // "...PKCS#11 modul" in OpenSSH and strongSwan).
  PadField(info->libraryDescription, sizeof info->libraryDescription,
           "tpmtoken TPM 2.0 PKCS#11 token");
  info->libraryVersion = {kLibraryVersionMajor, kLibraryVersionMinor};
  return CKR_OK;
}
}  // namespace

CK_RV GetInfo240(CK_INFO_PTR info) { return FillInfo(info, {2, 40}); }
CK_RV GetInfo30(CK_INFO_PTR info) { return FillInfo(info, {3, 0}); }

}  // namespace tpmtoken::p11

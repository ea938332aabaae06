// The C ABI's shared plumbing: the process's module instance, fork
// detection, the module lock, and the mapping of failures to CKR codes.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <new>

#include "store/db.h"
#include "token/module.h"
#include "tpm/tpm.h"
#include "util/log.h"

namespace tpmtoken::p11 {

// The module of this process, or nullptr when not initialized here (including
// a forked child that has not called C_Initialize itself).
Module* Current();

// The lock every entry point holds while it runs: the OS mutex, or the
// application's callbacks when it supplied them without CKF_OS_LOCKING_OK.
void Lock();
void Unlock();

CK_RV MapTpmError(const tpm::TpmError& e);

// Runs fn(module) under the lock; turns exceptions into CKR codes with one
// log line naming the cause.
template <typename Fn>
CK_RV Guarded(Fn&& fn) {
  Module* m = Current();
  if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
  Lock();
  CK_RV rv;
  try {
    rv = fn(*m);
  } catch (const tpm::TpmError& e) {
    rv = MapTpmError(e);
  } catch (const tpm::PrimaryMismatch& e) {
    // The TPM answered with another storage key than the pinned one (its
    // line names the causes): nothing was salted to it.
    log::Error(e.what());
    rv = CKR_DEVICE_ERROR;
  } catch (const store::StoreError& e) {
    log::Error("store ", m->store().path(), ": ", e.what());
    rv = CKR_DEVICE_ERROR;
  } catch (const std::bad_alloc&) {
    rv = CKR_HOST_MEMORY;
  } catch (const std::exception& e) {
    log::Error(e.what());
    rv = CKR_GENERAL_ERROR;
  }
  Unlock();
  return rv;
}

inline ByteView Bytes(const CK_BYTE* p, CK_ULONG n) { return {p, static_cast<size_t>(n)}; }

}  // namespace tpmtoken::p11

// The PKCS#11 C ABI for cryptographic operations: each entry point checks
// its pointers and runs the core under the module lock; a bad pointer given
// to a running operation ends it (token/operation.h). Dual-function and
// recover operations are not offered (CKR_FUNCTION_NOT_SUPPORTED).
#include "mech/table.h"
#include "p11/guard.h"
#include "p11/interface.h"

using tpmtoken::Module;
using tpmtoken::p11::Bytes;
using tpmtoken::p11::Guarded;

namespace {
// A bad argument to a call of a running operation ends it, like every error
// but a length query or a short buffer (token/operation.h); a bad argument
// to C_*Init leaves a running one alone.
CK_RV EndsOperation(CK_SESSION_HANDLE h, CK_FLAGS family) {
  return Guarded([&](Module& m) {
    m.CancelOperations(h, family);  // a bad session has nothing to end
    return CKR_ARGUMENTS_BAD;
  });
}
}  // namespace

TPMTOKEN_EXPORT CK_RV C_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
                                    CK_OBJECT_HANDLE key) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!mech || (!mech->pParameter && mech->ulParameterLen)) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.EncryptInit(h, mech, key); });
}
TPMTOKEN_EXPORT CK_RV C_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len,
                                CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if ((!data && len) || !out_len) return EndsOperation(h, CKF_ENCRYPT);
  return Guarded([&](Module& m) { return m.Encrypt(h, Bytes(data, len), out, out_len); });
}
TPMTOKEN_EXPORT CK_RV C_EncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len,
                                      CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if ((!data && len) || !out_len) return EndsOperation(h, CKF_ENCRYPT);
  return Guarded([&](Module& m) { return m.EncryptUpdate(h, Bytes(data, len), out, out_len); });
}
TPMTOKEN_EXPORT CK_RV C_EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!out_len) return EndsOperation(h, CKF_ENCRYPT);
  return Guarded([&](Module& m) { return m.EncryptFinal(h, out, out_len); });
}
TPMTOKEN_EXPORT CK_RV C_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
                                    CK_OBJECT_HANDLE key) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!mech || (!mech->pParameter && mech->ulParameterLen)) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.DecryptInit(h, mech, key); });
}
TPMTOKEN_EXPORT CK_RV C_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len,
                                CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if ((!data && len) || !out_len) return EndsOperation(h, CKF_DECRYPT);
  return Guarded([&](Module& m) { return m.Decrypt(h, Bytes(data, len), out, out_len); });
}
TPMTOKEN_EXPORT CK_RV C_DecryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len,
                                      CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if ((!data && len) || !out_len) return EndsOperation(h, CKF_DECRYPT);
  return Guarded([&](Module& m) { return m.DecryptUpdate(h, Bytes(data, len), out, out_len); });
}
TPMTOKEN_EXPORT CK_RV C_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!out_len) return EndsOperation(h, CKF_DECRYPT);
  return Guarded([&](Module& m) { return m.DecryptFinal(h, out, out_len); });
}

TPMTOKEN_EXPORT CK_RV C_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!mech) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.DigestInit(h, mech); });
}
TPMTOKEN_EXPORT CK_RV C_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len,
                               CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if ((!data && len) || !out_len) return EndsOperation(h, CKF_DIGEST);
  return Guarded([&](Module& m) { return m.Digest(h, Bytes(data, len), out, out_len); });
}
TPMTOKEN_EXPORT CK_RV C_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!data && len) return EndsOperation(h, CKF_DIGEST);
  return Guarded([&](Module& m) { return m.DigestUpdate(h, Bytes(data, len)); });
}
TPMTOKEN_EXPORT CK_RV C_DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  return Guarded([&](Module& m) { return m.DigestKey(h, key); });
}
TPMTOKEN_EXPORT CK_RV C_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!out_len) return EndsOperation(h, CKF_DIGEST);
  return Guarded([&](Module& m) { return m.DigestFinal(h, out, out_len); });
}

TPMTOKEN_EXPORT CK_RV C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
                                 CK_OBJECT_HANDLE key) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!mech || (!mech->pParameter && mech->ulParameterLen)) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.SignInit(h, mech, key); });
}
TPMTOKEN_EXPORT CK_RV C_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
                             CK_ULONG_PTR sig_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if ((!data && len) || !sig_len) return EndsOperation(h, CKF_SIGN);
  return Guarded([&](Module& m) { return m.Sign(h, Bytes(data, len), sig, sig_len); });
}
TPMTOKEN_EXPORT CK_RV C_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!data && len) return EndsOperation(h, CKF_SIGN);
  return Guarded([&](Module& m) { return m.SignUpdate(h, Bytes(data, len)); });
}
TPMTOKEN_EXPORT CK_RV C_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!sig_len) return EndsOperation(h, CKF_SIGN);
  return Guarded([&](Module& m) { return m.SignFinal(h, sig, sig_len); });
}
TPMTOKEN_EXPORT CK_RV C_SignRecoverInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  return CKR_FUNCTION_NOT_SUPPORTED;
}
TPMTOKEN_EXPORT CK_RV C_SignRecover(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                                    CK_ULONG_PTR) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  return CKR_FUNCTION_NOT_SUPPORTED;
}
TPMTOKEN_EXPORT CK_RV C_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
                                   CK_OBJECT_HANDLE key) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!mech || (!mech->pParameter && mech->ulParameterLen)) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.VerifyInit(h, mech, key); });
}
TPMTOKEN_EXPORT CK_RV C_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len,
                               CK_BYTE_PTR sig, CK_ULONG sig_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if ((!data && len) || (!sig && sig_len)) return EndsOperation(h, CKF_VERIFY);
  return Guarded([&](Module& m) { return m.Verify(h, Bytes(data, len), Bytes(sig, sig_len)); });
}
TPMTOKEN_EXPORT CK_RV C_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!data && len) return EndsOperation(h, CKF_VERIFY);
  return Guarded([&](Module& m) { return m.VerifyUpdate(h, Bytes(data, len)); });
}
TPMTOKEN_EXPORT CK_RV C_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!sig && sig_len) return EndsOperation(h, CKF_VERIFY);
  return Guarded([&](Module& m) { return m.VerifyFinal(h, Bytes(sig, sig_len)); });
}
TPMTOKEN_EXPORT CK_RV C_VerifyRecoverInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  return CKR_FUNCTION_NOT_SUPPORTED;
}
TPMTOKEN_EXPORT CK_RV C_VerifyRecover(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                                      CK_ULONG_PTR) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  return CKR_FUNCTION_NOT_SUPPORTED;
}

// Dual-function operations are optional (2.40, 5.13) and not offered.
#define TPMTOKEN_DUAL(name)                                                               \
  TPMTOKEN_EXPORT CK_RV name(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,        \
                             CK_ULONG_PTR) {                                               \
    return tpmtoken::p11::Current() ? CKR_FUNCTION_NOT_SUPPORTED                           \
                                    : CKR_CRYPTOKI_NOT_INITIALIZED;                        \
  }
TPMTOKEN_DUAL(C_DigestEncryptUpdate)
TPMTOKEN_DUAL(C_DecryptDigestUpdate)
TPMTOKEN_DUAL(C_SignEncryptUpdate)
TPMTOKEN_DUAL(C_DecryptVerifyUpdate)
#undef TPMTOKEN_DUAL

TPMTOKEN_EXPORT CK_RV C_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
                                    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR out) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!mech || (!tmpl && n) || !out) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.GenerateKey(h, mech, tmpl, n, out); });
}
TPMTOKEN_EXPORT CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
                                        CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG pub_n,
                                        CK_ATTRIBUTE_PTR priv_tmpl, CK_ULONG priv_n,
                                        CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!mech || (!pub_tmpl && pub_n) || (!priv_tmpl && priv_n) || !pub || !priv)
    return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) {
    return m.GenerateKeyPair(h, mech, pub_tmpl, pub_n, priv_tmpl, priv_n, pub, priv);
  });
}
TPMTOKEN_EXPORT CK_RV C_WrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
                                CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key, CK_BYTE_PTR out,
                                CK_ULONG_PTR out_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!mech || (!mech->pParameter && mech->ulParameterLen) || !out_len) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.WrapKey(h, mech, wrapping, key, out, out_len); });
}
TPMTOKEN_EXPORT CK_RV C_UnwrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
                                  CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR wrapped, CK_ULONG len,
                                  CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR out) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!mech || (!mech->pParameter && mech->ulParameterLen) || (!wrapped && len) ||
      (!tmpl && n) || !out)
    return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) {
    return m.UnwrapKey(h, mech, unwrapping, Bytes(wrapped, len), tmpl, n, out);
  });
}
TPMTOKEN_EXPORT CK_RV C_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
                                  CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                                  CK_OBJECT_HANDLE_PTR out) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!mech || (!tmpl && n) || !out) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.DeriveKey(h, mech, base, tmpl, n, out); });
}

TPMTOKEN_EXPORT CK_RV C_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!seed && len) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.SeedRandom(h); });
}
TPMTOKEN_EXPORT CK_RV C_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!out && len) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.GenerateRandom(h, out, len); });
}

// Functions run to completion; there is nothing in parallel to ask after.
TPMTOKEN_EXPORT CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE) {
  return tpmtoken::p11::Current() ? CKR_FUNCTION_NOT_PARALLEL : CKR_CRYPTOKI_NOT_INITIALIZED;
}
TPMTOKEN_EXPORT CK_RV C_CancelFunction(CK_SESSION_HANDLE) {
  return tpmtoken::p11::Current() ? CKR_FUNCTION_NOT_PARALLEL : CKR_CRYPTOKI_NOT_INITIALIZED;
}

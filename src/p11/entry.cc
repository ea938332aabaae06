// The PKCS#11 C ABI for slots, tokens, sessions, PINs and objects. Each entry
// point checks its pointers, then runs the core under the module lock.
#include "p11/guard.h"
#include "p11/interface.h"

using tpmtoken::ByteView;
using tpmtoken::Module;
using tpmtoken::p11::Bytes;
using tpmtoken::p11::Guarded;

TPMTOKEN_EXPORT CK_RV C_Initialize(CK_VOID_PTR a) { return tpmtoken::p11::Initialize(a); }
TPMTOKEN_EXPORT CK_RV C_Finalize(CK_VOID_PTR r) { return tpmtoken::p11::Finalize(r); }
TPMTOKEN_EXPORT CK_RV C_GetInfo(CK_INFO_PTR info) { return tpmtoken::p11::GetInfo240(info); }

TPMTOKEN_EXPORT CK_RV C_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!count) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.GetSlotList(present, list, count); });
}

TPMTOKEN_EXPORT CK_RV C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!info) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.GetSlotInfo(slot, info); });
}

TPMTOKEN_EXPORT CK_RV C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!info) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.GetTokenInfo(slot, info); });
}

TPMTOKEN_EXPORT CK_RV C_WaitForSlotEvent(CK_FLAGS, CK_SLOT_ID_PTR, CK_VOID_PTR) {
  // Slots never appear or vanish: the TPM is fixed to the machine.
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  return CKR_FUNCTION_NOT_SUPPORTED;
}

TPMTOKEN_EXPORT CK_RV C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list,
                                         CK_ULONG_PTR count) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!count) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.GetMechanismList(slot, list, count); });
}

TPMTOKEN_EXPORT CK_RV C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
                                         CK_MECHANISM_INFO_PTR info) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!info) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.GetMechanismInfo(slot, type, info); });
}

TPMTOKEN_EXPORT CK_RV C_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
                                  CK_UTF8CHAR_PTR label) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if ((!pin && pin_len) || !label) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.InitToken(slot, Bytes(pin, pin_len), Bytes(label, 32)); });
}

TPMTOKEN_EXPORT CK_RV C_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!pin && pin_len) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.InitPIN(h, Bytes(pin, pin_len)); });
}

TPMTOKEN_EXPORT CK_RV C_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len,
                               CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if ((!old_pin && old_len) || (!new_pin && new_len)) return CKR_ARGUMENTS_BAD;
  return Guarded(
      [&](Module& m) { return m.SetPIN(h, Bytes(old_pin, old_len), Bytes(new_pin, new_len)); });
}

TPMTOKEN_EXPORT CK_RV C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR, CK_NOTIFY,
                                    CK_SESSION_HANDLE_PTR out) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!out) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.OpenSession(slot, flags, out); });
}

TPMTOKEN_EXPORT CK_RV C_CloseSession(CK_SESSION_HANDLE h) {
  return Guarded([&](Module& m) { return m.CloseSession(h); });
}

TPMTOKEN_EXPORT CK_RV C_CloseAllSessions(CK_SLOT_ID slot) {
  return Guarded([&](Module& m) { return m.CloseAllSessions(slot); });
}

TPMTOKEN_EXPORT CK_RV C_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!info) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.GetSessionInfo(h, info); });
}

TPMTOKEN_EXPORT CK_RV C_GetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR out,
                                          CK_ULONG_PTR out_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!out_len) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.GetOperationState(h, out, out_len); });
}

TPMTOKEN_EXPORT CK_RV C_SetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR state, CK_ULONG len,
                                          CK_OBJECT_HANDLE enc_key, CK_OBJECT_HANDLE auth_key) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!state || !len) return CKR_ARGUMENTS_BAD;
  // Digest states need no keys (2.40, 5.6: CKR_KEY_NOT_NEEDED).
  if (enc_key || auth_key) return CKR_KEY_NOT_NEEDED;
  return Guarded([&](Module& m) { return m.SetOperationState(h, Bytes(state, len)); });
}

TPMTOKEN_EXPORT CK_RV C_Login(CK_SESSION_HANDLE h, CK_USER_TYPE who, CK_UTF8CHAR_PTR pin,
                              CK_ULONG pin_len) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!pin && pin_len) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.Login(h, who, Bytes(pin, pin_len)); });
}

TPMTOKEN_EXPORT CK_RV C_Logout(CK_SESSION_HANDLE h) {
  return Guarded([&](Module& m) { return m.Logout(h); });
}

namespace {
bool TemplateOk(const CK_ATTRIBUTE* tmpl, CK_ULONG n) { return tmpl || n == 0; }
}  // namespace

TPMTOKEN_EXPORT CK_RV C_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                                     CK_OBJECT_HANDLE_PTR out) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!TemplateOk(tmpl, n) || !out) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.CreateObject(h, tmpl, n, out); });
}

TPMTOKEN_EXPORT CK_RV C_CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                                   CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR out) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!TemplateOk(tmpl, n) || !out) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.CopyObject(h, obj, tmpl, n, out); });
}

TPMTOKEN_EXPORT CK_RV C_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj) {
  return Guarded([&](Module& m) { return m.DestroyObject(h, obj); });
}

TPMTOKEN_EXPORT CK_RV C_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                                      CK_ULONG_PTR size) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!size) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.GetObjectSize(h, obj, size); });
}

TPMTOKEN_EXPORT CK_RV C_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                                          CK_ATTRIBUTE_PTR tmpl, CK_ULONG n) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!TemplateOk(tmpl, n)) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.GetAttributeValue(h, obj, tmpl, n); });
}

TPMTOKEN_EXPORT CK_RV C_SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                                          CK_ATTRIBUTE_PTR tmpl, CK_ULONG n) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!TemplateOk(tmpl, n)) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.SetAttributeValue(h, obj, tmpl, n); });
}

TPMTOKEN_EXPORT CK_RV C_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!TemplateOk(tmpl, n)) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.FindObjectsInit(h, tmpl, n); });
}

TPMTOKEN_EXPORT CK_RV C_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
                                    CK_ULONG_PTR count) {
  if (!tpmtoken::p11::Current()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if ((!out && max) || !count) return CKR_ARGUMENTS_BAD;
  return Guarded([&](Module& m) { return m.FindObjects(h, out, max, count); });
}

TPMTOKEN_EXPORT CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE h) {
  return Guarded([&](Module& m) { return m.FindObjectsFinal(h); });
}

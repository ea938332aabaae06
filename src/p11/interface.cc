// The function tables: an exact 2.40 CK_FUNCTION_LIST (version 2.40, which
// AWS IoT's client insists on) from C_GetFunctionList, and the 3.0 table from
// C_GetInterface / C_GetInterfaceList (PKCS#11 3.0, section 5.4).
#include <cstring>

#include "p11/guard.h"
#include "p11/interface.h"

using tpmtoken::Module;
using tpmtoken::p11::Bytes;
using tpmtoken::p11::Guarded;

namespace {

// 3.0 additions. Usernames are not a concept of this token: C_LoginUser is
// C_Login. Message-based operations are not offered.
CK_RV LoginUser(CK_SESSION_HANDLE h, CK_USER_TYPE who, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
                CK_UTF8CHAR_PTR, CK_ULONG) {
  return C_Login(h, who, pin, pin_len);
}

CK_RV SessionCancel(CK_SESSION_HANDLE h, CK_FLAGS flags) {
  return Guarded([&](Module& m) { return m.CancelOperations(h, flags); });
}

template <typename... Args>
CK_RV NotSupported(Args...) {
  return tpmtoken::p11::Current() ? CKR_FUNCTION_NOT_SUPPORTED : CKR_CRYPTOKI_NOT_INITIALIZED;
}

#define TPMTOKEN_240_FUNCTIONS(getinfo)                                                          \
  tpmtoken::p11::Initialize, tpmtoken::p11::Finalize, getinfo, C_GetFunctionList,              \
      C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo, C_GetMechanismList, C_GetMechanismInfo,    \
      C_InitToken, C_InitPIN, C_SetPIN, C_OpenSession, C_CloseSession, C_CloseAllSessions,     \
      C_GetSessionInfo, C_GetOperationState, C_SetOperationState, C_Login, C_Logout,           \
      C_CreateObject, C_CopyObject, C_DestroyObject, C_GetObjectSize, C_GetAttributeValue,     \
      C_SetAttributeValue, C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal,               \
      C_EncryptInit, C_Encrypt, C_EncryptUpdate, C_EncryptFinal, C_DecryptInit, C_Decrypt,     \
      C_DecryptUpdate, C_DecryptFinal, C_DigestInit, C_Digest, C_DigestUpdate, C_DigestKey,    \
      C_DigestFinal, C_SignInit, C_Sign, C_SignUpdate, C_SignFinal, C_SignRecoverInit,         \
      C_SignRecover, C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal,                    \
      C_VerifyRecoverInit, C_VerifyRecover, C_DigestEncryptUpdate, C_DecryptDigestUpdate,      \
      C_SignEncryptUpdate, C_DecryptVerifyUpdate, C_GenerateKey, C_GenerateKeyPair, C_WrapKey, \
      C_UnwrapKey, C_DeriveKey, C_SeedRandom, C_GenerateRandom, C_GetFunctionStatus,           \
      C_CancelFunction, C_WaitForSlotEvent

CK_FUNCTION_LIST g_functions_240 = {{2, 40}, TPMTOKEN_240_FUNCTIONS(tpmtoken::p11::GetInfo240)};

CK_FUNCTION_LIST_3_0 g_functions_30 = {
    {3, 0},
    TPMTOKEN_240_FUNCTIONS(tpmtoken::p11::GetInfo30),
    C_GetInterfaceList,
    C_GetInterface,
    LoginUser,
    SessionCancel,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
    NotSupported,
};

CK_CHAR g_name[] = "PKCS 11";
// The 3.0 table first: it is the default interface.
CK_INTERFACE g_interfaces[] = {
    {g_name, &g_functions_30, 0},
    {g_name, &g_functions_240, 0},
};
constexpr CK_ULONG kInterfaceCount = sizeof g_interfaces / sizeof g_interfaces[0];

}  // namespace

TPMTOKEN_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
  if (!out) return CKR_ARGUMENTS_BAD;
  *out = &g_functions_240;
  return CKR_OK;
}

TPMTOKEN_EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR list, CK_ULONG_PTR count) {
  if (!count) return CKR_ARGUMENTS_BAD;
  if (!list) {
    *count = kInterfaceCount;
    return CKR_OK;
  }
  if (*count < kInterfaceCount) {
    *count = kInterfaceCount;
    return CKR_BUFFER_TOO_SMALL;
  }
  std::memcpy(list, g_interfaces, sizeof g_interfaces);
  *count = kInterfaceCount;
  return CKR_OK;
}

TPMTOKEN_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
                                     CK_INTERFACE_PTR_PTR out, CK_FLAGS flags) {
  if (!out) return CKR_ARGUMENTS_BAD;
  for (CK_INTERFACE& i : g_interfaces) {
    if (name && std::strcmp(reinterpret_cast<const char*>(name),
                            reinterpret_cast<const char*>(i.pInterfaceName)) != 0)
      continue;
    const auto* v = static_cast<const CK_VERSION*>(i.pFunctionList);
    if (version && (version->major != v->major || version->minor != v->minor)) continue;
    if ((flags & i.flags) != flags) continue;
    *out = &i;
    return CKR_OK;
  }
  return CKR_ARGUMENTS_BAD;
}

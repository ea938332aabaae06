// Entry points shared between the C ABI files and the function tables.
#pragma once
#include <tpmtoken/pkcs11.h>

#define TPMTOKEN_EXPORT extern "C" __attribute__((visibility("default")))

namespace tpmtoken::p11 {

inline constexpr CK_BYTE kLibraryVersionMajor = 0;
inline constexpr CK_BYTE kLibraryVersionMinor = 1;

CK_RV Initialize(CK_VOID_PTR init_args);
CK_RV Finalize(CK_VOID_PTR reserved);
CK_RV GetInfo240(CK_INFO_PTR info);
CK_RV GetInfo30(CK_INFO_PTR info);

}  // namespace tpmtoken::p11

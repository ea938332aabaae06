// What the two benchmarks (bench.cc, bench_procs.cc) share: the module's
// function list loaded and initialized, an exit on failure, a fresh token.
#pragma once
#include <dlfcn.h>
#include <tpmtoken/pkcs11.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tpmtoken::bench {

inline CK_FUNCTION_LIST_PTR f = nullptr;
inline const char* g_program = "bench";  // prefix of failure lines
inline CK_UTF8CHAR kSo[] = "12345678";
inline CK_UTF8CHAR kPin[] = "1234";

inline void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "%s: %s failed\n", g_program, what);
    std::exit(1);
  }
}

inline void CheckRv(CK_RV rv, const char* what) {
  if (rv != CKR_OK) {
    std::fprintf(stderr, "%s: %s failed: CKR 0x%lx\n", g_program, what, rv);
    std::exit(1);
  }
}

// Loads MODULE and runs C_Initialize with OS locking (threads share it).
inline void LoadModule(const char* module) {
  void* lib = dlopen(module, RTLD_NOW);
  Check(lib, "dlopen");
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(lib, "C_GetFunctionList"));
  Check(get, "C_GetFunctionList lookup");
  CheckRv(get(&f), "C_GetFunctionList");
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  CheckRv(f->C_Initialize(&args), "C_Initialize");
}

// A token in the free slot, labelled `label`, with SO PIN kSo and user PIN kPin.
inline CK_SLOT_ID MakeToken(const char* label) {
  CK_ULONG n = 8;
  CK_SLOT_ID slots[8];
  CheckRv(f->C_GetSlotList(CK_FALSE, slots, &n), "C_GetSlotList");
  CK_UTF8CHAR field[32];
  std::memset(field, ' ', sizeof field);
  std::memcpy(field, label, std::min(std::strlen(label), sizeof field));
  CheckRv(f->C_InitToken(slots[n - 1], kSo, 8, field), "C_InitToken");
  CK_SESSION_HANDLE s;
  CheckRv(f->C_OpenSession(slots[n - 1], CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s),
          "C_OpenSession");
  CheckRv(f->C_Login(s, CKU_SO, kSo, 8), "SO login");
  CheckRv(f->C_InitPIN(s, kPin, 4), "C_InitPIN");
  CheckRv(f->C_CloseSession(s), "close");
  return slots[n - 1];
}

}  // namespace tpmtoken::bench

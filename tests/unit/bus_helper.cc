// Helper for the bus_* integration tests: attacks and probes that need the
// TPM layer or the module's C ABI directly, run against the test's swtpm
// ($TPMTOKEN_TCTI). Each command prints figures on stdout and exits non-zero
// with a line on stderr when something is not as the test expects.
//   names INDEX          the PIN counter's computed names (current, legacy)
//                        and the write policy digest, hex, one per line
//   pin-attack LIMIT     an owner's attack on a PIN counter: undefine it,
//                        define it again with the same public area and an
//                        auth he knows, then guess the seal's PIN value
//                        until the TPM stops him; prints the guesses made
//   random MODULE N      C_GenerateRandom N times in one process; prints the
//                        CKR and the milliseconds of each call
//   login MODULE PIN N   C_Login then C_Logout N times in one process;
//                        prints the CKR of each login
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "crypto/kdf.h"
#include "crypto/ossl.h"
#include "tpm/tpm.h"

using namespace tpmtoken;

namespace {

int Names(uint32_t index) {
  std::printf("%s\n%s\n", Hex(tpm::Tpm::PinCounterName(index)).c_str(),
              Hex(tpm::Tpm::PinCounterName(index, true)).c_str());
  return 0;
}

crypto::PinAuth Auth(const char* pin) {
  return crypto::DerivePinAuth(View(pin), View("salt-for-tests!!"), 1000);
}

int PinAttack(uint32_t limit) {
  const char* tcti = std::getenv("TPMTOKEN_TCTI");
  if (!tcti) return std::fprintf(stderr, "TPMTOKEN_TCTI is not set\n"), 2;
  auto t = tpm::Tpm::Open(tcti, "");
  const uint32_t index = t->FreeNvIndex(0x01300000);
  // The token's side: a PIN counter and a PIN seal, as C_InitPIN makes them.
  const crypto::PinAuth user = Auth("1234");
  t->DefinePinCounter(index, user, limit);
  const Bytes tk = crypto::Random(32);
  const tpm::SealedBlob seal = t->SealForPin(tk, index, user);
  if (!t->UnsealWithPin(seal, index, user)) return std::fprintf(stderr, "the right PIN fails\n"), 1;
  // The owner's side: the counter again with an nv auth he knows. Its
  // public area is the same, so its name and the seal's policy still match.
  t->UndefinePinCounter(index);
  crypto::PinAuth mine = Auth("0000");
  t->DefinePinCounter(index, mine, 1000);
  int guesses = 0;
  for (; guesses < 200; ++guesses) {
    crypto::PinAuth guess;
    guess.nv = mine.nv.Clone();  // PolicySecret passes: he knows this auth
    guess.seal = crypto::RandomSecret(32);
    try {
      if (t->UnsealWithPin(seal, index, guess)) return std::fprintf(stderr, "a guess opened it\n"), 1;
    } catch (const tpm::TpmError& e) {
      // A wrong seal value: TPM_RC_AUTH_FAIL, counted by the DA counter.
      if (e.base() == TPM2_RC_AUTH_FAIL) continue;
      if (e.base() != TPM2_RC_LOCKOUT) throw;
      break;
    }
  }
  std::printf("%d\n", guesses);
  t->UndefinePinCounter(index);
  return 0;
}

// Opens a session on the first initialized token and runs the calls.
int Random(const char* module, int n, const char* pin = nullptr) {
  void* lib = dlopen(module, RTLD_NOW);
  if (!lib) return std::fprintf(stderr, "%s\n", dlerror()), 2;
  auto get = reinterpret_cast<CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR)>(dlsym(lib, "C_GetFunctionList"));
  CK_FUNCTION_LIST_PTR f = nullptr;
  if (!get || get(&f) != CKR_OK) return std::fprintf(stderr, "C_GetFunctionList\n"), 2;
  if (CK_RV rv = f->C_Initialize(nullptr); rv != CKR_OK)
    return std::fprintf(stderr, "C_Initialize: 0x%lx\n", rv), 2;
  CK_SLOT_ID slots[8];
  CK_ULONG count = 8;
  f->C_GetSlotList(CK_FALSE, slots, &count);
  CK_SESSION_HANDLE s = 0;
  bool open = false;
  for (CK_ULONG i = 0; i < count && !open; ++i)
    open = f->C_OpenSession(slots[i], CKF_SERIAL_SESSION, nullptr, nullptr, &s) == CKR_OK;
  if (!open) return std::fprintf(stderr, "C_OpenSession\n"), 2;
  for (int i = 0; i < n && pin; ++i) {
    const CK_RV rv = f->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin)),
                                std::strlen(pin));
    std::printf("0x%lx\n", rv);
    std::fflush(stdout);
    if (rv == CKR_OK) f->C_Logout(s);
  }
  for (int i = 0; i < n && !pin; ++i) {
    CK_BYTE buf[32];
    const auto start = std::chrono::steady_clock::now();
    const CK_RV rv = f->C_GenerateRandom(s, buf, sizeof buf);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    std::printf("0x%lx %lld\n", rv, static_cast<long long>(ms));
    std::fflush(stdout);
  }
  f->C_CloseSession(s);
  f->C_Finalize(nullptr);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  try {
    if (cmd == "names" && argc == 3) return Names(static_cast<uint32_t>(std::stoul(argv[2], nullptr, 0)));
    if (cmd == "pin-attack" && argc == 3) return PinAttack(static_cast<uint32_t>(std::stoul(argv[2])));
    if (cmd == "random" && argc == 4) return Random(argv[2], std::atoi(argv[3]));
    if (cmd == "login" && argc == 5) return Random(argv[2], std::atoi(argv[4]), argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: bus_helper names INDEX | pin-attack LIMIT | random MODULE N\n");
  return 2;
}

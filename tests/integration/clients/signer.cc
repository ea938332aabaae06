// A PKCS#11 signer for the multi-process tests (tests/integration/procs_*.sh):
// loads the module through its C ABI, logs in to TOKEN and signs with the EC
// keys whose CKA_ID bytes are given, in turn, verifying nothing but the CKR.
//   signer TOKEN PIN COUNT ID...   COUNT signatures (0: until STOP_FILE exists)
// Prints "signed N failed F" and, for each failure, the call and its CKR;
// exits 0 only when nothing failed. MODULE names the module.
// FORK_CHECK=PATH: a second thread forks while the signatures run (a server
// forking workers that never exec); each child looks through its own
// descriptors for PATH, the TPM device, before doing anything else, and
// exits 1 if it holds it. Prints "forks N holding H" too.
#include <dlfcn.h>
#include <sys/wait.h>
#include <tpmtoken/pkcs11.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {
CK_FUNCTION_LIST_PTR f = nullptr;
long failed = 0;

bool Ok(CK_RV rv, const char* what) {
  if (rv == CKR_OK) return true;
  std::fprintf(stderr, "signer %d: %s: CKR 0x%lx\n", getpid(), what, rv);
  ++failed;
  return false;
}

// In the child of a fork: whether one of its descriptors is PATH (only
// async-signal-safe calls: the parent has other threads).
bool HoldsPath(const char* path) {
  char link[32] = "/proc/self/fd/", target[256];
  for (int fd = 0; fd < 1024; ++fd) {
    char* p = link + 14;  // after the prefix: fd in decimal, by hand
    if (fd >= 1000) *p++ = static_cast<char>('0' + fd / 1000);
    if (fd >= 100) *p++ = static_cast<char>('0' + fd / 100 % 10);
    if (fd >= 10) *p++ = static_cast<char>('0' + fd / 10 % 10);
    *p++ = static_cast<char>('0' + fd % 10);
    *p = 0;
    const ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = 0;
    if (std::strcmp(target, path) == 0) return true;
  }
  return false;
}

// Forks until done is set; counts the children and those that held path.
void ForkLoop(const char* path, const std::atomic<bool>& done, long* forks, long* holding) {
  while (!done.load()) {
    const pid_t pid = fork();
    if (pid == 0) _exit(HoldsPath(path) ? 1 : 0);
    if (pid < 0) break;
    int status = 0;
    waitpid(pid, &status, 0);
    ++*forks;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 1) ++*holding;
    usleep(1000);
  }
}

std::vector<CK_BYTE> Hex(const char* s) {
  std::vector<CK_BYTE> out;
  for (size_t i = 0; s[i] && s[i + 1]; i += 2) out.push_back(std::stoi(std::string(s + i, 2), nullptr, 16));
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  const char* module = std::getenv("MODULE");
  if (argc < 5 || !module) {
    std::fprintf(stderr, "usage: MODULE=... signer TOKEN PIN COUNT ID...\n");
    return 2;
  }
  const std::string token = argv[1];
  std::string pin = argv[2];
  const long count = std::atol(argv[3]);
  const char* stop = std::getenv("STOP_FILE");
  void* lib = dlopen(module, RTLD_NOW);
  if (!lib) return 2;
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(lib, "C_GetFunctionList"));
  if (!get || get(&f) != CKR_OK) return 2;
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  if (!Ok(f->C_Initialize(&args), "C_Initialize")) return 1;
  CK_ULONG n = 16;
  CK_SLOT_ID slots[16];
  if (!Ok(f->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList")) return 1;
  CK_SLOT_ID slot = ~0UL;
  for (CK_ULONG i = 0; i < n; ++i) {
    CK_TOKEN_INFO info;
    if (f->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
    std::string label(reinterpret_cast<char*>(info.label), 32);
    label.erase(label.find_last_not_of(' ') + 1);
    if (label == token) slot = slots[i];
  }
  if (slot == ~0UL) {
    std::fprintf(stderr, "signer: no token %s\n", token.c_str());
    return 1;
  }
  CK_SESSION_HANDLE s;
  if (!Ok(f->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s), "C_OpenSession") ||
      !Ok(f->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()), pin.size()),
          "C_Login"))
    return 1;
  std::vector<CK_OBJECT_HANDLE> keys;
  for (int a = 4; a < argc; ++a) {
    std::vector<CK_BYTE> id = Hex(argv[a]);
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE q[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, id.data(), id.size()}};
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG found = 0;
    if (!Ok(f->C_FindObjectsInit(s, q, 2), "C_FindObjectsInit") ||
        !Ok(f->C_FindObjects(s, &h, 1, &found), "C_FindObjects") ||
        !Ok(f->C_FindObjectsFinal(s), "C_FindObjectsFinal") || found != 1) {
      std::fprintf(stderr, "signer: no private key with id %s\n", argv[a]);
      return 1;
    }
    keys.push_back(h);
  }
  long signed_ = 0;
  const char* fork_check = std::getenv("FORK_CHECK");
  std::atomic<bool> done{false};
  long forks = 0, holding = 0;
  std::thread forker;
  if (fork_check) forker = std::thread(ForkLoop, fork_check, std::cref(done), &forks, &holding);
  for (long i = 0; count == 0 ? !(stop && access(stop, F_OK) == 0) : i < count; ++i) {
    CK_MECHANISM m = {CKM_ECDSA, nullptr, 0};
    CK_BYTE digest[32] = {static_cast<CK_BYTE>(i)};
    CK_BYTE sig[132];
    CK_ULONG len = sizeof sig;
    if (Ok(f->C_SignInit(s, &m, keys[i % keys.size()]), "C_SignInit") &&
        Ok(f->C_Sign(s, digest, sizeof digest, sig, &len), "C_Sign"))
      ++signed_;
  }
  done = true;
  if (forker.joinable()) forker.join();
  Ok(f->C_Finalize(nullptr), "C_Finalize");
  std::printf("signed %ld failed %ld\n", signed_, failed);
  if (fork_check) std::printf("forks %ld holding %ld\n", forks, holding);
  return failed == 0 ? 0 : 1;
}

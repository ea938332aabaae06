// Issue 10 items 3 and 5: a working set of keys and fair threads, through
// the module's PKCS#11 interface on the TPM in TPMTOKEN_TCTI. Prints ECDSA
// P-256 signatures per second with 1, 2 and 5 keys used in turn (as ratios
// of the one-key rate), then the latency of a signature (p50, p99, max) with
// 1, 4 and 8 threads signing at once. Asserts nothing. Run it with
// tests/bench/run_procs.sh (a bare swtpm, then tpm2-abrmd in front of it).
#include <dlfcn.h>
#include <tpmtoken/pkcs11.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

using namespace tpmtoken::bench;

using Clock = std::chrono::steady_clock;

void Sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key) {
  CK_MECHANISM m = {CKM_ECDSA, nullptr, 0};
  CK_BYTE digest[32] = {1, 2, 3};
  CK_BYTE sig[128];
  CK_ULONG len = sizeof sig;
  CheckRv(f->C_SignInit(s, &m, key), "C_SignInit");
  CheckRv(f->C_Sign(s, digest, sizeof digest, sig, &len), "C_Sign");
}

// Signatures per second over `seconds`, with the keys in turn.
double Rate(CK_SESSION_HANDLE s, const std::vector<CK_OBJECT_HANDLE>& keys, double seconds) {
  for (CK_OBJECT_HANDLE k : keys) Sign(s, k);  // warm
  long done = 0;
  const auto start = Clock::now();
  while (Clock::now() - start < std::chrono::duration<double>(seconds))
    Sign(s, keys[done++ % keys.size()]);
  return done / std::chrono::duration<double>(Clock::now() - start).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main() {
  const char* module = std::getenv("MODULE");
  const char* tcti = std::getenv("TPMTOKEN_TCTI");
  if (!module || !tcti) {
    std::fprintf(stderr, "bench_procs: MODULE and TPMTOKEN_TCTI must be set\n");
    return 1;
  }
  g_program = "bench_procs";
  LoadModule(module);
  const CK_SLOT_ID slot = MakeToken("procs");
  std::vector<CK_SESSION_HANDLE> sessions(8);
  for (auto& s : sessions)
    CheckRv(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s),
            "C_OpenSession");
  CheckRv(f->C_Login(sessions[0], CKU_USER, kPin, 4), "C_Login");
  std::vector<CK_OBJECT_HANDLE> keys;
  for (int i = 0; i < 5; ++i) {
    CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, p256, sizeof p256}};
    CK_OBJECT_HANDLE pub, priv;
    CheckRv(f->C_GenerateKeyPair(sessions[0], &gen, pt, 1, nullptr, 0, &pub, &priv), "EC gen");
    keys.push_back(priv);
  }

  std::printf("TCTI %s\n", tcti);
  // The three working sets in short turns, seven times, so that a slow
  // moment of a shared machine falls on all of them; medians are compared.
  const size_t sizes[] = {1, 2, 5};
  std::vector<double> rates[3];
  for (int round = 0; round < 7; ++round)
    for (int i = 0; i < 3; ++i)
      rates[i].push_back(Rate(sessions[0], {keys.begin(), keys.begin() + sizes[i]}, 0.3));
  const double one = Median(rates[0]);
  std::printf("%-34s %10s %8s\n", "ECDSA P-256, keys used in turn", "signs/s", "x 1 key");
  for (int i = 0; i < 3; ++i)
    std::printf("%-34zu %10.0f %8.2f\n", sizes[i], Median(rates[i]), Median(rates[i]) / one);

  std::printf("\n%-8s %10s %10s %10s %10s %10s\n", "threads", "signs/s", "p50 ms", "p99 ms",
              "max ms", "p99/p50");
  for (int threads : {1, 4, 8}) {
    std::vector<std::vector<double>> lat(threads);
    std::atomic<bool> stop{false};
    std::vector<std::thread> pool;
    const auto start = Clock::now();
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        while (!stop) {
          const auto a = Clock::now();
          Sign(sessions[t], keys[0]);
          lat[t].push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
        }
      });
    std::this_thread::sleep_for(std::chrono::seconds(2));
    stop = true;
    for (auto& th : pool) th.join();
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> all;
    for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    const double p50 = all[all.size() / 2], p99 = all[all.size() * 99 / 100];
    std::printf("%-8d %10.0f %10.2f %10.2f %10.2f %10.2f\n", threads, all.size() / secs, p50, p99,
                all.back(), p99 / p50);
  }
  CheckRv(f->C_Finalize(nullptr), "C_Finalize");
  return 0;
}

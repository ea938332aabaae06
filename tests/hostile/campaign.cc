// The mutation campaign (issue 8, "Parse every response as hostile input"):
// loads libtpmtoken.so like an application, with tpmproxy.py in random mode
// between it and swtpm, and runs a bounded number of operations (login, sign
// RSA and EC, RSA decrypt, AES, HMAC, key generation, C_SetPIN, the tool's
// PIN change, random) while the proxy mutates a fraction of the TPM's answers. It checks every
// result it gets with CKR_OK against OpenSSL (signatures verified, decryptions
// and AES/HMAC outputs compared with software on the same known key, round
// trips for generated keys), that no call runs past the module's TPM timeout,
// and that the token works afterwards on an honest bus. Run under ASan+UBSan
// (build-asan) a memory error aborts the run. campaign.sh starts swtpm and
// the proxy, and checks the PIN counters and NV indices around it.
//
// Environment: MODULE, PROXY_CTL (the proxy's control file), PROXY_MUTATIONS
// (its mutation log), CAMPAIGN_SEED, CAMPAIGN_OPS, CAMPAIGN_RATE,
// CAMPAIGN_RECOVER_RATE (the rate while C_Initialize re-opens the token),
// TPMTOKEN_TPM_TIMEOUT (seconds), NV_COUNT_CMD (prints the NV index count;
// run while the module is finalized).
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "campaign.h"

namespace campaign {

using Clock = std::chrono::steady_clock;

std::string Env(const char* name, const char* dflt) {
  const char* v = std::getenv(name);
  return v && *v ? v : dflt;
}

int Campaign::NewMutations(int* waits) {
  if (waits) *waits = 0;
  std::ifstream in(mutations_);
  in.seekg(mut_offset_);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // a line still being written: next time
    mut_offset_ = in.tellg();
    const auto k = line.find("\"kind\": \"");
    if (k == std::string::npos) continue;
    const auto e = line.find('"', k + 9);
    ++kinds_[line.substr(k + 9, e - k - 9)];
    if (waits && line.find("\"waits\": true") != std::string::npos) ++*waits;
    ++n;
  }
  return n;
}

void Campaign::SetRandom(bool on, double rate) {
  mutating_ = on;
  const std::string tmp = ctl_ + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (on) {
    // Stalls each cost the module's whole timeout: few of them.
    std::fprintf(f,
                 "{\"random\": {\"seed\": %llu, \"rate\": %.3f, \"skip\": [\"Startup\"], "
                 "\"weights\": {\"flip\": 14, \"flip_params\": 22, \"rc\": 18, \"truncate\": 8, "
                 "\"truncate_fix\": 8, \"inflate\": 10, \"param_size\": 8, \"replay\": 8, "
                 "\"drop\": 3, \"stall\": 0.3, \"stall_half\": 0.3}}}\n",
                 static_cast<unsigned long long>(seed_ * 100000 + ++epoch_), rate < 0 ? rate_ : rate);
  } else {
    std::fprintf(f, "[]\n");
  }
  std::fclose(f);
  std::rename(tmp.c_str(), ctl_.c_str());
}

CK_RV Campaign::Attr(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t, Bytes* out) {
  CK_ATTRIBUTE a = {t, nullptr, 0};
  if (CK_RV rv = f_->C_GetAttributeValue(s_, h, &a, 1); rv != CKR_OK) return rv;
  out->resize(a.ulValueLen);
  a.pValue = out->data();
  return f_->C_GetAttributeValue(s_, h, &a, 1);
}

CK_OBJECT_HANDLE Campaign::FindOne(const char* label, CK_OBJECT_CLASS cls) {
  CK_ATTRIBUTE t[] = {{CKA_LABEL, const_cast<char*>(label), std::strlen(label)},
                      {CKA_CLASS, &cls, sizeof cls}};
  if (f_->C_FindObjectsInit(s_, t, 2) != CKR_OK) return 0;
  CK_OBJECT_HANDLE h = 0;
  CK_ULONG n = 0;
  const CK_RV rv = f_->C_FindObjects(s_, &h, 1, &n);
  f_->C_FindObjectsFinal(s_);
  return rv == CKR_OK && n == 1 ? h : 0;
}

CK_RV Campaign::FindKeys() {
  rsa_ = FindOne("c-rsa", CKO_PRIVATE_KEY);
  ec_ = FindOne("c-ec", CKO_PRIVATE_KEY);
  aes_known_ = FindOne("c-aes-known", CKO_SECRET_KEY);
  aes_gen_ = FindOne("c-aes-gen", CKO_SECRET_KEY);
  hmac_ = FindOne("c-hmac", CKO_SECRET_KEY);
  return rsa_ && ec_ && aes_known_ && aes_gen_ && hmac_ ? CKR_OK : CKR_OBJECT_HANDLE_INVALID;
}

CK_RV Campaign::Init() {
  if (initialized_) {
    f_->C_Finalize(nullptr);
    initialized_ = false;
  }
  if (CK_RV rv = f_->C_Initialize(nullptr); rv != CKR_OK) return rv;
  initialized_ = true;
  CK_ULONG n = 8;
  CK_SLOT_ID slots[8];
  if (CK_RV rv = f_->C_GetSlotList(CK_TRUE, slots, &n); rv != CKR_OK) return rv;
  for (CK_ULONG i = 0; i < n; ++i) {
    CK_TOKEN_INFO info;
    if (f_->C_GetTokenInfo(slots[i], &info) == CKR_OK && std::memcmp(info.label, "campaign", 8) == 0) {
      slot_ = slots[i];
      return f_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s_);
    }
  }
  return CKR_TOKEN_NOT_PRESENT;
}

// Brings the module back to a logged-in session with its keys, through the
// (possibly mutating) bus; each step is an operation whose outcome counts.
// C_Initialize and C_Login are chains of TPM commands (primary, session,
// unseal, anchor; counter, policy, load, unseal): at the operations' rate
// almost every re-open failed and the campaign measured re-opens (seed
// 564053198: 163 of 205 C_Initialize failed, 30 of 41 s). Recovery still
// runs mutated, at recover_rate_; the "login" operation keeps the full rate.
CK_RV Campaign::Ensure() {
  CK_SESSION_INFO info;
  CK_RV rv = initialized_ ? f_->C_GetSessionInfo(s_, &info) : CKR_CRYPTOKI_NOT_INITIALIZED;
  const bool lower = mutating_ && recover_rate_ < rate_ &&
                     (rv != CKR_OK || info.state != CKS_RW_USER_FUNCTIONS);
  if (lower) SetRandom(true, recover_rate_);
  const auto t0 = Clock::now();
  if (rv != CKR_OK) {
    rv = Init();
    ++outcomes_["init:" + CkrName(rv)];
    if (rv == CKR_OK) rv = f_->C_GetSessionInfo(s_, &info);
  }
  if (rv == CKR_OK && info.state != CKS_RW_USER_FUNCTIONS) {
    rv = f_->C_Login(s_, CKU_USER, (CK_UTF8CHAR_PTR)kPins[pin_], 4);
    ++outcomes_["login:" + CkrName(rv)];
    if (rv == CKR_PIN_INCORRECT) std::printf("PIN_INCORRECT for the correct PIN from re-open\n");
    if (rv == CKR_USER_ALREADY_LOGGED_IN) rv = CKR_OK;
  }
  if (lower) {
    seconds_["recover"] += std::chrono::duration<double>(Clock::now() - t0).count();
    SetRandom(true);
  }
  if (rv == CKR_OK) rv = FindKeys();
  // (The operations print theirs in the loop.)
  if (rv == CKR_GENERAL_ERROR) std::printf("GENERAL_ERROR from re-open\n");
  return rv;
}
bool Campaign::Honest() {
  SetRandom(false);
  if (initialized_) f_->C_Finalize(nullptr);
  initialized_ = false;
  CK_RV rv = Ensure();
  if (rv != CKR_OK) {
    std::printf("token not intact on an honest bus: %s\n", CkrName(rv).c_str());
    return false;
  }
  const int before = wrong_;
  std::string name;
  for (int op : {0, 1, 2, 3, 5}) {
    rv = Op(op, &name);
    if (rv != CKR_OK) {
      std::printf("token not intact on an honest bus: %s returned %s\n", name.c_str(),
                  CkrName(rv).c_str());
      return false;
    }
  }
  CK_TOKEN_INFO info;
  f_->C_GetTokenInfo(slot_, &info);
  if (info.flags & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED | CKF_USER_PIN_FINAL_TRY) &&
      deliberate_wrong_ == 0) {
    std::printf("the token reports user PIN tries used (flags 0x%lx) with none deliberate\n",
                static_cast<unsigned long>(info.flags));
    return false;
  }
  return wrong_ == before;
}

bool Campaign::Run() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // in order with the module's stderr lines
  void* lib = dlopen(Env("MODULE").c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    std::printf("dlopen: %s\n", dlerror());
    return false;
  }
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(lib, "C_GetFunctionList"));
  get(&f_);
  ctl_ = Env("PROXY_CTL");
  mutations_ = Env("PROXY_MUTATIONS");
  tool_ = Env("TOOL");
  seed_ = std::strtoull(Env("CAMPAIGN_SEED", "1").c_str(), nullptr, 10);
  rate_ = std::atof(Env("CAMPAIGN_RATE", "0.3").c_str());
  recover_rate_ = std::atof(Env("CAMPAIGN_RECOVER_RATE", "0.05").c_str());
  timeout_s_ = std::atof(Env("TPMTOKEN_TPM_TIMEOUT", "2").c_str());
  const int ops = std::atoi(Env("CAMPAIGN_OPS", "3000").c_str());
  // The long run ends at a number of operations with a mutated answer.
  const int want_mutated = std::atoi(Env("CAMPAIGN_MUTATED", "0").c_str());
  const double budget = std::atof(Env("CAMPAIGN_SECONDS", "110").c_str());
  rng_.seed(seed_);
  std::printf("campaign: seed %llu, %d operations, rate %.2f (re-open %.3f), timeout %.0f s\n",
              static_cast<unsigned long long>(seed_), ops, rate_, recover_rate_, timeout_s_);

  SetRandom(false);
  // RSA key generation on a busy swtpm can take longer than the campaign's
  // short timeout: the setup on an honest bus gets a long one.
  const std::string timeout_env = Env("TPMTOKEN_TPM_TIMEOUT", "2");
  setenv("TPMTOKEN_TPM_TIMEOUT", "60", 1);
  const CK_RV setup_rv = Setup();
  setenv("TPMTOKEN_TPM_TIMEOUT", timeout_env.c_str(), 1);
  if (CK_RV rv = setup_rv; rv != CKR_OK) {
    std::printf("setup on an honest bus failed: %s\n", CkrName(rv).c_str());
    return false;
  }
  f_->C_Finalize(nullptr);
  initialized_ = false;
  const std::string nv_cmd = Env("NV_COUNT_CMD");
  auto nv_count = [&]() -> int {
    if (nv_cmd.empty()) return -1;
    FILE* p = popen(nv_cmd.c_str(), "r");
    int n = -1;
    if (p && std::fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
  };
  const int nv_before = nv_count();
  NewMutations();
  kinds_.clear();

  // Op weights: private-key work most, key generation and PIN changes less.
  const std::vector<double> weights = {14, 14, 10, 10, 8, 10, 6, 4, 6, 8, 5, 0.4, 3};
  std::discrete_distribution<int> pick(weights.begin(), weights.end());
  std::map<std::string, int> by_op, op_failures, mutated_by_op;
  int done = 0, mutated = 0, recoveries_failed = 0;
  const auto start = Clock::now();
  // A call that never returns (the swtpm TCTI blocks in recv; a loop on a
  // forged answer) would hang the suite: the watchdog ends the run instead.
  static std::atomic<double> op_started{0};
  static std::atomic<const char*> op_name{"setup"};
  const double limit = 4 * timeout_s_ + 20;
  std::thread([limit] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      const double t0 = op_started.load();
      const double now = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
      if (t0 > 0 && now - t0 > limit) {
        std::printf("HANG: an operation (%s) has not returned after %.0f s; campaign aborted\n",
                    op_name.load(), now - t0);
        std::fflush(stdout);
        std::_Exit(3);
      }
    }
  }).detach();
  SetRandom(true);
  int bad_streak = 0, failures = 0;
  while (done < ops && (want_mutated == 0 || mutated < want_mutated) &&
         std::chrono::duration<double>(Clock::now() - start).count() < budget) {
    const auto t0 = Clock::now();
    op_started = std::chrono::duration<double>(t0.time_since_epoch()).count();
    op_name = "recover";
    CK_RV rv = Ensure();
    std::string name = "recover";
    if (rv == CKR_OK) {
      static const char* const kNames[] = {"sign-rsa", "sign-ec", "decrypt-rsa", "aes-known",
                                           "aes-roundtrip", "hmac", "keygen-ec", "keygen-aes",
                                           "random", "login", "setpin", "keygen-rsa",
                                           "tool-setpin"};
      const int which = pick(rng_);
      op_name = kNames[which];
      const auto t1 = Clock::now();
      rv = Op(which, &name);
      // The module's own error line (stderr, unbuffered) is just above.
      if (rv == CKR_GENERAL_ERROR) std::printf("GENERAL_ERROR from %s\n", name.c_str());
      seconds_[name] += std::chrono::duration<double>(Clock::now() - t1).count();
      bad_streak = 0;
    } else if (++bad_streak > 6) {
      // The bus keeps breaking the recovery itself; one honest pass.
      SetRandom(false);
      Reset();
      rv = Ensure();
      if (rv != CKR_OK) {
        ++recoveries_failed;
        std::printf("the module did not recover on an honest bus: %s\n", CkrName(rv).c_str());
        break;
      }
      SetRandom(true);
      bad_streak = 0;
    }
    const double took = std::chrono::duration<double>(Clock::now() - t0).count();
    int waits = 0;
    const int new_mutations = NewMutations(&waits);
    // Each answer that never completes costs one timeout; anything past
    // those and 3 s of work is a call that waited longer than it may.
    max_over_ = std::max(max_over_, took - waits * timeout_s_);
    if (took > (1 + waits) * timeout_s_ + 3) {
      ++hangs_;
      std::printf("HANG: %s took %.1f s with %d unanswered commands (timeout %.0f s each)\n",
                  name.c_str(), took, waits, timeout_s_);
    }
    ++done;
    ++outcomes_[CkrName(rv)];
    ++by_op[name];
    if (rv != CKR_OK) ++op_failures[name + ":" + CkrName(rv)];
    if (new_mutations > 0) {
      ++mutated;
      ++mutated_by_op[name];
    }
    // An application retries a failed call, and starts over with
    // C_Initialize only when the module keeps failing.
    if (rv == CKR_OK) {
      failures = 0;
    } else if (++failures >= 3 || rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT) {
      Reset();
      failures = 0;
    }
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  op_started = 0;
  SetRandom(false);
  const bool intact = Honest();
  f_->C_Finalize(nullptr);
  initialized_ = false;
  const int nv_after = nv_count();

  std::printf("operations by kind:");
  for (auto& [k, v] : by_op) std::printf(" %s=%d", k.c_str(), v);
  std::printf("\nmutated operations by kind:");
  for (auto& [k, v] : mutated_by_op) std::printf(" %s=%d", k.c_str(), v);
  std::printf("\noutcomes:");
  for (auto& [k, v] : outcomes_) std::printf(" %s=%d", k.c_str(), v);
  std::printf("\nfailures by operation:");
  for (auto& [k, v] : op_failures) std::printf(" %s=%d", k.c_str(), v);
  std::printf("\nseconds by step:");
  for (auto& [k, v] : seconds_) std::printf(" %s=%.1f", k.c_str(), v);
  std::printf("\nmutations by kind:");
  int total_mut = 0;
  for (auto& [k, v] : kinds_) {
    std::printf(" %s=%d", k.c_str(), v);
    total_mut += v;
  }
  std::printf("\ndeliberate_wrong_tries=%d setpin_misreports=%d tool_crashes=%d final_pin=%s\n",
              deliberate_wrong_, setpin_misreports_, tool_crashes_, kPins[pin_]);
  std::printf("nv indices before=%d after=%d\n", nv_before, nv_after);
  std::printf("longest operation beyond the timeouts of its unanswered commands: %.1f s "
              "(a hang past %.0f s)\n", max_over_, timeout_s_ + 3);
  std::printf("seed %llu: %d operations (%d mutated, %d mutations) in %.0f s; wrong results %d; "
              "hangs %d; token intact: %s\n",
              static_cast<unsigned long long>(seed_), done, mutated, total_mut, secs, wrong_,
              hangs_, intact ? "yes" : "NO");
  return wrong_ == 0 && hangs_ == 0 && intact && recoveries_failed == 0 && tool_crashes_ == 0 &&
         setpin_misreports_ == 0 && nv_before == nv_after;
}

}  // namespace campaign

int main() {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // what was printed survives a crash
  return campaign::Campaign().Run() ? 0 : 1;
}

// The mutation campaign's driver (campaign.cc: the loop and its checks;
// ops.cc: the token setup and the operations).
#pragma once
#include <tpmtoken/pkcs11.h>

#include <map>
#include <random>
#include <string>

#include "checks.h"

namespace campaign {

inline constexpr const char* kSoPin = "12345678";
inline constexpr const char* kPins[2] = {"1234", "5678"};

std::string Env(const char* name, const char* dflt = "");

class Campaign {
 public:
  bool Run();

 private:
  // Mutations the proxy logged since the last call, tallied by kind; *waits
  // counts those that leave the module waiting for its timeout (a stall, a
  // size field claiming more than was sent).
  int NewMutations(int* waits = nullptr);
  // on: the proxy mutates answers at `rate` (rate_ when negative).
  void SetRandom(bool on, double rate = -1);
  CK_RV Ensure();  // initialized, session open, logged in, keys found
  CK_RV Init();
  CK_RV FindKeys();
  CK_RV Attr(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t, Bytes* out);
  CK_RV Sign(CK_MECHANISM_TYPE m, CK_OBJECT_HANDLE k, const Bytes& in, Bytes* out);
  CK_RV Crypt(bool enc, CK_MECHANISM* m, CK_OBJECT_HANDLE k, const Bytes& in, Bytes* out);
  CK_OBJECT_HANDLE FindOne(const char* label, CK_OBJECT_CLASS cls);
  CK_RV Setup();
  bool Honest();  // the token works on an honest bus
  // One operation; returns its outcome and sets wrong_ for a bad result.
  CK_RV Op(int which, std::string* name);
  void PinAfterFailure(int next, const std::string& what);
  void Wrong(const std::string& what) {
    ++wrong_;
    std::printf("WRONG RESULT with CKR_OK: %s\n", what.c_str());
  }
  void Reset() {
    if (initialized_) f_->C_Finalize(nullptr);
    initialized_ = false;
  }

  CK_FUNCTION_LIST_PTR f_ = nullptr;
  std::mt19937_64 rng_;
  uint64_t seed_ = 0;
  double rate_ = 0.3;
  double recover_rate_ = 0.05;  // while C_Initialize re-opens the token
  bool mutating_ = false;
  int epoch_ = 0;
  std::string ctl_, mutations_;
  long mut_offset_ = 0;
  std::map<std::string, int> kinds_, outcomes_;
  std::map<std::string, double> seconds_;  // where the campaign's time goes, by step
  double max_over_ = 0;  // the longest operation, less the timeouts of its unanswered commands
  int wrong_ = 0, hangs_ = 0, deliberate_wrong_ = 0, setpin_misreports_ = 0, tool_crashes_ = 0;
  std::string tool_;
  double timeout_s_ = 2;
  bool initialized_ = false;
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE s_ = 0;
  int pin_ = 0;  // index into kPins
  CK_OBJECT_HANDLE rsa_ = 0, ec_ = 0, aes_known_ = 0, aes_gen_ = 0, hmac_ = 0;
  Bytes rsa_n_, rsa_e_, ec_point_;
  Bytes aes_value_ = Bytes(32), hmac_value_ = Bytes(32);
};

}  // namespace campaign

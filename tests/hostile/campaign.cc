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
// TPMTOKEN_TPM_TIMEOUT (seconds), NV_COUNT_CMD (prints the NV index count;
// run while the module is finalized).
#include <dlfcn.h>
#include <sys/wait.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <tpmtoken/pkcs11.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Bytes = std::vector<CK_BYTE>;
using Clock = std::chrono::steady_clock;

const char* kSoPin = "12345678";
const char* kPins[2] = {"1234", "5678"};

std::string Env(const char* name, const char* dflt = "") {
  const char* v = std::getenv(name);
  return v && *v ? v : dflt;
}

std::string CkrName(CK_RV rv) {
  static const std::map<CK_RV, const char*> names = {
      {CKR_OK, "CKR_OK"}, {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
      {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"}, {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
      {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"}, {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
      {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"}, {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
      {CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID"},
      {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
      {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
      {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
      {CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED"},
      {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"}, {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
      {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
      {CKR_SIGNATURE_INVALID, "CKR_SIGNATURE_INVALID"},
      {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
      {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
      {CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN"},
      {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
      {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
      {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"}, {CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE"},
      {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
      {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"}, {CKR_CANCEL, "CKR_CANCEL"},
      {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
  };
  auto it = names.find(rv);
  if (it != names.end()) return it->second;
  char buf[32];
  std::snprintf(buf, sizeof buf, "CKR_0x%lx", static_cast<unsigned long>(rv));
  return buf;
}

// OpenSSL's verdicts on what the token returned.
bool VerifyRsa(const Bytes& n, const Bytes& e, const Bytes& msg, const Bytes& sig) {
  OSSL_PARAM_BLD* b = OSSL_PARAM_BLD_new();
  BIGNUM* bn = BN_bin2bn(n.data(), static_cast<int>(n.size()), nullptr);
  BIGNUM* be = BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn);
  OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be);
  OSSL_PARAM* p = OSSL_PARAM_BLD_to_param(b);
  EVP_PKEY_CTX* kc = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* key = nullptr;
  EVP_PKEY_fromdata_init(kc);
  EVP_PKEY_fromdata(kc, &key, EVP_PKEY_PUBLIC_KEY, p);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = key && EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(md, sig.data(), sig.size(), msg.data(), msg.size()) == 1;
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(key);
  EVP_PKEY_CTX_free(kc);
  OSSL_PARAM_free(p);
  OSSL_PARAM_BLD_free(b);
  BN_free(bn);
  BN_free(be);
  return ok;
}

EVP_PKEY* EcKey(const Bytes& point) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>("P-256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                        const_cast<CK_BYTE*>(point.data()), point.size()),
      OSSL_PARAM_construct_end()};
  EVP_PKEY_CTX* kc = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  EVP_PKEY_fromdata_init(kc);
  EVP_PKEY_fromdata(kc, &key, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(kc);
  return key;
}

bool VerifyEc(const Bytes& point, const Bytes& msg, const Bytes& sig) {
  if (sig.size() != 64) return false;
  EVP_PKEY* key = EcKey(point);
  ECDSA_SIG* es = ECDSA_SIG_new();
  ECDSA_SIG_set0(es, BN_bin2bn(sig.data(), 32, nullptr), BN_bin2bn(sig.data() + 32, 32, nullptr));
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(es, &der);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = key && der_len > 0 &&
            EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(md, der, der_len, msg.data(), msg.size()) == 1;
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  ECDSA_SIG_free(es);
  EVP_PKEY_free(key);
  return ok;
}

Bytes RsaEncrypt(const Bytes& n, const Bytes& e, const Bytes& msg) {
  OSSL_PARAM_BLD* b = OSSL_PARAM_BLD_new();
  BIGNUM* bn = BN_bin2bn(n.data(), static_cast<int>(n.size()), nullptr);
  BIGNUM* be = BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn);
  OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be);
  OSSL_PARAM* p = OSSL_PARAM_BLD_to_param(b);
  EVP_PKEY_CTX* kc = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* key = nullptr;
  EVP_PKEY_fromdata_init(kc);
  EVP_PKEY_fromdata(kc, &key, EVP_PKEY_PUBLIC_KEY, p);
  EVP_PKEY_CTX* ec = EVP_PKEY_CTX_new(key, nullptr);
  Bytes out(n.size());
  size_t len = out.size();
  if (EVP_PKEY_encrypt_init(ec) != 1 || EVP_PKEY_CTX_set_rsa_padding(ec, RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_encrypt(ec, out.data(), &len, msg.data(), msg.size()) != 1)
    out.clear();
  EVP_PKEY_CTX_free(ec);
  EVP_PKEY_free(key);
  EVP_PKEY_CTX_free(kc);
  OSSL_PARAM_free(p);
  OSSL_PARAM_BLD_free(b);
  BN_free(bn);
  BN_free(be);
  return out;
}

Bytes AesCbc(const Bytes& key, const Bytes& iv, const Bytes& in) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  Bytes out(in.size() + 16);
  int l1 = 0, l2 = 0;
  EVP_EncryptInit_ex(c, EVP_aes_256_cbc(), nullptr, key.data(), iv.data());
  EVP_CIPHER_CTX_set_padding(c, 0);
  EVP_EncryptUpdate(c, out.data(), &l1, in.data(), static_cast<int>(in.size()));
  EVP_EncryptFinal_ex(c, out.data() + l1, &l2);
  EVP_CIPHER_CTX_free(c);
  out.resize(l1 + l2);
  return out;
}

class Campaign {
 public:
  bool Run();

 private:
  // Mutations the proxy logged since the last call, tallied by kind.
  int NewMutations();
  void SetRandom(bool on);
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
  int epoch_ = 0;
  std::string ctl_, mutations_;
  long mut_offset_ = 0;
  std::map<std::string, int> kinds_, outcomes_;
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

int Campaign::NewMutations() {
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
    ++n;
  }
  return n;
}

void Campaign::SetRandom(bool on) {
  const std::string tmp = ctl_ + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (on) {
    // Stalls each cost the module's whole timeout: few of them.
    std::fprintf(f,
                 "{\"random\": {\"seed\": %llu, \"rate\": %.3f, \"skip\": [\"Startup\"], "
                 "\"weights\": {\"flip\": 14, \"flip_params\": 22, \"rc\": 18, \"truncate\": 8, "
                 "\"truncate_fix\": 8, \"inflate\": 10, \"param_size\": 8, \"replay\": 8, "
                 "\"drop\": 3, \"stall\": 0.3, \"stall_half\": 0.3}}}\n",
                 static_cast<unsigned long long>(seed_ * 100000 + ++epoch_), rate_);
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
CK_RV Campaign::Ensure() {
  CK_SESSION_INFO info;
  CK_RV rv = initialized_ ? f_->C_GetSessionInfo(s_, &info) : CKR_CRYPTOKI_NOT_INITIALIZED;
  if (rv != CKR_OK) {
    rv = Init();
    ++outcomes_["init:" + CkrName(rv)];
    if (rv != CKR_OK) return rv;
    rv = f_->C_GetSessionInfo(s_, &info);
    if (rv != CKR_OK) return rv;
  }
  if (info.state != CKS_RW_USER_FUNCTIONS) {
    rv = f_->C_Login(s_, CKU_USER, (CK_UTF8CHAR_PTR)kPins[pin_], 4);
    ++outcomes_["login:" + CkrName(rv)];
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) return rv;
  }
  return FindKeys();
}

CK_RV Campaign::Sign(CK_MECHANISM_TYPE m, CK_OBJECT_HANDLE k, const Bytes& in, Bytes* out) {
  CK_MECHANISM mech = {m, nullptr, 0};
  if (CK_RV rv = f_->C_SignInit(s_, &mech, k); rv != CKR_OK) return rv;
  out->resize(512);
  CK_ULONG len = out->size();
  const CK_RV rv = f_->C_Sign(s_, const_cast<CK_BYTE*>(in.data()), in.size(), out->data(), &len);
  out->resize(rv == CKR_OK ? len : 0);
  return rv;
}

CK_RV Campaign::Crypt(bool enc, CK_MECHANISM* m, CK_OBJECT_HANDLE k, const Bytes& in, Bytes* out) {
  CK_RV rv = enc ? f_->C_EncryptInit(s_, m, k) : f_->C_DecryptInit(s_, m, k);
  if (rv != CKR_OK) return rv;
  out->resize(in.size() + 512);
  CK_ULONG len = out->size();
  auto* data = const_cast<CK_BYTE*>(in.data());
  rv = enc ? f_->C_Encrypt(s_, data, in.size(), out->data(), &len)
           : f_->C_Decrypt(s_, data, in.size(), out->data(), &len);
  out->resize(rv == CKR_OK ? len : 0);
  return rv;
}

// After a PIN change reported failure, which PIN holds? Asked on an honest
// bus; a wrong guess is a deliberate try that the counter check allows for.
void Campaign::PinAfterFailure(int next, const std::string& what) {
  SetRandom(false);
  Reset();
  if (Init() == CKR_OK) {
    const CK_RV old_rv = f_->C_Login(s_, CKU_USER, (CK_UTF8CHAR_PTR)kPins[pin_], 4);
    if (old_rv == CKR_PIN_INCORRECT) {
      ++deliberate_wrong_;
      ++setpin_misreports_;
      if (f_->C_Login(s_, CKU_USER, (CK_UTF8CHAR_PTR)kPins[next], 4) == CKR_OK) {
        std::printf("a PIN change reported failure (%s) but the PIN was changed\n", what.c_str());
        pin_ = next;
      } else {
        std::printf("after a PIN change reported failure (%s) neither PIN logs in\n", what.c_str());
      }
    }
  }
  SetRandom(true);
}

CK_RV Campaign::Op(int which, std::string* name) {
  Bytes msg(1 + rng_() % 100);
  for (auto& b : msg) b = static_cast<CK_BYTE>(rng_());
  Bytes out;
  CK_RV rv = CKR_OK;
  switch (which) {
    case 0: {
      *name = "sign-rsa";
      rv = Sign(CKM_SHA256_RSA_PKCS, rsa_, msg, &out);
      if (rv == CKR_OK && !VerifyRsa(rsa_n_, rsa_e_, msg, out)) Wrong("RSA signature does not verify");
      break;
    }
    case 1: {
      *name = "sign-ec";
      rv = Sign(CKM_ECDSA_SHA256, ec_, msg, &out);
      if (rv == CKR_OK && !VerifyEc(ec_point_, msg, out)) Wrong("ECDSA signature does not verify");
      break;
    }
    case 2: {
      *name = "decrypt-rsa";
      msg.resize(32);
      const Bytes ct = RsaEncrypt(rsa_n_, rsa_e_, msg);
      CK_MECHANISM m = {CKM_RSA_PKCS, nullptr, 0};
      rv = Crypt(false, &m, rsa_, ct, &out);
      if (rv == CKR_OK && out != msg) Wrong("RSA PKCS#1 decryption differs from the plaintext");
      break;
    }
    case 3: {
      *name = "aes-known";
      msg.resize(64);
      Bytes iv(16);
      for (auto& b : iv) b = static_cast<CK_BYTE>(rng_());
      CK_MECHANISM m = {CKM_AES_CBC, iv.data(), iv.size()};
      rv = Crypt(true, &m, aes_known_, msg, &out);
      if (rv == CKR_OK && out != AesCbc(aes_value_, iv, msg)) Wrong("AES-CBC differs from OpenSSL");
      break;
    }
    case 4: {
      *name = "aes-roundtrip";
      msg.resize(32);
      CK_MECHANISM m = {CKM_AES_ECB, nullptr, 0};
      Bytes back;
      rv = Crypt(true, &m, aes_gen_, msg, &out);
      if (rv == CKR_OK) rv = Crypt(false, &m, aes_gen_, out, &back);
      if (rv == CKR_OK && back != msg) Wrong("AES-ECB round trip with a generated key differs");
      break;
    }
    case 5: {
      *name = "hmac";
      rv = Sign(CKM_SHA256_HMAC, hmac_, msg, &out);
      unsigned char mac[32];
      unsigned int len = 0;
      HMAC(EVP_sha256(), hmac_value_.data(), 32, msg.data(), msg.size(), mac, &len);
      if (rv == CKR_OK && out != Bytes(mac, mac + len)) Wrong("HMAC-SHA256 differs from OpenSSL");
      break;
    }
    case 6: {
      *name = "keygen-ec";
      CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
      CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
      CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
      CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, p256, sizeof p256}, {CKA_TOKEN, &no, 1}};
      CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &no, 1}, {CKA_SIGN, &yes, 1}};
      CK_OBJECT_HANDLE pub = 0, priv = 0;
      rv = f_->C_GenerateKeyPair(s_, &m, pub_t, 2, priv_t, 2, &pub, &priv);
      Bytes der;
      if (rv == CKR_OK) rv = Attr(pub, CKA_EC_POINT, &der);
      if (rv == CKR_OK) rv = Sign(CKM_ECDSA_SHA256, priv, msg, &out);
      if (rv == CKR_OK && (der.size() != 67 || !VerifyEc(Bytes(der.begin() + 2, der.end()), msg, out)))
        Wrong("ECDSA signature of a generated session key does not verify");
      if (pub) f_->C_DestroyObject(s_, pub);
      if (priv) f_->C_DestroyObject(s_, priv);
      break;
    }
    case 7: {
      *name = "keygen-aes";
      CK_MECHANISM m = {CKM_AES_KEY_GEN, nullptr, 0};
      CK_ULONG len = 32;
      CK_BBOOL no = CK_FALSE;
      CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &no, 1}};
      CK_OBJECT_HANDLE k = 0;
      rv = f_->C_GenerateKey(s_, &m, t, 2, &k);
      msg.resize(16);
      CK_MECHANISM ecb = {CKM_AES_ECB, nullptr, 0};
      Bytes back;
      if (rv == CKR_OK) rv = Crypt(true, &ecb, k, msg, &out);
      if (rv == CKR_OK) rv = Crypt(false, &ecb, k, out, &back);
      if (rv == CKR_OK && back != msg) Wrong("AES round trip with a generated session key differs");
      if (k) f_->C_DestroyObject(s_, k);
      break;
    }
    case 8: {
      *name = "random";
      out.resize(32);
      rv = f_->C_GenerateRandom(s_, out.data(), out.size());
      break;
    }
    case 9: {
      *name = "login";
      f_->C_Logout(s_);
      rv = f_->C_Login(s_, CKU_USER, (CK_UTF8CHAR_PTR)kPins[pin_], 4);
      break;
    }
    case 10: {
      *name = "setpin";
      const int next = 1 - pin_;
      rv = f_->C_SetPIN(s_, (CK_UTF8CHAR_PTR)kPins[pin_], 4, (CK_UTF8CHAR_PTR)kPins[next], 4);
      if (rv == CKR_OK) {
        pin_ = next;
        break;
      }
      PinAfterFailure(next, CkrName(rv));
      break;
    }
    case 12: {
      // The tool changes the PIN through the same bus, in its own process
      // (the module here is finalized meanwhile: a bare swtpm serves one
      // connection at a time).
      *name = "tool-setpin";
      const int next = 1 - pin_;
      Reset();
      const std::string cmd = "TPMTOKEN_PIN=" + std::string(kPins[pin_]) + " TPMTOKEN_NEW_PIN=" +
                              kPins[next] + " ASAN_OPTIONS='" + Env("ASAN_OPTIONS") + ":exitcode=86' timeout " +
                              std::to_string(static_cast<int>(4 * timeout_s_ + 20)) + " '" +
                              tool_ + "' pin change --token campaign >/dev/null 2>&1";
      const int st = std::system(cmd.c_str());
      const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      if (code == 0) {
        pin_ = next;
        rv = CKR_OK;
        break;
      }
      if (code == 86 || code >= 124) {
        ++tool_crashes_;
        std::printf("the tool %s (exit %d) on a mutated bus\n",
                    code == 86 ? "reported a sanitizer error" : code == 124 ? "hung" : "crashed",
                    code);
      }
      rv = CKR_FUNCTION_FAILED;
      PinAfterFailure(next, "tool exit " + std::to_string(code));
      break;
    }
    case 11: {
      *name = "keygen-rsa";
      CK_MECHANISM m = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
      CK_ULONG bits = 2048;
      CK_BYTE e[] = {1, 0, 1};
      CK_BBOOL no = CK_FALSE;
      CK_ATTRIBUTE pub_t[] = {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, e, 3},
                              {CKA_TOKEN, &no, 1}};
      CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &no, 1}};
      CK_OBJECT_HANDLE pub = 0, priv = 0;
      rv = f_->C_GenerateKeyPair(s_, &m, pub_t, 3, priv_t, 1, &pub, &priv);
      Bytes n, ee;
      if (rv == CKR_OK) rv = Attr(pub, CKA_MODULUS, &n);
      if (rv == CKR_OK) rv = Attr(pub, CKA_PUBLIC_EXPONENT, &ee);
      if (rv == CKR_OK) rv = Sign(CKM_SHA256_RSA_PKCS, priv, msg, &out);
      if (rv == CKR_OK && !VerifyRsa(n, ee, msg, out))
        Wrong("RSA signature of a generated session key does not verify");
      if (pub) f_->C_DestroyObject(s_, pub);
      if (priv) f_->C_DestroyObject(s_, priv);
      break;
    }
  }
  return rv;
}

CK_RV Campaign::Setup() {
  CK_RV rv = f_->C_Initialize(nullptr);
  if (rv != CKR_OK) return rv;
  initialized_ = true;
  CK_ULONG n = 8;
  CK_SLOT_ID slots[8];
  f_->C_GetSlotList(CK_FALSE, slots, &n);
  if (n == 0) return CKR_SLOT_ID_INVALID;
  slot_ = slots[0];
  CK_UTF8CHAR label[32];
  std::memset(label, ' ', 32);
  std::memcpy(label, "campaign", 8);
  if ((rv = f_->C_InitToken(slot_, (CK_UTF8CHAR_PTR)kSoPin, 8, label)) != CKR_OK) return rv;
  if ((rv = f_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s_)))
    return rv;
  if ((rv = f_->C_Login(s_, CKU_SO, (CK_UTF8CHAR_PTR)kSoPin, 8))) return rv;
  if ((rv = f_->C_InitPIN(s_, (CK_UTF8CHAR_PTR)kPins[0], 4))) return rv;
  f_->C_Logout(s_);
  if ((rv = f_->C_Login(s_, CKU_USER, (CK_UTF8CHAR_PTR)kPins[0], 4))) return rv;
  CK_BBOOL yes = CK_TRUE;
  CK_OBJECT_HANDLE pub, priv;
  {
    CK_MECHANISM m = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
    CK_ULONG bits = 2048;
    CK_BYTE e[] = {1, 0, 1};
    const char* l = "c-rsa";
    CK_ATTRIBUTE pub_t[] = {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, e, 3},
                            {CKA_TOKEN, &yes, 1}, {CKA_LABEL, (void*)l, 5}};
    CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &yes, 1}, {CKA_LABEL, (void*)l, 5},
                             {CKA_DECRYPT, &yes, 1}, {CKA_SIGN, &yes, 1}};
    if ((rv = f_->C_GenerateKeyPair(s_, &m, pub_t, 4, priv_t, 4, &pub, &priv))) return rv;
    if ((rv = Attr(pub, CKA_MODULUS, &rsa_n_)) || (rv = Attr(pub, CKA_PUBLIC_EXPONENT, &rsa_e_)))
      return rv;
  }
  {
    CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    const char* l = "c-ec";
    CK_BYTE id = 0xec;  // campaign.sh signs with it (pkcs11-tool --id ec)
    CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, p256, sizeof p256}, {CKA_TOKEN, &yes, 1},
                            {CKA_LABEL, (void*)l, 4}, {CKA_ID, &id, 1}};
    CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &yes, 1}, {CKA_LABEL, (void*)l, 4}, {CKA_SIGN, &yes, 1},
                             {CKA_ID, &id, 1}};
    if ((rv = f_->C_GenerateKeyPair(s_, &m, pub_t, 4, priv_t, 4, &pub, &priv))) return rv;
    Bytes der;
    if ((rv = Attr(pub, CKA_EC_POINT, &der))) return rv;
    if (der.size() != 67) return CKR_GENERAL_ERROR;
    ec_point_.assign(der.begin() + 2, der.end());
  }
  for (size_t i = 0; i < 32; ++i) {
    aes_value_[i] = static_cast<CK_BYTE>(rng_());
    hmac_value_[i] = static_cast<CK_BYTE>(rng_());
  }
  CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
  CK_KEY_TYPE aes = CKK_AES, generic = CKK_GENERIC_SECRET;
  CK_OBJECT_HANDLE h;
  {
    const char* l = "c-aes-known";
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &secret, sizeof secret}, {CKA_KEY_TYPE, &aes, sizeof aes},
                        {CKA_TOKEN, &yes, 1}, {CKA_LABEL, (void*)l, std::strlen(l)},
                        {CKA_ENCRYPT, &yes, 1}, {CKA_DECRYPT, &yes, 1},
                        {CKA_VALUE, aes_value_.data(), 32}};
    if ((rv = f_->C_CreateObject(s_, t, 7, &h))) return rv;
  }
  {
    const char* l = "c-hmac";
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &secret, sizeof secret}, {CKA_KEY_TYPE, &generic, sizeof generic},
                        {CKA_TOKEN, &yes, 1}, {CKA_LABEL, (void*)l, std::strlen(l)},
                        {CKA_SIGN, &yes, 1}, {CKA_VERIFY, &yes, 1},
                        {CKA_VALUE, hmac_value_.data(), 32}};
    if ((rv = f_->C_CreateObject(s_, t, 7, &h))) return rv;
  }
  {
    const char* l = "c-aes-gen";
    CK_MECHANISM m = {CKM_AES_KEY_GEN, nullptr, 0};
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &yes, 1},
                        {CKA_LABEL, (void*)l, std::strlen(l)}, {CKA_ENCRYPT, &yes, 1},
                        {CKA_DECRYPT, &yes, 1}};
    if ((rv = f_->C_GenerateKey(s_, &m, t, 5, &h))) return rv;
  }
  return FindKeys();
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
  timeout_s_ = std::atof(Env("TPMTOKEN_TPM_TIMEOUT", "2").c_str());
  const int ops = std::atoi(Env("CAMPAIGN_OPS", "3000").c_str());
  const double budget = std::atof(Env("CAMPAIGN_SECONDS", "110").c_str());
  rng_.seed(seed_);
  std::printf("campaign: seed %llu, %d operations, rate %.2f, timeout %.0f s\n",
              static_cast<unsigned long long>(seed_), ops, rate_, timeout_s_);

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
  std::map<std::string, int> by_op, op_failures;
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
  while (done < ops &&
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
      rv = Op(which, &name);
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
    if (took > 2 * timeout_s_ + 3) {  // a recovery may time out twice (op + re-init)
      ++hangs_;
      std::printf("HANG: %s took %.1f s (timeout %.0f s)\n", name.c_str(), took, timeout_s_);
    }
    ++done;
    ++outcomes_[CkrName(rv)];
    ++by_op[name];
    if (rv != CKR_OK) ++op_failures[name + ":" + CkrName(rv)];
    if (NewMutations() > 0) ++mutated;
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
  std::printf("\noutcomes:");
  for (auto& [k, v] : outcomes_) std::printf(" %s=%d", k.c_str(), v);
  std::printf("\nfailures by operation:");
  for (auto& [k, v] : op_failures) std::printf(" %s=%d", k.c_str(), v);
  std::printf("\nmutations by kind:");
  int total_mut = 0;
  for (auto& [k, v] : kinds_) {
    std::printf(" %s=%d", k.c_str(), v);
    total_mut += v;
  }
  std::printf("\ndeliberate_wrong_tries=%d setpin_misreports=%d tool_crashes=%d final_pin=%s\n",
              deliberate_wrong_, setpin_misreports_, tool_crashes_, kPins[pin_]);
  std::printf("nv indices before=%d after=%d\n", nv_before, nv_after);
  std::printf("seed %llu: %d operations (%d mutated, %d mutations) in %.0f s; wrong results %d; "
              "hangs %d; token intact: %s\n",
              static_cast<unsigned long long>(seed_), done, mutated, total_mut, secs, wrong_,
              hangs_, intact ? "yes" : "NO");
  return wrong_ == 0 && hangs_ == 0 && intact && recoveries_failed == 0 && tool_crashes_ == 0 &&
         setpin_misreports_ == 0 && nv_before == nv_after;
}

}  // namespace

int main() {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // what was printed survives a crash
  return Campaign().Run() ? 0 : 1;
}

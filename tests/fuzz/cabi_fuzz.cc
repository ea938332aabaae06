// The C ABI as a hostile caller drives it (issue 8 item 5): every mechanism
// in the token's mechanism table, with valid keys (and keys of the wrong
// kind), random parameter structs, random lengths, and every pointer aimed
// at a heap buffer of exactly the length the caller claims, so a read or
// write past it is a sanitizer report. Inputs pick the mechanism, the
// operation (C_*Init then single- or multi-part, length queries, short output
// buffers), the key and each parameter field. Checks besides "no crash":
// no output length past the buffer given, no CKR_GENERAL_ERROR, and the token
// still signs and verifies every 32 inputs. FUZZ_CABI_TRACE=1 prints each
// operation's mechanism, family and answer.
//
// It needs the module ($MODULE) and a TPM ($TPMTOKEN_TCTI; tests/fuzz/
// cabi_run.sh starts a swtpm): in the suite it runs under driver.cc's
// deterministic mutations; with -Dfuzzers=true it is a libFuzzer target
// (start a swtpm, export MODULE, TPMTOKEN_TCTI and TPMTOKEN_STORE, run
// build-fuzz/tests/fuzz_cabi).
#include <dlfcn.h>
#include <tpmtoken/pkcs11.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

[[noreturn]] void Die(const char* what, CK_RV rv = 0) {
  std::fprintf(stderr, "fuzz_cabi: %s (CKR 0x%lx)\n", what, rv);
  std::abort();
}

// Reads the fuzz input as a stream of choices; zeros once it runs out.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint64_t U64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | U8();
    return v;
  }
  size_t Below(size_t n) { return n ? (static_cast<size_t>(U8()) << 8 | U8()) % n : 0; }
  template <typename T>
  T Pick(std::initializer_list<T> options) {
    const size_t i = U8() % (options.size() + 1);
    return i < options.size() ? options.begin()[i] : static_cast<T>(U64());
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Heap buffers of exact sizes for one input: a byte past any of them is an
// ASan report. Size 0 still gets a distinct allocation (a non-null pointer
// with no bytes behind it).
class Arena {
 public:
  uint8_t* Bytes(Reader& r, size_t n) {
    auto p = std::make_unique<uint8_t[]>(n ? n : 1);
    for (size_t i = 0; i < n; ++i) p[i] = r.U8();
    bufs_.push_back(std::move(p));
    return bufs_.back().get();
  }
  uint8_t* Copy(const void* src, size_t n) {
    auto p = std::make_unique<uint8_t[]>(n ? n : 1);
    if (n) std::memcpy(p.get(), src, n);
    bufs_.push_back(std::move(p));
    return bufs_.back().get();
  }
  template <typename T>
  T* Struct(const T& v) {
    return reinterpret_cast<T*>(Copy(&v, sizeof v));
  }

 private:
  std::vector<std::unique_ptr<uint8_t[]>> bufs_;
};

struct Env {
  CK_FUNCTION_LIST_PTR f = nullptr;
  CK_SLOT_ID slot = 0;
  CK_SESSION_HANDLE anchor = 0;  // keeps the login and the session keys
  std::vector<CK_MECHANISM_TYPE> mechs;
  CK_OBJECT_HANDLE rsa_pub = 0, rsa_priv = 0, ec_pub = 0, ec_priv = 0, aes = 0, hmac = 0,
                   extractable = 0;
  std::vector<CK_OBJECT_HANDLE> keys;
  std::vector<uint8_t> ec_point;  // CKA_EC_POINT of ec_pub (a valid peer)
  std::map<CK_RV, unsigned long> codes;
  unsigned long inputs = 0, rsa_keygens = 0;
};

const CK_BYTE kP256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
const CK_BYTE kP384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};

void Check(CK_RV rv, const char* what) {
  if (rv != CKR_OK) Die(what, rv);
}

Env* Setup() {
  auto* e = new Env();
  const char* module = std::getenv("MODULE");
  if (!module || !std::getenv("TPMTOKEN_TCTI")) Die("set MODULE and TPMTOKEN_TCTI (cabi_run.sh)");
  if (!std::getenv("TPMTOKEN_STORE")) {
    char dir[] = "/tmp/tpmtoken-fuzz.XXXXXX";
    if (!mkdtemp(dir)) Die("mkdtemp");
    setenv("TPMTOKEN_STORE", (std::string(dir) + "/store.sqlite3").c_str(), 1);
  }
  void* lib = dlopen(module, RTLD_NOW | RTLD_LOCAL);
  if (!lib) Die(dlerror());
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(lib, "C_GetFunctionList"));
  if (!get) Die("no C_GetFunctionList");
  Check(get(&e->f), "C_GetFunctionList");
  CK_FUNCTION_LIST_PTR f = e->f;
  Check(f->C_Initialize(nullptr), "C_Initialize");
  CK_ULONG n = 1;
  Check(f->C_GetSlotList(CK_FALSE, &e->slot, &n), "C_GetSlotList");
  CK_UTF8CHAR label[32];
  std::memset(label, ' ', sizeof label);
  std::memcpy(label, "fuzz", 4);
  CK_UTF8CHAR so[] = "12345678", user[] = "1234";
  Check(f->C_InitToken(e->slot, so, 8, label), "C_InitToken");
  Check(f->C_OpenSession(e->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                         &e->anchor),
        "C_OpenSession");
  Check(f->C_Login(e->anchor, CKU_SO, so, 8), "SO login");
  Check(f->C_InitPIN(e->anchor, user, 4), "C_InitPIN");
  Check(f->C_Logout(e->anchor), "C_Logout");
  Check(f->C_Login(e->anchor, CKU_USER, user, 4), "user login");
  n = 0;
  Check(f->C_GetMechanismList(e->slot, nullptr, &n), "C_GetMechanismList");
  e->mechs.resize(n);
  Check(f->C_GetMechanismList(e->slot, e->mechs.data(), &n), "C_GetMechanismList");

  // Session keys of every kind, each allowed every use it can have.
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ULONG bits = 2048, len16 = 16, len32 = 32;
  CK_BYTE exp[] = {1, 0, 1};
  CK_MECHANISM rsa_gen = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
  CK_ATTRIBUTE rsa_pub_t[] = {{CKA_MODULUS_BITS, &bits, sizeof bits},
                              {CKA_PUBLIC_EXPONENT, exp, 3},
                              {CKA_WRAP, &yes, 1},
                              {CKA_TOKEN, &no, 1}};
  CK_ATTRIBUTE rsa_priv_t[] = {{CKA_UNWRAP, &yes, 1}, {CKA_TOKEN, &no, 1}};
  Check(f->C_GenerateKeyPair(e->anchor, &rsa_gen, rsa_pub_t, 4, rsa_priv_t, 2, &e->rsa_pub,
                             &e->rsa_priv),
        "RSA key pair");
  CK_MECHANISM ec_gen = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  CK_ATTRIBUTE ec_pub_t[] = {{CKA_EC_PARAMS, const_cast<CK_BYTE*>(kP256), sizeof kP256},
                             {CKA_TOKEN, &no, 1}};
  CK_ATTRIBUTE ec_priv_t[] = {{CKA_DERIVE, &yes, 1}, {CKA_TOKEN, &no, 1}};
  Check(f->C_GenerateKeyPair(e->anchor, &ec_gen, ec_pub_t, 2, ec_priv_t, 2, &e->ec_pub,
                             &e->ec_priv),
        "EC key pair");
  CK_BYTE point[160];
  CK_ATTRIBUTE q = {CKA_EC_POINT, point, sizeof point};
  Check(f->C_GetAttributeValue(e->anchor, e->ec_pub, &q, 1), "CKA_EC_POINT");
  e->ec_point.assign(point, point + q.ulValueLen);
  CK_MECHANISM aes_gen = {CKM_AES_KEY_GEN, nullptr, 0};
  CK_ATTRIBUTE aes_t[] = {{CKA_VALUE_LEN, &len16, sizeof len16},
                          {CKA_WRAP, &yes, 1},
                          {CKA_UNWRAP, &yes, 1},
                          {CKA_TOKEN, &no, 1}};
  Check(f->C_GenerateKey(e->anchor, &aes_gen, aes_t, 4, &e->aes), "AES key");
  CK_MECHANISM hmac_gen = {CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
  CK_ATTRIBUTE hmac_t[] = {{CKA_VALUE_LEN, &len32, sizeof len32}, {CKA_TOKEN, &no, 1}};
  Check(f->C_GenerateKey(e->anchor, &hmac_gen, hmac_t, 2, &e->hmac), "HMAC key");
  // An extractable key (something C_WrapKey can wrap): unwrapped from OAEP.
  CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, nullptr, 0};
  CK_MECHANISM oaep_m = {CKM_RSA_PKCS_OAEP, &oaep, sizeof oaep};
  CK_BYTE value[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, wrapped[512];
  CK_ULONG wlen = sizeof wrapped;
  Check(f->C_EncryptInit(e->anchor, &oaep_m, e->rsa_pub), "C_EncryptInit");
  Check(f->C_Encrypt(e->anchor, value, 16, wrapped, &wlen), "C_Encrypt");
  CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
  CK_KEY_TYPE aes_type = CKK_AES;
  CK_ATTRIBUTE ex_t[] = {{CKA_CLASS, &secret, sizeof secret},
                         {CKA_KEY_TYPE, &aes_type, sizeof aes_type},
                         {CKA_EXTRACTABLE, &yes, 1},
                         {CKA_TOKEN, &no, 1}};
  Check(f->C_UnwrapKey(e->anchor, &oaep_m, e->rsa_priv, wrapped, wlen, ex_t, 4, &e->extractable),
        "extractable key");
  e->keys = {e->rsa_pub, e->rsa_priv, e->ec_pub, e->ec_priv, e->aes, e->hmac, e->extractable};
  // The run's counts: which answers the module gave, how often.
  static Env* printed = e;
  std::atexit([] {
    std::printf("fuzz_cabi: %lu inputs over %zu mechanisms; answers:", printed->inputs,
                printed->mechs.size());
    for (const auto& [rv, count] : printed->codes) std::printf(" 0x%lx=%lu", rv, count);
    std::printf("\n");
  });
  return e;
}

Env& E() {
  static Env* env = Setup();
  return *env;
}

bool IsRsa(CK_MECHANISM_TYPE m) {
  switch (m) {
    case CKM_RSA_PKCS: case CKM_RSA_PKCS_OAEP: case CKM_RSA_PKCS_PSS: case CKM_SHA1_RSA_PKCS:
    case CKM_SHA224_RSA_PKCS: case CKM_SHA256_RSA_PKCS: case CKM_SHA384_RSA_PKCS:
    case CKM_SHA512_RSA_PKCS: case CKM_SHA1_RSA_PKCS_PSS: case CKM_SHA224_RSA_PKCS_PSS:
    case CKM_SHA256_RSA_PKCS_PSS: case CKM_SHA384_RSA_PKCS_PSS: case CKM_SHA512_RSA_PKCS_PSS:
      return true;
    default: return false;
  }
}
bool IsPss(CK_MECHANISM_TYPE m) {
  return m == CKM_RSA_PKCS_PSS || (m >= CKM_SHA256_RSA_PKCS_PSS && m <= CKM_SHA512_RSA_PKCS_PSS) ||
         m == CKM_SHA1_RSA_PKCS_PSS || m == CKM_SHA224_RSA_PKCS_PSS;
}
bool IsEcdsa(CK_MECHANISM_TYPE m) { return m >= CKM_ECDSA && m <= CKM_ECDSA_SHA512; }
bool IsHmac(CK_MECHANISM_TYPE m) {
  return m == CKM_SHA256_HMAC || m == CKM_SHA256_HMAC_GENERAL || m == CKM_SHA384_HMAC ||
         m == CKM_SHA384_HMAC_GENERAL || m == CKM_SHA512_HMAC || m == CKM_SHA512_HMAC_GENERAL;
}

// The mechanism's parameter: none, a struct of its type with random fields
// (pointers inside it aimed at exact buffers), or random bytes of a random
// length.
CK_MECHANISM Params(Reader& r, Arena& a, CK_MECHANISM_TYPE m) {
  Env& e = E();
  CK_MECHANISM mech = {m, nullptr, 0};
  const uint8_t mode = r.U8() % 4;
  if (mode == 0) return mech;
  if (mode == 3) {
    const size_t n = r.Below(80);
    mech.pParameter = a.Bytes(r, n);
    mech.ulParameterLen = n;
    return mech;
  }
  auto hash = [&] {
    return r.Pick<CK_MECHANISM_TYPE>({CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512});
  };
  auto mgf = [&] {
    return r.Pick<CK_RSA_PKCS_MGF_TYPE>(
        {CKG_MGF1_SHA1, CKG_MGF1_SHA224, CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKG_MGF1_SHA512});
  };
  const bool off = mode == 2;  // a struct with a wrong length claimed
  auto put = [&](void* p, size_t size) {
    mech.pParameter = p;
    mech.ulParameterLen = off ? size + 1 - 2 * (r.U8() & 1) : size;
    if (off && mech.ulParameterLen > size) {  // the claimed bytes exist
      uint8_t* longer = a.Bytes(r, mech.ulParameterLen);
      std::memcpy(longer, p, size);
      mech.pParameter = longer;
    }
  };
  if (IsPss(m)) {
    CK_RSA_PKCS_PSS_PARAMS p = {hash(), mgf(),
                                r.Pick<CK_ULONG>({0, 20, 32, 64, 222, 223, ~CK_ULONG{0} - 33,
                                                  ~CK_ULONG{0}})};
    put(a.Struct(p), sizeof p);
  } else if (m == CKM_RSA_PKCS_OAEP) {
    const size_t n = r.U8() & 1 ? r.Below(300) : 0;
    CK_RSA_PKCS_OAEP_PARAMS p = {hash(), mgf(), r.Pick<CK_ULONG>({CKZ_DATA_SPECIFIED, 0}),
                                 n || (r.U8() & 1) ? a.Bytes(r, n) : nullptr, n};
    put(a.Struct(p), sizeof p);
  } else if (m == CKM_AES_CBC || m == CKM_AES_CBC_PAD) {
    const size_t n = r.U8() & 1 ? 16 : r.Below(33);
    mech.pParameter = a.Bytes(r, n);
    mech.ulParameterLen = n;
  } else if (m == CKM_AES_CTR) {
    CK_AES_CTR_PARAMS p;
    p.ulCounterBits = r.Pick<CK_ULONG>({0, 1, 8, 32, 64, 127, 128, 129});
    for (auto& b : p.cb) b = r.U8() & 1 ? 0xFF : r.U8();
    put(a.Struct(p), sizeof p);
  } else if (m == CKM_ECDH1_DERIVE) {
    const size_t shared = r.U8() & 1 ? r.Below(100) : 0;
    CK_ECDH1_DERIVE_PARAMS p;
    p.kdf = r.Pick<CK_ULONG>({CKD_NULL, CKD_SHA1_KDF, CKD_SHA256_KDF, CKD_SHA512_KDF});
    p.ulSharedDataLen = shared;
    p.pSharedData = shared || (r.U8() & 1) ? a.Bytes(r, shared) : nullptr;
    if (r.U8() % 3) {
      uint8_t* pt = a.Copy(e.ec_point.data(), e.ec_point.size());
      if (r.U8() % 4 == 0) pt[r.Below(e.ec_point.size())] ^= r.U8();  // off the curve
      p.pPublicData = pt;
      p.ulPublicDataLen = e.ec_point.size();
    } else {
      const size_t n = r.Below(200);
      p.pPublicData = a.Bytes(r, n);
      p.ulPublicDataLen = n;
    }
    put(a.Struct(p), sizeof p);
  } else if (m == CKM_SHA256_HMAC_GENERAL || m == CKM_SHA384_HMAC_GENERAL ||
             m == CKM_SHA512_HMAC_GENERAL) {
    CK_MAC_GENERAL_PARAMS p = r.Pick<CK_ULONG>({0, 1, 16, 32, 48, 64, 65});
    put(a.Struct(p), sizeof p);
  } else {
    const size_t n = r.Below(32);
    mech.pParameter = a.Bytes(r, n);
    mech.ulParameterLen = n;
  }
  return mech;
}

// The key the mechanism wants, mostly; sometimes any key at all.
CK_OBJECT_HANDLE KeyFor(Reader& r, CK_MECHANISM_TYPE m, bool private_half) {
  Env& e = E();
  if (r.U8() % 5 == 4) return e.keys[r.Below(e.keys.size())];  // zeros: the right key
  if (IsRsa(m)) return private_half ? e.rsa_priv : e.rsa_pub;
  if (IsEcdsa(m) || m == CKM_ECDH1_DERIVE) return private_half ? e.ec_priv : e.ec_pub;
  if (IsHmac(m)) return e.hmac;
  return e.aes;
}

// An output buffer of the caller's chosen size (or none: a length query).
struct Out {
  uint8_t* p = nullptr;
  CK_ULONG cap = 0;
  CK_ULONG len = 0;
};
Out Output(Reader& r, Arena& a) {
  Out o;
  if (r.U8() % 6 == 0) return o;  // length query
  o.cap = r.U8() & 1 ? r.Below(600) : 512;
  o.p = a.Bytes(r, o.cap);
  o.len = o.cap;
  return o;
}
void CheckOut(CK_RV rv, const Out& o, const char* what) {
  if (rv == CKR_OK && o.p && o.len > o.cap) Die(what);
}

std::vector<CK_ATTRIBUTE> KeyTemplate(Reader& r, Arena& a) {
  static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  std::vector<CK_ATTRIBUTE> t = {{CKA_TOKEN, &no, 1}};
  if (r.U8() & 1) {
    auto* cls = a.Struct<CK_OBJECT_CLASS>(r.Pick<CK_OBJECT_CLASS>({CKO_SECRET_KEY, CKO_PRIVATE_KEY}));
    t.push_back({CKA_CLASS, cls, sizeof *cls});
  }
  if (r.U8() & 1) {
    auto* type = a.Struct<CK_KEY_TYPE>(r.Pick<CK_KEY_TYPE>({CKK_AES, CKK_GENERIC_SECRET, CKK_EC}));
    t.push_back({CKA_KEY_TYPE, type, sizeof *type});
  }
  if (r.U8() & 1) {
    auto* len = a.Struct<CK_ULONG>(r.Pick<CK_ULONG>({0, 16, 24, 32, 64, 128, 129}));
    t.push_back({CKA_VALUE_LEN, len, sizeof *len});
  }
  for (CK_ATTRIBUTE_TYPE b : {CKA_EXTRACTABLE, CKA_SENSITIVE, CKA_ENCRYPT, CKA_SIGN, CKA_DERIVE,
                              CKA_WRAP_WITH_TRUSTED})
    if (r.U8() % 3 == 0) t.push_back({b, r.U8() & 1 ? &yes : &no, 1});
  if (r.U8() % 8 == 0) {  // an attribute whose length lies short
    const size_t n = r.Below(8);
    t.push_back({r.Pick<CK_ATTRIBUTE_TYPE>({CKA_VALUE_LEN, CKA_CLASS, CKA_EC_PARAMS}),
                 a.Bytes(r, n), n});
  }
  return t;
}

void Record(CK_RV rv) {
  if (std::getenv("FUZZ_CABI_TRACE")) std::fprintf(stderr, "rv 0x%lx\n", rv);
  if (rv == CKR_GENERAL_ERROR) Die("CKR_GENERAL_ERROR", rv);
  ++E().codes[rv];
}

// One operation: the mechanism's family picked among its flags.
void RunOne(Reader& r, CK_SESSION_HANDLE s) {
  Env& e = E();
  CK_FUNCTION_LIST_PTR f = e.f;
  Arena a;
  const CK_MECHANISM_TYPE m = e.mechs[r.Below(e.mechs.size())];
  CK_MECHANISM_INFO info;
  Check(f->C_GetMechanismInfo(e.slot, m, &info), "C_GetMechanismInfo");
  std::vector<CK_FLAGS> families;
  for (CK_FLAGS fl : {CKF_ENCRYPT, CKF_DECRYPT, CKF_SIGN, CKF_VERIFY, CKF_DIGEST, CKF_DERIVE,
                      CKF_WRAP, CKF_UNWRAP, CKF_GENERATE, CKF_GENERATE_KEY_PAIR})
    if (info.flags & fl) families.push_back(fl);
  if (families.empty()) return;
  const CK_FLAGS fam = families[r.Below(families.size())];
  if (std::getenv("FUZZ_CABI_TRACE")) std::fprintf(stderr, "mech 0x%lx family 0x%lx: ", m, fam);
  CK_MECHANISM mech = Params(r, a, m);
  size_t data_len = r.U8() & 1 ? r.Below(300) : r.Below(40);
  uint8_t* data = a.Bytes(r, data_len);
  CK_RV rv = CKR_OK;
  const bool multi = r.U8() & 1;

  auto crypt = [&](auto init, auto one, auto update, auto final, CK_OBJECT_HANDLE key) {
    if ((rv = (f->*init)(s, &mech, key)) != CKR_OK) return Record(rv);
    Out o = Output(r, a);
    if (!multi) {
      rv = (f->*one)(s, data, data_len, o.p, &o.len);
      CheckOut(rv, o, "single-part output past the buffer");
      Record(rv);
      if (rv == CKR_OK && !o.p) {  // the length query, then the real call
        Out again{a.Bytes(r, o.len), o.len, o.len};
        rv = (f->*one)(s, data, data_len, again.p, &again.len);
        CheckOut(rv, again, "single-part output past the buffer");
        Record(rv);
      }
      return;
    }
    const size_t half = data_len / 2;
    rv = (f->*update)(s, data, half, o.p, &o.len);
    CheckOut(rv, o, "update output past the buffer");
    Record(rv);
    if (rv != CKR_OK) return;
    Out o2 = Output(r, a);
    rv = (f->*update)(s, data + half, data_len - half, o2.p, &o2.len);
    CheckOut(rv, o2, "update output past the buffer");
    Record(rv);
    if (rv != CKR_OK) return;
    Out o3 = Output(r, a);
    rv = (f->*final)(s, o3.p, &o3.len);
    CheckOut(rv, o3, "final output past the buffer");
    Record(rv);
  };

  switch (fam) {
    case CKF_ENCRYPT:
      crypt(&CK_FUNCTION_LIST::C_EncryptInit, &CK_FUNCTION_LIST::C_Encrypt,
            &CK_FUNCTION_LIST::C_EncryptUpdate, &CK_FUNCTION_LIST::C_EncryptFinal,
            KeyFor(r, m, false));
      break;
    case CKF_DECRYPT: {
      // RSA: mostly a block of the modulus size below the modulus.
      if (IsRsa(m) && (r.U8() & 3)) {
        uint8_t* block = a.Bytes(r, 256);
        block[0] = 0;
        data = block;
        data_len = 256;
      }
      crypt(&CK_FUNCTION_LIST::C_DecryptInit, &CK_FUNCTION_LIST::C_Decrypt,
            &CK_FUNCTION_LIST::C_DecryptUpdate, &CK_FUNCTION_LIST::C_DecryptFinal,
            KeyFor(r, m, true));
      break;
    }
    case CKF_SIGN: {
      if ((rv = f->C_SignInit(s, &mech, KeyFor(r, m, true))) != CKR_OK) return Record(rv);
      Out o = Output(r, a);
      if (multi) {
        Record(rv = f->C_SignUpdate(s, data, data_len));
        if (rv != CKR_OK) return;
        rv = f->C_SignFinal(s, o.p, &o.len);
      } else {
        rv = f->C_Sign(s, data, data_len, o.p, &o.len);
      }
      CheckOut(rv, o, "signature past the buffer");
      Record(rv);
      break;
    }
    case CKF_VERIFY: {
      if ((rv = f->C_VerifyInit(s, &mech, KeyFor(r, m, r.U8() % 4 == 0))) != CKR_OK)
        return Record(rv);
      static const size_t kSigLens[] = {32, 64, 96, 256};
      const size_t sig_len = r.U8() & 1 ? kSigLens[r.U8() % 4] : r.Below(600);
      uint8_t* sig = a.Bytes(r, sig_len);
      if (multi) {
        Record(rv = f->C_VerifyUpdate(s, data, data_len));
        if (rv != CKR_OK) return;
        rv = f->C_VerifyFinal(s, sig, sig_len);
      } else {
        rv = f->C_Verify(s, data, data_len, sig, sig_len);
      }
      Record(rv);
      break;
    }
    case CKF_DIGEST: {
      if ((rv = f->C_DigestInit(s, &mech)) != CKR_OK) return Record(rv);
      Out o = Output(r, a);
      rv = f->C_Digest(s, data, data_len, o.p, &o.len);
      CheckOut(rv, o, "digest past the buffer");
      Record(rv);
      break;
    }
    case CKF_DERIVE: {
      std::vector<CK_ATTRIBUTE> t = KeyTemplate(r, a);
      CK_OBJECT_HANDLE k;
      Record(f->C_DeriveKey(s, &mech, KeyFor(r, m, true), t.data(), t.size(), &k));
      break;
    }
    case CKF_WRAP: {
      Out o = Output(r, a);
      const CK_OBJECT_HANDLE key = r.U8() % 4 ? e.extractable : e.keys[r.Below(e.keys.size())];
      rv = f->C_WrapKey(s, &mech, KeyFor(r, m, false), key, o.p, &o.len);
      CheckOut(rv, o, "wrapped key past the buffer");
      Record(rv);
      break;
    }
    case CKF_UNWRAP: {
      std::vector<CK_ATTRIBUTE> t = KeyTemplate(r, a);
      size_t n = data_len;
      if (IsRsa(m) && (r.U8() & 3)) {
        data = a.Bytes(r, 256);
        data[0] = 0;
        n = 256;
      } else if (r.U8() & 1) {
        n = 8 * (2 + r.Below(8));
        data = a.Bytes(r, n);
      }
      CK_OBJECT_HANDLE k;
      Record(f->C_UnwrapKey(s, &mech, KeyFor(r, m, true), data, n, t.data(), t.size(), &k));
      break;
    }
    case CKF_GENERATE: {
      std::vector<CK_ATTRIBUTE> t = KeyTemplate(r, a);
      CK_OBJECT_HANDLE k;
      Record(f->C_GenerateKey(s, &mech, t.data(), t.size(), &k));
      break;
    }
    case CKF_GENERATE_KEY_PAIR: {
      static CK_BBOOL no = CK_FALSE;
      std::vector<CK_ATTRIBUTE> pub = {{CKA_TOKEN, &no, 1}}, priv = {{CKA_TOKEN, &no, 1}};
      if (m == CKM_RSA_PKCS_KEY_PAIR_GEN) {
        // RSA generation costs the simulator up to seconds: a few per run.
        if (e.rsa_keygens >= 3) return;
        ++e.rsa_keygens;
        auto* bits = a.Struct<CK_ULONG>(r.Pick<CK_ULONG>({1024, 2048, 3000}));
        if (r.U8() % 4) pub.push_back({CKA_MODULUS_BITS, bits, sizeof *bits});
      } else {
        const size_t which = r.U8() % 3;
        const CK_BYTE* params = which == 0 ? kP256 : kP384;
        size_t n = which == 0 ? sizeof kP256 : sizeof kP384;
        uint8_t* p = which == 2 ? a.Bytes(r, n = r.Below(16)) : a.Copy(params, n);
        pub.push_back({CKA_EC_PARAMS, p, n});
      }
      std::vector<CK_ATTRIBUTE> extra = KeyTemplate(r, a);
      priv.insert(priv.end(), extra.begin() + 1, extra.end());
      CK_OBJECT_HANDLE hp, hq;
      Record(f->C_GenerateKeyPair(s, &mech, pub.data(), pub.size(), priv.data(), priv.size(), &hp,
                                  &hq));
      break;
    }
    default: break;
  }
}

// The token still works: an ECDSA signature that verifies.
void SanityCheck() {
  Env& e = E();
  CK_MECHANISM m = {CKM_ECDSA_SHA256, nullptr, 0};
  CK_BYTE msg[] = "still alive", sig[64];
  CK_ULONG len = sizeof sig;
  Check(e.f->C_SignInit(e.anchor, &m, e.ec_priv), "sanity C_SignInit");
  Check(e.f->C_Sign(e.anchor, msg, 11, sig, &len), "sanity C_Sign");
  Check(e.f->C_VerifyInit(e.anchor, &m, e.ec_pub), "sanity C_VerifyInit");
  Check(e.f->C_Verify(e.anchor, msg, 11, sig, len), "sanity C_Verify");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Env& e = E();
  Reader r(data, size);
  CK_SESSION_HANDLE s;
  Check(e.f->C_OpenSession(e.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s),
        "C_OpenSession");
  for (int ops = 1 + r.U8() % 3; ops > 0; --ops) RunOne(r, s);
  Check(e.f->C_CloseSession(s), "C_CloseSession");  // ends its operations and objects
  if (++e.inputs % 32 == 0) SanityCheck();
  return 0;
}

// Seeds for the deterministic driver: each mechanism with each family and
// each parameter mode, the rest of the choices zero.
std::vector<std::vector<uint8_t>> FuzzSeeds() {
  std::vector<std::vector<uint8_t>> seeds;
  const size_t n = E().mechs.size();
  for (size_t m = 0; m < n; ++m)
    for (uint8_t fam = 0; fam < 2; ++fam)
      for (uint8_t mode = 1; mode < 3; ++mode)
        seeds.push_back({0, 0, static_cast<uint8_t>(m), fam, 0, mode, 0x20, 0x40, 0x11, 0x22});
  return seeds;
}


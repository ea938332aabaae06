// Update signatures as `tpmtoken verify` reads them (issue 11): whatever
// bytes arrive as --signature, crypto::VerifyDetached gives a verdict, never
// a crash. The seeds are a valid detached CMS signature (DER and PEM) by a
// code-signing leaf under an intermediate that travels inside the CMS, made
// here at start so that they never expire; each seed must verify.
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "crypto/cms.h"

using namespace tpmtoken;

namespace {

constexpr char kContent[] = "an update image";

struct Fixture {
  std::string content_path;
  Bytes anchor;
  ~Fixture() {
    if (!content_path.empty()) unlink(content_path.c_str());
  }
};
Fixture& Fix() {
  static Fixture f;
  return f;
}

X509* MakeCert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
               std::vector<std::pair<int, const char*>> exts) {
  static long serial = 1;
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
  X509_set_pubkey(x, key);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : x, x, nullptr, nullptr, 0);
  for (const auto& [nid, value] : exts) {
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!e || !X509_add_ext(x, e, -1)) std::abort();
    X509_EXTENSION_free(e);
  }
  if (!X509_sign(x, issuer_key, EVP_sha256())) std::abort();
  return x;
}

template <typename T>
Bytes Der(const T* v, int (*i2d)(const T*, unsigned char**)) {
  unsigned char* p = nullptr;
  const int n = i2d(v, &p);
  if (n <= 0) std::abort();
  Bytes out(p, p + n);
  OPENSSL_free(p);
  return out;
}

}  // namespace

std::vector<std::vector<uint8_t>> FuzzSeeds() {
  EVP_PKEY* root_key = EVP_EC_gen("P-256");
  EVP_PKEY* int_key = EVP_EC_gen("P-256");
  EVP_PKEY* leaf_key = EVP_EC_gen("P-256");
  const std::vector<std::pair<int, const char*>> ca = {{NID_basic_constraints, "critical,CA:TRUE"},
                                                       {NID_key_usage, "critical,keyCertSign"}};
  X509* root = MakeCert("fuzz-root", root_key, nullptr, root_key, ca);
  X509* inter = MakeCert("fuzz-int", int_key, root, root_key, ca);
  X509* leaf =
      MakeCert("fuzz-signer", leaf_key, inter, int_key,
               {{NID_key_usage, "critical,digitalSignature"}, {NID_ext_key_usage, "codeSigning"}});
  Fix().anchor = Der<X509>(root, i2d_X509);

  char path[] = "/tmp/tpmtoken-cms-fuzz.XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0 || write(fd, kContent, sizeof kContent - 1) != sizeof kContent - 1) std::abort();
  close(fd);
  Fix().content_path = path;

  STACK_OF(X509)* chain = sk_X509_new_null();
  sk_X509_push(chain, inter);
  BIO* in = BIO_new_mem_buf(kContent, sizeof kContent - 1);
  CMS_ContentInfo* cms = CMS_sign(leaf, leaf_key, chain, in, CMS_BINARY | CMS_DETACHED);
  if (!cms) std::abort();
  std::vector<std::vector<uint8_t>> seeds = {Der<CMS_ContentInfo>(cms, i2d_CMS_ContentInfo)};
  BIO* pem = BIO_new(BIO_s_mem());
  PEM_write_bio(pem, "CMS", "", seeds[0].data(), static_cast<long>(seeds[0].size()));
  char* text = nullptr;
  const long len = BIO_get_mem_data(pem, &text);
  seeds.emplace_back(text, text + len);
  for (const auto& s : seeds)
    if (crypto::VerifyDetached(s, Fix().content_path, Fix().anchor).verdict !=
        crypto::Verdict::kValid)
      std::abort();  // the seeds must reach the valid path
  BIO_free(pem);
  BIO_free(in);
  CMS_ContentInfo_free(cms);
  sk_X509_free(chain);
  for (X509* x : {root, inter, leaf}) X509_free(x);
  for (EVP_PKEY* k : {root_key, int_key, leaf_key}) EVP_PKEY_free(k);
  return seeds;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (Fix().anchor.empty()) FuzzSeeds();  // libFuzzer: no driver made them
  const crypto::VerifyResult r =
      crypto::VerifyDetached(ByteView(data, size), Fix().content_path, Fix().anchor);
  if (r.verdict != crypto::Verdict::kValid && r.detail.empty()) std::abort();  // a cause is named
  return 0;
}

// What the mutation campaign checks the token's answers with: OpenSSL in
// software (signatures verified, RSA encryption, AES-CBC), and CKR names.
#include "checks.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <cstdio>
#include <map>

namespace campaign {

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
// An RSA public key from its modulus and exponent (caller frees).
EVP_PKEY* RsaKey(const Bytes& n, const Bytes& e) {
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
  EVP_PKEY_CTX_free(kc);
  OSSL_PARAM_free(p);
  OSSL_PARAM_BLD_free(b);
  BN_free(bn);
  BN_free(be);
  return key;
}

bool VerifyRsa(const Bytes& n, const Bytes& e, const Bytes& msg, const Bytes& sig) {
  EVP_PKEY* key = RsaKey(n, e);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = key && EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(md, sig.data(), sig.size(), msg.data(), msg.size()) == 1;
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(key);
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
  EVP_PKEY* key = RsaKey(n, e);
  EVP_PKEY_CTX* ec = EVP_PKEY_CTX_new(key, nullptr);
  Bytes out(n.size());
  size_t len = out.size();
  if (EVP_PKEY_encrypt_init(ec) != 1 || EVP_PKEY_CTX_set_rsa_padding(ec, RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_encrypt(ec, out.data(), &len, msg.data(), msg.size()) != 1)
    out.clear();
  EVP_PKEY_CTX_free(ec);
  EVP_PKEY_free(key);
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

}  // namespace campaign

#include "crypto/pubkey.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstring>

namespace tpmtoken::crypto {
namespace {

using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using Bn = std::unique_ptr<BIGNUM, Deleter<BN_free>>;

Pkey FromData(const char* type, OSSL_PARAM* params) {
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(LibCtx(), type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
    return nullptr;
  return Pkey(key);
}

PkeyCtx VerifyCtx(EVP_PKEY* key) {
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(LibCtx(), key, nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1) return nullptr;
  return ctx;
}

}  // namespace

const std::vector<Curve>& Curves() {
  static const std::vector<Curve> kCurves = {
      {TPM2_ECC_NIST_P256, "prime256v1", "prime256v1",
       {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}, 32, 256},
      {TPM2_ECC_NIST_P384, "secp384r1", "secp384r1", {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22},
       48, 384},
      {TPM2_ECC_NIST_P521, "secp521r1", "secp521r1", {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23},
       66, 521},
  };
  return kCurves;
}

const Curve* CurveFromParams(ByteView p) {
  for (const Curve& c : Curves()) {
    if (p.size() == c.oid_der.size() && std::memcmp(p.data(), c.oid_der.data(), p.size()) == 0)
      return &c;
    // PrintableString (tag 0x13) holding the curve name.
    const size_t n = std::strlen(c.alias);
    if (p.size() == n + 2 && p[0] == 0x13 && p[1] == n && std::memcmp(p.data() + 2, c.alias, n) == 0)
      return &c;
  }
  return nullptr;
}

const Curve* CurveFromTpm(TPM2_ECC_CURVE tpm) {
  for (const Curve& c : Curves())
    if (c.tpm == tpm) return &c;
  return nullptr;
}

Bytes EcPointDer(ByteView x, ByteView y) {
  const size_t n = 1 + x.size() + y.size();
  Bytes out = {0x04};
  if (n < 128) {
    out.push_back(static_cast<uint8_t>(n));
  } else {
    out.push_back(0x81);
    out.push_back(static_cast<uint8_t>(n));
  }
  out.push_back(0x04);
  out.insert(out.end(), x.begin(), x.end());
  out.insert(out.end(), y.begin(), y.end());
  return out;
}

std::optional<Bytes> EcPointRaw(ByteView p, const Curve& curve) {
  const size_t n = 1 + 2 * curve.bytes;
  if (p.size() == n && p[0] == 0x04) return Bytes(p.begin(), p.end());
  const size_t header = n < 128 ? 2 : 3;
  if (p.size() == n + header && p[0] == 0x04 && p[header] == 0x04 &&
      (n < 128 ? p[1] == n : (p[1] == 0x81 && p[2] == n)))
    return Bytes(p.begin() + static_cast<ptrdiff_t>(header), p.end());
  return std::nullopt;
}

Pkey RsaPublicKey(ByteView modulus, ByteView exponent) {
  Bn n(BN_bin2bn(modulus.data(), static_cast<int>(modulus.size()), nullptr));
  Bn e(BN_bin2bn(exponent.data(), static_cast<int>(exponent.size()), nullptr));
  ParamBld bld(OSSL_PARAM_BLD_new());
  if (!n || !e || !bld || BN_is_zero(e.get()) || BN_num_bits(n.get()) < 512 ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()))
    return nullptr;
  Params params(OSSL_PARAM_BLD_to_param(bld.get()));
  return params ? FromData("RSA", params.get()) : nullptr;
}

Pkey EcPublicKey(const Curve& curve, ByteView point) {
  ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, curve.name, 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                        point.size()))
    return nullptr;
  Params params(OSSL_PARAM_BLD_to_param(bld.get()));
  Pkey key = params ? FromData("EC", params.get()) : nullptr;
  if (!key) return nullptr;
  // fromdata does not check that the point is on the curve.
  PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(LibCtx(), key.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return nullptr;
  return key;
}

Bytes SubjectPublicKeyInfo(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(key, &der);
  if (n <= 0) Fail("encoding SubjectPublicKeyInfo");
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

bool VerifyRsaPkcs1(EVP_PKEY* key, ByteView t, ByteView sig) {
  PkeyCtx ctx = VerifyCtx(key);
  if (!ctx || EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) return false;
  // No signature digest is set, so t is compared as given (a DigestInfo or raw data).
  return EVP_PKEY_verify(ctx.get(), sig.data(), sig.size(), t.data(), t.size()) == 1;
}

bool VerifyRsaPss(EVP_PKEY* key, const EVP_MD* md, const EVP_MD* mgf, int salt, ByteView m_hash,
                  ByteView sig) {
  PkeyCtx ctx = VerifyCtx(key);
  return ctx && EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_signature_md(ctx.get(), md) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), mgf) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), salt) == 1 &&
         EVP_PKEY_verify(ctx.get(), sig.data(), sig.size(), m_hash.data(), m_hash.size()) == 1;
}

bool VerifyEcdsa(EVP_PKEY* key, ByteView digest, ByteView r_s) {
  if (r_s.empty() || r_s.size() % 2) return false;
  const size_t half = r_s.size() / 2;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(r_s.data(), static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(r_s.data() + half, static_cast<int>(half), nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return false;
  }
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (n <= 0) return false;
  PkeyCtx ctx = VerifyCtx(key);
  const bool ok = ctx && EVP_PKEY_verify(ctx.get(), der, n, digest.data(), digest.size()) == 1;
  OPENSSL_free(der);
  return ok;
}

}  // namespace tpmtoken::crypto

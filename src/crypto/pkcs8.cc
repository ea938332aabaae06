#include "crypto/pkcs8.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "crypto/ossl.h"

namespace tpmtoken::crypto {
namespace {

using Bn = std::unique_ptr<BIGNUM, Deleter<BN_clear_free>>;
using BnCtx = std::unique_ptr<BN_CTX, Deleter<BN_CTX_free>>;
using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using P8 = std::unique_ptr<PKCS8_PRIV_KEY_INFO, Deleter<PKCS8_PRIV_KEY_INFO_free>>;

Bn ToBn(ByteView b) {
  Bn v(BN_secure_new());
  if (!v || !BN_bin2bn(b.data(), static_cast<int>(b.size()), v.get())) Fail("allocating numbers");
  return v;
}

Bn NewBn() {
  Bn v(BN_secure_new());
  if (!v) Fail("allocating numbers");
  return v;
}

Secret FromBn(const BIGNUM* v) {
  Secret out(static_cast<size_t>(BN_num_bytes(v)));
  BN_bn2bin(v, out.data());
  return out;
}

// The key from its parameters, then its PrivateKeyInfo DER.
std::optional<Secret> Encode(const char* type, OSSL_PARAM_BLD* bld) {
  Params params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(LibCtx(), type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_KEYPAIR, params.get()) != 1)
    return std::nullopt;
  Pkey key(raw);
  P8 p8(EVP_PKEY2PKCS8(key.get()));
  if (!p8) return std::nullopt;
  const int len = i2d_PKCS8_PRIV_KEY_INFO(p8.get(), nullptr);
  if (len <= 0) return std::nullopt;
  Secret out(static_cast<size_t>(len));
  unsigned char* p = out.data();
  i2d_PKCS8_PRIV_KEY_INFO(p8.get(), &p);
  return out;
}

}  // namespace

std::optional<RsaParts> RsaPartsFromPrime(ByteView n, ByteView e, ByteView p, ByteView given_d) {
  BnCtx ctx(BN_CTX_secure_new_ex(LibCtx()));
  if (!ctx) Fail("allocating numbers");
  Bn bn_n = ToBn(n), bn_e = ToBn(e), bn_p = ToBn(p), q = NewBn(), rem = NewBn();
  if (BN_is_zero(bn_p.get()) || !BN_div(q.get(), rem.get(), bn_n.get(), bn_p.get(), ctx.get()) ||
      !BN_is_zero(rem.get()) || BN_is_one(q.get()) || BN_is_one(bn_p.get()))
    return std::nullopt;
  Bn p1 = NewBn(), q1 = NewBn(), gcd = NewBn(), lambda = NewBn(), d = NewBn();
  BN_copy(p1.get(), bn_p.get());
  BN_copy(q1.get(), q.get());
  if (!BN_sub_word(p1.get(), 1) || !BN_sub_word(q1.get(), 1) ||
      !BN_gcd(gcd.get(), p1.get(), q1.get(), ctx.get()) ||
      !BN_mul(lambda.get(), p1.get(), q1.get(), ctx.get()) ||
      !BN_div(lambda.get(), nullptr, lambda.get(), gcd.get(), ctx.get()))
    return std::nullopt;
  if (!given_d.empty()) {
    d = ToBn(given_d);
    Bn check = NewBn();
    if (!BN_mod_mul(check.get(), bn_e.get(), d.get(), lambda.get(), ctx.get()) ||
        !BN_is_one(check.get()))
      return std::nullopt;
  } else if (!BN_mod_inverse(d.get(), bn_e.get(), lambda.get(), ctx.get())) {
    return std::nullopt;
  }
  Bn dp = NewBn(), dq = NewBn(), qinv = NewBn();
  if (!BN_mod(dp.get(), d.get(), p1.get(), ctx.get()) ||
      !BN_mod(dq.get(), d.get(), q1.get(), ctx.get()) ||
      !BN_mod_inverse(qinv.get(), q.get(), bn_p.get(), ctx.get()))
    return std::nullopt;
  return RsaParts{FromBn(d.get()),  FromBn(bn_p.get()), FromBn(q.get()),
                  FromBn(dp.get()), FromBn(dq.get()),   FromBn(qinv.get())};
}

std::optional<Secret> RsaPkcs8(ByteView n, ByteView e, const RsaParts& k) {
  ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld) Fail("allocating parameters");
  Bn v[] = {ToBn(n),          ToBn(e),          ToBn(k.d.view()),  ToBn(k.p.view()),
            ToBn(k.q.view()), ToBn(k.dp.view()), ToBn(k.dq.view()), ToBn(k.qinv.view())};
  const char* names[] = {OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
                         OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
                         OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
                         OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
  for (size_t i = 0; i < 8; ++i)
    if (!OSSL_PARAM_BLD_push_BN(bld.get(), names[i], v[i].get())) Fail("RSA parameters");
  return Encode("RSA", bld.get());
}

std::optional<Secret> EcPkcs8(const Curve& curve, ByteView d, ByteView point) {
  ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld) Fail("allocating parameters");
  Bn priv = ToBn(d);
  if (!OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, curve.name, 0) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, priv.get()) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                        point.size()))
    Fail("EC parameters");
  return Encode("EC", bld.get());
}

}  // namespace tpmtoken::crypto

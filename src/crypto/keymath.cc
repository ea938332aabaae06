#include "crypto/keymath.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/objects.h>

namespace tpmtoken::crypto {
namespace {

using Bn = std::unique_ptr<BIGNUM, Deleter<BN_clear_free>>;
using BnCtx = std::unique_ptr<BN_CTX, Deleter<BN_CTX_free>>;

Bn ToBn(ByteView b) { return Bn(BN_bin2bn(b.data(), static_cast<int>(b.size()), nullptr)); }

Secret FromBn(const BIGNUM* v, size_t len) {
  Secret out(len);
  if (BN_bn2binpad(v, out.data(), static_cast<int>(len)) < 0) Fail("number too large");
  return out;
}

}  // namespace

bool RsaPrimeDivides(ByteView n, ByteView p) {
  Bn bn_n = ToBn(n), bn_p = ToBn(p), rem(BN_new());
  BnCtx ctx(BN_CTX_new_ex(LibCtx()));
  if (!bn_n || !bn_p || !rem || !ctx || BN_is_one(bn_p.get()) || BN_is_zero(bn_p.get()) ||
      BN_cmp(bn_p.get(), bn_n.get()) >= 0)
    return false;
  return BN_mod(rem.get(), bn_n.get(), bn_p.get(), ctx.get()) == 1 && BN_is_zero(rem.get());
}

// With k = e*d - 1 = 2^s * t (t odd), for random g some g^(t*2^i) is a
// non-trivial square root of 1 mod n, and gcd(that - 1, n) is a prime.
std::optional<Secret> RsaPrimeFromExponents(ByteView n, ByteView e, ByteView d) {
  Bn bn_n = ToBn(n), bn_e = ToBn(e), bn_d = ToBn(d);
  BnCtx ctx(BN_CTX_new_ex(LibCtx()));
  Bn k(BN_new()), t(BN_new()), g(BN_new()), x(BN_new()), y(BN_new()), n1(BN_new()), p(BN_new());
  if (!bn_n || !bn_e || !bn_d || !ctx || !k || !t || !g || !x || !y || !n1 || !p)
    Fail("allocating numbers");
  if (!BN_mul(k.get(), bn_e.get(), bn_d.get(), ctx.get()) || !BN_sub_word(k.get(), 1) ||
      BN_is_zero(k.get()) || BN_is_odd(k.get()) || !BN_copy(n1.get(), bn_n.get()) ||
      !BN_sub_word(n1.get(), 1))
    return std::nullopt;
  int s = 0;
  BN_copy(t.get(), k.get());
  while (!BN_is_odd(t.get())) {
    BN_rshift1(t.get(), t.get());
    ++s;
  }
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (!BN_priv_rand_range_ex(g.get(), bn_n.get(), 0, ctx.get())) Fail("random base");
    if (BN_cmp(g.get(), BN_value_one()) <= 0) continue;
    if (!BN_mod_exp(x.get(), g.get(), t.get(), bn_n.get(), ctx.get())) Fail("mod_exp");
    for (int i = 0; i < s; ++i) {
      if (BN_is_one(x.get()) || BN_cmp(x.get(), n1.get()) == 0) break;
      if (!BN_mod_sqr(y.get(), x.get(), bn_n.get(), ctx.get())) Fail("mod_sqr");
      if (BN_is_one(y.get())) {
        BN_sub_word(x.get(), 1);
        BN_gcd(p.get(), x.get(), bn_n.get(), ctx.get());
        const size_t len = static_cast<size_t>(BN_num_bytes(p.get()));
        Secret out = FromBn(p.get(), len);
        if (RsaPrimeDivides(n, out.view())) return out;
        break;
      }
      std::swap(x, y);
    }
  }
  return std::nullopt;
}

using Group = std::unique_ptr<EC_GROUP, Deleter<EC_GROUP_free>>;
using Point = std::unique_ptr<EC_POINT, Deleter<EC_POINT_free>>;

std::optional<EcdhResult> EcdhEphemeral(const Curve& curve, ByteView x, ByteView y) {
  Group group(EC_GROUP_new_by_curve_name_ex(LibCtx(), nullptr, OBJ_sn2nid(curve.name)));
  BnCtx ctx(BN_CTX_new_ex(LibCtx()));
  Bn px = ToBn(x), py = ToBn(y), k(BN_new()), zx(BN_new());
  if (!group || !ctx || !px || !py || !k || !zx) Fail("EC group");
  Point peer(EC_POINT_new(group.get()));
  if (!peer || EC_POINT_set_affine_coordinates(group.get(), peer.get(), px.get(), py.get(),
                                               ctx.get()) != 1 ||
      EC_POINT_is_on_curve(group.get(), peer.get(), ctx.get()) != 1)
    return std::nullopt;
  const BIGNUM* order = EC_GROUP_get0_order(group.get());
  do {
    if (!BN_priv_rand_range_ex(k.get(), order, 0, ctx.get())) Fail("ephemeral scalar");
  } while (BN_is_zero(k.get()));
  Point q(EC_POINT_new(group.get())), shared(EC_POINT_new(group.get()));
  if (!q || !shared || !EC_POINT_mul(group.get(), q.get(), k.get(), nullptr, nullptr, ctx.get()) ||
      !EC_POINT_mul(group.get(), shared.get(), nullptr, peer.get(), k.get(), ctx.get()) ||
      EC_POINT_is_at_infinity(group.get(), shared.get()) ||
      !EC_POINT_get_affine_coordinates(group.get(), shared.get(), zx.get(), nullptr, ctx.get()))
    Fail("ECDH point multiplication");
  EcdhResult r;
  r.point.resize(1 + 2 * curve.bytes);
  if (EC_POINT_point2oct(group.get(), q.get(), POINT_CONVERSION_UNCOMPRESSED, r.point.data(),
                         r.point.size(), ctx.get()) != r.point.size())
    Fail("EC point encoding");
  r.z = FromBn(zx.get(), curve.bytes);
  return r;
}

std::optional<Bytes> EcPublicFromPrivate(const Curve& curve, ByteView d) {
  Group group(EC_GROUP_new_by_curve_name_ex(LibCtx(), nullptr, OBJ_sn2nid(curve.name)));
  BnCtx ctx(BN_CTX_new_ex(LibCtx()));
  Bn scalar = ToBn(d);
  if (!group || !ctx || !scalar) Fail("EC group");
  const BIGNUM* order = EC_GROUP_get0_order(group.get());
  if (BN_is_zero(scalar.get()) || BN_cmp(scalar.get(), order) >= 0) return std::nullopt;
  Point q(EC_POINT_new(group.get()));
  if (!q || !EC_POINT_mul(group.get(), q.get(), scalar.get(), nullptr, nullptr, ctx.get()))
    Fail("EC point multiplication");
  Bytes out(1 + 2 * curve.bytes);
  if (EC_POINT_point2oct(group.get(), q.get(), POINT_CONVERSION_UNCOMPRESSED, out.data(),
                         out.size(), ctx.get()) != out.size())
    Fail("EC point encoding");
  return out;
}

}  // namespace tpmtoken::crypto

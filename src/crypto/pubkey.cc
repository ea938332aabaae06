#include "crypto/pubkey.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/objects.h>

#include <cstring>

#include "mech/padding.h"

namespace tpmtoken::crypto {
namespace {

using Bn = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using BnCtx = std::unique_ptr<BN_CTX, Deleter<BN_CTX_free>>;
using Group = std::unique_ptr<EC_GROUP, Deleter<EC_GROUP_free>>;
using Point = std::unique_ptr<EC_POINT, Deleter<EC_POINT_free>>;

Bn ToBn(ByteView b) { return Bn(BN_bin2bn(b.data(), static_cast<int>(b.size()), nullptr)); }

Bytes Trim(ByteView b) {
  size_t i = 0;
  while (i < b.size() && b[i] == 0) ++i;
  return Bytes(b.begin() + static_cast<ptrdiff_t>(i), b.end());
}

// DER: tag, definite length, contents.
Bytes Der(uint8_t tag, ByteView content) {
  Bytes out = {tag};
  const size_t n = content.size();
  if (n < 0x80) {
    out.push_back(static_cast<uint8_t>(n));
  } else {
    Bytes len;
    for (size_t v = n; v; v >>= 8) len.insert(len.begin(), static_cast<uint8_t>(v));
    out.push_back(static_cast<uint8_t>(0x80 | len.size()));
    out.insert(out.end(), len.begin(), len.end());
  }
  out.insert(out.end(), content.begin(), content.end());
  return out;
}
Bytes Cat(std::initializer_list<ByteView> parts) {
  Bytes out;
  for (ByteView p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
Bytes DerInteger(ByteView be) {
  Bytes v = Trim(be);
  if (v.empty() || (v[0] & 0x80)) v.insert(v.begin(), 0);
  return Der(0x02, v);
}

Group CurveGroup(const Curve& c) {
  Group g(EC_GROUP_new_by_curve_name_ex(LibCtx(), nullptr, OBJ_sn2nid(c.name)));
  if (!g) Fail(std::string("EC group ") + c.name);
  return g;
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
  return Der(0x04, Cat({Bytes{0x04}, x, y}));
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

size_t PublicKey::ModulusBits() const {
  if (n.empty()) return 0;
  size_t bits = n.size() * 8;
  for (uint8_t top = n[0]; !(top & 0x80); top <<= 1) --bits;
  return bits;
}

std::optional<PublicKey> RsaPublic(ByteView n, ByteView e) {
  PublicKey k;
  k.rsa = true;
  k.n = Trim(n);
  k.e = Trim(e);
  if (k.ModulusBits() < 1024 || !(k.n.back() & 1) || k.e.empty() || k.e.size() > 8 ||
      !(k.e.back() & 1) || (k.e.size() == 1 && k.e[0] < 3))
    return std::nullopt;
  return k;
}

std::optional<PublicKey> EcPublic(const Curve& curve, ByteView point) {
  Group g = CurveGroup(curve);
  Point p(EC_POINT_new(g.get()));
  BnCtx ctx(BN_CTX_new_ex(LibCtx()));
  if (!p || !ctx || point.size() != 1 + 2 * curve.bytes || point[0] != 0x04 ||
      EC_POINT_oct2point(g.get(), p.get(), point.data(), point.size(), ctx.get()) != 1 ||
      EC_POINT_is_on_curve(g.get(), p.get(), ctx.get()) != 1 ||
      EC_POINT_is_at_infinity(g.get(), p.get()))
    return std::nullopt;
  PublicKey k;
  k.curve = &curve;
  k.point.assign(point.begin(), point.end());
  return k;
}

// RFC 5280 SubjectPublicKeyInfo; RFC 3279 / 5480 algorithm identifiers.
Bytes SubjectPublicKeyInfo(const PublicKey& key) {
  static const uint8_t kRsaOid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
  static const uint8_t kEcOid[] = {0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
  static const uint8_t kNull[] = {0x05, 0x00};
  if (key.rsa) {
    const Bytes alg = Der(0x30, Cat({kRsaOid, kNull}));
    const Bytes rsa_key = Der(0x30, Cat({DerInteger(key.n), DerInteger(key.e)}));
    return Der(0x30, Cat({alg, Der(0x03, Cat({Bytes{0x00}, rsa_key}))}));
  }
  const Bytes alg = Der(0x30, Cat({kEcOid, key.curve->oid_der}));
  return Der(0x30, Cat({alg, Der(0x03, Cat({Bytes{0x00}, key.point}))}));
}

std::optional<Bytes> RsaPublicOp(const PublicKey& key, ByteView m) {
  Bn n = ToBn(key.n), e = ToBn(key.e), x = ToBn(m), y(BN_new());
  BnCtx ctx(BN_CTX_new_ex(LibCtx()));
  if (!n || !e || !x || !y || !ctx) Fail("allocating numbers");
  if (BN_cmp(x.get(), n.get()) >= 0) return std::nullopt;
  if (!BN_mod_exp(y.get(), x.get(), e.get(), n.get(), ctx.get())) Fail("RSA public operation");
  Bytes out(key.ModulusBytes());
  if (BN_bn2binpad(y.get(), out.data(), static_cast<int>(out.size())) < 0) Fail("RSA output");
  return out;
}

bool VerifyRsaPkcs1(const PublicKey& key, ByteView t, ByteView sig) {
  if (sig.size() != key.ModulusBytes()) return false;
  const auto em = RsaPublicOp(key, sig);
  const auto expect = mech::Pkcs1SignPad(t, key.ModulusBytes());
  return em && expect && *em == *expect;
}

bool VerifyRsaPss(const PublicKey& key, const EVP_MD* md, const EVP_MD* mgf, size_t salt,
                  ByteView m_hash, ByteView sig) {
  if (sig.size() != key.ModulusBytes()) return false;
  const auto em = RsaPublicOp(key, sig);
  return em && mech::PssVerify(m_hash, *em, key.ModulusBits(), md, mgf, salt);
}

// SEC 1 section 4.1.4: with e the leftmost order-length bits of the hash,
// w = s^-1, R = (e*w)G + (r*w)Q, valid when x(R) mod n = r.
bool VerifyEcdsa(const PublicKey& key, ByteView digest, ByteView r_s) {
  if (!key.curve || r_s.size() != 2 * key.curve->bytes) return false;
  Group g = CurveGroup(*key.curve);
  BnCtx ctx(BN_CTX_new_ex(LibCtx()));
  const BIGNUM* order = EC_GROUP_get0_order(g.get());
  Bn r = ToBn(r_s.first(key.curve->bytes)), s = ToBn(r_s.subspan(key.curve->bytes));
  Bn e = ToBn(digest), w(BN_new()), u1(BN_new()), u2(BN_new()), x(BN_new());
  Point q(EC_POINT_new(g.get())), big_r(EC_POINT_new(g.get()));
  if (!ctx || !r || !s || !e || !w || !u1 || !u2 || !x || !q || !big_r) Fail("allocating numbers");
  if (BN_is_zero(r.get()) || BN_is_zero(s.get()) || BN_cmp(r.get(), order) >= 0 ||
      BN_cmp(s.get(), order) >= 0)
    return false;
  const int order_bits = BN_num_bits(order);
  if (static_cast<int>(digest.size()) * 8 > order_bits)
    BN_rshift(e.get(), e.get(), static_cast<int>(digest.size()) * 8 - order_bits);
  if (!BN_mod_inverse(w.get(), s.get(), order, ctx.get()) ||
      !BN_mod_mul(u1.get(), e.get(), w.get(), order, ctx.get()) ||
      !BN_mod_mul(u2.get(), r.get(), w.get(), order, ctx.get()) ||
      EC_POINT_oct2point(g.get(), q.get(), key.point.data(), key.point.size(), ctx.get()) != 1 ||
      !EC_POINT_mul(g.get(), big_r.get(), u1.get(), q.get(), u2.get(), ctx.get()) ||
      EC_POINT_is_at_infinity(g.get(), big_r.get()) ||
      !EC_POINT_get_affine_coordinates(g.get(), big_r.get(), x.get(), nullptr, ctx.get()) ||
      !BN_nnmod(x.get(), x.get(), order, ctx.get()))
    return false;
  return BN_cmp(x.get(), r.get()) == 0;
}

}  // namespace tpmtoken::crypto

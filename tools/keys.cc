// tpmtoken key generate|list|delete|import.
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>

#include "commands.h"
#include "crypto/ossl.h"
#include "crypto/pubkey.h"
#include "keyutil.h"

namespace tpmtoken::tool {
namespace {

struct KeyType {
  bool rsa;
  CK_ULONG bits;
  const crypto::Curve* curve;
};

KeyType ParseType(const std::string& t) {
  if (t.rfind("rsa:", 0) == 0) {
    const CK_ULONG bits = std::strtoul(t.c_str() + 4, nullptr, 10);
    // The TPM decides which of these it takes (CKR_KEY_SIZE_RANGE otherwise).
    if (bits != 1024 && bits != 2048 && bits != 3072 && bits != 4096)
      throw ToolError("--type rsa:BITS takes 1024, 2048, 3072 or 4096", kUsage);
    return {true, bits, nullptr};
  }
  static const std::pair<const char*, TPM2_ECC_CURVE> kNames[] = {
      {"ec:p256", TPM2_ECC_NIST_P256}, {"ec:p384", TPM2_ECC_NIST_P384},
      {"ec:p521", TPM2_ECC_NIST_P521}};
  for (const auto& [name, curve] : kNames)
    if (t == name) return {false, 0, crypto::CurveFromTpm(curve)};
  throw ToolError("--type takes ec:p256, ec:p384, ec:p521, rsa:1024, rsa:2048, rsa:3072 or rsa:4096",
                  kUsage);
}

std::string KeyDescription(Context& ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k) {
  if (ctx.AttrUlong(s, k, CKA_KEY_TYPE) == CKK_RSA)
    return "rsa:" + std::to_string(ctx.Attr(s, k, CKA_MODULUS).size() * 8);
  const crypto::Curve* c = crypto::CurveFromParams(ctx.Attr(s, k, CKA_EC_PARAMS));
  return c ? std::string("ec:") + (c->bits == 256 ? "p256" : c->bits == 384 ? "p384" : "p521")
           : "ec";
}

}  // namespace

KeyPair GenerateKey(Context& ctx, CK_SESSION_HANDLE s, const std::string& type,
                    const std::string& label, bool unattended,
                    const std::string& pcr_policy) {
  const KeyType kt = ParseType(type);
  CK_BBOOL yes = CK_TRUE, is_private = unattended ? CK_FALSE : CK_TRUE;
  std::vector<CK_ATTRIBUTE> pub = {{CKA_TOKEN, &yes, 1},
                                   {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
  std::vector<CK_ATTRIBUTE> priv = pub;
  priv.push_back({CKA_SIGN, &yes, 1});
  // Unattended: the auth value under the store key, not the token key.
  priv.push_back({CKA_PRIVATE, &is_private, 1});
  // Bound to the boot state: the TPM refuses the key once a PCR changes.
  if (!pcr_policy.empty())
    priv.push_back({CKA_TPMTOKEN_PCR_POLICY, const_cast<char*>(pcr_policy.data()),
                    pcr_policy.size()});
  CK_ULONG bits = kt.bits;
  CK_MECHANISM mech = {kt.rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  if (kt.rsa)
    pub.push_back({CKA_MODULUS_BITS, &bits, sizeof bits});
  else
    pub.push_back({CKA_EC_PARAMS, const_cast<uint8_t*>(kt.curve->oid_der.data()),
                   kt.curve->oid_der.size()});
  KeyPair kp;
  Check(ctx.module().GenerateKeyPair(s, &mech, pub.data(), pub.size(), priv.data(), priv.size(),
                                     &kp.pub, &kp.priv),
        "key generate");
  return kp;
}

int KeyGenerate(const Options& o) {
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.UserSession(o.label, o.pin);
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  if (!ctx.Find(s, {{CKA_CLASS, &cls, sizeof cls},
                    {CKA_LABEL, const_cast<char*>(o.key.data()), o.key.size()}})
           .empty())
    throw ToolError("a key labelled '" + o.key + "' exists", kUsage);
  std::string pcrs;
  try {
    pcrs = PcrSelection::Parse(o.pcr_policy).ToString();
  } catch (const std::invalid_argument& e) {
    throw ToolError(std::string("--pcr-policy: ") + e.what() +
                        " (give BANK:PCRS, e.g. sha256:7 or sha256:0,2,7)",
                    kUsage);
  }
  const KeyPair kp = GenerateKey(ctx, s, o.type, o.key, o.unattended, pcrs);
  std::cout << "key '" << o.key << "' generated in the TPM (" << o.type << "), id "
            << Hex(ctx.Attr(s, kp.priv, CKA_ID))
            << (o.unattended ? ", unattended: usable with no PIN" : "")
            << (pcrs.empty() ? "" : ", bound to PCRs " + pcrs) << "\n";
  return kOk;
}

// Last use as UTC ISO 8601, as tpmtoken audit prints times.
std::string UseTime(int64_t t) {
  const auto tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int KeyList(const Options& o) {
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.UserSession(o.label, o.pin);
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  const auto keys = ctx.Find(s, {{CKA_CLASS, &cls, sizeof cls}});
  if (o.json) std::cout << "[";
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string label(AsText(ctx.Attr(s, keys[i], CKA_LABEL)));
    const std::string id = Hex(ctx.Attr(s, keys[i], CKA_ID));
    const Bytes local = ctx.Attr(s, keys[i], CKA_LOCAL);
    const std::string origin = (!local.empty() && local[0]) ? "generated" : "imported";
    const std::string type = KeyDescription(ctx, s, keys[i]);
    const store::Store::KeyUse use = ctx.module().KeyUseOf(s, keys[i]);
    if (o.json)
      std::cout << (i ? "," : "") << "{\"label\":" << JsonString(label) << ",\"id\":\"" << id
                << "\",\"type\":\"" << type << "\",\"origin\":\"" << origin
                << "\",\"uses\":" << use.count << ",\"last_use\":"
                << (use.count ? "\"" + UseTime(use.last_use) + "\"" : std::string("null")) << "}";
    else
      std::cout << label << "\t" << type << "\t" << origin << "\tid " << id << "\tuses "
                << use.count << (use.count ? ", last " + UseTime(use.last_use) : std::string())
                << "\n";
  }
  if (o.json) std::cout << "]\n";
  return kOk;
}

int KeyDelete(const Options& o) {
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.UserSession(o.label, o.pin);
  const CK_OBJECT_HANDLE priv = ctx.PrivateKey(s, o.key);
  Bytes id = ctx.Attr(s, priv, CKA_ID);
  CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY;
  const auto pubs = ctx.Find(s, {{CKA_CLASS, &pub_cls, sizeof pub_cls}, {CKA_ID, id.data(), id.size()}});
  Check(ctx.module().Atomically(s, [&] {
          for (CK_OBJECT_HANDLE p : pubs)
            if (CK_RV rv = ctx.module().DestroyObject(s, p); rv != CKR_OK) return rv;
          return ctx.module().DestroyObject(s, priv);
        }),
        "key delete");
  std::cout << "key '" << o.key << "' deleted (certificates with its id stay)\n";
  return kOk;
}

int KeyImport(const Options& o) {
  std::ifstream in(o.file, std::ios::binary);
  if (!in) throw ToolError(o.file + ": cannot be read", kUsage);
  const Bytes data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // PEM (traditional or PKCS#8) or DER.
  crypto::Pkey key;
  {
    std::unique_ptr<BIO, crypto::Deleter<BIO_free>> bio(
        BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    key.reset(PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, nullptr, nullptr, crypto::LibCtx(),
                                         nullptr));
    if (!key) {
      const unsigned char* p = data.data();
      key.reset(d2i_AutoPrivateKey_ex(nullptr, &p, static_cast<long>(data.size()),
                                      crypto::LibCtx(), nullptr));
    }
  }
  if (!key) throw ToolError(o.file + ": not a PEM, DER or PKCS#8 private key (encrypted keys: decrypt with openssl pkey first)", kUsage);
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.UserSession(o.label, o.pin);
  const KeyPair kp = ImportKey(ctx, s, key.get(), o.key);
  std::cout << "key '" << o.key << "' imported into the TPM, id " << Hex(ctx.Attr(s, kp.priv, CKA_ID))
            << "\n";
  return kOk;
}

KeyPair ImportKey(Context& ctx, CK_SESSION_HANDLE s, EVP_PKEY* key, const std::string& label) {
  auto bn = [&](const char* name) {
    BIGNUM* v = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &v) != 1) return Secret();
    Secret out(static_cast<size_t>(BN_num_bytes(v)));
    BN_bn2bin(v, out.data());
    BN_clear_free(v);
    return out;
  };
  CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY, pub_cls = CKO_PUBLIC_KEY;
  CK_BBOOL yes = CK_TRUE;
  CK_KEY_TYPE type;
  std::vector<Secret> values;  // keep the attribute values alive
  std::vector<CK_ATTRIBUTE> priv, pub;
  auto add = [&](std::vector<CK_ATTRIBUTE>& t, CK_ATTRIBUTE_TYPE a, Secret v) {
    values.push_back(std::move(v));
    t.push_back({a, values.back().data(), values.back().size()});
  };
  values.reserve(16);
  Bytes id_source;
  if (EVP_PKEY_is_a(key, "RSA")) {
    type = CKK_RSA;
    for (auto* t : {&priv, &pub}) {
      add(*t, CKA_MODULUS, bn(OSSL_PKEY_PARAM_RSA_N));
      add(*t, CKA_PUBLIC_EXPONENT, bn(OSSL_PKEY_PARAM_RSA_E));
    }
    id_source.assign(values[0].view().begin(), values[0].view().end());
    add(priv, CKA_PRIVATE_EXPONENT, bn(OSSL_PKEY_PARAM_RSA_D));
    add(priv, CKA_PRIME_1, bn(OSSL_PKEY_PARAM_RSA_FACTOR1));
    add(priv, CKA_PRIME_2, bn(OSSL_PKEY_PARAM_RSA_FACTOR2));
  } else if (EVP_PKEY_is_a(key, "EC")) {
    type = CKK_EC;
    char group[64] = {};
    size_t len = 0;
    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len);
    const crypto::Curve* curve = nullptr;
    for (const crypto::Curve& c : crypto::Curves())
      if (std::string_view(group) == c.name) curve = &c;
    if (!curve) throw ToolError(std::string("curve ") + group + " is not supported", kUsage);
    Bytes point(1 + 2 * curve->bytes);
    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(),
                                    point.size(), &len);
    id_source = point;
    for (auto* t : {&priv, &pub}) add(*t, CKA_EC_PARAMS, Secret(curve->oid_der));
    add(pub, CKA_EC_POINT, Secret(crypto::EcPointDer(ByteView(point).subspan(1, curve->bytes),
                                                    ByteView(point).subspan(1 + curve->bytes))));
    add(priv, CKA_VALUE, bn(OSSL_PKEY_PARAM_PRIV_KEY));
  } else {
    throw ToolError("only RSA and EC keys can be imported", kUsage);
  }
  const Bytes id = crypto::Digest("SHA1", id_source);
  for (auto* t : {&priv, &pub}) {
    t->push_back({CKA_KEY_TYPE, &type, sizeof type});
    t->push_back({CKA_TOKEN, &yes, 1});
    t->push_back({CKA_LABEL, const_cast<char*>(label.data()), label.size()});
    t->push_back({CKA_ID, const_cast<uint8_t*>(id.data()), id.size()});
  }
  priv.push_back({CKA_CLASS, &priv_cls, sizeof priv_cls});
  priv.push_back({CKA_SIGN, &yes, 1});
  pub.push_back({CKA_CLASS, &pub_cls, sizeof pub_cls});
  KeyPair kp;
  Check(ctx.module().Atomically(s, [&] {
          if (CK_RV rv = ctx.module().CreateObject(s, priv.data(), priv.size(), &kp.priv); rv != CKR_OK)
            return rv;
          return ctx.module().CreateObject(s, pub.data(), pub.size(), &kp.pub);
        }),
        "key import");
  return kp;
}

}  // namespace tpmtoken::tool

// C_CreateObject of a private key: the key goes into the TPM through
// TPM2_Import and only its TPM blob is kept (PKCS#11 2.40 section 4.9 with
// DESIGN.md's Keys). Imported keys are not local, never were always
// sensitive, and may have been extractable elsewhere; with CKA_EXTRACTABLE
// true they stay so (their values kept in the record, see KeepExtractable).
#include <algorithm>
#include <cstring>
#include <map>

#include "crypto/keymath.h"
#include "crypto/pkcs8.h"
#include "token/key_util.h"
#include "token/module.h"
#include "token/schema.h"
#include "util/log.h"

namespace tpmtoken {
namespace {
constexpr CK_ATTRIBUTE_TYPE kSecretParts[] = {CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2,
                                              CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT,
                                              CKA_VALUE};
// An extractable key's private values stay beside it (issue 9 item 5), as
// the standard's attributes, in its record: under the token key, or the
// store key for a public key. C_WrapKey builds its PKCS#8 from them; with
// CKA_SENSITIVE false C_GetAttributeValue reads them (2.40 section 4.9).
CK_RV KeepExtractable(const tpm::ImportedKey& key, ByteView given_d, AttrSet* a) {
  if (key.kind == tpm::KeyKind::kEcc) {
    a->Set(CKA_VALUE, key.secret.view());
    return CKR_OK;
  }
  const auto parts =
      crypto::RsaPartsFromPrime(key.modulus, *a->Find(CKA_PUBLIC_EXPONENT), key.secret.view(),
                                given_d);
  if (!parts) return CKR_ATTRIBUTE_VALUE_INVALID;
  a->Set(CKA_PRIVATE_EXPONENT, parts->d.view());
  a->Set(CKA_PRIME_1, parts->p.view());
  a->Set(CKA_PRIME_2, parts->q.view());
  a->Set(CKA_EXPONENT_1, parts->dp.view());
  a->Set(CKA_EXPONENT_2, parts->dq.view());
  a->Set(CKA_COEFFICIENT, parts->qinv.view());
  return CKR_OK;
}

}  // namespace

std::optional<Secret> Pkcs8Of(const AttrSet& a) {
  const auto part = [&](CK_ATTRIBUTE_TYPE t) {
    const Bytes* v = a.Find(t);
    return v ? ByteView(*v) : ByteView();
  };
  if (a.Ulong(CKA_KEY_TYPE) == CKK_RSA) {
    if (!a.Has(CKA_PRIME_1) || !a.Has(CKA_COEFFICIENT)) return std::nullopt;
    crypto::RsaParts k{Secret(part(CKA_PRIVATE_EXPONENT)), Secret(part(CKA_PRIME_1)),
                       Secret(part(CKA_PRIME_2)),          Secret(part(CKA_EXPONENT_1)),
                       Secret(part(CKA_EXPONENT_2)),       Secret(part(CKA_COEFFICIENT))};
    return crypto::RsaPkcs8(part(CKA_MODULUS), part(CKA_PUBLIC_EXPONENT), k);
  }
  const crypto::Curve* curve = crypto::CurveFromParams(part(CKA_EC_PARAMS));
  const Bytes* point = a.Find(CKA_EC_POINT);
  if (!curve || !point || !a.Has(CKA_VALUE)) return std::nullopt;
  const auto raw = crypto::EcPointRaw(*point, *curve);
  if (!raw) return std::nullopt;
  return crypto::EcPkcs8(*curve, part(CKA_VALUE), *raw);
}

CK_RV Module::ImportPrivateKey(Session& s, AttrSet a, CK_OBJECT_HANDLE* out) {
  // Take the secret parts out at once: they go to the TPM, and to the store
  // only for an extractable key (KeepExtractable).
  std::map<CK_ATTRIBUTE_TYPE, Secret> secret;
  for (CK_ATTRIBUTE_TYPE t : kSecretParts)
    if (a.Has(t)) secret[t] = a.TakeSecret(t);
  MarkImported(a);
  return StorePrivateKey(s, std::move(a), std::move(secret), out);
}

CK_RV Module::StorePrivateKey(Session& s, AttrSet a, std::map<CK_ATTRIBUTE_TYPE, Secret> secret,
                              CK_OBJECT_HANDLE* out) {
  if (CK_RV access = CheckWriteAccess(s, a.Bool(CKA_TOKEN), a.Bool(CKA_PRIVATE, true));
      access != CKR_OK)
    return access;
  tpm::ImportedKey key;
  // The TPM object carries only the uses the template allows, as for a
  // generated key (token/keys.cc): ECDSA with CKA_SIGN, ECDH with CKA_DERIVE;
  // an RSA key keeps decrypt (tpm/keys.cc KeyTemplate says why).
  key.sign = a.Bool(CKA_SIGN);
  key.decrypt = a.Ulong(CKA_KEY_TYPE) == CKK_RSA || a.Bool(CKA_DERIVE);
  std::optional<crypto::PublicKey> public_key;
  if (a.Ulong(CKA_KEY_TYPE) == CKK_RSA) {
    key.kind = tpm::KeyKind::kRsa;
    key.modulus = *a.Find(CKA_MODULUS);
    key.modulus.erase(key.modulus.begin(),
                      std::find_if(key.modulus.begin(), key.modulus.end(),
                                   [](uint8_t b) { return b != 0; }));
    const Bytes* e = a.Find(CKA_PUBLIC_EXPONENT);
    if (!e || e->empty() || e->size() > 4) return CKR_TEMPLATE_INCOMPLETE;
    key.exponent = 0;
    for (uint8_t b : *e) key.exponent = (key.exponent << 8) | b;
    const size_t bits = BitLength(key.modulus);
    if (std::find(caps_.rsa_bits.begin(), caps_.rsa_bits.end(), bits) == caps_.rsa_bits.end())
      return CKR_KEY_SIZE_RANGE;
    if (secret.count(CKA_PRIME_1) && !secret[CKA_PRIME_1].empty()) {
      key.secret = std::move(secret[CKA_PRIME_1]);
      if (!crypto::RsaPrimeDivides(key.modulus, key.secret.view()))
        return CKR_ATTRIBUTE_VALUE_INVALID;
    } else {
      auto p = crypto::RsaPrimeFromExponents(key.modulus, *e, secret[CKA_PRIVATE_EXPONENT].view());
      if (!p) return CKR_ATTRIBUTE_VALUE_INVALID;
      key.secret = std::move(*p);
    }
    if (!(public_key = crypto::RsaPublic(key.modulus, *e))) return CKR_ATTRIBUTE_VALUE_INVALID;
  } else {
    const crypto::Curve* curve = crypto::CurveFromParams(*a.Find(CKA_EC_PARAMS));
    if (!curve || std::find(caps_.curves.begin(), caps_.curves.end(), curve->tpm) ==
                      caps_.curves.end())
      return CKR_CURVE_NOT_SUPPORTED;
    const Secret& d = secret[CKA_VALUE];
    const auto point = crypto::EcPublicFromPrivate(*curve, d.view());
    if (!point) return CKR_ATTRIBUTE_VALUE_INVALID;
    key.kind = tpm::KeyKind::kEcc;
    key.curve = curve->tpm;
    key.x.assign(point->begin() + 1, point->begin() + 1 + static_cast<ptrdiff_t>(curve->bytes));
    key.y.assign(point->begin() + 1 + static_cast<ptrdiff_t>(curve->bytes), point->end());
    Secret padded(curve->bytes);
    if (d.size() > curve->bytes) return CKR_ATTRIBUTE_VALUE_INVALID;
    std::memcpy(padded.data() + curve->bytes - d.size(), d.data(), d.size());
    key.secret = std::move(padded);
    a.Set(CKA_EC_POINT, crypto::EcPointDer(key.x, key.y));
    public_key = crypto::EcPublic(*curve, *point);
    if (!public_key) return CKR_ATTRIBUTE_VALUE_INVALID;
  }

  if (a.Bool(CKA_EXTRACTABLE))
    if (CK_RV rv = KeepExtractable(key, secret[CKA_PRIVATE_EXPONENT].view(), &a); rv != CKR_OK)
      return rv;
  auto material = std::make_shared<KeyMaterial>();
  material->auth = NewKeyAuth();
  material->blob = tpm_->ImportKey(key, material->auth.view()).blob;
  a.Set(CKA_PUBLIC_KEY_INFO, crypto::SubjectPublicKeyInfo(*public_key));
  log::Info("imported a private key into the TPM");
  return StoreNewObject(s, std::move(a), out, std::move(material));
}

}  // namespace tpmtoken

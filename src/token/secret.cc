// Secret keys held by the TPM (PKCS#11 2.40 sections 4.10, 5.14 C_GenerateKey)
// and HMAC with them. AES keys are TPM symmetric-cipher objects generated in
// the TPM; generic secrets are keyed-hash objects whose value the TPM's random
// generator supplied. Imported secret keys go in through TPM2_Import.
#include <algorithm>

#include "crypto/ossl.h"
#include "mech/hmac.h"
#include "token/key_util.h"
#include "token/module.h"
#include "token/schema.h"

namespace tpmtoken {
namespace {
bool HasMode(const mech::Caps& caps, uint16_t mode) {
  return std::find(caps.aes_modes.begin(), caps.aes_modes.end(), mode) != caps.aes_modes.end();
}
}  // namespace

SecretKeyUses TpmUsesOf(const AttrSet& a, bool cbc) {
  SecretKeyUses uses;
  if (a.Ulong(CKA_KEY_TYPE) == CKK_AES) {
    // Which direction each PKCS#11 operation runs in the TPM (cipher.cc,
    // wrap.cc): encryption in every mode and AES-KWP wrapping (RFC 5649 on
    // ECB blocks) run decrypt=NO, the sign attribute; decryption in every
    // mode and AES-KWP unwrapping run decrypt=YES, the decrypt attribute.
    // CTR decryption too: the TPM runs the forward cipher inside it, but
    // checks decrypt (Part 3, 15.2), so it needs no sign. Without
    // CKA_ALLOWED_MECHANISMS every mechanism counts.
    auto any = [&](std::initializer_list<CK_MECHANISM_TYPE> mechs) {
      return std::any_of(mechs.begin(), mechs.end(), [&](auto m) { return Allowed(a, m); });
    };
    const bool ciphers = any({CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_AES_CTR});
    const bool kwp = Allowed(a, CKM_AES_KEY_WRAP_PAD);
    uses.sign = (a.Bool(CKA_ENCRYPT) && ciphers) || (a.Bool(CKA_WRAP) && kwp);
    uses.decrypt = (a.Bool(CKA_DECRYPT) && ciphers) || (a.Bool(CKA_UNWRAP) && kwp);
    // A key for none of them still needs one (the TPM makes no symmetric
    // cipher object with neither): encrypt, which reveals nothing that was
    // encrypted under the key.
    if (!uses.sign && !uses.decrypt) uses.sign = true;
    // Decrypt alone still leaves the forward cipher to whoever holds the
    // object: with its mode NULL, TPM2_EncryptDecrypt decrypts in CTR, CFB or
    // OFB mode, which encrypts. A key needing no CTR decryption (CKA_DECRYPT
    // false, or CTR not among its allowed mechanisms) is fixed to CBC, whose
    // decryption is the inverse cipher only; ECB decryption and AES-KWP
    // unwrapping run through CBC (tpm/keys.cc AesCrypt).
    if (!uses.sign && cbc && !(a.Bool(CKA_DECRYPT) && Allowed(a, CKM_AES_CTR)))
      uses.aes_mode = TPM2_ALG_CBC;
    return uses;
  }
  // HMAC: one hash among the allowed mechanisms fixes the scheme and drops
  // decrypt (tpm/keys.cc KeyTemplate); none allowed: no TPM2_HMAC is ever
  // run, and SHA-256 is as good as any.
  const Bytes* list = a.Find(CKA_ALLOWED_MECHANISMS);
  if (!list || list->empty()) return uses;
  TPM2_ALG_ID one = TPM2_ALG_NULL;
  for (const mech::HmacMech& m : mech::HmacMechs()) {
    if (!Allowed(a, m.type)) continue;
    if (one != TPM2_ALG_NULL && one != m.hash) return uses;
    one = m.hash;
  }
  uses.decrypt = false;
  uses.hmac_hash = one == TPM2_ALG_NULL ? TPM2_ALG_SHA256 : one;
  return uses;
}

CK_RV Module::GenerateKey(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, const CK_ATTRIBUTE* tmpl,
                          CK_ULONG n, CK_OBJECT_HANDLE* out) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_GENERATE)) return CKR_MECHANISM_INVALID;
  if (mech->ulParameterLen != 0) return CKR_MECHANISM_PARAM_INVALID;
  const bool aes = mech->mechanism == CKM_AES_KEY_GEN;
  AttrSet a;
  if (CK_RV rv = schema::BuildForGenerate(
          *schema::Find(CKO_SECRET_KEY, aes ? CKK_AES : CKK_GENERIC_SECRET), tmpl, n,
          s->token->login == CKU_SO, &a);
      rv != CKR_OK)
    return rv;
  if (CK_RV rv = RefuseExtractableGenerated(a, "C_GenerateKey"); rv != CKR_OK) return rv;
  if (CK_RV rv = CheckWriteAccess(*s, a.Bool(CKA_TOKEN), a.Bool(CKA_PRIVATE, true)); rv != CKR_OK)
    return rv;
  const CK_ULONG len = *a.Ulong(CKA_VALUE_LEN);
  if (len < entry->info.ulMinKeySize || len > entry->info.ulMaxKeySize) return CKR_KEY_SIZE_RANGE;
  auto key = std::make_shared<KeyMaterial>();
  key->auth = NewKeyAuth();
  const SecretKeyUses uses = TpmUsesOf(a, HasMode(caps_, TPM2_ALG_CBC));
  if (aes) {
    const uint32_t bits = static_cast<uint32_t>(len * 8);
    if (std::find(caps_.aes_bits.begin(), caps_.aes_bits.end(), bits) == caps_.aes_bits.end())
      return CKR_KEY_SIZE_RANGE;
    tpm::KeySpec spec{tpm::KeyKind::kAes, 0, 0, bits};
    spec.sign = uses.sign;
    spec.decrypt = uses.decrypt;
    spec.aes_mode = uses.aes_mode;
    key->blob = tpm_->CreateKey(spec, key->auth.view()).blob;
  } else if (len == tpm::Tpm::HmacGeneratedSize(uses.hmac_hash)) {
    // The TPM makes a value of its hash's size itself: it never leaves the TPM.
    key->blob = tpm_->CreateHmacKey({}, key->auth.view(), uses.hmac_hash);
  } else {
    // Other lengths: TPM2_GetRandom and TPM2_Create, both in the salted
    // session with the value encrypted on the bus.
    Secret value(tpm_->GetRandom(len));
    key->blob = tpm_->CreateHmacKey(value.view(), key->auth.view(), uses.hmac_hash);
  }
  MarkGenerated(a, mech->mechanism);
  return StoreNewObject(*s, std::move(a), out, std::move(key));
}

CK_RV Module::ImportSecretKey(Session& s, AttrSet a, CK_OBJECT_HANDLE* out) {
  Secret value = a.TakeSecret(CKA_VALUE);
  MarkImported(a);
  // An extractable key keeps its value in its record (under the token key,
  // or the store key for a public one) for C_WrapKey; the TPM holds it too.
  if (a.Bool(CKA_EXTRACTABLE)) a.Set(CKA_VALUE, value.view());
  return StoreSecretValue(s, std::move(a), std::move(value), out);
}

CK_RV Module::StoreSecretValue(Session& s, AttrSet a, Secret value, CK_OBJECT_HANDLE* out) {
  if (CK_RV rv = CheckWriteAccess(s, a.Bool(CKA_TOKEN), a.Bool(CKA_PRIVATE, true)); rv != CKR_OK)
    return rv;
  tpm::ImportedKey key;
  const size_t len = value.size();
  if (a.Ulong(CKA_KEY_TYPE) == CKK_AES) {
    const uint32_t bits = static_cast<uint32_t>(len * 8);
    if (std::find(caps_.aes_bits.begin(), caps_.aes_bits.end(), bits) == caps_.aes_bits.end())
      return CKR_ATTRIBUTE_VALUE_INVALID;
    key.kind = tpm::KeyKind::kAes;
  } else {
    if (!caps_.hmac || len == 0 || len > 128) return CKR_ATTRIBUTE_VALUE_INVALID;
    key.kind = tpm::KeyKind::kHmac;
  }
  const SecretKeyUses uses = TpmUsesOf(a, HasMode(caps_, TPM2_ALG_CBC));
  key.sign = uses.sign;
  key.decrypt = uses.decrypt;
  key.hmac_hash = uses.hmac_hash;
  key.aes_mode = uses.aes_mode;
  key.secret = std::move(value);
  auto material = std::make_shared<KeyMaterial>();
  material->auth = NewKeyAuth();
  material->blob = tpm_->ImportKey(key, material->auth.view()).blob;
  a.SetUlong(CKA_VALUE_LEN, len);
  return StoreNewObject(s, std::move(a), out, std::move(material));
}

mech::HmacOp::TpmHmac Module::HmacWith(const Object& key) {
  const KeyMaterial* k = key.key.get();
  return [this, k](ByteView data, TPM2_ALG_ID hash) {
    return tpm_->Hmac(k->blob, k->auth.view(), data, hash);
  };
}

CK_RV Module::BeginHmac(Session& s, const CK_MECHANISM* mech, std::shared_ptr<Object> key,
                        bool sign, std::unique_ptr<SignState>* out) {
  (void)s;
  if (key->attrs.Ulong(CKA_CLASS) != CKO_SECRET_KEY ||
      key->attrs.Ulong(CKA_KEY_TYPE) != CKK_GENERIC_SECRET || !key->key)
    return CKR_KEY_TYPE_INCONSISTENT;
  if (!key->attrs.Bool(sign ? CKA_SIGN : CKA_VERIFY)) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  if (!Allowed(key->attrs, mech->mechanism)) return CKR_MECHANISM_INVALID;
  auto state = std::make_unique<SignState>();
  if (CK_RV rv = mech::HmacOp::Create(*mech, &state->hmac); rv != CKR_OK) return rv;
  state->key = std::move(key);
  *out = std::move(state);
  return CKR_OK;
}

}  // namespace tpmtoken

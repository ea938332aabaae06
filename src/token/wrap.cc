// C_WrapKey and C_UnwrapKey (PKCS#11 2.40 section 5.14). Keys the TPM made
// are never extractable, so wrapping them answers CKR_KEY_UNEXTRACTABLE;
// a key imported, derived or unwrapped with CKA_EXTRACTABLE true keeps its
// value in its record (issue 9 item 5) and that copy is what is wrapped. Unwrapping
// decrypts in the TPM (RSA-OAEP/PKCS#1, or AES-KWP whose every AES step is a
// TPM operation) and puts the key into the TPM.
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string_view>

#include "mech/keywrap.h"
#include "token/key_util.h"
#include "token/module.h"
#include "token/schema.h"
#include "util/log.h"

namespace tpmtoken {
namespace {
bool IsRsaWrap(CK_MECHANISM_TYPE m) { return m == CKM_RSA_PKCS_OAEP || m == CKM_RSA_PKCS; }
}  // namespace

CK_RV Module::WrapKey(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE wrapping,
                      CK_OBJECT_HANDLE key, CK_BYTE* out, CK_ULONG* out_len) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_WRAP)) return CKR_MECHANISM_INVALID;
  auto w = Resolve(*s, wrapping);
  if (!w) return CKR_WRAPPING_KEY_HANDLE_INVALID;
  auto k = Resolve(*s, key);
  if (!k) return CKR_KEY_HANDLE_INVALID;
  if (!k->attrs.Bool(CKA_EXTRACTABLE)) return CKR_KEY_UNEXTRACTABLE;
  // What leaves: a secret key's value, or an imported private key as PKCS#8
  // (only under AES-KWP: no RSA modulus holds a PKCS#8 private key).
  Secret value;
  const auto cls = k->attrs.Ulong(CKA_CLASS);
  if (const Bytes* v = k->attrs.Find(CKA_VALUE); cls == CKO_SECRET_KEY && v) {
    value = Secret(*v);
  } else if (auto p8 = cls == CKO_PRIVATE_KEY ? Pkcs8Of(k->attrs) : std::nullopt;
             p8 && !IsRsaWrap(mech->mechanism)) {
    value = std::move(*p8);
  } else {
    return CKR_KEY_NOT_WRAPPABLE;
  }
  if (!w->attrs.Bool(CKA_WRAP)) return CKR_WRAPPING_KEY_TYPE_INCONSISTENT;
  // 2.40 section 4.10: a key with CKA_WRAP_WITH_TRUSTED leaves only under a
  // wrapping key with CKA_TRUSTED, which only the SO can set (schema.cc).
  if (k->attrs.Bool(CKA_WRAP_WITH_TRUSTED) && !w->attrs.Bool(CKA_TRUSTED)) {
    log::Warn("C_WrapKey: the key has CKA_WRAP_WITH_TRUSTED and the wrapping key is not trusted "
              "(CKA_TRUSTED, set by the SO)");
    return CKR_KEY_NOT_WRAPPABLE;
  }
  if (!Allowed(w->attrs, mech->mechanism)) return CKR_MECHANISM_INVALID;
  Bytes wrapped;
  if (IsRsaWrap(mech->mechanism)) {
    if (w->attrs.Ulong(CKA_CLASS) != CKO_PUBLIC_KEY || w->attrs.Ulong(CKA_KEY_TYPE) != CKK_RSA)
      return CKR_WRAPPING_KEY_TYPE_INCONSISTENT;
    std::unique_ptr<mech::RsaCipherOp> op;
    if (CK_RV rv = mech::RsaCipherOp::Create(*mech, BitLength(*w->attrs.Find(CKA_MODULUS)), &op);
        rv != CKR_OK)
      return rv;
    const auto pub = PublicKeyOf(w->attrs);
    if (!pub) return CKR_WRAPPING_KEY_TYPE_INCONSISTENT;
    op->Update(value.view());
    if (CK_RV rv = op->Encrypt(*pub, &wrapped); rv != CKR_OK)
      return rv == CKR_DATA_LEN_RANGE ? CKR_KEY_SIZE_RANGE : rv;
  } else {
    if (mech->ulParameterLen != 0) return CKR_MECHANISM_PARAM_INVALID;
    if (w->attrs.Ulong(CKA_CLASS) != CKO_SECRET_KEY || w->attrs.Ulong(CKA_KEY_TYPE) != CKK_AES ||
        !w->key)
      return CKR_WRAPPING_KEY_TYPE_INCONSISTENT;
    const KeyMaterial& kek = *w->key;
    if (CK_RV rv = AesInTpm("C_WrapKey", false, [&] {
          wrapped = mech::AesKeyWrapPad(value.view(), [&](ByteView block) {
            Bytes iv;
            return tpm_->AesCrypt(kek.blob, kek.auth.view(), false, TPM2_ALG_ECB, &iv, block);
          });
          return CKR_OK;
        });
        rv != CKR_OK)
      return rv;
  }
  bool proceed = false;
  const CK_RV query = QueryOrFits(wrapped.size(), out, out_len, &proceed);
  if (!proceed) return query;
  std::memcpy(out, wrapped.data(), wrapped.size());
  *out_len = wrapped.size();
  return CKR_OK;
}

// A private key unwrapped as PKCS#8 (RFC 5208) goes into the TPM like an
// imported one; its public half comes from the key itself.
CK_RV Module::UnwrappedPrivateKey(Session& s, AttrSet a, ByteView pkcs8, CK_OBJECT_HANDLE* out) {
  const unsigned char* p = pkcs8.data();
  crypto::Pkey key(d2i_AutoPrivateKey_ex(nullptr, &p, static_cast<long>(pkcs8.size()),
                                         crypto::LibCtx(), nullptr));
  if (!key || p != pkcs8.data() + pkcs8.size()) return CKR_WRAPPED_KEY_INVALID;
  std::map<CK_ATTRIBUTE_TYPE, Secret> secret;
  auto param = [&](const char* name) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key.get(), name, &bn) != 1) return Secret();
    Secret v(static_cast<size_t>(BN_num_bytes(bn)));
    BN_bn2bin(bn, v.data());
    BN_clear_free(bn);
    return v;
  };
  if (EVP_PKEY_is_a(key.get(), "RSA")) {
    if (a.Ulong(CKA_KEY_TYPE) != CKK_RSA) return CKR_TEMPLATE_INCONSISTENT;
    a.Set(CKA_MODULUS, param(OSSL_PKEY_PARAM_RSA_N).view());
    a.Set(CKA_PUBLIC_EXPONENT, param(OSSL_PKEY_PARAM_RSA_E).view());
    secret[CKA_PRIVATE_EXPONENT] = param(OSSL_PKEY_PARAM_RSA_D);
    secret[CKA_PRIME_1] = param(OSSL_PKEY_PARAM_RSA_FACTOR1);
  } else if (EVP_PKEY_is_a(key.get(), "EC")) {
    if (a.Ulong(CKA_KEY_TYPE) != CKK_EC) return CKR_TEMPLATE_INCONSISTENT;
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &len) != 1)
      return CKR_WRAPPED_KEY_INVALID;
    const crypto::Curve* curve = nullptr;
    for (const crypto::Curve& c : crypto::Curves())
      if (std::string_view(group) == c.name || std::string_view(group) == c.alias) curve = &c;
    if (!curve) return CKR_CURVE_NOT_SUPPORTED;
    a.Set(CKA_EC_PARAMS, curve->oid_der);
    secret[CKA_VALUE] = param(OSSL_PKEY_PARAM_PRIV_KEY);
  } else {
    return CKR_WRAPPED_KEY_INVALID;
  }
  MarkImported(a);
  return StorePrivateKey(s, std::move(a), std::move(secret), out);
}

CK_RV Module::UnwrapKey(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE unwrapping,
                        ByteView wrapped, const CK_ATTRIBUTE* tmpl, CK_ULONG n,
                        CK_OBJECT_HANDLE* out) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_UNWRAP)) return CKR_MECHANISM_INVALID;
  auto u = Resolve(*s, unwrapping);
  if (!u) return CKR_UNWRAPPING_KEY_HANDLE_INVALID;
  if (!u->attrs.Bool(CKA_UNWRAP)) return CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
  if (!Allowed(u->attrs, mech->mechanism)) return CKR_MECHANISM_INVALID;
  CK_RV rv = CKR_OK;
  const schema::ClassSpec* cls = schema::ForTemplate(tmpl, n, &rv);
  if (!cls) return rv;
  if (cls->cls != CKO_SECRET_KEY && cls->cls != CKO_PRIVATE_KEY) return CKR_TEMPLATE_INCONSISTENT;
  AttrSet a;
  if ((rv = schema::BuildForDerive(*cls, tmpl, n, s->token->login == CKU_SO, &a)) != CKR_OK)
    return rv;

  // Everything that does not depend on the plaintext is checked before the
  // unwrapping step; everything after it answers one code.
  if ((rv = CheckWriteAccess(*s, a.Bool(CKA_TOKEN), a.Bool(CKA_PRIVATE, true))) != CKR_OK)
    return rv;
  if (auto want = a.Ulong(CKA_VALUE_LEN); want && a.Ulong(CKA_KEY_TYPE) == CKK_AES &&
      std::find(caps_.aes_bits.begin(), caps_.aes_bits.end(), *want * 8) == caps_.aes_bits.end())
    return CKR_ATTRIBUTE_VALUE_INVALID;  // no AES key of that length, whatever is unwrapped
  Secret value;
  if (IsRsaWrap(mech->mechanism)) {
    if (u->attrs.Ulong(CKA_CLASS) != CKO_PRIVATE_KEY || u->attrs.Ulong(CKA_KEY_TYPE) != CKK_RSA ||
        !u->key)
      return CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
    std::unique_ptr<mech::RsaCipherOp> op;
    if ((rv = mech::RsaCipherOp::Create(*mech, BitLength(*u->attrs.Find(CKA_MODULUS)), &op)) !=
        CKR_OK)
      return rv;
    // PKCS#1 v1.5 (Bardou et al. attacked exactly this call): implicit
    // rejection, and with a known key length the TLS countermeasure on top,
    // so that a wrong length is rejected the same silent way as a bad
    // padding and the unwrap succeeds with an unusable key either way.
    // Without CKA_VALUE_LEN the answer would still tell whether the length
    // was one the key type takes (16/24/32 for AES, 1..128 for a generic
    // secret: half of the synthetic lengths), so the template must name it.
    // (A PKCS#8 private key needs no length: a synthetic or attacker-made
    // block essentially never parses as one, so that answer says nothing.)
    std::optional<size_t> fixed_len;
    if (!op->oaep() && cls->cls == CKO_SECRET_KEY) {
      const auto want = a.Ulong(CKA_VALUE_LEN);
      if (!want) {
        log::Warn("C_UnwrapKey with CKM_RSA_PKCS: give CKA_VALUE_LEN for a secret key (without "
                  "it the answer would tell whether the padding held a usable length)");
        return CKR_TEMPLATE_INCOMPLETE;
      }
      fixed_len = *want;
    }
    op->Update(wrapped);
    const KeyMaterial& key = *u->key;
    const Bytes& modulus = *u->attrs.Find(CKA_MODULUS);
    const Secret rejection = RejectionKey(key.auth.view(), modulus);
    rv = op->Decrypt({[&](ByteView in) { return tpm_->RsaPrivate(key.blob, key.auth.view(), in); },
                      modulus, rejection.view()},
                     &value, fixed_len);
    if (rv == CKR_ENCRYPTED_DATA_LEN_RANGE) return CKR_WRAPPED_KEY_LEN_RANGE;
    if (rv != CKR_OK) return CKR_WRAPPED_KEY_INVALID;
  } else {
    if (mech->ulParameterLen != 0) return CKR_MECHANISM_PARAM_INVALID;
    if (u->attrs.Ulong(CKA_CLASS) != CKO_SECRET_KEY || u->attrs.Ulong(CKA_KEY_TYPE) != CKK_AES ||
        !u->key)
      return CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
    // 16 KiB holds any key this token takes (a 4096-bit RSA PKCS#8 is 2.4K).
    if (wrapped.size() < 16 || wrapped.size() % 8 || wrapped.size() > 16384)
      return CKR_WRAPPED_KEY_LEN_RANGE;
    const KeyMaterial& kek = *u->key;
    std::optional<Secret> plain;
    // The TPM's refusal comes at the first block, whatever the data: no oracle.
    if ((rv = AesInTpm("C_UnwrapKey", true, [&] {
           plain = mech::AesKeyUnwrapPad(wrapped, [&](ByteView block) {
             Bytes iv;
             return tpm_->AesCrypt(kek.blob, kek.auth.view(), true, TPM2_ALG_ECB, &iv, block);
           });
           return CKR_OK;
         })) != CKR_OK)
      return rv;
    if (!plain) return CKR_WRAPPED_KEY_INVALID;
    value = std::move(*plain);
  }
  CountUse(*s, *u);
  // After the unwrapping step: the value becomes a key, or the call fails.
  auto store = [&]() -> CK_RV {
    if (cls->cls == CKO_PRIVATE_KEY)
      return UnwrappedPrivateKey(*s, std::move(a), value.view(), out);
    if (auto want = a.Ulong(CKA_VALUE_LEN); want && *want != value.size())
      return CKR_TEMPLATE_INCONSISTENT;
    MarkImported(a);
    if (a.Bool(CKA_EXTRACTABLE)) a.Set(CKA_VALUE, value.view());
    return StoreSecretValue(*s, std::move(a), std::move(value), out);
  };
  if ((rv = store()) != CKR_OK && IsRsaWrap(mech->mechanism)) {
    // After an RSA step the caller gets one code for every failure the
    // plaintext decides (issue 8: no oracle); the true cause goes to the
    // log. AES-KWP is authenticated (a forged block fails its integrity
    // check first), so its own codes stay.
    log::Debug("C_UnwrapKey: the unwrapped value is not a usable key (CKR 0x", std::hex, rv, ")");
    return CKR_WRAPPED_KEY_INVALID;
  }
  return rv;
}

}  // namespace tpmtoken

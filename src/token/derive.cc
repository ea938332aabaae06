// C_DeriveKey with CKM_ECDH1_DERIVE (PKCS#11 2.40 mechanisms section 2.3.14):
// the TPM computes Z = x(d * Q_peer) with TPM2_ECDH_ZGen, returned encrypted
// in the session; the KDF runs in software and the result becomes a TPM-held
// secret key. Only when the template asks for an extractable, non-sensitive
// key (as pkcs11-tool --derive does, to print it) is its value also kept,
// in the private record, for C_GetAttributeValue.
#include <cstring>

#include "crypto/kdf.h"
#include "token/key_util.h"
#include "token/module.h"
#include "token/schema.h"
#include "util/log.h"

namespace tpmtoken {
namespace {

const char* KdfHash(CK_ULONG kdf) {
  switch (kdf) {
    case CKD_SHA1_KDF: return "SHA1";
    case CKD_SHA224_KDF: return "SHA224";
    case CKD_SHA256_KDF: return "SHA256";
    case CKD_SHA384_KDF: return "SHA384";
    case CKD_SHA512_KDF: return "SHA512";
    default: return nullptr;
  }
}

// Bounds on the caller's lengths (PKCS#11 names none): a DER-wrapped P-521
// point is 136 bytes; X9.63 shared info is a few dozen in every protocol.
constexpr CK_ULONG kMaxPublicData = 1024;
constexpr CK_ULONG kMaxSharedData = 64 * 1024;
constexpr size_t kMaxSecretLen = 128;

}  // namespace

CK_RV Module::DeriveKey(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE base,
                        const CK_ATTRIBUTE* tmpl, CK_ULONG n, CK_OBJECT_HANDLE* out) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_DERIVE)) return CKR_MECHANISM_INVALID;
  if (!mech->pParameter || mech->ulParameterLen != sizeof(CK_ECDH1_DERIVE_PARAMS))
    return CKR_MECHANISM_PARAM_INVALID;
  const auto* p = static_cast<const CK_ECDH1_DERIVE_PARAMS*>(mech->pParameter);
  const char* kdf_hash = KdfHash(p->kdf);
  if ((p->kdf != CKD_NULL && !kdf_hash) || (p->kdf == CKD_NULL && p->ulSharedDataLen) ||
      (p->ulSharedDataLen && !p->pSharedData) || !p->pPublicData ||
      p->ulSharedDataLen > kMaxSharedData || p->ulPublicDataLen > kMaxPublicData)
    return CKR_MECHANISM_PARAM_INVALID;

  auto o = Resolve(*s, base);
  if (!o) return CKR_KEY_HANDLE_INVALID;
  if (o->attrs.Ulong(CKA_CLASS) != CKO_PRIVATE_KEY || o->attrs.Ulong(CKA_KEY_TYPE) != CKK_EC ||
      !o->key)
    return CKR_KEY_TYPE_INCONSISTENT;
  if (!o->attrs.Bool(CKA_DERIVE)) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  if (!Allowed(o->attrs, mech->mechanism)) return CKR_MECHANISM_INVALID;
  const crypto::Curve* curve = crypto::CurveFromParams(*o->attrs.Find(CKA_EC_PARAMS));
  if (!curve) return CKR_KEY_TYPE_INCONSISTENT;
  // The peer's point must be on our curve (no invalid-curve games).
  const auto peer = crypto::EcPointRaw(
      ByteView(static_cast<const uint8_t*>(p->pPublicData), p->ulPublicDataLen), *curve);
  if (!peer || !crypto::EcPublic(*curve, *peer)) return CKR_MECHANISM_PARAM_INVALID;

  CK_RV rv = CKR_OK;
  const schema::ClassSpec* cls = schema::ForTemplate(tmpl, n, &rv);
  if (!cls) return rv;
  if (cls->cls != CKO_SECRET_KEY) return CKR_TEMPLATE_INCONSISTENT;
  AttrSet a;
  if ((rv = schema::BuildForDerive(*cls, tmpl, n, s->token->login == CKU_SO, &a)) != CKR_OK)
    return rv;
  const bool extractable = a.Bool(CKA_EXTRACTABLE);
  const bool sensitive = a.Bool(CKA_SENSITIVE, true);
  if (CK_RV access = CheckWriteAccess(*s, a.Bool(CKA_TOKEN), a.Bool(CKA_PRIVATE, true));
      access != CKR_OK)
    return access;

  const size_t field = curve->bytes;
  Secret z;
  try {
    z = tpm_->EcdhZ(o->key->blob, o->key->auth.view(), ByteView(*peer).subspan(1, field),
                    ByteView(*peer).subspan(1 + field));
  } catch (const tpm::TpmError& e) {
    // A key made without CKA_DERIVE has no TPM "decrypt" use: the TPM itself
    // refuses TPM2_ECDH_ZGen, whatever the attribute says now.
    if (e.base() != TPM2_RC_ATTRIBUTES) throw;
    log::Warn("C_DeriveKey: the key's TPM object was made without ECDH (CKA_DERIVE was false "
              "when it was generated); the TPM refused TPM2_ECDH_ZGen");
    return CKR_KEY_FUNCTION_NOT_PERMITTED;
  }
  CountUse(*s, *o);
  size_t len = z.size();
  if (auto want = a.Ulong(CKA_VALUE_LEN)) {
    len = *want;
  } else if (kdf_hash) {
    len = static_cast<size_t>(EVP_MD_get_size(crypto::Md(kdf_hash)));
  } else if (a.Ulong(CKA_KEY_TYPE) == CKK_AES) {
    return CKR_TEMPLATE_INCOMPLETE;
  }
  if (len == 0 || (!kdf_hash && len > z.size())) return CKR_TEMPLATE_INCONSISTENT;
  // The TPM holds at most a 128-byte keyed-hash value; a caller's length
  // past it fails here, before the KDF would try to allocate it.
  if (len > kMaxSecretLen) return CKR_ATTRIBUTE_VALUE_INVALID;
  Secret value = kdf_hash ? crypto::X963Kdf(kdf_hash, z.view(), ByteView(p->pSharedData,
                                                                           p->ulSharedDataLen),
                                            len)
                          : Secret(z.view().first(len));

  // 2.40 section 4.10: derived keys inherit "always" properties from the base.
  a.SetBool(CKA_LOCAL, false);
  a.SetUlong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
  a.SetBool(CKA_ALWAYS_SENSITIVE, sensitive && o->attrs.Bool(CKA_ALWAYS_SENSITIVE));
  a.SetBool(CKA_NEVER_EXTRACTABLE, !extractable && o->attrs.Bool(CKA_NEVER_EXTRACTABLE));
  if (extractable) a.Set(CKA_VALUE, value.view());
  return StoreSecretValue(*s, std::move(a), std::move(value), out);
}

}  // namespace tpmtoken

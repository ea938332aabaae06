#include "token/schema.h"

#include <algorithm>
#include <cstring>

#include "crypto/ossl.h"
#include "crypto/pubkey.h"
#include "crypto/x509.h"

namespace tpmtoken::schema {
namespace {

// PKCS#11 2.40 section 4.4 (storage objects) and 3.0's CKA_UNIQUE_ID.
std::vector<AttrSpec> Storage(bool private_default) {
  return {
      {CKA_CLASS, Kind::kUlong, kRequired, Default::kNone},
      {CKA_TOKEN, Kind::kBool, kCopyChange, Default::kFalse},
      {CKA_PRIVATE, Kind::kBool, kCopyChange, private_default ? Default::kTrue : Default::kFalse},
      {CKA_MODIFIABLE, Kind::kBool, kCopyChange, Default::kTrue},
      {CKA_LABEL, Kind::kBytes, kModifiable, Default::kEmpty},
      {CKA_COPYABLE, Kind::kBool, kCopyChange | kStaysFalse, Default::kTrue},
      {CKA_DESTROYABLE, Kind::kBool, kModifiable, Default::kTrue},
      {CKA_UNIQUE_ID, Kind::kBytes, kNotOnCreate, Default::kNone},
  };
}

std::vector<AttrSpec> Join(std::vector<AttrSpec> a, std::initializer_list<AttrSpec> b) {
  a.insert(a.end(), b);
  return a;
}

// 2.40 section 4.6.3: the certificate fields CKA_SUBJECT, CKA_ISSUER and
// CKA_SERIAL_NUMBER mirror the DER value; fill what the template left out.
CK_RV CompleteX509(AttrSet& a) {
  const Bytes* value = a.Find(CKA_VALUE);
  if (!value || value->empty()) return CKR_TEMPLATE_INCOMPLETE;
  const auto fields = crypto::ParseCertificate(*value);
  if (!fields) {
    // A value we cannot parse is acceptable only if the caller named the
    // subject itself (the spec requires CKA_SUBJECT, not a parsable value).
    return a.Has(CKA_SUBJECT) ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
  }
  if (!a.Has(CKA_SUBJECT)) a.Set(CKA_SUBJECT, fields->subject);
  if (a.Find(CKA_ISSUER)->empty()) a.Set(CKA_ISSUER, fields->issuer);
  if (a.Find(CKA_SERIAL_NUMBER)->empty()) a.Set(CKA_SERIAL_NUMBER, fields->serial);
  if (a.Find(CKA_PUBLIC_KEY_INFO)->empty()) a.Set(CKA_PUBLIC_KEY_INFO, fields->public_key_info);
  // CKA_CHECK_VALUE: the first three bytes of the value's SHA-1 (4.6.2).
  const Bytes sha1 = crypto::Digest("SHA1", *value);
  const Bytes check(sha1.begin(), sha1.begin() + 3);
  if (const Bytes* given = a.Find(CKA_CHECK_VALUE); given && *given != check)
    return CKR_ATTRIBUTE_VALUE_INVALID;
  a.Set(CKA_CHECK_VALUE, check);
  return CKR_OK;
}

// 2.40 section 4.7: every key.
std::vector<AttrSpec> Key(bool private_default) {
  return Join(Storage(private_default),
              {
                  {CKA_KEY_TYPE, Kind::kUlong, kRequired, Default::kNone},
                  {CKA_ID, Kind::kBytes, kModifiable, Default::kEmpty},
                  {CKA_START_DATE, Kind::kDate, kModifiable, Default::kEmpty},
                  {CKA_END_DATE, Kind::kDate, kModifiable, Default::kEmpty},
                  {CKA_DERIVE, Kind::kBool, kModifiable, Default::kFalse},
                  {CKA_LOCAL, Kind::kBool, kNotOnCreate | kNotOnGen, Default::kFalse},
                  {CKA_KEY_GEN_MECHANISM, Kind::kUlong, kNotOnCreate | kNotOnGen, Default::kNone},
                  {CKA_ALLOWED_MECHANISMS, Kind::kMechanisms, 0, Default::kEmpty},
              });
}

// 2.40 section 4.8 and 2.3 (RSA), 2.3.3 (EC): public keys. An EC key has
// no encryption mechanism, so CKA_ENCRYPT defaults to false for it.
std::vector<AttrSpec> PublicKey(bool encrypts) {
  return Join(Key(false), {
                              {CKA_SUBJECT, Kind::kBytes, kModifiable, Default::kEmpty},
                              {CKA_ENCRYPT, Kind::kBool, kModifiable,
                               encrypts ? Default::kTrue : Default::kFalse},
                              {CKA_VERIFY, Kind::kBool, kModifiable, Default::kTrue},
                              {CKA_VERIFY_RECOVER, Kind::kBool, kModifiable, Default::kFalse},
                              {CKA_WRAP, Kind::kBool, kModifiable, Default::kFalse},
                              {CKA_TRUSTED, Kind::kBool, kSoToTrue, Default::kFalse},
                              {CKA_PUBLIC_KEY_INFO, Kind::kBytes, kNotOnGen, Default::kNone},
                          });
}

// 2.40 section 4.9: private keys. Key material never leaves the TPM, so the
// sensitive parts exist only as names that answer CKR_ATTRIBUTE_SENSITIVE.
// An EC key decrypts nothing (ECDH is CKA_DERIVE): CKA_DECRYPT defaults false.
std::vector<AttrSpec> PrivateKey(bool decrypts) {
  return Join(Key(true),
              {
                  {CKA_SUBJECT, Kind::kBytes, kModifiable, Default::kEmpty},
                  {CKA_SENSITIVE, Kind::kBool, kModifiable | kStaysTrue, Default::kTrue},
                  {CKA_DECRYPT, Kind::kBool, kModifiable,
                   decrypts ? Default::kTrue : Default::kFalse},
                  {CKA_SIGN, Kind::kBool, kModifiable, Default::kTrue},
                  {CKA_SIGN_RECOVER, Kind::kBool, kModifiable, Default::kFalse},
                  {CKA_UNWRAP, Kind::kBool, kModifiable, Default::kFalse},
                  {CKA_EXTRACTABLE, Kind::kBool, kModifiable | kStaysFalse, Default::kFalse},
                  {CKA_ALWAYS_SENSITIVE, Kind::kBool, kNotOnCreate | kNotOnGen, Default::kNone},
                  {CKA_NEVER_EXTRACTABLE, Kind::kBool, kNotOnCreate | kNotOnGen, Default::kNone},
                  {CKA_WRAP_WITH_TRUSTED, Kind::kBool, kModifiable | kStaysTrue, Default::kFalse},
                  {CKA_ALWAYS_AUTHENTICATE, Kind::kBool, 0, Default::kFalse},
                  {CKA_PUBLIC_KEY_INFO, Kind::kBytes, kNotOnGen, Default::kNone},
                  // Bound at generation only (tpm/keys.cc CreateKey).
                  {CKA_TPMTOKEN_PCR_POLICY, Kind::kBytes, kGenerateOnly, Default::kEmpty},
              });
}

// 2.40 section 4.10: secret keys. The value lives only in the TPM.
std::vector<AttrSpec> SecretKey() {
  return Join(Key(true),
              {
                  {CKA_SENSITIVE, Kind::kBool, kModifiable | kStaysTrue, Default::kTrue},
                  {CKA_ENCRYPT, Kind::kBool, kModifiable, Default::kTrue},
                  {CKA_DECRYPT, Kind::kBool, kModifiable, Default::kTrue},
                  {CKA_SIGN, Kind::kBool, kModifiable, Default::kTrue},
                  {CKA_VERIFY, Kind::kBool, kModifiable, Default::kTrue},
                  {CKA_WRAP, Kind::kBool, kModifiable, Default::kFalse},
                  {CKA_UNWRAP, Kind::kBool, kModifiable, Default::kFalse},
                  {CKA_EXTRACTABLE, Kind::kBool, kModifiable | kStaysFalse, Default::kFalse},
                  {CKA_ALWAYS_SENSITIVE, Kind::kBool, kNotOnCreate | kNotOnGen, Default::kNone},
                  {CKA_NEVER_EXTRACTABLE, Kind::kBool, kNotOnCreate | kNotOnGen, Default::kNone},
                  {CKA_WRAP_WITH_TRUSTED, Kind::kBool, kModifiable | kStaysTrue, Default::kFalse},
                  {CKA_TRUSTED, Kind::kBool, kSoToTrue, Default::kFalse},
                  {CKA_VALUE, Kind::kBytes, kRequired | kNotOnGen | kSensitive, Default::kNone},
                  {CKA_VALUE_LEN, Kind::kUlong, kNotOnCreate | kGenRequired, Default::kNone},
              });
}

CK_RV CompletePublicKey(AttrSet& a);

const std::vector<ClassSpec>& Classes() {
  static const std::vector<ClassSpec> kClasses = {
      // 2.40 section 4.5: data objects.
      {CKO_DATA, 0, 0, false,
       Join(Storage(false),
            {
                {CKA_APPLICATION, Kind::kBytes, kModifiable, Default::kEmpty},
                {CKA_OBJECT_ID, Kind::kBytes, kModifiable, Default::kEmpty},
                {CKA_VALUE, Kind::kBytes, kModifiable, Default::kEmpty},
            }),
       nullptr},
      // 2.40 sections 4.6.2-4.6.3: X.509 public key certificates.
      {CKO_CERTIFICATE, CKA_CERTIFICATE_TYPE, CKC_X_509, false,
       Join(Storage(false),
            {
                {CKA_CERTIFICATE_TYPE, Kind::kUlong, kRequired, Default::kNone},
                {CKA_TRUSTED, Kind::kBool, kSoToTrue | kModifiable, Default::kFalse},
                {CKA_CERTIFICATE_CATEGORY, Kind::kUlong, 0, Default::kZero},
                {CKA_CHECK_VALUE, Kind::kBytes, 0, Default::kNone},
                {CKA_START_DATE, Kind::kDate, kModifiable, Default::kEmpty},
                {CKA_END_DATE, Kind::kDate, kModifiable, Default::kEmpty},
                {CKA_PUBLIC_KEY_INFO, Kind::kBytes, 0, Default::kEmpty},
                {CKA_SUBJECT, Kind::kBytes, 0, Default::kNone},
                {CKA_ID, Kind::kBytes, kModifiable, Default::kEmpty},
                {CKA_ISSUER, Kind::kBytes, kModifiable, Default::kEmpty},
                {CKA_SERIAL_NUMBER, Kind::kBytes, kModifiable, Default::kEmpty},
                {CKA_VALUE, Kind::kBytes, kRequired, Default::kNone},
                {CKA_URL, Kind::kBytes, 0, Default::kEmpty},
                {CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Kind::kBytes, 0, Default::kEmpty},
                {CKA_HASH_OF_ISSUER_PUBLIC_KEY, Kind::kBytes, 0, Default::kEmpty},
                {CKA_JAVA_MIDP_SECURITY_DOMAIN, Kind::kUlong, 0, Default::kZero},
                {CKA_NAME_HASH_ALGORITHM, Kind::kUlong, 0, Default::kNone},
            }),
       CompleteX509},
      {CKO_PUBLIC_KEY, CKA_KEY_TYPE, CKK_RSA, false,
       Join(PublicKey(true),
            {
                {CKA_MODULUS, Kind::kBytes, kRequired | kNotOnGen, Default::kNone},
                {CKA_MODULUS_BITS, Kind::kUlong, kNotOnCreate | kGenRequired, Default::kNone},
                {CKA_PUBLIC_EXPONENT, Kind::kBytes, kRequired, Default::kNone},
            }),
       CompletePublicKey},
      {CKO_PUBLIC_KEY, CKA_KEY_TYPE, CKK_EC, false,
       Join(PublicKey(false),
            {
                {CKA_EC_PARAMS, Kind::kBytes, kRequired | kGenRequired, Default::kNone},
                {CKA_EC_POINT, Kind::kBytes, kRequired | kNotOnGen, Default::kNone},
            }),
       CompletePublicKey},
      {CKO_PRIVATE_KEY, CKA_KEY_TYPE, CKK_RSA, true,
       Join(PrivateKey(true),
            {
                {CKA_MODULUS, Kind::kBytes, kRequired | kNotOnGen, Default::kNone},
                {CKA_PUBLIC_EXPONENT, Kind::kBytes, kNotOnGen, Default::kNone},
                {CKA_PRIVATE_EXPONENT, Kind::kBytes, kRequired | kNotOnGen | kSensitive,
                 Default::kNone},
                {CKA_PRIME_1, Kind::kBytes, kNotOnGen | kSensitive, Default::kNone},
                {CKA_PRIME_2, Kind::kBytes, kNotOnGen | kSensitive, Default::kNone},
                {CKA_EXPONENT_1, Kind::kBytes, kNotOnGen | kSensitive, Default::kNone},
                {CKA_EXPONENT_2, Kind::kBytes, kNotOnGen | kSensitive, Default::kNone},
                {CKA_COEFFICIENT, Kind::kBytes, kNotOnGen | kSensitive, Default::kNone},
            }),
       nullptr},
      {CKO_PRIVATE_KEY, CKA_KEY_TYPE, CKK_EC, true,
       Join(PrivateKey(false),
            {
                {CKA_EC_PARAMS, Kind::kBytes, kRequired | kNotOnGen, Default::kNone},
                {CKA_VALUE, Kind::kBytes, kRequired | kNotOnGen | kSensitive, Default::kNone},
                // Not in the 2.40 table, but OpenSSL providers read it.
                {CKA_EC_POINT, Kind::kBytes, kNotOnCreate | kNotOnGen, Default::kNone},
            }),
       nullptr},
      {CKO_SECRET_KEY, CKA_KEY_TYPE, CKK_AES, true, SecretKey(), nullptr},
      {CKO_SECRET_KEY, CKA_KEY_TYPE, CKK_GENERIC_SECRET, true, SecretKey(), nullptr},
  };
  return kClasses;
}

// A public key object must be a usable key: build it, and record its
// SubjectPublicKeyInfo (and CKA_MODULUS_BITS for RSA).
CK_RV CompletePublicKey(AttrSet& a) {
  std::optional<crypto::PublicKey> key;
  if (a.Ulong(CKA_KEY_TYPE) == CKK_RSA) {
    key = crypto::RsaPublic(*a.Find(CKA_MODULUS), *a.Find(CKA_PUBLIC_EXPONENT));
    if (!key) return CKR_ATTRIBUTE_VALUE_INVALID;
    a.SetUlong(CKA_MODULUS_BITS, static_cast<CK_ULONG>(key->ModulusBits()));
  } else {
    const crypto::Curve* curve = crypto::CurveFromParams(*a.Find(CKA_EC_PARAMS));
    if (!curve) return CKR_CURVE_NOT_SUPPORTED;
    const auto point = crypto::EcPointRaw(*a.Find(CKA_EC_POINT), *curve);
    if (!point || !(key = crypto::EcPublic(*curve, *point))) return CKR_ATTRIBUTE_VALUE_INVALID;
  }
  a.Set(CKA_PUBLIC_KEY_INFO, crypto::SubjectPublicKeyInfo(*key));
  return CKR_OK;
}

Bytes DefaultBytes(const AttrSpec& s) {
  switch (s.fallback) {
    case Default::kFalse: return BoolBytes(false);
    case Default::kTrue: return BoolBytes(true);
    case Default::kZero: return UlongBytes(0);
    case Default::kEmpty:
    case Default::kNone: break;
  }
  return {};
}

// Rejects the same attribute given twice with different values.
CK_RV CheckDuplicates(const CK_ATTRIBUTE* tmpl, CK_ULONG count) {
  for (CK_ULONG i = 0; i < count; ++i)
    for (CK_ULONG j = i + 1; j < count; ++j)
      if (tmpl[i].type == tmpl[j].type &&
          (tmpl[i].ulValueLen != tmpl[j].ulValueLen ||
           (tmpl[i].ulValueLen &&
            std::memcmp(tmpl[i].pValue, tmpl[j].pValue, tmpl[i].ulValueLen) != 0)))
        return CKR_TEMPLATE_INCONSISTENT;
  return CKR_OK;
}

// A caller's CK_ULONG value may sit at any address (pkcs11-tool packs
// attribute values into one byte buffer), so it is copied out, never
// dereferenced in place. False unless the value is exactly one CK_ULONG.
bool UlongValue(const CK_ATTRIBUTE& a, CK_ULONG* out) {
  if (a.ulValueLen != sizeof(CK_ULONG) || !a.pValue) return false;
  std::memcpy(out, a.pValue, sizeof(CK_ULONG));
  return true;
}

bool IsTrue(const CK_ATTRIBUTE& a) {
  return a.ulValueLen == 1 && *static_cast<const CK_BBOOL*>(a.pValue) != CK_FALSE;
}

}  // namespace

bool ValidValue(const AttrSpec& spec, const CK_ATTRIBUTE& a) {
  if (a.ulValueLen && !a.pValue) return false;
  switch (spec.kind) {
    case Kind::kBool:
      return a.ulValueLen == 1 && (*static_cast<const CK_BBOOL*>(a.pValue) <= 1);
    case Kind::kUlong: return a.ulValueLen == sizeof(CK_ULONG);
    case Kind::kDate: {
      if (a.ulValueLen == 0) return true;
      if (a.ulValueLen != sizeof(CK_DATE)) return false;
      const auto* p = static_cast<const uint8_t*>(a.pValue);
      for (size_t i = 0; i < sizeof(CK_DATE); ++i)
        if (p[i] < '0' || p[i] > '9') return false;
      return true;
    }
    case Kind::kBytes: return true;
    case Kind::kMechanisms: return a.ulValueLen % sizeof(CK_MECHANISM_TYPE) == 0;
  }
  return false;
}

const AttrSpec* Find(const ClassSpec& cls, CK_ATTRIBUTE_TYPE type) {
  for (const AttrSpec& s : cls.attrs)
    if (s.type == type) return &s;
  return nullptr;
}

const ClassSpec* ForTemplate(const CK_ATTRIBUTE* tmpl, CK_ULONG count, CK_RV* rv) {
  const CK_ATTRIBUTE* cls = nullptr;
  for (CK_ULONG i = 0; i < count; ++i)
    if (tmpl[i].type == CKA_CLASS) cls = &tmpl[i];
  if (!cls) {
    *rv = CKR_TEMPLATE_INCOMPLETE;
    return nullptr;
  }
  CK_OBJECT_CLASS want = 0;
  if (!UlongValue(*cls, &want)) {
    *rv = CKR_ATTRIBUTE_VALUE_INVALID;
    return nullptr;
  }
  bool class_known = false;
  for (const ClassSpec& c : Classes()) {
    if (c.cls != want) continue;
    class_known = true;
    if (!c.subtype_attr) return &c;
    for (CK_ULONG i = 0; i < count; ++i) {
      CK_ULONG subtype = 0;
      if (tmpl[i].type == c.subtype_attr && UlongValue(tmpl[i], &subtype) &&
          subtype == c.subtype)
        return &c;
    }
  }
  // A known class whose subtype attribute is missing is incomplete; a class
  // or subtype this token does not hold is an invalid value.
  bool has_subtype = false;
  for (const ClassSpec& c : Classes())
    for (CK_ULONG i = 0; c.cls == want && c.subtype_attr && i < count; ++i)
      has_subtype |= tmpl[i].type == c.subtype_attr;
  *rv = (class_known && !has_subtype) ? CKR_TEMPLATE_INCOMPLETE : CKR_ATTRIBUTE_VALUE_INVALID;
  return nullptr;
}

const ClassSpec* ForObject(const AttrSet& attrs) {
  const auto cls = attrs.Ulong(CKA_CLASS);
  if (!cls) return nullptr;
  for (const ClassSpec& c : Classes()) {
    if (c.cls != *cls) continue;
    if (!c.subtype_attr || attrs.Ulong(c.subtype_attr) == c.subtype) return &c;
  }
  return nullptr;
}

namespace {
const char* CallOf(Origin origin) {
  switch (origin) {
    case Origin::kCreate: return "C_CreateObject";
    case Origin::kGenerate: return "key generation";
    case Origin::kDerive: return "C_DeriveKey/C_UnwrapKey";
  }
  return "template";
}

CK_RV Build(const ClassSpec& cls, const CK_ATTRIBUTE* tmpl, CK_ULONG count, bool is_so,
            Origin origin, AttrSet* out) {
  if (CK_RV rv = CheckDuplicates(tmpl, count); rv != CKR_OK) return rv;
  AttrSet a;
  const bool gen = origin != Origin::kCreate;
  const char* call = CallOf(origin);
  for (CK_ULONG i = 0; i < count; ++i) {
    const CK_ATTRIBUTE_TYPE type = tmpl[i].type;
    const AttrSpec* spec = Find(cls, type);
    if (!spec)
      return RefuseAttribute(CKR_ATTRIBUTE_TYPE_INVALID, call, type,
                             "not an attribute of this object class");
    if (!gen && (spec->flags & kNotOnCreate))
      return RefuseAttribute(CKR_ATTRIBUTE_READ_ONLY, call, type, "the token sets it");
    if (origin != Origin::kGenerate && (spec->flags & kGenerateOnly))
      return RefuseAttribute(CKR_ATTRIBUTE_READ_ONLY, call, type,
                             "only a key the TPM generates can carry it");
    if (gen && (spec->flags & kNotOnGen))
      return RefuseAttribute(CKR_TEMPLATE_INCONSISTENT, call, type,
                             "the token sets it when it makes the key");
    CK_ULONG named = 0;
    if (gen && (cls.subtype_attr == type || type == CKA_CLASS) &&
        (!UlongValue(tmpl[i], &named) ||
         named != (type == CKA_CLASS ? cls.cls : cls.subtype)))
      return RefuseAttribute(CKR_TEMPLATE_INCONSISTENT, call, type,
                             "names another class or key type than the mechanism makes");
    if (!ValidValue(*spec, tmpl[i]))
      return RefuseAttribute(CKR_ATTRIBUTE_VALUE_INVALID, call, type,
                             "value of the wrong size or form");
    if ((spec->flags & kSoToTrue) && IsTrue(tmpl[i]) && !is_so)
      return RefuseAttribute(CKR_ATTRIBUTE_READ_ONLY, call, type, "only the SO may set it true");
    a.Set(type, ByteView(static_cast<const uint8_t*>(tmpl[i].pValue), tmpl[i].ulValueLen));
  }
  for (const AttrSpec& s : cls.attrs) {
    if (a.Has(s.type) || s.fallback == Default::kNone) continue;
    a.Set(s.type, DefaultBytes(s));
  }
  if (gen) {
    a.SetUlong(CKA_CLASS, cls.cls);
    if (cls.subtype_attr) a.SetUlong(cls.subtype_attr, cls.subtype);
    for (const AttrSpec& s : cls.attrs)
      if ((s.flags & kGenRequired) && !a.Has(s.type) && origin == Origin::kGenerate)
        return RefuseAttribute(CKR_TEMPLATE_INCOMPLETE, call, s.type, "required, not given");
  } else {
    for (const AttrSpec& s : cls.attrs)
      if ((s.flags & kRequired) && !a.Has(s.type))
        return RefuseAttribute(CKR_TEMPLATE_INCOMPLETE, call, s.type, "required, not given");
    if (cls.complete)
      if (CK_RV rv = cls.complete(a); rv != CKR_OK) return rv;
    if (cls.cls == CKO_CERTIFICATE && !a.Has(CKA_SUBJECT))
      return RefuseAttribute(CKR_TEMPLATE_INCOMPLETE, call, CKA_SUBJECT, "required, not given");
  }
  a.Set(CKA_UNIQUE_ID, View(Hex(crypto::Random(16))));
  *out = std::move(a);
  return CKR_OK;
}
}  // namespace

CK_RV BuildForCreate(const ClassSpec& cls, const CK_ATTRIBUTE* tmpl, CK_ULONG count, bool is_so,
                     AttrSet* out) {
  return Build(cls, tmpl, count, is_so, Origin::kCreate, out);
}

CK_RV BuildForGenerate(const ClassSpec& cls, const CK_ATTRIBUTE* tmpl, CK_ULONG count,
                       bool is_so, AttrSet* out) {
  return Build(cls, tmpl, count, is_so, Origin::kGenerate, out);
}

CK_RV BuildForDerive(const ClassSpec& cls, const CK_ATTRIBUTE* tmpl, CK_ULONG count, bool is_so,
                     AttrSet* out) {
  return Build(cls, tmpl, count, is_so, Origin::kDerive, out);
}

const ClassSpec* Find(CK_OBJECT_CLASS cls, CK_ULONG subtype) {
  for (const ClassSpec& c : Classes())
    if (c.cls == cls && (!c.subtype_attr || c.subtype == subtype)) return &c;
  return nullptr;
}

CK_RV ApplyChanges(const ClassSpec& cls, const CK_ATTRIBUTE* tmpl, CK_ULONG count, bool is_so,
                   bool copy, AttrSet* attrs) {
  if (CK_RV rv = CheckDuplicates(tmpl, count); rv != CKR_OK) return rv;
  for (CK_ULONG i = 0; i < count; ++i) {
    const AttrSpec* spec = Find(cls, tmpl[i].type);
    if (!spec) return CKR_ATTRIBUTE_TYPE_INVALID;
    if (!ValidValue(*spec, tmpl[i])) return CKR_ATTRIBUTE_VALUE_INVALID;
    const Bytes* current = attrs->Find(tmpl[i].type);
    const bool same = current && current->size() == tmpl[i].ulValueLen &&
                      (current->empty() ||
                       std::memcmp(current->data(), tmpl[i].pValue, current->size()) == 0);
    if (same) continue;  // restating a value is always allowed
    const bool changeable = (spec->flags & kModifiable) || (copy && (spec->flags & kCopyChange));
    if (!changeable) return CKR_ATTRIBUTE_READ_ONLY;
    const bool now_true = attrs->Bool(tmpl[i].type);
    if ((spec->flags & kStaysFalse) && !now_true) return CKR_ATTRIBUTE_READ_ONLY;
    if ((spec->flags & kStaysTrue) && now_true) return CKR_ATTRIBUTE_READ_ONLY;
    if ((spec->flags & kSoToTrue) && IsTrue(tmpl[i]) && !is_so) return CKR_ATTRIBUTE_READ_ONLY;
  }
  // A copy is a new object (footnote 10 holds for it too): a true value it
  // keeps from the original needs the SO as much as one the template sets.
  if (copy && !is_so)
    for (const AttrSpec& s : cls.attrs)
      if ((s.flags & kSoToTrue) && attrs->Bool(s.type) &&
          !std::any_of(tmpl, tmpl + count,
                       [&](const CK_ATTRIBUTE& t) { return t.type == s.type && !IsTrue(t); }))
        return RefuseAttribute(CKR_ATTRIBUTE_READ_ONLY, "C_CopyObject", s.type,
                               "only the SO makes it true: copy with it set to CK_FALSE");
  for (CK_ULONG i = 0; i < count; ++i)
    attrs->Set(tmpl[i].type,
               ByteView(static_cast<const uint8_t*>(tmpl[i].pValue), tmpl[i].ulValueLen));
  return CKR_OK;
}

}  // namespace tpmtoken::schema

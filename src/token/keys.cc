// Key pairs generated in the TPM, and signatures with them (PKCS#11 2.40
// sections 5.11, 5.12, 5.14). The TPM holds the private key; the token keeps
// its blobs and random auth value with the private key object (its record,
// or process memory for a session key).
#include <algorithm>
#include <cstring>
#include <string_view>

#include "crypto/kdf.h"
#include "crypto/ossl.h"
#include "token/key_util.h"
#include "token/module.h"
#include "token/schema.h"
#include "util/log.h"

namespace tpmtoken {

size_t BitLength(ByteView be) {
  size_t i = 0;
  while (i < be.size() && be[i] == 0) ++i;
  if (i == be.size()) return 0;
  size_t bits = (be.size() - i) * 8;
  for (uint8_t top = be[i]; !(top & 0x80); top <<= 1) --bits;
  return bits;
}

// The public shape of a key object (private or public half).
std::optional<mech::KeyShape> ShapeOf(const AttrSet& a) {
  mech::KeyShape shape{};
  if (a.Ulong(CKA_KEY_TYPE) == CKK_RSA && a.Find(CKA_MODULUS)) {
    shape.family = mech::KeyFamily::kRsa;
    shape.modulus_bits = BitLength(*a.Find(CKA_MODULUS));
    return shape;
  }
  if (a.Ulong(CKA_KEY_TYPE) == CKK_EC && a.Find(CKA_EC_PARAMS)) {
    shape.family = mech::KeyFamily::kEc;
    shape.curve = crypto::CurveFromParams(*a.Find(CKA_EC_PARAMS));
    if (shape.curve) return shape;
  }
  return std::nullopt;
}

std::optional<crypto::PublicKey> PublicKeyOf(const AttrSet& a) {
  if (a.Ulong(CKA_KEY_TYPE) == CKK_RSA) {
    const Bytes* n = a.Find(CKA_MODULUS);
    const Bytes* e = a.Find(CKA_PUBLIC_EXPONENT);
    if (!n || !e) return std::nullopt;
    return crypto::RsaPublic(*n, *e);
  }
  const Bytes* params = a.Find(CKA_EC_PARAMS);
  const Bytes* point = a.Find(CKA_EC_POINT);
  const crypto::Curve* curve = params ? crypto::CurveFromParams(*params) : nullptr;
  if (!curve || !point) return std::nullopt;
  const auto raw = crypto::EcPointRaw(*point, *curve);
  if (!raw) return std::nullopt;
  return crypto::EcPublic(*curve, *raw);
}

// CKA_ALLOWED_MECHANISMS, when present and non-empty, must list the mechanism.
bool Allowed(const AttrSet& a, CK_MECHANISM_TYPE type) {
  const Bytes* list = a.Find(CKA_ALLOWED_MECHANISMS);
  if (!list || list->empty()) return true;
  for (size_t off = 0; off + sizeof(CK_MECHANISM_TYPE) <= list->size();
       off += sizeof(CK_MECHANISM_TYPE)) {
    CK_MECHANISM_TYPE m;
    std::memcpy(&m, list->data() + off, sizeof m);
    if (m == type) return true;
  }
  return false;
}

Secret NewKeyAuth() {
  Secret auth = crypto::RandomSecret(32);
  auth.data()[31] |= 1;
  return auth;
}

Secret RejectionKey(ByteView key_auth, ByteView modulus) {
  static constexpr std::string_view kLabel = "tpmtoken RSA PKCS#1 v1.5 implicit rejection v1";
  return crypto::HmacSha256(key_auth, {View(kLabel), modulus});
}

CK_RV RefuseExtractableGenerated(const AttrSet& a, const char* call) {
  if (a.Bool(CKA_EXTRACTABLE))
    return RefuseAttribute(CKR_TEMPLATE_INCONSISTENT, call, CKA_EXTRACTABLE,
                           "a key generated in the TPM never leaves it (import a key made "
                           "elsewhere to have an extractable one)");
  return CKR_OK;
}

void MarkGenerated(AttrSet& a, CK_MECHANISM_TYPE mech) {
  a.SetBool(CKA_LOCAL, true);
  a.SetUlong(CKA_KEY_GEN_MECHANISM, mech);
  if (a.Ulong(CKA_CLASS) == CKO_PUBLIC_KEY) return;
  a.SetBool(CKA_ALWAYS_SENSITIVE, a.Bool(CKA_SENSITIVE, true));
  a.SetBool(CKA_NEVER_EXTRACTABLE, !a.Bool(CKA_EXTRACTABLE));
}

void MarkImported(AttrSet& a) {
  a.SetBool(CKA_LOCAL, false);
  a.SetUlong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
  a.SetBool(CKA_ALWAYS_SENSITIVE, false);
  a.SetBool(CKA_NEVER_EXTRACTABLE, false);
}

CK_RV QueryOrFits(size_t need, const CK_BYTE* out, CK_ULONG* out_len, bool* proceed) {
  *proceed = false;
  if (!out) {
    *out_len = need;
    return CKR_OK;
  }
  if (*out_len < need) {
    *out_len = need;
    return CKR_BUFFER_TOO_SMALL;
  }
  *proceed = true;
  return CKR_OK;
}

CK_RV Module::GenerateKeyPair(CK_SESSION_HANDLE h, const CK_MECHANISM* mech,
                              const CK_ATTRIBUTE* pub_tmpl, CK_ULONG pub_n,
                              const CK_ATTRIBUTE* priv_tmpl, CK_ULONG priv_n,
                              CK_OBJECT_HANDLE* pub_out, CK_OBJECT_HANDLE* priv_out) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_GENERATE_KEY_PAIR)) return CKR_MECHANISM_INVALID;
  if (mech->ulParameterLen != 0) return CKR_MECHANISM_PARAM_INVALID;
  const bool rsa = mech->mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN;
  const CK_KEY_TYPE type = rsa ? CKK_RSA : CKK_EC;
  const bool so = s->token->login == CKU_SO;
  AttrSet pub, priv;
  if (CK_RV rv = schema::BuildForGenerate(*schema::Find(CKO_PUBLIC_KEY, type), pub_tmpl, pub_n,
                                          so, &pub);
      rv != CKR_OK)
    return rv;
  if (CK_RV rv = schema::BuildForGenerate(*schema::Find(CKO_PRIVATE_KEY, type), priv_tmpl,
                                          priv_n, so, &priv);
      rv != CKR_OK)
    return rv;
  if (CK_RV rv = RefuseExtractableGenerated(priv, "C_GenerateKeyPair"); rv != CKR_OK)
    return rv;
  // Both halves as their templates say (2.40 section 5.7, table 6): a
  // public session key pair needs no login, in a R/O session too.
  for (const AttrSet* half : {&pub, &priv})
    if (CK_RV rv = CheckWriteAccess(*s, half->Bool(CKA_TOKEN), half->Bool(CKA_PRIVATE, true));
        rv != CKR_OK)
      return rv;

  tpm::KeySpec spec;
  const crypto::Curve* curve = nullptr;
  if (rsa) {
    spec.kind = tpm::KeyKind::kRsa;
    spec.rsa_bits = static_cast<uint32_t>(*pub.Ulong(CKA_MODULUS_BITS));
    if (std::find(caps_.rsa_bits.begin(), caps_.rsa_bits.end(), spec.rsa_bits) ==
        caps_.rsa_bits.end())
      return CKR_KEY_SIZE_RANGE;
    if (const Bytes* e = pub.Find(CKA_PUBLIC_EXPONENT)) {
      const Bytes f4 = {0x01, 0x00, 0x01};
      Bytes trimmed(std::find_if(e->begin(), e->end(), [](uint8_t b) { return b != 0; }),
                    e->end());
      if (trimmed != f4) return CKR_TEMPLATE_INCONSISTENT;  // the TPM makes e = 65537
    }
    spec.sign = priv.Bool(CKA_SIGN);  // decrypt stays: see tpm/keys.cc KeyTemplate
  } else {
    spec.sign = priv.Bool(CKA_SIGN);
    spec.decrypt = priv.Bool(CKA_DERIVE);  // ECDH is the EC key's TPM "decrypt"
    curve = crypto::CurveFromParams(*pub.Find(CKA_EC_PARAMS));
    if (!curve || std::find(caps_.curves.begin(), caps_.curves.end(), curve->tpm) ==
                      caps_.curves.end())
      return CKR_CURVE_NOT_SUPPORTED;
    spec.kind = tpm::KeyKind::kEcc;
    spec.curve = curve->tpm;
  }

  // The per-key boot binding (include/tpmtoken/pkcs11.h), kept canonical.
  if (const Bytes* bound = priv.Find(CKA_TPMTOKEN_PCR_POLICY); bound && !bound->empty()) {
    try {
      spec.pcrs = PcrSelection::Parse(std::string(AsText(*bound)));
    } catch (const std::invalid_argument& e) {
      log::Warn("C_GenerateKeyPair: CKA_TPMTOKEN_PCR_POLICY refused: ", e.what());
      return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    priv.Set(CKA_TPMTOKEN_PCR_POLICY, View(spec.pcrs.ToString()));
  }
  auto key = std::make_shared<KeyMaterial>();
  key->auth = NewKeyAuth();
  const tpm::CreatedKey created = tpm_->CreateKey(spec, key->auth.view());
  key->blob = created.blob;

  std::optional<crypto::PublicKey> public_key;
  Bytes id_source;
  if (rsa) {
    const Bytes exponent = {0x01, 0x00, 0x01};
    for (AttrSet* a : {&pub, &priv}) {
      a->Set(CKA_MODULUS, created.pub.modulus);
      a->Set(CKA_PUBLIC_EXPONENT, exponent);
    }
    public_key = crypto::RsaPublic(created.pub.modulus, exponent);
    id_source = created.pub.modulus;
  } else {
    const Bytes point = crypto::EcPointDer(created.pub.x, created.pub.y);
    pub.Set(CKA_EC_POINT, point);
    priv.Set(CKA_EC_POINT, point);
    priv.Set(CKA_EC_PARAMS, *pub.Find(CKA_EC_PARAMS));
    Bytes raw = {0x04};
    raw.insert(raw.end(), created.pub.x.begin(), created.pub.x.end());
    raw.insert(raw.end(), created.pub.y.begin(), created.pub.y.end());
    public_key = crypto::EcPublic(*curve, raw);
    id_source = raw;
  }
  if (!public_key) throw std::runtime_error("the TPM returned an unusable public key");
  const Bytes spki = crypto::SubjectPublicKeyInfo(*public_key);
  for (AttrSet* a : {&pub, &priv}) {
    a->Set(CKA_PUBLIC_KEY_INFO, spki);
    MarkGenerated(*a, mech->mechanism);
  }
  // Both halves share CKA_ID; without one, use the SHA-1 of the public
  // value as OpenSC does.
  const Bytes* pub_id = pub.Find(CKA_ID);
  const Bytes* priv_id = priv.Find(CKA_ID);
  if (pub_id->empty() && priv_id->empty()) {
    const Bytes id = crypto::Digest("SHA1", id_source);
    pub.Set(CKA_ID, id);
    priv.Set(CKA_ID, id);
  } else if (pub_id->empty()) {
    pub.Set(CKA_ID, *priv_id);
  } else if (priv_id->empty()) {
    priv.Set(CKA_ID, *pub_id);
  }

  if (CK_RV rv = StoreNewObject(*s, std::move(pub), pub_out); rv != CKR_OK) return rv;
  const CK_RV rv = StoreNewObject(*s, std::move(priv), priv_out, std::move(key));
  if (rv != CKR_OK) DestroyObject(h, *pub_out);
  return rv;
}

namespace {
// An update of a signature or verification: HMAC or RSA/ECDSA.
CK_RV UpdateSignature(SignState& st, ByteView data) {
  if (st.hmac)
    st.hmac->Update(data);
  else
    st.op->Update(data);
  return CKR_OK;
}
}  // namespace

CK_RV Module::SignInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE key) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (CK_RV rv = s->sign.CanStart(); rv != CKR_OK) return rv;
  auto o = Resolve(*s, key);
  if (!o) return CKR_KEY_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_SIGN)) return CKR_MECHANISM_INVALID;
  auto state = std::make_unique<SignState>();
  if (mech::FindHmacMech(mech->mechanism))
    return s->sign.Started(BeginHmac(*s, mech, std::move(o), true, &state), std::move(state));
  if (o->attrs.Ulong(CKA_CLASS) != CKO_PRIVATE_KEY || !o->key) return CKR_KEY_TYPE_INCONSISTENT;
  if (!o->attrs.Bool(CKA_SIGN)) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  if (!Allowed(o->attrs, mech->mechanism)) return CKR_MECHANISM_INVALID;
  const auto shape = ShapeOf(o->attrs);
  if (!shape) return CKR_KEY_TYPE_INCONSISTENT;
  if (CK_RV rv = mech::SignatureOp::Create(*mech, *shape, &state->op); rv != CKR_OK) return rv;
  state->needs_context_login = o->attrs.Bool(CKA_ALWAYS_AUTHENTICATE);
  state->key = std::move(o);
  return s->sign.Started(CKR_OK, std::move(state));
}

// C_Sign, or C_SignFinal with data empty; the slot (operation.h) applies the
// rules to the answer.
CK_RV Module::FinishSign(Session& s, SignState& st, ByteView data, CK_BYTE* out,
                         CK_ULONG* out_len) {
  bool proceed = false;
  const size_t length = st.hmac ? st.hmac->Length() : st.op->SignatureLength();
  const CK_RV query = QueryOrFits(length, out, out_len, &proceed);
  if (!proceed) return query;
  if (st.needs_context_login) return CKR_USER_NOT_LOGGED_IN;
  if (st.hmac) {
    st.hmac->Update(data);
    const Bytes mac = st.hmac->Sign(HmacWith(*st.key));
    std::memcpy(out, mac.data(), mac.size());
    *out_len = mac.size();
    CountUse(s, *st.key);
    return CKR_OK;
  }
  st.op->Update(data);
  const KeyMaterial& key = *st.key->key;
  const mech::PrivateKeyOps ops{
      [&](ByteView in) { return tpm_->RsaPrivate(key.blob, key.auth.view(), in); },
      [&](ByteView digest, TPM2_ALG_ID hash) {
        return tpm_->SignEcdsa(key.blob, key.auth.view(), digest, hash);
      }};
  Bytes sig;
  try {
    if (CK_RV rv = st.op->Sign(ops, &sig); rv != CKR_OK) return rv;
  } catch (const tpm::TpmError& e) {
    // CKA_SIGN set after generation on a key made without it: the TPM
    // object does not carry the use, and the TPM says so.
    // (Part 3, 20.2: TPM_RC_KEY for "not a signing key"; some TPMs answer
    // TPM_RC_ATTRIBUTES.)
    if (e.base() != TPM2_RC_KEY && e.base() != TPM2_RC_ATTRIBUTES) throw;
    log::Warn("C_Sign: the key's TPM object was made without signing (CKA_SIGN was false when "
              "it was generated); generate a new key with CKA_SIGN true");
    return CKR_KEY_FUNCTION_NOT_PERMITTED;
  }
  std::memcpy(out, sig.data(), sig.size());
  *out_len = sig.size();
  CountUse(s, *st.key);
  return CKR_OK;
}

CK_RV Module::Sign(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  return s->sign.Run(OpCall::kSingle, !out, [&](SignState& st) {
    return FinishSign(*s, st, data, out, out_len);
  });
}

CK_RV Module::SignUpdate(CK_SESSION_HANDLE h, ByteView data) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  return s->sign.Run(OpCall::kUpdate, false,
                     [&](SignState& st) { return UpdateSignature(st, data); });
}

CK_RV Module::SignFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  return s->sign.Run(OpCall::kFinal, !out, [&](SignState& st) {
    return FinishSign(*s, st, {}, out, out_len);
  });
}

CK_RV Module::VerifyInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE key) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (CK_RV rv = s->verify.CanStart(); rv != CKR_OK) return rv;
  auto o = Resolve(*s, key);
  if (!o) return CKR_KEY_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_VERIFY)) return CKR_MECHANISM_INVALID;
  auto state = std::make_unique<SignState>();
  if (mech::FindHmacMech(mech->mechanism))
    return s->verify.Started(BeginHmac(*s, mech, std::move(o), false, &state), std::move(state));
  const auto cls = o->attrs.Ulong(CKA_CLASS);
  if (cls != CKO_PUBLIC_KEY && cls != CKO_PRIVATE_KEY) return CKR_KEY_TYPE_INCONSISTENT;
  if (cls == CKO_PUBLIC_KEY && !o->attrs.Bool(CKA_VERIFY)) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  if (!Allowed(o->attrs, mech->mechanism)) return CKR_MECHANISM_INVALID;
  const auto shape = ShapeOf(o->attrs);
  if (!shape || !(state->public_key = PublicKeyOf(o->attrs))) return CKR_KEY_TYPE_INCONSISTENT;
  if (CK_RV rv = mech::SignatureOp::Create(*mech, *shape, &state->op); rv != CKR_OK) return rv;
  state->key = std::move(o);
  return s->verify.Started(CKR_OK, std::move(state));
}

CK_RV Module::FinishVerify(SignState& st, ByteView data, ByteView signature) {
  UpdateSignature(st, data);
  if (st.hmac) return st.hmac->Verify(HmacWith(*st.key), signature);
  return st.op->Verify(*st.public_key, signature);
}

CK_RV Module::Verify(CK_SESSION_HANDLE h, ByteView data, ByteView signature) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  return s->verify.Run(OpCall::kSingle, false,
                       [&](SignState& st) { return FinishVerify(st, data, signature); });
}

CK_RV Module::VerifyUpdate(CK_SESSION_HANDLE h, ByteView data) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  return s->verify.Run(OpCall::kUpdate, false,
                       [&](SignState& st) { return UpdateSignature(st, data); });
}

CK_RV Module::VerifyFinal(CK_SESSION_HANDLE h, ByteView signature) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  return s->verify.Run(OpCall::kFinal, false,
                       [&](SignState& st) { return FinishVerify(st, {}, signature); });
}

}  // namespace tpmtoken

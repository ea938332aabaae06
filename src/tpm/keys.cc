// TPM-held keys: creation from a template, the key cache, and the private-key
// operations (ECDSA sign, raw RSA). Keys are unrestricted sign+decrypt keys
// with the NULL scheme, so one raw RSA operation serves PKCS#1 v1.5, PSS with
// any salt and OAEP with any label (padding is done in software), and one EC
// key serves ECDSA and ECDH. Each key has a random 32-byte auth value; keys
// are not dictionary-attack protected because such a value cannot be guessed.
#include <algorithm>

#include <tss2/tss2_mu.h>

#include "tpm/tpm.h"
#include "tpm/tpm_util.h"
#include "util/log.h"

namespace tpmtoken::tpm {
namespace {

TPM2B_PUBLIC KeyTemplate(const KeySpec& spec) {
  TPM2B_PUBLIC t{};
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                  TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                  TPMA_OBJECT_NODA | TPMA_OBJECT_SIGN_ENCRYPT |
                                  TPMA_OBJECT_DECRYPT;
  if (spec.kind == KeyKind::kRsa) {
    t.publicArea.type = TPM2_ALG_RSA;
    auto& rsa = t.publicArea.parameters.rsaDetail;
    rsa.symmetric.algorithm = TPM2_ALG_NULL;
    rsa.scheme.scheme = TPM2_ALG_NULL;
    rsa.keyBits = static_cast<TPMI_RSA_KEY_BITS>(spec.rsa_bits);
    rsa.exponent = 0;  // 65537
  } else {
    t.publicArea.type = TPM2_ALG_ECC;
    auto& ecc = t.publicArea.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_NULL;
    ecc.scheme.scheme = TPM2_ALG_NULL;
    ecc.curveID = spec.curve;
    ecc.kdf.scheme = TPM2_ALG_NULL;
  }
  return t;
}

size_t CurveBytes(TPM2_ECC_CURVE curve) {
  switch (curve) {
    case TPM2_ECC_NIST_P384: return 48;
    case TPM2_ECC_NIST_P521: return 66;
    default: return 32;
  }
}

// Left-pads a big-endian number to n bytes (the TPM drops leading zeros).
Bytes Pad(const uint8_t* p, size_t len, size_t n) {
  Bytes out(n > len ? n - len : 0, 0);
  out.insert(out.end(), p, p + len);
  return out;
}

KeyPublic ToKeyPublic(const TPMT_PUBLIC& p) {
  KeyPublic k;
  if (p.type == TPM2_ALG_RSA) {
    k.kind = KeyKind::kRsa;
    const auto& n = p.unique.rsa;
    k.modulus.assign(n.buffer, n.buffer + n.size);
    k.exponent = p.parameters.rsaDetail.exponent ? p.parameters.rsaDetail.exponent : 65537;
  } else {
    k.kind = KeyKind::kEcc;
    k.curve = p.parameters.eccDetail.curveID;
    const size_t n = CurveBytes(k.curve);
    k.x = Pad(p.unique.ecc.x.buffer, p.unique.ecc.x.size, n);
    k.y = Pad(p.unique.ecc.y.buffer, p.unique.ecc.y.size, n);
  }
  return k;
}

}  // namespace

bool Tpm::SupportsKey(const KeySpec& spec) {
  std::lock_guard lock(mu_);
  TPMT_PUBLIC_PARMS parms{};
  const TPM2B_PUBLIC t = KeyTemplate(spec);
  parms.type = t.publicArea.type;
  parms.parameters = t.publicArea.parameters;
  return Esys_TestParms(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &parms) ==
         TSS2_RC_SUCCESS;
}

CreatedKey Tpm::CreateKey(const KeySpec& spec, ByteView auth) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    TPM2B_SENSITIVE_CREATE sensitive{};
    SetBuffer(sensitive.sensitive.userAuth, auth);
    TPM2B_PUBLIC in_public = KeyTemplate(spec);
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION pcrs{};
    TPM2B_PRIVATE* out_private = nullptr;
    TPM2B_PUBLIC* out_public = nullptr;
    TPM2B_CREATION_DATA* creation = nullptr;
    TPM2B_DIGEST* creation_hash = nullptr;
    TPMT_TK_CREATION* ticket = nullptr;
    // The key's auth value travels in inSensitive, encrypted by the session.
    const TSS2_RC rc = Esys_Create(ctx_, Primary().get(),
                                   WithAttributes(ctx_, Session(), TPMA_SESSION_DECRYPT),
                                   ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &in_public, &outside,
                                   &pcrs, &out_private, &out_public, &creation, &creation_hash,
                                   &ticket);
    Wipe(&sensitive, sizeof sensitive);
    EsysPtr<TPM2B_PRIVATE> priv(out_private);
    EsysPtr<TPM2B_PUBLIC> pub(out_public);
    Esys_Free(creation);
    Esys_Free(creation_hash);
    Esys_Free(ticket);
    Check(rc, "TPM2_Create (key)");
    return CreatedKey{{MarshalPublic(*pub), MarshalPrivate(*priv)}, ToKeyPublic(pub->publicArea)};
  });
}

void Tpm::MakeRoomForObject(bool for_key) {
  // With a resource manager the TPM virtualizes slots; keep a working set.
  // A bare TPM has three: the primary, one cached key, one temporary object.
  const size_t keep = has_rm_ ? 31 : (for_key ? 0 : 1);
  while (keys_.size() > keep) keys_.erase(keys_.begin());
}

ESYS_TR Tpm::LoadKey(const SealedBlob& key, ByteView auth) {
  const std::string id(key.pub.begin(), key.pub.end());
  auto it = std::find_if(keys_.begin(), keys_.end(), [&](const auto& k) { return k->id == id; });
  if (it != keys_.end()) {
    std::rotate(it, it + 1, keys_.end());  // most recently used last
    return keys_.back()->handle.get();
  }
  MakeRoomForObject(true);
  Handle h = Load(Primary(), Session(), key);
  TPM2B_AUTH a{};
  SetBuffer(a, auth);
  const TSS2_RC rc = Esys_TR_SetAuth(ctx_, h.get(), &a);
  Wipe(&a, sizeof a);
  Check(rc, "Esys_TR_SetAuth");
  keys_.push_back(std::make_unique<CachedKey>(CachedKey{id, std::move(h)}));
  return keys_.back()->handle.get();
}

void Tpm::FlushKeys() {
  std::lock_guard lock(mu_);
  keys_.clear();
}

void Tpm::FlushCached() {
  keys_.clear();
  session_.reset();
  primary_.reset();
}

Bytes Tpm::SignEcdsa(const SealedBlob& key, ByteView auth, ByteView digest, TPM2_ALG_ID hash) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    const ESYS_TR tr = LoadKey(key, auth);
    TPM2B_DIGEST d{};
    SetBuffer(d, digest);
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_ECDSA;
    scheme.details.ecdsa.hashAlg = hash;
    TPMT_TK_HASHCHECK validation{};
    validation.tag = TPM2_ST_HASHCHECK;
    validation.hierarchy = TPM2_RH_NULL;
    TPMT_SIGNATURE* raw = nullptr;
    // Neither the digest nor the signature is secret: no parameter encryption.
    Check(Esys_Sign(ctx_, tr, WithAttributes(ctx_, Session(), 0), ESYS_TR_NONE, ESYS_TR_NONE, &d,
                    &scheme, &validation, &raw),
          "TPM2_Sign (ECDSA)");
    EsysPtr<TPMT_SIGNATURE> sig(raw);
    TPM2B_PUBLIC pub{};
    size_t off = 0;
    Check(Tss2_MU_TPM2B_PUBLIC_Unmarshal(key.pub.data(), key.pub.size(), &off, &pub),
          "unmarshal key public");
    const size_t n = CurveBytes(pub.publicArea.parameters.eccDetail.curveID);
    const auto& r = sig->signature.ecdsa.signatureR;
    const auto& s = sig->signature.ecdsa.signatureS;
    Bytes out = Pad(r.buffer, r.size, n);
    const Bytes s_bytes = Pad(s.buffer, s.size, n);
    out.insert(out.end(), s_bytes.begin(), s_bytes.end());
    return out;
  });
}

Secret Tpm::RsaPrivate(const SealedBlob& key, ByteView auth, ByteView input) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    const ESYS_TR tr = LoadKey(key, auth);
    TPM2B_PUBLIC_KEY_RSA in{};
    SetBuffer(in, input);
    TPMT_RSA_DECRYPT scheme{};
    scheme.scheme = TPM2_ALG_NULL;
    TPM2B_DATA label{};
    TPM2B_PUBLIC_KEY_RSA* raw = nullptr;
    // The result may be a decrypted secret: the session encrypts it.
    Check(Esys_RSA_Decrypt(ctx_, tr, WithAttributes(ctx_, Session(), TPMA_SESSION_ENCRYPT),
                           ESYS_TR_NONE, ESYS_TR_NONE, &in, &scheme, &label, &raw),
          "TPM2_RSA_Decrypt (raw)");
    Secret out(ByteView(Pad(raw->buffer, raw->size, input.size())));
    Wipe(raw, sizeof *raw);
    Esys_Free(raw);
    return out;
  });
}

}  // namespace tpmtoken::tpm

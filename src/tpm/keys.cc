// TPM-held keys: creation from a template, the key cache, and the private-key
// operations (ECDSA sign, raw RSA). Keys are unrestricted sign+decrypt keys
// with the NULL scheme, so one raw RSA operation serves PKCS#1 v1.5, PSS with
// any salt and OAEP with any label (padding is done in software), and one EC
// key serves ECDSA and ECDH. Each key has a random 32-byte auth value; keys
// are not dictionary-attack protected because such a value cannot be guessed.
#include <algorithm>
#include <cstring>

#include <tss2/tss2_mu.h>

#include "crypto/ossl.h"
#include "tpm/fast_session.h"
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
  if (spec.kind == KeyKind::kAes) {
    t.publicArea.type = TPM2_ALG_SYMCIPHER;
    t.publicArea.parameters.symDetail.sym = {TPM2_ALG_AES, {.aes = static_cast<TPMI_AES_KEY_BITS>(spec.aes_bits)},
                                             {.aes = TPM2_ALG_NULL}};
    return t;
  }
  if (spec.kind == KeyKind::kHmac) {
    // The caller supplies the value (any length), so not sensitiveDataOrigin.
    // Sign and decrypt both set let the scheme stay NULL, so TPM2_HMAC takes
    // its hash per call (Part 2, 12.2.3.6: a sign-only keyed-hash key is
    // fixed to one HMAC hash).
    t.publicArea.type = TPM2_ALG_KEYEDHASH;
    t.publicArea.objectAttributes &= ~TPMA_OBJECT_SENSITIVEDATAORIGIN;
    t.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
    return t;
  }
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

SealedBlob Tpm::CreateHmacKey(ByteView value, ByteView auth) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    return CreateChild(ctx_, Primary().get(), Session().get(), KeyTemplate({KeyKind::kHmac}), value,
                       auth, "TPM2_Create (HMAC key)");
  });
}

Bytes Tpm::Hmac(const SealedBlob& key, ByteView auth, ByteView data, TPM2_ALG_ID hash) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    const CachedKey& k = LoadKey(key, auth);
    TSS2_SYS_CONTEXT* sys = nullptr;
    Check(Esys_GetSysContext(ctx_, &sys), "Esys_GetSysContext");
    if (data.size() <= TPM2_MAX_DIGEST_BUFFER) {
      TPM2B_MAX_BUFFER buffer{};
      SetBuffer(buffer, data);
      FastSession& session = Fast();
      Check(Tss2_Sys_HMAC_Prepare(sys, k.tpm_handle, &buffer, hash), "TPM2_HMAC prepare");
      RunFast(session, TPM2_CC_HMAC, k.name, auth, false, "TPM2_HMAC");
      TPM2B_DIGEST out{};
      Check(Tss2_Sys_HMAC_Complete(sys, &out), "TPM2_HMAC complete");
      return Bytes(out.buffer, out.buffer + out.size);
    }
    // Longer data: an HMAC sequence, fed in TPM-sized pieces.
    TPM2B_AUTH seq_auth{};
    SetBuffer(seq_auth, crypto::Random(16));
    ESYS_TR seq = ESYS_TR_NONE;
    Check(Esys_HMAC_Start(ctx_, k.handle.get(), WithAttributes(ctx_, Session(), TPMA_SESSION_DECRYPT),
                          ESYS_TR_NONE, ESYS_TR_NONE, &seq_auth, hash, &seq),
          "TPM2_HMAC_Start");
    Handle sequence(ctx_, seq, Handle::Kind::kFlush);
    Check(Esys_TR_SetAuth(ctx_, seq, &seq_auth), "Esys_TR_SetAuth");
    size_t off = 0;
    while (data.size() - off > TPM2_MAX_DIGEST_BUFFER) {
      TPM2B_MAX_BUFFER piece{};
      SetBuffer(piece, data.subspan(off, TPM2_MAX_DIGEST_BUFFER));
      Check(Esys_SequenceUpdate(ctx_, seq, WithAttributes(ctx_, Session(), 0), ESYS_TR_NONE,
                                ESYS_TR_NONE, &piece),
            "TPM2_SequenceUpdate");
      off += TPM2_MAX_DIGEST_BUFFER;
    }
    TPM2B_MAX_BUFFER last{};
    SetBuffer(last, data.subspan(off));
    TPM2B_DIGEST* result = nullptr;
    TPMT_TK_HASHCHECK* ticket = nullptr;
    Check(Esys_SequenceComplete(ctx_, seq, WithAttributes(ctx_, Session(), 0), ESYS_TR_NONE,
                                ESYS_TR_NONE, &last, TPM2_RH_NULL, &result, &ticket),
          "TPM2_SequenceComplete");
    sequence.Release();  // SequenceComplete flushed it
    Esys_Free(ticket);
    Bytes out(result->buffer, result->buffer + result->size);
    Esys_Free(result);
    return out;
  });
}

Secret Tpm::AesCrypt(const SealedBlob& key, ByteView auth, bool decrypt, TPM2_ALG_ID mode,
                     Bytes* iv, ByteView in) {
  std::lock_guard lock(mu_);
  Secret out(in.size());
  size_t done = 0;
  while (done < in.size()) {
    const size_t n = std::min<size_t>(in.size() - done, TPM2_MAX_DIGEST_BUFFER);
    Retry([&] {
      const CachedKey& k = LoadKey(key, auth);
      TSS2_SYS_CONTEXT* sys = nullptr;
      Check(Esys_GetSysContext(ctx_, &sys), "Esys_GetSysContext");
      TPM2B_MAX_BUFFER data{};
      SetBuffer(data, in.subspan(done, n));
      TPM2B_IV iv_in{};
      SetBuffer(iv_in, *iv);
      FastSession& session = Fast();
      Check(Tss2_Sys_EncryptDecrypt2_Prepare(sys, k.tpm_handle, &data, decrypt ? TPM2_YES : TPM2_NO,
                                             mode, &iv_in),
            "TPM2_EncryptDecrypt2 prepare");
      Wipe(&data, sizeof data);
      RunFast(session, TPM2_CC_EncryptDecrypt2, k.name, auth, true, "TPM2_EncryptDecrypt2", true);
      auto result = std::make_unique<TPM2B_MAX_BUFFER>();
      TPM2B_IV iv_out{};
      Check(Tss2_Sys_EncryptDecrypt2_Complete(sys, result.get(), &iv_out),
            "TPM2_EncryptDecrypt2 complete");
      if (result->size != n) throw TpmError("TPM2_EncryptDecrypt2 output size", TPM2_RC_SIZE);
      std::memcpy(out.data() + done, result->buffer, n);
      Wipe(result.get(), sizeof *result);
      iv->assign(iv_out.buffer, iv_out.buffer + iv_out.size);
      return 0;
    });
    done += n;
  }
  return out;
}

Secret Tpm::EcdhZ(const SealedBlob& key, ByteView auth, ByteView x, ByteView y) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    const CachedKey& k = LoadKey(key, auth);
    TSS2_SYS_CONTEXT* sys = nullptr;
    Check(Esys_GetSysContext(ctx_, &sys), "Esys_GetSysContext");
    TPM2B_ECC_POINT in{};
    SetBuffer(in.point.x, x);
    SetBuffer(in.point.y, y);
    FastSession& session = Fast();
    Check(Tss2_Sys_ECDH_ZGen_Prepare(sys, k.tpm_handle, &in), "TPM2_ECDH_ZGen prepare");
    RunFast(session, TPM2_CC_ECDH_ZGen, k.name, auth, true, "TPM2_ECDH_ZGen");
    auto out = std::make_unique<TPM2B_ECC_POINT>();
    Check(Tss2_Sys_ECDH_ZGen_Complete(sys, out.get()), "TPM2_ECDH_ZGen complete");
    Secret z(ByteView(Pad(out->point.x.buffer, out->point.x.size, x.size())));
    Wipe(out.get(), sizeof *out);
    return z;
  });
}

bool Tpm::HasAlgorithm(TPM2_ALG_ID alg) {
  std::lock_guard lock(mu_);
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  Check(Esys_GetCapability(ctx_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_ALGS, alg, 1,
                           &more, &raw),
        "TPM2_GetCapability (algorithms)");
  EsysPtr<TPMS_CAPABILITY_DATA> caps(raw);
  return caps->data.algorithms.count == 1 && caps->data.algorithms.algProperties[0].alg == alg;
}

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
    CreatedKey k;
    k.blob = CreateChild(ctx_, Primary().get(), Session().get(), KeyTemplate(spec), {}, auth,
                         "TPM2_Create (key)");
    TPM2B_PUBLIC pub{};
    size_t off = 0;
    Check(Tss2_MU_TPM2B_PUBLIC_Unmarshal(k.blob.pub.data(), k.blob.pub.size(), &off, &pub),
          "unmarshal key public");
    k.pub = ToKeyPublic(pub.publicArea);
    return k;
  });
}

void Tpm::MakeRoomForObject(bool for_key) {
  // With a resource manager the TPM virtualizes slots; keep a working set.
  // A bare TPM has three: the primary, one cached key, one temporary object.
  const size_t keep = has_rm_ ? 31 : (for_key ? 0 : 1);
  while (keys_.size() > keep) keys_.erase(keys_.begin());
}

Tpm::CachedKey& Tpm::LoadKey(const SealedBlob& key, ByteView auth) {
  const std::string id(key.pub.begin(), key.pub.end());
  auto it = std::find_if(keys_.begin(), keys_.end(), [&](const auto& k) { return k->id == id; });
  if (it != keys_.end()) {
    std::rotate(it, it + 1, keys_.end());  // most recently used last
    return *keys_.back();
  }
  MakeRoomForObject(true);
  auto entry = std::make_unique<CachedKey>();
  entry->id = id;
  entry->handle = Load(Primary(), Session(), key);
  TPM2B_AUTH a{};
  SetBuffer(a, auth);
  const TSS2_RC rc = Esys_TR_SetAuth(ctx_, entry->handle.get(), &a);
  Wipe(&a, sizeof a);
  Check(rc, "Esys_TR_SetAuth");
  Check(Esys_TR_GetTpmHandle(ctx_, entry->handle.get(), &entry->tpm_handle),
        "Esys_TR_GetTpmHandle");
  TPM2B_NAME* name = nullptr;
  Check(Esys_TR_GetName(ctx_, entry->handle.get(), &name), "Esys_TR_GetName");
  entry->name.assign(name->name, name->name + name->size);
  Esys_Free(name);
  keys_.push_back(std::move(entry));
  return *keys_.back();
}

FastSession& Tpm::Fast() {
  if (!fast_) {
    const ESYS_TR primary = Primary().get();
    TPM2_HANDLE handle = 0;
    Check(Esys_TR_GetTpmHandle(ctx_, primary, &handle), "Esys_TR_GetTpmHandle");
    TSS2_SYS_CONTEXT* sys = nullptr;
    Check(Esys_GetSysContext(ctx_, &sys), "Esys_GetSysContext");
    fast_ = FastSession::Start(sys, handle, primary_x_, primary_y_);
  }
  return *fast_;
}

// Runs a prepared command in the module's session; on failure the session is
// dropped (a new one starts next time) and the TPM's code is thrown.
void Tpm::RunFast(FastSession& session, TPM2_CC command, ByteView name, ByteView auth,
                  bool decrypt_response, const char* what, bool encrypt_command) {
  const TSS2_RC rc = session.Execute(command, name, auth, decrypt_response, encrypt_command);
  if (rc != TSS2_RC_SUCCESS) {
    fast_.reset();
    throw TpmError(what, rc);
  }
}

void Tpm::FlushKeys() {
  std::lock_guard lock(mu_);
  keys_.clear();
}

void Tpm::FlushCached() {
  fast_.reset();
  keys_.clear();
  session_.reset();
  primary_.reset();
}

Bytes Tpm::SignEcdsa(const SealedBlob& key, ByteView auth, ByteView digest, TPM2_ALG_ID hash) {
  std::lock_guard lock(mu_);
  return Retry([&] {
    const CachedKey& k = LoadKey(key, auth);
    TPM2B_DIGEST d{};
    SetBuffer(d, digest);
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_ECDSA;
    scheme.details.ecdsa.hashAlg = hash;
    TPMT_TK_HASHCHECK validation{};
    validation.tag = TPM2_ST_HASHCHECK;
    validation.hierarchy = TPM2_RH_NULL;
    // The key's auth value is used only inside the session HMAC; neither the
    // digest nor the signature is secret, so no parameter encryption.
    TSS2_SYS_CONTEXT* sys = nullptr;
    Check(Esys_GetSysContext(ctx_, &sys), "Esys_GetSysContext");
    FastSession& session = Fast();
    Check(Tss2_Sys_Sign_Prepare(sys, k.tpm_handle, &d, &scheme, &validation), "TPM2_Sign prepare");
    RunFast(session, TPM2_CC_Sign, k.name, auth, false, "TPM2_Sign (ECDSA)");
    auto sig = std::make_unique<TPMT_SIGNATURE>();
    Check(Tss2_Sys_Sign_Complete(sys, sig.get()), "TPM2_Sign complete");
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
    const CachedKey& k = LoadKey(key, auth);
    TPM2B_PUBLIC_KEY_RSA in{};
    SetBuffer(in, input);
    TPMT_RSA_DECRYPT scheme{};
    scheme.scheme = TPM2_ALG_NULL;
    TPM2B_DATA label{};
    TSS2_SYS_CONTEXT* sys = nullptr;
    Check(Esys_GetSysContext(ctx_, &sys), "Esys_GetSysContext");
    FastSession& session = Fast();
    Check(Tss2_Sys_RSA_Decrypt_Prepare(sys, k.tpm_handle, &in, &scheme, &label),
          "TPM2_RSA_Decrypt prepare");
    // The result may be a decrypted secret: the session encrypts it.
    RunFast(session, TPM2_CC_RSA_Decrypt, k.name, auth, true, "TPM2_RSA_Decrypt (raw)");
    auto msg = std::make_unique<TPM2B_PUBLIC_KEY_RSA>();
    Check(Tss2_Sys_RSA_Decrypt_Complete(sys, msg.get()), "TPM2_RSA_Decrypt complete");
    Secret out(ByteView(Pad(msg->buffer, msg->size, input.size())));
    Wipe(msg.get(), sizeof *msg);
    return out;
  });
}

}  // namespace tpmtoken::tpm

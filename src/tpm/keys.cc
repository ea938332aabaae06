// TPM-held keys: creation from a template, the key cache, and the private-key
// operations (ECDSA sign, raw RSA). Keys are unrestricted keys with the NULL
// scheme, so one raw RSA operation serves PKCS#1 v1.5, PSS with any salt and
// OAEP with any label (padding is done in software), and one EC key serves
// ECDSA and ECDH; the TPM object carries only the uses KeySpec names. Each key has a random 32-byte auth value; keys
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


size_t HashSize(TPM2_ALG_ID hash) {
  switch (hash) {
    case TPM2_ALG_SHA1: return 20;
    case TPM2_ALG_SHA384: return 48;
    case TPM2_ALG_SHA512: return 64;
    default: return 32;
  }
}

size_t CurveBytes(TPM2_ECC_CURVE curve) {
  switch (curve) {
    case TPM2_ECC_NIST_P384: return 48;
    case TPM2_ECC_NIST_P521: return 66;
    default: return 32;
  }
}

// Left-pads a big-endian number to n bytes (the TPM drops leading zeros).
// A longer one is not a value of this size: the response is wrong.
Bytes Pad(const uint8_t* p, size_t len, size_t n) {
  if (len > n) throw TpmError("a TPM response value is longer than its type allows", TPM2_RC_SIZE);
  Bytes out(n - len, 0);
  out.insert(out.end(), p, p + len);
  return out;
}

// The same for a secret result (ECDH Z, a raw RSA output): built in place.
Secret PadSecret(const uint8_t* p, size_t len, size_t n) {
  if (len > n) throw TpmError("a TPM response value is longer than its type allows", TPM2_RC_SIZE);
  Secret out(n);
  std::memcpy(out.data() + (out.size() - len), p, len);
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

TPM2B_PUBLIC KeyTemplate(const KeySpec& spec) {
  TPM2B_PUBLIC t{};
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                  TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                  TPMA_OBJECT_NODA | TPMA_OBJECT_SIGN_ENCRYPT |
                                  TPMA_OBJECT_DECRYPT;
  if (spec.kind == KeyKind::kAes) {
    // TPM2_EncryptDecrypt (Part 3, 15.2) runs decrypt=NO only with sign and
    // decrypt=YES only with decrypt set, else TPM_RC_ATTRIBUTES: the object
    // carries the directions the key's PKCS#11 uses need (token/secret.cc
    // TpmUsesOf), and at least one (only a data object may have neither:
    // TPM_RC_ATTRIBUTES at creation).
    if (!spec.sign && !spec.decrypt) throw std::invalid_argument("an AES key needs a TPM use");
    if (!spec.sign) t.publicArea.objectAttributes &= ~TPMA_OBJECT_SIGN_ENCRYPT;
    if (!spec.decrypt) t.publicArea.objectAttributes &= ~TPMA_OBJECT_DECRYPT;
    t.publicArea.type = TPM2_ALG_SYMCIPHER;
    t.publicArea.parameters.symDetail.sym = {TPM2_ALG_AES, {.aes = static_cast<TPMI_AES_KEY_BITS>(spec.aes_bits)},
                                             {.aes = spec.aes_mode}};
    return t;
  }
  if (spec.kind == KeyKind::kHmac) {
    // The caller supplies the value (any length), so not sensitiveDataOrigin.
    // Sign always: a keyed-hash object with neither sign nor decrypt is a
    // sealed data object, and TPM2_Unseal would hand out its value. A
    // sign-only keyed-hash key must have the HMAC scheme, fixed to one hash
    // (Part 2, 12.2.3.6; TPM2_HMAC then takes only that hash). So decrypt
    // goes only when the key needs one hash; with several, sign and decrypt
    // both set let the scheme stay NULL and TPM2_HMAC take its hash per
    // call. The decrypt bit grants an unrestricted keyed-hash object no TPM
    // command: TPM2_EncryptDecrypt wants a symmetric cipher, salting and
    // credentials an asymmetric key, a parent the restricted attribute.
    t.publicArea.type = TPM2_ALG_KEYEDHASH;
    t.publicArea.objectAttributes &= ~TPMA_OBJECT_SENSITIVEDATAORIGIN;
    auto& scheme = t.publicArea.parameters.keyedHashDetail.scheme;
    scheme.scheme = TPM2_ALG_NULL;
    if (!spec.decrypt) {
      if (spec.hmac_hash == TPM2_ALG_NULL)
        throw std::invalid_argument("a sign-only HMAC key needs its hash");
      t.publicArea.objectAttributes &= ~TPMA_OBJECT_DECRYPT;
      scheme.scheme = TPM2_ALG_HMAC;
      scheme.details.hmac.hashAlg = spec.hmac_hash;
    }
    return t;
  }
  if (spec.kind == KeyKind::kRsa) {
    // Decrypt stays: every padding the module synthesizes (PKCS#1 v1.5 and
    // PSS signatures, OAEP and PKCS#1 decryption) runs on the raw
    // TPM2_RSA_Decrypt, so a sign-only RSA key still needs it. That one
    // object both signs and decrypts is safe only because decryption has no
    // padding oracle: CKM_RSA_PKCS uses implicit rejection and OAEP answers
    // one error in constant time (mech/rsa_unpad.h), so no caller can turn
    // decryptions into signatures (Bleichenbacher). The module refuses the
    // uses the key's attributes do not allow (CKA_SIGN, CKA_DECRYPT).
    if (!spec.sign) t.publicArea.objectAttributes &= ~TPMA_OBJECT_SIGN_ENCRYPT;
    t.publicArea.type = TPM2_ALG_RSA;
    auto& rsa = t.publicArea.parameters.rsaDetail;
    rsa.symmetric.algorithm = TPM2_ALG_NULL;
    rsa.scheme.scheme = TPM2_ALG_NULL;
    rsa.keyBits = static_cast<TPMI_RSA_KEY_BITS>(spec.rsa_bits);
    rsa.exponent = 0;  // 65537
  } else {
    // The TPM enforces an EC key's uses itself: without sign it refuses
    // TPM2_Sign, without decrypt TPM2_ECDH_ZGen (Part 3, 14.5: TPM_RC_ATTRIBUTES).
    if (!spec.sign) t.publicArea.objectAttributes &= ~TPMA_OBJECT_SIGN_ENCRYPT;
    if (!spec.decrypt) t.publicArea.objectAttributes &= ~TPMA_OBJECT_DECRYPT;
    t.publicArea.type = TPM2_ALG_ECC;
    auto& ecc = t.publicArea.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_NULL;
    ecc.scheme.scheme = TPM2_ALG_NULL;
    ecc.curveID = spec.curve;
    ecc.kdf.scheme = TPM2_ALG_NULL;
  }
  return t;
}

size_t Tpm::HmacGeneratedSize(TPM2_ALG_ID hash) {
  // The size of the scheme's hash, or with the NULL scheme of the nameAlg's
  // (SHA-256): Part 1, 27.2.3.
  return HashSize(hash == TPM2_ALG_NULL ? TPM2_ALG_SHA256 : hash);
}

SealedBlob Tpm::CreateHmacKey(ByteView value, ByteView auth, TPM2_ALG_ID hash) {
  KeySpec spec{KeyKind::kHmac};
  spec.decrypt = hash == TPM2_ALG_NULL;
  spec.hmac_hash = hash;
  TPM2B_PUBLIC t = KeyTemplate(spec);
  // No value: the TPM generates one (TPM2_Create with sensitiveDataOrigin)
  // of HmacGeneratedSize(hash) bytes, and it never leaves the TPM.
  if (value.empty()) t.publicArea.objectAttributes |= TPMA_OBJECT_SENSITIVEDATAORIGIN;
  auto lock = Enter();
  return Retry([&] { return CreateChild(t, value, auth, "TPM2_Create (HMAC key)"); });
}

Bytes Tpm::Hmac(const SealedBlob& key, ByteView auth, ByteView data, TPM2_ALG_ID hash) {
  auto lock = Enter();
  return Retry([&] {
    const CachedKey& k = LoadKey(key);
    TSS2_SYS_CONTEXT* sys = Sys();
    if (data.size() <= TPM2_MAX_DIGEST_BUFFER) {
      TPM2B_MAX_BUFFER buffer{};
      SetBuffer(buffer, data);
      FastSession& session = Fast();
      Check(Tss2_Sys_HMAC_Prepare(sys, k.object.handle(), &buffer, hash), "TPM2_HMAC prepare");
      RunFast(session, TPM2_CC_HMAC, k.object.name(), auth, false, "TPM2_HMAC");
      TPM2B_DIGEST out{};
      Check(Tss2_Sys_HMAC_Complete(sys, &out), "TPM2_HMAC complete");
      if (out.size != HashSize(hash)) throw TpmError("TPM2_HMAC output size", TPM2_RC_SIZE);
      return Bytes(out.buffer, out.buffer + out.size);
    }
    // Longer data: an HMAC sequence, fed in TPM-sized pieces. A sequence
    // object has no public area and an empty name; its auth value is a
    // one-time random one, sent encrypted in TPM2_HMAC_Start.
    // Each session is fetched before its command is prepared: Fast() may
    // start a new one (after a failure reset it: an object-memory retry of
    // TPM2_HMAC_Start on a bare TPM), and that command would overwrite the
    // prepared one in the system API context ("called in the wrong order").
    const Secret seq_auth = crypto::RandomSecret(16);
    TPM2B_AUTH auth_param{};
    SetBuffer(auth_param, seq_auth.view());
    FastSession& start_session = Fast();
    Check(Tss2_Sys_HMAC_Start_Prepare(sys, k.object.handle(), &auth_param, hash),
          "TPM2_HMAC_Start prepare");
    Wipe(&auth_param, sizeof auth_param);
    RunFast(start_session, TPM2_CC_HMAC_Start, k.object.name(), auth, false, "TPM2_HMAC_Start",
            true);
    TPM2_HANDLE seq_handle = 0;
    Check(Tss2_Sys_HMAC_Start_Complete(sys, &seq_handle), "TPM2_HMAC_Start complete");
    TpmObject sequence(sys, seq_handle, {});
    size_t off = 0;
    while (data.size() - off > TPM2_MAX_DIGEST_BUFFER) {
      TPM2B_MAX_BUFFER piece{};
      SetBuffer(piece, data.subspan(off, TPM2_MAX_DIGEST_BUFFER));
      FastSession& session = Fast();
      Check(Tss2_Sys_SequenceUpdate_Prepare(sys, seq_handle, &piece), "TPM2_SequenceUpdate prepare");
      RunFast(session, TPM2_CC_SequenceUpdate, sequence.name(), seq_auth.view(), false,
              "TPM2_SequenceUpdate");
      Check(Tss2_Sys_SequenceUpdate_Complete(sys), "TPM2_SequenceUpdate complete");
      off += TPM2_MAX_DIGEST_BUFFER;
    }
    TPM2B_MAX_BUFFER last{};
    SetBuffer(last, data.subspan(off));
    FastSession& session = Fast();
    Check(Tss2_Sys_SequenceComplete_Prepare(sys, seq_handle, &last, TPM2_RH_NULL),
          "TPM2_SequenceComplete prepare");
    RunFast(session, TPM2_CC_SequenceComplete, sequence.name(), seq_auth.view(), false,
            "TPM2_SequenceComplete");
    TPM2B_DIGEST result{};
    result.size = sizeof result.buffer;
    TPMT_TK_HASHCHECK ticket{};
    Check(Tss2_Sys_SequenceComplete_Complete(sys, &result, &ticket), "TPM2_SequenceComplete complete");
    sequence.Release();  // SequenceComplete flushed it
    if (result.size != HashSize(hash))
      throw TpmError("TPM2_SequenceComplete output size", TPM2_RC_SIZE);
    return Bytes(result.buffer, result.buffer + result.size);
  });
}

Secret Tpm::AesCrypt(const SealedBlob& key, ByteView auth, bool decrypt, TPM2_ALG_ID mode,
                     Bytes* iv, ByteView in) {
  if (mode == TPM2_ALG_ECB && decrypt && AesModeOf(key) == TPM2_ALG_CBC) {
    // A key fixed to CBC (KeySpec::aes_mode) decrypts ECB as CBC from a zero
    // IV, each block then XORed with the ciphertext block before it:
    // P_i = D(C_i) xor C_(i-1), so D(C_i) = P_i xor C_(i-1).
    Bytes zero(16, 0);
    Secret out = AesCrypt(key, auth, true, TPM2_ALG_CBC, &zero, in);
    for (size_t i = in.size(); i-- > 16;) out.data()[i] ^= in[i - 16];
    return out;
  }
  auto lock = Enter();
  Secret out(in.size());
  size_t done = 0;
  while (done < in.size()) {
    const size_t n = std::min<size_t>(in.size() - done, TPM2_MAX_DIGEST_BUFFER);
    Retry([&] {
      const CachedKey& k = LoadKey(key);
      TSS2_SYS_CONTEXT* sys = Sys();
      TPM2B_MAX_BUFFER data{};
      SetBuffer(data, in.subspan(done, n));
      TPM2B_IV iv_in{};
      SetBuffer(iv_in, *iv);
      FastSession& session = Fast();
      Check(Tss2_Sys_EncryptDecrypt2_Prepare(sys, k.object.handle(), &data, decrypt ? TPM2_YES : TPM2_NO,
                                             mode, &iv_in),
            "TPM2_EncryptDecrypt2 prepare");
      Wipe(&data, sizeof data);
      const ResponseWipe wipe(*sys_);
      try {
        RunFast(session, TPM2_CC_EncryptDecrypt2, k.object.name(), auth, true,
                "TPM2_EncryptDecrypt2", true);
      } catch (const TpmError& e) {
        // 'wrong mode' or 'not allowed' (which the caller reports as a key
        // made without the use) carry no HMAC: believed only when the key's
        // own public area, which the module made, says so.
        const TSS2_RC base = e.base();
        if ((base == TPM2_RC_MODE || base == TPM2_RC_ATTRIBUTES) && AesAllows(key, decrypt, mode))
          throw TpmError(std::string(e.what()) +
                             ": the key's own TPM object allows this direction and mode, so the "
                             "answer was altered on the way, or the TPM is failing",
                         TSS2_SYS_RC_MALFORMED_RESPONSE);
        throw;
      }
      auto result = std::make_unique<TPM2B_MAX_BUFFER>();
      TPM2B_IV iv_out{};
      Check(Tss2_Sys_EncryptDecrypt2_Complete(sys, result.get(), &iv_out),
            "TPM2_EncryptDecrypt2 complete");
      if (result->size != n || iv_out.size != iv->size())
        throw TpmError("TPM2_EncryptDecrypt2 output size", TPM2_RC_SIZE);
      std::memcpy(out.data() + done, result->buffer, n);
      Wipe(result.get(), sizeof *result);
      iv->assign(iv_out.buffer, iv_out.buffer + iv_out.size);
      return 0;
    });
    done += n;
  }
  return out;
}

TPM2_ALG_ID Tpm::AesModeOf(const SealedBlob& key) {
  TPM2B_PUBLIC pub{};
  size_t off = 0;
  Check(Tss2_MU_TPM2B_PUBLIC_Unmarshal(key.pub.data(), key.pub.size(), &off, &pub),
        "unmarshal key public");
  if (pub.publicArea.type != TPM2_ALG_SYMCIPHER) return TPM2_ALG_NULL;
  return pub.publicArea.parameters.symDetail.sym.mode.aes;
}

bool Tpm::AesAllows(const SealedBlob& key, bool decrypt, TPM2_ALG_ID mode) {
  TPM2B_PUBLIC pub{};
  size_t off = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(key.pub.data(), key.pub.size(), &off, &pub) !=
          TSS2_RC_SUCCESS ||
      pub.publicArea.type != TPM2_ALG_SYMCIPHER)
    return false;
  const TPMA_OBJECT use = decrypt ? TPMA_OBJECT_DECRYPT : TPMA_OBJECT_SIGN_ENCRYPT;
  const TPM2_ALG_ID fixed = pub.publicArea.parameters.symDetail.sym.mode.aes;
  return (pub.publicArea.objectAttributes & use) != 0 && (fixed == TPM2_ALG_NULL || fixed == mode);
}

Secret Tpm::EcdhZ(const SealedBlob& key, ByteView auth, ByteView x, ByteView y) {
  auto lock = Enter();
  return Retry([&] {
    const CachedKey& k = LoadKey(key);
    TSS2_SYS_CONTEXT* sys = Sys();
    TPM2B_ECC_POINT in{};
    SetBuffer(in.point.x, x);
    SetBuffer(in.point.y, y);
    std::unique_ptr<FastSession> policy;
    FastSession& session = KeySession(key, &policy);
    Check(Tss2_Sys_ECDH_ZGen_Prepare(sys, k.object.handle(), &in), "TPM2_ECDH_ZGen prepare");
    const ResponseWipe wipe(*sys_);
    RunKey(session, key, TPM2_CC_ECDH_ZGen, k.object.name(), auth, true, "TPM2_ECDH_ZGen");
    auto out = std::make_unique<TPM2B_ECC_POINT>();
    Check(Tss2_Sys_ECDH_ZGen_Complete(sys, out.get()), "TPM2_ECDH_ZGen complete");
    Secret z = PadSecret(out->point.x.buffer, out->point.x.size, x.size());
    Wipe(out.get(), sizeof *out);
    return z;
  });
}

bool Tpm::HasAlgorithm(TPM2_ALG_ID alg) {
  auto lock = Enter();
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA caps{};
  Check(Tss2_Sys_GetCapability(Sys(), nullptr, TPM2_CAP_ALGS, alg, 1, &more, &caps, nullptr),
        "TPM2_GetCapability (algorithms)");
  return caps.capability == TPM2_CAP_ALGS && caps.data.algorithms.count == 1 &&
         caps.data.algorithms.algProperties[0].alg == alg;
}

bool Tpm::SupportsKey(const KeySpec& spec) {
  auto lock = Enter();
  TPMT_PUBLIC_PARMS parms{};
  const TPM2B_PUBLIC t = KeyTemplate(spec);
  parms.type = t.publicArea.type;
  parms.parameters = t.publicArea.parameters;
  return Tss2_Sys_TestParms(Sys(), nullptr, &parms, nullptr) == TSS2_RC_SUCCESS;
}

CreatedKey Tpm::CreateKey(const KeySpec& spec, ByteView auth) {
  auto lock = Enter();
  return Retry([&] {
    CreatedKey k;
    TPM2B_PUBLIC t = KeyTemplate(spec);
    if (!spec.pcrs.empty()) {
      // Bound to the boot state: no plain auth-value use, only the policy
      // PolicyPCR (values of now) then PolicyAuthValue.
      if (spec.kind != KeyKind::kRsa && spec.kind != KeyKind::kEcc)
        throw std::invalid_argument("a PCR policy is for RSA and EC keys");
      SetBuffer(t.publicArea.authPolicy, PcrKeyPolicy(spec.pcrs));
      t.publicArea.objectAttributes &= ~TPMA_OBJECT_USERWITHAUTH;
    }
    k.blob = CreateChild(t, {}, auth, "TPM2_Create (key)");
    k.blob.pcrs = spec.pcrs;
    TPM2B_PUBLIC pub{};
    size_t off = 0;
    Check(Tss2_MU_TPM2B_PUBLIC_Unmarshal(k.blob.pub.data(), k.blob.pub.size(), &off, &pub),
          "unmarshal key public");
    k.pub = ToKeyPublic(pub.publicArea);
    return k;
  });
}

FastSession& Tpm::KeySession(const SealedBlob& key, std::unique_ptr<FastSession>* policy) {
  if (key.pcrs.empty()) return Fast();
  *policy = StartPcrPolicy(key.pcrs, true);
  return **policy;
}

void Tpm::RunKey(FastSession& session, const SealedBlob& key, TPM2_CC command, ByteView names,
                 ByteView auth, bool decrypt_response, const char* what) {
  try {
    RunFast(session, command, names, auth, decrypt_response, what);
  } catch (const TpmError& e) {
    if (key.pcrs.empty() || e.base() != TPM2_RC_POLICY_FAIL) throw;
    throw KeyPolicyError(std::string(what) + ": the key is bound to PCRs " + key.pcrs.ToString() +
                       ", which no longer hold the values they had when it was generated: the "
                       "boot state changed; boot the configuration it was made under to use it",
                   e.rc);
  }
}

Bytes Tpm::SignEcdsa(const SealedBlob& key, ByteView auth, ByteView digest, TPM2_ALG_ID hash) {
  auto lock = Enter();
  return Retry([&] {
    const CachedKey& k = LoadKey(key);
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
    TSS2_SYS_CONTEXT* sys = Sys();
    std::unique_ptr<FastSession> policy;
    FastSession& session = KeySession(key, &policy);
    Check(Tss2_Sys_Sign_Prepare(sys, k.object.handle(), &d, &scheme, &validation), "TPM2_Sign prepare");
    RunKey(session, key, TPM2_CC_Sign, k.object.name(), auth, false, "TPM2_Sign (ECDSA)");
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
  auto lock = Enter();
  return Retry([&] {
    const CachedKey& k = LoadKey(key);
    TPM2B_PUBLIC_KEY_RSA in{};
    SetBuffer(in, input);
    TPMT_RSA_DECRYPT scheme{};
    scheme.scheme = TPM2_ALG_NULL;
    TPM2B_DATA label{};
    TSS2_SYS_CONTEXT* sys = Sys();
    std::unique_ptr<FastSession> policy;
    FastSession& session = KeySession(key, &policy);
    Check(Tss2_Sys_RSA_Decrypt_Prepare(sys, k.object.handle(), &in, &scheme, &label),
          "TPM2_RSA_Decrypt prepare");
    // The result may be a decrypted secret: the session encrypts it.
    const ResponseWipe wipe(*sys_);
    RunKey(session, key, TPM2_CC_RSA_Decrypt, k.object.name(), auth, true,
           "TPM2_RSA_Decrypt (raw)");
    auto msg = std::make_unique<TPM2B_PUBLIC_KEY_RSA>();
    Check(Tss2_Sys_RSA_Decrypt_Complete(sys, msg.get()), "TPM2_RSA_Decrypt complete");
    Secret out = PadSecret(msg->buffer, msg->size, input.size());
    Wipe(msg.get(), sizeof *msg);
    return out;
  });
}

}  // namespace tpmtoken::tpm

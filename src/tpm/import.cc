// Importing a private key (TPM 2.0 Part 1, 23.3 "Protected storage
// hierarchy: duplication", and Part 3, 13.3 TPM2_Import). The key goes in as a
// duplicate with an inner wrapper only: its sensitive area, prefixed with an
// integrity digest, encrypted with AES-128-CFB under a one-time key. That key
// is TPM2_Import's first parameter, which the salted session encrypts, so the
// private key never crosses the bus in clear. No outer wrapper (inSymSeed is
// empty) is needed for a key without encryptedDuplication.
#include <tss2/tss2_mu.h>

#include "crypto/ossl.h"
#include "tpm/fast_session.h"
#include "tpm/tpm.h"
#include "tpm/tpm_util.h"

namespace tpmtoken::tpm {
namespace {

// The template of a generated key of the same kind, less the attributes
// that say the TPM made it: not fixedTPM/fixedParent (it was made
// elsewhere), no authPolicy (so it can never be duplicated out again), NODA
// (its auth is random); the public part is the key's own.
TPM2B_PUBLIC ImportTemplate(const ImportedKey& key) {
  KeySpec spec{key.kind, static_cast<uint32_t>(key.modulus.size() * 8), key.curve,
               static_cast<uint32_t>(key.secret.size() * 8)};
  spec.sign = key.sign;
  spec.decrypt = key.decrypt;
  spec.hmac_hash = key.hmac_hash;
  spec.aes_mode = key.aes_mode;
  TPM2B_PUBLIC t = KeyTemplate(spec);
  t.publicArea.objectAttributes &=
      ~(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN);
  if (key.kind == KeyKind::kRsa) {
    t.publicArea.parameters.rsaDetail.exponent = key.exponent == 65537 ? 0 : key.exponent;
    SetBuffer(t.publicArea.unique.rsa, key.modulus);
  } else if (key.kind == KeyKind::kEcc) {
    SetBuffer(t.publicArea.unique.ecc.x, key.x);
    SetBuffer(t.publicArea.unique.ecc.y, key.y);
  }
  return t;
}

}  // namespace

CreatedKey Tpm::ImportKey(const ImportedKey& key, ByteView auth) {
  auto lock = Enter();
  TPM2B_PUBLIC pub = ImportTemplate(key);
  TPMT_SENSITIVE sens{};
  sens.sensitiveType = pub.publicArea.type;
  SetBuffer(sens.authValue, auth);
  const Secret seed = crypto::RandomSecret(32);
  SetBuffer(sens.seedValue, seed.view());
  switch (key.kind) {
    case KeyKind::kRsa: SetBuffer(sens.sensitive.rsa, key.secret.view()); break;
    case KeyKind::kEcc: SetBuffer(sens.sensitive.ecc, key.secret.view()); break;
    case KeyKind::kAes: SetBuffer(sens.sensitive.sym, key.secret.view()); break;
    case KeyKind::kHmac: SetBuffer(sens.sensitive.bits, key.secret.view()); break;
  }
  if (key.kind == KeyKind::kAes || key.kind == KeyKind::kHmac) {
    // A symmetric object's unique field is H(seedValue || key) (Part 1, 27.7.4).
    Bytes both;
    both.reserve(seed.size() + key.secret.size());  // no reallocation copy
    both.insert(both.end(), seed.view().begin(), seed.view().end());
    both.insert(both.end(), key.secret.view().begin(), key.secret.view().end());
    const Bytes h = crypto::Sha256(both);
    Wipe(both.data(), both.size());
    if (key.kind == KeyKind::kAes)
      SetBuffer(pub.publicArea.unique.sym, h);
    else
      SetBuffer(pub.publicArea.unique.keyedHash, h);
  }
  const Bytes name = NameOf(pub.publicArea);
  // dupSensitive: TPM2B_SENSITIVE, i.e. a size then the TPMT_SENSITIVE.
  Secret dup(2 + sizeof(TPMT_SENSITIVE));
  size_t off = 2;
  const TSS2_RC mrc = Tss2_MU_TPMT_SENSITIVE_Marshal(&sens, dup.data(), dup.size(), &off);
  Wipe(&sens, sizeof sens);
  Check(mrc, "marshal sensitive area");
  dup.data()[0] = static_cast<uint8_t>((off - 2) >> 8);
  dup.data()[1] = static_cast<uint8_t>(off - 2);
  const ByteView dup_sensitive = dup.view().first(off);

  // innerIntegrity = H(dupSensitive || Name) as a TPM2B, then encrypt
  // innerIntegrity || dupSensitive with AES-128-CFB, IV zero (Part 1, 23.3.2.3).
  Bytes to_hash(dup_sensitive.begin(), dup_sensitive.end());
  to_hash.insert(to_hash.end(), name.begin(), name.end());
  const Bytes integrity = crypto::Sha256(to_hash);
  Wipe(to_hash.data(), to_hash.size());
  Secret plain(2 + integrity.size() + dup_sensitive.size());
  plain.data()[0] = 0;
  plain.data()[1] = static_cast<uint8_t>(integrity.size());
  std::memcpy(plain.data() + 2, integrity.data(), integrity.size());
  std::memcpy(plain.data() + 2 + integrity.size(), dup_sensitive.data(), dup_sensitive.size());
  const Secret inner_key = crypto::RandomSecret(16);
  TPM2B_PRIVATE duplicate{};
  {
    crypto::CipherCtx ctx(EVP_CIPHER_CTX_new());
    const uint8_t iv[16] = {};
    int len = 0;
    int fin = 0;
    if (plain.size() > sizeof duplicate.buffer || !ctx ||
        EVP_EncryptInit_ex2(ctx.get(), crypto::Cipher("AES-128-CFB"), inner_key.data(), iv,
                            nullptr) != 1 ||
        EVP_EncryptUpdate(ctx.get(), duplicate.buffer, &len, plain.data(),
                          static_cast<int>(plain.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), duplicate.buffer + len, &fin) != 1)
      crypto::Fail("inner duplication wrapper");
    duplicate.size = static_cast<UINT16>(len + fin);
  }
  TPM2B_DATA encryption_key{};
  SetBuffer(encryption_key, inner_key.view());
  TPM2B_ENCRYPTED_SECRET no_seed{};
  TPMT_SYM_DEF_OBJECT sym{};
  sym.algorithm = TPM2_ALG_AES;
  sym.keyBits.aes = 128;
  sym.mode.aes = TPM2_ALG_CFB;
  CreatedKey created = Retry([&] {
    Primary();
    TSS2_SYS_CONTEXT* sys = Sys();
    FastSession& session = Fast();
    Check(Tss2_Sys_Import_Prepare(sys, primary_handle_, &encryption_key, &pub, &duplicate, &no_seed,
                                  &sym),
          "TPM2_Import prepare");
    // encryptionKey is the first parameter: the session encrypts it.
    RunFast(session, TPM2_CC_Import, primary_name_, {}, false, "TPM2_Import", true);
    auto priv = std::make_unique<TPM2B_PRIVATE>();
    Check(Tss2_Sys_Import_Complete(sys, priv.get()), "TPM2_Import complete");
    KeyPublic kp;
    kp.kind = key.kind;
    kp.modulus = key.modulus;
    kp.exponent = key.exponent;
    kp.curve = key.curve;
    kp.x = key.x;
    kp.y = key.y;
    return CreatedKey{{MarshalPublic(pub), MarshalPrivate(*priv)}, kp};
  });
  Wipe(&encryption_key, sizeof encryption_key);
  Wipe(&duplicate, sizeof duplicate);
  return created;
}

}  // namespace tpmtoken::tpm

#include "tpm/fast_session.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <tss2/tss2_mu.h>

#include <cstring>
#include <utility>

#include "crypto/kdf.h"
#include "crypto/ossl.h"
#include "crypto/keymath.h"
#include "crypto/pubkey.h"
#include "tpm/tpm.h"
#include "tpm/transport.h"
#include "util/log.h"

namespace tpmtoken::tpm {
namespace {

constexpr size_t kDigest = 32;

Bytes Hmac(ByteView key, std::initializer_list<ByteView> parts) {
  const Secret mac = crypto::HmacSha256(key, parts);
  return Bytes(mac.view().begin(), mac.view().end());
}

Bytes Be32(uint32_t v) { return EncodeBe32(v); }

void SetBufferRaw(TPM2B_ENCRYPTED_SECRET& b, ByteView data) {
  b.size = static_cast<UINT16>(data.size());
  std::memcpy(b.secret, data.data(), data.size());
}

// The TPM drops trailing zero octets of an authValue before using it.
ByteView TrimAuth(ByteView auth) {
  while (!auth.empty() && auth.back() == 0) auth = auth.first(auth.size() - 1);
  return auth;
}

}  // namespace

std::unique_ptr<FastSession> FastSession::Start(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE primary,
                                                ByteView x, ByteView y, TPM2_SE type) {
  TPM2B_ENCRYPTED_SECRET encrypted{};
  Secret salt;
  if (primary != 0) {
    // ECDH with the primary by point arithmetic in the private context: an
    // EVP_PKEY_CTX would consult OpenSSL's global ENGINE table, which a host
    // (openssl -engine pkcs11, mosquitto) may have pointed at a PKCS#11 engine.
    const auto shared = crypto::EcdhEphemeral(*crypto::CurveFromTpm(TPM2_ECC_NIST_P256), x, y);
    if (!shared)
      throw TpmError("the storage primary's public point is invalid", TSS2_ESYS_RC_BAD_VALUE);
    const Secret& z = shared->z;
    const ByteView eph_x = ByteView(shared->point).subspan(1, 32);
    const ByteView eph_y = ByteView(shared->point).subspan(33, 32);
    salt = crypto::KdfE("SHA256", z.view(), "SECRET", eph_x, x, 256);
    TPMS_ECC_POINT point{};
    point.x.size = 32;
    std::memcpy(point.x.buffer, eph_x.data(), 32);
    point.y.size = 32;
    std::memcpy(point.y.buffer, eph_y.data(), 32);
    size_t off = 0;
    if (Tss2_MU_TPMS_ECC_POINT_Marshal(&point, encrypted.secret, sizeof encrypted.secret, &off) !=
        TSS2_RC_SUCCESS)
      throw TpmError("marshal salt point", TSS2_ESYS_RC_BAD_VALUE);
    encrypted.size = static_cast<UINT16>(off);
  }
  return Begin(sys, primary, encrypted, salt, type);
}

namespace {
// MGF1 with SHA-256 (PKCS #1 v2.2, B.2.1).
Bytes Mgf1(ByteView seed, size_t len) {
  Bytes out;
  out.reserve(len + kDigest);
  for (uint32_t c = 0; out.size() < len; ++c) {
    Bytes in(seed.begin(), seed.end());
    const Bytes cb = Be32(c);
    in.insert(in.end(), cb.begin(), cb.end());
    const Bytes h = crypto::Sha256(in);
    out.insert(out.end(), h.begin(), h.end());
  }
  out.resize(len);
  return out;
}
}  // namespace

std::unique_ptr<FastSession> FastSession::StartRsa(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE key,
                                                   ByteView n) {
  static const uint8_t kE[] = {0x01, 0x00, 0x01};
  const auto pub = crypto::RsaPublic(n, kE);
  if (!pub || n.size() < 2 * kDigest + 2 + kDigest)
    throw TpmError("the EK's modulus is not a usable RSA key", TSS2_ESYS_RC_BAD_VALUE);
  const Secret salt = crypto::RandomSecret(kDigest);
  // EME-OAEP (PKCS #1 v2.2, 7.1.1) with the label "SECRET" and its NUL.
  const size_t k = n.size();
  const Bytes l_hash = crypto::Sha256(crypto::KdfLabel("SECRET"));
  Secret db(k - kDigest - 1);
  std::memcpy(db.data(), l_hash.data(), kDigest);
  db.data()[db.size() - salt.size() - 1] = 0x01;
  std::memcpy(db.data() + db.size() - salt.size(), salt.data(), salt.size());
  const Bytes seed = crypto::Random(kDigest);
  const Bytes db_mask = Mgf1(seed, db.size());
  for (size_t i = 0; i < db.size(); ++i) db.data()[i] ^= db_mask[i];
  Bytes masked_seed = Mgf1(db.view(), kDigest);
  for (size_t i = 0; i < kDigest; ++i) masked_seed[i] ^= seed[i];
  Secret em(k);
  std::memcpy(em.data() + 1, masked_seed.data(), kDigest);
  std::memcpy(em.data() + 1 + kDigest, db.data(), db.size());
  const auto c = crypto::RsaPublicOp(*pub, em.view());
  if (!c || c->size() > sizeof(TPM2B_ENCRYPTED_SECRET::secret))
    throw TpmError("RSA salt encryption", TSS2_ESYS_RC_BAD_VALUE);
  TPM2B_ENCRYPTED_SECRET encrypted{};
  SetBufferRaw(encrypted, *c);
  return Begin(sys, key, encrypted, salt, TPM2_SE_HMAC);
}

std::unique_ptr<FastSession> FastSession::StartBound(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE bind,
                                                     ByteView bind_auth, TPM2_SE type) {
  if (TrimAuth(bind_auth).empty())
    throw TpmError("a bound session needs a secret auth value", TSS2_ESYS_RC_BAD_VALUE);
  return Begin(sys, 0, {}, {}, type, bind, bind_auth);
}

std::unique_ptr<FastSession> FastSession::Begin(TSS2_SYS_CONTEXT* sys, TPM2_HANDLE primary,
                                                const TPM2B_ENCRYPTED_SECRET& encrypted,
                                                const Secret& salt, TPM2_SE type,
                                                TPM2_HANDLE bind, ByteView bind_auth) {
  std::unique_ptr<FastSession> s(new FastSession());
  s->sys_ = sys;
  TPM2B_NONCE caller{};
  caller.size = kDigest;
  crypto::RandomBytes(caller.buffer, kDigest);
  TPM2B_NONCE tpm_nonce{};
  tpm_nonce.size = sizeof tpm_nonce.buffer;
  const TPMT_SYM_DEF sym = {TPM2_ALG_AES, {.aes = 128}, {.aes = TPM2_ALG_CFB}};
  const TSS2_RC rc = Tss2_Sys_StartAuthSession(sys, primary ? primary : TPM2_RH_NULL,
                                               bind ? bind : TPM2_RH_NULL, nullptr, &caller,
                                               const_cast<TPM2B_ENCRYPTED_SECRET*>(&encrypted), type,
                                               &sym, TPM2_ALG_SHA256, &s->handle_, &tpm_nonce,
                                               nullptr);
  if (rc != TSS2_RC_SUCCESS) throw TpmError("TPM2_StartAuthSession (module session)", rc);
  if (tpm_nonce.size < 16)
    throw TpmError("TPM2_StartAuthSession: nonceTPM too short", TSS2_SYS_RC_MALFORMED_RESPONSE);
  s->nonce_tpm_.assign(tpm_nonce.buffer, tpm_nonce.buffer + tpm_nonce.size);
  // sessionKey = KDFa(SHA256, bind.auth || salt, "ATH", nonceTPM, nonceCaller);
  // a session neither bound nor salted has none (Part 1, 19.6.8). The TPM
  // drops trailing zero octets of the bind entity's auth value.
  if (primary != 0 || bind != 0) {
    const ByteView b = TrimAuth(bind_auth);
    Secret secret(b.size() + salt.size());
    if (!b.empty()) std::memcpy(secret.data(), b.data(), b.size());
    if (!salt.empty()) std::memcpy(secret.data() + b.size(), salt.data(), salt.size());
    s->key_ = crypto::KdfA("SHA256", secret.view(), "ATH", s->nonce_tpm_,
                           ByteView(caller.buffer, caller.size), 256);
  }
  return s;
}

FastSession::~FastSession() {
  if (!handle_) return;
  ResetSys(sys_);  // this may run while an error unwinds mid-command
  if (Tss2_Sys_FlushContext(sys_, handle_) != TSS2_RC_SUCCESS)
    log::Debug("flushing the module session failed");
}

bool IsBusy(TSS2_RC rc) {
  return rc == TPM2_RC_RETRY || rc == TPM2_RC_YIELDED || rc == TPM2_RC_TESTING;
}

namespace {
// AES-128-CFB over a parameter with key and IV from KDFa (Part 1, 21.3).
Secret CfbParam(ByteView hmac_key, ByteView newer, ByteView older, ByteView in, bool encrypt) {
  const Secret kiv = crypto::KdfA("SHA256", hmac_key, "CFB", newer, older, 256);
  Secret out(in.size());
  crypto::CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  int fin = 0;
  if (!ctx ||
      EVP_CipherInit_ex2(ctx.get(), crypto::Cipher("AES-128-CFB"), kiv.data(), kiv.data() + 16,
                         encrypt ? 1 : 0, nullptr) != 1 ||
      EVP_CipherUpdate(ctx.get(), out.data(), &len, in.data(), static_cast<int>(in.size())) != 1 ||
      EVP_CipherFinal_ex(ctx.get(), out.data() + len, &fin) != 1)
    crypto::Fail("session parameter encryption");
  return out;
}
}  // namespace

TSS2_RC FastSession::Execute(TPM2_CC command, ByteView names, ByteView auth,
                             bool decrypt_response, bool encrypt_command, bool audit,
                             const SysContext* sys, const TPMS_AUTH_COMMAND* second) {
  const uint8_t attrs = (last_ ? 0 : TPMA_SESSION_CONTINUESESSION) |
                        (decrypt_response ? TPMA_SESSION_ENCRYPT : 0) |
                        (encrypt_command ? TPMA_SESSION_DECRYPT : 0) |
                        (audit ? TPMA_SESSION_AUDIT : 0);
  const uint8_t attr_byte[1] = {attrs};
  // hmac_key = sessionKey || authValue: a secret, wiped on every way out.
  const ByteView trimmed = TrimAuth(auth);
  Secret hmac_key(key_.size() + trimmed.size());
  if (!key_.empty()) std::memcpy(hmac_key.data(), key_.data(), key_.size());
  if (!trimmed.empty()) std::memcpy(hmac_key.data() + key_.size(), trimmed.data(), trimmed.size());
  const ByteView hk = hmac_key.view();
  Bytes nonce_caller = crypto::Random(kDigest);
  if (encrypt_command) {
    // The command's first parameter, encrypted with nonceNewer = nonceCaller.
    size_t len = 0;
    const uint8_t* param = nullptr;
    if (TSS2_RC r = Tss2_Sys_GetDecryptParam(sys_, &len, &param); r != TSS2_RC_SUCCESS) return r;
    const Secret enc = CfbParam(hk, nonce_caller, nonce_tpm_, ByteView(param, len), true);
    if (TSS2_RC r = Tss2_Sys_SetDecryptParam(sys_, enc.size(), enc.data()); r != TSS2_RC_SUCCESS)
      return r;
  }

  size_t cp_len = 0;
  const uint8_t* cp = nullptr;
  if (TSS2_RC rc = Tss2_Sys_GetCpBuffer(sys_, &cp_len, &cp); rc != TSS2_RC_SUCCESS) return rc;
  const Bytes cc = Be32(command);
  const Bytes cp_hash = crypto::Sha256([&] {
    Bytes b(cc);
    b.insert(b.end(), names.begin(), names.end());
    b.insert(b.end(), cp, cp + cp_len);
    return b;
  }());

  TSS2L_SYS_AUTH_COMMAND cmd{};
  cmd.count = second ? 2 : 1;
  if (second) cmd.auths[1] = *second;
  cmd.auths[0].sessionHandle = handle_;
  cmd.auths[0].nonce.size = kDigest;
  std::memcpy(cmd.auths[0].nonce.buffer, nonce_caller.data(), kDigest);
  cmd.auths[0].sessionAttributes = attrs;
  const Bytes cmd_hmac = Hmac(hk, {cp_hash, nonce_caller, nonce_tpm_, attr_byte});
  cmd.auths[0].hmac.size = kDigest;
  std::memcpy(cmd.auths[0].hmac.buffer, cmd_hmac.data(), kDigest);
  if (TSS2_RC rc = Tss2_Sys_SetCmdAuths(sys_, &cmd); rc != TSS2_RC_SUCCESS) return rc;

  // A TPM that is busy answers RETRY, YIELDED or TESTING without running the
  // command; the same bytes go again (ESAPI does the same).
  TSS2_RC rc = Tss2_Sys_Execute(sys_);
  const bool resend = !std::exchange(no_resend_, false);
  for (int attempt = 0; resend && attempt < 20 && IsBusy(rc); ++attempt) rc = Tss2_Sys_Execute(sys_);
  // On any failure the caller drops this session: the nonces may be out of
  // step with the TPM's.
  if (rc != TSS2_RC_SUCCESS) return rc;
  if (last_) handle_ = 0;  // the TPM flushed it
  TSS2L_SYS_AUTH_RESPONSE rsp{};
  // A success without a session area (its tag altered to "no sessions")
  // makes tpm2-tss answer "called in the wrong order": the response is
  // what is wrong.
  if (Tss2_Sys_GetRspAuths(sys_, &rsp) != TSS2_RC_SUCCESS) return TSS2_SYS_RC_MALFORMED_RESPONSE;
  if (rsp.count != cmd.count || rsp.auths[0].nonce.size < 16 || rsp.auths[0].hmac.size != kDigest)
    return TSS2_SYS_RC_MALFORMED_RESPONSE;
  const Bytes nonce_tpm(rsp.auths[0].nonce.buffer,
                        rsp.auths[0].nonce.buffer + rsp.auths[0].nonce.size);
  size_t rp_len = 0;
  const uint8_t* rp = nullptr;
  if (Tss2_Sys_GetRpBuffer(sys_, &rp_len, &rp) != TSS2_RC_SUCCESS)
    return TSS2_SYS_RC_MALFORMED_RESPONSE;
  // parameterSize is the response's claim: it must fit in what arrived.
  if (sys && !sys->InResponse(rp, rp_len)) return TSS2_SYS_RC_MALFORMED_RESPONSE;
  const Bytes rp_hash = crypto::Sha256([&] {
    Bytes b = Be32(0);  // responseCode: success
    b.insert(b.end(), cc.begin(), cc.end());
    b.insert(b.end(), rp, rp + rp_len);
    return b;
  }());
  const uint8_t rsp_attr[1] = {rsp.auths[0].sessionAttributes};
  const Bytes expect = Hmac(hk, {rp_hash, nonce_tpm, nonce_caller, rsp_attr});
  if (CRYPTO_memcmp(expect.data(), rsp.auths[0].hmac.buffer, kDigest) != 0) {
    log::Error("the TPM's response HMAC does not verify: the response was altered on the way");
    return TSS2_SYS_RC_MALFORMED_RESPONSE;
  }
  nonce_tpm_ = nonce_tpm;
  if (decrypt_response) {
    // The response's first parameter, with nonceNewer = nonceTPM.
    size_t enc_len = 0;
    const uint8_t* enc = nullptr;
    if (TSS2_RC r = Tss2_Sys_GetEncryptParam(sys_, &enc_len, &enc); r != TSS2_RC_SUCCESS) return r;
    // Its size field is inside the verified parameters; still, it must lie
    // within them before anything is written.
    if (enc < rp || enc_len > rp_len || static_cast<size_t>(enc - rp) > rp_len - enc_len)
      return TSS2_SYS_RC_MALFORMED_RESPONSE;
    const Secret plain = CfbParam(hk, nonce_tpm_, nonce_caller, ByteView(enc, enc_len), false);
    if (TSS2_RC r = Tss2_Sys_SetEncryptParam(sys_, plain.size(), plain.data()); r != TSS2_RC_SUCCESS)
      return r;
  }
  return TSS2_RC_SUCCESS;
}

}  // namespace tpmtoken::tpm

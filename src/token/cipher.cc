// Encryption and decryption (PKCS#11 2.40 sections 5.8-5.9): RSA encrypts in
// software and decrypts in the TPM; AES runs in the TPM both ways. A result
// that a length query or a short buffer asked for is kept for the retry, so
// the retry repeats no TPM work and gives the same bytes.
#include <cstring>

#include "token/key_util.h"
#include "token/module.h"
#include "util/log.h"

namespace tpmtoken {

CK_RV AesInTpm(const char* call, bool decrypt, const std::function<CK_RV()>& step) {
  try {
    return step();
  } catch (const tpm::TpmError& e) {
    if (e.base() == TPM2_RC_MODE) {
      log::Warn(call, ": the AES key's TPM object runs CBC decryption only (it was made for "
                "decryption without CTR); the TPM refused TPM2_EncryptDecrypt in another mode. "
                "Make a new key with the use");
      return CKR_KEY_FUNCTION_NOT_PERMITTED;
    }
    if (e.base() != TPM2_RC_ATTRIBUTES) throw;
    log::Warn(call, ": the AES key's TPM object was made without ",
              decrypt ? "decryption (CKA_DECRYPT and CKA_UNWRAP"
                      : "encryption (CKA_ENCRYPT and CKA_WRAP",
              " were false, or their mechanisms not allowed, when it was made); the TPM refused "
              "TPM2_EncryptDecrypt. Make a new key with the use");
    return CKR_KEY_FUNCTION_NOT_PERMITTED;
  }
}

mech::AesOp::TpmAes Module::AesWith(const Object& key, bool decrypt) {
  const KeyMaterial* k = key.key.get();
  return [this, k, decrypt](TPM2_ALG_ID mode, Bytes* iv, ByteView in) {
    return tpm_->AesCrypt(k->blob, k->auth.view(), decrypt, mode, iv, in);
  };
}

CK_RV Module::BeginAes(const CK_MECHANISM* mech, std::shared_ptr<Object> key, bool decrypt,
                       std::unique_ptr<CipherState>* out) {
  if (key->attrs.Ulong(CKA_CLASS) != CKO_SECRET_KEY || key->attrs.Ulong(CKA_KEY_TYPE) != CKK_AES ||
      !key->key)
    return CKR_KEY_TYPE_INCONSISTENT;
  if (!key->attrs.Bool(decrypt ? CKA_DECRYPT : CKA_ENCRYPT)) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  if (!Allowed(key->attrs, mech->mechanism)) return CKR_MECHANISM_INVALID;
  auto state = std::make_unique<CipherState>();
  if (CK_RV rv = mech::AesOp::Create(*mech, decrypt, &state->aes); rv != CKR_OK) return rv;
  state->key = std::move(key);
  *out = std::move(state);
  return CKR_OK;
}

CK_RV Module::EncryptInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE key) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (CK_RV rv = s->encrypt.CanStart(); rv != CKR_OK) return rv;
  auto o = Resolve(*s, key);
  if (!o) return CKR_KEY_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_ENCRYPT)) return CKR_MECHANISM_INVALID;
  if (mech::IsAes(mech->mechanism)) {
    std::unique_ptr<CipherState> aes;
    return s->encrypt.Started(BeginAes(mech, std::move(o), false, &aes), std::move(aes));
  }
  if (o->attrs.Ulong(CKA_CLASS) != CKO_PUBLIC_KEY || o->attrs.Ulong(CKA_KEY_TYPE) != CKK_RSA)
    return CKR_KEY_TYPE_INCONSISTENT;
  if (!o->attrs.Bool(CKA_ENCRYPT)) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  if (!Allowed(o->attrs, mech->mechanism)) return CKR_MECHANISM_INVALID;
  auto state = std::make_unique<CipherState>();
  if (!(state->public_key = PublicKeyOf(o->attrs))) return CKR_KEY_TYPE_INCONSISTENT;
  const size_t bits = BitLength(*o->attrs.Find(CKA_MODULUS));
  if (CK_RV rv = mech::RsaCipherOp::Create(*mech, bits, &state->op); rv != CKR_OK) return rv;
  state->key = std::move(o);
  return s->encrypt.Started(CKR_OK, std::move(state));
}

CK_RV Module::DecryptInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE key) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (CK_RV rv = s->decrypt.CanStart(); rv != CKR_OK) return rv;
  auto o = Resolve(*s, key);
  if (!o) return CKR_KEY_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_DECRYPT)) return CKR_MECHANISM_INVALID;
  if (mech::IsAes(mech->mechanism)) {
    std::unique_ptr<CipherState> aes;
    return s->decrypt.Started(BeginAes(mech, std::move(o), true, &aes), std::move(aes));
  }
  if (o->attrs.Ulong(CKA_CLASS) != CKO_PRIVATE_KEY || o->attrs.Ulong(CKA_KEY_TYPE) != CKK_RSA ||
      !o->key)
    return CKR_KEY_TYPE_INCONSISTENT;
  if (!o->attrs.Bool(CKA_DECRYPT)) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  if (!Allowed(o->attrs, mech->mechanism)) return CKR_MECHANISM_INVALID;
  auto state = std::make_unique<CipherState>();
  const size_t bits = BitLength(*o->attrs.Find(CKA_MODULUS));
  if (CK_RV rv = mech::RsaCipherOp::Create(*mech, bits, &state->op); rv != CKR_OK) return rv;
  state->needs_context_login = o->attrs.Bool(CKA_ALWAYS_AUTHENTICATE);
  state->key = std::move(o);
  return s->decrypt.Started(CKR_OK, std::move(state));
}

// Single-part, or the final step of multi-part (data then empty): computes
// the whole result once, then hands it out under the length-query rules.
CK_RV Module::CipherFinish(CipherState& st, bool decrypt, ByteView data, CK_BYTE* out,
                           CK_ULONG* out_len) {
  if (!st.plain) {
    if (st.needs_context_login) return CKR_USER_NOT_LOGGED_IN;
    CK_RV rv = CKR_OK;
    Secret result;
    if (st.aes) {
      const auto aes = AesWith(*st.key, decrypt);
      Secret head, tail;
      rv = AesInTpm(decrypt ? "C_Decrypt" : "C_Encrypt", decrypt, [&] {
        CK_RV r = st.aes->Update(data, aes, &head);
        return r == CKR_OK ? st.aes->Final(aes, &tail) : r;
      });
      if (rv == CKR_OK) {
        Bytes all(head.view().begin(), head.view().end());
        all.insert(all.end(), tail.view().begin(), tail.view().end());
        result = Secret(all);
        Wipe(all.data(), all.size());
      }
    } else if (decrypt) {
      st.op->Update(data);
      const KeyMaterial& key = *st.key->key;
      const Bytes& modulus = *st.key->attrs.Find(CKA_MODULUS);
      const Secret rejection = RejectionKey(key.auth.view(), modulus);
      rv = st.op->Decrypt(
          {[&](ByteView in) { return tpm_->RsaPrivate(key.blob, key.auth.view(), in); }, modulus,
           rejection.view()},
          &result);
    } else {
      st.op->Update(data);
      Bytes cipher;
      rv = st.op->Encrypt(*st.public_key, &cipher);
      result = Secret(cipher);
    }
    if (rv != CKR_OK) return rv;  // the slot ends the operation
    st.plain = std::move(result);
  }
  bool proceed = false;
  const CK_RV query = QueryOrFits(st.plain->size(), out, out_len, &proceed);
  if (!proceed) return query;  // the result waits for the retry
  if (!st.plain->empty()) std::memcpy(out, st.plain->data(), st.plain->size());
  *out_len = st.plain->size();
  return CKR_OK;
}

CK_RV Module::CipherUpdate(CipherState& st, bool decrypt, ByteView data, CK_BYTE* out,
                           CK_ULONG* out_len) {
  if (!st.aes) {  // RSA output comes whole, at the end
    st.op->Update(data);
    *out_len = 0;
    return CKR_OK;
  }
  bool proceed = false;
  const CK_RV query = QueryOrFits(st.aes->UpdateLength(data.size()), out, out_len, &proceed);
  if (!proceed) return query;
  Secret part;
  if (CK_RV rv = AesInTpm(decrypt ? "C_DecryptUpdate" : "C_EncryptUpdate", decrypt,
                          [&] { return st.aes->Update(data, AesWith(*st.key, decrypt), &part); });
      rv != CKR_OK)
    return rv;
  if (!part.empty()) std::memcpy(out, part.data(), part.size());
  *out_len = part.size();
  return CKR_OK;
}

CK_RV Module::CipherCall(CK_SESSION_HANDLE h, bool decrypt, OpCall call, ByteView data,
                         CK_BYTE* out, CK_ULONG* out_len) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  OperationSlot<CipherState>& slot = decrypt ? s->decrypt : s->encrypt;
  std::shared_ptr<Object> key;  // a finished AES or RSA decryption counts a key use
  const CK_RV rv = slot.Run(call, !out, [&](CipherState& st) {
    if (st.aes || decrypt) key = st.key;
    return call == OpCall::kUpdate ? CipherUpdate(st, decrypt, data, out, out_len)
                                   : CipherFinish(st, decrypt, data, out, out_len);
  });
  if (rv == CKR_OK && !slot && key) CountUse(*s, *key);
  return rv;
}

CK_RV Module::Encrypt(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len) {
  return CipherCall(h, false, OpCall::kSingle, data, out, out_len);
}
CK_RV Module::EncryptUpdate(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len) {
  return CipherCall(h, false, OpCall::kUpdate, data, out, out_len);
}
CK_RV Module::EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len) {
  return CipherCall(h, false, OpCall::kFinal, {}, out, out_len);
}
CK_RV Module::Decrypt(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len) {
  return CipherCall(h, true, OpCall::kSingle, data, out, out_len);
}
CK_RV Module::DecryptUpdate(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len) {
  return CipherCall(h, true, OpCall::kUpdate, data, out, out_len);
}
CK_RV Module::DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len) {
  return CipherCall(h, true, OpCall::kFinal, {}, out, out_len);
}

}  // namespace tpmtoken

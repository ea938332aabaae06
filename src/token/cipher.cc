// Encryption and decryption (PKCS#11 2.40 sections 5.8-5.9): RSA encrypts in
// software and decrypts in the TPM; AES runs in the TPM both ways. A result
// that a length query or a short buffer asked for is kept for the retry, so
// the retry repeats no TPM work and gives the same bytes.
#include <cstring>

#include "token/key_util.h"
#include "token/module.h"

namespace tpmtoken {

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
  if (s->encrypt) return CKR_OPERATION_ACTIVE;
  auto o = Resolve(*s, key);
  if (!o) return CKR_KEY_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_ENCRYPT)) return CKR_MECHANISM_INVALID;
  if (mech::IsAes(mech->mechanism)) return BeginAes(mech, std::move(o), false, &s->encrypt);
  if (o->attrs.Ulong(CKA_CLASS) != CKO_PUBLIC_KEY || o->attrs.Ulong(CKA_KEY_TYPE) != CKK_RSA)
    return CKR_KEY_TYPE_INCONSISTENT;
  if (!o->attrs.Bool(CKA_ENCRYPT)) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  if (!Allowed(o->attrs, mech->mechanism)) return CKR_MECHANISM_INVALID;
  auto state = std::make_unique<CipherState>();
  if (!(state->public_key = PublicKeyOf(o->attrs))) return CKR_KEY_TYPE_INCONSISTENT;
  const size_t bits = BitLength(*o->attrs.Find(CKA_MODULUS));
  if (CK_RV rv = mech::RsaCipherOp::Create(*mech, bits, &state->op); rv != CKR_OK) return rv;
  state->key = std::move(o);
  s->encrypt = std::move(state);
  return CKR_OK;
}

CK_RV Module::DecryptInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE key) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (s->decrypt) return CKR_OPERATION_ACTIVE;
  auto o = Resolve(*s, key);
  if (!o) return CKR_KEY_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_DECRYPT)) return CKR_MECHANISM_INVALID;
  if (mech::IsAes(mech->mechanism)) return BeginAes(mech, std::move(o), true, &s->decrypt);
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
  s->decrypt = std::move(state);
  return CKR_OK;
}

// Single-part, or the final step of multi-part (data then empty): computes
// the whole result once, then hands it out under the length-query rules.
CK_RV Module::CipherFinish(std::unique_ptr<CipherState>& st, bool decrypt, ByteView data,
                           CK_BYTE* out, CK_ULONG* out_len) {
  if (!st->plain) {
    if (st->needs_context_login) return CKR_USER_NOT_LOGGED_IN;
    CK_RV rv = CKR_OK;
    Secret result;
    if (st->aes) {
      const auto aes = AesWith(*st->key, decrypt);
      Secret head, tail;
      rv = st->aes->Update(data, aes, &head);
      if (rv == CKR_OK) rv = st->aes->Final(aes, &tail);
      if (rv == CKR_OK) {
        Bytes all(head.view().begin(), head.view().end());
        all.insert(all.end(), tail.view().begin(), tail.view().end());
        result = Secret(all);
        Wipe(all.data(), all.size());
      }
    } else if (decrypt) {
      st->op->Update(data);
      const KeyMaterial& key = *st->key->key;
      const Bytes& modulus = *st->key->attrs.Find(CKA_MODULUS);
      const Secret rejection = RejectionKey(key.auth.view(), modulus);
      rv = st->op->Decrypt(
          {[&](ByteView in) { return tpm_->RsaPrivate(key.blob, key.auth.view(), in); }, modulus,
           rejection.view()},
          &result);
    } else {
      st->op->Update(data);
      Bytes cipher;
      rv = st->op->Encrypt(*st->public_key, &cipher);
      result = Secret(cipher);
    }
    if (rv != CKR_OK) {
      st.reset();
      return rv;
    }
    st->plain = std::move(result);
  }
  bool proceed = false;
  const CK_RV query = QueryOrFits(st->plain->size(), out, out_len, &proceed);
  if (!proceed) return query;  // the result waits for the retry
  if (!st->plain->empty()) std::memcpy(out, st->plain->data(), st->plain->size());
  *out_len = st->plain->size();
  st.reset();
  return CKR_OK;
}

CK_RV Module::CipherUpdate(std::unique_ptr<CipherState>& st, bool decrypt, ByteView data,
                           CK_BYTE* out, CK_ULONG* out_len) {
  if (!st->aes) {  // RSA output comes whole, at the end
    st->op->Update(data);
    *out_len = 0;
    return CKR_OK;
  }
  bool proceed = false;
  const CK_RV query = QueryOrFits(st->aes->UpdateLength(data.size()), out, out_len, &proceed);
  if (!proceed) return query;
  Secret part;
  if (CK_RV rv = st->aes->Update(data, AesWith(*st->key, decrypt), &part); rv != CKR_OK) {
    st.reset();
    return rv;
  }
  if (!part.empty()) std::memcpy(out, part.data(), part.size());
  *out_len = part.size();
  return CKR_OK;
}

#define TPMTOKEN_CIPHER_ENTRY(Name, member, decrypt, call)        \
  CK_RV Module::Name {                                           \
    Session* s = FindSession(h);                                 \
    if (!s) return CKR_SESSION_HANDLE_INVALID;                   \
    if (!s->member) return CKR_OPERATION_NOT_INITIALIZED;        \
    /* a finished AES or RSA-decrypt operation counts a key use */ \
    const std::shared_ptr<Object> key =                          \
        (s->member->aes || decrypt) ? s->member->key : nullptr;  \
    const CK_RV rv = call;                                       \
    if (rv == CKR_OK && !s->member && key) CountUse(*s, *key);   \
    return rv;                                                   \
  }
TPMTOKEN_CIPHER_ENTRY(Encrypt(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len),
                      encrypt, false, CipherFinish(s->encrypt, false, data, out, out_len))
TPMTOKEN_CIPHER_ENTRY(EncryptUpdate(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out,
                                    CK_ULONG* out_len),
                      encrypt, false, CipherUpdate(s->encrypt, false, data, out, out_len))
TPMTOKEN_CIPHER_ENTRY(EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len), encrypt,
                      false, CipherFinish(s->encrypt, false, {}, out, out_len))
TPMTOKEN_CIPHER_ENTRY(Decrypt(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len),
                      decrypt, true, CipherFinish(s->decrypt, true, data, out, out_len))
TPMTOKEN_CIPHER_ENTRY(DecryptUpdate(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out,
                                    CK_ULONG* out_len),
                      decrypt, true, CipherUpdate(s->decrypt, true, data, out, out_len))
TPMTOKEN_CIPHER_ENTRY(DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len), decrypt,
                      true, CipherFinish(s->decrypt, true, {}, out, out_len))
#undef TPMTOKEN_CIPHER_ENTRY

}  // namespace tpmtoken

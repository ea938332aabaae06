// RSA encryption (software, public key) and decryption (TPM, private key)
// (PKCS#11 2.40 sections 5.8-5.9).
#include <cstring>

#include "token/key_util.h"
#include "token/module.h"

namespace tpmtoken {

CK_RV Module::EncryptInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE key) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (s->encrypt) return CKR_OPERATION_ACTIVE;
  auto o = Resolve(*s, key);
  if (!o) return CKR_KEY_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_ENCRYPT)) return CKR_MECHANISM_INVALID;
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

CK_RV Module::Encrypt(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->encrypt) return CKR_OPERATION_NOT_INITIALIZED;
  bool proceed = false;
  const CK_RV query = QueryOrFits(s->encrypt->op->ModulusBytes(), out, out_len, &proceed);
  if (!proceed) return query;
  std::unique_ptr<CipherState> state = std::move(s->encrypt);
  state->op->Update(data);
  Bytes cipher;
  if (CK_RV rv = state->op->Encrypt(state->public_key.get(), &cipher); rv != CKR_OK) return rv;
  std::memcpy(out, cipher.data(), cipher.size());
  *out_len = cipher.size();
  return CKR_OK;
}

CK_RV Module::EncryptUpdate(CK_SESSION_HANDLE h, ByteView data, CK_ULONG* out_len) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->encrypt) return CKR_OPERATION_NOT_INITIALIZED;
  s->encrypt->op->Update(data);  // RSA output comes whole, at the end
  *out_len = 0;
  return CKR_OK;
}

CK_RV Module::EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len) {
  return Encrypt(h, {}, out, out_len);
}

CK_RV Module::DecryptInit(CK_SESSION_HANDLE h, const CK_MECHANISM* mech, CK_OBJECT_HANDLE key) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (s->decrypt) return CKR_OPERATION_ACTIVE;
  auto o = Resolve(*s, key);
  if (!o) return CKR_KEY_HANDLE_INVALID;
  const mech::MechEntry* entry = mech::Lookup(table_, mech->mechanism);
  if (!entry || !(entry->info.flags & CKF_DECRYPT)) return CKR_MECHANISM_INVALID;
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

CK_RV Module::Decrypt(CK_SESSION_HANDLE h, ByteView data, CK_BYTE* out, CK_ULONG* out_len) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->decrypt) return CKR_OPERATION_NOT_INITIALIZED;
  CipherState& st = *s->decrypt;
  if (!st.plain && st.needs_context_login) return CKR_USER_NOT_LOGGED_IN;
  if (!st.plain) {
    st.op->Update(data);
    const KeyMaterial& key = *st.key->key;
    Secret plain;
    const CK_RV rv = st.op->Decrypt(
        [&](ByteView in) { return tpm_->RsaPrivate(key.blob, key.auth.view(), in); }, &plain);
    if (rv != CKR_OK) {
      s->decrypt.reset();
      return rv;
    }
    st.plain = std::move(plain);
  }
  bool proceed = false;
  const CK_RV query = QueryOrFits(st.plain->size(), out, out_len, &proceed);
  if (!proceed) return query;  // the result waits for the retry
  if (!st.plain->empty()) std::memcpy(out, st.plain->data(), st.plain->size());
  *out_len = st.plain->size();
  s->decrypt.reset();
  return CKR_OK;
}

CK_RV Module::DecryptUpdate(CK_SESSION_HANDLE h, ByteView data, CK_ULONG* out_len) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->decrypt) return CKR_OPERATION_NOT_INITIALIZED;
  s->decrypt->op->Update(data);
  *out_len = 0;
  return CKR_OK;
}

CK_RV Module::DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE* out, CK_ULONG* out_len) {
  return Decrypt(h, {}, out, out_len);
}

}  // namespace tpmtoken

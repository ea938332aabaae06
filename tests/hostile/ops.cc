// The campaign's operations on the token (each checked against software
// where it returns CKR_OK) and the token it starts from.
#include <sys/wait.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "campaign.h"

namespace campaign {

CK_RV Campaign::Sign(CK_MECHANISM_TYPE m, CK_OBJECT_HANDLE k, const Bytes& in, Bytes* out) {
  CK_MECHANISM mech = {m, nullptr, 0};
  if (CK_RV rv = f_->C_SignInit(s_, &mech, k); rv != CKR_OK) return rv;
  out->resize(512);
  CK_ULONG len = out->size();
  const CK_RV rv = f_->C_Sign(s_, const_cast<CK_BYTE*>(in.data()), in.size(), out->data(), &len);
  out->resize(rv == CKR_OK ? len : 0);
  return rv;
}

CK_RV Campaign::Crypt(bool enc, CK_MECHANISM* m, CK_OBJECT_HANDLE k, const Bytes& in, Bytes* out) {
  CK_RV rv = enc ? f_->C_EncryptInit(s_, m, k) : f_->C_DecryptInit(s_, m, k);
  if (rv != CKR_OK) return rv;
  out->resize(in.size() + 512);
  CK_ULONG len = out->size();
  auto* data = const_cast<CK_BYTE*>(in.data());
  rv = enc ? f_->C_Encrypt(s_, data, in.size(), out->data(), &len)
           : f_->C_Decrypt(s_, data, in.size(), out->data(), &len);
  out->resize(rv == CKR_OK ? len : 0);
  return rv;
}

// After a PIN change reported failure, which PIN holds? Asked on an honest
// bus; a wrong guess is a deliberate try that the counter check allows for.
void Campaign::PinAfterFailure(int next, const std::string& what) {
  SetRandom(false);
  Reset();
  if (Init() == CKR_OK) {
    const CK_RV old_rv = f_->C_Login(s_, CKU_USER, (CK_UTF8CHAR_PTR)kPins[pin_], 4);
    if (old_rv == CKR_PIN_INCORRECT) {
      ++deliberate_wrong_;
      ++setpin_misreports_;
      if (f_->C_Login(s_, CKU_USER, (CK_UTF8CHAR_PTR)kPins[next], 4) == CKR_OK) {
        std::printf("a PIN change reported failure (%s) but the PIN was changed\n", what.c_str());
        pin_ = next;
      } else {
        std::printf("after a PIN change reported failure (%s) neither PIN logs in\n", what.c_str());
      }
    }
  }
  SetRandom(true);
}

CK_RV Campaign::Op(int which, std::string* name) {
  Bytes msg(1 + rng_() % 100);
  for (auto& b : msg) b = static_cast<CK_BYTE>(rng_());
  Bytes out;
  CK_RV rv = CKR_OK;
  switch (which) {
    case 0: {
      *name = "sign-rsa";
      rv = Sign(CKM_SHA256_RSA_PKCS, rsa_, msg, &out);
      if (rv == CKR_OK && !VerifyRsa(rsa_n_, rsa_e_, msg, out)) Wrong("RSA signature does not verify");
      break;
    }
    case 1: {
      *name = "sign-ec";
      rv = Sign(CKM_ECDSA_SHA256, ec_, msg, &out);
      if (rv == CKR_OK && !VerifyEc(ec_point_, msg, out)) Wrong("ECDSA signature does not verify");
      break;
    }
    case 2: {
      *name = "decrypt-rsa";
      msg.resize(32);
      const Bytes ct = RsaEncrypt(rsa_n_, rsa_e_, msg);
      CK_MECHANISM m = {CKM_RSA_PKCS, nullptr, 0};
      rv = Crypt(false, &m, rsa_, ct, &out);
      if (rv == CKR_OK && out != msg) Wrong("RSA PKCS#1 decryption differs from the plaintext");
      break;
    }
    case 3: {
      *name = "aes-known";
      msg.resize(64);
      Bytes iv(16);
      for (auto& b : iv) b = static_cast<CK_BYTE>(rng_());
      CK_MECHANISM m = {CKM_AES_CBC, iv.data(), iv.size()};
      rv = Crypt(true, &m, aes_known_, msg, &out);
      if (rv == CKR_OK && out != AesCbc(aes_value_, iv, msg)) Wrong("AES-CBC differs from OpenSSL");
      break;
    }
    case 4: {
      *name = "aes-roundtrip";
      msg.resize(32);
      CK_MECHANISM m = {CKM_AES_ECB, nullptr, 0};
      Bytes back;
      rv = Crypt(true, &m, aes_gen_, msg, &out);
      if (rv == CKR_OK) rv = Crypt(false, &m, aes_gen_, out, &back);
      if (rv == CKR_OK && back != msg) Wrong("AES-ECB round trip with a generated key differs");
      break;
    }
    case 5: {
      *name = "hmac";
      rv = Sign(CKM_SHA256_HMAC, hmac_, msg, &out);
      unsigned char mac[32];
      unsigned int len = 0;
      HMAC(EVP_sha256(), hmac_value_.data(), 32, msg.data(), msg.size(), mac, &len);
      if (rv == CKR_OK && out != Bytes(mac, mac + len)) Wrong("HMAC-SHA256 differs from OpenSSL");
      break;
    }
    case 6: {
      *name = "keygen-ec";
      CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
      CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
      CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
      CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, p256, sizeof p256}, {CKA_TOKEN, &no, 1}};
      CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &no, 1}, {CKA_SIGN, &yes, 1}};
      CK_OBJECT_HANDLE pub = 0, priv = 0;
      rv = f_->C_GenerateKeyPair(s_, &m, pub_t, 2, priv_t, 2, &pub, &priv);
      Bytes der;
      if (rv == CKR_OK) rv = Attr(pub, CKA_EC_POINT, &der);
      if (rv == CKR_OK) rv = Sign(CKM_ECDSA_SHA256, priv, msg, &out);
      if (rv == CKR_OK && (der.size() != 67 || !VerifyEc(Bytes(der.begin() + 2, der.end()), msg, out)))
        Wrong("ECDSA signature of a generated session key does not verify");
      if (pub) f_->C_DestroyObject(s_, pub);
      if (priv) f_->C_DestroyObject(s_, priv);
      break;
    }
    case 7: {
      *name = "keygen-aes";
      CK_MECHANISM m = {CKM_AES_KEY_GEN, nullptr, 0};
      CK_ULONG len = 32;
      CK_BBOOL no = CK_FALSE;
      CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &no, 1}};
      CK_OBJECT_HANDLE k = 0;
      rv = f_->C_GenerateKey(s_, &m, t, 2, &k);
      msg.resize(16);
      CK_MECHANISM ecb = {CKM_AES_ECB, nullptr, 0};
      Bytes back;
      if (rv == CKR_OK) rv = Crypt(true, &ecb, k, msg, &out);
      if (rv == CKR_OK) rv = Crypt(false, &ecb, k, out, &back);
      if (rv == CKR_OK && back != msg) Wrong("AES round trip with a generated session key differs");
      if (k) f_->C_DestroyObject(s_, k);
      break;
    }
    case 8: {
      *name = "random";
      out.resize(32);
      rv = f_->C_GenerateRandom(s_, out.data(), out.size());
      break;
    }
    case 9: {
      *name = "login";
      f_->C_Logout(s_);
      rv = f_->C_Login(s_, CKU_USER, (CK_UTF8CHAR_PTR)kPins[pin_], 4);
      if (rv == CKR_PIN_INCORRECT) std::printf("PIN_INCORRECT for the correct PIN from login\n");
      break;
    }
    case 10: {
      *name = "setpin";
      const int next = 1 - pin_;
      rv = f_->C_SetPIN(s_, (CK_UTF8CHAR_PTR)kPins[pin_], 4, (CK_UTF8CHAR_PTR)kPins[next], 4);
      if (rv == CKR_PIN_INCORRECT) std::printf("PIN_INCORRECT for the correct PIN from setpin\n");
      if (rv == CKR_OK) {
        pin_ = next;
        break;
      }
      PinAfterFailure(next, CkrName(rv));
      break;
    }
    case 12: {
      // The tool changes the PIN through the same bus, in its own process
      // (the module here is finalized meanwhile: a bare swtpm serves one
      // connection at a time).
      *name = "tool-setpin";
      const int next = 1 - pin_;
      Reset();
      const std::string cmd = "TPMTOKEN_PIN=" + std::string(kPins[pin_]) + " TPMTOKEN_NEW_PIN=" +
                              kPins[next] + " ASAN_OPTIONS='" + Env("ASAN_OPTIONS") + ":exitcode=86' timeout " +
                              std::to_string(static_cast<int>(4 * timeout_s_ + 20)) + " '" +
                              tool_ + "' pin change --token campaign >/dev/null 2>&1";
      const int st = std::system(cmd.c_str());
      const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      if (code == 0) {
        pin_ = next;
        rv = CKR_OK;
        break;
      }
      if (code == 86 || code >= 124) {
        ++tool_crashes_;
        std::printf("the tool %s (exit %d) on a mutated bus\n",
                    code == 86 ? "reported a sanitizer error" : code == 124 ? "hung" : "crashed",
                    code);
      }
      rv = CKR_FUNCTION_FAILED;
      PinAfterFailure(next, "tool exit " + std::to_string(code));
      break;
    }
    case 11: {
      *name = "keygen-rsa";
      CK_MECHANISM m = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
      CK_ULONG bits = 2048;
      CK_BYTE e[] = {1, 0, 1};
      CK_BBOOL no = CK_FALSE;
      CK_ATTRIBUTE pub_t[] = {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, e, 3},
                              {CKA_TOKEN, &no, 1}};
      CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &no, 1}};
      CK_OBJECT_HANDLE pub = 0, priv = 0;
      rv = f_->C_GenerateKeyPair(s_, &m, pub_t, 3, priv_t, 1, &pub, &priv);
      Bytes n, ee;
      if (rv == CKR_OK) rv = Attr(pub, CKA_MODULUS, &n);
      if (rv == CKR_OK) rv = Attr(pub, CKA_PUBLIC_EXPONENT, &ee);
      if (rv == CKR_OK) rv = Sign(CKM_SHA256_RSA_PKCS, priv, msg, &out);
      if (rv == CKR_OK && !VerifyRsa(n, ee, msg, out))
        Wrong("RSA signature of a generated session key does not verify");
      if (pub) f_->C_DestroyObject(s_, pub);
      if (priv) f_->C_DestroyObject(s_, priv);
      break;
    }
  }
  return rv;
}

CK_RV Campaign::Setup() {
  CK_RV rv = f_->C_Initialize(nullptr);
  if (rv != CKR_OK) return rv;
  initialized_ = true;
  CK_ULONG n = 8;
  CK_SLOT_ID slots[8];
  f_->C_GetSlotList(CK_FALSE, slots, &n);
  if (n == 0) return CKR_SLOT_ID_INVALID;
  slot_ = slots[0];
  CK_UTF8CHAR label[32];
  std::memset(label, ' ', 32);
  std::memcpy(label, "campaign", 8);
  if ((rv = f_->C_InitToken(slot_, (CK_UTF8CHAR_PTR)kSoPin, 8, label)) != CKR_OK) return rv;
  if ((rv = f_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s_)))
    return rv;
  if ((rv = f_->C_Login(s_, CKU_SO, (CK_UTF8CHAR_PTR)kSoPin, 8))) return rv;
  if ((rv = f_->C_InitPIN(s_, (CK_UTF8CHAR_PTR)kPins[0], 4))) return rv;
  f_->C_Logout(s_);
  if ((rv = f_->C_Login(s_, CKU_USER, (CK_UTF8CHAR_PTR)kPins[0], 4))) return rv;
  CK_BBOOL yes = CK_TRUE;
  CK_OBJECT_HANDLE pub, priv;
  {
    CK_MECHANISM m = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
    CK_ULONG bits = 2048;
    CK_BYTE e[] = {1, 0, 1};
    const char* l = "c-rsa";
    CK_ATTRIBUTE pub_t[] = {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, e, 3},
                            {CKA_TOKEN, &yes, 1}, {CKA_LABEL, (void*)l, 5}};
    CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &yes, 1}, {CKA_LABEL, (void*)l, 5},
                             {CKA_DECRYPT, &yes, 1}, {CKA_SIGN, &yes, 1}};
    if ((rv = f_->C_GenerateKeyPair(s_, &m, pub_t, 4, priv_t, 4, &pub, &priv))) return rv;
    if ((rv = Attr(pub, CKA_MODULUS, &rsa_n_)) || (rv = Attr(pub, CKA_PUBLIC_EXPONENT, &rsa_e_)))
      return rv;
  }
  {
    CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    const char* l = "c-ec";
    CK_BYTE id = 0xec;  // campaign.sh signs with it (pkcs11-tool --id ec)
    CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, p256, sizeof p256}, {CKA_TOKEN, &yes, 1},
                            {CKA_LABEL, (void*)l, 4}, {CKA_ID, &id, 1}};
    CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &yes, 1}, {CKA_LABEL, (void*)l, 4}, {CKA_SIGN, &yes, 1},
                             {CKA_ID, &id, 1}};
    if ((rv = f_->C_GenerateKeyPair(s_, &m, pub_t, 4, priv_t, 4, &pub, &priv))) return rv;
    Bytes der;
    if ((rv = Attr(pub, CKA_EC_POINT, &der))) return rv;
    if (der.size() != 67) return CKR_GENERAL_ERROR;
    ec_point_.assign(der.begin() + 2, der.end());
  }
  for (size_t i = 0; i < 32; ++i) {
    aes_value_[i] = static_cast<CK_BYTE>(rng_());
    hmac_value_[i] = static_cast<CK_BYTE>(rng_());
  }
  CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
  CK_KEY_TYPE aes = CKK_AES, generic = CKK_GENERIC_SECRET;
  CK_OBJECT_HANDLE h;
  {
    const char* l = "c-aes-known";
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &secret, sizeof secret}, {CKA_KEY_TYPE, &aes, sizeof aes},
                        {CKA_TOKEN, &yes, 1}, {CKA_LABEL, (void*)l, std::strlen(l)},
                        {CKA_ENCRYPT, &yes, 1}, {CKA_DECRYPT, &yes, 1},
                        {CKA_VALUE, aes_value_.data(), 32}};
    if ((rv = f_->C_CreateObject(s_, t, 7, &h))) return rv;
  }
  {
    const char* l = "c-hmac";
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &secret, sizeof secret}, {CKA_KEY_TYPE, &generic, sizeof generic},
                        {CKA_TOKEN, &yes, 1}, {CKA_LABEL, (void*)l, std::strlen(l)},
                        {CKA_SIGN, &yes, 1}, {CKA_VERIFY, &yes, 1},
                        {CKA_VALUE, hmac_value_.data(), 32}};
    if ((rv = f_->C_CreateObject(s_, t, 7, &h))) return rv;
  }
  {
    const char* l = "c-aes-gen";
    CK_MECHANISM m = {CKM_AES_KEY_GEN, nullptr, 0};
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &yes, 1},
                        {CKA_LABEL, (void*)l, std::strlen(l)}, {CKA_ENCRYPT, &yes, 1},
                        {CKA_DECRYPT, &yes, 1}};
    if ((rv = f_->C_GenerateKey(s_, &m, t, 5, &h))) return rv;
  }
  return FindKeys();
}

}  // namespace campaign

#include "mech/table.h"

#include <algorithm>

#include <tss2/tss2_tpm2_types.h>

#include "crypto/pubkey.h"
#include "mech/cipher.h"
#include "mech/digest.h"
#include "mech/hmac.h"
#include "mech/sign.h"

namespace tpmtoken::mech {

Bytes Caps::Encode() const {
  Writer w;
  w.U32(static_cast<uint32_t>(rsa_bits.size()));
  for (uint32_t b : rsa_bits) w.U32(b);
  w.U32(static_cast<uint32_t>(curves.size()));
  for (uint16_t c : curves) w.U32(c);
  w.U32(static_cast<uint32_t>(aes_bits.size()));
  for (uint32_t b : aes_bits) w.U32(b);
  w.U8(hmac ? 1 : 0);
  w.U32(static_cast<uint32_t>(aes_modes.size()));
  for (uint16_t m : aes_modes) w.U32(m);
  return w.Take();
}

Caps Caps::Decode(ByteView in) {
  Reader r(in);
  Caps c;
  for (uint32_t n = r.U32(); n > 0; --n) c.rsa_bits.push_back(r.U32());
  for (uint32_t n = r.U32(); n > 0; --n) c.curves.push_back(static_cast<uint16_t>(r.U32()));
  for (uint32_t n = r.U32(); n > 0; --n) c.aes_bits.push_back(r.U32());
  c.hmac = r.U8() != 0;
  for (uint32_t n = r.U32(); n > 0; --n) c.aes_modes.push_back(static_cast<uint16_t>(r.U32()));
  if (!r.done()) throw DecodeError("trailing bytes in capabilities");
  return c;
}

std::vector<MechEntry> BuildTable(const Caps& caps) {
  std::vector<MechEntry> t;
  for (CK_MECHANISM_TYPE d : {CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512})
    if (DigestOp::Supports(d)) t.push_back({d, {0, 0, CKF_DIGEST}});
  if (!caps.rsa_bits.empty()) {
    const auto [lo, hi] = std::minmax_element(caps.rsa_bits.begin(), caps.rsa_bits.end());
    t.push_back({CKM_RSA_PKCS_KEY_PAIR_GEN, {*lo, *hi, CKF_GENERATE_KEY_PAIR | CKF_HW}});
    for (const SignMech& m : SignMechs()) {
      if (m.family != KeyFamily::kRsa) continue;
      const CK_FLAGS crypt =
          IsRsaCipher(m.type) ? CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP : 0;
      t.push_back({m.type, {*lo, *hi, CKF_SIGN | CKF_VERIFY | CKF_HW | crypt}});
    }
    t.push_back({CKM_RSA_PKCS_OAEP,
                 {*lo, *hi, CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP | CKF_HW}});
  }
  std::vector<unsigned long> bits;
  for (uint16_t c : caps.curves)
    if (const crypto::Curve* curve = crypto::CurveFromTpm(c)) bits.push_back(curve->bits);
  if (!bits.empty()) {
    const auto [lo, hi] = std::minmax_element(bits.begin(), bits.end());
    const CK_FLAGS ec = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS | CKF_HW;
    t.push_back({CKM_EC_KEY_PAIR_GEN, {*lo, *hi, CKF_GENERATE_KEY_PAIR | ec}});
    for (const SignMech& m : SignMechs())
      if (m.family == KeyFamily::kEc) t.push_back({m.type, {*lo, *hi, CKF_SIGN | CKF_VERIFY | ec}});
    // The derived key becomes a TPM secret key, so derivation needs those.
    if (caps.hmac) t.push_back({CKM_ECDH1_DERIVE, {*lo, *hi, CKF_DERIVE | ec}});
  }
  if (!caps.aes_bits.empty()) {
    const auto [lo, hi] = std::minmax_element(caps.aes_bits.begin(), caps.aes_bits.end());
    t.push_back({CKM_AES_KEY_GEN, {*lo / 8, *hi / 8, CKF_GENERATE | CKF_HW}});
    auto has = [&](uint16_t mode) {
      return std::find(caps.aes_modes.begin(), caps.aes_modes.end(), mode) != caps.aes_modes.end();
    };
    const CK_MECHANISM_INFO info = {*lo / 8, *hi / 8, CKF_ENCRYPT | CKF_DECRYPT | CKF_HW};
    if (has(TPM2_ALG_ECB)) {
      t.push_back({CKM_AES_ECB, info});
      // RFC 5649 runs on ECB blocks in the TPM; the wrapped key joins the TPM.
      if (caps.hmac)
        t.push_back({CKM_AES_KEY_WRAP_PAD, {*lo / 8, *hi / 8, CKF_WRAP | CKF_UNWRAP | CKF_HW}});
    }
    if (has(TPM2_ALG_CBC)) {
      t.push_back({CKM_AES_CBC, info});
      t.push_back({CKM_AES_CBC_PAD, info});
    }
    if (has(TPM2_ALG_CTR)) t.push_back({CKM_AES_CTR, info});
  }
  if (caps.hmac) {
    // Key sizes in bytes: a keyed-hash object holds up to 128.
    t.push_back({CKM_GENERIC_SECRET_KEY_GEN, {1, 128, CKF_GENERATE | CKF_HW}});
    for (const HmacMech& m : HmacMechs()) t.push_back({m.type, {1, 128, CKF_SIGN | CKF_VERIFY | CKF_HW}});
  }
  return t;
}

const MechEntry* Lookup(const std::vector<MechEntry>& table, CK_MECHANISM_TYPE type) {
  for (const MechEntry& e : table)
    if (e.type == type) return &e;
  return nullptr;
}

}  // namespace tpmtoken::mech

#include "mech/aes.h"

#include <cstring>

namespace tpmtoken::mech {
namespace {
constexpr size_t kBlock = 16;
}

bool IsAes(CK_MECHANISM_TYPE type) {
  return type == CKM_AES_ECB || type == CKM_AES_CBC || type == CKM_AES_CBC_PAD ||
         type == CKM_AES_CTR;
}

CK_RV AesOp::Create(const CK_MECHANISM& m, bool decrypt, std::unique_ptr<AesOp>* out) {
  if (!IsAes(m.mechanism)) return CKR_MECHANISM_INVALID;
  std::unique_ptr<AesOp> op(new AesOp());
  op->type_ = m.mechanism;
  op->decrypt_ = decrypt;
  switch (m.mechanism) {
    case CKM_AES_ECB:
      if (m.ulParameterLen != 0) return CKR_MECHANISM_PARAM_INVALID;
      op->mode_ = TPM2_ALG_ECB;  // no IV: the TPM wants ivIn empty for ECB
      break;
    case CKM_AES_CBC:
    case CKM_AES_CBC_PAD:
      if (!m.pParameter || m.ulParameterLen != kBlock) return CKR_MECHANISM_PARAM_INVALID;
      op->mode_ = TPM2_ALG_CBC;
      op->iv_.assign(static_cast<const uint8_t*>(m.pParameter),
                     static_cast<const uint8_t*>(m.pParameter) + kBlock);
      break;
    case CKM_AES_CTR: {
      if (!m.pParameter || m.ulParameterLen != sizeof(CK_AES_CTR_PARAMS))
        return CKR_MECHANISM_PARAM_INVALID;
      const auto* p = static_cast<const CK_AES_CTR_PARAMS*>(m.pParameter);
      if (p->ulCounterBits == 0 || p->ulCounterBits > 128) return CKR_MECHANISM_PARAM_INVALID;
      op->mode_ = TPM2_ALG_CTR;
      op->iv_.assign(p->cb, p->cb + kBlock);
      op->counter_bits_ = static_cast<unsigned>(p->ulCounterBits);
      // The TPM carries into the whole block; PKCS#11 wraps the low
      // ulCounterBits. They agree until the counter field would wrap.
      unsigned __int128 counter = 0;
      for (uint8_t b : op->iv_) counter = (counter << 8) | b;
      if (op->counter_bits_ < 128) {
        const unsigned __int128 field = (static_cast<unsigned __int128>(1) << op->counter_bits_);
        op->blocks_left_ = field - (counter & (field - 1));
      } else {
        op->blocks_left_ = ~counter;  // all but one more value, ample
      }
      break;
    }
  }
  *out = std::move(op);
  return CKR_OK;
}

size_t AesOp::Ready(size_t pending) const {
  size_t n = pending - pending % kBlock;
  // CBC_PAD decryption keeps the last whole block back: it holds the padding.
  if (type_ == CKM_AES_CBC_PAD && decrypt_ && n == pending && n > 0) n -= kBlock;
  return n;
}

size_t AesOp::UpdateLength(size_t n) const { return Ready(pending_.size() + n); }

size_t AesOp::FinalLength() const {
  if (type_ == CKM_AES_CTR) return pending_.size();
  if (type_ == CKM_AES_CBC_PAD) return decrypt_ ? kBlock : pending_.size() / kBlock * kBlock + kBlock;
  return 0;
}

CK_RV AesOp::Update(ByteView in, const TpmAes& aes, Secret* out) {
  pending_.insert(pending_.end(), in.begin(), in.end());
  const size_t n = Ready(pending_.size());
  if (mode_ == TPM2_ALG_CTR) {
    const unsigned __int128 blocks = (n + kBlock - 1) / kBlock;
    if (blocks > blocks_left_) return CKR_DATA_LEN_RANGE;
    blocks_left_ -= blocks;
  }
  *out = n ? aes(mode_, &iv_, ByteView(pending_).first(n)) : Secret();
  Wipe(pending_.data(), n);
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(n));
  return CKR_OK;
}

CK_RV AesOp::Final(const TpmAes& aes, Secret* out) {
  if (type_ == CKM_AES_CTR) {
    if (pending_.empty()) {
      *out = Secret();
      return CKR_OK;
    }
    if (blocks_left_ == 0) return CKR_DATA_LEN_RANGE;
    *out = aes(mode_, &iv_, pending_);  // CTR takes a partial block
    return CKR_OK;
  }
  if (type_ != CKM_AES_CBC_PAD) {
    if (!pending_.empty()) return decrypt_ ? CKR_ENCRYPTED_DATA_LEN_RANGE : CKR_DATA_LEN_RANGE;
    *out = Secret();
    return CKR_OK;
  }
  if (!decrypt_) {
    // PKCS#7: 1 to 16 bytes, each the count.
    const uint8_t pad = static_cast<uint8_t>(kBlock - pending_.size() % kBlock);
    pending_.insert(pending_.end(), pad, pad);
    *out = aes(mode_, &iv_, pending_);
    return CKR_OK;
  }
  if (pending_.size() != kBlock) return CKR_ENCRYPTED_DATA_LEN_RANGE;
  Secret block = aes(mode_, &iv_, pending_);
  const uint8_t pad = block.data()[kBlock - 1];
  bool ok = pad >= 1 && pad <= kBlock;
  for (size_t i = kBlock - (ok ? pad : 0); ok && i < kBlock; ++i) ok = block.data()[i] == pad;
  if (!ok) return CKR_ENCRYPTED_DATA_INVALID;
  *out = Secret(block.view().first(kBlock - pad));
  return CKR_OK;
}

}  // namespace tpmtoken::mech

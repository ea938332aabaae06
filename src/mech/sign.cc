#include "mech/sign.h"

#include <cstring>

#include "mech/padding.h"

namespace tpmtoken::mech {
const EVP_MD* MgfFor(CK_RSA_PKCS_MGF_TYPE mgf) {
  switch (mgf) {
    case CKG_MGF1_SHA1: return MdFor(CKM_SHA_1);
    case CKG_MGF1_SHA224: return MdFor(CKM_SHA224);
    case CKG_MGF1_SHA256: return MdFor(CKM_SHA256);
    case CKG_MGF1_SHA384: return MdFor(CKM_SHA384);
    case CKG_MGF1_SHA512: return MdFor(CKM_SHA512);
    default: return nullptr;
  }
}

namespace {

TPM2_ALG_ID TpmHashForSize(size_t n) {
  switch (n) {
    case 20: return TPM2_ALG_SHA1;
    case 32: return TPM2_ALG_SHA256;
    case 48: return TPM2_ALG_SHA384;
    default: return TPM2_ALG_SHA512;
  }
}

}  // namespace

const EVP_MD* MdFor(CK_MECHANISM_TYPE hash) {
  switch (hash) {
    case CKM_SHA_1: return crypto::Md("SHA1");
    case CKM_SHA224: return crypto::Md("SHA224");
    case CKM_SHA256: return crypto::Md("SHA256");
    case CKM_SHA384: return crypto::Md("SHA384");
    case CKM_SHA512: return crypto::Md("SHA512");
    default: return nullptr;
  }
}

const std::vector<SignMech>& SignMechs() {
  static const std::vector<SignMech> kMechs = {
      {CKM_RSA_PKCS, KeyFamily::kRsa, 0, false},
      {CKM_SHA1_RSA_PKCS, KeyFamily::kRsa, CKM_SHA_1, false},
      {CKM_SHA224_RSA_PKCS, KeyFamily::kRsa, CKM_SHA224, false},
      {CKM_SHA256_RSA_PKCS, KeyFamily::kRsa, CKM_SHA256, false},
      {CKM_SHA384_RSA_PKCS, KeyFamily::kRsa, CKM_SHA384, false},
      {CKM_SHA512_RSA_PKCS, KeyFamily::kRsa, CKM_SHA512, false},
      {CKM_RSA_PKCS_PSS, KeyFamily::kRsa, 0, true},
      {CKM_SHA1_RSA_PKCS_PSS, KeyFamily::kRsa, CKM_SHA_1, true},
      {CKM_SHA224_RSA_PKCS_PSS, KeyFamily::kRsa, CKM_SHA224, true},
      {CKM_SHA256_RSA_PKCS_PSS, KeyFamily::kRsa, CKM_SHA256, true},
      {CKM_SHA384_RSA_PKCS_PSS, KeyFamily::kRsa, CKM_SHA384, true},
      {CKM_SHA512_RSA_PKCS_PSS, KeyFamily::kRsa, CKM_SHA512, true},
      {CKM_ECDSA, KeyFamily::kEc, 0, false},
      {CKM_ECDSA_SHA1, KeyFamily::kEc, CKM_SHA_1, false},
      {CKM_ECDSA_SHA224, KeyFamily::kEc, CKM_SHA224, false},
      {CKM_ECDSA_SHA256, KeyFamily::kEc, CKM_SHA256, false},
      {CKM_ECDSA_SHA384, KeyFamily::kEc, CKM_SHA384, false},
      {CKM_ECDSA_SHA512, KeyFamily::kEc, CKM_SHA512, false},
  };
  return kMechs;
}

const SignMech* FindSignMech(CK_MECHANISM_TYPE type) {
  for (const SignMech& m : SignMechs())
    if (m.type == type) return &m;
  return nullptr;
}

CK_RV SignatureOp::Create(const CK_MECHANISM& mechanism, const KeyShape& key,
                          std::unique_ptr<SignatureOp>* out) {
  const SignMech* mech = FindSignMech(mechanism.mechanism);
  if (!mech) return CKR_MECHANISM_INVALID;
  if (mech->family != key.family) return CKR_KEY_TYPE_INCONSISTENT;
  std::unique_ptr<SignatureOp> op(new SignatureOp());
  op->mech_ = mech;
  op->key_ = key;
  if (mech->hash) op->digest_ = DigestOp::Create(mech->hash);
  if (mech->pss) {
    if (!mechanism.pParameter || mechanism.ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS))
      return CKR_MECHANISM_PARAM_INVALID;
    const auto* p = static_cast<const CK_RSA_PKCS_PSS_PARAMS*>(mechanism.pParameter);
    op->pss_md_ = MdFor(p->hashAlg);
    op->pss_mgf_ = MgfFor(p->mgf);
    op->pss_salt_ = p->sLen;
    if (!op->pss_md_ || !op->pss_mgf_ || (mech->hash && p->hashAlg != mech->hash))
      return CKR_MECHANISM_PARAM_INVALID;
    // RFC 8017 9.1.1 step 3: emLen >= hLen + sLen + 2, written so that no
    // sum can wrap: sLen is the caller's CK_ULONG (2^64 - 34 wrapped the old
    // check to 0 and PssVerify then read past its buffer).
    const size_t em_len = (key.modulus_bits - 1 + 7) / 8;
    const size_t h_len = static_cast<size_t>(EVP_MD_get_size(op->pss_md_));
    if (key.modulus_bits < 2 || em_len < h_len + 2 || p->sLen > em_len - h_len - 2)
      return CKR_MECHANISM_PARAM_INVALID;
  } else if (mechanism.ulParameterLen != 0) {
    return CKR_MECHANISM_PARAM_INVALID;
  }
  *out = std::move(op);
  return CKR_OK;
}

void SignatureOp::Update(ByteView data) {
  // Raw mechanisms take at most a modulus or a hash; past a bound the data
  // is dropped and the operation answers CKR_DATA_LEN_RANGE, so no caller
  // makes it grow without bound.
  constexpr size_t kMaxRaw = 8192;
  if (digest_)
    digest_->Update(data);
  else if (overlong_ || data.size() > kMaxRaw - data_.size())
    overlong_ = true;
  else
    data_.insert(data_.end(), data.begin(), data.end());
}

size_t SignatureOp::SignatureLength() const {
  return key_.family == KeyFamily::kRsa ? (key_.modulus_bits + 7) / 8 : 2 * key_.curve->bytes;
}

Bytes SignatureOp::Message() {
  if (!digest_) return std::move(data_);
  Bytes h = digest_->Final();
  digest_.reset();
  return h;
}

CK_RV SignatureOp::Sign(const PrivateKeyOps& key, Bytes* signature) {
  if (overlong_) return CKR_DATA_LEN_RANGE;
  const Bytes m = Message();
  const size_t k = (key_.modulus_bits + 7) / 8;
  if (key_.family == KeyFamily::kEc) {
    // ECDSA uses the leftmost bits of the hash up to the order's size; a
    // shorter one is a smaller number. Hand the TPM a hash-sized value.
    Bytes e(m.begin(), m.begin() + static_cast<ptrdiff_t>(std::min(m.size(), key_.curve->bytes)));
    if (key_.curve->bits % 8 && m.size() > 64) return CKR_DATA_LEN_RANGE;  // P-521 past SHA-512
    const size_t want = key_.curve->bytes > 48 ? 64 : key_.curve->bytes;
    if (e.size() > want) return CKR_DATA_LEN_RANGE;
    e.insert(e.begin(), want - e.size(), 0);
    *signature = key.ecdsa(e, TpmHashForSize(want));
    return CKR_OK;
  }
  std::optional<Bytes> em;
  if (mech_->pss) {
    if (m.size() != static_cast<size_t>(EVP_MD_get_size(pss_md_))) return CKR_DATA_LEN_RANGE;
    em = PssEncode(m, key_.modulus_bits, pss_md_, pss_mgf_, pss_salt_);
  } else {
    Bytes t;
    if (mech_->hash) {
      ByteView prefix = DigestInfoPrefix(MdFor(mech_->hash));
      t.assign(prefix.begin(), prefix.end());
    }
    t.insert(t.end(), m.begin(), m.end());
    em = Pkcs1SignPad(t, k);
  }
  if (!em) return CKR_DATA_LEN_RANGE;
  const Secret s = key.rsa_raw(*em);
  signature->assign(s.view().begin(), s.view().end());
  return CKR_OK;
}

CK_RV SignatureOp::Verify(const crypto::PublicKey& public_key, ByteView signature) {
  if (overlong_) return CKR_DATA_LEN_RANGE;
  const Bytes m = Message();
  if (signature.size() != SignatureLength()) return CKR_SIGNATURE_LEN_RANGE;
  bool ok = false;
  if (key_.family == KeyFamily::kEc) {
    ok = crypto::VerifyEcdsa(public_key, m, signature);
  } else if (mech_->pss) {
    if (m.size() != static_cast<size_t>(EVP_MD_get_size(pss_md_))) return CKR_DATA_LEN_RANGE;
    ok = crypto::VerifyRsaPss(public_key, pss_md_, pss_mgf_, pss_salt_, m, signature);
  } else {
    Bytes t;
    if (mech_->hash) {
      ByteView prefix = DigestInfoPrefix(MdFor(mech_->hash));
      t.assign(prefix.begin(), prefix.end());
    }
    t.insert(t.end(), m.begin(), m.end());
    if (t.size() + 11 > (key_.modulus_bits + 7) / 8) return CKR_DATA_LEN_RANGE;
    ok = crypto::VerifyRsaPkcs1(public_key, t, signature);
  }
  return ok ? CKR_OK : CKR_SIGNATURE_INVALID;
}

}  // namespace tpmtoken::mech

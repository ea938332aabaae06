// The EK pieces both EK users share (src/tpm/ek.h): the TCG templates L-1
// and L-2 and the check that a TPM's answer is of a template's shape. The
// check is what stands between a substituted key and the EK anchoring or an
// attestation, so each way of answering another key is tried here.
#include "tpm/ek.h"

#include <gtest/gtest.h>

namespace tpmtoken::tpm {
namespace {

// What a TPM answers for a template: the same area with its key in unique
// (a stand-in key of the right size: only its size is the template's).
TPMT_PUBLIC Answer(bool ecc) {
  TPMT_PUBLIC p = EkTemplate(ecc).publicArea;
  if (ecc) {
    for (UINT16 i = 0; i < 32; ++i) p.unique.ecc.x.buffer[i] = p.unique.ecc.y.buffer[i] = 0x5a;
  } else {
    for (UINT16 i = 0; i < 256; ++i) p.unique.rsa.buffer[i] = static_cast<BYTE>(i | 0x80);
  }
  return p;
}

TEST(EkTemplate, AreTheTcgL1AndL2) {
  const TPMT_PUBLIC rsa = EkTemplate(false).publicArea;
  EXPECT_EQ(rsa.type, TPM2_ALG_RSA);
  EXPECT_EQ(rsa.parameters.rsaDetail.keyBits, 2048);
  EXPECT_EQ(rsa.parameters.rsaDetail.exponent, 0u);
  EXPECT_EQ(rsa.unique.rsa.size, 256);
  const TPMT_PUBLIC ecc = EkTemplate(true).publicArea;
  EXPECT_EQ(ecc.type, TPM2_ALG_ECC);
  EXPECT_EQ(ecc.parameters.eccDetail.curveID, TPM2_ECC_NIST_P256);
  EXPECT_EQ(ecc.unique.ecc.x.size, 32);
  EXPECT_EQ(ecc.unique.ecc.y.size, 32);
  for (const TPMT_PUBLIC* p : {&rsa, &ecc}) {
    EXPECT_EQ(p->nameAlg, TPM2_ALG_SHA256);
    EXPECT_EQ(p->objectAttributes, 0x000300b2u);  // the profile's attributes
    ASSERT_EQ(p->authPolicy.size, 32);
    // PolicySecret(TPM_RH_ENDORSEMENT), TCG EK Credential Profile B.3.3.
    EXPECT_EQ(p->authPolicy.buffer[0], 0x83);
    EXPECT_EQ(p->authPolicy.buffer[31], 0xAA);
  }
  EXPECT_EQ(rsa.parameters.rsaDetail.symmetric.algorithm, TPM2_ALG_AES);
  EXPECT_EQ(ecc.parameters.eccDetail.symmetric.mode.aes, TPM2_ALG_CFB);
}

TEST(MatchesTemplate, TakesTheTpmsAnswer) {
  for (const bool ecc : {false, true})
    EXPECT_TRUE(MatchesTemplate(Answer(ecc), EkTemplate(ecc).publicArea)) << ecc;
  // A TPM may answer the default exponent as 65537.
  TPMT_PUBLIC p = Answer(false);
  p.parameters.rsaDetail.exponent = 65537;
  EXPECT_TRUE(MatchesTemplate(p, EkTemplate(false).publicArea));
}

TEST(MatchesTemplate, RefusesAnotherKey) {
  const TPMT_PUBLIC rsa = EkTemplate(false).publicArea;
  const TPMT_PUBLIC ecc = EkTemplate(true).publicArea;
  EXPECT_FALSE(MatchesTemplate(Answer(true), rsa)) << "ECC for RSA";
  EXPECT_FALSE(MatchesTemplate(Answer(false), ecc)) << "RSA for ECC";

  TPMT_PUBLIC p = Answer(false);
  p.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;  // usable without the policy
  EXPECT_FALSE(MatchesTemplate(p, rsa)) << "attributes";
  p = Answer(false);
  p.authPolicy.buffer[5] ^= 1;
  EXPECT_FALSE(MatchesTemplate(p, rsa)) << "policy";
  p = Answer(false);
  p.authPolicy.size = 0;
  EXPECT_FALSE(MatchesTemplate(p, rsa)) << "no policy";
  p = Answer(false);
  p.parameters.rsaDetail.exponent = 3;
  EXPECT_FALSE(MatchesTemplate(p, rsa)) << "exponent";
  p = Answer(false);
  p.parameters.rsaDetail.keyBits = 1024;
  p.unique.rsa.size = 128;
  EXPECT_FALSE(MatchesTemplate(p, rsa)) << "key size";
  p = Answer(false);
  p.unique.rsa.size = 255;
  EXPECT_FALSE(MatchesTemplate(p, rsa)) << "modulus size";
  p = Answer(false);
  p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;  // not a storage key
  EXPECT_FALSE(MatchesTemplate(p, rsa)) << "symmetric";
  p = Answer(false);
  p.nameAlg = TPM2_ALG_SHA384;
  EXPECT_FALSE(MatchesTemplate(p, rsa)) << "name algorithm";

  p = Answer(true);
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
  EXPECT_FALSE(MatchesTemplate(p, ecc)) << "curve";
  p = Answer(true);
  p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
  p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  EXPECT_FALSE(MatchesTemplate(p, ecc)) << "signing scheme";
  p = Answer(true);
  p.unique.ecc.y.size = 0;
  EXPECT_FALSE(MatchesTemplate(p, ecc)) << "point size";
}

}  // namespace
}  // namespace tpmtoken::tpm

// crypto/credential.h: TPMS_ATTEST parsing and the AK signature over it (a
// vector from swtpm 0.7.1: TPM2_Certify of an ECC P-256 token key by the
// module's AK), malformed inputs, public areas and their names, the AK/EK
// checks, and the shape of a software MakeCredential (its agreement with a
// TPM's ActivateCredential is tests/unit/credential_roundtrip.cc, run on
// swtpm by tests/integration/attest.sh).
#include "crypto/credential.h"

#include <gtest/gtest.h>
#include <tss2/tss2_mu.h>

#include <cstring>

#include "crypto/keymath.h"
#include "crypto/ossl.h"
#include "tpm/fast_session.h"

namespace tpmtoken::crypto {
namespace {

Bytes FromHex(std::string_view h) {
  Bytes out;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoul(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

const Bytes kAttest = FromHex(
    "ff54434780170022000b295c822b0ef2cd340af4186c9f7f86f039ee1a605530037deba264c6d4f091fe0020bc3a35"
    "d4f63988cccb484c348dcf239c98a2384af82d3cf4b1016d49ae0530d400000000000003f600000002000000000120"
    "191023001636360022000bd9118ec2e6f81f5c2ae43b73b58f6fc38a5a443f01ebcd7efbe7acca5934258a0022000b"
    "a991cfd73822470c128e96c9ac4b2941003483277c3bcaf57a06f187c13c7f50");
const Bytes kSignature = FromHex(
    "0018000b002086523c40e05f357ae3717c580442e48b16fe63c3709ea2f5fc68ee1fc04f607c00204acd501793d23b"
    "4a34005cb1d2d2e343bf58bf51b1d0f3e0b8368c8362d3b4d4");
const Bytes kKeyPublic = FromHex(
    "00560023000b000604720000001000100003001000209831264dbaf35831357f861e57612388198521240af913317b"
    "2f3bb92448ac24002033c32c45509c1fce899f6656bed41d07bb6f21b48880e73df3d46a0e5afcb77c");
const Bytes kAkPublic = FromHex(
    "00580023000b00050472000000100018000b00030010002058f95f31dcaf90df0e6503d803d65e9e89a4431f3e3294"
    "5c75505c8d4159162f0020711925702b5f16703523879ac4f16bfd31f0b932d28a4a6593f9184bb75d03d6");
const Bytes kSecret = FromHex("cf03ba6456d27d70ad5c6bd2f2d1f8b72ba2708f0095bedb592d19a482791c4b");
const Bytes kNonce = FromHex("7d9c2e870d101fbba616ba187340d5d4");

TEST(Credential, CertifyVectorParsesAndVerifies) {
  std::string cause;
  const auto info = ParseCertifyAttest(kAttest, &cause);
  ASSERT_TRUE(info) << cause;
  Bytes proof = kSecret;
  proof.insert(proof.end(), kNonce.begin(), kNonce.end());
  EXPECT_EQ(info->extra_data, Sha256(proof));
  const auto key = ParseTpmPublic(kKeyPublic);
  ASSERT_TRUE(key);
  EXPECT_EQ(info->name, key->name);
  const auto ak = ParseTpmPublic(kAkPublic);
  ASSERT_TRUE(ak);
  EXPECT_EQ(AkAreaProblem(ak->pub), "");
  const auto ak_key = PublicKeyOfArea(ak->pub);
  ASSERT_TRUE(ak_key);
  EXPECT_TRUE(VerifyTpmSignature(*ak_key, kAttest, kSignature));
}

TEST(Credential, SignatureRefusesAnyChange) {
  const auto ak_key = PublicKeyOfArea(ParseTpmPublic(kAkPublic)->pub);
  Bytes attest = kAttest;
  attest[40] ^= 1;
  EXPECT_FALSE(VerifyTpmSignature(*ak_key, attest, kSignature));
  Bytes sig = kSignature;
  sig.back() ^= 1;
  EXPECT_FALSE(VerifyTpmSignature(*ak_key, kAttest, sig));
  sig = kSignature;
  sig.push_back(0);
  EXPECT_FALSE(VerifyTpmSignature(*ak_key, kAttest, sig));
  sig = kSignature;
  sig[1] = 0x14;  // RSASSA with an EC key
  EXPECT_FALSE(VerifyTpmSignature(*ak_key, kAttest, sig));
  // Another key's signature: the token key is not the AK.
  const auto other = PublicKeyOfArea(ParseTpmPublic(kKeyPublic)->pub);
  EXPECT_FALSE(VerifyTpmSignature(*other, kAttest, kSignature));
}

TEST(Credential, MalformedAttestRefusedWithCause) {
  for (size_t n = 0; n < kAttest.size(); ++n)
    EXPECT_FALSE(ParseCertifyAttest(ByteView(kAttest).first(n))) << n;
  std::string cause;
  Bytes longer = kAttest;
  longer.push_back(0);
  EXPECT_FALSE(ParseCertifyAttest(longer, &cause));
  EXPECT_NE(cause.find("trailing"), std::string::npos);
  Bytes magic = kAttest;
  magic[0] = 0;
  EXPECT_FALSE(ParseCertifyAttest(magic, &cause));
  EXPECT_NE(cause.find("magic"), std::string::npos);
  Bytes quote = kAttest;
  quote[5] = 0x18;  // TPM_ST_ATTEST_QUOTE
  EXPECT_FALSE(ParseCertifyAttest(quote, &cause));
  EXPECT_NE(cause.find("not a TPM2_Certify"), std::string::npos);
}

TEST(Credential, PublicAreasAndNames) {
  for (size_t n = 0; n < kAkPublic.size(); ++n)
    EXPECT_FALSE(ParseTpmPublic(ByteView(kAkPublic).first(n)));
  const auto ak = ParseTpmPublic(kAkPublic);
  ASSERT_TRUE(ak);
  // name = nameAlg || SHA-256(TPMT_PUBLIC)
  Bytes name = {0x00, 0x0b};
  const Bytes h = Sha256(ByteView(kAkPublic).subspan(2));
  name.insert(name.end(), h.begin(), h.end());
  EXPECT_EQ(ak->name, name);
  Bytes sha1 = kAkPublic;
  sha1[5] = 0x04;  // nameAlg SHA-1
  EXPECT_FALSE(ParseTpmPublic(sha1));
  TPMT_PUBLIC p = ak->pub;
  p.objectAttributes &= ~TPMA_OBJECT_RESTRICTED;
  EXPECT_EQ(AkAreaProblem(p), "the AK is not restricted");
  p = ak->pub;
  p.objectAttributes &= ~TPMA_OBJECT_FIXEDTPM;
  EXPECT_EQ(AkAreaProblem(p), "the AK is not fixedTPM and fixedParent");
  p = ak->pub;
  p.objectAttributes |= TPMA_OBJECT_DECRYPT;
  EXPECT_EQ(AkAreaProblem(p), "the AK is not a signing-only key");
  // The token key is not an AK (not restricted) nor an EK.
  EXPECT_NE(AkAreaProblem(ParseTpmPublic(kKeyPublic)->pub), "");
  EXPECT_NE(EkAreaProblem(ParseTpmPublic(kKeyPublic)->pub), "");
}

// An ECC P-256 EK after TCG template L-2, with a point of our own.
TpmPublic EccEk() {
  TPM2B_PUBLIC t{};
  auto& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                       TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  p.parameters.eccDetail.symmetric = {TPM2_ALG_AES, {.aes = 128}, {.aes = TPM2_ALG_CFB}};
  p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  const Bytes d(32, 0x42);
  const Bytes point = *EcPublicFromPrivate(*CurveFromTpm(TPM2_ECC_NIST_P256), d);
  p.unique.ecc.x.size = 32;
  std::memcpy(p.unique.ecc.x.buffer, point.data() + 1, 32);
  p.unique.ecc.y.size = 32;
  std::memcpy(p.unique.ecc.y.buffer, point.data() + 33, 32);
  Bytes out(sizeof t);
  size_t off = 0;
  EXPECT_EQ(Tss2_MU_TPM2B_PUBLIC_Marshal(&t, out.data(), out.size(), &off), TSS2_RC_SUCCESS);
  out.resize(off);
  return *ParseTpmPublic(out);
}

TEST(Credential, MakeCredentialShape) {
  const TpmPublic ek = EccEk();
  EXPECT_EQ(EkAreaProblem(ek.pub), "");
  const auto ak = ParseTpmPublic(kAkPublic);
  const auto c = MakeCredential(ek, ak->name, kSecret);
  ASSERT_TRUE(c);
  // TPM2B_ID_OBJECT: size, TPM2B_DIGEST(outer HMAC), AES-CFB(TPM2B_DIGEST(secret)).
  EXPECT_EQ(c->blob.size(), 2u + 2 + 32 + 2 + 32);
  EXPECT_EQ(DecodeBe32(Bytes{0, 0, c->blob[0], c->blob[1]}), c->blob.size() - 2);
  // TPM2B_ENCRYPTED_SECRET around a TPMS_ECC_POINT (the ephemeral key).
  EXPECT_EQ(c->secret.size(), 2u + 2 + 32 + 2 + 32);
  // Fresh every time.
  EXPECT_NE(MakeCredential(ek, ak->name, kSecret)->secret, c->secret);
  // Refused: a credential longer than a digest, an empty name, a signing key.
  EXPECT_FALSE(MakeCredential(ek, ak->name, Bytes(33, 1)));
  EXPECT_FALSE(MakeCredential(ek, {}, kSecret));
  EXPECT_FALSE(MakeCredential(*ak, ak->name, kSecret));
}

TEST(Credential, CertificateFromNvDropsPadding) {
  Bytes cert = {0x30, 0x82, 0x00, 0x03, 1, 2, 3};
  Bytes padded = cert;
  padded.insert(padded.end(), 20, 0xFF);
  EXPECT_EQ(*CertificateFromNv(padded), cert);
  EXPECT_FALSE(CertificateFromNv(Bytes{0x30, 0x82, 0x10, 0x00, 1}));
  EXPECT_FALSE(CertificateFromNv(Bytes{0x31, 0x03, 1, 2, 3}));
  EXPECT_FALSE(CertificateFromNv(Bytes{}));
}

}  // namespace
}  // namespace tpmtoken::crypto

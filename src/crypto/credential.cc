#include "crypto/credential.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include <cstring>

#include "crypto/keymath.h"
#include "crypto/kdf.h"
#include "crypto/ossl.h"
#include "mech/padding.h"

namespace tpmtoken::crypto {
namespace {

const char* MdOfAlg(TPM2_ALG_ID alg) {
  switch (alg) {
    case TPM2_ALG_SHA256:
      return "SHA256";
    case TPM2_ALG_SHA384:
      return "SHA384";
    default:
      return nullptr;
  }
}

Bytes U16(size_t v) {
  return {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

void Append(Bytes& out, ByteView b) {
  out.insert(out.end(), b.begin(), b.end());
}

Bytes MacBytes(const char* md, ByteView key, std::initializer_list<ByteView> parts) {
  const Secret mac = Hmac(md, key, parts);  // kdf.h
  return Bytes(mac.view().begin(), mac.view().end());
}

Bytes Tpm2b(ByteView b) {
  Bytes out = U16(b.size());
  Append(out, b);
  return out;
}

}  // namespace

std::optional<TpmPublic> ParseTpmPublic(ByteView in) {
  TPM2B_PUBLIC p{};
  size_t off = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(in.data(), in.size(), &off, &p) != TSS2_RC_SUCCESS ||
      off != in.size() || in.size() < 2)
    return std::nullopt;
  const char* md = MdOfAlg(p.publicArea.nameAlg);
  if (!md) return std::nullopt;
  TpmPublic out;
  out.area.assign(in.begin() + 2, in.end());
  if (out.area.size() != p.size) return std::nullopt;
  out.pub = p.publicArea;
  out.name = U16(p.publicArea.nameAlg);
  Append(out.name, Digest(md, out.area));
  return out;
}

std::optional<PublicKey> PublicKeyOfArea(const TPMT_PUBLIC& p) {
  if (p.type == TPM2_ALG_RSA) {
    const uint32_t e = p.parameters.rsaDetail.exponent ? p.parameters.rsaDetail.exponent : 65537;
    return RsaPublic(ByteView(p.unique.rsa.buffer, p.unique.rsa.size), EncodeBe32(e));
  }
  if (p.type == TPM2_ALG_ECC) {
    const Curve* c = CurveFromTpm(p.parameters.eccDetail.curveID);
    const auto& x = p.unique.ecc.x;
    const auto& y = p.unique.ecc.y;
    if (!c || x.size > c->bytes || y.size > c->bytes) return std::nullopt;
    Bytes point(1 + 2 * c->bytes, 0);
    point[0] = 0x04;
    std::memcpy(point.data() + 1 + c->bytes - x.size, x.buffer, x.size);
    std::memcpy(point.data() + 1 + 2 * c->bytes - y.size, y.buffer, y.size);
    return EcPublic(*c, point);
  }
  return std::nullopt;
}

std::string EkAreaProblem(const TPMT_PUBLIC& ek) {
  const TPMA_OBJECT need =
      TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
  if ((ek.objectAttributes & need) != need || (ek.objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT))
    return "the EK is not a fixedTPM restricted decryption key";
  if (ek.nameAlg != TPM2_ALG_SHA256) return "the EK's name algorithm is not SHA-256";
  const TPMT_SYM_DEF_OBJECT& sym = ek.type == TPM2_ALG_RSA ? ek.parameters.rsaDetail.symmetric
                                                           : ek.parameters.eccDetail.symmetric;
  if (ek.type == TPM2_ALG_RSA) {
    if (ek.parameters.rsaDetail.keyBits != 2048) return "the RSA EK is not 2048 bits";
  } else if (ek.type == TPM2_ALG_ECC) {
    if (ek.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256) return "the ECC EK is not P-256";
  } else {
    return "the EK is neither RSA nor ECC";
  }
  if (sym.algorithm != TPM2_ALG_AES || sym.keyBits.aes != 128 || sym.mode.aes != TPM2_ALG_CFB)
    return "the EK's symmetric algorithm is not AES-128-CFB";
  return {};
}

std::string AkAreaProblem(const TPMT_PUBLIC& ak) {
  const TPMA_OBJECT a = ak.objectAttributes;
  if (!(a & TPMA_OBJECT_RESTRICTED)) return "the AK is not restricted";
  if (!(a & TPMA_OBJECT_FIXEDTPM) || !(a & TPMA_OBJECT_FIXEDPARENT))
    return "the AK is not fixedTPM and fixedParent";
  if (!(a & TPMA_OBJECT_SENSITIVEDATAORIGIN)) return "the AK was not generated in the TPM";
  if (!(a & TPMA_OBJECT_SIGN_ENCRYPT) || (a & TPMA_OBJECT_DECRYPT))
    return "the AK is not a signing-only key";
  if (ak.type == TPM2_ALG_ECC) {
    const auto& e = ak.parameters.eccDetail;
    if (e.scheme.scheme != TPM2_ALG_ECDSA || e.scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256 ||
        e.curveID != TPM2_ECC_NIST_P256)
      return "the AK is not an ECDSA/SHA-256 P-256 key";
  } else if (ak.type == TPM2_ALG_RSA) {
    const auto& r = ak.parameters.rsaDetail;
    if (r.scheme.scheme != TPM2_ALG_RSASSA || r.scheme.details.rsassa.hashAlg != TPM2_ALG_SHA256)
      return "the AK is not an RSASSA/SHA-256 key";
  } else {
    return "the AK is neither RSA nor ECC";
  }
  if (!PublicKeyOfArea(ak)) return "the AK's public key is not valid";
  return {};
}

// Part 1, 24.4 (secret): the seed, RSA-OAEP or ECDH-protected with label
// "IDENTITY"; 24.4-24.5: symKey = KDFa(seed, "STORAGE", name), encIdentity =
// AES-CFB(symKey, IV 0, TPM2B_DIGEST(credential)), HMAC key = KDFa(seed,
// "INTEGRITY"), outerHMAC = HMAC(encIdentity || name).
std::optional<Credential> MakeCredential(const TpmPublic& ek, ByteView name, ByteView credential) {
  if (!EkAreaProblem(ek.pub).empty()) return std::nullopt;
  const char* md = "SHA256";
  const size_t hlen = 32;
  if (credential.size() > hlen || name.empty()) return std::nullopt;
  const auto key = PublicKeyOfArea(ek.pub);
  if (!key) return std::nullopt;
  Secret seed;
  Credential out;
  if (ek.pub.type == TPM2_ALG_RSA) {
    seed = RandomSecret(hlen);
    const auto em = mech::OaepEncode(seed.view(), key->ModulusBytes(), Md(md), Md(md), KdfLabel("IDENTITY"));
    if (!em) return std::nullopt;
    const auto c = RsaPublicOp(*key, *em);
    if (!c) return std::nullopt;
    out.secret = Tpm2b(*c);
  } else {
    const ByteView kx = ByteView(key->point).subspan(1, key->curve->bytes);
    const ByteView ky = ByteView(key->point).subspan(1 + key->curve->bytes);
    const auto shared = EcdhEphemeral(*key->curve, kx, ky);
    if (!shared) return std::nullopt;
    const ByteView ex = ByteView(shared->point).subspan(1, key->curve->bytes);
    const ByteView ey = ByteView(shared->point).subspan(1 + key->curve->bytes);
    seed = KdfE(md, shared->z.view(), "IDENTITY", ex, kx, hlen * 8);
    Bytes point = Tpm2b(ex);
    Append(point, Tpm2b(ey));
    out.secret = Tpm2b(point);
  }
  const Secret sym_key = KdfA(md, seed.view(), "STORAGE", name, {}, 128);
  const Bytes plain = Tpm2b(credential);
  Bytes enc(plain.size());
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  const uint8_t iv[16] = {};
  int len = 0, fin = 0;
  if (!ctx ||
      EVP_EncryptInit_ex2(ctx.get(), Cipher("AES-128-CFB"), sym_key.data(), iv, nullptr) != 1 ||
      EVP_EncryptUpdate(ctx.get(), enc.data(), &len, plain.data(),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), enc.data() + len, &fin) != 1)
    Fail("credential encryption");
  const Secret hmac_key = KdfA(md, seed.view(), "INTEGRITY", {}, {}, hlen * 8);
  const Bytes outer = MacBytes(md, hmac_key.view(), {enc, name});
  Bytes id = Tpm2b(outer);
  Append(id, enc);
  out.blob = Tpm2b(id);
  return out;
}

std::optional<CertifyInfo> ParseCertifyAttest(ByteView in, std::string* cause) {
  auto fail = [&](const char* why) -> std::optional<CertifyInfo> {
    if (cause) *cause = why;
    return std::nullopt;
  };
  // The header first, so the cause names a wrong magic or type rather
  // than the union that the type selects failing to parse.
  if (in.size() < 6) return fail("the attestation structure is truncated or malformed");
  if (DecodeBe32(in.first(4)) != TPM2_GENERATED_VALUE)
    return fail("the attestation was not generated by a TPM (magic is not TPM_GENERATED_VALUE)");
  if (((in[4] << 8) | in[5]) != TPM2_ST_ATTEST_CERTIFY)
    return fail("the attestation is not a TPM2_Certify result");
  TPMS_ATTEST a{};
  size_t off = 0;
  if (Tss2_MU_TPMS_ATTEST_Unmarshal(in.data(), in.size(), &off, &a) != TSS2_RC_SUCCESS)
    return fail("the attestation structure is truncated or malformed");
  if (off != in.size()) return fail("the attestation structure has trailing bytes");
  if (a.magic != TPM2_GENERATED_VALUE)
    return fail("the attestation was not generated by a TPM (magic is not TPM_GENERATED_VALUE)");
  if (a.type != TPM2_ST_ATTEST_CERTIFY) return fail("the attestation is not a TPM2_Certify result");
  CertifyInfo c;
  c.signer.assign(a.qualifiedSigner.name, a.qualifiedSigner.name + a.qualifiedSigner.size);
  c.extra_data.assign(a.extraData.buffer, a.extraData.buffer + a.extraData.size);
  c.clock = a.clockInfo.clock;
  c.reset_count = a.clockInfo.resetCount;
  c.restart_count = a.clockInfo.restartCount;
  c.safe = a.clockInfo.safe == TPM2_YES;
  c.firmware = a.firmwareVersion;
  const auto& cert = a.attested.certify;
  c.name.assign(cert.name.name, cert.name.name + cert.name.size);
  c.qualified_name.assign(cert.qualifiedName.name,
                          cert.qualifiedName.name + cert.qualifiedName.size);
  return c;
}

bool VerifyTpmSignature(const PublicKey& key, ByteView message, ByteView sig_bytes) {
  TPMT_SIGNATURE sig{};
  size_t off = 0;
  if (Tss2_MU_TPMT_SIGNATURE_Unmarshal(sig_bytes.data(), sig_bytes.size(), &off, &sig) !=
          TSS2_RC_SUCCESS ||
      off != sig_bytes.size())
    return false;
  const Bytes digest = Sha256(message);
  if (sig.sigAlg == TPM2_ALG_ECDSA && !key.rsa) {
    const auto& e = sig.signature.ecdsa;
    const size_t n = key.curve->bytes;
    if (e.hash != TPM2_ALG_SHA256 || e.signatureR.size > n || e.signatureS.size > n) return false;
    Bytes rs(2 * n, 0);
    std::memcpy(rs.data() + n - e.signatureR.size, e.signatureR.buffer, e.signatureR.size);
    std::memcpy(rs.data() + 2 * n - e.signatureS.size, e.signatureS.buffer, e.signatureS.size);
    return VerifyEcdsa(key, digest, rs);
  }
  if (sig.sigAlg == TPM2_ALG_RSASSA && key.rsa) {
    const auto& r = sig.signature.rsassa;
    if (r.hash != TPM2_ALG_SHA256) return false;
    const ByteView prefix = mech::DigestInfoPrefix(Md("SHA256"));
    Bytes t(prefix.begin(), prefix.end());
    Append(t, digest);
    return VerifyRsaPkcs1(key, t, ByteView(r.sig.buffer, r.sig.size));
  }
  return false;
}

std::optional<Bytes> CertificateFromNv(ByteView nv) {
  // A DER SEQUENCE with a definite length; whatever follows is padding.
  if (nv.size() < 4 || nv[0] != 0x30) return std::nullopt;
  size_t len = 0, hdr = 2;
  if (nv[1] < 0x80) {
    len = nv[1];
  } else {
    const size_t n = nv[1] & 0x7F;
    if (n == 0 || n > 3 || nv.size() < 2 + n) return std::nullopt;
    for (size_t i = 0; i < n; ++i) len = (len << 8) | nv[2 + i];
    hdr = 2 + n;
  }
  if (len > nv.size() - hdr) return std::nullopt;
  return Bytes(nv.begin(), nv.begin() + static_cast<ptrdiff_t>(hdr + len));
}

std::string CheckEkCertificate(ByteView der, ByteView ca_pem, const PublicKey& ek,
                               bool* untrusted) {
  *untrusted = false;
  using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
  X509Ptr cert(X509_new_ex(LibCtx(), nullptr));
  const unsigned char* p = der.data();
  X509* raw = cert.get();
  if (!cert || !d2i_X509(&raw, &p, static_cast<long>(der.size()))) {
    if (raw != cert.get()) (void)cert.release();
    return "the EK certificate is not a DER certificate";
  }
  if (p != der.data() + der.size()) return "the EK certificate has trailing bytes";
  std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>> store(X509_STORE_new());
  std::unique_ptr<BIO, Deleter<BIO_free>> bio(
      BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
  if (!store || !bio) Fail("X509 store");
  int anchors = 0;
  for (;;) {
    X509Ptr ca(X509_new_ex(LibCtx(), nullptr));
    X509* ca_raw = ca.get();
    if (!PEM_read_bio_X509(bio.get(), &ca_raw, nullptr, nullptr)) break;
    if (X509_STORE_add_cert(store.get(), ca_raw) == 1) ++anchors;
  }
  ERR_clear_error();
  if (anchors == 0) return "the CA bundle holds no PEM certificate";
  std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>> ctx(
      X509_STORE_CTX_new_ex(LibCtx(), nullptr));
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1)
    Fail("X509 verify context");
  // EK certificates carry TCG extensions OpenSSL does not know; the
  // critical ones (subjectAltName with the TPM's identity) it does.
  if (X509_verify_cert(ctx.get()) != 1) {
    *untrusted = true;
    return std::string("the EK certificate does not chain to the CA bundle (") +
           X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())) + ")";
  }
  unsigned char* spki = nullptr;
  const int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &spki);
  if (n <= 0) return "the EK certificate's public key cannot be read";
  const Bytes got(spki, spki + n);
  OPENSSL_free(spki);
  if (got != SubjectPublicKeyInfo(ek)) return "the EK certificate is for another key than the EK";
  return {};
}

}  // namespace tpmtoken::crypto

// RSA paddings done in software around the TPM's raw RSA private operation
// (DESIGN.md: the TPM cannot make PSS with salt = hash length, nor OAEP with
// an arbitrary label). PKCS #1 v2.2 (RFC 8017) sections 8-9 and 7.1.
#pragma once
#include <openssl/evp.h>

#include <optional>

#include "mech/rsa_unpad.h"
#include "util/bytes.h"

namespace tpmtoken::mech {

// EMSA-PKCS1-v1_5 type 1 block for k-byte modulus around t (a DigestInfo or
// raw data); nullopt when t is longer than k - 11.
std::optional<Bytes> Pkcs1SignPad(ByteView t, size_t k);

// The DER DigestInfo prefix for a hash (RFC 8017 section 9.2 note 1).
ByteView DigestInfoPrefix(const EVP_MD* md);

// EMSA-PSS-ENCODE (9.1.1) for a modulus of mod_bits; nullopt when the hash
// and salt do not fit. The salt is random.
std::optional<Bytes> PssEncode(ByteView m_hash, size_t mod_bits, const EVP_MD* hash,
                               const EVP_MD* mgf_hash, size_t salt_len);

// EMSA-PSS-VERIFY (9.1.2): whether em (modulus-sized) encodes m_hash with
// a salt of salt_len bytes.
bool PssVerify(ByteView m_hash, ByteView em, size_t mod_bits, const EVP_MD* hash,
               const EVP_MD* mgf_hash, size_t salt_len);
// RSAES-PKCS1-v1_5 encoding (7.2.1 step 2) of m for a k-byte modulus;
// nullopt when m is longer than k - 11.
std::optional<Bytes> Pkcs1EncryptPad(ByteView m, size_t k);
// RSAES-OAEP encoding (7.1.1 step 2); nullopt when m is too long.
std::optional<Bytes> OaepEncode(ByteView m, size_t k, const EVP_MD* hash, const EVP_MD* mgf_hash,
                                ByteView label);

// RSAES-OAEP decoding (7.1.2 step 3) of a k-byte block; nullopt when it does
// not decode (one answer for every failure, decided in constant time).
std::optional<Secret> OaepDecode(ByteView em, const EVP_MD* hash, const EVP_MD* mgf_hash,
                                 ByteView label);
// RSAES-PKCS1-v1_5 decoding: mech/rsa_unpad.h (constant time, implicit
// rejection).

// MGF1 (B.2.1); a Secret, as a mask reveals what it masks.
Secret Mgf1(ByteView seed, size_t len, const EVP_MD* hash);

}  // namespace tpmtoken::mech

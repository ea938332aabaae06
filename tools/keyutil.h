// Key helpers shared by the key, certificate and rotation commands.
#pragma once
#include <openssl/evp.h>

#include "tool.h"

namespace tpmtoken::tool {

struct KeyPair {
  CK_OBJECT_HANDLE pub = 0, priv = 0;
};
// A token key pair generated in the TPM ("ec:p256", "rsa:2048", ...).
KeyPair GenerateKey(Context& ctx, CK_SESSION_HANDLE s, const std::string& type,
                    const std::string& label, bool unattended = false,
                    const std::string& pcr_policy = "");
// An OpenSSL private key put into the TPM, with its public half beside it.
KeyPair ImportKey(Context& ctx, CK_SESSION_HANDLE s, EVP_PKEY* key, const std::string& label);

}  // namespace tpmtoken::tool

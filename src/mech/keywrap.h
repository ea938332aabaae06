// AES key wrap with padding (RFC 5649, CKM_AES_KEY_WRAP_PAD) over a block
// cipher supplied by the caller: with a TPM AES key each step is one ECB
// block in the TPM, so the key-encryption key never leaves it.
#pragma once
#include <functional>
#include <optional>

#include "util/bytes.h"

namespace tpmtoken::mech {

// One 16-byte block through AES (encrypt or decrypt, fixed by the caller).
using AesBlock = std::function<Secret(ByteView block)>;

Bytes AesKeyWrapPad(ByteView plain, const AesBlock& encrypt);
// nullopt when the integrity check fails.
std::optional<Secret> AesKeyUnwrapPad(ByteView wrapped, const AesBlock& decrypt);

}  // namespace tpmtoken::mech

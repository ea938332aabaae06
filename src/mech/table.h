// The mechanism table: what C_GetMechanismList / C_GetMechanismInfo report and
// what dispatch accepts come from this one list (STYLE.md). Entries are added
// per family; a family advertises a mechanism only if it runs it.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <vector>

#include "util/bytes.h"

namespace tpmtoken::mech {

struct MechEntry {
  CK_MECHANISM_TYPE type;
  CK_MECHANISM_INFO info;
};

// What the TPM in front of the module can do, probed once (TPM2_TestParms)
// and cached in the store per TPM model and firmware.
struct Caps {
  std::vector<uint32_t> rsa_bits;   // e.g. 2048, 3072
  std::vector<uint16_t> curves;     // TPM2_ECC_CURVE values
  std::vector<uint32_t> aes_bits;   // 128, 192, 256
  std::vector<uint16_t> aes_modes;  // TPM2_ALG_ECB, _CBC, _CTR the TPM offers
  bool hmac = false;                // keyed-hash objects and TPM2_HMAC
  Bytes Encode() const;
  static Caps Decode(ByteView in);  // throws DecodeError
};

std::vector<MechEntry> BuildTable(const Caps& caps);
const MechEntry* Lookup(const std::vector<MechEntry>& table, CK_MECHANISM_TYPE type);

}  // namespace tpmtoken::mech

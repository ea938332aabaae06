// The mechanism table: what C_GetMechanismList / C_GetMechanismInfo report and
// what dispatch accepts come from this one list (STYLE.md). Entries are added
// per family; a family advertises a mechanism only if it runs it.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <vector>

namespace tpmtoken::mech {

struct MechEntry {
  CK_MECHANISM_TYPE type;
  CK_MECHANISM_INFO info;
};

const std::vector<MechEntry>& Table();
const MechEntry* Lookup(CK_MECHANISM_TYPE type);

}  // namespace tpmtoken::mech

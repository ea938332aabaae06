#include "mech/table.h"

#include "mech/digest.h"

namespace tpmtoken::mech {

const std::vector<MechEntry>& Table() {
  static const std::vector<MechEntry> kTable = [] {
    std::vector<MechEntry> t;
    for (CK_MECHANISM_TYPE d : {CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512})
      if (DigestOp::Supports(d)) t.push_back({d, {0, 0, CKF_DIGEST}});
    return t;
  }();
  return kTable;
}

const MechEntry* Lookup(CK_MECHANISM_TYPE type) {
  for (const MechEntry& e : Table())
    if (e.type == type) return &e;
  return nullptr;
}

}  // namespace tpmtoken::mech

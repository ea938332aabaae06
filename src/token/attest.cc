// The core's one addition for key attestation (issue 12): the tool certifies
// a token key with the TPM, so it needs the key's blobs and auth value, which
// live in the key's private record (so this needs the user's login).
#include "token/module.h"

namespace tpmtoken {

std::shared_ptr<const KeyMaterial> Module::TpmKeyOf(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key) {
  Session* s = FindSession(h);
  if (!s || s->token->login != CKU_USER) return nullptr;
  const std::shared_ptr<Object> o = Resolve(*s, key);
  if (!o || o->attrs.Ulong(CKA_CLASS) != CKO_PRIVATE_KEY) return nullptr;
  return o->key;
}

}  // namespace tpmtoken

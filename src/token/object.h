// A PKCS#11 object as one process sees it.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <cstdint>

#include "token/attributes.h"

namespace tpmtoken {

struct Object {
  CK_OBJECT_HANDLE handle = 0;
  int64_t db_id = 0;              // token objects: the store row
  int64_t gen = 0;                // token objects: the row's change stamp
  CK_SESSION_HANDLE session = 0;  // session objects: the session that owns it
  AttrSet attrs;

  bool is_token() const { return attrs.Bool(CKA_TOKEN); }
  bool is_private() const { return attrs.Bool(CKA_PRIVATE, true); }
};

}  // namespace tpmtoken

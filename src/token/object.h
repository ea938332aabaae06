// A PKCS#11 object as one process sees it, and its store record.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <cstdint>
#include <memory>

#include "token/attributes.h"
#include "tpm/tpm.h"

namespace tpmtoken {

// A TPM-held key: blobs only this TPM can load under its storage primary,
// and the key's random authorization value, kept where the object is
// (DESIGN.md, Kinds of key): a private record under the token key (using
// the key needs a login), a public record under the store key (an
// unattended key), or process memory only (a session key).
struct KeyMaterial {
  tpm::SealedBlob blob;
  Secret auth;
};

struct Object {
  CK_OBJECT_HANDLE handle = 0;
  int64_t db_id = 0;              // token objects: the store row
  int64_t gen = 0;                // token objects: the row's change stamp
  CK_SESSION_HANDLE session = 0;  // session objects: the session that owns it
  AttrSet attrs;
  std::shared_ptr<const KeyMaterial> key;  // private and secret keys

  bool is_token() const { return attrs.Bool(CKA_TOKEN); }
  bool is_private() const { return attrs.Bool(CKA_PRIVATE, true); }
};

// The plaintext of an object's store record: attributes and key material.
Secret EncodeObjectRecord(const Object& o);
// Throws DecodeError.
void DecodeObjectRecord(ByteView in, Object* o);

}  // namespace tpmtoken

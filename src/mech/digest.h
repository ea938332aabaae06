// Software message digests (DESIGN.md: digests never go to the TPM).
// The operation state is the hash function's own context, so
// C_GetOperationState / C_SetOperationState can save and restore it.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <memory>
#include <optional>

#include "util/bytes.h"

namespace tpmtoken::mech {

class DigestOp {
 public:
  // nullptr when the mechanism is not a digest this module runs.
  static std::unique_ptr<DigestOp> Create(CK_MECHANISM_TYPE type);
  static std::optional<size_t> OutputSize(CK_MECHANISM_TYPE type);
  static bool Supports(CK_MECHANISM_TYPE type) { return OutputSize(type).has_value(); }

  virtual ~DigestOp() = default;
  virtual void Update(ByteView data) = 0;
  virtual Bytes Final() = 0;
  virtual size_t size() const = 0;
  virtual CK_MECHANISM_TYPE type() const = 0;
  // An opaque blob naming the mechanism and the hash context.
  virtual Bytes SaveState() const = 0;
  // A secret key's value went in (C_DigestKey): the context then holds key
  // bytes (its unprocessed block), so it must not be saved out.
  void MarkKeyed() { keyed_ = true; }
  bool keyed() const { return keyed_; }
  // nullptr when the blob is not a state this module saved.
  static std::unique_ptr<DigestOp> RestoreState(ByteView state);

 private:
  bool keyed_ = false;
};

}  // namespace tpmtoken::mech

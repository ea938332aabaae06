#include "token/record.h"

namespace tpmtoken {
namespace {
constexpr uint8_t kVersion = 1;

void PutRole(Writer& w, const RoleSeal& r) {
  w.U8(r.present ? 1 : 0);
  w.U32(r.nv_index);
  w.U32(r.retry_limit);
  w.Blob(r.salt);
  w.Blob(r.seal.pub);
  w.Blob(r.seal.priv);
}

RoleSeal GetRole(Reader& in) {
  RoleSeal r;
  r.present = in.U8() != 0;
  r.nv_index = in.U32();
  r.retry_limit = in.U32();
  auto bytes = [](ByteView v) { return Bytes(v.begin(), v.end()); };
  r.salt = bytes(in.Blob());
  r.seal.pub = bytes(in.Blob());
  r.seal.priv = bytes(in.Blob());
  return r;
}
}  // namespace

Bytes TokenRecord::Encode() const {
  Writer w;
  w.U8(kVersion);
  w.Str(serial);
  w.Str(label);
  w.U32(kdf_iterations);
  PutRole(w, so);
  PutRole(w, user);
  return w.Take();
}

TokenRecord TokenRecord::Decode(ByteView in) {
  Reader r(in);
  if (r.U8() != kVersion) throw DecodeError("unknown token record version");
  TokenRecord t;
  t.serial = r.Str();
  t.label = r.Str();
  t.kdf_iterations = r.U32();
  t.so = GetRole(r);
  t.user = GetRole(r);
  if (!r.done()) throw DecodeError("trailing bytes in token record");
  return t;
}

}  // namespace tpmtoken

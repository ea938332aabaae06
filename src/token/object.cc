#include "token/object.h"

namespace tpmtoken {
namespace {
constexpr uint8_t kRecordVersion = 1;
}

Bytes EncodeObjectRecord(const Object& o) {
  Writer w;
  w.U8(kRecordVersion);
  w.Blob(o.attrs.Encode());
  w.U8(o.key ? 1 : 0);
  if (o.key) {
    w.Blob(o.key->blob.pub);
    w.Blob(o.key->blob.priv);
    w.Blob(o.key->auth.view());
  }
  return w.Take();
}

void DecodeObjectRecord(ByteView in, Object* o) {
  Reader r(in);
  if (r.U8() != kRecordVersion) throw DecodeError("unknown object record version");
  o->attrs = AttrSet::Decode(r.Blob());
  if (r.U8()) {
    auto key = std::make_shared<KeyMaterial>();
    ByteView pub = r.Blob();
    ByteView priv = r.Blob();
    key->blob = {Bytes(pub.begin(), pub.end()), Bytes(priv.begin(), priv.end())};
    key->auth = Secret(r.Blob());
    o->key = std::move(key);
  }
  if (!r.done()) throw DecodeError("trailing bytes in object record");
}

}  // namespace tpmtoken

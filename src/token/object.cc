#include "token/object.h"

namespace tpmtoken {
namespace {
constexpr uint8_t kRecordVersion = 1;
}

// The record holds private values and the key's auth value: it is written
// in place at its final size and handed out as a Secret, so no copy of it
// outlives the call unwiped.
Secret EncodeObjectRecord(const Object& o) {
  const size_t attrs = o.attrs.EncodedSize();
  const size_t key =
      o.key ? 12 + o.key->blob.pub.size() + o.key->blob.priv.size() + o.key->auth.size() : 0;
  Writer w;
  w.Reserve(1 + 4 + attrs + 1 + key);
  w.U8(kRecordVersion);
  w.U32(static_cast<uint32_t>(attrs));  // a Blob of the attributes, written in place
  o.attrs.EncodeTo(w);
  w.U8(o.key ? 1 : 0);
  if (o.key) {
    w.Blob(o.key->blob.pub);
    w.Blob(o.key->blob.priv);
    w.Blob(o.key->auth.view());
  }
  return w.TakeSecret();
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
    // A key bound to PCRs runs its policy at each use (tpm/keys.cc RunKey).
    if (const Bytes* bound = o->attrs.Find(CKA_TPMTOKEN_PCR_POLICY))
      key->blob.pcrs = PcrSelection::Parse(std::string(AsText(*bound)));
    o->key = std::move(key);
  }
  if (!r.done()) throw DecodeError("trailing bytes in object record");
}

}  // namespace tpmtoken

// Store record decoders (token records, object records, attribute sets):
// any bytes either decode or throw DecodeError; what decodes re-encodes to
// something that decodes to the same attributes.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "token/object.h"
#include "token/record.h"

using namespace tpmtoken;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ByteView in(data, size);
  try {
    const TokenRecord rec = TokenRecord::Decode(in);
    if (TokenRecord::Decode(rec.Encode()).Encode() != rec.Encode()) std::abort();
  } catch (const DecodeError&) {
  }
  try {
    const AttrSet attrs = AttrSet::Decode(in);
    if (AttrSet::Decode(attrs.Encode()).Encode() != attrs.Encode()) std::abort();
  } catch (const DecodeError&) {
  }
  try {
    Object o;
    DecodeObjectRecord(in, &o);
    Object again;
    DecodeObjectRecord(EncodeObjectRecord(o).view(), &again);
    if (again.attrs.Encode() != o.attrs.Encode()) std::abort();
  } catch (const DecodeError&) {
  }
  return 0;
}

std::vector<std::vector<uint8_t>> FuzzSeeds() {
  TokenRecord rec;
  rec.serial = "0123456789abcdef";
  rec.label = "fuzz";
  rec.kdf_iterations = 1000;
  rec.so = {true, 0x01300000, 10, Bytes(16, 1), {Bytes(40, 2), Bytes(60, 3)}};
  rec.user = {true, 0, 0, Bytes(16, 4), {Bytes(40, 5), Bytes(60, 6)}};
  Object o;
  o.attrs.SetUlong(CKA_CLASS, CKO_PRIVATE_KEY);
  o.attrs.SetBool(CKA_TOKEN, true);
  o.attrs.Set(CKA_LABEL, View("device-key"));
  auto key = std::make_shared<KeyMaterial>();
  key->blob = {Bytes(90, 7), Bytes(120, 8)};
  key->auth = Secret(Bytes(32, 9));
  o.key = key;
  Object data;
  data.attrs.SetUlong(CKA_CLASS, CKO_DATA);
  data.attrs.Set(CKA_VALUE, View("payload"));
  auto record = [](const Object& obj) {
    const Secret plain = EncodeObjectRecord(obj);
    return Bytes(plain.view().begin(), plain.view().end());
  };
  const Bytes a = rec.Encode(), b = record(o), c = record(data), d = o.attrs.Encode();
  Object back;
  DecodeObjectRecord(b, &back);  // seeds must be valid
  if (TokenRecord::Decode(a).label != "fuzz" || !back.key) std::abort();
  return {{a.begin(), a.end()}, {b.begin(), b.end()}, {c.begin(), c.end()}, {d.begin(), d.end()}, {}};
}

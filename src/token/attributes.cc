#include "token/attributes.h"

#include <cstdio>
#include <cstring>
#include <map>

#include "util/log.h"

namespace tpmtoken {

Bytes UlongBytes(CK_ULONG v) {
  Bytes b(sizeof v);
  std::memcpy(b.data(), &v, sizeof v);
  return b;
}
Bytes BoolBytes(bool v) { return Bytes{static_cast<uint8_t>(v ? CK_TRUE : CK_FALSE)}; }

CK_RV RefuseAttribute(CK_RV rv, const char* call, CK_ATTRIBUTE_TYPE type, const char* why) {
  log::Warn(call, ": template attribute ", AttributeName(type), " refused: ", why);
  return rv;
}

std::string AttributeName(CK_ATTRIBUTE_TYPE type) {
#define TPMTOKEN_NAME(a) {a, #a}
  static const std::map<CK_ATTRIBUTE_TYPE, const char*> kNames = {
      TPMTOKEN_NAME(CKA_CLASS),          TPMTOKEN_NAME(CKA_TOKEN),
      TPMTOKEN_NAME(CKA_PRIVATE),        TPMTOKEN_NAME(CKA_LABEL),
      TPMTOKEN_NAME(CKA_VALUE),          TPMTOKEN_NAME(CKA_KEY_TYPE),
      TPMTOKEN_NAME(CKA_ID),             TPMTOKEN_NAME(CKA_SENSITIVE),
      TPMTOKEN_NAME(CKA_ENCRYPT),        TPMTOKEN_NAME(CKA_DECRYPT),
      TPMTOKEN_NAME(CKA_WRAP),           TPMTOKEN_NAME(CKA_UNWRAP),
      TPMTOKEN_NAME(CKA_SIGN),           TPMTOKEN_NAME(CKA_VERIFY),
      TPMTOKEN_NAME(CKA_DERIVE),         TPMTOKEN_NAME(CKA_MODULUS),
      TPMTOKEN_NAME(CKA_MODULUS_BITS),   TPMTOKEN_NAME(CKA_PUBLIC_EXPONENT),
      TPMTOKEN_NAME(CKA_VALUE_LEN),      TPMTOKEN_NAME(CKA_EXTRACTABLE),
      TPMTOKEN_NAME(CKA_LOCAL),          TPMTOKEN_NAME(CKA_EC_PARAMS),
      TPMTOKEN_NAME(CKA_EC_POINT),       TPMTOKEN_NAME(CKA_ALWAYS_AUTHENTICATE),
      TPMTOKEN_NAME(CKA_MODIFIABLE),     TPMTOKEN_NAME(CKA_COPYABLE),
      TPMTOKEN_NAME(CKA_DESTROYABLE),    TPMTOKEN_NAME(CKA_TRUSTED),
      TPMTOKEN_NAME(CKA_ALLOWED_MECHANISMS),
  };
#undef TPMTOKEN_NAME
  if (auto it = kNames.find(type); it != kNames.end()) return it->second;
  char hex[32];
  std::snprintf(hex, sizeof hex, "CKA 0x%lx", static_cast<unsigned long>(type));
  return hex;
}

const Bytes* AttrSet::Find(CK_ATTRIBUTE_TYPE type) const {
  auto it = attrs_.find(type);
  return it == attrs_.end() ? nullptr : &it->second;
}

Secret AttrSet::TakeSecret(CK_ATTRIBUTE_TYPE type) {
  auto it = attrs_.find(type);
  if (it == attrs_.end()) return Secret();
  Secret out(it->second);
  Wipe(it->second.data(), it->second.size());
  attrs_.erase(it);
  return out;
}

AttrSet& AttrSet::operator=(const AttrSet& o) {
  if (this != &o) {
    WipeAll();
    attrs_ = o.attrs_;
  }
  return *this;
}

AttrSet& AttrSet::operator=(AttrSet&& o) noexcept {
  if (this != &o) {
    WipeAll();
    attrs_ = std::move(o.attrs_);
    o.attrs_.clear();
  }
  return *this;
}

void AttrSet::WipeAll() noexcept {
  for (auto& [type, value] : attrs_) Wipe(value.data(), value.size());
}

void AttrSet::Put(CK_ATTRIBUTE_TYPE type, Bytes value) {
  Bytes& slot = attrs_[type];
  Wipe(slot.data(), slot.size());
  slot = std::move(value);
}

void AttrSet::Erase(CK_ATTRIBUTE_TYPE type) {
  auto it = attrs_.find(type);
  if (it == attrs_.end()) return;
  Wipe(it->second.data(), it->second.size());
  attrs_.erase(it);
}

void AttrSet::SetBool(CK_ATTRIBUTE_TYPE type, bool v) { Put(type, BoolBytes(v)); }
void AttrSet::SetUlong(CK_ATTRIBUTE_TYPE type, CK_ULONG v) { Put(type, UlongBytes(v)); }

bool AttrSet::Bool(CK_ATTRIBUTE_TYPE type, bool fallback) const {
  const Bytes* v = Find(type);
  return (v && v->size() == 1) ? (*v)[0] != CK_FALSE : fallback;
}

std::optional<CK_ULONG> AttrSet::Ulong(CK_ATTRIBUTE_TYPE type) const {
  const Bytes* v = Find(type);
  if (!v || v->size() != sizeof(CK_ULONG)) return std::nullopt;
  CK_ULONG out = 0;
  std::memcpy(&out, v->data(), sizeof out);
  return out;
}

bool AttrSet::Matches(const CK_ATTRIBUTE* tmpl, CK_ULONG count) const {
  for (CK_ULONG i = 0; i < count; ++i) {
    const Bytes* v = Find(tmpl[i].type);
    if (!v || v->size() != tmpl[i].ulValueLen) return false;
    if (!v->empty() && std::memcmp(v->data(), tmpl[i].pValue, v->size()) != 0) return false;
  }
  return true;
}

// Stored as CK_ULONG-independent big-endian types and lengths; CK_ULONG and
// CK_BBOOL values keep the host's layout, which the store never leaves.
Bytes AttrSet::Encode() const {
  Writer w;
  w.Reserve(EncodedSize());
  EncodeTo(w);
  return w.Take();
}

void AttrSet::EncodeTo(Writer& w) const {
  w.U32(static_cast<uint32_t>(attrs_.size()));
  for (const auto& [type, value] : attrs_) {
    w.U64(type);
    w.Blob(value);
  }
}

AttrSet AttrSet::Decode(ByteView in) {
  Reader r(in);
  AttrSet out;
  const uint32_t n = r.U32();
  for (uint32_t i = 0; i < n; ++i) {
    const CK_ATTRIBUTE_TYPE type = r.U64();
    ByteView v = r.Blob();
    out.Put(type, Bytes(v.begin(), v.end()));
  }
  if (!r.done()) throw DecodeError("trailing bytes after attributes");
  return out;
}

size_t AttrSet::EncodedSize() const {
  size_t n = 4;
  for (const auto& [type, value] : attrs_) n += 12 + value.size();
  return n;
}

}  // namespace tpmtoken

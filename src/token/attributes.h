// An object's attributes: a small map from attribute type to value bytes,
// with the encoding used in store records.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <map>
#include <optional>
#include <string>

#include "util/bytes.h"

namespace tpmtoken {

// Values may be private (a private data object's CKA_VALUE, an extractable
// key's value): every value is wiped when it is replaced, erased or the set
// is destroyed.
class AttrSet {
 public:
  AttrSet() = default;
  AttrSet(const AttrSet&) = default;
  AttrSet(AttrSet&&) noexcept = default;
  AttrSet& operator=(const AttrSet& o);
  AttrSet& operator=(AttrSet&& o) noexcept;
  ~AttrSet() { WipeAll(); }

  const Bytes* Find(CK_ATTRIBUTE_TYPE type) const;
  bool Has(CK_ATTRIBUTE_TYPE type) const { return attrs_.count(type) != 0; }
  void Set(CK_ATTRIBUTE_TYPE type, ByteView value) { Put(type, Bytes(value.begin(), value.end())); }
  void SetBool(CK_ATTRIBUTE_TYPE type, bool v);
  void SetUlong(CK_ATTRIBUTE_TYPE type, CK_ULONG v);
  // Absent or malformed values read as the fallback.
  bool Bool(CK_ATTRIBUTE_TYPE type, bool fallback = false) const;
  std::optional<CK_ULONG> Ulong(CK_ATTRIBUTE_TYPE type) const;
  void Erase(CK_ATTRIBUTE_TYPE type);
  // Wipes a secret value's bytes, then drops it; returns a wiped-on-release copy.
  Secret TakeSecret(CK_ATTRIBUTE_TYPE type);

  // True if every attribute of the template is present with the same bytes.
  bool Matches(const CK_ATTRIBUTE* tmpl, CK_ULONG count) const;

  Bytes Encode() const;
  // Appends the same encoding, EncodedSize() bytes, to w.
  void EncodeTo(Writer& w) const;
  static AttrSet Decode(ByteView in);  // throws DecodeError
  size_t EncodedSize() const;

  auto begin() const { return attrs_.begin(); }
  auto end() const { return attrs_.end(); }

 private:
  void Put(CK_ATTRIBUTE_TYPE type, Bytes value);
  void WipeAll() noexcept;
  std::map<CK_ATTRIBUTE_TYPE, Bytes> attrs_;
};

Bytes UlongBytes(CK_ULONG v);
Bytes BoolBytes(bool v);
// "CKA_EXTRACTABLE" for the attributes templates name, else "CKA 0x…":
// log lines name the attribute a template was refused for.
std::string AttributeName(CK_ATTRIBUTE_TYPE type);
// A template refused (issue 9 item 3): one warn line naming the call, the
// attribute and why; returns rv.
CK_RV RefuseAttribute(CK_RV rv, const char* call, CK_ATTRIBUTE_TYPE type, const char* why);

}  // namespace tpmtoken

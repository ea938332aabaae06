// Declarative object classes (STYLE.md: kryoptic's factories, SoftHSM's
// footnote flags). Each class is a list of attribute specs; one generic set of
// routines enforces the create, set and copy rules of PKCS#11 2.40 section 4
// for every class. The flags mirror the spec's attribute-table footnotes.
#pragma once
#include <tpmtoken/pkcs11.h>

#include <vector>

#include "token/attributes.h"

namespace tpmtoken::schema {

enum Flag : uint32_t {
  kRequired = 1u << 0,     // footnote 1: must be given to C_CreateObject
  kNotOnCreate = 1u << 1,  // footnote 2: assigned by the token, never in a template
  kModifiable = 1u << 2,   // footnote 8: C_SetAttributeValue and C_CopyObject may change it
  kSensitive = 1u << 3,    // footnote 7: unreadable when sensitive or unextractable
  kSoToTrue = 1u << 4,     // footnote 10: only the SO may set it to true
  kStaysTrue = 1u << 5,    // footnote 11: cannot change once true
  kStaysFalse = 1u << 6,   // footnote 12: cannot change once false
  kCopyChange = 1u << 7,   // may change in C_CopyObject only (CKA_TOKEN, CKA_PRIVATE, ...)
  kGenRequired = 1u << 8,  // footnote 3: must be given to C_GenerateKey(Pair)
  kNotOnGen = 1u << 9,     // footnote 4: set by the token when it generates the key
  kGenerateOnly = 1u << 10,  // a TPM policy set as the TPM makes the key: refused in
                             // C_CreateObject, C_DeriveKey and C_UnwrapKey templates
};

// How an object comes to be: the footnotes differ for each.
enum class Origin { kCreate, kGenerate, kDerive };

enum class Kind { kBool, kUlong, kBytes, kDate, kMechanisms };
enum class Default { kNone, kFalse, kTrue, kEmpty, kZero };

struct AttrSpec {
  CK_ATTRIBUTE_TYPE type;
  Kind kind;
  uint32_t flags;
  Default fallback;
};

struct ClassSpec {
  CK_OBJECT_CLASS cls;
  CK_ATTRIBUTE_TYPE subtype_attr;  // CKA_CERTIFICATE_TYPE, CKA_KEY_TYPE, or 0
  CK_ULONG subtype;
  bool private_by_default;
  std::vector<AttrSpec> attrs;
  // Fills attributes derived from others (a certificate's subject from its
  // value); returns the CKR for a value it cannot use.
  CK_RV (*complete)(AttrSet&);
};

// The class a template or an object belongs to, or nullptr.
const ClassSpec* ForTemplate(const CK_ATTRIBUTE* tmpl, CK_ULONG count, CK_RV* rv);
const ClassSpec* ForObject(const AttrSet& attrs);
const AttrSpec* Find(const ClassSpec& cls, CK_ATTRIBUTE_TYPE type);

// C_CreateObject: validates the template, fills defaults and derived values.
CK_RV BuildForCreate(const ClassSpec& cls, const CK_ATTRIBUTE* tmpl, CK_ULONG count, bool is_so,
                     AttrSet* out);
// C_GenerateKeyPair: one half's template for a known class. CKA_CLASS and
// CKA_KEY_TYPE may be absent; derived values are the caller's to add.
CK_RV BuildForGenerate(const ClassSpec& cls, const CK_ATTRIBUTE* tmpl, CK_ULONG count,
                       bool is_so, AttrSet* out);
// C_DeriveKey: like generation, but CKA_VALUE_LEN may be left to the
// mechanism. CKA_CLASS and CKA_KEY_TYPE come from the template.
CK_RV BuildForDerive(const ClassSpec& cls, const CK_ATTRIBUTE* tmpl, CK_ULONG count, bool is_so,
                     AttrSet* out);
const ClassSpec* Find(CK_OBJECT_CLASS cls, CK_ULONG subtype);
// C_SetAttributeValue (copy == false) and C_CopyObject (copy == true):
// checks every attribute first, then applies all of them or none.
CK_RV ApplyChanges(const ClassSpec& cls, const CK_ATTRIBUTE* tmpl, CK_ULONG count, bool is_so,
                   bool copy, AttrSet* attrs);
// Whether the value's size and form fit the attribute's kind.
bool ValidValue(const AttrSpec& spec, const CK_ATTRIBUTE& attr);

}  // namespace tpmtoken::schema

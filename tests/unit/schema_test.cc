#include "token/schema.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <vector>

namespace tpmtoken::schema {
namespace {

// A template built from typed values that outlive the CK_ATTRIBUTE array.
class Tmpl {
 public:
  Tmpl& Ulong(CK_ATTRIBUTE_TYPE t, CK_ULONG v) { return Add(t, UlongBytes(v)); }
  Tmpl& Bool(CK_ATTRIBUTE_TYPE t, bool v) { return Add(t, BoolBytes(v)); }
  Tmpl& Raw(CK_ATTRIBUTE_TYPE t, Bytes v) { return Add(t, std::move(v)); }
  Tmpl& Text(CK_ATTRIBUTE_TYPE t, std::string_view v) {
    return Add(t, Bytes(v.begin(), v.end()));
  }
  CK_ATTRIBUTE* data() {
    attrs_.clear();
    for (auto& [t, v] : values_) attrs_.push_back({t, v.data(), v.size()});
    return attrs_.data();
  }
  CK_ULONG size() const { return values_.size(); }

 private:
  Tmpl& Add(CK_ATTRIBUTE_TYPE t, Bytes v) {
    values_.emplace_back(t, std::move(v));
    return *this;
  }
  std::vector<std::pair<CK_ATTRIBUTE_TYPE, Bytes>> values_;
  std::vector<CK_ATTRIBUTE> attrs_;
};

CK_RV Create(Tmpl& t, AttrSet* out, bool so = false) {
  CK_RV rv = CKR_OK;
  const ClassSpec* cls = ForTemplate(t.data(), t.size(), &rv);
  if (!cls) return rv;
  return BuildForCreate(*cls, t.data(), t.size(), so, out);
}

Bytes SelfSignedCert() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("thing-42"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, key);
  X509_sign(x, key, EVP_sha256());
  unsigned char* der = nullptr;
  const int n = i2d_X509(x, &der);
  Bytes out(der, der + n);
  OPENSSL_free(der);
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

TEST(Schema, DataObjectDefaults) {
  Tmpl t;
  t.Ulong(CKA_CLASS, CKO_DATA).Text(CKA_LABEL, "config");
  AttrSet a;
  ASSERT_EQ(Create(t, &a), CKR_OK);
  EXPECT_FALSE(a.Bool(CKA_TOKEN, true));
  EXPECT_FALSE(a.Bool(CKA_PRIVATE, true));
  EXPECT_TRUE(a.Bool(CKA_MODIFIABLE));
  EXPECT_TRUE(a.Bool(CKA_COPYABLE));
  EXPECT_TRUE(a.Bool(CKA_DESTROYABLE));
  ASSERT_NE(a.Find(CKA_VALUE), nullptr);
  EXPECT_TRUE(a.Find(CKA_VALUE)->empty());
  ASSERT_NE(a.Find(CKA_UNIQUE_ID), nullptr);
  EXPECT_EQ(a.Find(CKA_UNIQUE_ID)->size(), 32u);
}

TEST(Schema, MissingOrUnknownClass) {
  Tmpl none;
  none.Text(CKA_LABEL, "x");
  AttrSet a;
  EXPECT_EQ(Create(none, &a), CKR_TEMPLATE_INCOMPLETE);
  Tmpl vendor;
  vendor.Ulong(CKA_CLASS, CKO_VENDOR_DEFINED);
  EXPECT_EQ(Create(vendor, &a), CKR_ATTRIBUTE_VALUE_INVALID);
  Tmpl short_class;
  short_class.Raw(CKA_CLASS, Bytes{1});
  EXPECT_EQ(Create(short_class, &a), CKR_ATTRIBUTE_VALUE_INVALID);
}

TEST(Schema, BadValuesAndTypes) {
  AttrSet a;
  Tmpl bad_bool;
  bad_bool.Ulong(CKA_CLASS, CKO_DATA).Raw(CKA_TOKEN, Bytes{1, 0});
  EXPECT_EQ(Create(bad_bool, &a), CKR_ATTRIBUTE_VALUE_INVALID);
  Tmpl bool_two;
  bool_two.Ulong(CKA_CLASS, CKO_DATA).Raw(CKA_TOKEN, Bytes{2});
  EXPECT_EQ(Create(bool_two, &a), CKR_ATTRIBUTE_VALUE_INVALID);
  Tmpl foreign;
  foreign.Ulong(CKA_CLASS, CKO_DATA).Raw(CKA_MODULUS, Bytes{1});
  EXPECT_EQ(Create(foreign, &a), CKR_ATTRIBUTE_TYPE_INVALID);
  Tmpl assigned;
  assigned.Ulong(CKA_CLASS, CKO_DATA).Text(CKA_UNIQUE_ID, "mine");
  EXPECT_EQ(Create(assigned, &a), CKR_ATTRIBUTE_READ_ONLY);
}

TEST(Schema, DuplicatesMustAgree) {
  AttrSet a;
  Tmpl same;
  same.Ulong(CKA_CLASS, CKO_DATA).Text(CKA_LABEL, "a").Text(CKA_LABEL, "a");
  EXPECT_EQ(Create(same, &a), CKR_OK);
  Tmpl differ;
  differ.Ulong(CKA_CLASS, CKO_DATA).Text(CKA_LABEL, "a").Text(CKA_LABEL, "b");
  EXPECT_EQ(Create(differ, &a), CKR_TEMPLATE_INCONSISTENT);
}

TEST(Schema, CertificateFieldsComeFromValue) {
  const Bytes der = SelfSignedCert();
  Tmpl t;
  t.Ulong(CKA_CLASS, CKO_CERTIFICATE).Ulong(CKA_CERTIFICATE_TYPE, CKC_X_509).Raw(CKA_VALUE, der);
  AttrSet a;
  ASSERT_EQ(Create(t, &a), CKR_OK);
  ASSERT_NE(a.Find(CKA_SUBJECT), nullptr);
  EXPECT_FALSE(a.Find(CKA_SUBJECT)->empty());
  EXPECT_EQ(*a.Find(CKA_SUBJECT), *a.Find(CKA_ISSUER));  // self-signed
  EXPECT_EQ(Hex(*a.Find(CKA_SERIAL_NUMBER)), "02021092");  // DER INTEGER 4242
  EXPECT_EQ(a.Find(CKA_CHECK_VALUE)->size(), 3u);
  EXPECT_FALSE(a.Find(CKA_PUBLIC_KEY_INFO)->empty());
}

TEST(Schema, CertificateRules) {
  AttrSet a;
  Tmpl no_value;
  no_value.Ulong(CKA_CLASS, CKO_CERTIFICATE).Ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
  EXPECT_EQ(Create(no_value, &a), CKR_TEMPLATE_INCOMPLETE);
  Tmpl no_type;
  no_type.Ulong(CKA_CLASS, CKO_CERTIFICATE).Raw(CKA_VALUE, SelfSignedCert());
  EXPECT_EQ(Create(no_type, &a), CKR_TEMPLATE_INCOMPLETE);
  Tmpl wtls;
  wtls.Ulong(CKA_CLASS, CKO_CERTIFICATE).Ulong(CKA_CERTIFICATE_TYPE, CKC_WTLS);
  EXPECT_EQ(Create(wtls, &a), CKR_ATTRIBUTE_VALUE_INVALID);
  Tmpl garbage;
  garbage.Ulong(CKA_CLASS, CKO_CERTIFICATE).Ulong(CKA_CERTIFICATE_TYPE, CKC_X_509)
      .Raw(CKA_VALUE, Bytes{0x30, 0x01});
  EXPECT_EQ(Create(garbage, &a), CKR_ATTRIBUTE_VALUE_INVALID);
  Tmpl named;  // an unparsable value is allowed when the subject is given
  named.Ulong(CKA_CLASS, CKO_CERTIFICATE).Ulong(CKA_CERTIFICATE_TYPE, CKC_X_509)
      .Raw(CKA_VALUE, Bytes{0x30, 0x01}).Raw(CKA_SUBJECT, Bytes{0x30, 0x00});
  EXPECT_EQ(Create(named, &a), CKR_OK);
  Tmpl trusted;
  trusted.Ulong(CKA_CLASS, CKO_CERTIFICATE).Ulong(CKA_CERTIFICATE_TYPE, CKC_X_509)
      .Raw(CKA_VALUE, SelfSignedCert()).Bool(CKA_TRUSTED, true);
  EXPECT_EQ(Create(trusted, &a, false), CKR_ATTRIBUTE_READ_ONLY);
  EXPECT_EQ(Create(trusted, &a, true), CKR_OK);
  Tmpl wrong_check;
  wrong_check.Ulong(CKA_CLASS, CKO_CERTIFICATE).Ulong(CKA_CERTIFICATE_TYPE, CKC_X_509)
      .Raw(CKA_VALUE, SelfSignedCert()).Raw(CKA_CHECK_VALUE, Bytes{0, 0, 0});
  EXPECT_EQ(Create(wrong_check, &a), CKR_ATTRIBUTE_VALUE_INVALID);
}

TEST(Schema, SetAndCopyRules) {
  Tmpl t;
  t.Ulong(CKA_CLASS, CKO_DATA).Text(CKA_LABEL, "a");
  AttrSet a;
  ASSERT_EQ(Create(t, &a), CKR_OK);
  const ClassSpec* cls = ForObject(a);
  ASSERT_NE(cls, nullptr);

  Tmpl label;
  label.Text(CKA_LABEL, "b");
  EXPECT_EQ(ApplyChanges(*cls, label.data(), label.size(), false, false, &a), CKR_OK);
  EXPECT_EQ(AsText(*a.Find(CKA_LABEL)), "b");

  Tmpl cls_change;
  cls_change.Ulong(CKA_CLASS, CKO_CERTIFICATE);
  EXPECT_EQ(ApplyChanges(*cls, cls_change.data(), cls_change.size(), false, false, &a),
            CKR_ATTRIBUTE_READ_ONLY);

  Tmpl token;
  token.Bool(CKA_TOKEN, true);
  EXPECT_EQ(ApplyChanges(*cls, token.data(), token.size(), false, false, &a),
            CKR_ATTRIBUTE_READ_ONLY);
  AttrSet copy = a;
  EXPECT_EQ(ApplyChanges(*cls, token.data(), token.size(), false, true, &copy), CKR_OK);
  EXPECT_TRUE(copy.Bool(CKA_TOKEN));

  Tmpl no_copy;
  no_copy.Bool(CKA_COPYABLE, false);
  EXPECT_EQ(ApplyChanges(*cls, no_copy.data(), no_copy.size(), false, true, &copy), CKR_OK);
  Tmpl copy_again;
  copy_again.Bool(CKA_COPYABLE, true);
  EXPECT_EQ(ApplyChanges(*cls, copy_again.data(), copy_again.size(), false, true, &copy),
            CKR_ATTRIBUTE_READ_ONLY);

  // All or nothing: a bad attribute after a good one changes neither.
  Tmpl mixed;
  mixed.Text(CKA_LABEL, "c").Ulong(CKA_CLASS, CKO_CERTIFICATE);
  EXPECT_EQ(ApplyChanges(*cls, mixed.data(), mixed.size(), false, false, &a),
            CKR_ATTRIBUTE_READ_ONLY);
  EXPECT_EQ(AsText(*a.Find(CKA_LABEL)), "b");

  // Restating a read-only attribute's current value is not a change.
  Tmpl same_class;
  same_class.Ulong(CKA_CLASS, CKO_DATA);
  EXPECT_EQ(ApplyChanges(*cls, same_class.data(), same_class.size(), false, false, &a), CKR_OK);
}

TEST(Schema, DateValues) {
  AttrSet a;
  Tmpl good;
  good.Ulong(CKA_CLASS, CKO_CERTIFICATE).Ulong(CKA_CERTIFICATE_TYPE, CKC_X_509)
      .Raw(CKA_VALUE, SelfSignedCert()).Text(CKA_START_DATE, "20260101");
  EXPECT_EQ(Create(good, &a), CKR_OK);
  Tmpl bad;
  bad.Ulong(CKA_CLASS, CKO_CERTIFICATE).Ulong(CKA_CERTIFICATE_TYPE, CKC_X_509)
      .Raw(CKA_VALUE, SelfSignedCert()).Text(CKA_START_DATE, "2026-1-1");
  EXPECT_EQ(Create(bad, &a), CKR_ATTRIBUTE_VALUE_INVALID);
}

}  // namespace
}  // namespace tpmtoken::schema

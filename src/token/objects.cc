// Objects: creation, copies, attributes and search (PKCS#11 2.40 section
// 5.7), with token objects cached per process and kept coherent with other
// processes through the store's change stamps.
#include <algorithm>
#include <cstring>

#include "crypto/ossl.h"
#include "token/module.h"
#include "token/schema.h"
#include "util/log.h"

namespace tpmtoken {

bool Module::Visible(const Token& t, const Object& o) const {
  return !o.is_private() || t.login == CKU_USER;
}

std::shared_ptr<Object> Module::Resolve(Session& s, CK_OBJECT_HANDLE h) {
  Sync(*s.token);
  auto it = objects_.find(h);
  if (it == objects_.end()) {
    // A token object this process saw but does not keep decrypted: its row
    // is read again (nullptr when gone, or private before login).
    Token& t = *s.token;
    const auto row = t.uncached.find(h);
    if (row == t.uncached.end()) return nullptr;
    const auto st = store_->Stamp(t.db_id, row->second);
    if (!st) {
      t.handles.erase(row->second);
      t.uncached.erase(row);
      return nullptr;
    }
    if (!LoadRow(t, *st)) return nullptr;
    it = objects_.find(h);
    if (it == objects_.end()) return nullptr;
  }
  const std::shared_ptr<Object>& o = it->second;
  if (o->session) {
    auto owner = sessions_.find(o->session);
    if (owner == sessions_.end() || owner->second->token != s.token) return nullptr;
  } else if (!s.token->objects.count(o->db_id) || s.token->objects.at(o->db_id) != o) {
    return nullptr;
  }
  return Visible(*s.token, *o) ? o : nullptr;
}

// 2.40 section 5.7 / table 6: token objects need a R/W session, private
// objects need the user logged in.
CK_RV Module::CheckWriteAccess(const Session& s, bool token_object, bool private_object) const {
  if (token_object && !s.rw) return CKR_SESSION_READ_ONLY;
  // A store this process cannot write serves reads, login and signing.
  if (token_object && store_->read_only()) return CKR_TOKEN_WRITE_PROTECTED;
  if (private_object && s.token->login != CKU_USER) return CKR_USER_NOT_LOGGED_IN;
  return CKR_OK;
}

// What the audit log says about an object: its class, row and token. No
// label or ID: the log is in clear, and the store reveals neither
// (tests/integration/store_secrecy.sh).
// Trusted objects (issue 11 trust anchors, CKA_WRAP_WITH_TRUSTED wrapping
// keys): only the SO sets CKA_TRUSTED (footnote 10), and "trusted
// certificates cannot be modified" (2.40 section 4.6.3). Anchors are public,
// so without this any R/W session could rename, untrust or delete one. This
// one check serves C_SetAttributeValue (change) and C_DestroyObject.
namespace {
CK_RV GuardTrusted(const Session& s, const Object& o, bool destroy, const CK_ATTRIBUTE* tmpl,
                   CK_ULONG n) {
  if (!o.attrs.Bool(CKA_TRUSTED) || (!destroy && o.attrs.Matches(tmpl, n))) return CKR_OK;
  const bool cert = o.attrs.Ulong(CKA_CLASS) == CKO_CERTIFICATE;
  if (s.token->login == CKU_SO && (destroy || !cert)) return CKR_OK;
  log::Warn(destroy ? "C_DestroyObject" : "C_SetAttributeValue", ": a trusted ",
            cert ? "certificate" : "key", " (CKA_TRUSTED) ",
            destroy ? "is destroyed only by the SO"
                    : cert ? "cannot be modified; the SO removes it and adds a new one"
                           : "is changed only by the SO");
  return CKR_ACTION_PROHIBITED;
}
}  // namespace

std::string Module::AuditName(const Token& t, const Object& o) const {
  static const std::map<CK_ULONG, const char*> kClasses = {
      {CKO_PRIVATE_KEY, "private key"}, {CKO_PUBLIC_KEY, "public key"},
      {CKO_SECRET_KEY, "secret key"},   {CKO_CERTIFICATE, "certificate"},
      {CKO_DATA, "data object"}};
  if (o.attrs.Ulong(CKA_CLASS) == CKO_CERTIFICATE && o.attrs.Bool(CKA_TRUSTED))
    return "trust anchor " + std::to_string(o.db_id) + " of token " + t.rec.serial;
  const auto cls = kClasses.find(o.attrs.Ulong(CKA_CLASS).value_or(~CK_ULONG{0}));
  return std::string(cls == kClasses.end() ? "object" : cls->second) + " " +
         std::to_string(o.db_id) + " of token " + t.rec.serial;
}

void Module::Persist(Token& t, Object& o) {
  const bool priv = o.is_private();
  const ByteView key = priv ? t.tk.view() : sk_.view();
  const Secret plain = EncodeObjectRecord(o);
  const store::IndexTags tags = TagsOf(t, o);  // the index changes with the row
  store::Db::Txn txn(store_->db());
  const bool fresh = o.db_id == 0;
  const store::ObjectStamp st =
      o.db_id ? store_->UpdateObject(t.db_id, o.db_id, priv, plain.view(), key, tags)
              : store_->AddObject(t.db_id, priv, plain.view(), key, tags);
  o.db_id = st.id;
  store_->Audit((fresh ? "created " : "changed ") + AuditName(t, o));
  txn.Commit();
  o.db_id = st.id;
  o.gen = st.gen;
}

CK_RV Module::StoreNewObject(Session& s, AttrSet attrs, CK_OBJECT_HANDLE* out,
                             std::shared_ptr<const KeyMaterial> key) {
  auto o = std::make_shared<Object>();
  o->attrs = std::move(attrs);
  o->key = std::move(key);
  // A key's auth value goes where the object does (DESIGN.md, Kinds of
  // key): a private record under the token key, a public one under the
  // store key, or, for a session object, process memory only.
  if (CK_RV rv = CheckWriteAccess(s, o->is_token(), o->is_private()); rv != CKR_OK) return rv;
  Token& t = *s.token;
  if (o->is_token()) {
    Sync(t);
    Persist(t, *o);
    auto [h, fresh] = t.handles.try_emplace(o->db_id, 0);
    if (fresh) h->second = NextObjectHandle();
    o->handle = h->second;
    t.objects[o->db_id] = o;
  } else {
    o->handle = NextObjectHandle();
    o->session = s.handle;
    IndexSessionObject(t, *o, true);
  }
  objects_[o->handle] = o;
  *out = o->handle;
  return CKR_OK;
}

CK_RV Module::CreateObject(CK_SESSION_HANDLE h, const CK_ATTRIBUTE* tmpl, CK_ULONG n,
                           CK_OBJECT_HANDLE* out) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  CK_RV rv = CKR_OK;
  const schema::ClassSpec* cls = schema::ForTemplate(tmpl, n, &rv);
  if (!cls) return rv;
  AttrSet attrs;
  if ((rv = schema::BuildForCreate(*cls, tmpl, n, s->token->login == CKU_SO, &attrs)) != CKR_OK)
    return rv;
  // Key values go to the TPM (TPM2_Import), never to the store.
  if (cls->cls == CKO_PRIVATE_KEY) return ImportPrivateKey(*s, std::move(attrs), out);
  if (cls->cls == CKO_SECRET_KEY) return ImportSecretKey(*s, std::move(attrs), out);
  return StoreNewObject(*s, std::move(attrs), out);
}

CK_RV Module::CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, const CK_ATTRIBUTE* tmpl,
                         CK_ULONG n, CK_OBJECT_HANDLE* out) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  auto src = Resolve(*s, obj);
  if (!src) return CKR_OBJECT_HANDLE_INVALID;
  if (!src->attrs.Bool(CKA_COPYABLE, true)) return CKR_ACTION_PROHIBITED;
  const schema::ClassSpec* cls = schema::ForObject(src->attrs);
  if (!cls) return CKR_GENERAL_ERROR;
  AttrSet attrs = src->attrs;
  if (CK_RV rv = schema::ApplyChanges(*cls, tmpl, n, s->token->login == CKU_SO, true, &attrs);
      rv != CKR_OK)
    return rv;
  attrs.Set(CKA_UNIQUE_ID, View(Hex(crypto::Random(16))));
  return StoreNewObject(*s, std::move(attrs), out, src->key);
}

CK_RV Module::DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  auto o = Resolve(*s, obj);
  if (!o) return CKR_OBJECT_HANDLE_INVALID;
  if (CK_RV rv = CheckWriteAccess(*s, o->is_token(), o->is_private()); rv != CKR_OK) return rv;
  if (!o->attrs.Bool(CKA_DESTROYABLE, true)) return CKR_ACTION_PROHIBITED;
  if (CK_RV rv = GuardTrusted(*s, *o, true, nullptr, 0); rv != CKR_OK) return rv;
  if (o->is_token()) {
    store::Db::Txn txn(store_->db());
    store_->DeleteObject(s->token->db_id, o->db_id);
    store_->Audit("destroyed " + AuditName(*s->token, *o));
    txn.Commit();
    s->token->objects.erase(o->db_id);
    s->token->handles.erase(o->db_id);
    s->token->uncached.erase(o->handle);
  } else {
    IndexSessionObject(*s->token, *o, false);
  }
  objects_.erase(o->handle);
  if (o->key) tpm_->FlushKey(o->key->blob);
  return CKR_OK;
}

CK_RV Module::GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ULONG* size) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  auto o = Resolve(*s, obj);
  if (!o) return CKR_OBJECT_HANDLE_INVALID;
  *size = o->attrs.EncodedSize();
  return CKR_OK;
}

// 2.40 section 5.7, C_GetAttributeValue: every attribute is processed; each
// failure sets that length to CK_UNAVAILABLE_INFORMATION and is reported.
CK_RV Module::GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE* tmpl,
                                CK_ULONG n) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  auto o = Resolve(*s, obj);
  if (!o) return CKR_OBJECT_HANDLE_INVALID;
  const schema::ClassSpec* cls = schema::ForObject(o->attrs);
  const bool hidden = o->attrs.Bool(CKA_SENSITIVE) || !o->attrs.Bool(CKA_EXTRACTABLE, true);
  CK_RV result = CKR_OK;
  for (CK_ULONG i = 0; i < n; ++i) {
    CK_ATTRIBUTE& a = tmpl[i];
    const schema::AttrSpec* spec = cls ? schema::Find(*cls, a.type) : nullptr;
    const Bytes* value = o->attrs.Find(a.type);
    if (spec && (spec->flags & schema::kSensitive) && hidden) {
      a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
      result = CKR_ATTRIBUTE_SENSITIVE;
    } else if (!value) {
      a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
      result = CKR_ATTRIBUTE_TYPE_INVALID;
    } else if (!a.pValue) {
      a.ulValueLen = value->size();
    } else if (a.ulValueLen < value->size()) {
      a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
      result = CKR_BUFFER_TOO_SMALL;
    } else {
      if (!value->empty()) std::memcpy(a.pValue, value->data(), value->size());
      a.ulValueLen = value->size();
    }
  }
  return result;
}

CK_RV Module::SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                                const CK_ATTRIBUTE* tmpl, CK_ULONG n) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  auto o = Resolve(*s, obj);
  if (!o) return CKR_OBJECT_HANDLE_INVALID;
  if (CK_RV rv = CheckWriteAccess(*s, o->is_token(), o->is_private()); rv != CKR_OK) return rv;
  if (!o->attrs.Bool(CKA_MODIFIABLE, true)) return CKR_ACTION_PROHIBITED;
  if (CK_RV rv = GuardTrusted(*s, *o, false, tmpl, n); rv != CKR_OK) return rv;
  const schema::ClassSpec* cls = schema::ForObject(o->attrs);
  if (!cls) return CKR_GENERAL_ERROR;
  AttrSet updated = o->attrs;
  if (CK_RV rv = schema::ApplyChanges(*cls, tmpl, n, s->token->login == CKU_SO, false, &updated);
      rv != CKR_OK)
    return rv;
  if (o->is_token()) {
    Object next = *o;
    next.attrs = std::move(updated);
    Persist(*s->token, next);
    *o = std::move(next);
  } else {
    IndexSessionObject(*s->token, *o, false);
    o->attrs = std::move(updated);
    IndexSessionObject(*s->token, *o, true);
  }
  return CKR_OK;
}

CK_RV Module::Atomically(CK_SESSION_HANDLE h, const std::function<CK_RV()>& fn) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  Token& t = *s->token;
  CK_RV rv = CKR_GENERAL_ERROR;
  {
    store::Db::Txn txn(store_->db());
    try {
      rv = fn();
    } catch (...) {
      ForgetObjects(t);  // the cache may hold changes that were rolled back
      throw;
    }
    if (rv == CKR_OK) txn.Commit();
  }
  if (rv != CKR_OK) ForgetObjects(t);
  return rv;
}

std::vector<Module::TokenSummary> Module::Tokens() {
  RefreshTokens();
  std::vector<TokenSummary> out;
  for (const auto& t : tokens_) {
    const bool da = (t->rec.so.present && t->rec.so.nv_index == 0) ||
                    (t->rec.user.present && t->rec.user.nv_index == 0);
    TokenSummary sum{t->slot_id, t->rec.serial, t->rec.label, 0, 0, da};
    for (const store::ObjectStamp& st : store_->ObjectStamps(t->db_id))
      ++(st.is_private ? sum.private_objects : sum.public_objects);
    out.push_back(sum);
  }
  return out;
}

CK_RV Module::FindObjectsInit(CK_SESSION_HANDLE h, const CK_ATTRIBUTE* tmpl, CK_ULONG n) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (s->find.active) return CKR_OPERATION_ACTIVE;
  for (CK_ULONG i = 0; i < n; ++i)
    if (tmpl[i].ulValueLen && !tmpl[i].pValue) return CKR_ARGUMENTS_BAD;
  Token& t = *s->token;
  Sync(t);
  FindState f;
  f.active = true;
  for (const std::shared_ptr<Object>& o : Candidates(t, tmpl, n))
    if (Visible(t, *o) && o->attrs.Matches(tmpl, n)) f.results.push_back(o->handle);
  for (CK_OBJECT_HANDLE handle : SessionCandidates(t, tmpl, n)) {
    const Object& o = *objects_.at(handle);
    if (Visible(t, o) && o.attrs.Matches(tmpl, n)) f.results.push_back(handle);
  }
  s->find = std::move(f);
  return CKR_OK;
}

CK_RV Module::FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE* out, CK_ULONG max,
                          CK_ULONG* count) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->find.active) return CKR_OPERATION_NOT_INITIALIZED;
  FindState& f = s->find;
  const size_t n = std::min<size_t>(max, f.results.size() - f.next);
  std::copy_n(f.results.begin() + static_cast<ptrdiff_t>(f.next), n, out);
  f.next += n;
  *count = n;
  return CKR_OK;
}

CK_RV Module::FindObjectsFinal(CK_SESSION_HANDLE h) {
  Session* s = FindSession(h);
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  if (!s->find.active) return CKR_OPERATION_NOT_INITIALIZED;
  s->find = FindState{};
  return CKR_OK;
}

}  // namespace tpmtoken

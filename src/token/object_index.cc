// The token object cache and the search index: a search by CKA_LABEL, CKA_ID
// or CKA_CLASS asks the store for the rows whose index tag matches
// (store/index.cc) and decrypts only those; other records are decrypted when
// a search needs them, never all at login. Session objects have an index in
// memory, so a search by label does not walk every handle.
#include "token/module.h"
#include "util/log.h"

namespace tpmtoken {
namespace {

// Past this many cached objects, one listing of the token's rows is cheaper
// than one lookup per cached row.
constexpr size_t kRowChecks = 64;
// Decrypted objects kept per token; past it, those no operation holds go
// (their handles stay valid), so memory follows use, not the token's size.
constexpr size_t kCacheMax = 2048;

constexpr CK_ATTRIBUTE_TYPE kIndexed[] = {CKA_LABEL, CKA_ID, CKA_CLASS};

// The attribute a search goes through: a label or an ID (few rows share
// one) before a class.
const CK_ATTRIBUTE* IndexedAttribute(const CK_ATTRIBUTE* tmpl, CK_ULONG n) {
  const CK_ATTRIBUTE* cls = nullptr;
  for (CK_ULONG i = 0; i < n; ++i) {
    if (tmpl[i].type == CKA_LABEL || tmpl[i].type == CKA_ID) return &tmpl[i];
    if (tmpl[i].type == CKA_CLASS && !cls) cls = &tmpl[i];
  }
  return cls;
}

store::IndexColumn ColumnOf(CK_ATTRIBUTE_TYPE type) {
  return type == CKA_LABEL ? store::IndexColumn::kLabel
         : type == CKA_ID  ? store::IndexColumn::kId
                           : store::IndexColumn::kClass;
}

std::string SessionKey(CK_ATTRIBUTE_TYPE type, ByteView value) {
  std::string k(reinterpret_cast<const char*>(&type), sizeof type);
  k.append(reinterpret_cast<const char*>(value.data()), value.size());
  return k;
}

}  // namespace

void Module::ForgetObjects(Token& t) {
  while (!t.objects.empty()) Uncache(t, t.objects.begin()->first);
  t.seen_version = -1;
  t.index_key_public.reset();
  t.index_key_private.reset();
}

// A session key's auth value lived only here: with the object it is gone,
// and its TPM object leaves the key cache (issue 9 item 1).
void Module::DropSessionObjectsIf(const std::function<bool(const Object&)>& drop) {
  for (auto& tp : tokens_) {
    Token& t = *tp;
    std::vector<std::shared_ptr<Object>> gone;
    for (CK_OBJECT_HANDLE handle : t.session_objects)
      if (auto it = objects_.find(handle); it != objects_.end() && drop(*it->second))
        gone.push_back(it->second);
    for (const auto& o : gone) {
      IndexSessionObject(t, *o, false);
      if (o->key) tpm_->FlushKey(o->key->blob);
      objects_.erase(o->handle);
    }
  }
}

void Module::DropSessionObjects(CK_SESSION_HANDLE h) {
  DropSessionObjectsIf([h](const Object& o) { return o.session == h; });
}

void Module::IndexSessionObject(Token& t, const Object& o, bool add) {
  if (add)
    t.session_objects.insert(o.handle);
  else
    t.session_objects.erase(o.handle);
  for (CK_ATTRIBUTE_TYPE type : kIndexed) {
    const Bytes* v = o.attrs.Find(type);
    if (!v) continue;
    const std::string k = SessionKey(type, *v);
    if (add) {
      t.session_index[k].insert(o.handle);
    } else if (auto it = t.session_index.find(k); it != t.session_index.end()) {
      it->second.erase(o.handle);
      if (it->second.empty()) t.session_index.erase(it);
    }
  }
}

std::set<CK_OBJECT_HANDLE> Module::SessionCandidates(const Token& t, const CK_ATTRIBUTE* tmpl,
                                                     CK_ULONG n) const {
  const CK_ATTRIBUTE* a = IndexedAttribute(tmpl, n);
  if (!a) return t.session_objects;
  const auto it = t.session_index.find(
      SessionKey(a->type, {static_cast<const uint8_t*>(a->pValue), a->ulValueLen}));
  return it == t.session_index.end() ? std::set<CK_OBJECT_HANDLE>{} : it->second;
}

const crypto::HmacKey& Module::IndexKeyOf(Token& t, bool is_private) {
  std::unique_ptr<crypto::HmacKey>& k = is_private ? t.index_key_private : t.index_key_public;
  if (!k) {
    const Secret key = store::IndexKey(is_private ? t.tk.view() : sk_.view());
    k = std::make_unique<crypto::HmacKey>("SHA256", key.view());
  }
  return *k;
}

store::IndexTags Module::TagsOf(Token& t, const Object& o) {
  const crypto::HmacKey& key = IndexKeyOf(t, o.is_private());
  auto tag = [&](CK_ATTRIBUTE_TYPE type) {
    const Bytes* v = o.attrs.Find(type);
    return store::IndexTag(key, ColumnOf(type),
                           v ? std::optional<ByteView>(*v) : std::nullopt);
  };
  return {tag(CKA_LABEL), tag(CKA_ID), tag(CKA_CLASS)};
}

void Module::Uncache(Token& t, int64_t row) {
  const auto it = t.objects.find(row);
  if (it == t.objects.end()) return;
  t.uncached[it->second->handle] = row;
  objects_.erase(it->second->handle);
  t.objects.erase(it);
}

void Module::TrimCache(Token& t) {
  if (t.objects.size() <= kCacheMax) return;
  std::vector<int64_t> idle;
  for (const auto& [row, o] : t.objects)
    if (o.use_count() <= 2) idle.push_back(row);  // only the two maps hold it
  for (int64_t row : idle) {
    if (t.objects.size() <= kCacheMax / 2) break;
    Uncache(t, row);
  }
}

// Checks the objects this process holds against the store when another
// process committed (PRAGMA data_version moved): a changed row is read
// again, a deleted one leaves. Nothing else is read.
void Module::Sync(Token& t) {
  const int64_t version = store_->db().DataVersion();
  TrimCache(t);
  if (version == t.seen_version) return;
  t.seen_version = version;
  if (t.objects.empty()) return;
  std::map<int64_t, store::ObjectStamp> now;
  if (t.objects.size() > kRowChecks) {
    for (const store::ObjectStamp& st : store_->ObjectStamps(t.db_id)) now[st.id] = st;
  } else {
    for (const auto& [row, o] : t.objects)
      if (auto st = store_->Stamp(t.db_id, row)) now[row] = *st;
  }
  std::vector<int64_t> rows;
  for (const auto& [row, o] : t.objects) rows.push_back(row);
  for (int64_t row : rows) {
    const auto st = now.find(row);
    if (st == now.end()) {
      objects_.erase(t.objects.at(row)->handle);
      t.objects.erase(row);
      t.handles.erase(row);  // gone for good: row ids are never reused
    } else if (!LoadRow(t, st->second)) {
      Uncache(t, row);  // now private, or unreadable
    }
  }
}

// The object of one row, from the cache when its generation is current,
// else decrypted now; nullptr when the row is gone, unreadable, or private
// and the user is not logged in.
std::shared_ptr<Object> Module::LoadRow(Token& t, const store::ObjectStamp& st) {
  auto it = t.objects.find(st.id);
  if (it != t.objects.end() && it->second->gen == st.gen &&
      it->second->is_private() == st.is_private)
    return it->second;
  if (st.is_private && t.login != CKU_USER) return nullptr;
  if (t.unreadable.count(st.id) && it == t.objects.end()) return nullptr;
  const ByteView key = st.is_private ? t.tk.view() : sk_.view();
  std::optional<Secret> plain;
  int64_t gen = st.gen;
  // Another process may delete (or rewrite) the row between the listing
  // and this read: gone is not tampered.
  if (store_->LoadObject(t.db_id, st.id, st.is_private, key, &plain, &gen) ==
      store::LoadResult::kGone)
    return nullptr;
  auto o = std::make_shared<Object>();
  bool readable = false;
  if (plain) {
    try {
      DecodeObjectRecord(plain->view(), o.get());
      readable = true;
    } catch (const DecodeError&) {
    }
  }
  if (!readable) {
    if (t.unreadable.insert(st.id).second)
      log::Error("token ", t.rec.serial, ": object ", st.id, " in ", store_->path(),
                 " fails authentication (tampered or corrupted); it is skipped, the rest "
                 "of the token stays usable");
    return nullptr;
  }
  t.unreadable.erase(st.id);
  o->db_id = st.id;
  o->gen = gen;
  auto [h, fresh] = t.handles.try_emplace(st.id, 0);
  if (fresh) h->second = NextObjectHandle();
  o->handle = h->second;
  t.uncached.erase(o->handle);
  objects_[o->handle] = o;
  t.objects[st.id] = o;
  return o;
}

// The token objects a search must look at, decrypted: the rows whose index
// tag matches the template's label, ID or class (and untagged rows of an
// older schema, which are tagged on the way), else every row it may see.
std::vector<std::shared_ptr<Object>> Module::Candidates(Token& t, const CK_ATTRIBUTE* tmpl,
                                                        CK_ULONG n) {
  const bool user = t.login == CKU_USER;
  std::vector<store::ObjectStamp> rows;
  if (const CK_ATTRIBUTE* a = IndexedAttribute(tmpl, n)) {
    const store::IndexColumn column = ColumnOf(a->type);
    const ByteView value(static_cast<const uint8_t*>(a->pValue), a->ulValueLen);
    std::vector<Bytes> tags = {store::IndexTag(IndexKeyOf(t, false), column, value)};
    if (user) tags.push_back(store::IndexTag(IndexKeyOf(t, true), column, value));
    rows = store_->FindRows(t.db_id, column, tags, user);
  } else {
    rows = store_->ObjectStamps(t.db_id);
  }
  std::vector<std::shared_ptr<Object>> out, untagged;
  out.reserve(rows.size());
  for (const store::ObjectStamp& st : rows) {
    if (st.is_private && !user) continue;
    std::shared_ptr<Object> o = LoadRow(t, st);
    if (!o) continue;
    out.push_back(o);
    if (!st.tagged) untagged.push_back(o);
  }
  if (!untagged.empty()) TagRows(t, untagged);
  return out;
}

// Gives rows of a store from before schema 5 their index tags, once. A
// store this process cannot write keeps them untagged: its searches still
// find them (untagged rows are always candidates), only slower.
void Module::TagRows(Token& t, const std::vector<std::shared_ptr<Object>>& objs) {
  if (store_->read_only()) return;
  try {
    store::Db::Txn txn(store_->db());
    for (const auto& o : objs) store_->SetTags(t.db_id, o->db_id, o->gen, TagsOf(t, *o));
    txn.Commit();
  } catch (const store::StoreError& e) {
    log::Warn("token ", t.rec.serial, ": could not write index tags to ", store_->path(), " (",
              e.what(), "); searches stay correct and try again later");
  }
}

}  // namespace tpmtoken

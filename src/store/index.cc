// Index tags (schema 5): a search by CKA_LABEL, CKA_ID or CKA_CLASS finds its
// rows through keyed hashes, so it reads and decrypts only the matches. The
// key comes from the record's own key (SK for public objects, TK for private
// ones): without it a tag says nothing about the value, and a private
// object's tags are not even comparable with a public one's. What a stolen
// store does show: which rows of a token share a label, an ID or a class.
#include "crypto/kdf.h"
#include "store/store.h"

namespace tpmtoken::store {

Secret IndexKey(ByteView record_key) {
  return crypto::HmacSha256(record_key, {View("tpmtoken index key v1")});
}

Bytes IndexTag(ByteView index_key, IndexColumn column, std::optional<ByteView> value) {
  return IndexTag(crypto::HmacKey("SHA256", index_key), column, value);
}

Bytes IndexTag(const crypto::HmacKey& index_key, IndexColumn column,
               std::optional<ByteView> value) {
  // The column and presence go into the hash: an absent label, an empty
  // label and an ID with the label's bytes all differ.
  const uint8_t head[2] = {static_cast<uint8_t>(column), static_cast<uint8_t>(value ? 1 : 0)};
  const Secret mac = index_key.Mac({ByteView(head, 2), value.value_or(ByteView())});
  return Bytes(mac.view().begin(), mac.view().begin() + 16);  // 128 bits: no chance collision
}

}  // namespace tpmtoken::store

#include "util/bytes.h"

#include <openssl/crypto.h>

namespace tpmtoken {

std::string Hex(ByteView b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (uint8_t c : b) {
    s.push_back(kDigits[c >> 4]);
    s.push_back(kDigits[c & 15]);
  }
  return s;
}

Bytes EncodeBe32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

uint32_t DecodeBe32(ByteView b) {
  if (b.size() != 4) return 0;
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

void Wipe(void* p, size_t n) {
  if (p && n) OPENSSL_cleanse(p, n);
}

void Writer::U32(uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out_.push_back(static_cast<uint8_t>(v >> shift));
}
void Writer::U64(uint64_t v) {
  U32(static_cast<uint32_t>(v >> 32));
  U32(static_cast<uint32_t>(v));
}
void Writer::Blob(ByteView b) {
  U32(static_cast<uint32_t>(b.size()));
  out_.insert(out_.end(), b.begin(), b.end());
}

Secret Writer::TakeSecret() {
  Secret s{ByteView(out_)};
  Wipe(out_.data(), out_.size());
  out_.clear();
  return s;
}

ByteView Reader::Take(size_t n) {
  if (in_.size() - pos_ < n) throw DecodeError("record truncated");
  ByteView v = in_.subspan(pos_, n);
  pos_ += n;
  return v;
}
uint8_t Reader::U8() { return Take(1)[0]; }
uint32_t Reader::U32() {
  ByteView b = Take(4);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}
uint64_t Reader::U64() {
  uint64_t hi = U32();
  return (hi << 32) | U32();
}
ByteView Reader::Blob() { return Take(U32()); }

}  // namespace tpmtoken

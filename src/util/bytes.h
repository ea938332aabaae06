// Byte strings, secrets that are wiped when released, and a small
// length-prefixed encoding used for store records.
#pragma once
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tpmtoken {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

inline ByteView View(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view AsText(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
std::string Hex(ByteView b);

// Four bytes, big-endian; DecodeBe32 of anything but four bytes is 0.
Bytes EncodeBe32(uint32_t v);
uint32_t DecodeBe32(ByteView b);

// Overwrites memory in a way the optimizer keeps.
void Wipe(void* p, size_t n);

// A secret byte string (PIN-derived auth values, unsealed keys). Wiped on
// destruction and before every reallocation; not copyable by accident.
class Secret {
 public:
  Secret() = default;
  explicit Secret(ByteView b) : data_(b.begin(), b.end()) {}
  explicit Secret(size_t n) : data_(n) {}
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  Secret(Secret&& o) noexcept : data_(std::move(o.data_)) {}
  Secret& operator=(Secret&& o) noexcept {
    if (this != &o) {
      Clear();
      data_ = std::move(o.data_);
    }
    return *this;
  }
  ~Secret() { Clear(); }

  Secret Clone() const { return Secret(view()); }
  void Clear() {
    Wipe(data_.data(), data_.size());
    data_.clear();
  }
  uint8_t* data() { return data_.data(); }
  const uint8_t* data() const { return data_.data(); }
  size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }
  ByteView view() const { return {data_.data(), data_.size()}; }

 private:
  std::vector<uint8_t> data_;
};

// Thrown when an encoded record is short or malformed.
struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Big-endian, length-prefixed writer and reader for internal records.
class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(v); }
  void U32(uint32_t v);
  void U64(uint64_t v);
  void Blob(ByteView b);
  void Str(std::string_view s) { Blob(View(s)); }
  Bytes& bytes() { return out_; }
  Bytes Take() { return std::move(out_); }
  // For records that hold secrets: reserve the final size first (no
  // reallocation leaves a copy behind), then take the bytes as a Secret;
  // the writer's buffer is wiped.
  void Reserve(size_t n) { out_.reserve(n); }
  Secret TakeSecret();

 private:
  Bytes out_;
};

class Reader {
 public:
  explicit Reader(ByteView in) : in_(in) {}
  uint8_t U8();
  uint32_t U32();
  uint64_t U64();
  ByteView Blob();
  std::string Str() { return std::string(AsText(Blob())); }
  bool done() const { return pos_ == in_.size(); }

 private:
  ByteView Take(size_t n);
  ByteView in_;
  size_t pos_ = 0;
};

}  // namespace tpmtoken

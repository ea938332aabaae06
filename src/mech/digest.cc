// The low-level SHA contexts are plain structs, which is what makes the
// operation state exportable; they never route through engines or providers.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "mech/digest.h"

#include <openssl/sha.h>

#include <cstring>

namespace tpmtoken::mech {
namespace {

constexpr uint32_t kStateMagic = 0x74746473;  // "ttds"

template <typename Ctx, int (*Init)(Ctx*), int (*Upd)(Ctx*, const void*, size_t),
          int (*Fin)(unsigned char*, Ctx*), CK_MECHANISM_TYPE kType, size_t kSize>
class Sha final : public DigestOp {
 public:
  Sha() { Init(&ctx_); }
  explicit Sha(const Ctx& ctx) : ctx_(ctx) {}
  ~Sha() override { Wipe(&ctx_, sizeof ctx_); }
  void Update(ByteView data) override { Upd(&ctx_, data.data(), data.size()); }
  Bytes Final() override {
    Bytes out(kSize);
    Fin(out.data(), &ctx_);
    return out;
  }
  size_t size() const override { return kSize; }
  CK_MECHANISM_TYPE type() const override { return kType; }
  Bytes SaveState() const override {
    Writer w;
    w.U32(kStateMagic);
    w.U64(kType);
    w.Blob(ByteView(reinterpret_cast<const uint8_t*>(&ctx_), sizeof ctx_));
    return w.Take();
  }
  static std::unique_ptr<DigestOp> Restore(ByteView ctx) {
    if (ctx.size() != sizeof(Ctx)) return nullptr;
    Ctx c;
    std::memcpy(&c, ctx.data(), sizeof c);
    return std::make_unique<Sha>(c);
  }

 private:
  Ctx ctx_;
};

using Sha1 = Sha<SHA_CTX, SHA1_Init, SHA1_Update, SHA1_Final, CKM_SHA_1, 20>;
using Sha224 = Sha<SHA256_CTX, SHA224_Init, SHA224_Update, SHA224_Final, CKM_SHA224, 28>;
using Sha256 = Sha<SHA256_CTX, SHA256_Init, SHA256_Update, SHA256_Final, CKM_SHA256, 32>;
using Sha384 = Sha<SHA512_CTX, SHA384_Init, SHA384_Update, SHA384_Final, CKM_SHA384, 48>;
using Sha512 = Sha<SHA512_CTX, SHA512_Init, SHA512_Update, SHA512_Final, CKM_SHA512, 64>;

}  // namespace

std::unique_ptr<DigestOp> DigestOp::Create(CK_MECHANISM_TYPE type) {
  switch (type) {
    case CKM_SHA_1: return std::make_unique<Sha1>();
    case CKM_SHA224: return std::make_unique<Sha224>();
    case CKM_SHA256: return std::make_unique<Sha256>();
    case CKM_SHA384: return std::make_unique<Sha384>();
    case CKM_SHA512: return std::make_unique<Sha512>();
    default: return nullptr;
  }
}

std::optional<size_t> DigestOp::OutputSize(CK_MECHANISM_TYPE type) {
  switch (type) {
    case CKM_SHA_1: return 20;
    case CKM_SHA224: return 28;
    case CKM_SHA256: return 32;
    case CKM_SHA384: return 48;
    case CKM_SHA512: return 64;
    default: return std::nullopt;
  }
}

std::unique_ptr<DigestOp> DigestOp::RestoreState(ByteView state) {
  try {
    Reader r(state);
    if (r.U32() != kStateMagic) return nullptr;
    const CK_MECHANISM_TYPE type = r.U64();
    ByteView ctx = r.Blob();
    if (!r.done()) return nullptr;
    switch (type) {
      case CKM_SHA_1: return Sha1::Restore(ctx);
      case CKM_SHA224: return Sha224::Restore(ctx);
      case CKM_SHA256: return Sha256::Restore(ctx);
      case CKM_SHA384: return Sha384::Restore(ctx);
      case CKM_SHA512: return Sha512::Restore(ctx);
      default: return nullptr;
    }
  } catch (const DecodeError&) {
    return nullptr;
  }
}

}  // namespace tpmtoken::mech

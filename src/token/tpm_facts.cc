// TPM facts kept in the store so that a cold start asks the TPM for none
// of them (issue 10 item 4): the fixed properties and whether the owner
// hierarchy has a password. Each is sealed under the store key with its
// name as the additional data (issue 8 item 6: an edited or moved value is
// read again) and carries the time it was read.
#include <chrono>

#include "crypto/aead.h"
#include "token/module.h"
#include "util/log.h"

namespace tpmtoken {
namespace {

// TPM facts a cold start would otherwise read with TPM2_GetCapability: the
// fixed properties (names, versions, object slots) and whether the owner
// hierarchy has a password (C_Initialize's warning).
constexpr const char* kTpmInfo = "tpm_info_v1";
constexpr const char* kOwnerAuthSet = "owner_auth_set_v1";
// How long such a fact is taken without asking the TPM: a firmware update or
// a new owner password shows within a day (at once in `tpmtoken status`).
constexpr auto kTpmFactAge = std::chrono::hours(24);

Bytes EncodeInfo(const tpm::TpmInfo& i) {
  Writer w;
  w.Str(i.manufacturer);
  w.Str(i.vendor);
  for (uint8_t v : {i.spec_major, i.spec_minor, i.fw_major, i.fw_minor}) w.U8(v);
  w.U32(i.transient_slots);
  return w.Take();
}

tpm::TpmInfo DecodeInfo(ByteView b) {
  Reader r(b);
  tpm::TpmInfo i;
  i.manufacturer = r.Str();
  i.vendor = r.Str();
  i.spec_major = r.U8();
  i.spec_minor = r.U8();
  i.fw_major = r.U8();
  i.fw_minor = r.U8();
  i.transient_slots = r.U32();
  if (!r.done()) throw DecodeError("trailing bytes");
  return i;
}

uint64_t UnixNow() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

// Sealed under the store key with the name as additional data: an edited or
// moved value fails and the TPM is asked. A clock set back makes it stale.
std::optional<Bytes> Module::RecentTpmFact(const char* name) {
  const std::optional<Bytes> sealed = store_->Meta(name);
  if (!sealed) return std::nullopt;
  try {
    const std::optional<Secret> plain = crypto::AeadOpen(sk_.view(), View(name), *sealed);
    if (!plain) throw DecodeError("fails authentication");
    Reader r(plain->view());
    const uint64_t at = r.U64();
    const ByteView blob = r.Blob();
    if (!r.done()) throw DecodeError("has trailing bytes");
    Bytes value(blob.begin(), blob.end());
    const uint64_t now = UnixNow();
    const auto age = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(kTpmFactAge).count());
    if (at <= now && now - at < age) return value;
  } catch (const DecodeError& e) {
    log::Warn("the TPM fact ", name, " kept in ", store_->path(), " ", e.what(),
              "; reading the TPM");
  }
  return std::nullopt;
}

void Module::KeepTpmFact(const char* name, ByteView value) {
  if (store_->read_only()) return;
  Writer w;
  w.U64(UnixNow());
  w.Blob(value);
  try {
    store_->SetMeta(name, crypto::AeadSeal(sk_.view(), View(name), w.Take()));
  } catch (const store::StoreError& e) {
    log::Warn("could not keep ", name, " in ", store_->path(), ": ", e.what());
  }
}

bool Module::OwnerAuthSet(bool recent) {
  if (recent)
    if (const auto fact = RecentTpmFact(kOwnerAuthSet); fact && fact->size() == 1)
      return (*fact)[0] != 0;
  const bool set = tpm_->OwnerAuthSet();
  KeepTpmFact(kOwnerAuthSet, Bytes{static_cast<uint8_t>(set)});
  return set;
}

const tpm::TpmInfo& Module::KnownTpmInfo() {
  if (const auto fact = RecentTpmFact(kTpmInfo)) {
    try {
      tpm_->UseInfo(DecodeInfo(*fact));
      return tpm_->info();
    } catch (const DecodeError& e) {
      log::Warn("the TPM properties kept in ", store_->path(), " are unreadable (", e.what(),
                "); reading the TPM");
    }
  }
  const tpm::TpmInfo& ti = tpm_->info();
  KeepTpmFact(kTpmInfo, EncodeInfo(ti));
  return ti;
}

}  // namespace tpmtoken

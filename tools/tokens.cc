// tpmtoken status, token init|list|delete, pin change|unlock.
#include <algorithm>
#include <cstring>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "store/store.h"

namespace tpmtoken::tool {
namespace {

std::string PinFlags(CK_FLAGS f, bool so) {
  std::vector<std::string> out;
  if (f & (so ? CKF_SO_PIN_LOCKED : CKF_USER_PIN_LOCKED)) out.push_back("locked");
  else if (f & (so ? CKF_SO_PIN_FINAL_TRY : CKF_USER_PIN_FINAL_TRY)) out.push_back("final-try");
  else if (f & (so ? CKF_SO_PIN_COUNT_LOW : CKF_USER_PIN_COUNT_LOW)) out.push_back("count-low");
  if (!so && !(f & CKF_USER_PIN_INITIALIZED)) out.push_back("not-set");
  if (out.empty()) return "ok";
  std::string s;
  for (const auto& x : out) s += (s.empty() ? "" : ",") + x;
  return s;
}

CK_UTF8CHAR* Label32(const std::string& label, CK_UTF8CHAR (&field)[32]) {
  if (label.size() > 32) throw ToolError("labels are at most 32 bytes", kUsage);
  std::memset(field, ' ', 32);
  std::memcpy(field, label.data(), label.size());
  return field;
}

}  // namespace

int Status(const Options& o) {
  Context ctx;
  Module& m = ctx.module();
  const tpm::TpmInfo& ti = m.tpm().info();
  const tpm::DaState da = m.tpm().ReadDaState();
  const bool rm = m.tpm().has_resource_manager();
  const auto tokens = m.Tokens();
  const auto anchor = m.anchor_info();
  const std::string exposure = m.OwnerExposure();
  const std::string boot_authorizer = m.GetBootState().authorizer;  // issue 11
  std::string anchor_text = "NOT ANCHORED: a copy put back in place of the store is not detected";
  if (anchor) {
    std::ostringstream a;
    a << "TPM NV counter 0x" << std::hex << anchor->nv_index << std::dec << " at "
      << anchor->tpm_value << ", store expects " << anchor->store_value;
    anchor_text = a.str();
  }
  const bool fallback =
      std::any_of(tokens.begin(), tokens.end(), [](const auto& t) { return t.da_fallback; });
  // Which storage primary the sessions are salted to and the seals live under.
  const uint32_t srk = m.tpm().PrimaryPersistentHandle();
  std::ostringstream primary;
  if (srk == tpm::Tpm::kTcgSrk && m.config().primary_handle == 0)
    primary << "the platform's TCG SRK at 0x81000001 (persistent; no TPM2_CreatePrimary)";
  else if (srk != 0)
    primary << "persistent key 0x" << std::hex << srk << std::dec << " (primary_handle)";
  else
    primary << "created by TPM2_CreatePrimary under the owner hierarchy at each start (no "
               "TCG SRK at 0x81000001 for this store)";
  if (o.json) {
    std::cout << "{\"tpm\":{\"manufacturer\":" << JsonString(ti.manufacturer)
              << ",\"vendor\":" << JsonString(ti.vendor) << ",\"firmware\":\"" << int(ti.fw_major)
              << "." << int(ti.fw_minor) << "\",\"spec\":\"" << int(ti.spec_major) << "."
              << int(ti.spec_minor) << "\",\"tcti\":" << JsonString(m.config().tcti)
              << ",\"resource_manager\":" << (rm ? "true" : "false")
              << ",\"storage_primary\":" << (srk ? std::to_string(srk) : "\"created\"")
              << ",\"dictionary_attack\":{\"failures\":" << da.failures
              << ",\"max_tries\":" << da.max_tries << ",\"recovery_seconds\":" << da.recovery_seconds
              << ",\"in_lockout\":" << (da.in_lockout ? "true" : "false") << "}},"
              << "\"store\":{\"path\":" << JsonString(m.store().path())
              << ",\"schema\":" << store::kSchemaVersion
              << ",\"pcr_policy\":" << JsonString(m.store_key_pcrs().ToString())
              << ",\"anchor\":" << (anchor ? std::to_string(anchor->nv_index) : "null")
              << ",\"owner_exposure\":" << JsonString(exposure)
              << "},\"tokens\":[";
  } else {
    std::cout << "TPM        " << ti.manufacturer << " " << ti.vendor << ", firmware "
              << int(ti.fw_major) << "." << int(ti.fw_minor) << ", TPM 2.0 revision "
              << int(ti.spec_major) << "." << int(ti.spec_minor) << "\n"
              << "TCTI       " << m.config().tcti
              << (rm ? " (resource manager)" : " (no resource manager)") << "\n"
              << "Primary    " << primary.str() << "\n"
              << "DA lockout " << da.failures << " of " << da.max_tries << " failures"
              << (da.in_lockout ? ", IN LOCKOUT" : "") << " (recovery " << da.recovery_seconds
              << " s)"
              << (fallback ? "; the PINs of tokens marked below count here\n"
                           : "; token PINs are counted per token, not here\n")
              << "Store      " << m.store().path() << " (schema " << store::kSchemaVersion << ")\n"
              << "Store key  "
              << (!boot_authorizer.empty()
                      ? "sealed to this TPM and to boot states authorized by " + boot_authorizer +
                            " (tpmtoken boot status)"
                  : m.store_key_pcrs().empty()
                      ? std::string("sealed to this TPM, not bound to PCRs")
                      : "sealed to this TPM and bound to PCRs " + m.store_key_pcrs().ToString())
              << "\n"
              << "Anchor     " << anchor_text << "\n"
              << (exposure.empty() ? std::string() : "WARNING    " + exposure + "\n")
              << "PIN limits "
              << (fallback ? "FALLBACK: some tokens' PINs count against the TPM's dictionary-attack "
                        "counter (marked below; the TPM refused PIN counters)\n"
                      : "TPM PIN_FAIL counters per token and role\n")
              << "Tokens     " << tokens.size() << "\n";
  }
  bool first = true;
  for (const auto& t : tokens) {
    CK_TOKEN_INFO info;
    Check(m.GetTokenInfo(t.slot, &info), "token info");
    if (o.json) {
      std::cout << (first ? "" : ",") << "{\"label\":" << JsonString(t.label)
                << ",\"serial\":" << JsonString(t.serial) << ",\"slot\":" << t.slot
                << ",\"user_pin\":" << JsonString(PinFlags(info.flags, false))
                << ",\"so_pin\":" << JsonString(PinFlags(info.flags, true))
                << ",\"public_objects\":" << t.public_objects
                << ",\"private_objects\":" << t.private_objects << ",\"pin_counter\":"
                << (t.da_fallback ? "\"dictionary-attack\"" : "\"per-token\"") << "}";
    } else {
      std::cout << "  " << t.label << "  serial " << t.serial << "  slot " << t.slot
                << "  user PIN " << PinFlags(info.flags, false) << "  SO PIN "
                << PinFlags(info.flags, true) << "  objects " << t.public_objects << " public, "
                << t.private_objects << " private"
                << (t.da_fallback ? "  PINs counted by the TPM's dictionary-attack counter" : "")
                << "\n";
    }
    first = false;
  }
  if (o.json) std::cout << "]}\n";
  return kOk;
}

int TokenInit(const Options& o) {
  Context ctx;
  Module& m = ctx.module();
  for (const auto& t : m.Tokens())
    if (t.label == o.label)
      throw ToolError("a token labelled '" + o.label + "' exists; delete it first", kUsage);
  CK_ULONG n = 0;
  Check(m.GetSlotList(false, nullptr, &n), "slots");
  std::vector<CK_SLOT_ID> slots(n);
  Check(m.GetSlotList(false, slots.data(), &n), "slots");
  const CK_SLOT_ID free_slot = slots.back();  // the free slot is always last
  const Secret so = ReadPin(o.so_pin);
  const Secret user = ReadPin(o.pin);
  CK_UTF8CHAR field[32];
  Check(m.InitToken(free_slot, so.view(), ByteView(Label32(o.label, field), 32)), "token init");
  CK_SESSION_HANDLE s = 0;
  Check(m.OpenSession(free_slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, &s), "open session");
  Check(m.Login(s, CKU_SO, so.view()), "SO login");
  Check(m.InitPIN(s, user.view()), "set the user PIN");
  CK_TOKEN_INFO info;
  Check(m.GetTokenInfo(free_slot, &info), "token info");
  std::cout << "token '" << o.label << "' created, serial "
            << std::string(reinterpret_cast<char*>(info.serialNumber), 16) << "\n";
  return kOk;
}

int TokenList(const Options& o) {
  Context ctx;
  const auto tokens = ctx.module().Tokens();
  if (o.json) {
    std::cout << "[";
    for (size_t i = 0; i < tokens.size(); ++i)
      std::cout << (i ? "," : "") << "{\"label\":" << JsonString(tokens[i].label)
                << ",\"serial\":" << JsonString(tokens[i].serial) << ",\"slot\":" << tokens[i].slot
                << "}";
    std::cout << "]\n";
    return kOk;
  }
  for (const auto& t : tokens)
    std::cout << t.label << "\t" << t.serial << "\tslot " << t.slot << "\n";
  return kOk;
}

int TokenDelete(const Options& o) {
  Context ctx;
  const CK_SLOT_ID slot = ctx.SlotOf(o.label);
  if (o.owner) {
    try {
      Check(ctx.module().DeleteTokenAsOwner(slot), "token delete --owner");
    } catch (const tpm::TpmError& e) {
      if (e.RefusedAuthOf(TPM2_RH_OWNER))
        throw ToolError(std::string("the TPM refused the owner authorization (") + e.what() +
                            "): set owner_auth in tpmtoken.conf; nothing was deleted",
                        kAuth);
      throw;
    }
    std::cout << "token '" << o.label << "' deleted with the TPM owner authorization\n";
    return kOk;
  }
  const Secret so = ReadPin(o.so_pin);
  Check(ctx.module().DeleteToken(slot, so.view()), "token delete");
  std::cout << "token '" << o.label << "' deleted\n";
  return kOk;
}

int PinChange(const Options& o) {
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.Session(o.label);
  Module& m = ctx.module();
  const PinSource& old_src = o.so ? o.so_pin : o.pin;
  const Secret old_pin = ReadPin(old_src);
  const Secret new_pin = ReadPin(o.new_pin);
  if (o.so) Check(m.Login(s, CKU_SO, old_pin.view()), "SO login");
  Check(m.SetPIN(s, old_pin.view(), new_pin.view()), "pin change");
  std::cout << (o.so ? "SO" : "user") << " PIN of '" << o.label << "' changed\n";
  return kOk;
}

int PinUnlock(const Options& o) {
  Context ctx;
  const CK_SESSION_HANDLE s = ctx.Session(o.label);
  Module& m = ctx.module();
  const Secret so = ReadPin(o.so_pin);
  const Secret user = ReadPin(o.new_pin);
  Check(m.Login(s, CKU_SO, so.view()), "SO login");
  Check(m.InitPIN(s, user.view()), "pin unlock");
  std::cout << "user PIN of '" << o.label << "' reset and unlocked\n";
  return kOk;
}

}  // namespace tpmtoken::tool

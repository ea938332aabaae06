// tpmtoken store accept-restore | delete: the store's anchor in the TPM.
#include <iostream>

#include "commands.h"

namespace tpmtoken::tool {

int StoreAcceptRestore(const Options& o) {
  std::unique_ptr<Module> m;
  try {
    m = Module::Create(Module::OpenMode::kRecover);
  } catch (const std::exception& e) {
    throw ToolError(e.what(), kFailure);
  }
  if (m->anchor_problem().empty()) {
    std::cout << "the store " << m->store().path()
              << " matches this TPM's record; there is nothing to accept\n";
    return kOk;
  }
  Secret pin;
  if (!o.owner) pin = ReadPin(o.so_pin);
  const CK_RV rv = m->AcceptRestore(pin.view(), o.owner);
  if (rv == CKR_USER_NOT_LOGGED_IN)
    throw ToolError("this store cannot be re-bound with SO PINs (it has no token, or no anchor "
                    "record): use --owner with the TPM owner authorization",
                    kAuth);
  Check(rv, "accept-restore (the SO PIN must open every token)");
  std::cout << "restore accepted: " << m->store().path()
            << " is bound to this TPM's counter as it is now\n";
  return kOk;
}

int StoreDelete(const Options& o) {
  if (!o.yes) throw ToolError("store delete needs --yes", kUsage);
  try {
    std::cout << Module::DeleteStore();
  } catch (const tpm::TpmError& e) {
    if (e.RefusedAuthOf(TPM2_RH_OWNER))
      throw ToolError(std::string("the TPM refused the owner authorization (") + e.what() +
                          "): set owner_auth in tpmtoken.conf; nothing was removed",
                      kAuth);
    throw;
  }
  return kOk;
}

}  // namespace tpmtoken::tool

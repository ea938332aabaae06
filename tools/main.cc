// tpmtoken: the admin tool for tpmtoken tokens, on the same core as the
// PKCS#11 module.
#include <CLI/CLI.hpp>

#include <iostream>

#include "commands.h"

using namespace tpmtoken::tool;

namespace {

const char* kFooter = R"(PINs come from --pin-file FILE, the environment (TPMTOKEN_PIN,
TPMTOKEN_SO_PIN, TPMTOKEN_NEW_PIN), --pin (visible to other users: warned),
or a prompt without echo. TPMTOKEN_TCTI, TPMTOKEN_STORE and TPMTOKEN_CONF
choose the TPM, the store and the configuration.

Exit codes: 0 done; 2 bad arguments or input; 3 no such token, key or
certificate; 4 wrong or locked PIN; 5 the TPM or the store failed.
verify: 30 bad signature or digest mismatch; 31 untrusted signer (no chain to
the anchor, expired, no codeSigning); 32 bad input (unreadable file, malformed
signature, unknown anchor).
attest: 10 malformed file; 11 EK not trusted; 12 AK not a restricted fixedTPM
key; 13 another challenge's state; 14 replayed response; 15 secret not
proven; 16 bad signature; 17 not the requested key; 18 imported key;
19 key not fixedTPM/fixedParent.
boot: 20 authorization not signed by the store's authorizer; 21 revoked;
22 no authorization approves this boot state.)";

void PinOptions(CLI::App* cmd, PinSource& src, const std::string& name) {
  cmd->add_option("--" + name + "-file", src.file, "read the " + name + " from this file");
  cmd->add_option("--" + name, src.value, "the " + name + " (visible in ps; prefer the file)");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.pin.prompt = "User PIN: ";
  int (*run)(const Options&) = nullptr;
  std::string token;

  CLI::App app{"tpmtoken: TPM-backed PKCS#11 tokens: tokens, PINs, keys, certificates"};
  app.footer(kFooter);
  app.require_subcommand(1);
  app.add_flag("--json", o.json, "machine-readable output for status and the list commands");
  // --token, --json and the PIN options go before or after the subcommand:
  // the app holds them too, and subcommands hand options they lack up to it.
  app.fallthrough();
  app.add_option("--token", token, "the token's label (default: the only token)");
  PinOptions(&app, o.pin, "pin");
  PinOptions(&app, o.so_pin, "so-pin");
  PinOptions(&app, o.new_pin, "new-pin");

  auto needs_token = [&](CLI::App* c) {
    c->add_option("--token", token, "the token's label (default: the only token)");
  };

  auto* status = app.add_subcommand("status", "the TPM, its lockout state, the store and the tokens");
  status->callback([&] { run = Status; });

  auto* tok = app.add_subcommand("token", "create, list and delete tokens");
  tok->require_subcommand(1);
  auto* tinit = tok->add_subcommand("init", "create a token with an SO PIN and a user PIN");
  tinit->add_option("--label", o.label, "the token's label")->required();
  PinOptions(tinit, o.so_pin, "so-pin");
  PinOptions(tinit, o.pin, "pin");
  tinit->callback([&] { run = TokenInit; });
  auto* tlist = tok->add_subcommand("list", "list the tokens");
  tlist->callback([&] { run = TokenList; });
  auto* tdel = tok->add_subcommand("delete", "delete a token, its objects and PIN counters (SO PIN)");
  needs_token(tdel);
  PinOptions(tdel, o.so_pin, "so-pin");
  tdel->add_flag("--owner", o.owner,
                 "with the TPM owner authorization instead of the SO PIN (a locked SO PIN)");
  tdel->callback([&] { run = TokenDelete; });

  auto* pin = app.add_subcommand("pin", "change or unlock PINs");
  pin->require_subcommand(1);
  auto* pchange = pin->add_subcommand("change", "change the user PIN (or the SO PIN with --so)");
  needs_token(pchange);
  pchange->add_flag("--so", o.so, "change the SO PIN");
  PinOptions(pchange, o.pin, "pin");
  PinOptions(pchange, o.so_pin, "so-pin");
  PinOptions(pchange, o.new_pin, "new-pin");
  pchange->callback([&] { run = PinChange; });
  auto* punlock = pin->add_subcommand("unlock", "the SO sets a new user PIN, clearing its lock");
  needs_token(punlock);
  PinOptions(punlock, o.so_pin, "so-pin");
  PinOptions(punlock, o.new_pin, "new-pin");
  punlock->callback([&] { run = PinUnlock; });

  auto* key = app.add_subcommand("key", "keys in the TPM");
  key->require_subcommand(1);
  auto* kgen = key->add_subcommand("generate", "generate a key pair in the TPM");
  needs_token(kgen);
  kgen->add_option("--key", o.key, "the key's label")->required();
  kgen->add_option("--type", o.type, "ec:p256 (default), ec:p384, ec:p521, rsa:1024, rsa:2048, rsa:3072, rsa:4096");
  kgen->add_flag("--unattended", o.unattended,
                 "a public key (CKA_PRIVATE false): usable with no PIN, on this TPM and in the "
                 "boot state the store is bound to");
  kgen->add_option("--pcr-policy", o.pcr_policy,
                   "bind the key to these PCRs' values of now, e.g. sha256:7: the TPM refuses "
                   "it once one changes");
  PinOptions(kgen, o.pin, "pin");
  kgen->callback([&] { run = KeyGenerate; });
  auto* klist = key->add_subcommand("list", "list the keys");
  needs_token(klist);
  PinOptions(klist, o.pin, "pin");
  klist->callback([&] { run = KeyList; });
  auto* kdel = key->add_subcommand("delete", "delete a key pair");
  needs_token(kdel);
  kdel->add_option("--key", o.key, "the key's label")->required();
  PinOptions(kdel, o.pin, "pin");
  kdel->callback([&] { run = KeyDelete; });
  auto* kimp = key->add_subcommand("import", "put a PEM, DER or PKCS#8 private key into the TPM");
  needs_token(kimp);
  kimp->add_option("--key", o.key, "the key's label")->required();
  kimp->add_option("file", o.file, "the private key file")->required();
  PinOptions(kimp, o.pin, "pin");
  kimp->callback([&] { run = KeyImport; });

  auto* csr = app.add_subcommand("csr", "a PKCS#10 request signed by a TPM key, as PEM");
  needs_token(csr);
  csr->add_option("--key", o.key, "the key's label")->required();
  csr->add_option("--subject", o.subject, "e.g. '/CN=thing-42/O=Example'")->required();
  csr->add_option("--san", o.san, "subjectAltName, e.g. 'DNS:thing-42.example,IP:10.0.0.7'");
  csr->add_option("--out", o.out, "write here instead of standard output");
  PinOptions(csr, o.pin, "pin");
  csr->callback([&] { run = Csr; });

  auto* cert = app.add_subcommand("cert", "certificates on the token");
  cert->require_subcommand(1);
  auto* cimp = cert->add_subcommand("import", "store a key's certificate with its id and label");
  needs_token(cimp);
  cimp->add_option("--key", o.key, "the key's label")->required();
  cimp->add_option("file", o.file, "the certificate (PEM or DER)")->required();
  PinOptions(cimp, o.pin, "pin");
  cimp->callback([&] { run = CertImport; });
  auto* clist = cert->add_subcommand("list", "subject, issuer and expiry of each certificate");
  needs_token(clist);
  clist->callback([&] { run = CertList; });

  auto* rot = app.add_subcommand("rotate", "replace a key: start (new key + CSR), then --finish CERT");
  needs_token(rot);
  rot->add_option("--key", o.key, "the key's label")->required();
  rot->add_option("--subject", o.subject, "the new CSR's subject (default: the current certificate's)");
  rot->add_option("--san", o.san, "subjectAltName for the new CSR");
  rot->add_option("--out", o.out, "write the CSR here instead of standard output");
  rot->add_option("--finish", o.finish, "install this certificate for the new key, retire the old");
  PinOptions(rot, o.pin, "pin");
  rot->callback([&] { run = Rotate; });

  auto* st = app.add_subcommand("store", "the store's anchor in the TPM: accept a restore, delete");
  st->require_subcommand(1);
  auto* acc = st->add_subcommand(
      "accept-restore",
      "bind a store restored from a backup to the TPM's counter (every token's SO PIN, or --owner)");
  acc->add_flag("--owner", o.owner,
                "use the TPM owner authorization (owner_auth) instead of the SO PINs");
  PinOptions(acc, o.so_pin, "so-pin");
  acc->callback([&] { run = StoreAcceptRestore; });
  auto* sdel = st->add_subcommand(
      "delete", "remove the store, its tokens and their TPM state (TPM owner authorization)");
  sdel->add_flag("--yes", o.yes, "yes: every token in the store is destroyed")->required();
  sdel->callback([&] { run = StoreDelete; });

  auto* aud = app.add_subcommand("audit", "the store's audit log (security events, hash-chained)");
  aud->add_option("--since", o.since, "only entries from this time on (2026-11-30[T12:00:00])");
  aud->callback([&] {
    if (!run) run = Audit;
  });
  auto* aver = aud->add_subcommand("verify", "check the chain: exit 5 naming the first bad entry");
  aver->callback([&] { run = AuditVerify; });

  // Trust anchors and update verification (issue 11).
  auto* anc = app.add_subcommand("anchor", "trust anchors: CA certificates on the token that verify updates");
  anc->require_subcommand(1);
  auto* aadd = anc->add_subcommand("add", "install a CA certificate as a trust anchor (SO PIN)");
  needs_token(aadd);
  aadd->add_option("--label", o.anchor, "the anchor's name (verify --anchor NAME)")->required();
  aadd->add_option("cert", o.file, "the CA certificate, PEM or DER")->required();
  PinOptions(aadd, o.so_pin, "so-pin");
  aadd->footer(
      "An anchor must be a CA certificate (basicConstraints CA:TRUE; keyCertSign if it has a\n"
      "keyUsage): signers' certificates chain to it. It is stored as a public token certificate\n"
      "with CKA_TRUSTED=TRUE and CKA_CERTIFICATE_CATEGORY=2, visible to every PKCS#11 client;\n"
      "only the SO can add, change or remove one. The audit log records the change.");
  aadd->callback([&] { run = AnchorAdd; });
  auto* alist = anc->add_subcommand("list", "label, subject, SHA-256 fingerprint and expiry of each anchor");
  needs_token(alist);
  alist->add_flag("--json", o.json, "machine-readable output");
  alist->callback([&] { run = AnchorList; });
  auto* arem = anc->add_subcommand("remove", "remove a trust anchor (SO PIN)");
  needs_token(arem);
  arem->add_option("--label", o.anchor, "the anchor's name")->required();
  PinOptions(arem, o.so_pin, "so-pin");
  arem->callback([&] { run = AnchorRemove; });
  auto* ver = app.add_subcommand("verify", "check a detached CMS signature over a file against a trust anchor");
  needs_token(ver);
  ver->add_option("--anchor", o.anchor, "the trust anchor's label")->required();
  ver->add_option("--signature", o.signature, "the detached CMS signature, DER or PEM")->required();
  ver->add_option("file", o.file, "the signed file (streamed: any size)")->required();
  ver->footer(
      "The signature is what `openssl cms -sign -binary -in FILE -signer S.pem -inkey S.key\n"
      "[-certfile INTERMEDIATES.pem] -outform DER -out SIG` makes. Every signer's certificate\n"
      "must chain to the anchor (intermediates may travel in the signature), be within its\n"
      "validity, have codeSigning if it has an extendedKeyUsage and digitalSignature if it has\n"
      "a keyUsage. The anchor is read from the token, never from a file. No PIN is needed.\n"
      "Exit codes: 0 valid; 30 bad signature or digest mismatch; 31 untrusted signer;\n"
      "32 bad input (unreadable file, malformed signature, unknown anchor); 3 no such token;\n"
      "5 the TPM or the store failed.");
  ver->callback([&] { run = Verify; });

  // Key attestation (issue 12): `attest` makes the request; challenge and
  // verify run on the verifier with no TPM and no store.
  auto* att = app.add_subcommand("attest", "prove to a verifier that a key lives in a genuine TPM");
  needs_token(att);
  att->add_option("--key", o.key, "the key's label (the request)");
  att->add_option("--out", o.out, "write the request (or the subcommand's output) here");
  att->add_option("--ek-pem", o.ek_pem, "also write the EK public key here (to enroll it)");
  att->callback([&] {
    if (run) return;  // a subcommand ran
    if (o.key.empty() || o.out.empty()) throw CLI::ValidationError("attest needs --key and --out");
    run = AttestRequest;
  });
  auto* ach = att->add_subcommand("challenge", "verifier: check a request, write a challenge and its state");
  ach->add_option("request", o.file, "the request")->required();
  ach->add_option("--ek-ca", o.ek_ca, "PEM bundle the EK certificate must chain to");
  ach->add_option("--ek-pub", o.ek_pub, "the enrolled EK public key (PEM), for TPMs without a certificate");
  ach->add_option("--state", o.state, "where the verifier keeps the challenge's secret")->required();
  ach->add_option("--out", o.out, "the challenge")->required();
  ach->callback([&] { run = AttestChallenge; });
  auto* arsp = att->add_subcommand("respond", "device: answer a challenge (needs the user PIN)");
  needs_token(arsp);
  arsp->add_option("challenge", o.file, "the challenge")->required();
  arsp->add_option("--key", o.key, "the key's label")->required();
  arsp->add_option("--out", o.out, "the response")->required();
  PinOptions(arsp, o.pin, "pin");
  arsp->callback([&] { run = AttestRespond; });
  auto* atver = att->add_subcommand("verify", "verifier: check a response against its state");
  atver->add_option("response", o.file, "the response")->required();
  atver->add_option("--state", o.state, "the challenge's state (marked used)")->required();
  atver->add_option("--pubkey-out", o.pubkey_out, "write the attested public key (PEM) here");
  atver->add_flag("--allow-imported", o.allow_imported, "accept a key imported into the TPM");
  atver->add_flag("--json", o.json, "machine-readable result");
  atver->callback([&] { run = AttestVerify; });

  // Authorized boot states (issue 11): the store key opens in any boot state
  // an authorization key approved.
  auto* boot = app.add_subcommand("boot", "seal the store key to boot states an authorization key approves");
  boot->require_subcommand(1);
  auto* bstat = boot->add_subcommand("status", "the binding, the boot epoch and the authorizations' directory");
  bstat->callback([&] { run = BootStatus; });
  auto* bbind = boot->add_subcommand(
      "bind", "seal the store key to boot states approved by the SO's key or an anchor (SO PIN)");
  needs_token(bbind);
  bbind->add_option("--authorizer", o.authorizer, "so, anchor:NAME (a trust anchor's label) or none")
      ->required();
  bbind->add_option("--pcrs", o.pcrs, "with so: the PCRs whose current values it authorizes, e.g. sha256:7,16");
  bbind->add_option("--authorization", o.file,
                    "with anchor:NAME: the anchor's authorization of the current boot state");
  PinOptions(bbind, o.so_pin, "so-pin");
  bbind->callback([&] { run = BootBind; });
  auto* bauth = boot->add_subcommand("authorize", "approve a boot state with the SO's key (SO PIN)");
  needs_token(bauth);
  bauth->add_option("--pcrs", o.pcrs, "the PCR selection, e.g. sha256:7,16")->required();
  bauth->add_option("--values", o.values, "expected values: 'N: HEX' lines (tpm2_pcrread's output)");
  bauth->add_flag("--current", o.current, "the values the PCRs hold now");
  bauth->add_option("--epoch", o.epoch, "valid while the boot epoch is at most this (default: the epoch now)");
  bauth->add_option("--out", o.out, "the authorization file")->required();
  PinOptions(bauth, o.so_pin, "so-pin");
  bauth->callback([&] { run = BootAuthorize; });
  auto* binst = boot->add_subcommand("install", "check an authorization and install it for the next starts");
  binst->add_option("file", o.file, "the authorization")->required();
  binst->callback([&] { run = BootInstall; });
  auto* brev = boot->add_subcommand(
      "revoke", "raise the boot epoch: older authorizations no longer open the store (SO PIN)");
  needs_token(brev);
  PinOptions(brev, o.so_pin, "so-pin");
  brev->callback([&] { run = BootRevoke; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  }
  try {
    if (run != Status && run != TokenList && run != TokenInit && run != StoreAcceptRestore &&
        run != StoreDelete && run != Audit && run != AuditVerify && run != AttestChallenge &&
        run != AttestVerify && run != BootStatus && run != BootInstall) {
      if (token.empty()) {
        Context probe;
        const auto all = probe.module().Tokens();
        if (all.size() != 1)
          throw ToolError(all.empty() ? "there is no token: create one with `tpmtoken token init`"
                                      : "there are several tokens: name one with --token",
                          all.empty() ? kNotFound : kUsage);
        token = all[0].label;
      }
      o.label = token;
    }
    return run(o);
  } catch (const ToolError& e) {
    std::cerr << "tpmtoken: " << e.what() << "\n";
    return e.exit_code;
  } catch (const std::exception& e) {
    std::cerr << "tpmtoken: " << e.what() << "\n";
    return kFailure;
  }
}

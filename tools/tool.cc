#include "tool.h"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>

#include "util/log.h"

namespace tpmtoken::tool {

Secret ReadPin(const PinSource& src) {
  std::string pin;
  if (!src.file.empty()) {
    std::ifstream in(src.file);
    if (!in || !std::getline(in, pin))
      throw ToolError(src.file + ": cannot read a PIN from it", kUsage);
  } else if (const char* env = std::getenv(src.env); env && *env) {
    pin = env;
  } else if (!src.value.empty()) {
    std::cerr << "tpmtoken: warning: a PIN on the command line is visible to other users (ps); "
                 "prefer --pin-file or "
              << src.env << "\n";
    pin = src.value;
  } else if (isatty(STDIN_FILENO)) {
    std::cerr << src.prompt << std::flush;
    termios old{};
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::getline(std::cin, pin);
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << "\n";
  } else {
    std::getline(std::cin, pin);
  }
  while (!pin.empty() && (pin.back() == '\r' || pin.back() == '\n')) pin.pop_back();
  Secret out(View(pin));
  Wipe(pin.data(), pin.size());
  return out;
}

std::string CkrName(CK_RV rv) {
  switch (rv) {
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_PIN_LEN_RANGE: return "CKR_PIN_LEN_RANGE";
    case CKR_USER_PIN_NOT_INITIALIZED: return "CKR_USER_PIN_NOT_INITIALIZED";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
    case CKR_KEY_SIZE_RANGE: return "CKR_KEY_SIZE_RANGE";
    case CKR_CURVE_NOT_SUPPORTED: return "CKR_CURVE_NOT_SUPPORTED";
    case CKR_SESSION_EXISTS: return "CKR_SESSION_EXISTS";
    case CKR_TOKEN_WRITE_PROTECTED: return "CKR_TOKEN_WRITE_PROTECTED";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "CKR 0x%lx", rv);
      return buf;
    }
  }
}

void Check(CK_RV rv, const std::string& what) {
  switch (rv) {
    case CKR_OK: return;
    case CKR_PIN_INCORRECT:
      throw ToolError(what + ": wrong PIN (the TPM counted the try; `tpmtoken status` shows what is left)",
                      kAuth);
    case CKR_PIN_LOCKED:
      throw ToolError(what + ": the PIN is locked; the SO unlocks it with `tpmtoken pin unlock`", kAuth);
    case CKR_PIN_LEN_RANGE: throw ToolError(what + ": PINs are 4 to 128 characters", kUsage);
    case CKR_TOKEN_WRITE_PROTECTED:
      throw ToolError(what + ": the store is read-only for this user (file or directory not "
                      "writable); run as its owner, or fix the permissions",
                      kFailure);
    case CKR_DEVICE_ERROR:
      throw ToolError(what + ": the TPM or the store failed (see the line above)", kFailure);
    default: throw ToolError(what + ": " + CkrName(rv), kFailure);
  }
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

Context::Context() {
  try {
    module_ = Module::Create();
  } catch (const std::exception& e) {
    throw ToolError(e.what(), kFailure);
  }
}

CK_SLOT_ID Context::SlotOf(const std::string& label) {
  for (const auto& t : module_->Tokens())
    if (t.label == label) return t.slot;
  throw ToolError("no token labelled '" + label + "' (`tpmtoken token list` shows them)", kNotFound);
}

CK_SESSION_HANDLE Context::Session(const std::string& label) {
  CK_SESSION_HANDLE s = 0;
  Check(module_->OpenSession(SlotOf(label), CKF_SERIAL_SESSION | CKF_RW_SESSION, &s), "open session");
  return s;
}

CK_SESSION_HANDLE Context::UserSession(const std::string& label, const PinSource& pin) {
  const CK_SESSION_HANDLE s = Session(label);
  const Secret p = ReadPin(pin);
  Check(module_->Login(s, CKU_USER, p.view()), "login to '" + label + "'");
  return s;
}

std::vector<CK_OBJECT_HANDLE> Context::Find(CK_SESSION_HANDLE s, std::vector<CK_ATTRIBUTE> tmpl) {
  Check(module_->FindObjectsInit(s, tmpl.data(), tmpl.size()), "search");
  std::vector<CK_OBJECT_HANDLE> out;
  CK_OBJECT_HANDLE batch[64];
  for (CK_ULONG n = 0;;) {
    Check(module_->FindObjects(s, batch, 64, &n), "search");
    out.insert(out.end(), batch, batch + n);
    if (n < 64) break;
  }
  Check(module_->FindObjectsFinal(s), "search");
  return out;
}

Bytes Context::Attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE a = {type, nullptr, 0};
  if (module_->GetAttributeValue(s, o, &a, 1) != CKR_OK) return {};
  Bytes v(a.ulValueLen);
  a.pValue = v.data();
  if (module_->GetAttributeValue(s, o, &a, 1) != CKR_OK) return {};
  return v;
}

std::optional<CK_ULONG> Context::AttrUlong(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                                           CK_ATTRIBUTE_TYPE type) {
  const Bytes v = Attr(s, o, type);
  if (v.size() != sizeof(CK_ULONG)) return std::nullopt;
  CK_ULONG out;
  std::memcpy(&out, v.data(), sizeof out);
  return out;
}

CK_OBJECT_HANDLE Context::PrivateKey(CK_SESSION_HANDLE s, const std::string& label) {
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  const auto found = Find(s, {{CKA_CLASS, &cls, sizeof cls},
                              {CKA_LABEL, const_cast<char*>(label.data()), label.size()}});
  if (found.empty())
    throw ToolError("no private key labelled '" + label + "' (`tpmtoken key list` shows them)",
                    kNotFound);
  if (found.size() > 1) throw ToolError("several keys are labelled '" + label + "'", kUsage);
  return found[0];
}

}  // namespace tpmtoken::tool

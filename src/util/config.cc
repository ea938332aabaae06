#include "util/config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string_view>

#include "util/log.h"

namespace tpmtoken {
namespace {

std::string Trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return std::string(s.substr(first, last - first + 1));
}

uint32_t ParseNumber(const std::string& value, const std::string& where) {
  try {
    size_t used = 0;
    const unsigned long v = std::stoul(value, &used, 0);
    if (used != value.size() || v > 0xffffffffUL) throw std::invalid_argument(value);
    return static_cast<uint32_t>(v);
  } catch (const std::exception&) {
    throw std::runtime_error(where + ": '" + value + "' is not a number");
  }
}

void Apply(Config& c, const std::string& key, const std::string& value, const std::string& where) {
  if (key == "tcti") {
    c.tcti = value;
  } else if (key == "store") {
    c.store_path = value;
  } else if (key == "log_level") {
    c.log_level = value;
  } else if (key == "owner_auth") {
    c.owner_auth = value;
  } else if (key == "user_pin_retries") {
    c.user_pin_retries = ParseNumber(value, where);
  } else if (key == "so_pin_retries") {
    c.so_pin_retries = ParseNumber(value, where);
  } else if (key == "nv_base") {
    c.nv_base = ParseNumber(value, where);
  } else if (key == "pbkdf2_iterations") {
    c.pbkdf2_iterations = ParseNumber(value, where);
    if (c.pbkdf2_iterations < Config::kMinPbkdf2Iterations)
      throw std::runtime_error(where + ": pbkdf2_iterations must be at least " +
                               std::to_string(Config::kMinPbkdf2Iterations) +
                               " (fewer makes a PIN cheap to search from a stolen store)");
  } else if (key == "tpm_timeout") {
    c.tpm_timeout = ParseNumber(value, where);
    if (c.tpm_timeout == 0 || c.tpm_timeout > 3600)
      throw std::runtime_error(where + ": tpm_timeout must be between 1 and 3600 seconds");
  } else if (key == "audit_retention") {
    c.audit_retention = ParseNumber(value, where + ": audit_retention");
    if (c.audit_retention < Config::kMinAuditRetention || c.audit_retention > 100000000)
      throw std::runtime_error(where + ": audit_retention must be between " +
                               std::to_string(Config::kMinAuditRetention) +
                               " and 100000000 entries");
  } else if (key == "ek_ca") {
    c.ek_ca = value;
  } else if (key == "boot_authorizations") {
    c.boot_authorizations = value;
  } else if (key == "pin_fallback") {
    if (value != "refuse" && value != "dictionary-attack")
      throw std::runtime_error(where + ": pin_fallback must be 'refuse' or 'dictionary-attack'");
    c.pin_fallback = value;
  } else if (key == "primary_handle") {
    c.primary_handle = ParseNumber(value, where);
    if (c.primary_handle != 0 && (c.primary_handle >> 24) != 0x81)
      throw std::runtime_error(where + ": primary_handle must be a persistent handle "
                               "(0x81000000-0x81ffffff), such as 0x81000001");
  } else if (key == "pcr_policy") {
    try {
      c.pcr_policy = PcrSelection::Parse(value);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(where + ": pcr_policy: " + e.what());
    }
  } else {
    throw std::runtime_error(where + ": unknown key '" + key + "'");
  }
}

void ReadFile(Config& c, const std::string& path, bool must_exist) {
  std::ifstream in(path);
  if (!in) {
    if (must_exist) throw std::runtime_error(path + ": cannot be read (check TPMTOKEN_CONF)");
    return;
  }
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string where = path + ":" + std::to_string(n);
    const std::string text = Trim(line.substr(0, line.find('#')));
    if (text.empty()) continue;
    const auto eq = text.find('=');
    if (eq == std::string::npos) throw std::runtime_error(where + ": expected 'key = value'");
    Apply(c, Trim(std::string_view(text).substr(0, eq)), Trim(std::string_view(text).substr(eq + 1)),
          where);
  }
}

}  // namespace

PcrSelection PcrSelection::Parse(const std::string& text) {
  PcrSelection sel;
  if (text.empty() || text == "none") return sel;
  const auto colon = text.find(':');
  if (colon == std::string::npos)
    throw std::invalid_argument("expected bank:pcr,pcr,... such as sha256:0,2,4,7, got '" + text +
                                "'");
  sel.bank = Trim(std::string_view(text).substr(0, colon));
  if (sel.bank != "sha1" && sel.bank != "sha256" && sel.bank != "sha384" && sel.bank != "sha512")
    throw std::invalid_argument("unknown PCR bank '" + sel.bank +
                                "' (use sha1, sha256, sha384 or sha512)");
  std::string_view rest = std::string_view(text).substr(colon + 1);
  while (true) {
    const auto comma = rest.find(',');
    const std::string item = Trim(rest.substr(0, comma));
    size_t used = 0;
    unsigned long pcr = 0;
    try {
      pcr = std::stoul(item, &used, 10);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || pcr > 23)
      throw std::invalid_argument("'" + item + "' is not a PCR number from 0 to 23");
    sel.mask |= 1u << pcr;
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return sel;
}

std::string PcrSelection::ToString() const {
  if (empty()) return {};
  std::string out = bank + ":";
  bool first = true;
  for (int i = 0; i < 24; ++i) {
    if (!(mask & (1u << i))) continue;
    out += (first ? "" : ",") + std::to_string(i);
    first = false;
  }
  return out;
}

std::string Config::DefaultStorePath() {
  if (geteuid() == 0) return "/var/lib/tpmtoken/tpmtoken.sqlite3";
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg)
    return std::string(xdg) + "/tpmtoken/tpmtoken.sqlite3";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.local/share/tpmtoken/tpmtoken.sqlite3";
  return "tpmtoken.sqlite3";
}

Config Config::Load() {
  Config c;
  if (const char* conf = std::getenv("TPMTOKEN_CONF"); conf && *conf) {
    ReadFile(c, conf, true);
  } else {
    ReadFile(c, "/etc/tpmtoken/tpmtoken.conf", false);
  }
  if (const char* tcti = std::getenv("TPMTOKEN_TCTI"); tcti && *tcti) c.tcti = tcti;
  if (const char* store = std::getenv("TPMTOKEN_STORE"); store && *store) c.store_path = store;
  if (c.store_path.empty()) c.store_path = DefaultStorePath();
  // Like other modules' store variables, the path may name a directory: the
  // store file is made inside it.
  std::error_code ec;  // unreadable parents: the store's own open names the cause
  if (c.store_path.back() == '/' || std::filesystem::is_directory(c.store_path, ec))
    c.store_path = (std::filesystem::path(c.store_path) / "tpmtoken.sqlite3").string();
  if (c.boot_authorizations.empty()) c.boot_authorizations = c.store_path + ".boot.d";
  if (const char* t = std::getenv("TPMTOKEN_TPM_TIMEOUT"); t && *t) {
    c.tpm_timeout = ParseNumber(t, "TPMTOKEN_TPM_TIMEOUT");
    if (c.tpm_timeout == 0 || c.tpm_timeout > 3600)
      throw std::runtime_error("TPMTOKEN_TPM_TIMEOUT must be between 1 and 3600 seconds");
  }
  if (!std::getenv("TPMTOKEN_LOG")) log::SetLevel(log::ParseLevel(c.log_level, log::Level::kError));
  if (c.user_pin_retries == 0 || c.so_pin_retries == 0 || c.user_pin_retries > 1000 ||
      c.so_pin_retries > 1000)
    throw std::runtime_error("PIN retry limits must be between 1 and 1000");
  return c;
}

}  // namespace tpmtoken

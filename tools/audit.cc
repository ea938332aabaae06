// tpmtoken audit [--since TIME], audit verify: the store's audit log.
#include <ctime>
#include <iostream>

#include "commands.h"

namespace tpmtoken::tool {
namespace {

std::string Iso(int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "2026-11-30", "2026-11-30T12:00:00" (UTC) or seconds since the epoch.
int64_t ParseSince(const std::string& text) {
  if (text.empty()) return 0;
  if (text.find_first_not_of("0123456789") == std::string::npos) return std::stoll(text);
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) {
    tm = {};
    end = strptime(text.c_str(), "%Y-%m-%d", &tm);
  }
  if (!end || (*end && std::string(end) != "Z"))
    throw ToolError("--since takes 2026-11-30, 2026-11-30T12:00:00 or seconds since 1970", kUsage);
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

int Audit(const Options& o) {
  Context ctx;
  const auto entries = ctx.module().store().AuditEntries(ParseSince(o.since));
  if (o.json) std::cout << "[";
  bool first = true;
  for (const auto& e : entries) {
    if (o.json) {
      std::cout << (first ? "" : ",") << "{\"id\":" << e.id << ",\"time\":" << JsonString(Iso(e.time))
                << ",\"event\":" << JsonString(e.event) << "}";
    } else {
      std::cout << e.id << "\t" << Iso(e.time) << "\t" << e.event << "\n";
    }
    first = false;
  }
  if (o.json) std::cout << "]\n";
  return kOk;
}

int AuditVerify(const Options& /*o*/) {
  Context ctx;
  const std::string bad = ctx.module().VerifyAudit();
  if (!bad.empty()) throw ToolError(bad, kFailure);
  std::cout << "the audit log is whole: " << ctx.module().store().AuditEntries().size()
            << " entries, chained up to the head its anchor records\n";
  return kOk;
}

}  // namespace tpmtoken::tool

// Configuration parsing: PCR selections for the store key's policy.
#include <gtest/gtest.h>

#include <stdexcept>

#include "util/config.h"

namespace tpmtoken {
namespace {

TEST(PcrSelection, ParsesToCanonicalForm) {
  const PcrSelection s = PcrSelection::Parse("sha256: 7, 0 ,4,2,7");
  EXPECT_EQ(s.bank, "sha256");
  EXPECT_EQ(s.mask, (1u << 0) | (1u << 2) | (1u << 4) | (1u << 7));
  EXPECT_EQ(s.ToString(), "sha256:0,2,4,7");
  EXPECT_EQ(PcrSelection::Parse(s.ToString()), s);
  EXPECT_EQ(PcrSelection::Parse("sha1:23").mask, 1u << 23);
}

TEST(PcrSelection, EmptyMeansUnbound) {
  EXPECT_TRUE(PcrSelection::Parse("").empty());
  EXPECT_TRUE(PcrSelection::Parse("none").empty());
  EXPECT_EQ(PcrSelection::Parse("none").ToString(), "");
}

TEST(PcrSelection, RejectsMalformedSelections) {
  for (const char* bad : {"sha256", "sha256:", "sha256:24", "sha256:-1", "sha256:1,,2",
                          "sha256:1x", "md5:1", ":1", "sha256:99999999999999999999"}) {
    EXPECT_THROW(PcrSelection::Parse(bad), std::invalid_argument) << bad;
  }
}

}  // namespace
}  // namespace tpmtoken

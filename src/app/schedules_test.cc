#include "app/schedules.h"

#include <gtest/gtest.h>

#include "absl/time/time.h"

namespace sp::app {
namespace {

int64_t At(const char* rfc3339) {
  absl::Time time;
  std::string error;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &time, &error)) << error;
  return absl::ToUnixMicros(time);
}

ScheduleSpec Spec(const nlohmann::json& json) {
  auto spec = ScheduleSpecFromJson("web01", json);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.value_or(ScheduleSpec{});
}

class ScheduleTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("TZ", "UTC", 1); }
};

TEST_F(ScheduleTest, AnIntervalIsDueOnceItsTimeHasCome) {
  ScheduleSpec spec = Spec({{"every_minutes", 60}});
  int64_t created = At("2026-12-01T10:00:00Z");
  EXPECT_FALSE(DueSlot(spec, std::nullopt, created, At("2026-12-01T10:59:59Z")));
  EXPECT_EQ(DueSlot(spec, std::nullopt, created, At("2026-12-01T11:00:00Z")),
            At("2026-12-01T11:00:00Z"));
  int64_t ran = At("2026-12-01T11:00:00Z");
  EXPECT_FALSE(DueSlot(spec, ran, created, At("2026-12-01T11:30:00Z")));
  // Down for five hours: due once, for the newest slot, and the cadence stays on the hour.
  auto slot = DueSlot(spec, ran, created, At("2026-12-01T16:10:00Z"));
  EXPECT_EQ(slot, At("2026-12-01T16:00:00Z"));
  EXPECT_FALSE(DueSlot(spec, *slot, created, At("2026-12-01T16:20:00Z")));
  EXPECT_EQ(DueSlot(spec, *slot, created, At("2026-12-01T17:00:00Z")), At("2026-12-01T17:00:00Z"));
}

TEST_F(ScheduleTest, ACalendarRunsAtItsTimesOnItsDays) {
  // 2026-12-01 is a Tuesday.
  ScheduleSpec spec = Spec({{"at", {"02:00", "14:30"}}, {"weekdays", {"tue", "thu"}}});
  int64_t created = At("2026-11-30T00:00:00Z");
  EXPECT_FALSE(DueSlot(spec, std::nullopt, created, At("2026-12-01T01:59:00Z")));
  EXPECT_EQ(DueSlot(spec, std::nullopt, created, At("2026-12-01T02:00:30Z")),
            At("2026-12-01T02:00:00Z"));
  int64_t ran = At("2026-12-01T02:00:00Z");
  EXPECT_FALSE(DueSlot(spec, ran, created, At("2026-12-01T14:29:00Z")));
  EXPECT_EQ(DueSlot(spec, ran, created, At("2026-12-01T15:00:00Z")), At("2026-12-01T14:30:00Z"));
  // Wednesday has no slot; missed Tuesday 14:30 and Thursday 02:00 → only the newest is due.
  EXPECT_EQ(DueSlot(spec, ran, created, At("2026-12-03T12:00:00Z")), At("2026-12-03T02:00:00Z"));
}

TEST_F(ScheduleTest, ADisabledScheduleIsNeverDue) {
  ScheduleSpec spec = Spec({{"every_minutes", 1}, {"enabled", false}});
  EXPECT_FALSE(DueSlot(spec, std::nullopt, 0, At("2026-12-01T00:00:00Z")));
}

TEST_F(ScheduleTest, BadSpecsNameTheField) {
  struct Case {
    nlohmann::json json;
    std::string field;
  };
  std::vector<Case> cases = {
      {nlohmann::json::object(), "every_minutes"},
      {{{"every_minutes", 5}, {"at", {"01:00"}}}, "every_minutes"},
      {{{"every_minutes", "5"}}, "every_minutes"},
      {{{"at", {"25:00"}}}, "at"},
      {{{"at", {"01:00"}}, {"weekdays", {"someday"}}}, "weekdays"},
      {{{"every_minutes", 5}, {"consistency", "best"}}, "consistency"},
      {{{"every_minutes", 5}, {"retention", {{"keep_forever", 1}}}}, "retention.keep_forever"},
      {{{"every_minutes", 5}, {"colour", "red"}}, "colour"},
  };
  for (const Case& c : cases) {
    auto spec = ScheduleSpecFromJson("x", c.json);
    ASSERT_FALSE(spec.ok()) << c.json.dump();
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(spec.status().message()).substr(0, c.field.size() + 1), c.field + ":")
        << spec.status();
  }
}

TEST_F(ScheduleTest, TheJsonFormRoundTrips) {
  ScheduleSpec spec = Spec({{"vms", {"a", "b"}},
                            {"at", {"23:15"}},
                            {"weekdays", {"sun"}},
                            {"consistency", "require-app"},
                            {"retention", {{"keep_last", 3}, {"keep_daily", 7}}},
                            {"verify", true}});
  ScheduleSpec again = Spec(ScheduleSpecToJson(spec));
  EXPECT_EQ(ScheduleSpecToJson(again), ScheduleSpecToJson(spec));
  EXPECT_EQ(again.at_minutes, std::vector<int>{23 * 60 + 15});
  EXPECT_EQ(again.weekdays, std::vector<int>{0});
  EXPECT_EQ(again.retention.keep_daily, 7);
}

}  // namespace
}  // namespace sp::app

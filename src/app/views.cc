#include "app/views.h"

#include "app/app.h"
#include "catalog/records_json.h"

namespace sp::app {
namespace {

nlohmann::json VolumesJson(const std::vector<restore::VolumeResult>& volumes) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& volume : volumes) {
    out.push_back({{"name", volume.name},
                   {"path", volume.path},
                   {"size", volume.stats.size},
                   {"data_bytes", volume.stats.data_bytes},
                   {"zero_bytes", volume.stats.zero_bytes},
                   {"ms", volume.stats.millis}});
  }
  return out;
}

}  // namespace

nlohmann::json PointRecordJson(const catalog::RecoveryPointRecord& record) {
  return {{"id", record.id},
          {"name", record.name},
          {"vm", record.vm_name},
          {"vm_uuid", record.vm_uuid},
          {"created", FormatUnixMicros(record.created_us)},
          {"state", record.state},
          {"consistency", record.consistency},
          {"reason", record.reason},
          {"parent", record.parent_id},
          {"logical_bytes", record.logical_bytes},
          {"new_bytes", record.new_stored_bytes},
          {"volumes", record.volumes},
          {"description", record.description}};
}

nlohmann::json PointJson(const repo::Manifest& manifest) {
  nlohmann::json out = {{"id", manifest.id},
                        {"vm", manifest.vm_name},
                        {"vm_uuid", manifest.vm_id},
                        {"name", manifest.name},
                        {"description", manifest.description},
                        {"parent", manifest.parent_id},
                        {"created", FormatUnixMicros(manifest.created_micros)},
                        {"committed", FormatUnixMicros(manifest.committed_micros)},
                        {"chunk_size", manifest.chunk_size}};
  nlohmann::json recorded = repo::EncodePointDescription(manifest.point_description);
  for (auto& [key, value] : recorded.items()) out[key] = value;
  return out;
}

nlohmann::json NewVmJson(const restore::NewVmResult& result, bool started) {
  return {{"vm", catalog::VmToJson(result.vm)},
          {"point", result.point_id},
          {"volumes", VolumesJson(result.volumes)},
          {"started", started},
          {"warnings", result.warnings}};
}

nlohmann::json RestoreJson(const VmRestoreResult& result) {
  return {{"vm", result.vm.name},
          {"point", result.restored.point_id},
          {"volumes", VolumesJson(result.restored.volumes)}};
}

nlohmann::json ExportJson(const std::string& dir, const restore::ExportResult& result) {
  return {{"dir", dir},
          {"point", result.manifest.point_id},
          {"manifest", nlohmann::json::parse(restore::EncodeExportManifest(result.manifest))},
          {"warnings", result.warnings}};
}

nlohmann::json ImportJson(const restore::ImportResult& result) {
  return {{"point", result.point_id},
          {"vm", result.manifest.vm_name},
          {"original_point", result.manifest.point_id}};
}

nlohmann::json VmDetailsJson(const catalog::VmRecord& vm, const std::optional<repo::VmUsage>& usage,
                             const std::vector<catalog::EventRecord>& events) {
  nlohmann::json out = catalog::VmToJson(vm);
  if (usage) {
    out["space_used_bytes"] = usage->stored_bytes;
    out["recovery_points"] = usage->points;
  }
  out["events"] = nlohmann::json::array();
  for (const auto& event : events) out["events"].push_back(catalog::EventToJson(event));
  return out;
}

nlohmann::json RepoInfoJson(const RepoInfo& info) {
  const repo::RepositoryConfig& config = info.config;
  return {{"path", info.path},
          {"id", config.id},
          {"format_version", config.version},
          {"chunk_size", config.chunk_size},
          {"compression", config.CompressionText()},
          {"encryption", config.EncryptionText()},
          {"created", FormatUnixMicros(config.created_micros)}};
}

nlohmann::json RepoStatsJson(const repo::RepositoryStats& stats) {
  return {{"recovery_points", stats.points},
          {"logical_bytes", stats.logical_bytes},
          {"stored_bytes", stats.stored_bytes},
          {"chunks", stats.chunk_count},
          {"dedup_ratio", stats.DedupRatio()}};
}

nlohmann::json VerifyJson(const repo::VerifyReport& report) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& problem : report.problems) {
    problems.push_back({{"recovery_point", problem.point_id},
                        {"volume", problem.volume},
                        {"offset", problem.offset},
                        {"chunk", problem.chunk_id},
                        {"problem", problem.what}});
  }
  return {{"ok", report.ok()},
          {"recovery_points", report.points},
          {"volumes", report.volumes},
          {"chunks_checked", report.chunks_checked},
          {"bytes_checked", report.bytes_checked},
          {"damaged_points", report.damaged_points},
          {"problems", problems}};
}

nlohmann::json GcJson(const repo::GcReport& report) {
  return {{"chunks_in_use", report.chunks_in_use},
          {"chunks_deleted", report.chunks_deleted},
          {"bytes_freed", report.bytes_freed},
          {"chunks_spared", report.chunks_spared},
          {"incomplete_points_removed", report.incomplete_points_removed},
          {"temp_files_removed", report.temp_files_removed}};
}

nlohmann::json PruneJson(const std::vector<repo::PruneDecision>& decisions, bool dry_run) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& d : decisions) {
    out.push_back({{"id", d.id},
                   {"time", FormatUnixMicros(d.time_micros)},
                   {"keep", d.keep},
                   {"reasons", d.reasons}});
  }
  return {{"dry_run", dry_run}, {"decisions", out}};
}

nlohmann::json SpaceLimitJson(const catalog::VmRecord& vm, std::optional<int64_t> limit_bytes,
                              uint64_t used_bytes) {
  return {{"vm", vm.name},
          {"limit_bytes", limit_bytes ? nlohmann::json(*limit_bytes) : nlohmann::json(nullptr)},
          {"used_bytes", used_bytes}};
}

}  // namespace sp::app

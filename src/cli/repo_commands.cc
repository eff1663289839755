#include "cli/repo_commands.h"

#include <iostream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/command_tree.h"

namespace sp::cli {
namespace {

// Options every repository command shares: --repo and --key-file.
using RepoFlags = app::RepoLocation;

void AddRepoFlags(CLI::App* command, RepoFlags& flags, Context& context) {
  command->add_option("--repo", flags.path, "repository directory (default: <state dir>/repo)");
  command->add_option("--key-file", flags.key_file,
                      "key file of an encrypted repository (default: $STILLPOINT_KEY_FILE)");
  command->add_flag("--json", context.json, "print JSON");
}

std::string Ratio(double value) { return absl::StrFormat("%.2fx", value); }

// --- repo init / info / stats -----------------------------------------------------------------

void AddInit(CLI::App& repo_cmd, Context& context) {
  struct Flags {
    std::string path, chunk_size = "4M", compression = "zstd:1", encryption = "none", key_file;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* init = repo_cmd.add_subcommand("init", "Create a repository");
  init->add_option("path", flags->path, "directory (default: <state dir>/repo)");
  init->add_option("--chunk-size", flags->chunk_size, "1M..16M, a power of two (default 4M)");
  init->add_option("--compression", flags->compression, "zstd[:LEVEL] or none (default zstd:1)");
  init->add_option("--encryption", flags->encryption, "none or aes-256-gcm");
  init->add_option("--key-file", flags->key_file,
                   "aes-256-gcm: key file (64 hex digits), created with a new key when missing");
  init->add_flag("--json", context.json, "print JSON");
  init->callback([flags, &context] {
    context.action = [flags, &context]() -> Status {
      repo::InitOptions options;
      SP_ASSIGN_OR_RETURN(uint64_t chunk, repo::ParseBytes(flags->chunk_size));
      if (chunk > UINT32_MAX) return absl::InvalidArgumentError("--chunk-size: at most 16M");
      options.chunk_size = static_cast<uint32_t>(chunk);
      SP_ASSIGN_OR_RETURN(options.compression_level, repo::ParseCompression(flags->compression));
      if (flags->encryption == "aes-256-gcm") {
        if (flags->key_file.empty()) {
          return absl::InvalidArgumentError(
              "--encryption aes-256-gcm needs --key-file FILE (created with a new key when "
              "missing; keep a copy: without it the repository cannot be read)");
        }
        options.encrypted = true;
        options.key_file = flags->key_file;
      } else if (flags->encryption != "none") {
        return absl::InvalidArgumentError(
            absl::StrCat("--encryption '", flags->encryption, "': choose none or aes-256-gcm"));
      }
      RepoFlags location{flags->path, flags->key_file};
      SP_ASSIGN_OR_RETURN(std::string path, app::App::RepoPath(location));
      SP_RETURN_IF_ERROR(app::App::InitRepo(location, options));
      if (context.json) {
        PrintJson({{"path", path}, {"created", true}});
      } else {
        std::cout << "created repository " << path << " (chunks "
                  << repo::FormatBytes(options.chunk_size) << ", compression " << flags->compression
                  << ", encryption " << flags->encryption << ")\n";
      }
      return absl::OkStatus();
    };
  });
}

void AddInfoStats(CLI::App& repo_cmd, Context& context) {
  auto flags = std::make_shared<RepoFlags>();
  CLI::App* info = repo_cmd.add_subcommand("info", "Show the repository's configuration");
  AddRepoFlags(info, *flags, context);
  info->callback([flags, &context] {
    context.action = [flags, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::RepoInfo described, app::App::GetRepoInfo(*flags));
      nlohmann::json out = app::RepoInfoJson(described);
      if (context.json) {
        PrintJson(out);
        return absl::OkStatus();
      }
      Table table({"FIELD", "VALUE"});
      for (const auto& [key, value] : out.items()) {
        table.AddRow({key, value.is_string() ? value.get<std::string>() : value.dump()});
      }
      std::cout << table.Render();
      return absl::OkStatus();
    };
  });
  auto stats_flags = std::make_shared<RepoFlags>();
  CLI::App* stats = repo_cmd.add_subcommand("stats", "Logical and stored bytes, dedup ratio");
  AddRepoFlags(stats, *stats_flags, context);
  stats->callback([stats_flags, &context] {
    context.action = [stats_flags, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(repo::RepositoryStats totals, app::App::GetRepoStats(*stats_flags));
      if (context.json) {
        PrintJson(app::RepoStatsJson(totals));
        return absl::OkStatus();
      }
      Table table({"RECOVERY POINTS", "LOGICAL", "STORED", "CHUNKS", "RATIO"});
      table.AddRow({absl::StrCat(totals.points), repo::FormatBytes(totals.logical_bytes),
                    repo::FormatBytes(totals.stored_bytes), absl::StrCat(totals.chunk_count),
                    Ratio(totals.DedupRatio())});
      std::cout << table.Render();
      return absl::OkStatus();
    };
  });
}

// --- verify / gc ------------------------------------------------------------------------------

void PrintVerify(const repo::VerifyReport& report) {
  std::cout << "checked " << report.chunks_checked << " chunks ("
            << repo::FormatBytes(report.bytes_checked) << ") of " << report.volumes
            << " volumes in " << report.points << " recovery points\n";
  for (const auto& damaged : report.damaged_points) std::cout << "DAMAGED  " << damaged << "\n";
  if (!report.problems.empty()) {
    Table table({"RECOVERY POINT", "VOLUME", "OFFSET", "CHUNK", "PROBLEM"});
    for (const auto& problem : report.problems) {
      table.AddRow({problem.point_id, problem.volume, absl::StrCat(problem.offset),
                    problem.chunk_id.substr(0, 16), problem.what});
    }
    std::cout << table.Render();
  }
  if (report.ok()) std::cout << "no problems found\n";
}

void AddVerifyGc(CLI::App& repo_cmd, Context& context) {
  struct Flags : RepoFlags {
    std::string point;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* verify = repo_cmd.add_subcommand("verify", "Re-read and re-hash every chunk");
  verify->add_option("snapshot", flags->point, "only this recovery point (id or prefix)");
  AddRepoFlags(verify, *flags, context);
  verify->callback([flags, &context] {
    context.action = [flags, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(repo::VerifyReport report, app::App::VerifyRepo(*flags, flags->point));
      if (context.json)
        PrintJson(app::VerifyJson(report));
      else
        PrintVerify(report);
      return app::App::VerifyVerdict(report);
    };
  });
  auto gc_flags = std::make_shared<RepoFlags>();
  CLI::App* gc = repo_cmd.add_subcommand("gc", "Delete chunks no recovery point uses");
  AddRepoFlags(gc, *gc_flags, context);
  gc->callback([gc_flags, &context] {
    context.action = [gc_flags, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(repo::GcReport report, app::App::CollectGarbage(*gc_flags));
      if (context.json) {
        PrintJson(app::GcJson(report));
        return absl::OkStatus();
      }
      std::cout << "freed " << repo::FormatBytes(report.bytes_freed) << " in "
                << report.chunks_deleted << " chunks; " << report.chunks_in_use << " chunks in use";
      if (report.chunks_spared > 0) {
        std::cout << "; " << report.chunks_spared << " unused chunks kept (newer than this gc "
                  << "or a running backup; the next gc frees them)";
      }
      if (report.incomplete_points_removed > 0) {
        std::cout << "; removed " << report.incomplete_points_removed << " interrupted points";
      }
      std::cout << "\n";
      return absl::OkStatus();
    };
  });
}

// --- prune / rebuild-catalog / snapshot delete -----------------------------------------------

void AddPrune(CLI::App& repo_cmd, Context& context) {
  struct Flags : RepoFlags {
    std::string vm;
    repo::PrunePolicy policy;
    bool dry_run = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* prune = repo_cmd.add_subcommand("prune", "Remove a VM's recovery points by rules");
  prune->add_option("vm", flags->vm, "VM name or UUID")->required();
  prune->add_option("--keep-last", flags->policy.keep_last, "keep the N newest");
  prune->add_option("--keep-hourly", flags->policy.keep_hourly, "newest of each of N hours");
  prune->add_option("--keep-daily", flags->policy.keep_daily, "newest of each of N days");
  prune->add_option("--keep-weekly", flags->policy.keep_weekly, "newest of each of N weeks");
  prune->add_option("--keep-monthly", flags->policy.keep_monthly, "newest of each of N months");
  prune->add_option("--keep-yearly", flags->policy.keep_yearly, "newest of each of N years");
  prune->add_flag("--dry-run", flags->dry_run, "only print what would be kept and removed");
  AddRepoFlags(prune, *flags, context);
  prune->callback([flags, &context] {
    context.action = [flags, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(auto decisions,
                          app->Prune(*flags, flags->vm, flags->policy, flags->dry_run));
      if (context.json) {
        PrintJson(app::PruneJson(decisions, flags->dry_run));
        return absl::OkStatus();
      }
      Table table({"RECOVERY POINT", "TIME", "ACTION", "WHY"});
      for (const auto& d : decisions) {
        table.AddRow({d.id, FormatUnixMicros(d.time_micros),
                      d.keep ? "keep" : (flags->dry_run ? "would remove" : "removed"),
                      d.keep ? absl::StrJoin(d.reasons, ", ") : "no rule keeps it"});
      }
      std::cout << table.Render();
      if (!flags->dry_run) std::cout << "run `stillpoint repo gc` to free the space\n";
      return absl::OkStatus();
    };
  });
}

void AddRebuildCatalog(CLI::App& repo_cmd, Context& context) {
  auto flags = std::make_shared<RepoFlags>();
  CLI::App* rebuild = repo_cmd.add_subcommand(
      "rebuild-catalog", "Rebuild the catalog's list of recovery points from the manifests");
  AddRepoFlags(rebuild, *flags, context);
  rebuild->callback([flags, &context] {
    context.action = [flags, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(size_t points, app->RebuildCatalog(*flags));
      if (context.json)
        PrintJson({{"recovery_points", points}});
      else
        std::cout << "catalog now lists " << points << " recovery points\n";
      return absl::OkStatus();
    };
  });
}

void AddSnapshotDelete(CLI::App& snapshot_cmd, Context& context) {
  struct Flags : RepoFlags {
    std::string id;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* remove = snapshot_cmd.add_subcommand("delete", "Delete a recovery point");
  remove->add_option("id", flags->id, "recovery point id (or a unique prefix)")->required();
  AddRepoFlags(remove, *flags, context);
  remove->callback([flags, &context] {
    context.action = [flags, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(repo::Manifest manifest, app->DeleteSnapshot(*flags, flags->id));
      if (context.json) {
        PrintJson({{"deleted", manifest.id}});
      } else {
        std::cout << "deleted recovery point " << manifest.id << " of VM '" << manifest.vm_name
                  << "'; run `stillpoint repo gc` to free its space\n";
      }
      return absl::OkStatus();
    };
  });
}

// --- vm set-limit -----------------------------------------------------------------------------

void AddSetLimit(CLI::App& vm_cmd, Context& context) {
  struct Flags : RepoFlags {
    std::string vm, size;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* set_limit = vm_cmd.add_subcommand(
      "set-limit", "Set the space a VM's recovery points may use (SIZE like 50G, or none)");
  set_limit->add_option("vm", flags->vm, "VM name or UUID")->required();
  set_limit->add_option("size", flags->size, "e.g. 500M, 50G, 2T, or none")->required();
  AddRepoFlags(set_limit, *flags, context);
  set_limit->callback([flags, &context] {
    context.action = [flags, &context]() -> Status {
      std::optional<int64_t> limit;
      if (flags->size != "none") {
        SP_ASSIGN_OR_RETURN(uint64_t bytes, repo::ParseBytes(flags->size));
        limit = static_cast<int64_t>(bytes);
      }
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(app::SpaceLimitResult result,
                          app->SetSpaceLimit(*flags, flags->vm, limit));
      const catalog::VmRecord& vm = result.vm;
      uint64_t used = result.used_bytes;
      if (context.json) {
        PrintJson(app::SpaceLimitJson(vm, limit, used));
      } else {
        std::cout << "VM '" << vm.name << "': space limit "
                  << (limit ? repo::FormatBytes(static_cast<uint64_t>(*limit)) : "none")
                  << ", recovery points use " << repo::FormatBytes(used) << "\n";
        if (limit && used > static_cast<uint64_t>(*limit)) {
          std::cout << "the VM is over its limit: new snapshots are refused until you prune "
                       "(`stillpoint repo prune "
                    << vm.name << " --keep-last N`) or raise the limit\n";
        }
      }
      return absl::OkStatus();
    };
  });
}

}  // namespace

void RegisterRepoCommands(CLI::App& root, Context& context) {
  CLI::App* repo_cmd = FindOrAddSubcommand(root, "repo", "The repository of recovery points");
  AddInit(*repo_cmd, context);
  AddInfoStats(*repo_cmd, context);
  AddVerifyGc(*repo_cmd, context);
  AddPrune(*repo_cmd, context);
  AddRebuildCatalog(*repo_cmd, context);
  AddSnapshotDelete(*FindOrAddSubcommand(root, "snapshot", "Take, list and delete recovery points"),
                    context);
  AddSetLimit(*FindOrAddSubcommand(root, "vm", "Define, run and inspect VMs"), context);
}

}  // namespace sp::cli

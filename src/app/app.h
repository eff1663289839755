// Use cases of stillpoint, wiring the modules together: where state lives; defining, attaching,
// starting, stopping and removing VMs; guest agents; snapshots, restores, exports, imports and
// mounts; the repository's maintenance, limits and settings. The CLI and the coming REST service
// are thin layers over this and reach nothing below it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/schedules.h"
#include "app/views.h"
#include "capture/capture.h"
#include "catalog/auth_store.h"
#include "catalog/catalog.h"
#include "catalog/records_json.h"
#include "catalog/recovery_points.h"
#include "platform/clock.h"
#include "platform/status.h"
#include "repo/repository.h"
#include "repo/units.h"  // byte counts as front ends show and take them
#include "restore/export.h"
#include "restore/restore.h"
#include "restore/serve.h"
#include "vm/guest_filesystems.h"
#include "vm/runtime.h"

namespace sp::app {

struct StatePaths {
  std::string home;      // STILLPOINT_HOME, else /var/lib/stillpoint (root), else
                         // ~/.local/share/stillpoint
  std::string catalog;   // <home>/catalog.db
  std::string run_root;  // STILLPOINT_RUN_DIR, else <home>/run
  std::string repo;      // <home>/repo, the default repository
};

// The state paths from the environment, with the directories created.
StatusOr<StatePaths> ResolveStatePaths();

// Who runs a local command, for the events it records: "cli:<$SUDO_USER, else $USER>".
catalog::EventOrigin LocalOrigin();

struct AttachRequest {
  std::string name;
  std::string qmp_socket;
  std::string qga_socket;   // empty: no guest agent
  std::string boot_volume;  // empty: the first disk
  std::string policy = "prefer-app";
};

// Which repository a repository command works on.
struct RepoLocation {
  std::string path;      // empty: the default repository (<home>/repo)
  std::string key_file;  // key of an encrypted repository; empty: $STILLPOINT_KEY_FILE
};

struct RepoInfo {
  std::string path;
  repo::RepositoryConfig config;
};

struct SpaceLimitResult {
  catalog::VmRecord vm;
  std::optional<int64_t> limit_bytes;  // none: no limit
  uint64_t used_bytes = 0;             // what its points use; 0 when the repository cannot tell
};

// A recovery point as `snapshot show` sees it: exactly one of the two is set.
struct SnapshotDetails {
  std::optional<repo::Manifest> manifest;                  // a complete point
  std::optional<catalog::RecoveryPointRecord> unfinished;  // one only the catalog knows
};

struct NewVmFromSnapshotRequest {
  std::string point_id;  // id or unique prefix
  std::string name;      // the new VM's name
  std::string dir;       // where its images go; empty: <home>/images/<name>
};

struct VmRestoreResult {
  catalog::VmRecord vm;  // the VM restored
  restore::InPlaceResult restored;
};

struct MountRequest {
  std::string point_id;  // id or unique prefix
  std::string volume;    // empty: the point's boot volume
  std::string socket;    // unix socket to listen on; empty: one in the run directory
  int port = 0;          // TCP port on 127.0.0.1 instead of a unix socket
};

struct NewToken {
  catalog::TokenRecord record;
  std::string secret;  // shown once; only its digest is kept
};

struct MountedVolume {
  std::string point_id;  // the point's full id
  std::string volume;
  std::unique_ptr<restore::VolumeServer> server;  // serves until stopped or destroyed
};

class App {
 public:
  // Opens the state directory and catalog named by the environment.
  static StatusOr<std::unique_ptr<App>> Open();
  // `monitor_program`: the binary that runs VM monitors (see vm::RuntimeOptions); empty = this one.
  // `clock` (not owned, outlives the App) times the catalog's records and token expiry.
  static StatusOr<std::unique_ptr<App>> Open(const StatePaths& paths,
                                             const std::string& monitor_program = "",
                                             Clock* clock = Clock::Real());

  // Validates `draft`, gives it a UUID and MACs where missing, and stores it (state "defined").
  StatusOr<catalog::VmRecord> DefineVm(catalog::VmRecord draft);
  // Makes a QEMU started elsewhere known: connects to its QMP socket, discovers its disks.
  StatusOr<catalog::VmRecord> AttachVm(const AttachRequest& request);
  // The VM by name or UUID, with its power state brought up to date.
  StatusOr<catalog::VmRecord> GetVm(const std::string& name);
  StatusOr<std::vector<catalog::VmRecord>> ListVms();
  // The VM's newest `limit` events, newest first.
  StatusOr<std::vector<catalog::EventRecord>> ListEvents(const catalog::VmRecord& vm, int limit);
  // Space the VM's recovery points use; nullopt when the repository cannot tell (never fails).
  std::optional<repo::VmUsage> SpaceUsage(const catalog::VmRecord& vm);
  // Forgets the VM (its images stay). FailedPrecondition while it runs.
  Status RemoveVm(const std::string& name);

  Status StartVm(const std::string& name);
  Status StopVm(const std::string& name, Millis timeout);
  Status KillVm(const std::string& name);

  // Guest agent of a running VM; `timeout` bounds the whole call.
  StatusOr<std::unique_ptr<qga::Client>> Agent(const catalog::VmRecord& vm, Millis timeout);
  StatusOr<std::vector<vm::MountedFilesystem>> GuestFilesystems(const std::string& name,
                                                                Millis timeout);

  // The default repository (<home>/repo), created with default settings on first use. An
  // encrypted one needs its key file in STILLPOINT_KEY_FILE.
  StatusOr<repo::Repository*> Repo();

  // Takes a snapshot (see capture::CaptureVm). FailedPrecondition when snapshots are disabled.
  StatusOr<capture::CaptureResult> CreateSnapshot(capture::CaptureRequest request,
                                                  const capture::ProgressFn& progress);

  // The catalog's recovery points, of the VM `vm` (name or UUID) only unless it is empty.
  // NotFound for an unknown VM.
  StatusOr<std::vector<catalog::RecoveryPointRecord>> ListSnapshots(const std::string& vm);
  // A recovery point by id or unique prefix: its manifest, else the catalog's record of an
  // unfinished point; else the repository's error (NotFound for an unknown id).
  StatusOr<SnapshotDetails> GetSnapshot(const std::string& id);

  // Recovery points back into VMs and out to files (restore_cases.cc).

  // A new VM (new UUID and MACs) from a recovery point (see restore::CreateVmFromPoint), defined
  // through DefineVm and recorded with a "vm.created-from-snapshot" event. AlreadyExists when the
  // name or an image is taken; on error no VM is defined.
  StatusOr<restore::NewVmResult> CreateVmFromSnapshot(const NewVmFromSnapshotRequest& request);
  // Puts the stopped VM `vm_name`'s disks back to `point_id` in place (see
  // restore::RestoreInPlace); `volumes` empty = all. Records "vm.restored", or
  // "vm.restore-failed" with the error, which it returns; the VM's images are then unchanged.
  StatusOr<VmRestoreResult> RestoreVm(const std::string& vm_name, const std::string& point_id,
                                      const std::vector<std::string>& volumes);
  // Writes a recovery point to a directory (see restore::ExportPoint); AlreadyExists when the
  // directory holds an export already.
  StatusOr<restore::ExportResult> ExportSnapshot(const restore::ExportRequest& request);
  // Adds the export in `dir` as a new recovery point and lists it in the catalog. The checks'
  // errors as restore::ImportPoint says; nothing is added unless all passed.
  StatusOr<restore::ImportResult> ImportSnapshot(const std::string& dir);
  // Starts serving a volume of a recovery point read-only over NBD (nbdkit with stillpoint's
  // plugin, straight from the repository). NotFound for an unknown point or volume, or when nbdkit
  // or the plugin is missing; Unavailable when the server did not come up. Any thread may call:
  // the server runs until MountedVolume::server is stopped or destroyed, or the process ends.
  StatusOr<MountedVolume> MountVolume(const MountRequest& request);

  // The repository and its maintenance (repo_cases.cc). Those that need no catalog are static,
  // so that they work on a repository named by path without a state directory's catalog.

  // The repository's path: `location.path`, else the default one. Fails only when the state
  // directory cannot be told.
  static StatusOr<std::string> RepoPath(const RepoLocation& location);
  // Creates a repository at `location` (its key_file is options.key_file's default).
  // AlreadyExists when one is there; InvalidArgument for bad options.
  static Status InitRepo(const RepoLocation& location, const repo::InitOptions& options);
  // NotFound when no repository is there; FailedPrecondition without the key of an encrypted one.
  static StatusOr<RepoInfo> GetRepoInfo(const RepoLocation& location);
  static StatusOr<repo::RepositoryStats> GetRepoStats(const RepoLocation& location);
  // Re-reads every chunk (of `point_id` only, when not empty); the report lists what is wrong.
  // Errors are those of opening the repository and reading it, not the problems found.
  static StatusOr<repo::VerifyReport> VerifyRepo(const RepoLocation& location,
                                                 const std::string& point_id);
  // DataLoss that sums up a report with problems; OK for a clean one.
  static Status VerifyVerdict(const repo::VerifyReport& report);
  static StatusOr<repo::GcReport> CollectGarbage(const RepoLocation& location);
  // Removes the VM's points no rule of `policy` keeps (unless `dry_run`), from the repository
  // and the catalog. InvalidArgument for a policy that keeps nothing.
  StatusOr<std::vector<repo::PruneDecision>> Prune(const RepoLocation& location,
                                                   const std::string& vm,
                                                   const repo::PrunePolicy& policy, bool dry_run);
  // Replaces the catalog's list of recovery points with the repository's; returns how many.
  StatusOr<size_t> RebuildCatalog(const RepoLocation& location);
  // Deletes a recovery point (id or unique prefix) from the repository and the catalog and
  // returns its manifest. NotFound for an unknown point.
  StatusOr<repo::Manifest> DeleteSnapshot(const RepoLocation& location, const std::string& id);
  // Sets (or with nullopt, lifts) the space the VM's recovery points may use. NotFound for an
  // unknown VM; a repository that cannot be read only leaves used_bytes 0.
  StatusOr<SpaceLimitResult> SetSpaceLimit(const RepoLocation& location, const std::string& vm,
                                           std::optional<int64_t> limit_bytes);

  // System-wide settings (`stillpoint config`): the known keys, their values or defaults.
  static const std::vector<std::pair<std::string, std::string>>& SettingDefaults();
  StatusOr<std::string> GetSetting(const std::string& key);
  // InvalidArgument for an unknown key or a value the key does not take.
  Status SetSetting(const std::string& key, const std::string& value);

  // Users and API tokens of the service (user_cases.cc). `origin` says who asked, for the
  // events each change records.

  // InvalidArgument for a bad name or a weak password; AlreadyExists for a taken name.
  StatusOr<catalog::UserRecord> AddUser(const std::string& name, catalog::Role role,
                                        const std::string& password,
                                        const catalog::EventOrigin& origin);
  StatusOr<std::vector<catalog::UserRecord>> ListUsers();
  // NotFound; FailedPrecondition for the last admin.
  Status RemoveUser(const std::string& name, const catalog::EventOrigin& origin);
  Status SetPassword(const std::string& name, const std::string& password,
                     const catalog::EventOrigin& origin);
  // The user when `password` is theirs; Unauthenticated ("wrong user or password") otherwise,
  // taking the same time for an unknown user.
  StatusOr<catalog::UserRecord> CheckPassword(const std::string& name, const std::string& password);
  // A new token of `role` for scripts, valid for `lifetime` (none: until revoked).
  StatusOr<NewToken> CreateToken(const std::string& name, catalog::Role role,
                                 std::optional<Millis> lifetime,
                                 const catalog::EventOrigin& origin);
  StatusOr<std::vector<catalog::TokenRecord>> ListTokens();
  Status RevokeToken(const std::string& id, const catalog::EventOrigin& origin);
  // The token whose secret is `secret`; Unauthenticated when unknown, expired or revoked.
  StatusOr<catalog::TokenRecord> FindToken(const std::string& secret);

  // Protection schedules (schedule_cases.cc). Set checks that every VM named exists.
  StatusOr<ScheduleRecord> SetSchedule(const ScheduleSpec& spec,
                                       const catalog::EventOrigin& origin);
  StatusOr<ScheduleRecord> GetSchedule(const std::string& name);
  // Schedules whose stored description no longer reads are left out, with an event.
  StatusOr<std::vector<ScheduleRecord>> ListSchedules();
  Status RemoveSchedule(const std::string& name, const catalog::EventOrigin& origin);
  Status MarkScheduleRun(const std::string& name, int64_t slot_us, const std::string& job_id);

  // Events matching `filter` (see catalog::Catalog::QueryEvents).
  StatusOr<std::vector<catalog::EventRecord>> QueryEvents(const catalog::EventFilter& filter);
  // Records an event of the VM `vm` (name or UUID; empty: system-wide).
  Status RecordEvent(const std::string& vm, const std::string& kind, const std::string& message,
                     const catalog::EventOrigin& origin);

  const StatePaths& paths() const { return paths_; }

 private:
  App(StatePaths paths, std::unique_ptr<catalog::Catalog> catalog,
      const std::string& monitor_program);
  Status CreateDefaultRepo();

  StatePaths paths_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<vm::Runtime> runtime_;
  std::unique_ptr<repo::Repository> repo_;
  std::string monitor_program_;
};

using catalog::EventToJson;
using catalog::VmToJson;

}  // namespace sp::app

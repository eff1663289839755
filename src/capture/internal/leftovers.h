// What earlier captures of a running VM left behind, removed before this one starts: the nodes,
// exports, paused vCPUs and scratch files of a capture killed before its teardown, a freeze
// that neither that capture nor its thaw guard lived to thaw, and dirty bitmaps of ours that no
// point needs any more. Each step may run only while the VM's capture lock is held.
#pragma once

#include <string>
#include <vector>

#include "capture/internal/volume_work.h"
#include "catalog/catalog.h"
#include "qmp/qmp_client.h"
#include "vm/machine.h"
#include "vm/runtime.h"

namespace sp::capture::internal {

// Removes from QEMU and from `files.dir` what interrupted captures of `vm` left there (see
// RemoveCaptureNodes), resuming vCPUs they left paused. Appends what it did to `*notes` and
// records it as the event "snapshot.cleanup". Errors name the QEMU step that failed.
Status CleanUpInterrupted(qmp::Session* qmp, const catalog::VmRecord& vm,
                          const vm::CaptureFiles& files, catalog::Catalog* catalog,
                          std::vector<std::string>* notes);

// Thaws a guest whose freeze record outlived both its capture and its thaw guard, before anyone
// asks the agent anything (it would find the guest frozen and blame someone else). Appends what
// it did to `*notes`. Unavailable when another party is still resolving the record after 30 s.
Status ResolveAbandonedFreeze(const vm::RunPaths& paths, const catalog::VmRecord& vm,
                              catalog::Catalog* catalog, std::vector<std::string>* notes);

// Removes our bitmaps on each qcow2 volume except the base of its incremental (prev_bitmap):
// they only cost the guest's writes.
Status RemoveStaleBitmaps(qmp::Session* qmp, const std::vector<VolumeWork>& volumes);

}  // namespace sp::capture::internal

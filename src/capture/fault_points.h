// The fault points a capture passes (see platform/fault.h), in order. Tests kill or stop a capture
// at each of them; the next capture must remove what it left and succeed.
#pragma once

namespace sp::capture {

inline constexpr const char* kCaptureFaultPoints[] = {
    // the clean-up after an interrupted capture, at the start of every live capture
    "cleanup.jobs-cancelled",
    "cleanup.exports-deleted",
    "cleanup.server-stopped",
    "cleanup.access-deleted",
    "cleanup.switched-back",
    "cleanup.filters-deleted",
    "cleanup.nodes-deleted",
    // prepare (no freeze)
    "prepare.scratch-added",
    "prepare.filters-added",
    // the cut: frozen by the agent (cut.frozen, cut.thawed) or vCPUs paused (cut.paused)
    "cut.frozen",
    "cut.paused",
    "cut.transaction",
    "cut.switched-first",
    "cut.switched",
    "cut.thawed",
    // export and stream
    "export.access-added",
    "export.server-started",
    "export.exported",
    "stream.chunk",
    // commit and teardown
    "commit.before",
    "commit.after",
    "teardown.jobs-cancelled",
    "teardown.exports-deleted",
    "teardown.server-stopped",
    "teardown.access-deleted",
    "teardown.switched-back",
    "teardown.filters-deleted",
    "teardown.nodes-deleted",
};

}  // namespace sp::capture

// The one error type of stillpoint: absl::Status / absl::StatusOr<T>, with helpers to propagate.
//
// Codes carry meaning across the code base:
//   InvalidArgument     the user gave something wrong (a name, a size, a flag); nothing changed.
//   NotFound            the named thing does not exist.
//   AlreadyExists       a unique name or MAC is taken.
//   FailedPrecondition  the thing is in the wrong state for the request (VM running, image locked).
//   DeadlineExceeded    a peer (QEMU, guest agent) did not answer in time.
//   Unavailable         a peer went away or cannot be reached; retrying later may work.
//   DataLoss            stored data is corrupt.
//   Internal            a bug or an impossible answer from a peer.
//
// Debian's abseil has its own absl::string_view (not std::string_view): use absl::string_view in
// interfaces so that absl::StrCat and Status messages take it without conversions.
#pragma once

#include <string>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sp {

using absl::Status;
using absl::StatusOr;

// Returns `status` with `context` prefixed to its message ("context: message"); same code.
Status Annotate(const Status& status, absl::string_view context);

// The errno-based status for a failed system call: "what: strerror(errno)".
Status ErrnoStatus(int error_number, absl::string_view what);

}  // namespace sp

#define SP_CONCAT_INNER_(a, b) a##b
#define SP_CONCAT_(a, b) SP_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` yields a non-OK status.
#define SP_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status sp_status_ = (expr);      \
    if (!sp_status_.ok()) return sp_status_; \
  } while (false)

// `lhs = value of expr`, or returns its error. `lhs` may declare a variable: `auto x`.
#define SP_ASSIGN_OR_RETURN(lhs, expr) \
  SP_ASSIGN_OR_RETURN_IMPL_(SP_CONCAT_(sp_statusor_, __LINE__), lhs, expr)
#define SP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).status();  \
  lhs = std::move(tmp).value()

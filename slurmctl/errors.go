package slurmctl

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Kinds of Slurm failure, for errors.Is. Every error this package returns
// from talking to Slurm is an [*Error] whose Kind is one of these, or nil
// when Slurm's error has no counterpart here (its Code and Message still say
// what happened).
var (
	// ErrInvalidAccount: the account does not exist, or the user has no
	// association with it (or with it in that partition).
	ErrInvalidAccount = errors.New("invalid account")
	// ErrInvalidPartition: the partition does not exist, none was given and
	// there is no default, or it takes no jobs now.
	ErrInvalidPartition = errors.New("invalid partition")
	// ErrUnknownUser: Slurm does not know the user.
	ErrUnknownUser = errors.New("unknown user")
	// ErrOverLimit: the request breaks an association, QOS or partition
	// limit that Slurm enforces at submission.
	ErrOverLimit = errors.New("over limit")
	// ErrUnavailable: slurmrestd, slurmctld or slurmdbd cannot be reached or
	// is not serving; retrying later may succeed.
	ErrUnavailable = errors.New("unavailable")
	// ErrPermissionDenied: the acting user may not do this, or Slurm did not
	// accept the credentials the gateway presented for them.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrNotFound: the job, account or association does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: what was to be created is there already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidRequest: the request itself is malformed or can never be
	// satisfied (bad GRES, unknown QOS, impossible node configuration).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrNoChange: a listing asked for changes since a time (JobFilter's
	// ChangedSince) and slurmctld has none. Not a failure.
	ErrNoChange = errors.New("no change since the given time")
)

// Error is a failed Slurm operation. It keeps Slurm's own message and error
// number, since those are what a site administrator searches for, and adds a
// Kind that callers can branch on.
type Error struct {
	// Op is what was attempted: "submit", "cancel", "create account".
	Op string
	// Kind is one of the Err* kinds of this package, or nil.
	Kind error
	// Code is Slurm's error number (slurm_errno.h); 0 when Slurm gave none,
	// as with its command-line tools.
	Code int
	// Message is Slurm's own text.
	Message string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("slurm")
	if e.Op != "" {
		b.WriteString(" " + e.Op)
	}
	if e.Kind != nil {
		b.WriteString(": " + e.Kind.Error())
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, " (slurm error %d)", e.Code)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Kind }

// slurmErrno is what Slurm 22.05 says for one of its error numbers and how
// Slurmgate classifies it.
type slurmErrno struct {
	kind error
	text string // slurm_strerror(), for messages that arrive without text
}

// slurmErrnos maps the numbers of slurm/slurm_errno.h in Slurm 22.05 that a
// gateway can meet. The enum is numbered from anchors every ten entries, but
// entries between anchors have moved across releases (2007, 2040, 2041 and
// 2063 mean different things in 22.05 and in later releases), so only
// numbers that 22.05 assigns are listed; others keep a nil Kind rather than
// a wrong one.
var slurmErrnos = map[int]slurmErrno{
	// Message and socket failures between Slurm's components.
	1001: {ErrUnavailable, "Communication connection failure"},
	1002: {ErrUnavailable, "Message send failure"},
	1003: {ErrUnavailable, "Message receive failure"},
	1004: {ErrUnavailable, "Communication shutdown failure"},
	1005: {ErrUnavailable, "Incompatible versions of client and server code"},
	1007: {ErrPermissionDenied, "Protocol authentication error"},
	1800: {ErrUnavailable, "Unable to contact slurm controller (connect failure)"},
	1801: {ErrUnavailable, "Unable to contact slurm controller (send failure)"},
	1802: {ErrUnavailable, "Unable to contact slurm controller (receive failure)"},
	1803: {ErrUnavailable, "Unable to contact slurm controller (shutdown failure)"},
	5004: {ErrUnavailable, "Socket timed out on send/recv operation"},
	5005: {ErrUnavailable, "Zero Bytes were transmitted or received"},

	// slurmctld.
	2000: {ErrInvalidPartition, "Invalid partition name specified"},
	2001: {ErrInvalidPartition, "No partition specified or system default partition"},
	2002: {ErrPermissionDenied, "Access/permission denied"},
	2003: {ErrPermissionDenied, "User's group not permitted to use this partition"},
	2004: {ErrInvalidRequest, "Requested nodes not in this partition"},
	2005: {ErrOverLimit, "More processors requested than permitted"},
	2006: {ErrInvalidRequest, "Node count specification invalid"},
	2009: {ErrInvalidRequest, "Job script not specified"},
	2010: {ErrUnknownUser, "Invalid user id"},
	2014: {ErrInvalidRequest, "Requested node configuration is not available"},
	// Raised when a job exceeds a partition limit under EnforcePartLimits.
	2015: {ErrOverLimit, "Requested partition configuration not available now"},
	2017: {ErrNotFound, "Invalid job id specified"},
	2027: {ErrUnavailable, "Slurm backup controller in standby mode"},
	2029: {ErrInvalidRequest, "Invalid feature specification"},
	2038: {ErrInvalidRequest, "Job dependency problem"},
	2044: {ErrOverLimit, "Memory required by task is not available"},
	2045: {ErrInvalidAccount, "Invalid account or account/partition combination specified"},
	2046: {ErrInvalidAccount, "Invalid parent account specified"},
	2048: {ErrInvalidRequest, "Invalid license specification"},
	2050: {ErrOverLimit, "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)"},
	2051: {ErrOverLimit, "Requested time limit is invalid (missing or exceeds some limit)"},
	2052: {ErrPermissionDenied, "Access denied to requested reservation"},
	2053: {ErrInvalidRequest, "Requested reservation is invalid"},
	2054: {ErrInvalidRequest, "Invalid time specified"},
	2057: {ErrInvalidRequest, "Invalid wckey specification"},
	2066: {ErrInvalidRequest, "Invalid qos specification"},
	2069: {ErrInvalidRequest, "CPU count specification invalid"},
	2070: {ErrInvalidPartition, "Required partition not available (inactive or drain)"},
	2071: {ErrInvalidRequest, "Circular job dependency"},
	2072: {ErrInvalidRequest, "Invalid generic resource (gres) specification"},
	2074: {ErrOverLimit, "Requested account has breached requested QOS usage threshold"},
	2081: {ErrInvalidRequest, "Invalid job array specification"},
	2092: {ErrPermissionDenied, "Burst Buffer permission denied"},
	2093: {ErrOverLimit, "Burst Buffer resource limit exceeded"},
	2101: {ErrInvalidPartition, "Partition in DOWN state"},
	2102: {ErrInvalidRequest, "Duplicate generic resource (gres) specification"},
	2105: {ErrUnavailable, "System submissions disabled"},
	2113: {ErrUnknownUser, "Invalid group id"},
	2115: {ErrInvalidRequest, "Invalid Trackable RESource (TRES) specification"},
	2119: {ErrInvalidRequest, "Invalid GRES specification (with and without type identification)"},
	2122: {ErrInvalidRequest, "Requested GRES option unsupported by configured SelectType plugin"},
	2123: {ErrInvalidRequest, "Invalid --nice value"},
	2127: {ErrInvalidRequest, "Environment is missing in job"},
	2130: {ErrInvalidRequest, "Multiple partition job request not supported when a partition is set in the association"},
	2131: {ErrUnavailable, "Controller is in standby mode, try a different controller"},
	2132: {ErrInvalidRequest, "Cannot request more threads per core than the job allocation"},

	// Authentication plugins (22.05 numbering: 6001 was still
	// ESLURM_AUTH_FOPEN_ERROR, not ESLURM_AUTH_EXPIRED).
	6000: {ErrPermissionDenied, "Invalid authentication credential"},
	6006: {ErrPermissionDenied, "Invalid authentication credential"},

	// Accounting.
	7000: {ErrUnavailable, "Unable to connect to database"},
	7001: {ErrInvalidRequest, "Job(s) active, cancel job(s) before remove"},
	7008: {ErrUnavailable, "Database connection reference is invalid"},

	// slurmrestd's own request errors.
	9000: {ErrInvalidRequest, "Query empty or incorrect type"},
	9001: {ErrInvalidRequest, "Unable to parse request"},
	9002: {ErrInvalidRequest, "Invalid job description"},
	9003: {ErrNotFound, "Nothing found with query"},
}

// cliPhrases classify what Slurm's commands print, which carries no error
// number: sbatch and scancel print slurm_strerror() texts (matched through
// slurmErrnos first), sacctmgr prints sentences of its own. Matching is by
// case-insensitive substring, first match wins, so narrower phrases come
// first.
var cliPhrases = []struct {
	phrase string
	kind   error
}{
	{"unable to contact slurm controller", ErrUnavailable},
	{"problem talking to the database", ErrUnavailable},
	{"unable to connect to database", ErrUnavailable},
	{"connection refused", ErrUnavailable},
	{"socket timed out", ErrUnavailable},
	{"invalid account", ErrInvalidAccount},
	{"invalid partition", ErrInvalidPartition},
	{"invalid user", ErrUnknownUser},
	{"unknown user", ErrUnknownUser},
	{"no uid for user", ErrUnknownUser},
	{"violates accounting/qos policy", ErrOverLimit},
	{"permission denied", ErrPermissionDenied},
	{"access denied", ErrPermissionDenied},
	{"privilege", ErrPermissionDenied},
	{"authentication", ErrPermissionDenied},
	{"invalid job id", ErrNotFound},
	// sacctmgr's answers when a where-clause matched nothing, or when an add
	// found everything already present.
	{"nothing deleted", ErrNotFound},
	{"nothing modified", ErrNotFound},
	{"doesn't exist", ErrNotFound},
	{"does not exist", ErrNotFound},
	{"nothing new added", ErrAlreadyExists},
	{"already exists", ErrAlreadyExists},
}

// classifySlurmError builds the *Error for a failed op from what Slurm
// reported: an error number from slurmrestd (code), or only a message from
// its command-line tools (code 0). The number decides when it is one of
// Slurm 22.05's; otherwise the message does. A missing message is filled in
// with Slurm's text for the number.
func classifySlurmError(op string, code int, msg string) *Error {
	msg = strings.TrimSpace(msg)
	e := &Error{Op: op, Code: code, Message: msg}
	if known, ok := slurmErrnos[code]; ok {
		e.Kind = known.kind
		if e.Message == "" {
			e.Message = known.text
		}
		return e
	}
	e.Kind = classifyMessage(msg)
	return e
}

// errnoTexts are the texts of slurmErrnos in number order, lower-cased, so
// that matching a message against them does not depend on map order.
var errnoTexts = func() []slurmErrno {
	var list []slurmErrno
	for _, code := range slices.Sorted(maps.Keys(slurmErrnos)) {
		e := slurmErrnos[code]
		list = append(list, slurmErrno{e.kind, strings.ToLower(e.text)})
	}
	return list
}()

func classifyMessage(msg string) error {
	if msg == "" {
		return nil
	}
	lower := strings.ToLower(msg)
	for _, known := range errnoTexts {
		if strings.Contains(lower, known.text) {
			return known.kind
		}
	}
	for _, p := range cliPhrases {
		if strings.Contains(lower, p.phrase) {
			return p.kind
		}
	}
	return nil
}

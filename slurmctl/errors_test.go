package slurmctl

import (
	"errors"
	"fmt"
	"testing"
)

func TestClassifySlurmError(t *testing.T) {
	tests := []struct {
		name    string
		op      string
		code    int
		msg     string
		kind    error
		message string // the Message kept; "" means msg
		text    string // the whole Error(); checked when set
	}{
		// slurmrestd: the number decides.
		{name: "invalid account", op: "submit", code: 2045, msg: "Invalid account or account/partition combination specified",
			kind: ErrInvalidAccount,
			text: "slurm submit: invalid account: Invalid account or account/partition combination specified (slurm error 2045)"},
		{name: "permission", op: "cancel", code: 2002, msg: "Access/permission denied", kind: ErrPermissionDenied,
			text: "slurm cancel: permission denied: Access/permission denied (slurm error 2002)"},
		{name: "missing text filled in", op: "submit", code: 2000, kind: ErrInvalidPartition,
			message: "Invalid partition name specified",
			text:    "slurm submit: invalid partition: Invalid partition name specified (slurm error 2000)"},
		{name: "no default partition", op: "submit", code: 2001, kind: ErrInvalidPartition},
		{name: "partition closed", op: "submit", code: 2070, kind: ErrInvalidPartition},
		{name: "partition down", op: "submit", code: 2101, kind: ErrInvalidPartition},
		{name: "partition group", op: "submit", code: 2003, kind: ErrPermissionDenied},
		{name: "unknown user", op: "submit", code: 2010, msg: "Invalid user id", kind: ErrUnknownUser},
		{name: "job gone", op: "job", code: 2017, msg: "Invalid job id specified", kind: ErrNotFound},
		{name: "accounting policy", op: "submit", code: 2050, kind: ErrOverLimit},
		{name: "time limit", op: "submit", code: 2051, kind: ErrOverLimit},
		{name: "partition limits", op: "submit", code: 2015, kind: ErrOverLimit},
		{name: "too many CPUs", op: "submit", code: 2005, kind: ErrOverLimit},
		{name: "controller down", op: "submit", code: 1800, kind: ErrUnavailable,
			message: "Unable to contact slurm controller (connect failure)"},
		{name: "socket timeout", op: "jobs", code: 5004, kind: ErrUnavailable},
		{name: "standby", op: "jobs", code: 2027, kind: ErrUnavailable},
		{name: "submissions disabled", op: "submit", code: 2105, kind: ErrUnavailable},
		{name: "database down", op: "accounts", code: 7000, kind: ErrUnavailable},
		{name: "auth", op: "job", code: 1007, kind: ErrPermissionDenied},
		{name: "credential", op: "job", code: 6000, kind: ErrPermissionDenied},
		{name: "bad gres", op: "submit", code: 2072, kind: ErrInvalidRequest},
		{name: "gres types mixed", op: "submit", code: 2119, kind: ErrInvalidRequest},
		{name: "invalid qos", op: "submit", code: 2066, kind: ErrInvalidRequest},
		{name: "environment missing", op: "submit", code: 2127, msg: "Environment is missing in job", kind: ErrInvalidRequest},
		{name: "node configuration", op: "submit", code: 2014, kind: ErrInvalidRequest},
		{name: "jobs running on assoc", op: "delete account", code: 7001, kind: ErrInvalidRequest},
		{name: "rest parse", op: "submit", code: 9001, kind: ErrInvalidRequest},
		{name: "rest nothing found", op: "jobs", code: 9003, kind: ErrNotFound},
		{name: "number beats text", op: "submit", code: 2045, msg: "Access/permission denied", kind: ErrInvalidAccount},
		{name: "number Slurm 22.05 does not assign", op: "x", code: 4242, msg: "Something new", kind: nil,
			text: "slurm x: Something new (slurm error 4242)"},
		{name: "unknown number, known text", op: "submit", code: 2999, msg: "Invalid account or account/partition combination specified",
			kind: ErrInvalidAccount},
		// Command-line tools: no number, the text decides.
		{name: "sbatch account", op: "submit", msg: "Batch job submission failed: Invalid account or account/partition combination specified",
			kind: ErrInvalidAccount,
			text: "slurm submit: invalid account: Batch job submission failed: Invalid account or account/partition combination specified"},
		{name: "sbatch partition", op: "submit", msg: "Batch job submission failed: Invalid partition name specified", kind: ErrInvalidPartition},
		{name: "slurmctld partition", op: "submit", msg: "invalid partition specified: nosuch", kind: ErrInvalidPartition},
		{name: "sbatch user", op: "submit", msg: "Batch job submission failed: Invalid user id", kind: ErrUnknownUser},
		{name: "sbatch policy", op: "submit", msg: "Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
			kind: ErrOverLimit},
		{name: "controller", op: "submit", msg: "Batch job submission failed: Unable to contact slurm controller (connect failure)", kind: ErrUnavailable},
		{name: "scancel permission", op: "cancel", msg: "Kill job error on job id 123: Access/permission denied", kind: ErrPermissionDenied},
		{name: "scancel gone", op: "cancel", msg: "Kill job error on job id 99: Invalid job id specified", kind: ErrNotFound},
		{name: "sacctmgr database", op: "create account", msg: "Problem talking to the database: Connection refused", kind: ErrUnavailable},
		{name: "sacctmgr exists", op: "create account", msg: "Nothing new added.", kind: ErrAlreadyExists},
		{name: "sacctmgr nothing deleted", op: "delete account", msg: "Nothing deleted", kind: ErrNotFound},
		{name: "sacctmgr nothing modified", op: "update account", msg: "Nothing modified", kind: ErrNotFound},
		{name: "sacctmgr privilege", op: "create account", msg: "Your user doesn't have privilege to perform this action", kind: ErrPermissionDenied},
		{name: "sacctmgr unknown user", op: "create association", msg: "There is no uid for user 'zed'", kind: ErrUnknownUser},
		{name: "sacctmgr active jobs", op: "delete account", msg: "Job(s) active, cancel job(s) before remove", kind: ErrInvalidRequest},
		{name: "case and space", op: "submit", msg: "  INVALID ACCOUNT or account/partition combination specified\n", kind: ErrInvalidAccount,
			message: "INVALID ACCOUNT or account/partition combination specified"},
		{name: "unrecognised text", op: "submit", msg: "something odd happened", kind: nil,
			text: "slurm submit: something odd happened"},
		{name: "nothing at all", op: "submit", kind: nil, text: "slurm submit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := classifySlurmError(tt.op, tt.code, tt.msg)
			if e.Op != tt.op || e.Code != tt.code {
				t.Errorf("Op, Code = %q, %d; want %q, %d", e.Op, e.Code, tt.op, tt.code)
			}
			if e.Kind != tt.kind {
				t.Errorf("Kind = %v, want %v", e.Kind, tt.kind)
			}
			want := tt.message
			if want == "" && tt.msg != "" {
				want = tt.msg
			}
			if want != "" && e.Message != want {
				t.Errorf("Message = %q, want %q", e.Message, want)
			}
			if tt.text != "" && e.Error() != tt.text {
				t.Errorf("Error() = %q, want %q", e.Error(), tt.text)
			}
		})
	}
}

// Every number the table maps must carry Slurm's text, so that an error
// without a message still says something a site administrator recognises.
func TestClassifySlurmErrorTable(t *testing.T) {
	for code, e := range slurmErrnos {
		if e.kind == nil || e.text == "" {
			t.Errorf("slurm error %d: kind %v, text %q", code, e.kind, e.text)
		}
		if got := classifyMessage(e.text); got != e.kind {
			t.Errorf("slurm error %d: its own text %q classifies as %v, want %v", code, e.text, got, e.kind)
		}
	}
}

func TestErrorIsAndAs(t *testing.T) {
	err := fmt.Errorf("create session: %w", classifySlurmError("submit", 2045, ""))
	if !errors.Is(err, ErrInvalidAccount) {
		t.Errorf("errors.Is(%v, ErrInvalidAccount) = false", err)
	}
	if errors.Is(err, ErrInvalidPartition) {
		t.Errorf("errors.Is(%v, ErrInvalidPartition) = true", err)
	}
	var se *Error
	if !errors.As(err, &se) || se.Code != 2045 || se.Op != "submit" {
		t.Errorf("errors.As gave %+v", se)
	}
	if unknown := classifySlurmError("x", 0, "odd"); errors.Unwrap(unknown) != nil {
		t.Errorf("an unclassified error unwraps to %v, want nil", errors.Unwrap(unknown))
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Op: "submit", Kind: ErrOverLimit, Code: 2050, Message: "Job violates accounting/QOS policy"},
			"slurm submit: over limit: Job violates accounting/QOS policy (slurm error 2050)"},
		{&Error{Op: "ping", Kind: ErrUnavailable, Message: "slurmrestd unreachable: connection refused"},
			"slurm ping: unavailable: slurmrestd unreachable: connection refused"},
		{&Error{Kind: ErrNotFound}, "slurm: not found"},
		{&Error{Op: "job", Code: 2017}, "slurm job (slurm error 2017)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

package bridge

import (
	"strings"
	"testing"
)

// A session whose user's association is missing from Slurm (the account
// sync has not caught up with a new membership) is not refused for an
// invalid account: the submit creates the association and tries again.
func TestSubmitCreatesAMissingAssociation(t *testing.T) {
	w := newWorld(t)
	// The world's accounts are made by hand under this organisation; the
	// sync may create in it (EnsureFor never deletes).
	w.b.cfg.ManagedOrganization = "slurmgate-test"
	ctx := t.Context()
	account := w.project.Account()
	if err := w.slurm.DeleteAssociation(ctx, account, "alice"); err != nil {
		t.Fatal(err)
	}
	s, err := w.b.CreateSession(ctx, w.alice, w.batch("true"))
	if err != nil {
		t.Fatal(err)
	}
	if s.JobID == nil {
		t.Fatalf("session %s is %s (%s); want it submitted once the association is made", s.ID, s.State, s.StatusMessage)
	}
	out := w.env.Run(t, "sacctmgr", "-nP", "show", "assoc", "where", "account="+account, "user=alice", "format=account,user")
	if strings.TrimSpace(out) != account+"|alice" {
		t.Errorf("sacctmgr show assoc for alice in %s: %q; want the association back", account, out)
	}
}

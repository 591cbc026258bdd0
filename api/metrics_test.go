package api

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slurmgate/slurmgate/slurmctl"
)

func TestSlurmObserverLabelsByKindNotText(t *testing.T) {
	reg := prometheus.NewRegistry()
	observe := SlurmObserver(reg)
	observe("submit", 20*time.Millisecond, nil)
	observe("submit", time.Second, &slurmctl.Error{Op: "submit", Kind: slurmctl.ErrUnavailable, Message: "connection refused"})
	observe("jobs", time.Millisecond, &slurmctl.Error{Op: "jobs", Kind: slurmctl.ErrNoChange})
	observe("cancel", time.Millisecond, errors.New("some odd failure"))
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 4 {
		t.Fatalf("gathered %v (%v); want 4 series: submit ok, submit unavailable, jobs ok, cancel error", mfs, err)
	}
	var labels []string
	for _, m := range mfs[0].GetMetric() {
		var l []string
		for _, p := range m.GetLabel() {
			l = append(l, p.GetValue())
		}
		labels = append(labels, strings.Join(l, "/"))
	}
	got := strings.Join(labels, " ")
	for _, w := range []string{"submit/ok", "submit/unavailable", "jobs/ok", "cancel/error"} {
		if !strings.Contains(got, w) {
			t.Errorf("series %q lack %s", got, w)
		}
	}
}

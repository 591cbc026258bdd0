package api

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/slurmctl"
)

// SlurmObserver returns a function for slurmctl.Config.Observe that records
// every Slurm call's latency and outcome in reg as
// slurmgate_slurm_request_duration_seconds{op, outcome}.
func SlurmObserver(reg prometheus.Registerer) func(op string, took time.Duration, err error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "slurmgate_slurm_request_duration_seconds",
		Help:    "Slurm requests (slurmrestd and Slurm CLI) by operation and outcome.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"op", "outcome"})
	reg.MustRegister(h)
	return func(op string, took time.Duration, err error) {
		h.WithLabelValues(op, slurmOutcome(err)).Observe(took.Seconds())
	}
}

// slurmOutcome keeps the label set small: the error's kind, not its text.
func slurmOutcome(err error) string {
	switch {
	case err == nil, errors.Is(err, slurmctl.ErrNoChange):
		return "ok"
	case errors.Is(err, slurmctl.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, slurmctl.ErrPermissionDenied):
		return "denied"
	}
	return "error"
}

// domainCollector reports the bridge's state at scrape time: sessions by
// state from PostgreSQL, and the last reconcile pass.
type domainCollector struct {
	b                            *bridge.Bridge
	sessions, reconcile, recLive *prometheus.Desc
	recRequests                  *prometheus.Desc
}

func newDomainCollector(b *bridge.Bridge) *domainCollector {
	return &domainCollector{
		b:           b,
		sessions:    prometheus.NewDesc("slurmgate_sessions", "Sessions by lifecycle state.", []string{"state"}, nil),
		reconcile:   prometheus.NewDesc("slurmgate_reconcile_duration_seconds", "Wall time of the last session reconcile pass.", nil, nil),
		recLive:     prometheus.NewDesc("slurmgate_reconcile_live_sessions", "Live sessions the last reconcile pass examined.", nil, nil),
		recRequests: prometheus.NewDesc("slurmgate_reconcile_slurm_requests", "Slurm requests the last reconcile pass made.", nil, nil),
	}
}

func (c *domainCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sessions
	ch <- c.reconcile
	ch <- c.recLive
	ch <- c.recRequests
}

func (c *domainCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if counts, err := c.b.SessionCounts(ctx); err == nil {
		for state, n := range counts {
			ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(n), string(state))
		}
	}
	st := c.b.LastReconcile()
	ch <- prometheus.MustNewConstMetric(c.reconcile, prometheus.GaugeValue, st.Took.Seconds())
	ch <- prometheus.MustNewConstMetric(c.recLive, prometheus.GaugeValue, float64(st.Live))
	ch <- prometheus.MustNewConstMetric(c.recRequests, prometheus.GaugeValue, float64(st.SlurmRequests))
}

package slurmctl

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// TRES is a set of trackable resources keyed the way Slurm spells them:
// "cpu", "mem" (MiB), "node", "billing", "gres/gpu", "gres/gpu:a100".
type TRES map[string]int64

// ParseTRES parses Slurm's comma-separated TRES form ("cpu=4,mem=8G,gres/gpu:a100=2").
// Memory accepts Slurm's unit suffixes (K, M, G, T; default M) and is stored in MiB.
func ParseTRES(s string) (TRES, error) {
	t := TRES{}
	s = strings.TrimSpace(s)
	if s == "" {
		return t, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("TRES %q: want name=count, got %q", s, part)
		}
		var n int64
		var err error
		if k == "mem" {
			n, err = ParseMemoryMB(v)
		} else {
			n, err = strconv.ParseInt(v, 10, 64)
		}
		if err != nil || n < 0 {
			return nil, fmt.Errorf("TRES %q: %q is not a non-negative count", s, v)
		}
		t[k] = n
	}
	return t, nil
}

// String renders t in Slurm's form with keys sorted, so equal sets print equally.
func (t TRES) String() string {
	keys := slices.Sorted(maps.Keys(t))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+strconv.FormatInt(t[k], 10))
	}
	return strings.Join(parts, ",")
}

// Equal reports whether two sets hold the same counts; a missing key equals a
// missing key only (Slurm distinguishes "unset" from 0).
func (t TRES) Equal(u TRES) bool { return maps.Equal(t, u) }

// ParseMemoryMB parses a Slurm memory size ("512", "512M", "8G", "1T") into MiB.
// A bare number is MiB, as in sbatch --mem; K rounds up to whole MiB, and a B
// after the unit ("8GB") is accepted as sbatch accepts it.
func ParseMemoryMB(s string) (int64, error) {
	bad := fmt.Errorf("memory size %q: want a number with an optional K, M, G or T suffix", s)
	num := strings.TrimSpace(s)
	if n := len(num); n > 1 && (num[n-1] == 'B' || num[n-1] == 'b') && strings.IndexByte("KkMmGgTt", num[n-2]) >= 0 {
		num = num[:n-1]
	}
	shift := 0 // binary orders of magnitude above MiB; -1 for KiB
	if n := len(num); n > 0 && (num[n-1] < '0' || num[n-1] > '9') {
		switch num[n-1] {
		case 'K', 'k':
			shift = -1
		case 'M', 'm':
		case 'G', 'g':
			shift = 1
		case 'T', 't':
			shift = 2
		default:
			return 0, bad
		}
		num = num[:n-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, bad
	}
	if shift < 0 {
		return n/1024 + min(n%1024, 1), nil
	}
	if n > math.MaxInt64>>(10*shift) {
		return 0, fmt.Errorf("memory size %q is too large", s)
	}
	return n << (10 * shift), nil
}

package slurmctl

import (
	"fmt"
	"maps"
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
// A bare number is MiB, as in sbatch --mem.
func ParseMemoryMB(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty memory size")
	}
	mult := int64(1)
	switch last := s[len(s)-1]; last {
	case 'K', 'k':
		mult = -1024 // divide: KiB → MiB, rounding up
	case 'M', 'm':
	case 'G', 'g':
		mult = 1024
	case 'T', 't':
		mult = 1024 * 1024
	}
	if s[len(s)-1] < '0' || s[len(s)-1] > '9' {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("memory size %q: want a number with an optional K, M, G or T suffix", s)
	}
	if mult < 0 {
		return (n + 1023) / 1024, nil
	}
	return n * mult, nil
}

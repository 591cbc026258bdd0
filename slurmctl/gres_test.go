package slurmctl

import (
	"slices"
	"testing"
)

func TestParseGRES(t *testing.T) {
	good := map[string][]GRES{
		"gpu":                {{Name: "gpu", Count: 1}},
		"gpu:2":              {{Name: "gpu", Count: 2}},
		"gpu:a100:2":         {{Name: "gpu", Type: "a100", Count: 2}},
		"gpu:a100":           {{Name: "gpu", Type: "a100", Count: 1}},
		"gpu:a100:1,mps:100": {{Name: "gpu", Type: "a100", Count: 1}, {Name: "mps", Count: 100}},
	}
	for in, want := range good {
		got, err := ParseGRES(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseGRES(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "gpu:0", "gpu:-1", "gpu:2k", "gpu:a:b:c", ":2", "gpu,,mps", "gpu::2"} {
		if got, err := ParseGRES(in); err == nil {
			t.Errorf("ParseGRES(%q) = %v; want an error", in, got)
		}
	}
}

func TestGRESInventory(t *testing.T) {
	got := parseGRESInventory("gpu:a100:2(IDX:0,2),gpu:v100:0(IDX:N/A),(null)")
	want := []GRES{{Name: "gpu", Type: "a100", Count: 2}, {Name: "gpu", Type: "v100", Count: 0}}
	if !slices.Equal(got, want) {
		t.Fatalf("inventory = %v, want %v", got, want)
	}
}

package main

import (
	"reflect"
	"testing"

	"github.com/slurmgate/slurmgate/api/client"
)

func TestMountFlagParsing(t *testing.T) {
	for _, c := range []struct {
		in   string
		want client.Mount
	}{
		{"data", client.Mount{VFolder: "data"}},
		{"data:ro", client.Mount{VFolder: "data", ReadOnly: true}},
		{"data:rw", client.Mount{VFolder: "data"}},
		{"data:/home/work/in", client.Mount{VFolder: "data", Target: "/home/work/in"}},
		{"data:/home/work/in:ro", client.Mount{VFolder: "data", Target: "/home/work/in", ReadOnly: true}},
		// The gateway, not the CLI, judges the path: it names the field.
		{"data:/etc", client.Mount{VFolder: "data", Target: "/etc"}},
	} {
		got, err := parseMounts([]string{c.in})
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], c.want) {
			t.Errorf("--mount %s: %+v %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", ":/home/work/x", "data:relative", "data:/home/work/x:ro:ro", "data:/a:/b", "data:ro:/home/work/x"} {
		if m, err := parseMounts([]string{bad}); err == nil {
			t.Errorf("--mount %q: accepted as %+v; want a usage error", bad, m)
		}
	}
}

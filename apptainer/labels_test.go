package apptainer

import (
	"slices"
	"strings"
	"testing"
)

func TestParseLabels(t *testing.T) {
	info, err := ParseLabels(map[string]string{
		"org.slurmgate.service.jupyter":         "http:8888",
		"org.slurmgate.service.jupyter.command": "jupyter-notebook --sock={socket} --NotebookApp.base_url={base_url} --NotebookApp.notebook_dir={base_url}x",
		"org.slurmgate.service.jupyter.auth":    "token",
		"org.slurmgate.service.tensorboard":     "http:6006",
		"org.slurmgate.service.ssh":             "tcp:22",
		"org.slurmgate.min.cpus":                "2",
		"org.slurmgate.min.memory":              "1536M",
		"org.slurmgate.min.gpus":                "1",
		"org.slurmgate.runtimes":                "apptainer, charliecloud",
		"maintainer":                            "someone else's label, ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.MinCPUs != 2 || info.MinMemoryMB != 1536 || info.MinGPUs != 1 || !slices.Equal(info.Runtimes, []string{"apptainer", "charliecloud"}) {
		t.Errorf("resources/runtimes: %+v", info)
	}
	want := []Service{
		{Name: "jupyter", Protocol: "http", Port: 8888, Command: "jupyter-notebook --sock={socket} --NotebookApp.base_url={base_url} --NotebookApp.notebook_dir={base_url}x", BaseURL: true, Socket: true, Auth: "token"},
		{Name: "ssh", Protocol: "tcp", Port: 22},
		{Name: "tensorboard", Protocol: "http", Port: 6006},
	}
	if !slices.Equal(info.Services, want) {
		t.Errorf("services:\n got %+v\nwant %+v", info.Services, want)
	}
	argv, err := info.Services[0].Argv(ServiceVars{Socket: "/run/s/jupyter.sock", BaseURL: "/s/a b/jupyter/"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(argv, []string{"jupyter-notebook", "--sock=/run/s/jupyter.sock", "--NotebookApp.base_url=/s/a b/jupyter/", "--NotebookApp.notebook_dir=/s/a b/jupyter/x"}) {
		t.Errorf("argv %q: a value must never split into more arguments", argv)
	}
	if h := info.Services[0].AuthHeader(); h != "Authorization: token {token}" {
		t.Errorf("jupyter's auth header %q; want Jupyter's token header", h)
	}
	if h := info.Services[1].AuthHeader(); h != "" {
		t.Errorf("ssh's auth header %q; want none", h)
	}
	if _, err := info.Services[2].Argv(ServiceVars{}); err == nil {
		t.Error("a service without a command rendered one")
	}
	if info, err := ParseLabels(nil); err != nil || info.Services == nil {
		t.Errorf("no labels: %+v, %v; want no services (an empty list) and no error", info, err)
	}
}

func TestParseLabelsErrors(t *testing.T) {
	for label, want := range map[[2]string]string{
		{"org.slurmgate.service.jupyter", "http"}:             "want PROTOCOL:PORT",
		{"org.slurmgate.service.jupyter", "udp:53"}:           "want http or tcp",
		{"org.slurmgate.service.jupyter", "http:0"}:           "1 to 65535",
		{"org.slurmgate.service.jupyter", "http:eighty"}:      "1 to 65535",
		{"org.slurmgate.service.Jupyter", "http:1"}:           "service name",
		{"org.slurmgate.service.x.command", "run {port}"}:     "no label org.slurmgate.service.x=PROTOCOL:PORT",
		{"org.slurmgate.min.cpus", "two"}:                     "whole number",
		{"org.slurmgate.min.memory", "lots"}:                  "512M or 4G",
		{"org.slurmgate.runtimes", "docker"}:                  `runtime "docker" is not one of`,
		{"org.slurmgate.min.gpu", "1"}:                        "not a Slurmgate label",
		{"org.slurmgate.service.y.command", "run {hostname}"}: "unknown placeholder {hostname}",
		{"org.slurmgate.service.y.command", "run {port}"}:     "no label org.slurmgate.service.y",
		{"org.slurmgate.service.y.auth", "token"}:             "no label org.slurmgate.service.y",
		{"org.slurmgate.service.y.auth", "basic"}:             "want token",
		// A secret on the command line is readable by every user of the
		// node: refused, with the fix.
		{"org.slurmgate.service.y.command", "run --token={token}"}: "remove {token} from it and declare org.slurmgate.service.y.auth=token",
	} {
		_, err := ParseLabels(map[string]string{label[0]: label[1]})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), label[0]) {
			t.Errorf("%s=%s: error %v; want one naming the label and saying %q", label[0], label[1], err, want)
		}
	}
	// Every bad label is reported, not just the first.
	_, err := ParseLabels(map[string]string{"org.slurmgate.min.cpus": "-1", "org.slurmgate.min.gpus": "x"})
	if err == nil || !strings.Contains(err.Error(), "min.cpus") || !strings.Contains(err.Error(), "min.gpus") {
		t.Errorf("two bad labels: %v", err)
	}
}

// An image catalogued before {token} was withdrawn still has it in its
// command: rendering it is refused, never a secret on a command line.
func TestServiceArgvRefusesToken(t *testing.T) {
	s := Service{Name: "jupyter", Protocol: "http", Command: "jupyter-notebook --NotebookApp.token={token}"}
	if argv, err := s.Argv(ServiceVars{}); err == nil || !strings.Contains(err.Error(), "org.slurmgate.service.jupyter.auth=token") {
		t.Errorf("Argv of a command with {token} = %q, %v; want a refusal naming the fix", argv, err)
	}
}

package slurmctl

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testNow is Friday 14 March 2025, 10:30:15 in a zone east of UTC, so that
// a parser reading times in UTC instead of the clock's zone fails the tests.
var testNow = time.Date(2025, time.March, 14, 10, 30, 15, 0, time.FixedZone("CET", 3600))

var testParser = BatchParser{Now: func() time.Time { return testNow }}

func at(y int, mo time.Month, d, h, m, s int) time.Time {
	return time.Date(y, mo, d, h, m, s, 0, testNow.Location())
}

func TestParseBatchScript(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   JobSpec // Script is filled in by the test
	}{{
		name: "every supported option",
		script: `#!/bin/bash
#SBATCH --account=acme.vision
#SBATCH -p gpu
#SBATCH -N 2-4 --ntasks=8 -c4
#SBATCH --mem=64G
#SBATCH --gres=gpu:a100:2
#SBATCH --gpus-per-node=a100:2 -G 4
#SBATCH --time=1-12:00:00
#SBATCH -J "train resnet"   # a comment after the directive
#SBATCH -o /home/alice/logs/%j.out -e none
#SBATCH --export=ALL,DATA=/scratch/alice,MODE=fast
#SBATCH -D /home/alice/run
#SBATCH --comment='session 42'
#SBATCH --qos=normal -C "a100&ib"
#SBATCH --exclusive -H
#SBATCH -d afterok:123:124,afterany:125
#SBATCH --begin=2025-03-15T08:00
srun python train.py
#SBATCH --array=1-10
`,
		want: JobSpec{
			Account: "acme.vision", Partition: "gpu", Nodes: 2, Tasks: 8, CPUsPerTask: 4,
			MemoryMB: 64 << 10, GRES: []GRES{{Name: "gpu", Type: "a100", Count: 2}},
			GPUsPerNode: &GRES{Name: "gpu", Type: "a100", Count: 2}, GPUs: &GRES{Name: "gpu", Count: 4},
			TimeLimit: 36 * time.Hour, Name: "train resnet",
			StdOut: "/home/alice/logs/%j.out", StdErr: "/dev/null",
			Environment: map[string]string{"DATA": "/scratch/alice", "MODE": "fast"},
			WorkDir:     "/home/alice/run", Comment: "session 42", QOS: "normal", Constraint: "a100&ib",
			Exclusive: true, Hold: true, Dependency: "afterok:123:124,afterany:125",
			Begin: at(2025, time.March, 15, 8, 0, 0),
		},
	}, {
		name: "blank lines and comments, indented or not, do not end the directives",
		script: "#!/bin/sh\n\n# set up\n   # indented comment\n\t\n#SBATCH -J after-comments\n" +
			"  #SBATCH -p ignored-because-indented\n#SBATCH -t 5\n",
		want: JobSpec{Name: "after-comments", TimeLimit: 5 * time.Minute},
	}, {
		name:   "an indented command ends the directives",
		script: "#!/bin/sh\n#SBATCH -J first\n  echo hi\n#SBATCH -J second\n",
		want:   JobSpec{Name: "first"},
	}, {
		name:   "no directives at all",
		script: "#!/bin/sh\necho hi\n",
		want:   JobSpec{},
	}, {
		name:   "last line without a newline",
		script: "#!/bin/sh\n#SBATCH -J x",
		want:   JobSpec{Name: "x"},
	}, {
		name:   "an empty directive line",
		script: "#!/bin/sh\n#SBATCH\n#SBATCH    \n#SBATCH # only a comment\n",
		want:   JobSpec{},
	}, {
		name:   "value forms of long and short options",
		script: "#!/bin/sh\n#SBATCH --time 30 --partition=a -pb -J=x -q\tnormal\n",
		want:   JobSpec{TimeLimit: 30 * time.Minute, Partition: "b", Name: "=x", QOS: "normal"},
	}, {
		name:   "grouped single-letter options",
		script: "#!/bin/sh\n#SBATCH -Hc2 -HJ job\n",
		want:   JobSpec{Hold: true, CPUsPerTask: 2, Name: "job"},
	}, {
		name:   "a value is taken even when it looks like an option",
		script: "#!/bin/sh\n#SBATCH -J -p --comment --hold\n",
		want:   JobSpec{Name: "-p", Comment: "--hold"},
	}, {
		name:   "unambiguous abbreviations, as getopt_long takes them",
		script: "#!/bin/sh\n#SBATCH --part=gpu --job=x --exclusiv --cpus-per-t=3\n",
		want:   JobSpec{Partition: "gpu", Name: "x", Exclusive: true, CPUsPerTask: 3},
	}, {
		name:   "an unquoted # ends the line even inside a word",
		script: "#!/bin/sh\n#SBATCH -J name#comment -p never\n#SBATCH -J \"my job\"#c -p never\n",
		want:   JobSpec{Name: "my job"},
	}, {
		name: "quotes and escapes as sbatch reads them",
		// Matches what sbatch 22.05 prints for this line with -vv.
		script: `#!/bin/sh
#SBATCH --comment=a\"b"c d"e -o 'x # y' --job-name=it\'s
`,
		want: JobSpec{Comment: `a"bc de`, StdOut: "x # y", Name: "it's"},
	}, {
		name:   "an escaped blank still ends a word, as in sbatch",
		script: "#!/bin/sh\n#SBATCH -J a\\ -p b\n",
		want:   JobSpec{Name: "a", Partition: "b"},
	}, {
		name:   "later directives override earlier ones",
		script: "#!/bin/sh\n#SBATCH -t 10\n#SBATCH --time=20 --gres=gpu:2\n#SBATCH --gres=none\n",
		want:   JobSpec{TimeLimit: 20 * time.Minute},
	}, {
		name:   "node counts: a range keeps its minimum, suffixes scale",
		script: "#!/bin/sh\n#SBATCH -N 3-5\n#SBATCH --ntasks=1\n",
		want:   JobSpec{Nodes: 3, Tasks: 1},
	}, {
		name:   "node count suffix",
		script: "#!/bin/sh\n#SBATCH --nodes=2k\n",
		want:   JobSpec{Nodes: 2048},
	}, {
		name:   "memory per CPU, sizes with B and K",
		script: "#!/bin/sh\n#SBATCH --mem-per-cpu=4GB\n",
		want:   JobSpec{MemoryPerCPUMB: 4096},
	}, {
		name:   "memory in KiB rounds up to whole MiB",
		script: "#!/bin/sh\n#SBATCH --mem=1500K\n",
		want:   JobSpec{MemoryMB: 2},
	}, {
		name:   "GRES list, untyped and typed",
		script: "#!/bin/sh\n#SBATCH --gres=gpu:a100:2,gpu:v100:1,mps:100,shard\n",
		want: JobSpec{GRES: []GRES{
			{Name: "gpu", Type: "a100", Count: 2}, {Name: "gpu", Type: "v100", Count: 1},
			{Name: "mps", Count: 100}, {Name: "shard", Count: 1},
		}},
	}, {
		name:   "GRES type without count",
		script: "#!/bin/sh\n#SBATCH --gres=gpu:a100\n",
		want:   JobSpec{GRES: []GRES{{Name: "gpu", Type: "a100", Count: 1}}},
	}, {
		name:   "partition list",
		script: "#!/bin/sh\n#SBATCH -p gpu,cpu\n",
		want:   JobSpec{Partition: "gpu,cpu"},
	}, {
		name:   "export NONE and ALL leave the environment to the caller",
		script: "#!/bin/sh\n#SBATCH --export=A=1\n#SBATCH --export=NONE\n",
		want:   JobSpec{},
	}, {
		name:   "export values may hold = and be empty",
		script: "#!/bin/sh\n#SBATCH --export=OPTS=a=b,EMPTY=,_X1=y\n",
		want:   JobSpec{Environment: map[string]string{"OPTS": "a=b", "EMPTY": "", "_X1": "y"}},
	}, {
		name:   "unlimited time is the partition's default",
		script: "#!/bin/sh\n#SBATCH -t UNLIMITED\n",
		want:   JobSpec{},
	}, {
		name:   "relative begin time",
		script: "#!/bin/sh\n#SBATCH -b now+1hour\n",
		want:   JobSpec{Begin: at(2025, time.March, 14, 11, 30, 15)},
	}, {
		name:   "dependency forms",
		script: "#!/bin/sh\n#SBATCH -d after:10+5:11?afternotok:12_3?aftercorr:13_*?singleton\n",
		want:   JobSpec{Dependency: "after:10+5:11?afternotok:12_3?aftercorr:13_*?singleton"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testParser.ParseScript(tt.script)
			if err != nil {
				t.Fatalf("ParseScript: %v", err)
			}
			tt.want.Script = tt.script
			if !specsEqual(got, tt.want) {
				t.Errorf("ParseScript:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseBatchScriptErrors(t *testing.T) {
	script := func(lines ...string) string {
		return "#!/bin/bash\n" + strings.Join(lines, "\n") + "\nsrun true\n"
	}
	tests := []struct {
		name     string
		script   string
		line     int
		want     string // the whole message
		contains []string
	}{
		{name: "array", script: script("#SBATCH -J a", "#SBATCH -p gpu", "#SBATCH --array=1-10"), line: 4,
			want: "line 4: #SBATCH --array=1-10: job arrays are not supported; submit one session per task"},
		{name: "array short", script: script("#SBATCH -a 1-3"), line: 2,
			want: "line 2: #SBATCH -a 1-3: job arrays are not supported; submit one session per task"},
		{name: "unknown option", script: script("#SBATCH --frobnicate=3"), line: 2,
			want: "line 2: #SBATCH --frobnicate=3: unknown sbatch option --frobnicate"},
		{name: "misspelt option", script: script("#SBATCH --partiton=gpu"), line: 2,
			contains: []string{"unknown sbatch option --partiton", "did you mean --partition?"}},
		{name: "sbatch option Slurmgate lacks", script: script("#SBATCH --mail-type=END"), line: 2,
			want: "line 2: #SBATCH --mail-type=END: sbatch option --mail-type is not supported by Slurmgate"},
		{name: "abbreviation of an unsupported option", script: script("#SBATCH --ntasks-per-n=2"), line: 2,
			contains: []string{"--ntasks-per-node is not supported"}},
		{name: "ambiguous abbreviation", script: script("#SBATCH --acc=x"), line: 2,
			contains: []string{"--acc is ambiguous", "--account", "--acctg-freq"}},
		{name: "abbreviation ambiguous with an unsupported option", script: script("#SBATCH --exclu"), line: 2,
			contains: []string{"--exclu is ambiguous", "--exclude", "--exclusive"}},
		{name: "unsupported short option", script: script("#SBATCH -w node1"), line: 2,
			contains: []string{"sbatch option -w is not supported"}},
		{name: "unknown short option", script: script("#SBATCH -H=1"), line: 2,
			contains: []string{"unknown sbatch option -="}},
		{name: "stray word", script: script("#SBATCH hello"), line: 2,
			contains: []string{`"hello" is not an option`}},
		{name: "heterogeneous job", script: script("#SBATCH -n 1", "#SBATCH hetjob", "#SBATCH -n 2"), line: 3,
			contains: []string{"heterogeneous jobs are not supported"}},
		{name: "heterogeneous separator", script: script("#SBATCH : -n 2"), line: 2,
			contains: []string{`unexpected ":"`}},
		{name: "unmatched quote", script: script(`#SBATCH -J "abc`), line: 2,
			want: `line 2: #SBATCH -J "abc: unmatched "`},
		{name: "value missing at end of line", script: script("#SBATCH -p gpu -J", "#SBATCH name"), line: 2,
			contains: []string{"-J needs a value on the same line"}},
		{name: "long option value missing", script: script("#SBATCH --time"), line: 2,
			contains: []string{"--time needs a value on the same line"}},
		{name: "flag with a value", script: script("#SBATCH --hold=yes"), line: 2,
			contains: []string{"--hold takes no value"}},
		{name: "exclusive with a value", script: script("#SBATCH --exclusive=user"), line: 2,
			contains: []string{"--exclusive=user is not supported"}},
		{name: "bad time", script: script("#SBATCH --time=abc"), line: 2,
			want: `line 2: #SBATCH --time=abc: invalid time limit "abc": want minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes, days-hours:minutes:seconds or UNLIMITED`},
		{name: "short option value with =", script: script("#SBATCH -t=5"), line: 2,
			contains: []string{`invalid time limit "=5"`}},
		{name: "node range upside down", script: script("#SBATCH -N 4-2"), line: 2,
			contains: []string{`invalid node count "4-2": the maximum 2 is less than the minimum 4`}},
		{name: "zero nodes", script: script("#SBATCH -N 0"), line: 2,
			contains: []string{`invalid node count "0": want a count N or a range MIN-MAX`}},
		{name: "zero tasks", script: script("#SBATCH -n 0"), line: 2,
			want: `line 2: #SBATCH -n 0: invalid task count "0": want a whole number of at least 1`},
		{name: "negative CPUs", script: script("#SBATCH -c -1"), line: 2,
			contains: []string{`invalid CPUs per task "-1"`}},
		{name: "count with junk", script: script("#SBATCH --ntasks=4x"), line: 2,
			contains: []string{`invalid task count "4x"`}},
		{name: "count too large", script: script("#SBATCH --ntasks=99999999999"), line: 2,
			contains: []string{`invalid task count "99999999999"`}},
		{name: "all of a node's memory", script: script("#SBATCH --mem=0"), line: 2,
			contains: []string{"all of each node's memory"}},
		{name: "bad memory size", script: script("#SBATCH --mem=4X"), line: 2,
			contains: []string{`memory size "4X": want a number with an optional K, M, G or T suffix`, "e.g. 4096 or 4G"}},
		{name: "mem and mem-per-cpu", script: script("#SBATCH --mem=1G", "#SBATCH --mem-per-cpu=1G"), line: 3,
			contains: []string{"--mem-per-cpu and --mem are mutually exclusive (line 2 sets --mem)"}},
		{name: "zero GRES", script: script("#SBATCH --gres=gpu:0"), line: 2,
			contains: []string{"count must be at least 1"}},
		{name: "GRES typed and untyped", script: script("#SBATCH --gres=gpu:a100:1,gpu:1"), line: 2,
			contains: []string{"gpu both with and without a type"}},
		{name: "GRES twice", script: script("#SBATCH --gres=gpu:1,gpu:2"), line: 2,
			contains: []string{"asks for gpu twice"}},
		{name: "GRES count with a unit", script: script("#SBATCH --gres=gpu:2k"), line: 2,
			contains: []string{`write the count "2k" in full`}},
		{name: "GRES garbage", script: script("#SBATCH --gres=gpu:a:b:c"), line: 2,
			contains: []string{"want name[:type][:count]"}},
		{name: "two GPU types", script: script("#SBATCH --gpus=a100:2,v100:1"), line: 2,
			contains: []string{"only one GPU type per job is supported", "want [type:]count"}},
		{name: "GPU type without count", script: script("#SBATCH -G a100"), line: 2,
			contains: []string{`invalid GPU request "a100"`}},
		{name: "zero GPUs", script: script("#SBATCH --gpus=0"), line: 2,
			contains: []string{`invalid GPU request "0": the count is zero`}},
		{name: "export NONE with variables", script: script("#SBATCH --export=NONE,A=1"), line: 2,
			contains: []string{"--export=NONE takes no variables"}},
		{name: "export a name without value", script: script("#SBATCH --export=ALL,EDITOR"), line: 2,
			contains: []string{"would copy EDITOR from the submitting shell", "write EDITOR=value"}},
		{name: "export a bad name", script: script("#SBATCH --export=1A=x"), line: 2,
			contains: []string{`invalid variable "1A=x"`}},
		{name: "dependency without IDs", script: script("#SBATCH -d afterok"), line: 2,
			contains: []string{"afterok needs at least one job ID"}},
		{name: "dependency separators mixed", script: script("#SBATCH -d afterok:1,afterany:2?afterok:3"), line: 2,
			contains: []string{"mixes , and ?"}},
		{name: "dependency type unknown", script: script("#SBATCH -d sometimes:1"), line: 2,
			contains: []string{`unknown type "sometimes"`, "afterok"}},
		{name: "dependency expand", script: script("#SBATCH -d expand:1"), line: 2,
			contains: []string{`unknown type "expand"`}},
		{name: "singleton with IDs", script: script("#SBATCH -d singleton:1"), line: 2,
			contains: []string{"singleton takes no job IDs"}},
		{name: "dependency job ID", script: script("#SBATCH -d afterok:abc"), line: 2,
			contains: []string{`"abc" is not a job ID`}},
		{name: "dependency delay", script: script("#SBATCH -d after:12+x"), line: 2,
			contains: []string{`delay "x" is not a whole number of minutes`}},
		{name: "begin", script: script("#SBATCH --begin=25:00"), line: 2,
			contains: []string{`invalid begin time "25:00"`, "want HH:MM[:SS]"}},
		{name: "begin on a day the month lacks", script: script("#SBATCH --begin=2025-02-30"), line: 2,
			contains: []string{"2025-02 has no day 30"}},
		{name: "relative working directory", script: script("#SBATCH -D run"), line: 2,
			contains: []string{`working directory "run" must be an absolute path`}},
		{name: "empty job name", script: script(`#SBATCH -J ""`), line: 2,
			contains: []string{"empty job name"}},
		{name: "blank in a partition name", script: script(`#SBATCH -p "gpu cpu"`), line: 2,
			contains: []string{`partition name "gpu cpu" contains white space`}},
		{name: "empty partition in a list", script: script(`#SBATCH -p gpu,`), line: 2,
			contains: []string{"empty partition name"}},
		{name: "empty output", script: script(`#SBATCH -o ''`), line: 2,
			contains: []string{"use none to discard"}},
		{name: "no interpreter line", script: "echo hi\n", line: 1,
			contains: []string{`must start with "#!"`}},
		{name: "DOS line breaks", script: "#!/bin/sh\n#SBATCH -J x\r\necho\r\n", line: 2,
			contains: []string{"DOS line breaks"}},
		{name: "NUL byte", script: "#!/bin/sh\n\n#SBATCH -J a\x00b\n", line: 3,
			contains: []string{"NUL byte"}},
		{name: "empty script", script: "", want: "empty batch script"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := testParser.ParseScript(tt.script)
			if err == nil {
				t.Fatal("ParseScript succeeded")
			}
			var de *DirectiveError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DirectiveError", err, err)
			}
			if de.Line != tt.line {
				t.Errorf("error on line %d, want %d: %v", de.Line, tt.line, err)
			}
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("errors.Is(%v, ErrInvalidRequest) = false", err)
			}
			if tt.want != "" && err.Error() != tt.want {
				t.Errorf("error\n got %q\nwant %q", err, tt.want)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestParseBatchScriptReportsEveryBadLine(t *testing.T) {
	_, err := testParser.ParseScript("#!/bin/sh\n#SBATCH --array=1-2\n#SBATCH -J ok\n#SBATCH -t x -N 0\ntrue\n")
	if err == nil {
		t.Fatal("ParseScript succeeded")
	}
	want := []string{"line 2: #SBATCH --array=1-2:", "line 4: #SBATCH -t x:", "line 4: #SBATCH -N 0:"}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d is %q, want it to start with %q", i, lines[i], w)
		}
	}
	var de *DirectiveError
	if !errors.As(err, &de) || de.Line != 2 {
		t.Errorf("errors.As found %+v, want the first error (line 2)", de)
	}
}

func TestParseBatchScriptWithCommandLine(t *testing.T) {
	spec, err := testParser.ParseScript("#!/bin/sh\n#SBATCH -t 10 -p gpu --mem=8G -J name\n#SBATCH --export=A=1,B=2\ntrue\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct{ name, value string }{
		{"time", "2:00:00"}, {"-p", "cpu"}, {"--mem-per-cpu", "2G"}, {"export", "C=3"},
		{"H", ""}, {"--exclusive", ""}, {"b", "tomorrow"}, {"J", "override"},
	} {
		if err := testParser.ApplyOption(&spec, o.name, o.value); err != nil {
			t.Fatalf("ApplyOption(%q, %q): %v", o.name, o.value, err)
		}
	}
	want := JobSpec{
		Script: spec.Script, TimeLimit: 2 * time.Hour, Partition: "cpu", MemoryPerCPUMB: 2048,
		Environment: map[string]string{"C": "3"}, Hold: true, Exclusive: true,
		Begin: at(2025, time.March, 15, 0, 0, 0), Name: "override",
	}
	if !specsEqual(spec, want) {
		t.Errorf("after command-line options:\n got %+v\nwant %+v", spec, want)
	}
	if err := testParser.ApplyOption(&spec, "mem", "1G"); err != nil || spec.MemoryMB != 1024 || spec.MemoryPerCPUMB != 0 {
		t.Errorf("--mem after --mem-per-cpu: %v, MemoryMB %d, MemoryPerCPUMB %d; want 1024 and 0", err, spec.MemoryMB, spec.MemoryPerCPUMB)
	}

	for _, tt := range []struct{ name, value, want string }{
		{"--array", "1-2", "--array=1-2: job arrays are not supported; submit one session per task"},
		{"a", "1-2", "-a 1-2: job arrays are not supported; submit one session per task"},
		{"hold", "yes", "--hold=yes: --hold takes no value"},
		{"t", "soon", `-t soon: invalid time limit "soon"`},
		{"nosuch", "1", "--nosuch=1: unknown sbatch option --nosuch"},
		{"mail-user", "a@b", "--mail-user=a@b: sbatch option --mail-user is not supported by Slurmgate"},
		{"", "x", "--=x: missing option name"},
	} {
		before := spec
		err := testParser.ApplyOption(&spec, tt.name, tt.value)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ApplyOption(%q, %q) = %v, want an error starting %q", tt.name, tt.value, err, tt.want)
		}
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("ApplyOption(%q, %q): errors.Is(ErrInvalidRequest) = false", tt.name, tt.value)
		}
		if !specsEqual(spec, before) {
			t.Errorf("ApplyOption(%q, %q) failed but changed the spec", tt.name, tt.value)
		}
	}
}

func TestParseDirectiveWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{" -a  -b\t-c\v-d\f-e\r", []string{"-a", "-b", "-c", "-d", "-e"}},
		{`"a b"'c d'e`, []string{"a bc de"}},
		{`"it's" 'say "hi"'`, []string{"it's", `say "hi"`}},
		{`a\"b \\c \#d`, []string{`a"b`, `\c`, "#d"}},
		{`"a\"b"`, []string{`a"b`}},
		{`a#b c`, []string{"a"}},
		{`a #b c`, []string{"a"}},
		{`"#" '#'`, []string{"#", "#"}},
		{`"" x`, []string{"", "x"}},
		{`trailing\`, []string{"trailing"}},
	}
	for _, tt := range tests {
		words, err := splitDirective(tt.in)
		if err != nil {
			t.Errorf("splitDirective(%q): %v", tt.in, err)
			continue
		}
		var got []string
		for _, w := range words {
			got = append(got, w.text)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("splitDirective(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// specsEqual compares specs with time.Time compared as instants.
func specsEqual(a, b JobSpec) bool {
	if !a.Begin.Equal(b.Begin) {
		return false
	}
	a.Begin, b.Begin = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// specOptions renders spec back into sbatch options, the inverse of the
// parser for every spec it produces.
func specOptions(s JobSpec) [][2]string {
	var o [][2]string
	add := func(name, value string) { o = append(o, [2]string{name, value}) }
	str := func(name, v string) {
		if v != "" {
			add(name, v)
		}
	}
	num := func(name string, n int64) {
		if n != 0 {
			add(name, strconv.FormatInt(n, 10))
		}
	}
	str("account", s.Account)
	str("partition", s.Partition)
	str("qos", s.QOS)
	str("job-name", s.Name)
	str("comment", s.Comment)
	str("output", s.StdOut)
	str("error", s.StdErr)
	str("chdir", s.WorkDir)
	str("constraint", s.Constraint)
	str("dependency", s.Dependency)
	num("nodes", int64(s.Nodes))
	num("ntasks", int64(s.Tasks))
	num("cpus-per-task", int64(s.CPUsPerTask))
	num("mem", s.MemoryMB)
	num("mem-per-cpu", s.MemoryPerCPUMB)
	if len(s.GRES) > 0 {
		add("gres", formatGRESList(s.GRES))
	}
	if s.GPUs != nil {
		add("gpus", formatGPURequest(*s.GPUs))
	}
	if s.GPUsPerNode != nil {
		add("gpus-per-node", formatGPURequest(*s.GPUsPerNode))
	}
	if s.TimeLimit != 0 {
		add("time", FormatTimeLimit(s.TimeLimit))
	}
	if !s.Begin.IsZero() {
		add("begin", s.Begin.Format("2006-01-02T15:04:05"))
	}
	if len(s.Environment) > 0 {
		var pairs []string
		for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
			pairs = append(pairs, k+"="+s.Environment[k])
		}
		add("export", strings.Join(pairs, ","))
	}
	if s.Exclusive {
		add("exclusive", "")
	}
	if s.Hold {
		add("hold", "")
	}
	return o
}

// quoteWord quotes v so that splitDirective reads it back unchanged.
func quoteWord(v string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('\'')
	return b.String()
}

func FuzzParseBatchScript(f *testing.F) {
	for _, seed := range []string{
		"#!/bin/bash\n#SBATCH -A acme -p gpu -N 2-4 -n 8 -c 4 --mem=64G\n#SBATCH --gres=gpu:a100:2 -t 1-12\nsrun x\n",
		"#!/bin/sh\n#SBATCH -J \"a b\"#c --comment='x y' -o none -e /tmp/%j.err\n",
		"#!/bin/sh\n#SBATCH --export=ALL,A=1,B=x=y -D /w --qos=q -C 'a|b' --exclusive -H\n",
		"#!/bin/sh\n#SBATCH -d afterok:1:2?afterany:3 --begin=now+1hour\n#SBATCH --begin=03/20-08:00\n",
		"#!/bin/sh\n#SBATCH -G a100:2 --gpus-per-node=1 --mem-per-cpu=1500K\n",
		"#!/bin/sh\n#SBATCH --array=1-10\n",
		"#!/bin/sh\n#SBATCH -Hc2 --part=p --tim=5 -t=5\n",
		"#!/bin/sh\n#SBATCH a\\ b \\\"c\n#SBATCH \"unterminated\n",
		"#!/bin/sh\n\n  # c\n#SBATCH -t UNLIMITED\n  true\n#SBATCH --array=1\n",
		"#!\r\n#SBATCH -J x\r\n",
		"#!/bin/sh\n#SBATCH -J a\rb\ntrue\r",
		"#!/bin/sh\n#SBATCH --begin=2025-02-29 --begin=tomorrow teatime\n",
		"#!/bin/sh\n#SBATCH --gres=gpu:1,gpu:a100:1 --gres=none -N 2k\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, script string) {
		spec, err := testParser.ParseScript(script)
		if err != nil {
			var de *DirectiveError
			if !errors.As(err, &de) || !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v (%T) is not a *DirectiveError", err, err)
			}
			if lines := strings.Count(script, "\n") + 1; de.Line < 0 || de.Line > lines {
				t.Fatalf("error on line %d of a %d-line script: %v", de.Line, lines, err)
			}
			return
		}
		if spec.Script != script {
			t.Fatal("Script is not the script")
		}

		// What follows the first command never counts. (A script ending in
		// a lone carriage return, which sbatch accepts, would turn into a
		// DOS line break, which it refuses.)
		if !strings.HasSuffix(script, "\r") {
			more := script
			if !strings.HasSuffix(more, "\n") {
				more += "\n"
			}
			more += "true\n#SBATCH --array=1-3 -J other\n"
			again, err := testParser.ParseScript(more)
			if err != nil {
				t.Fatalf("appending a command and a directive broke the script: %v", err)
			}
			again.Script = script
			if !specsEqual(again, spec) {
				t.Fatalf("a directive after a command changed the result:\n%+v\n%+v", again, spec)
			}
		}

		// The spec written back as directives, and as command-line options,
		// reads back the same.
		opts := specOptions(spec)
		var b strings.Builder
		b.WriteString("#!/bin/sh\n")
		want := JobSpec{}
		for _, o := range opts {
			b.WriteString("#SBATCH --" + o[0])
			if o[1] != "" {
				b.WriteString("=" + quoteWord(o[1]))
			}
			b.WriteString("\n")
			if err := testParser.ApplyOption(&want, o[0], o[1]); err != nil {
				t.Fatalf("ApplyOption(%q, %q) of a parsed spec: %v", o[0], o[1], err)
			}
		}
		b.WriteString("true\n")
		back, err := testParser.ParseScript(b.String())
		if err != nil {
			t.Fatalf("the spec written back as directives does not parse: %v\n%s", err, b.String())
		}
		back.Script, want.Script = script, script
		if !specsEqual(back, spec) {
			t.Fatalf("written back as directives:\n%s\nreads as %+v\nwant     %+v", b.String(), back, spec)
		}
		if !specsEqual(want, spec) {
			t.Fatalf("applied as options: %+v\nwant %+v", want, spec)
		}
	})
}

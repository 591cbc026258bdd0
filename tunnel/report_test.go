package tunnel

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
)

func TestReportsRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	big := strings.Repeat("x", MaxReportSize-1000) // close to the limit, still within it
	sent := []Report{
		{Stopping: "first"},
		{Services: []ServiceState{{Name: "jupyter", Error: big}}},
		{Activity: &Activity{Streams: 3}},
	}
	for _, r := range sent {
		enc.Encode(r)
	}
	buf.WriteString("\n  \n")                      // blank lines are nothing
	buf.WriteString(`{"stopping":"unterminated"}`) // a last report without its newline
	var got []Report
	for rep, err := range Reports(&buf) {
		if err != nil {
			t.Fatalf("after %d reports: %v", len(got), err)
		}
		got = append(got, rep)
	}
	if len(got) != 4 || got[0].Stopping != "first" || len(got[1].Services) != 1 || got[1].Services[0].Error != big ||
		got[2].Activity == nil || got[2].Activity.Streams != 3 || got[3].Stopping != "unterminated" {
		t.Errorf("read %d reports back; want the 4 sent, in order", len(got))
	}
}

// countingReader counts what has been read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// A report stream is written by a process the researcher controls: one
// endless report must end the stream once it passes the limit, having read
// little more than the limit, instead of being buffered whole.
func TestReportsBoundsOneReport(t *testing.T) {
	const sent = 16 << 20
	huge := io.MultiReader(strings.NewReader(`{"stopping":"`), strings.NewReader(strings.Repeat("a", sent)))
	src := &countingReader{r: io.MultiReader(strings.NewReader(`{"stopping":"ok"}`+"\n"), huge)}
	var reps []Report
	var last error
	for rep, err := range Reports(src) {
		if err != nil {
			last = err
			break
		}
		reps = append(reps, rep)
	}
	if len(reps) != 1 || reps[0].Stopping != "ok" {
		t.Errorf("reports before the long one: %+v; want the one sent", reps)
	}
	if last == nil || !strings.Contains(last.Error(), strconv.Itoa(MaxReportSize)) {
		t.Errorf("a %d-byte report gave %v; want an error naming the limit of %d bytes", sent, last, MaxReportSize)
	}
	if src.n > MaxReportSize+256<<10 {
		t.Errorf("read %d bytes of a %d-byte report; want little more than the limit (%d)", src.n, sent, MaxReportSize)
	}
}

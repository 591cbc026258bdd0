package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/vfolder"
	"github.com/slurmgate/slurmgate/vfolder/vfoldertest"
)

// newVFolderAPI is newTestAPI with a storage host "local".
func newVFolderAPI(t testing.TB) (*testAPI, *vfolder.Host) {
	t.Helper()
	host, err := vfolder.OpenHost(vfoldertest.Host(t, "local"))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	db := bridgetest.Pool(t)
	b := bridge.New(db, nil, bridge.Config{SecretKey: key, VFolderHosts: []*vfolder.Host{host}}, log)
	tt, _ := t.(*testing.T)
	a := &testAPI{t: tt, db: db, b: b, srv: New(b, Options{Logger: log}), logs: logs}
	a.ts = httptest.NewServer(a.srv)
	t.Cleanup(a.ts.Close)
	ctx := t.Context()
	if _, err := b.CreateDomain(ctx, bridge.System, "lab", ""); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, uid int) testUser {
		u, err := b.CreateUser(ctx, bridge.System, bridge.NewUser{Username: name, UID: uid, Domain: "lab"})
		if err != nil {
			t.Fatal(err)
		}
		ak, sk, err := b.CreateKeypair(ctx, u.Actor(), u.ID, "test")
		if err != nil {
			t.Fatal(err)
		}
		return testUser{u.Actor(), ak, sk}
	}
	a.alice, a.bob = mk("alice", 2001), mk("bob", 2002)
	return a, host
}

func vclient(t testing.TB, a *testAPI, u testUser) *client.Client {
	c, err := client.New(a.ts.URL, client.WithKeypair(u.accessKey, u.secret))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func diskPath(h *vfolder.Host, id string) string { return h.Path(strings.ReplaceAll(id, "-", "")) }

func TestVFolderAPIUploadDownloadOwnership(t *testing.T) {
	a, host := newVFolderAPI(t)
	ctx := t.Context()
	alice, bob := vclient(t, a, a.alice), vclient(t, a, a.bob)
	v, err := alice.CreateVFolder(ctx, client.NewVFolder{Name: "data", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Mkdir(ctx, v.ID, "in/deep", true); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	e, err := alice.UploadFile(ctx, v.ID, "in/deep/blob.bin", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if e.Size != int64(len(data)) || e.UID != 2001 {
		t.Errorf("uploaded %+v; want %d bytes owned by alice (2001)", e, len(data))
	}
	st, _ := os.Stat(filepath.Join(diskPath(host, v.ID), "in/deep/blob.bin"))
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 2001 {
		t.Errorf("on disk the file is uid %d; want 2001", uid)
	}
	rc, err := alice.Download(ctx, v.ID, "in/deep/blob.bin", 1000)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data[1000:]) {
		t.Errorf("ranged download: %d bytes, differs from the upload's tail", len(got))
	}
	rc, err = alice.Download(ctx, v.ID, "in", 0)
	if err != nil {
		t.Fatal(err)
	}
	zipped, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.HasPrefix(zipped, []byte("PK")) || len(zipped) < len(data) {
		t.Errorf("directory download: %d bytes, not a zip of the file", len(zipped))
	}
	// The whole folder downloads as a zip named after the folder.
	if status, h, _ := a.send(a.signed(a.alice, "GET", "/api/v1/vfolders/"+v.ID+"/download?path=", nil, time.Now())); status != 200 ||
		!strings.Contains(h.Get("Content-Disposition"), v.Name+".zip") {
		t.Errorf("folder download: %d, Content-Disposition %q; want %s.zip", status, h.Get("Content-Disposition"), v.Name)
	}
	page, err := alice.ListFiles(ctx, v.ID, "in/deep", "", 10)
	if err != nil || len(page.Items) != 1 || page.Items[0].Name != "blob.bin" {
		t.Errorf("list: %+v %v", page, err)
	}
	// bob: the folder does not exist for him.
	_, err = bob.VFolder(ctx, v.ID)
	wantClientProblem(t, err, 404)
	_, err = bob.ListFiles(ctx, v.ID, ".", "", 10)
	wantClientProblem(t, err, 404)
	_, err = bob.Download(ctx, v.ID, "in/deep/blob.bin", 0)
	wantClientProblem(t, err, 404)

	// A ro share lets bob read and refuses his writes.
	if _, err := alice.ShareVFolder(ctx, v.ID, "bob", "ro"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.AnswerVFolderInvitation(ctx, v.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.StatFile(ctx, v.ID, "in/deep/blob.bin"); err != nil {
		t.Errorf("bob reading a ro share: %v", err)
	}
	_, err = bob.UploadFile(ctx, v.ID, "in/bob.txt", strings.NewReader("x"), 1)
	wantClientProblem(t, err, 403)
	_, err = bob.Mkdir(ctx, v.ID, "bobdir", false)
	wantClientProblem(t, err, 403)
	wantClientProblem(t, bob.DeleteFile(ctx, v.ID, "in", true), 403)
	shares, err := alice.VFolderShares(ctx, v.ID)
	if err != nil || len(shares) != 1 || shares[0].Username != "bob" || shares[0].Permission != "ro" {
		t.Errorf("alice sees shares %+v %v", shares, err)
	}

	// Recursive delete needs the confirmation.
	st2, _, body := a.send(a.signed(a.alice, "DELETE", "/api/v1/vfolders/"+v.ID+"/files?path=in&recursive=true", nil, time.Now()))
	if st2 != 422 || !strings.Contains(string(body), "confirm") {
		t.Errorf("recursive delete without confirm: %d %s", st2, body)
	}
	if err := alice.DeleteFile(ctx, v.ID, "in", true); err != nil {
		t.Fatal(err)
	}
	if got, _ := alice.VFolder(ctx, v.ID); got.UsageBytes != 0 {
		t.Errorf("usage after deleting everything: %d", got.UsageBytes)
	}
}

// TestVFolderAPITraversal sends every escape we know through HTTP: none may
// succeed, and each refusal is a 4xx problem naming the path.
func TestVFolderAPITraversal(t *testing.T) {
	a, host := newVFolderAPI(t)
	ctx := t.Context()
	alice := vclient(t, a, a.alice)
	v, err := alice.CreateVFolder(ctx, client.NewVFolder{Name: "data", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	dir := diskPath(host, v.ID)
	secret := filepath.Join(filepath.Dir(dir), "secret")
	os.WriteFile(secret, []byte("secret"), 0o600)
	os.Symlink("../secret", filepath.Join(dir, "link"))
	os.Symlink("/etc", filepath.Join(dir, "etc"))
	os.Symlink(filepath.Dir(dir), filepath.Join(dir, "up"))

	raw := []string{
		"..%2Fsecret", "%2E%2E%2Fsecret", "%2Fetc%2Fpasswd", "a%00b", "link", "etc%2Fpasswd", "up%2Fsecret",
		"x%2F..%2F..%2Fsecret", strings.Repeat("a", 300), strings.Repeat("a%2F", 2100), "%0Aname",
	}
	escapes := 0
	for _, q := range raw {
		for _, target := range []string{"/download?path=", "/stat?path=", "/files?path="} {
			status, h, body := a.send(a.signed(a.alice, "GET", "/api/v1/vfolders/"+v.ID+target+q, nil, time.Now()))
			if status == 200 && target == "/stat?path=" && strings.Contains(string(body), `"type":"symlink"`) {
				continue // describing a link in the folder is not following it
			}
			if status < 400 || status >= 500 {
				escapes++
				t.Errorf("GET %s%s: %d %.200s", target, q, status, body)
				continue
			}
			if ct := h.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("GET %s%s: %d with %s", target, q, status, ct)
			}
		}
		// Writes: mkdir and an upload's destination.
		p, _ := url.QueryUnescape(q)
		if _, err := alice.Mkdir(ctx, v.ID, p+"/x", true); err == nil {
			if _, serr := os.Lstat(filepath.Join(dir, p, "x")); serr != nil {
				escapes++
				t.Errorf("mkdir %q/x went outside the folder", p)
			}
		}
		if _, err := alice.UploadFile(ctx, v.ID, p, strings.NewReader("pwned"), 5); err == nil {
			if b, _ := os.ReadFile(filepath.Join(dir, p)); string(b) != "pwned" {
				escapes++
				t.Errorf("upload to %q landed outside the folder", p)
			}
		}
	}
	if b, _ := os.ReadFile(secret); string(b) != "secret" {
		escapes++
		t.Error("the file beside the folder changed")
	}
	if _, err := os.Stat("/etc/passwd/x"); err == nil {
		escapes++
	}
	// A refusal names the component at fault.
	p, _ := a.wantProblem(a.signed(a.alice, "GET", "/api/v1/vfolders/"+v.ID+"/stat?path=a%2F..%2Fb", nil, time.Now()), 422)
	if p.Field != "path" || !strings.Contains(p.Detail, `component ".."`) {
		t.Errorf("problem for a/../b: field %q detail %q", p.Field, p.Detail)
	}
	t.Logf("%d escape attempts, %d escapes", len(raw)*5, escapes)
}

func TestVFolderAPIQuotaRefusesUploadBeforeBytes(t *testing.T) {
	a, host := newVFolderAPI(t)
	ctx := t.Context()
	alice := vclient(t, a, a.alice)
	quota := int64(1 << 20)
	v, err := alice.CreateVFolder(ctx, client.NewVFolder{Name: "small", Host: "local", QuotaBytes: &quota})
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.CreateUpload(ctx, v.ID, "big", 2<<20)
	p := wantClientProblem(t, err, 403)
	if p.Quota == nil || p.Quota.Max != quota || p.Quota.Requested != 2<<20 {
		t.Errorf("quota problem %+v", p)
	}
	if ents, _ := os.ReadDir(diskPath(host, v.ID)); len(ents) != 0 {
		t.Errorf("the refused upload left %d entries", len(ents))
	}
}

// failAfter reads n bytes of r, then fails like a dropped connection.
type failAfter struct {
	r io.Reader
	n int64
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("link down")
	}
	p = p[:min(int64(len(p)), f.n)]
	k, err := f.r.Read(p)
	f.n -= int64(k)
	return k, err
}

func TestVFolderAPIUploadResumesAfterCutAt50Percent(t *testing.T) {
	a, host := newVFolderAPI(t)
	ctx := t.Context()
	alice := vclient(t, a, a.alice)
	v, err := alice.CreateVFolder(ctx, client.NewVFolder{Name: "r", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 8<<20)
	rand.Read(data)
	up, err := alice.CreateUpload(ctx, v.ID, "model.bin", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AppendUpload(ctx, up, 0, &failAfter{bytes.NewReader(data), int64(len(data) / 2)}, int64(len(data))); err == nil {
		t.Fatal("the cut request succeeded")
	}
	if _, err := alice.StatFile(ctx, v.ID, "model.bin"); err == nil {
		t.Error("half an upload is visible under its final name")
	}
	var off int64
	// The server notices the broken connection a moment after the client.
	for range 50 {
		if off, err = alice.UploadOffset(ctx, up); err == nil && off > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if off <= 0 || off > int64(len(data)/2) {
		t.Fatalf("offset after the cut at 50%%: %d (%v)", off, err)
	}
	end, err := alice.AppendUpload(ctx, up, off, bytes.NewReader(data[off:]), int64(len(data))-off)
	if err != nil || end != int64(len(data)) {
		t.Fatalf("resume from %d: %d %v", off, end, err)
	}
	got, err := os.ReadFile(filepath.Join(diskPath(host, v.ID), "model.bin"))
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Errorf("the resumed file's SHA-256 differs (%v)", err)
	}
	t.Logf("cut at %d of %d bytes, resumed from %d; SHA-256 matches", len(data)/2, len(data), off)
}

// benchFile writes size random-ish bytes to a file under the host root.
func benchFile(b *testing.B, dir string, size int64) string {
	p := filepath.Join(dir, "src.bin")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 8<<20)
	rand.Read(buf)
	for off := int64(0); off < size; off += int64(len(buf)) {
		f.Write(buf[:min(int64(len(buf)), size-off)])
	}
	f.Close()
	return p
}

// BenchmarkVFolderTransfer1GiB uploads and downloads 1 GiB through the API
// and compares each with cp of the same file on the same disk (goal: at
// least 0.7× cp's speed).
func BenchmarkVFolderTransfer1GiB(b *testing.B) {
	const size = 1 << 30
	a, host := newVFolderAPI(b)
	ctx := b.Context()
	alice := vclient(b, a, a.alice)
	v, err := alice.CreateVFolder(ctx, client.NewVFolder{Name: "bench", Host: "local"})
	if err != nil {
		b.Fatal(err)
	}
	src := benchFile(b, host.Config().Root, size)
	b.SetBytes(size)
	b.ResetTimer()
	var up, down, cp time.Duration
	for i := range b.N {
		t0 := time.Now()
		dst := filepath.Join(host.Config().Root, fmt.Sprintf("cp-%d.bin", i))
		if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		exec.Command("sync", dst).Run()
		cp += time.Since(t0)
		os.Remove(dst)

		f, _ := os.Open(src)
		t0 = time.Now()
		if _, err := alice.UploadFile(ctx, v.ID, fmt.Sprintf("up-%d.bin", i), f, size); err != nil {
			b.Fatal(err)
		}
		up += time.Since(t0)
		f.Close()

		t0 = time.Now()
		rc, err := alice.Download(ctx, v.ID, fmt.Sprintf("up-%d.bin", i), 0)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := os.Create(filepath.Join(host.Config().Root, "down.bin"))
		n, err := io.Copy(out, rc)
		out.Sync()
		out.Close()
		rc.Close()
		if err != nil || n != size {
			b.Fatalf("download: %d bytes, %v", n, err)
		}
		down += time.Since(t0)
		alice.DeleteFile(ctx, v.ID, fmt.Sprintf("up-%d.bin", i), false)
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / (1 << 20) }
	b.ReportMetric(cp.Seconds()/up.Seconds(), "upload/cp")
	b.ReportMetric(cp.Seconds()/down.Seconds(), "download/cp")
	b.Logf("1 GiB: cp %.0f MiB/s, upload %.0f MiB/s (%.2f× cp), download %.0f MiB/s (%.2f× cp); goal ≥ 0.7×",
		mbps(cp), mbps(up), cp.Seconds()/up.Seconds(), mbps(down), cp.Seconds()/down.Seconds())
}

// Downloading a FIFO a job planted answers 409 at once; opening it for
// reading would wait for a writer, pinning a gateway thread per request.
func TestVFolderAPIDownloadFIFORefused(t *testing.T) {
	a, host := newVFolderAPI(t)
	v, err := vclient(t, a, a.alice).CreateVFolder(t.Context(), client.NewVFolder{Name: "data", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(diskPath(host, v.ID), "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		status, _, _ := a.send(a.signed(a.alice, "GET", "/api/v1/vfolders/"+v.ID+"/download?path=pipe", nil, time.Now()))
		done <- status
	}()
	select {
	case status := <-done:
		if status != http.StatusConflict {
			t.Errorf("downloading a FIFO: %d; want 409", status)
		}
	case <-time.After(5 * time.Second):
		w, _ := os.OpenFile(fifo, os.O_WRONLY, 0) // let the handler end
		w.Close()
		t.Error("downloading a FIFO still waits after 5 s")
	}
}

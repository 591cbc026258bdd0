// Command seed fills the development gateway through its REST API, as any
// client would, and can run again: what exists is kept, what is missing is
// made, so a second `make dev` seeds nothing twice.
//
// It makes domain "lab", project "lab/vision" with alice, bob and carol
// (their POSIX uids; the test LDAP maps the same people), an idle-timeout
// policy on the project, scaling groups cpu and gpu (runtime none) and
// containers (charliecloud on the cpu partition), a preset, the images host,
// busybox and jupyter (the gateway reads the SIFs' labels), a keypair per
// user and a folder "work" for alice. Keypairs are kept in the -users file
// (0600): one still valid on the gateway is reused, a lost one replaced.
//
// Usage: go run ./testdata/cluster/seed -gateway URL -admin FILE -users FILE -images DIR
//
// -admin is the output of `slurmgate admin bootstrap` (lines "access key …"
// and "secret key …"); testdata/cluster/gateway runs this.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slurmgate/slurmgate/api/client"
)

// people are the test cluster's users (testdata/cluster/lib.sh TEST_UIDS).
var people = []struct {
	name string
	uid  int
}{{"alice", 2001}, {"bob", 2002}, {"carol", 2003}}

// idleTimeout ends a development session nobody has used for this long.
const idleTimeout = 30 * 60

func main() {
	gateway := flag.String("gateway", "http://127.0.0.1:18080", "the gateway's `URL`")
	admin := flag.String("admin", "", "superadmin credentials `FILE` from `slurmgate admin bootstrap`")
	users := flag.String("users", "", "users' keypairs `FILE`, read if present and rewritten (0600)")
	images := flag.String("images", "/var/cache/slurmgate-test/images", "`DIR` holding busybox.sif and jupyter.sif (testdata/images/build)")
	flag.Parse()
	if *admin == "" || *users == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: seed -gateway URL -admin FILE -users FILE [-images DIR]")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := seed(ctx, *gateway, *admin, *users, *images); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

// seeder remembers what it made and what it found, for one summary line.
type seeder struct {
	c           *client.Client
	made, found []string
}

// ensure runs create and counts a 409 Conflict (the thing exists) as found.
func (s *seeder) ensure(what string, create func() error) error {
	err := create()
	var p *client.Problem
	switch {
	case err == nil:
		s.made = append(s.made, what)
	case errors.As(err, &p) && p.Status == http.StatusConflict:
		s.found = append(s.found, what)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func seed(ctx context.Context, url, adminFile, usersFile, images string) error {
	ak, sk, err := readAdmin(adminFile)
	if err != nil {
		return err
	}
	c, err := client.New(url, client.WithKeypair(ak, sk), client.WithUserAgent("slurmgate-seed"))
	if err != nil {
		return err
	}
	s := &seeder{c: c}

	if err := s.ensure("domain lab", func() error {
		_, err := c.CreateDomain(ctx, "lab", "development domain")
		return err
	}); err != nil {
		var p *client.Problem
		if errors.As(err, &p) && p.Status == http.StatusUnauthorized {
			return fmt.Errorf("the gateway does not know the keypair in %s (was its database reset?): remove it, %s and sgadmin.password beside them, and run make dev again: %w", adminFile, usersFile, err)
		}
		return err
	}
	if err := s.ensure("project lab/vision", func() error {
		_, err := c.CreateProject(ctx, "lab", "vision", "development project")
		return err
	}); err != nil {
		return err
	}
	proj, err := project(ctx, c, "lab", "vision")
	if err != nil {
		return err
	}
	for _, sg := range []client.ScalingGroup{
		{Name: "cpu", Description: "CPU nodes c1, c2, no container", Partitions: []string{"cpu"}, Runtime: "none"},
		{Name: "gpu", Description: "GPU node g1 (4 × a100), no container", Partitions: []string{"gpu"}, GPUTypes: []string{"a100"}, Runtime: "none"},
		{Name: "containers", Description: "CPU nodes c1, c2, images run with Charliecloud", Partitions: []string{"cpu"}, Runtime: "charliecloud"},
	} {
		if err := s.ensure("scaling group "+sg.Name, func() error {
			_, err := c.CreateScalingGroup(ctx, sg)
			return err
		}); err != nil {
			return err
		}
	}
	hour := int64(3600)
	if err := s.ensure("preset small", func() error {
		_, err := c.CreatePreset(ctx, client.Preset{Name: "small", Description: "1 CPU, 1 GiB, 1 hour", CPUs: 1, MemoryMB: 1024, TimeLimitS: &hour})
		return err
	}); err != nil {
		return err
	}
	// Runtime stays empty for the SIFs, so the scaling group chooses it;
	// their labels (services, minimum resources) come from the files.
	for _, img := range []client.Image{
		{Name: "host", Tag: "latest", Location: "/", Runtime: "none"},
		{Name: "busybox", Tag: "latest", Location: filepath.Join(images, "busybox.sif")},
		{Name: "jupyter", Tag: "latest", Location: filepath.Join(images, "jupyter.sif")},
	} {
		if err := s.ensure("image "+img.Name, func() error {
			_, err := c.CreateImage(ctx, img)
			return err
		}); err != nil {
			return err
		}
	}

	// Users: created once, members once (a rerun must not lower a role an
	// LDAP login raised), a keypair kept while the gateway still knows it.
	known, err := c.Users(ctx)
	if err != nil {
		return err
	}
	members, err := c.Members(ctx, proj.ID)
	if err != nil {
		return err
	}
	kept := readUsers(usersFile)
	var out strings.Builder
	keys := map[string][2]string{}
	for _, p := range people {
		u := findUser(known, p.name)
		if u == nil {
			if u, err = c.CreateUser(ctx, client.NewUser{Username: p.name, UID: p.uid, Domain: "lab", Email: p.name + "@lab.example"}); err != nil {
				return fmt.Errorf("user %s: %w", p.name, err)
			}
			s.made = append(s.made, "user "+p.name)
		} else {
			s.found = append(s.found, "user "+p.name)
		}
		if !isMember(members, u.ID) {
			if _, err := c.SetMember(ctx, proj.ID, u.ID, "member"); err != nil {
				return fmt.Errorf("%s in lab/vision: %w", p.name, err)
			}
		}
		kp, err := keypair(ctx, c, u.ID, kept[p.name])
		if err != nil {
			return fmt.Errorf("keypair of %s: %w", p.name, err)
		}
		if kp != kept[p.name] {
			s.made = append(s.made, "keypair of "+p.name)
		}
		keys[p.name] = kp
		fmt.Fprintf(&out, "%-6s access key %s  secret key %s\n", p.name, kp[0], kp[1])
	}
	if err := writeFile0600(usersFile, out.String()); err != nil {
		return err
	}

	idle := int64(idleTimeout)
	pol, err := c.Policy(ctx, "project", proj.ID)
	var p *client.Problem
	switch {
	case errors.As(err, &p) && p.Status == http.StatusNotFound:
		pol = &client.Policy{Scope: "project", TargetID: proj.ID}
	case err != nil:
		return fmt.Errorf("policy of lab/vision: %w", err)
	}
	if pol.IdleTimeoutS == nil {
		pol.IdleTimeoutS = &idle
		if _, err := c.SetPolicy(ctx, *pol); err != nil {
			return fmt.Errorf("policy of lab/vision: %w", err)
		}
		s.made = append(s.made, "idle timeout of lab/vision")
	} else {
		s.found = append(s.found, "idle timeout of lab/vision")
	}

	// alice's folder, made as alice so it is hers.
	ac, err := client.New(url, client.WithKeypair(keys["alice"][0], keys["alice"][1]), client.WithUserAgent("slurmgate-seed"))
	if err != nil {
		return err
	}
	folders, err := ac.VFolders(ctx, false)
	if err != nil {
		return fmt.Errorf("alice's folders: %w", err)
	}
	if !hasFolder(folders, "work", "alice") {
		hosts, err := ac.VFolderHosts(ctx)
		if err != nil || len(hosts) == 0 {
			return fmt.Errorf("no vfolder host to put alice's folder on (%v): the gateway needs [[vfolder.hosts]]", err)
		}
		if _, err := ac.CreateVFolder(ctx, client.NewVFolder{Name: "work", Host: hosts[0].Name}); err != nil {
			return fmt.Errorf("alice's folder work: %w", err)
		}
		s.made = append(s.made, "alice's folder work")
	} else {
		s.found = append(s.found, "alice's folder work")
	}

	if len(s.made) > 0 {
		fmt.Fprintf(os.Stderr, "seed: made %s\n", strings.Join(s.made, ", "))
	}
	if len(s.found) > 0 {
		fmt.Fprintf(os.Stderr, "seed: kept %d things already there\n", len(s.found))
	}
	return nil
}

// keypair returns old when the gateway still lists its access key for the
// user, else a new keypair.
func keypair(ctx context.Context, c *client.Client, userID int64, old [2]string) ([2]string, error) {
	if old[0] != "" {
		opts := client.ListOptions{Limit: 100}
		for {
			page, err := c.ListKeypairs(ctx, userID, opts)
			if err != nil {
				return old, err
			}
			for _, k := range page.Items {
				if k.AccessKey == old[0] {
					return old, nil
				}
			}
			if page.Next == "" {
				break
			}
			opts.Cursor = page.Next
		}
	}
	kp, err := c.CreateKeypair(ctx, userID, "make dev")
	if err != nil {
		return old, err
	}
	return [2]string{kp.AccessKey, kp.SecretKey}, nil
}

func project(ctx context.Context, c *client.Client, domain, name string) (*client.Project, error) {
	all, err := c.Projects(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Domain == domain && all[i].Name == name {
			return &all[i], nil
		}
	}
	return nil, fmt.Errorf("project %s/%s exists but is not listed", domain, name)
}

func findUser(us []client.User, name string) *client.User {
	for i := range us {
		if us[i].Username == name {
			return &us[i]
		}
	}
	return nil
}

func isMember(ms []client.Membership, userID int64) bool {
	for _, m := range ms {
		if m.UserID == userID {
			return true
		}
	}
	return false
}

func hasFolder(fs []client.VFolder, name, owner string) bool {
	for _, f := range fs {
		if f.Name == name && f.Owner == owner {
			return true
		}
	}
	return false
}

// readAdmin reads `slurmgate admin bootstrap`'s output.
func readAdmin(path string) (ak, sk string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "access key"); ok {
			ak = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "secret key"); ok {
			sk = strings.TrimSpace(v)
		}
	}
	if ak == "" || sk == "" {
		return "", "", fmt.Errorf("%s has no \"access key\" and \"secret key\" lines; remove it so the gateway script bootstraps again", path)
	}
	return ak, sk, sc.Err()
}

// readUsers reads the keypairs a previous run wrote; a missing file is empty.
func readUsers(path string) map[string][2]string {
	out := map[string][2]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for line := range strings.Lines(string(b)) {
		// "alice  access key AK  secret key SK"
		f := strings.Fields(line)
		if len(f) == 7 && f[1] == "access" && f[4] == "secret" {
			out[f[0]] = [2]string{f[3], f[6]}
		}
	}
	return out
}

// writeFile0600 replaces path atomically with a file only its owner reads.
func writeFile0600(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".seed-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

package slurmctl

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AssociationFilter narrows [Client.Associations]. Empty fields match all.
type AssociationFilter struct {
	Account string
	User    string
}

// Associations reads associations of this cluster back from slurmdbd.
func (c *Client) Associations(ctx context.Context, f AssociationFilter) ([]Association, error) {
	return c.dialect.associations(ctx, c, c.cfg.AdminUser, f)
}

// Users lists Slurm's user records.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	return c.dialect.users(ctx, c, c.cfg.AdminUser)
}

// Accounts lists accounts with their parent and the limits of their
// account-level association on this cluster (two requests in all).
func (c *Client) Accounts(ctx context.Context) ([]Account, error) {
	accts, err := c.dialect.accounts(ctx, c, c.cfg.AdminUser)
	if err != nil {
		return nil, err
	}
	assocs, err := c.Associations(ctx, AssociationFilter{})
	if err != nil {
		return nil, err
	}
	byName := map[string]Association{}
	for _, a := range assocs {
		if a.User == "" && a.Partition == "" {
			byName[a.Account] = a
		}
	}
	out := accts[:0]
	for _, a := range accts {
		// An account without an association here belongs to another cluster.
		if assoc, ok := byName[a.Name]; ok {
			a.Parent, a.Limits = assoc.Parent, assoc.Limits
			out = append(out, a)
		}
	}
	return out, nil
}

// Account returns one account of this cluster, or an error of kind ErrNotFound.
func (c *Client) Account(ctx context.Context, name string) (Account, error) {
	accts, err := c.Accounts(ctx)
	if err != nil {
		return Account{}, err
	}
	for _, a := range accts {
		if a.Name == name {
			return a, nil
		}
	}
	return Account{}, &Error{Op: "account", Kind: ErrNotFound, Message: fmt.Sprintf("account %q does not exist on cluster %s", name, c.cfg.Cluster)}
}

// Slurm stores account and user names lower-cased and splits its own
// arguments on '=', ',' and spaces; refuse anything that would be mangled.
var slurmName = regexp.MustCompile(`^[a-z0-9_][a-z0-9_.\-]{0,63}$`)

func checkName(op, what, name string) error {
	if !slurmName.MatchString(name) {
		return &Error{Op: op, Kind: ErrInvalidRequest, Message: fmt.Sprintf(
			"%s name %q: use 1-64 lower-case letters, digits, '_', '.' or '-', not starting with '.' or '-'", what, name)}
	}
	return nil
}

func checkText(op, what, s string) error {
	if strings.ContainsAny(s, "\n\r'\"") {
		return &Error{Op: op, Kind: ErrInvalidRequest, Message: what + " must be one line without quotes"}
	}
	return nil
}

// Accounting writes go through sacctmgr: dbv0.0.38 cannot create or modify
// an account-level association (it requires a user) and sets no parent.
// sacctmgr runs with a JWT for the admin identity.

// CreateAccount adds a.Name under a.Parent ("root" if empty) with a's
// description, organization and limits. It fails with ErrAlreadyExists if
// the account is there already.
func (c *Client) CreateAccount(ctx context.Context, a Account) error {
	const op = "create account"
	if err := c.checkAccount(op, a); err != nil {
		return err
	}
	parent := a.Parent
	if parent == "" {
		parent = "root"
	}
	// slurmdbd insists on both; Slurm's own defaults are the account's name.
	args := []string{"-i", "add", "account", a.Name, "Cluster=" + c.cfg.Cluster, "Parent=" + parent,
		"Description=" + cmp.Or(a.Description, a.Name), "Organization=" + cmp.Or(a.Organization, a.Name)}
	args = append(args, limitArgs(a.Limits, Limits{})...)
	return c.sacctmgr(ctx, op, args...)
}

// UpdateAccount makes account a.Name match a: description, organization,
// parent and limits. Limits that are set in Slurm but zero in a are cleared;
// an empty description, organization or parent leaves Slurm's value alone.
func (c *Client) UpdateAccount(ctx context.Context, a Account) error {
	const op = "update account"
	if err := c.checkAccount(op, a); err != nil {
		return err
	}
	cur, err := c.Account(ctx, a.Name)
	if err != nil {
		return err
	}
	set := limitArgs(a.Limits, cur.Limits)
	if a.Description != "" && a.Description != cur.Description {
		set = append(set, "Description="+a.Description)
	}
	if a.Organization != "" && a.Organization != cur.Organization {
		set = append(set, "Organization="+a.Organization)
	}
	if a.Parent != "" && a.Parent != cur.Parent {
		set = append(set, "Parent="+a.Parent)
	}
	if len(set) == 0 {
		return nil
	}
	args := append([]string{"-i", "modify", "account", "where", "Name=" + a.Name, "Cluster=" + c.cfg.Cluster, "set"}, set...)
	return c.sacctmgr(ctx, op, args...)
}

// DeleteAccount removes an account and every association under it. Slurm
// refuses while jobs of the account are running.
func (c *Client) DeleteAccount(ctx context.Context, name string) error {
	const op = "delete account"
	if err := checkName(op, "account", name); err != nil {
		return err
	}
	return c.sacctmgr(ctx, op, "-i", "delete", "account", "where", "Name="+name, "Cluster="+c.cfg.Cluster)
}

func (c *Client) checkAccount(op string, a Account) error {
	if err := checkName(op, "account", a.Name); err != nil {
		return err
	}
	if a.Parent != "" {
		if err := checkName(op, "parent account", a.Parent); err != nil {
			return err
		}
	}
	if err := checkText(op, "description", a.Description); err != nil {
		return err
	}
	return checkText(op, "organization", a.Organization)
}

// CreateAssociation lets a.User submit to a.Account with a's per-user limits,
// creating the Slurm user record if needed. ErrAlreadyExists if it exists.
func (c *Client) CreateAssociation(ctx context.Context, a Association) error {
	const op = "create association"
	if err := c.checkAssociation(op, a); err != nil {
		return err
	}
	args := []string{"-i", "add", "user", a.User, "Account=" + a.Account, "Cluster=" + c.cfg.Cluster}
	if a.Partition != "" {
		args = append(args, "Partition="+a.Partition)
	}
	args = append(args, limitArgs(a.Limits, Limits{})...)
	return c.sacctmgr(ctx, op, args...)
}

// UpdateAssociation sets a user association's limits to exactly a.Limits.
func (c *Client) UpdateAssociation(ctx context.Context, a Association) error {
	const op = "update association"
	if err := c.checkAssociation(op, a); err != nil {
		return err
	}
	cur, err := c.Associations(ctx, AssociationFilter{Account: a.Account, User: a.User})
	if err != nil {
		return err
	}
	i := slices.IndexFunc(cur, func(x Association) bool { return x.User == a.User && x.Partition == a.Partition })
	if i < 0 {
		return &Error{Op: op, Kind: ErrNotFound, Message: fmt.Sprintf("user %s has no association with account %s", a.User, a.Account)}
	}
	set := limitArgs(a.Limits, cur[i].Limits)
	if len(set) == 0 {
		return nil
	}
	args := []string{"-i", "modify", "user", "where", "Name=" + a.User, "Account=" + a.Account, "Cluster=" + c.cfg.Cluster}
	if a.Partition != "" {
		args = append(args, "Partition="+a.Partition)
	}
	return c.sacctmgr(ctx, op, append(append(args, "set"), set...)...)
}

// DeleteAssociation removes user's association with account; the user's
// other associations stay.
func (c *Client) DeleteAssociation(ctx context.Context, account, user string) error {
	const op = "delete association"
	if err := checkName(op, "account", account); err != nil {
		return err
	}
	if err := checkName(op, "user", user); err != nil {
		return err
	}
	return c.sacctmgr(ctx, op, "-i", "delete", "user", "where", "Name="+user, "Account="+account, "Cluster="+c.cfg.Cluster)
}

func (c *Client) checkAssociation(op string, a Association) error {
	if err := checkName(op, "account", a.Account); err != nil {
		return err
	}
	if err := checkName(op, "user", a.User); err != nil {
		return err
	}
	if a.Partition != "" {
		return checkName(op, "partition", a.Partition)
	}
	return nil
}

func (c *Client) sacctmgr(ctx context.Context, op string, args ...string) error {
	unlock, err := LockAccountingWrites(ctx)
	if err != nil {
		return fmt.Errorf("slurm %s: %w", op, err)
	}
	defer unlock()
	start := time.Now()
	_, err = c.cli.run(ctx, op, c.cfg.AdminUser, "sacctmgr", args...)
	c.observe("sacctmgr", start, err)
	return err
}

// limitArgs renders the sacctmgr settings that turn cur into want: changed
// limits are set, limits present in cur but zero in want are cleared (-1).
func limitArgs(want, cur Limits) []string {
	var args []string
	ints := []struct {
		name      string
		want, cur int
	}{
		{"GrpJobs", want.GrpJobs, cur.GrpJobs},
		{"GrpSubmitJobs", want.GrpSubmitJobs, cur.GrpSubmitJobs},
		{"MaxJobs", want.MaxJobs, cur.MaxJobs},
		{"MaxSubmitJobs", want.MaxSubmitJobs, cur.MaxSubmitJobs},
		{"MaxWall", int(want.MaxWall / time.Minute), int(cur.MaxWall / time.Minute)},
	}
	for _, l := range ints {
		switch {
		case l.want == l.cur:
		case l.want == 0:
			args = append(args, l.name+"=-1")
		default:
			args = append(args, l.name+"="+strconv.Itoa(l.want))
		}
	}
	if s := tresArg(want.GrpTRES, cur.GrpTRES); s != "" {
		args = append(args, "GrpTRES="+s)
	}
	if s := tresArg(want.MaxTRESPerJob, cur.MaxTRESPerJob); s != "" {
		args = append(args, "MaxTRESPerJob="+s)
	}
	return args
}

// tresArg renders the TRES changes from cur to want, clearing removed keys.
func tresArg(want, cur TRES) string {
	if want.Equal(cur) {
		return ""
	}
	change := TRES{}
	for k, v := range want {
		if cur[k] != v || !hasKey(cur, k) {
			change[k] = v
		}
	}
	var parts []string
	if len(change) > 0 {
		parts = append(parts, change.String())
	}
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		if !hasKey(want, k) {
			parts = append(parts, k+"=-1")
		}
	}
	return strings.Join(parts, ",")
}

func hasKey(t TRES, k string) bool {
	_, ok := t[k]
	return ok
}

package sso

import (
	"cmp"
	"errors"
	"fmt"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Identity is an authenticated person as a source describes them.
type Identity struct {
	Source   string // "local", "ldap" or "oidc"
	Subject  string // the LDAP DN or the OIDC "sub"; the user name for local accounts
	Username string // the POSIX user name
	// UID is the POSIX uid: the directory's uidNumber (or the OIDC uid
	// claim) before ResolvePOSIX, the host's afterwards; 0 when unknown.
	UID      int
	GID      int
	Email    string
	FullName string
	Groups   []string       // group DNs or names, as the source gave them
	Projects []ProjectGrant // what the group rules made of Groups
}

// ProjectGrant gives a user a role in a project.
type ProjectGrant struct {
	Project string `json:"project"` // "domain/project"
	Role    string `json:"role"`    // "member" or "project-admin"
}

// Reason classifies why a login was refused; the API maps each to a status.
type Reason string

const (
	// BadCredentials: wrong password or unknown user. The two are told apart
	// only in Error.Err (for the log), never to the client.
	BadCredentials Reason = "bad-credentials"
	// Locked: the account exists but is locked or disabled.
	Locked Reason = "locked"
	// NoPOSIXUser: authenticated, but no usable POSIX account matches.
	NoPOSIXUser Reason = "no-posix-user"
	// Refused: the OIDC exchange failed a check (state, nonce, signature,
	// audience, expiry) or the provider reported an error.
	Refused Reason = "refused"
	// Unavailable: the directory or provider could not be reached.
	Unavailable Reason = "unavailable"
)

// Error is a refused login. Message is for the person logging in (and
// their admin); Err is the cause, for the log only.
type Error struct {
	Reason  Reason
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns err's Reason, or "" for errors not from this package.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func refuse(r Reason, cause error, format string, args ...any) *Error {
	return &Error{Reason: r, Message: fmt.Sprintf(format, args...), Err: cause}
}

// badCredentials is the one message for a wrong password and an unknown
// user, so that names cannot be probed.
func badCredentials(cause error) *Error {
	return &Error{Reason: BadCredentials, Message: "wrong user name or password", Err: cause}
}

// GroupRule maps directory groups (or OIDC group claims) to a project.
// Exactly one of Group and Pattern is set.
type GroupRule struct {
	// Group is a group's DN or name, compared case-insensitively.
	Group string `toml:"group" json:"group,omitempty"`
	// Pattern is a regular expression matched against the whole group name
	// (a DN's first RDN value, e.g. "proj-nlp" of cn=proj-nlp,ou=groups,…);
	// its submatches expand into Project as $1, ${name}.
	Pattern string `toml:"pattern" json:"pattern,omitempty"`
	// Project is "domain/project".
	Project string `toml:"project" json:"project"`
	// Role is "member" (the default) or "project-admin".
	Role string `toml:"role" json:"role,omitempty"`
}

// GroupMapper applies group rules.
type GroupMapper struct{ rules []compiledRule }

type compiledRule struct {
	GroupRule
	re *regexp.Regexp
}

// NewGroupMapper checks and compiles rules.
func NewGroupMapper(rules []GroupRule) (*GroupMapper, error) {
	m := &GroupMapper{}
	for i, r := range rules {
		if (r.Group == "") == (r.Pattern == "") {
			return nil, fmt.Errorf("group rule %d: set exactly one of group and pattern", i+1)
		}
		if r.Role == "" {
			r.Role = "member"
		}
		if r.Role != "member" && r.Role != "project-admin" {
			return nil, fmt.Errorf("group rule %d: role %q: want member or project-admin", i+1, r.Role)
		}
		if d, p, ok := strings.Cut(r.Project, "/"); !ok || d == "" || p == "" {
			return nil, fmt.Errorf("group rule %d: project %q: want domain/project", i+1, r.Project)
		}
		c := compiledRule{GroupRule: r}
		if r.Pattern != "" {
			re, err := regexp.Compile("^(?:" + r.Pattern + ")$")
			if err != nil {
				return nil, fmt.Errorf("group rule %d: pattern: %w", i+1, err)
			}
			c.re = re
		}
		m.rules = append(m.rules, c)
	}
	return m, nil
}

// Projects returns the projects groups grant, one grant per project with
// the highest role any rule gives, sorted by project.
func (m *GroupMapper) Projects(groups []string) []ProjectGrant {
	if m == nil {
		return nil
	}
	best := map[string]string{}
	grant := func(project, role string) {
		if best[project] != "project-admin" {
			best[project] = role
		}
	}
	for _, g := range groups {
		name := groupName(g)
		for _, r := range m.rules {
			switch {
			case r.re == nil && (strings.EqualFold(r.Group, g) || strings.EqualFold(r.Group, name)):
				grant(r.Project, r.Role)
			case r.re != nil:
				if idx := r.re.FindStringSubmatchIndex(name); idx != nil {
					grant(string(r.re.ExpandString(nil, r.Project, name, idx)), r.Role)
				}
			}
		}
	}
	out := make([]ProjectGrant, 0, len(best))
	for p, role := range best {
		out = append(out, ProjectGrant{Project: p, Role: role})
	}
	slices.SortFunc(out, func(a, b ProjectGrant) int { return cmp.Compare(a.Project, b.Project) })
	return out
}

// groupName is a DN's first RDN value, or g itself when it is not a DN.
func groupName(g string) string {
	if !strings.Contains(g, "=") {
		return g
	}
	dn, err := ldap.ParseDN(g)
	if err != nil || len(dn.RDNs) == 0 || len(dn.RDNs[0].Attributes) == 0 {
		return g
	}
	return dn.RDNs[0].Attributes[0].Value
}

var posixName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// IsPOSIXName reports whether s can be a POSIX user name as Slurmgate
// accepts them: lower-case letters, digits, '_' and '-', at most 32,
// not starting with a digit or '-'.
func IsPOSIXName(s string) bool { return posixName.MatchString(s) }

// ResolvePOSIX checks id against the host's user database and fills in
// the account's uid and gid. It refuses a name that is not a POSIX user
// name, a name with no account, and an account whose uid differs from the
// one the source gave.
func ResolvePOSIX(id Identity) (Identity, error) {
	if !posixName.MatchString(id.Username) {
		return Identity{}, refuse(NoPOSIXUser, nil,
			"%s login %q is not a POSIX user name (lower-case letters, digits, '_' and '-', at most 32): map a claim that holds the cluster user name (username_claim)", id.Source, id.Username)
	}
	u, err := user.Lookup(id.Username)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		hint := ""
		if id.UID > 0 {
			hint = fmt.Sprintf(" with uid %d", id.UID)
		}
		return Identity{}, refuse(NoPOSIXUser, nil,
			"%s user %s has no POSIX account on the cluster: an administrator must create it%s (or make the directory visible to this host through NSS/sssd) before they can log in", id.Source, id.Username, hint)
	} else if err != nil {
		return Identity{}, refuse(Unavailable, err, "looking up POSIX user %s", id.Username)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if id.UID > 0 && id.UID != uid {
		return Identity{}, refuse(NoPOSIXUser, nil,
			"%s user %s has uid %d in the directory but POSIX uid %d on the cluster: an administrator must make them agree before %s can log in", id.Source, id.Username, id.UID, uid, id.Username)
	}
	if uid == 0 {
		return Identity{}, refuse(NoPOSIXUser, nil, "%s maps to uid 0: root never logs in to Slurmgate", id.Username)
	}
	id.UID, id.GID = uid, gid
	if id.FullName == "" {
		id.FullName, _, _ = strings.Cut(u.Name, ",") // GECOS
	}
	return id, nil
}

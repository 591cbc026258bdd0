// Package sso owns who a person is: it authenticates people against an LDAP
// directory, an OpenID Connect provider or a local password (for bootstrap
// admins), maps their directory groups or token claims to Slurmgate
// projects, and resolves every identity to the POSIX account that jobs will
// run as. It knows nothing of HTTP handlers, cookies or the database: the
// API turns an [Identity] into a Slurmgate user and a portal session, and a
// [PasswordStore] (the bridge) holds local password hashes.
//
// Each way in yields an Identity that [Service] checks against the host's
// user database (os/user, i.e. NSS: the same passwd the cluster's nodes
// use through sssd or files). A login whose name has no POSIX account, or
// whose directory uidNumber differs from the account's uid, is refused with
// a message an administrator can act on — never silently mapped elsewhere.
//
// Disabled and locked LDAP accounts: slapd's ppolicy overlay refuses the
// bind of an account with pwdAccountLockedTime, and the authenticator reads
// that attribute to say "locked" rather than "wrong password". Directories
// without ppolicy mark accounts disabled in their own way; DisabledFilter
// (for example "(|(loginShell=/sbin/nologin)(shadowExpire=1))") is matched
// against the user's entry on the server after a successful bind.
package sso

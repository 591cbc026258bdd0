// Package bridge owns Slurmgate's domain: organisations (domains, projects,
// users, memberships), credentials, resource policies, the catalogue
// (scaling groups, presets, images), sessions and their lifecycle state
// machine, admission (quota) control, the session reconciler and the Slurm
// account sync. Desired and observed state live in PostgreSQL (store.go and
// migrations/); Slurm is reached only through package slurmctl.
//
// The package knows nothing of HTTP. Every operation takes the acting
// [Actor] and checks what that actor may do, so the REST API, the CLI's admin
// commands and tests share one set of rules.
package bridge

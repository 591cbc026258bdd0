// Package slurmctl owns everything that speaks Slurm: the slurmrestd client
// behind our own types, JWT minting, the Slurm CLI fallback where the REST
// API lacks an operation, #SBATCH directive parsing and the translation of
// pending reasons into sentences people understand.
//
// Nothing outside this package sees Slurm's JSON: callers use [Job],
// [JobSpec], [Node], [Partition], [Account], [Association] and [TRES]. Each
// slurmrestd API version is a dialect in its own file (v0038.go for Slurm
// 22.05); adding one changes no caller.
//
// Every request acts as a named user with a freshly minted HS256 JWT
// ([Minter]), so the gateway needs neither root, munge nor --uid. Which path
// each operation takes:
//
//	slurmrestd (REST)                     Slurm CLI with SLURM_JWT
//	Ping, Submit, Job, Jobs, AllJobs      EstimatedStarts: squeue --start --json
//	Cancel, Signal, Nodes, Partitions     CreateAccount, UpdateAccount, DeleteAccount,
//	Accounts, Account, Associations,      CreateAssociation, UpdateAssociation,
//	Users                                 DeleteAssociation: sacctmgr -i
//
// Why the CLI for those: dbv0.0.38 cannot create or modify an account-level
// association (it insists on a user, "Missing required field 'user'"), so
// neither an account's parent nor its GrpTRES/GrpJobs/MaxWall can be written
// through REST; and squeue --start selects exactly the pending jobs with a
// backfill estimate. Accounting writes are serialised in-process: slurmdbd
// 22.05 deadlocks in MariaDB and exits under concurrent writes.
package slurmctl

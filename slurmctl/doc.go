// Package slurmctl owns everything that speaks Slurm: the slurmrestd client
// behind our own types, JWT minting, the Slurm CLI fallback where the REST
// API lacks an operation, #SBATCH directive parsing and the translation of
// pending reasons into sentences people understand.
//
// Nothing outside this package sees Slurm's JSON: callers use [Job],
// [JobSpec], [Node], [Partition], [Account], [Association] and [TRES].
package slurmctl

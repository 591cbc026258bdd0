// Package apptainer owns the container runtimes a session can run in
// (apptainer, charliecloud and none), behind one interface in the manner of
// Nomad's task drivers: the gateway-side [Runtime] (what it can do, the job
// script) and the node-side [Driver] the session agent uses (Start an
// [Instance], run Commands in it, Stop it). One small file per runtime:
// none.go, apptainer.go, charliecloud.go (with imagecache.go, which turns a
// SIF into something ch-run can run).
//
// It also owns what an image says about itself: SIF inspection with
// sylabs/sif/v2 ([InspectImage]) and Slurmgate's image labels, defined in
// labels.go and read by [ParseLabels]; and the batch script of a session's
// Slurm job ([AgentJobScript], which execs the session agent).
//
// It knows nothing of the gateway or of Slurm's API: the bridge hands it a
// [Job] or [AgentJob] and submits the script it returns.
package apptainer

// Package apptainer owns the container runtimes a session can run in
// (apptainer, charliecloud and none), behind one interface in the manner of
// Nomad's task drivers, and the rendering of the batch script a session's
// Slurm job runs. It knows nothing of the gateway or of Slurm's API: the
// bridge hands it a [Job] and submits the script it returns.
package apptainer

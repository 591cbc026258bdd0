// Package agent is the in-job session agent: the first thing a session's
// Slurm job runs, as the researcher. It owns everything that happens on the
// compute node for a session: it dials the gateway through [tunnel] (and
// keeps redialling, with capped exponential backoff and jitter, while the
// session's services keep running), starts the container through an
// [apptainer.Driver], starts the session's services on Unix sockets in a
// private directory or on loopback ports guarded by per-service tokens,
// probes and reports their readiness, serves terminals (PTYs), exec and
// proxied HTTP and TCP streams, a built-in SSH server on the tunnel's
// "ssh" stream (ssh.go: OpenSSH, scp, sftp), reports metrics (cgroup CPU and memory,
// NVML GPUs) and activity, runs a batch session's command to its end, and
// stops everything cleanly on SIGTERM from Slurm or a stop from the gateway.
//
// The gateway writes the agent's [Config] as JSON to a file only the user
// can read (mode 0600); [Load] refuses a file others can read. Example:
//
//	{
//	  "session_id": "s-4f2a",
//	  "gateway_url": "wss://gw.example.org/api/v1/agent/tunnel",
//	  "secret": "hS0v…base64url…",
//	  "gateway_ca_file": "/etc/slurmgate/ca.pem",
//	  "runtime": "apptainer",
//	  "image": "/shared/images/pytorch-24.05.sif",
//	  "mounts": [{"source": "/vfolders/alice/data", "target": "/home/work/data"}],
//	  "env": ["OMP_NUM_THREADS=8"],
//	  "interactive": true,
//	  "command": "",
//	  "services": [
//	    {"name": "jupyter", "protocol": "http", "socket": true, "base_url": true,
//	     "command": ["jupyter-notebook", "--no-browser", "--sock={socket}",
//	                 "--NotebookApp.base_url={base_url}",
//	                 "--NotebookApp.allow_remote_access=True"],
//	     "auth_header": "Authorization: token {token}"},
//	    {"name": "tensorboard", "protocol": "http", "base_url": true,
//	     "command": ["tensorboard", "--logdir=/home/work/logs", "--host=127.0.0.1",
//	                 "--port={port}", "--path_prefix={base_url}"]},
//	    {"name": "app", "protocol": "http",
//	     "command": ["python3", "app.py", "--port={port}"],
//	     "auth_header": "Authorization: Bearer {token}"}
//	  ],
//	  "metrics_interval": "5s"
//	}
//
// Service command templates may use {port} (a free loopback port the agent
// chose), {socket} (a Unix socket path in the agent's 0700 state directory),
// {base_url} (/s/{session}/{name}/, when the app serves under the gateway's
// prefix; the gateway always forwards the prefix, and for a service without
// base_url the agent strips it, so the app is served at "/" and sees the
// prefix in X-Forwarded-Prefix). A service whose auth_header uses {token}
// gets a random per-service secret, which the agent adds to every proxied
// request, so that other users on the node cannot use a port service. The
// app learns it from its environment, SLURMGATE_SERVICE_TOKEN and
// JUPYTER_TOKEN (Jupyter reads it), which only its user and root can read;
// a command holding {token} is refused, as every user of the node can read
// a command line (/proc/PID/cmdline).
//
// Jupyter refuses requests whose Host is not local unless
// allow_remote_access is set; on a socket in the agent's 0700 directory
// that check adds nothing, and the gateway's Host reaches the app as sent.
package agent

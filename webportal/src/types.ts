// The REST API's shapes (see GET /api/v1/openapi.json), as far as the portal reads them.

export type SessionState = "PENDING" | "PREPARING" | "RUNNING" | "TERMINATING" | "TERMINATED" | "ERROR" | "CANCELLED";

export interface Session {
  id: string;
  name: string;
  owner: string;
  owner_uid: number;
  project: string;
  scaling_group: string;
  partition: string;
  type: "interactive" | "batch";
  image: string;
  cpus: number;
  memory_mb: number;
  gpus: number;
  gpu_type?: string;
  time_limit_s: number;
  command: string;
  state: SessionState;
  sub_state?: string;
  status_message?: string;
  job_id?: number;
  slurm_state?: string;
  slurm_reason?: string;
  estimated_start?: string;
  queue_position?: number;
  node?: string;
  exit_code?: number;
  created_at: string;
  started_at?: string;
  ended_at?: string;
}

export interface Page<T> {
  items: T[];
  next?: string;
}

export interface Me {
  id: number;
  username: string;
  uid: number;
  email: string;
  full_name: string;
  domain_id: number;
  domain: string;
  role: "superadmin" | "domain-admin" | "user" | string;
  status: string;
  auth?: { method: string; access_key?: string; expires_at?: string };
}

export interface Domain { id: number; name: string; description: string; active: boolean; created_at: string }
export interface Project { id: number; domain_id: number; domain: string; name: string; description: string; active: boolean; created_at: string }
export interface Membership { project_id: number; project: string; user_id: number; username: string; role: string }
export interface User { id: number; username: string; uid: number; email: string; full_name: string; domain: string; role: string; status: string }

export interface Policy {
  scope: "domain" | "project" | "user";
  target_id: number;
  max_cpus?: number;
  max_memory_mb?: number;
  max_gpus?: Record<string, number>;
  max_concurrent_sessions?: number;
  max_pending_sessions?: number;
  max_session_lifetime_s?: number;
  idle_timeout_s?: number;
  allowed_scaling_groups?: string[];
  allowed_vfolder_hosts?: string[];
  max_vfolders?: number;
  vfolder_quota_bytes?: number;
  updated_at?: string;
}

export interface ScalingGroup { name: string; description: string; cluster: string; partitions: string[]; gpu_types: string[]; runtime: string }
export interface Preset { name: string; description: string; cpus: number; memory_mb: number; gpus: number; gpu_type: string; time_limit_s?: number }
export interface Image { name: string; tag: string; location: string; runtime: string; labels: Record<string, string> | null; created_at: string }
export interface Keypair { access_key: string; user_id: number; username: string; description: string; created_at: string; last_used_at?: string; expires_at?: string }
export interface CreatedKeypair { access_key: string; secret_key: string; user_id: number; description: string }
export interface SessionEvent { id: number; at: string; kind: string; from?: SessionState; to?: SessionState; message: string }

export interface QuotaExceeded { scope: string; scope_name: string; limit: string; max: number; in_use: number; requested: number }

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  field?: string;
  quota?: QuotaExceeded;
  request_id?: string;
}

// Quota use per level (GET /api/v1/usage), counted as admission control counts it.
export interface UsageCount { sessions: number; pending: number; cpus: number; memory_mb: number; gpus?: Record<string, number> }
export interface ScopeUsage { scope: "user" | "project" | "domain"; name: string; id: number; policy?: Policy; in_use: UsageCount }

// The cluster as Slurm reports it (GET /api/v1/cluster/…).
export interface ClusterNode {
  name: string; state: string; flags?: string[]; reason?: string; partitions: string[];
  cpus: number; alloc_cpus: number; memory_mb: number; alloc_memory_mb: number;
  gpus?: Record<string, number>; gpus_used?: Record<string, number>;
}
export interface ClusterPartition {
  name: string; state: string; default: boolean; nodes: string[]; total_cpus: number; free_cpus: number;
  max_time_s?: number; gpus?: Record<string, { total: number; free: number }>; scaling_groups?: string[];
}

// The Slurm account sync (GET /api/v1/sync/plan, POST /api/v1/sync/apply).
export interface SyncChange { kind: string; account: string; user?: string; summary: string }
export interface SyncPlan { changes: SyncChange[]; conflicts?: { account: string; reason: string }[] }
export interface SyncOutcome { plan: SyncPlan | null; applied: number; failed: { change: SyncChange; error: string }[] }

// Virtual folders (api/vfolders.go).
export type Access = "ro" | "rw" | "rw-delete" | "owner";
export interface VFolder {
  id: string; name: string; host: string; owner: string; owner_kind: "user" | "project"; user_id?: number; project_id?: number;
  usage_mode: string; permission: string; access: Access; quota_bytes?: number; usage_bytes: number; scanned_at?: string;
  status: string; status_message?: string; created_at: string; updated_at: string;
}
export interface VFolderHost { name: string; quota_method: string; max_file_size: number }
export interface VFolderShare {
  vfolder_id: string; vfolder: string; owner: string; user_id: number; username: string;
  permission: string; state: "pending" | "accepted"; created_at: string; accepted_at?: string;
}
export interface FileEntry { name: string; path: string; type: "file" | "dir" | "symlink" | "other"; size: number; mode: string; uid: number; gid: number; mtime: string }
export interface FilePage { items: FileEntry[]; next?: string }

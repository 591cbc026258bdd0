// Formatting for people: sizes, durations, times and session states.
import type { Problem, Session } from "./types";
import { h } from "./dom";

export const liveStates = new Set(["PENDING", "PREPARING", "RUNNING", "TERMINATING"]);

export function isLive(s: Session): boolean {
  return liveStates.has(s.state);
}

export function mib(mb: number): string {
  if (mb >= 1024 * 1024) return `${+(mb / 1024 / 1024).toFixed(1)} TiB`;
  if (mb >= 1024) return `${+(mb / 1024).toFixed(1)} GiB`;
  return `${mb} MiB`;
}

/** bytes says a size in binary units: 1.5 MiB. */
export function bytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} ${n === 1 ? "byte" : "bytes"}` : `${+n.toFixed(1)} ${units[i]}`;
}

export function duration(s: number): string {
  if (!isFinite(s) || s <= 0) return "—";
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = [];
  if (d) parts.push(`${d} d`);
  if (hr) parts.push(`${hr} h`);
  if (m && !d) parts.push(`${m} min`);
  if (!parts.length) parts.push(`${Math.round(s)} s`);
  return parts.join(" ");
}

export function when(iso?: string): string {
  if (!iso) return "—";
  const t = new Date(iso);
  const sameDay = t.toDateString() === new Date().toDateString();
  return sameDay ? t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : t.toLocaleString();
}

/** relative says "in 5 min" / "3 min ago". */
export function relative(iso?: string): string {
  if (!iso) return "";
  const diff = (Date.parse(iso) - Date.now()) / 1000;
  const abs = duration(Math.abs(diff));
  return diff >= 0 ? `in ${abs}` : `${abs} ago`;
}

export function resources(s: { cpus: number; memory_mb: number; gpus: number; gpu_type?: string }): string {
  const parts = [`${s.cpus} CPU${s.cpus === 1 ? "" : "s"}`, mib(s.memory_mb)];
  if (s.gpus) parts.push(`${s.gpus} × ${s.gpu_type || "GPU"}`);
  return parts.join(" · ");
}

const stateWords: Record<string, string> = {
  PENDING: "Waiting",
  PREPARING: "Starting",
  RUNNING: "Running",
  TERMINATING: "Stopping",
  TERMINATED: "Finished",
  ERROR: "Failed",
  CANCELLED: "Cancelled",
};

/** stateBadge shows a state as words and colour (the colour is never the only cue). */
export function stateBadge(s: Session): HTMLElement {
  let cls = s.state.toLowerCase();
  let word = stateWords[s.state] ?? s.state;
  if (s.state === "TERMINATED" && s.exit_code !== undefined && s.exit_code !== 0) {
    cls = "error";
    word = `Exited ${s.exit_code}`;
  }
  return h("span", { class: `badge ${cls}`, "data-state": s.state, title: s.slurm_state ? `Slurm: ${s.slurm_state}` : null }, word);
}

// Slurm's pending reasons, for when the gateway has not explained one yet.
const reasons: Record<string, string> = {
  None: "being scheduled",
  Priority: "other jobs have priority",
  Resources: "waiting for free resources",
  AssocGrpCpuLimit: "your project's CPU limit is reached",
  AssocGrpMemLimit: "your project's memory limit is reached",
  AssocGrpGRES: "your project's GPU limit is reached",
  AssocMaxJobsLimit: "your project's limit on running jobs is reached",
  ReqNodeNotAvail: "the requested nodes are unavailable",
  PartitionDown: "the partition is down",
  BeginTime: "waiting for its start time",
  Dependency: "waiting for another job",
};

/** pendingText is the plain-words reason a session waits, with queue position and estimated start. */
export function pendingText(s: Session): string {
  if (s.state !== "PENDING") return s.status_message ?? "";
  const parts: string[] = [];
  const msg = s.status_message || (s.slurm_reason ? reasons[s.slurm_reason] ?? s.slurm_reason : "") || s.sub_state || "";
  if (msg) parts.push(msg);
  if (s.queue_position) parts.push(`position ${s.queue_position} in the queue`);
  if (s.estimated_start) parts.push(`estimated start ${when(s.estimated_start)} (${relative(s.estimated_start)})`);
  return parts.join("; ");
}

/** problemText is an API refusal as one sentence. */
export function problemText(p: Problem): string {
  if (p.detail) return `${p.title}: ${p.detail}`;
  if (p.quota) return `${p.title}: the ${p.quota.scope} ${p.quota.scope_name} limit on ${p.quota.limit.replace(/_/g, " ")} is ${p.quota.max}`;
  return p.title;
}

/** quotaFacts names the limit a quota refusal hit, and the numbers. */
export function quotaFacts(p: Problem): string {
  const q = p.quota;
  if (!q) return "";
  // Storage limits are in bytes; say them in units people read.
  const storage = /bytes|file_size/.test(q.limit);
  const n = storage ? bytes : String;
  const advice = storage ? "Delete files, upload a smaller file, or ask an administrator for a larger quota." : "Ask a smaller session, end one, or ask an administrator to raise the limit.";
  return `Limit: ${q.limit.replace(/_/g, " ")} of ${q.scope} ${q.scope_name} — at most ${n(q.max)}, ${n(q.in_use ?? 0)} in use, ${n(q.requested)} asked. ${advice}`;
}

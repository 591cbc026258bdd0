// What one new session may ask for, as the launch form shows it before the
// gateway is asked: the largest node of the scaling group's partitions (a
// session is one job on one node) and what each quota level — the user, the
// chosen project, the domain — has left, counted as admission control counts
// it (bridge/admission.go). The gateway's refusal remains the authority: these
// figures are a snapshot, and other members' sessions change them.
import type { ClusterNode, ClusterPartition, ScalingGroup, ScopeUsage } from "./types";

/** Bound is a field's upper limit and every reason that limits it, in words. */
export interface Bound {
  max: number; // Infinity when nothing bounds it
  why: string[];
}

/** LaunchLimits bound CPUs, memory and GPU count; blocked says why no session can start now. */
export interface LaunchLimits {
  cpus: Bound;
  memoryMB: Bound;
  gpus: Bound;
  blocked: string[];
}

export interface LimitInputs {
  group?: ScalingGroup;
  nodes: ClusterNode[];
  partitions: ClusterPartition[];
  levels: ScopeUsage[];
  project: string; // "domain/project", as GET /api/v1/usage names it
  gpuType: string; // "" is any type
}

const whose = (u: ScopeUsage) => (u.scope === "user" ? "you have" : `${u.scope} ${u.name} has`);

function tighten(b: Bound, max: number, why: string): void {
  b.max = Math.min(b.max, max);
  b.why.push(why);
}

/** groupNodes are the nodes of the scaling group's partitions, named by the group or by Slurm's partition list. */
export function groupNodes(g: ScalingGroup, nodes: ClusterNode[], partitions: ClusterPartition[]): ClusterNode[] {
  const parts = new Set(g.partitions);
  for (const p of partitions) if (p.scaling_groups?.includes(g.name)) parts.add(p.name);
  return nodes.filter((n) => n.partitions.some((p) => parts.has(p)));
}

/** nodeGPUs is what one node offers a request for gpuType: that type, or for "any" every type together. */
const nodeGPUs = (n: ClusterNode, gpuType: string) =>
  gpuType ? (n.gpus?.[gpuType] ?? 0) : Object.values(n.gpus ?? {}).reduce((a, b) => a + b, 0);

/** launchLimits computes what a session launched now in the chosen group, project and GPU type may ask for. */
export function launchLimits(x: LimitInputs): LaunchLimits {
  const out: LaunchLimits = {
    cpus: { max: Infinity, why: [] },
    memoryMB: { max: Infinity, why: [] },
    gpus: { max: Infinity, why: [] },
    blocked: [],
  };
  const nodes = x.group ? groupNodes(x.group, x.nodes, x.partitions) : [];
  // No nodes known (Slurm unreachable, or a partition without nodes): no node bound rather than zero.
  if (nodes.length) {
    const largest = (f: (n: ClusterNode) => number) => Math.max(...nodes.map(f));
    tighten(out.cpus, largest((n) => n.cpus), `node size ${largest((n) => n.cpus)}`);
    const mem = largest((n) => n.memory_mb);
    tighten(out.memoryMB, mem, `node size ${fmtMiB(mem)}`);
    const g = largest((n) => nodeGPUs(n, x.gpuType));
    tighten(out.gpus, g, `node size ${g}`);
  }
  const levels = x.levels.filter((u) => u.scope !== "project" || u.name === x.project);
  for (const u of levels) {
    const p = u.policy;
    if (!p) continue;
    const use = u.in_use;
    const who = whose(u);
    if (p.allowed_scaling_groups && x.group && !p.allowed_scaling_groups.includes(x.group.name)) {
      out.blocked.push(`${u.scope === "user" ? "you" : `${u.scope} ${u.name}`} may not use scaling group ${x.group.name} (allowed: ${p.allowed_scaling_groups.join(", ") || "none"})`);
    }
    if (p.max_concurrent_sessions != null && use.sessions >= p.max_concurrent_sessions) {
      out.blocked.push(`${who} ${use.sessions} of ${p.max_concurrent_sessions} concurrent sessions running`);
    }
    if (p.max_pending_sessions != null && use.pending >= p.max_pending_sessions) {
      out.blocked.push(`${who} ${use.pending} of ${p.max_pending_sessions} sessions waiting already`);
    }
    if (p.max_cpus != null) {
      const left = Math.max(0, p.max_cpus - use.cpus);
      tighten(out.cpus, left, `${who} ${left} of ${p.max_cpus} left`);
      if (left < 1) out.blocked.push(`${who} no CPUs left (${use.cpus} of ${p.max_cpus} in use)`);
    }
    if (p.max_memory_mb != null) {
      const left = Math.max(0, p.max_memory_mb - use.memory_mb);
      tighten(out.memoryMB, left, `${who} ${fmtMiB(left)} of ${fmtMiB(p.max_memory_mb)} left`);
      if (left <= 0) out.blocked.push(`${who} no memory left (${fmtMiB(use.memory_mb)} of ${fmtMiB(p.max_memory_mb)} in use)`);
    }
    // "" bounds every type together. A typed limit counts its own GPUs and
    // the untyped ones, which may sit on any type; a request for any type
    // meets every typed limit.
    const inUse = use.gpus ?? {};
    const typed = Object.entries(inUse).filter(([t]) => t !== "").reduce((a, [, n]) => a + n, 0);
    const untyped = Math.max(0, (inUse[""] ?? 0) - typed);
    for (const [typ, max] of Object.entries(p.max_gpus ?? {})) {
      if (typ !== "" && x.gpuType !== "" && typ !== x.gpuType) continue;
      const used = typ === "" ? (inUse[""] ?? 0) : (inUse[typ] ?? 0) + untyped;
      const left = Math.max(0, max - used);
      tighten(out.gpus, left, `${who} ${left} of ${max} ${typ ? `${typ} GPUs` : "GPUs"} left`);
    }
  }
  return out;
}

/** describe words a bound for a field's hint: "up to 4 — node size 4, you have 6 of 8 left". */
export function describe(b: Bound, fmt: (n: number) => string = String): string {
  if (b.max === Infinity) return "No limit from the cluster or your quotas.";
  return `Up to ${fmt(b.max)} — ${b.why.join(", ")}.`;
}

export function fmtMiB(mb: number): string {
  return mb >= 1024 ? `${+(mb / 1024).toFixed(2)} GiB` : `${mb} MiB`;
}

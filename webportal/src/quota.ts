// Quota use as the admission control sees it: each policy that applies to
// the user (their own, each of their projects', their domain's) against the
// resources of live sessions. There is no usage endpoint, so use is summed
// here from the sessions the user can see; for project and domain limits
// that is what the user may see of them, which the bars say.
import { ApiError, get, listAll } from "./api";
import { h, replace } from "./dom";
import { isLive, mib } from "./format";
import type { Me, Policy, Project, Session } from "./types";

export interface Scope {
  kind: "user" | "project" | "domain";
  id: number;
  label: string;
  policy: Policy;
  matches(s: Session): boolean;
}

async function policy(scope: string, id: number): Promise<Policy | null> {
  try {
    return await get<Policy>(`/api/v1/policies/${scope}/${id}`, { quiet: true });
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 403)) return null;
    throw e;
  }
}

/** scopes returns every policy that limits the user's sessions. */
export async function scopes(me: Me, projects: Project[]): Promise<Scope[]> {
  const out: Scope[] = [];
  const [mine, dom, ...projs] = await Promise.all([
    policy("user", me.id),
    policy("domain", me.domain_id),
    ...projects.map((p) => policy("project", p.id)),
  ]);
  if (mine) out.push({ kind: "user", id: me.id, label: `you (${me.username})`, policy: mine, matches: (s) => s.owner === me.username });
  projects.forEach((p, i) => {
    const pol = projs[i];
    const path = `${p.domain}/${p.name}`;
    if (pol) out.push({ kind: "project", id: p.id, label: `project ${path}`, policy: pol, matches: (s) => s.project === path });
  });
  if (dom) out.push({ kind: "domain", id: me.domain_id, label: `domain ${me.domain}`, policy: dom, matches: (s) => s.project.startsWith(me.domain + "/") });
  return out;
}

export interface Use {
  sessions: number;
  pending: number;
  cpus: number;
  memory_mb: number;
  gpus: Record<string, number>;
}

export function usage(sessions: Session[], match: (s: Session) => boolean): Use {
  const u: Use = { sessions: 0, pending: 0, cpus: 0, memory_mb: 0, gpus: {} };
  for (const s of sessions) {
    if (!isLive(s) || !match(s)) continue;
    u.sessions++;
    if (s.state === "PENDING") u.pending++;
    u.cpus += s.cpus;
    u.memory_mb += s.memory_mb;
    if (s.gpus) u.gpus[s.gpu_type || "any"] = (u.gpus[s.gpu_type || "any"] ?? 0) + s.gpus;
  }
  return u;
}

/** bar is one limit as a meter: the value in words and the fill as a picture. */
export function bar(label: string, used: number, max: number, fmt: (n: number) => string = String): HTMLElement {
  const pct = max > 0 ? Math.min(100, (used / max) * 100) : 100;
  const level = pct >= 100 ? "full" : pct >= 80 ? "high" : "ok";
  // Through the CSSOM: the portal's CSP allows no style attributes in markup.
  const fill = h("span", { class: "fill" });
  fill.style.width = `${pct.toFixed(1)}%`;
  return h(
    "div",
    { class: "quota-row" },
    h("span", { class: "quota-label" }, label),
    h("meter", { min: 0, max: max || 1, value: Math.min(used, max || 1), high: (max || 1) * 0.8, optimum: 0, "aria-label": `${label}: ${fmt(used)} of ${fmt(max)}` }),
    h("span", { class: `quota-bar ${level}`, "aria-hidden": "true" }, fill),
    h("span", { class: "quota-value" }, `${fmt(used)} / ${fmt(max)}`),
  );
}

/** renderQuota draws bars for every limit of every scope. */
export function renderQuota(el: HTMLElement, list: Scope[], sessions: Session[]): void {
  if (!list.length) {
    replace(el, h("p", { class: "muted" }, "No resource policy limits your sessions."));
    return;
  }
  const drawn = list.map((sc) => {
      const u = usage(sessions, sc.matches);
      const p = sc.policy;
      const rows: HTMLElement[] = [];
      if (p.max_concurrent_sessions != null) rows.push(bar("Sessions", u.sessions, p.max_concurrent_sessions));
      if (p.max_pending_sessions != null) rows.push(bar("Waiting", u.pending, p.max_pending_sessions));
      if (p.max_cpus != null) rows.push(bar("CPUs", u.cpus, p.max_cpus));
      if (p.max_memory_mb != null) rows.push(bar("Memory", u.memory_mb, p.max_memory_mb, mib));
      for (const [typ, max] of Object.entries(p.max_gpus ?? {})) {
        const used = typ === "any" || typ === "" ? Object.values(u.gpus).reduce((a, b) => a + b, 0) : u.gpus[typ] ?? 0;
        rows.push(bar(`GPUs ${typ === "any" || typ === "" ? "(any type)" : typ}`, used, max));
      }
      return rows.length ? h("div", { class: "quota-scope", "data-scope": sc.kind }, h("h3", null, `Limits of ${sc.label}`), rows) : null;
    }).filter((x) => x !== null);
  replace(el, drawn.length ? drawn : h("p", { class: "muted" }, "No resource policy limits your sessions."));
}

/** myProjects are the projects the user may launch in (those the API lists for them). */
export async function myProjects(): Promise<Project[]> {
  return (await listAll<Project>("/api/v1/projects")).filter((p) => p.active);
}

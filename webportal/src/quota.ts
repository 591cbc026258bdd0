// Quota use as admission control counts it, from GET /api/v1/usage: each
// level that can limit the user's sessions (their own, each of their
// projects', their domain's) with its policy and what live sessions hold
// there. Project and domain figures include other members' sessions, since
// those share the limit.
import { get, listAll } from "./api";
import { h, replace } from "./dom";
import { mib } from "./format";
import type { Project, ScopeUsage } from "./types";

/** usage fetches the caller's quota use per level. */
export function usage(signal?: AbortSignal): Promise<ScopeUsage[]> {
  return get<ScopeUsage[]>("/api/v1/usage", { signal });
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

const levelLabel = (u: ScopeUsage, me: string) => (u.scope === "user" ? `you (${u.name || me})` : `${u.scope} ${u.name}`);

/** renderQuota draws a bar for every limit of every level that has a policy. */
export function renderQuota(el: HTMLElement, levels: ScopeUsage[], me: string): void {
  const drawn = levels.flatMap((u) => {
    const p = u.policy;
    if (!p) return [];
    const use = u.in_use;
    const rows: HTMLElement[] = [];
    if (p.max_concurrent_sessions != null) rows.push(bar("Sessions", use.sessions, p.max_concurrent_sessions));
    if (p.max_pending_sessions != null) rows.push(bar("Waiting", use.pending, p.max_pending_sessions));
    if (p.max_cpus != null) rows.push(bar("CPUs", use.cpus, p.max_cpus));
    if (p.max_memory_mb != null) rows.push(bar("Memory", use.memory_mb, p.max_memory_mb, mib));
    // The key "" bounds GPUs of every type together, in policies and in use.
    for (const [typ, max] of Object.entries(p.max_gpus ?? {})) {
      rows.push(bar(typ ? `GPUs ${typ}` : "GPUs (any type)", use.gpus?.[typ] ?? 0, max));
    }
    if (!rows.length) return [];
    return [h("div", { class: "quota-scope", "data-scope": u.scope }, h("h3", null, `Limits of ${levelLabel(u, me)}`), rows)];
  });
  replace(el, drawn.length ? drawn : h("p", { class: "muted" }, "No resource policy limits your sessions."));
}

/** myProjects are the projects the user may launch in (those the API lists for them). */
export async function myProjects(): Promise<Project[]> {
  return (await listAll<Project>("/api/v1/projects")).filter((p) => p.active);
}

// Admin pages: domains, projects and members, users, policies, images with
// labels, scaling groups and presets, the cluster's nodes and partitions
// with what is in use, and the Slurm account sync's plan with an apply
// button (superadmins).
import { ApiError, get, listAll, request } from "../api";
import { busy, card, errorBox, notice, type Page, type PageContext } from "../app";
import { field, h, replace } from "../dom";
import { duration, mib, when } from "../format";
import { bar } from "../quota";
import { imageApps } from "./launch";
import type { ClusterNode, ClusterPartition, Domain, Image, Membership, Policy, Preset, Project, ScalingGroup, SyncChange, SyncOutcome, SyncPlan, User } from "../types";

type Section = { id: string; label: string; superadmin?: boolean; render(el: HTMLElement, ctx: PageContext): Promise<void> };

const sections: Section[] = [
  { id: "projects", label: "Projects & members", render: projects },
  { id: "domains", label: "Domains", render: domains },
  { id: "users", label: "Users", render: users },
  { id: "policies", label: "Policies", render: policies },
  { id: "images", label: "Images", render: images },
  { id: "scaling-groups", label: "Scaling groups", render: scalingGroups },
  { id: "cluster", label: "Cluster", render: cluster },
  { id: "sync", label: "Slurm sync", superadmin: true, render: sync },
];

export const adminPage: Page = {
  title: "Admin",
  async render(main, ctx) {
    const mine = sections.filter((s) => !s.superadmin || ctx.me.role === "superadmin");
    const current = mine.find((s) => s.id === ctx.params.section) ?? mine[0]!;
    const body = h("div", { class: "admin-body" });
    replace(
      main,
      h("h1", null, `Admin: ${current.label}`),
      h("nav", { class: "tabs", "aria-label": "Admin sections" }, h("ul", null, mine.map((s) => h("li", null, h("a", { href: `/admin/${s.id}`, "aria-current": s === current ? "page" : null }, s.label))))),
      body,
    );
    await current.render(body, ctx);
  },
};

/** table renders rows of cells with a header; cells may be nodes. */
function table(cols: string[], rows: (Node | string)[][], attrs: Record<string, string>[] = []): HTMLElement {
  if (!rows.length) return h("p", { class: "empty" }, "Nothing here yet.");
  return h("div", { class: "table-wrap" }, h("table", { class: "table" },
    h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, rows.map((r, i) => h("tr", attrs[i] ?? null, r.map((c) => h("td", null, c)))))));
}

/** form wires a submit handler that shows its refusal in place. */
function form(label: string, fields: HTMLElement[], submit: string, onSubmit: () => Promise<string | void>): HTMLElement {
  const btn = h("button", { type: "submit", class: "primary" }, submit);
  const status = h("div", { class: "status-slot" });
  const f = h("form", { class: "inline-form", "aria-label": label }, fields, btn, status);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    replace(status);
    try {
      const msg = await busy(btn, "Saving…", onSubmit);
      if (msg) replace(status, notice(msg, "success"));
    } catch (err) {
      replace(status, errorBox(err));
    }
  });
  return f;
}

const input = (name: string, attrs: Record<string, string | number | boolean> = {}) => h("input", { name, spellcheck: "false", ...attrs });

async function domains(el: HTMLElement, ctx: PageContext): Promise<void> {
  const list = h("div");
  const draw = async () => {
    const ds = await listAll<Domain>("/api/v1/domains");
    replace(list, table(["Name", "Description", "Active", "Created"], ds.map((d) => [d.name, d.description, d.active ? "yes" : "no", when(d.created_at)])));
  };
  const name = input("name", { required: true, pattern: "[a-z][a-z0-9\\-]*" });
  const desc = input("description");
  replace(el,
    ctx.me.role === "superadmin" ? card("New domain", form("New domain", [field("Name", name), field("Description", desc)], "Create domain", async () => {
      await request("POST", "/api/v1/domains", { name: name.value.trim(), description: desc.value.trim() });
      const n = name.value;
      name.value = desc.value = "";
      await draw();
      return `Domain ${n} created.`;
    })) : null,
    card("Domains", list));
  await draw();
}

async function projects(el: HTMLElement, ctx: PageContext): Promise<void> {
  const list = h("div");
  const membersEl = h("div");
  const ds = await listAll<Domain>("/api/v1/domains");
  const allUsers = await listAll<User>("/api/v1/users");
  const showMembers = async (p: Project) => {
    const path = `${p.domain}/${p.name}`;
    const ms = await listAll<Membership>(`/api/v1/projects/${p.id}/members`);
    const who = h("select", { name: "user", required: true }, allUsers.filter((u) => u.domain === p.domain && !ms.some((m) => m.user_id === u.id)).map((u) => h("option", { value: u.id }, `${u.username}${u.full_name ? ` (${u.full_name})` : ""}`)));
    const role = h("select", { name: "role" }, h("option", { value: "member" }, "member"), h("option", { value: "project-admin" }, "project admin"));
    replace(membersEl, card(`Members of ${path}`,
      table(["User", "Role", ""], ms.map((m) => {
        const rm = h("button", { type: "button", class: "danger small", "aria-label": `Remove ${m.username} from ${path}` }, "Remove");
        rm.addEventListener("click", async () => {
          try {
            await busy(rm, "Removing…", () => request("DELETE", `/api/v1/projects/${p.id}/members/${m.user_id}`));
            await showMembers(p);
          } catch (e) {
            membersEl.prepend(errorBox(e));
          }
        });
        return [m.username, m.role, rm];
      }), ms.map((m) => ({ "data-member": m.username }))),
      form(`Add a member to ${path}`, [field("User", who), field("Role", role)], "Add member", async () => {
        await request("PUT", `/api/v1/projects/${p.id}/members/${who.value}`, { role: role.value });
        await showMembers(p);
        return "";
      })));
    membersEl.querySelector("h2")?.scrollIntoView({ block: "nearest" });
  };
  const draw = async () => {
    const ps = await listAll<Project>("/api/v1/projects");
    replace(list, table(["Project", "Description", "Active", "Created", ""], ps.map((p) => {
      const b = h("button", { type: "button", class: "small", "aria-label": `Members of ${p.domain}/${p.name}` }, "Members");
      b.addEventListener("click", () => void showMembers(p).catch((e) => replace(membersEl, errorBox(e))));
      return [`${p.domain}/${p.name}`, p.description, p.active ? "yes" : "no", when(p.created_at), b];
    }), ps.map((p) => ({ "data-project": `${p.domain}/${p.name}` }))));
    return ps;
  };
  const dom = h("select", { name: "domain", required: true }, ds.map((d) => h("option", { value: d.name, selected: d.id === ctx.me.domain_id }, d.name)));
  const name = input("name", { required: true, pattern: "[a-z][a-z0-9\\-]*" });
  const desc = input("description");
  replace(el,
    card("New project", form("New project", [field("Domain", dom), field("Name", name), field("Description", desc)], "Create project", async () => {
      const p = await request<Project>("POST", "/api/v1/projects", { domain: dom.value, name: name.value.trim(), description: desc.value.trim() });
      name.value = desc.value = "";
      await draw();
      await showMembers(p);
      return `Project ${p.domain}/${p.name} created; the Slurm account follows at the next sync.`;
    })),
    card("Projects", list), membersEl);
  await draw();
}

async function users(el: HTMLElement): Promise<void> {
  const us = await listAll<User>("/api/v1/users");
  replace(el, card("Users", table(["Username", "Name", "UID", "Domain", "Role", "Status"], us.map((u) => [u.username, u.full_name, String(u.uid), u.domain, u.role, u.status]))));
}

async function policies(el: HTMLElement): Promise<void> {
  const [ds, ps, us] = await Promise.all([listAll<Domain>("/api/v1/domains"), listAll<Project>("/api/v1/projects"), listAll<User>("/api/v1/users")]);
  const target = h("select", { name: "target" },
    h("optgroup", { label: "Domains" }, ds.map((d) => h("option", { value: `domain/${d.id}` }, d.name))),
    h("optgroup", { label: "Projects" }, ps.map((p) => h("option", { value: `project/${p.id}` }, `${p.domain}/${p.name}`))),
    h("optgroup", { label: "Users" }, us.map((u) => h("option", { value: `user/${u.id}` }, u.username))));
  const num = (name: string) => input(name, { type: "number", min: 0, inputmode: "numeric" });
  const f = {
    max_cpus: num("max_cpus"), max_memory_mb: num("max_memory_mb"), max_concurrent_sessions: num("max_concurrent_sessions"),
    max_pending_sessions: num("max_pending_sessions"), max_session_lifetime_s: num("max_session_lifetime_s"), idle_timeout_s: num("idle_timeout_s"),
  };
  const gpusIn = input("max_gpus", { placeholder: "a100=4, any=8" });
  const groupsIn = input("allowed_scaling_groups", { placeholder: "cpu, gpu" });
  const state = h("div", { class: "status-slot" });
  const load = async () => {
    replace(state);
    let p: Policy | null = null;
    try {
      p = await get<Policy>(`/api/v1/policies/${target.value}`, { quiet: true });
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
      replace(state, notice("No policy: nothing limits this target beyond its parents."));
    }
    for (const [k, inp] of Object.entries(f)) inp.value = p?.[k as keyof typeof f] != null ? String(p[k as keyof typeof f]) : "";
    gpusIn.value = Object.entries(p?.max_gpus ?? {}).map(([k, v]) => `${k || "any"}=${v}`).join(", ");
    groupsIn.value = (p?.allowed_scaling_groups ?? []).join(", ");
  };
  target.addEventListener("change", () => void load().catch((e) => replace(state, errorBox(e))));
  const save = form("Policy", [
    field("Max CPUs", f.max_cpus), field("Max memory (MiB)", f.max_memory_mb), field("Max sessions at once", f.max_concurrent_sessions),
    field("Max waiting sessions", f.max_pending_sessions), field("Max lifetime (s)", f.max_session_lifetime_s), field("Idle timeout (s)", f.idle_timeout_s),
    field("Max GPUs by type", gpusIn, "type=count, comma-separated; “any” counts every type"), field("Allowed scaling groups", groupsIn, "empty: all"),
  ], "Save policy", async () => {
    const [scope] = target.value.split("/");
    const body: Record<string, unknown> = { scope };
    for (const [k, inp] of Object.entries(f)) if (inp.value !== "") body[k] = Number(inp.value);
    const gpus = Object.fromEntries(gpusIn.value.split(",").map((x) => x.trim()).filter(Boolean).map((x) => { const [k, v] = x.split("="); return [k!.trim() === "any" ? "" : k!.trim(), Number(v)]; }));
    if (Object.keys(gpus).length) body.max_gpus = gpus;
    const groups = groupsIn.value.split(",").map((x) => x.trim()).filter(Boolean);
    if (groups.length) body.allowed_scaling_groups = groups;
    await request("PUT", `/api/v1/policies/${target.value}`, body);
    return "Policy saved; Slurm gets the same limits at the next sync.";
  });
  const del = h("button", { type: "button", class: "danger" }, "Remove policy");
  del.addEventListener("click", async () => {
    try {
      await busy(del, "Removing…", () => request("DELETE", `/api/v1/policies/${target.value}`));
      await load();
    } catch (e) {
      replace(state, errorBox(e));
    }
  });
  replace(el, card("Resource policy", field("Applies to", target), state, save, del));
  await load();
}

async function images(el: HTMLElement, ctx: PageContext): Promise<void> {
  const list = h("div");
  const draw = async () => {
    const is = await listAll<Image>("/api/v1/images");
    replace(list, table(["Image", "Runtime", "Location", "Apps", "Labels"], is.map((i) => [
      `${i.name}:${i.tag}`, i.runtime, h("code", null, i.location), imageApps(i).join(", ") || "—",
      h("ul", { class: "labels" }, Object.entries(i.labels ?? {}).map(([k, v]) => h("li", null, h("code", null, `${k}=${v}`)))),
    ])));
  };
  const name = input("name", { required: true });
  const tag = input("tag", { value: "latest" });
  const loc = input("location", { required: true, placeholder: "/images/pytorch.sif" });
  const rt = h("select", { name: "runtime" }, ["apptainer", "charliecloud", "none"].map((r) => h("option", { value: r }, r)));
  replace(el,
    ctx.me.role === "superadmin" ? card("Add an image", form("Add an image", [field("Name", name), field("Tag", tag), field("Location", loc), field("Runtime", rt)], "Add image", async () => {
      await request("POST", "/api/v1/images", { name: name.value.trim(), tag: tag.value.trim() || "latest", location: loc.value.trim(), runtime: rt.value });
      await draw();
      return "Image added; its labels were read from the image.";
    })) : null,
    card("Image catalogue", list));
  await draw();
}

async function scalingGroups(el: HTMLElement): Promise<void> {
  const [gs, ps] = await Promise.all([listAll<ScalingGroup>("/api/v1/scaling-groups"), listAll<Preset>("/api/v1/presets")]);
  replace(el,
    card("Scaling groups", table(["Name", "Description", "Cluster", "Partitions", "GPU types", "Runtime"], gs.map((g) => [g.name, g.description, g.cluster, g.partitions.join(", "), (g.gpu_types ?? []).join(", ") || "—", g.runtime]))),
    card("Resource presets", table(["Name", "CPUs", "Memory", "GPUs", "Description"], ps.map((p) => [p.name, String(p.cpus), mib(p.memory_mb), p.gpus ? `${p.gpus} × ${p.gpu_type || "any"}` : "—", p.description]))));
}

/** gpuBars shows GPUs by type as used-of-total bars; "" is GPUs without a type. */
function gpuBars(total: Record<string, number> = {}, used: (typ: string) => number): HTMLElement | string {
  const types = Object.keys(total).sort();
  if (!types.length) return "—";
  return h("div", { class: "bars" }, types.map((t) => bar(t || "GPU", used(t), total[t]!)));
}

async function cluster(el: HTMLElement, ctx: PageContext): Promise<void> {
  const partsEl = h("div", { "aria-live": "polite" });
  const nodesEl = h("div", { "aria-live": "polite" });
  const stamp = h("p", { class: "muted" });
  const draw = async () => {
    const [parts, nodes] = await Promise.all([get<ClusterPartition[]>("/api/v1/cluster/partitions"), get<ClusterNode[]>("/api/v1/cluster/nodes")]);
    replace(partsEl, table(["Partition", "State", "CPUs in use", "GPUs in use", "Nodes", "Time limit", "Scaling groups"], parts.map((p) => [
      h("span", null, p.name, p.default ? h("span", { class: "tag" }, "default") : null),
      p.state.toLowerCase(),
      bar("CPUs", p.total_cpus - p.free_cpus, p.total_cpus),
      gpuBars(Object.fromEntries(Object.entries(p.gpus ?? {}).map(([t, g]) => [t, g.total])), (t) => p.gpus![t]!.total - p.gpus![t]!.free),
      p.nodes.join(", "),
      p.max_time_s ? duration(p.max_time_s) : "unlimited",
      (p.scaling_groups ?? []).join(", ") || "—",
    ]), parts.map((p) => ({ "data-partition": p.name }))));
    replace(nodesEl, table(["Node", "State", "CPUs", "Memory", "GPUs", "Partitions"], nodes.map((n) => [
      n.name,
      h("span", null, [n.state.toLowerCase(), ...(n.flags ?? []).map((f) => f.toLowerCase())].join(", "), n.reason ? h("small", { class: "hint" }, n.reason) : null),
      bar("CPUs", n.alloc_cpus, n.cpus),
      bar("Memory", n.alloc_memory_mb, n.memory_mb, mib),
      gpuBars(n.gpus, (t) => n.gpus_used?.[t] ?? 0),
      n.partitions.join(", "),
    ]), nodes.map((n) => ({ "data-node": n.name }))));
    stamp.textContent = `As Slurm reported it at ${when(new Date().toISOString())}; refreshed every 15 s while this page is open.`;
  };
  replace(el, card("Partitions", partsEl), card("Nodes", nodesEl), stamp);
  await draw();
  const tick = setInterval(() => void draw().catch(() => {}), 15_000);
  ctx.signal.addEventListener("abort", () => clearInterval(tick));
}

/** changesTable lists sync changes, each row marked with its kind, account and user for tests and styling. */
function changesTable(changes: SyncChange[], errors?: string[]): HTMLElement {
  const cols = ["Change", "Account", "User", "What changes"];
  if (errors) cols.push("Error");
  return table(cols, changes.map((c, i) => {
    const row: (Node | string)[] = [h("span", { class: `tag ${c.kind.split(" ")[0]}` }, c.kind), h("code", null, c.account), c.user ?? "", c.summary || "—"];
    if (errors) row.push(errors[i] ?? "");
    return row;
  }), changes.map((c) => ({ "data-change": c.kind, "data-account": c.account, "data-user": c.user ?? "" })));
}

async function sync(el: HTMLElement): Promise<void> {
  const planEl = h("div", { "aria-live": "polite" });
  const result = h("div", { class: "status-slot" });
  const apply = h("button", { type: "button", class: "primary" }, "Apply plan");
  const refresh = h("button", { type: "button" }, "Refresh plan");
  let plan: SyncPlan = { changes: [] };
  const draw = async () => {
    plan = await get<SyncPlan>("/api/v1/sync/plan");
    apply.disabled = !plan.changes.length;
    replace(planEl,
      plan.changes.length
        ? [h("p", null, `${plan.changes.length} change${plan.changes.length === 1 ? "" : "s"} would bring Slurm in line with the database:`), changesTable(plan.changes)]
        : notice("No drift: Slurm's accounts and associations match the database.", "success"),
      (plan.conflicts ?? []).length
        ? h("div", { class: "alert warn", role: "status" }, h("p", null, "Conflicts the sync leaves alone until a person resolves them:"),
          h("ul", null, plan.conflicts!.map((c) => h("li", null, h("code", null, c.account), `: ${c.reason}`))))
        : null);
  };
  refresh.addEventListener("click", async () => {
    try {
      await busy(refresh, "Reading Slurm…", draw);
    } catch (e) {
      replace(result, errorBox(e));
    }
  });
  apply.addEventListener("click", async () => {
    const deletes = plan.changes.filter((c) => c.kind.startsWith("delete")).length;
    if (deletes && !confirm(`The plan deletes ${deletes} Slurm account${deletes === 1 ? "" : "s"} or association${deletes === 1 ? "" : "s"}. Apply it?`)) return;
    replace(result);
    try {
      const out = await busy(apply, "Applying…", () => request<SyncOutcome>("POST", "/api/v1/sync/apply", {}));
      const ok = notice(`Applied ${out.applied} change${out.applied === 1 ? "" : "s"} to Slurm${out.failed.length ? `; ${out.failed.length} failed` : ""}.`, out.failed.length ? "warn" : "success");
      ok.dataset.applied = String(out.applied);
      const key = (c: SyncChange) => `${c.kind}|${c.account}|${c.user ?? ""}`;
      const failed = new Set(out.failed.map((f) => key(f.change)));
      const done = (out.plan?.changes ?? []).filter((c) => !failed.has(key(c)));
      replace(result, ok, done.length ? h("details", { class: "applied", open: true }, h("summary", null, "What was applied"), changesTable(done)) : null, out.failed.length
        ? h("div", { class: "alert error", role: "alert", "data-failed": out.failed.length }, h("p", null, "These changes did not happen (those that depend on a failed one are skipped):"),
          changesTable(out.failed.map((f) => f.change), out.failed.map((f) => f.error)))
        : null);
      await draw();
    } catch (e) {
      replace(result, errorBox(e));
    }
  });
  replace(el, card("Plan and drift",
    h("p", { class: "muted" }, "What the account sync would change in Slurm (accounts for domains and projects, associations for members, policy limits). Reading the plan changes nothing."),
    planEl, h("div", { class: "actions" }, apply, refresh), result));
  await draw();
}

// The launch form: image (with the apps its labels declare), scaling group,
// a preset or custom resources limited to what the scaling group's largest
// node offers and the quotas leave (limits.ts), project, vfolders to mount, command and lifetime. A refusal (quota, validation) is shown with
// the limit it names.
import { ApiError, get, listAll, request } from "../api";
import { busy, card, errorBox, type Page } from "../app";
import { field, h, replace, uid } from "../dom";
import { duration, mib } from "../format";
import { describe, fmtMiB, launchLimits, type Bound } from "../limits";
import { myProjects, usage } from "../quota";
import type { ClusterNode, ClusterPartition, Image, Preset, ScalingGroup, ScopeUsage, Session, VFolder } from "../types";

const servicePrefix = "org.slurmgate.service.";

/** apps lists the services an image's labels declare (org.slurmgate.service.NAME=PROTO:PORT). */
export function imageApps(img: Image): string[] {
  return Object.keys(img.labels ?? {})
    .filter((k) => k.startsWith(servicePrefix) && !k.slice(servicePrefix.length).includes("."))
    .map((k) => k.slice(servicePrefix.length))
    .sort();
}

export const launchPage: Page = {
  title: "Launch",
  async render(main, ctx) {
    const [images, groups, presets, projects, folders, nodes, partitions, levels] = await Promise.all([
      listAll<Image>("/api/v1/images"),
      listAll<ScalingGroup>("/api/v1/scaling-groups"),
      listAll<Preset>("/api/v1/presets"),
      myProjects(),
      // Without storage hosts the gateway answers 503; the form works without folders.
      listAll<VFolder>("/api/v1/vfolders").catch(() => [] as VFolder[]),
      // Without Slurm or usage figures the form still works, unbounded; the gateway decides.
      get<ClusterNode[]>("/api/v1/cluster/nodes").catch(() => [] as ClusterNode[]),
      get<ClusterPartition[]>("/api/v1/cluster/partitions").catch(() => [] as ClusterPartition[]),
      usage().catch(() => [] as ScopeUsage[]),
    ]);
    const status = h("div", { class: "status-slot" });
    const opt = (value: string, label: string) => h("option", { value }, label);

    const name = h("input", { name: "name", maxlength: 64, placeholder: "optional", spellcheck: "false" });
    const typeBatch = h("input", { type: "radio", name: "type", value: "batch", id: "type-batch", checked: true });
    const typeInter = h("input", { type: "radio", name: "type", value: "interactive", id: "type-interactive" });
    const image = h("select", { name: "image", required: true }, images.map((i) => opt(`${i.name}:${i.tag}`, `${i.name}:${i.tag}`)));
    const appsEl = h("p", { class: "hint", "aria-live": "polite" });
    const group = h("select", { name: "scaling_group", required: true }, groups.map((g) => opt(g.name, g.description ? `${g.name} — ${g.description}` : g.name)));
    const preset = h("select", { name: "preset" }, opt("", "Custom resources"), presets.map((p) => opt(p.name, `${p.name} — ${p.cpus} CPU, ${mib(p.memory_mb)}${p.gpus ? `, ${p.gpus} × ${p.gpu_type || "GPU"}` : ""}`)));
    const cpus = h("input", { name: "cpus", type: "number", min: 1, value: 1, required: true, inputmode: "numeric" });
    const mem = h("input", { name: "memory_gib", type: "number", min: 0.125, step: 0.125, value: 1, required: true, inputmode: "decimal" });
    const gpuType = h("select", { name: "gpu_type" });
    const gpus = h("input", { name: "gpus", type: "number", min: 0, value: 0, inputmode: "numeric" });
    const project = h("select", { name: "project", required: true }, projects.map((p) => opt(`${p.domain}/${p.name}`, `${p.domain}/${p.name}`)));
    const command = h("textarea", { name: "command", rows: 4, spellcheck: "false", placeholder: "python train.py --epochs 10" });
    const hours = h("input", { name: "lifetime_h", type: "number", min: 0, max: 720, value: 1, inputmode: "numeric" });
    const minutes = h("input", { name: "lifetime_min", type: "number", min: 0, max: 59, value: 0, inputmode: "numeric" });
    const submit = h("button", { type: "submit", class: "primary" }, "Launch");
    // Each resource field's limit in words, read out with the field.
    const hintFor = (control: HTMLElement) => {
      const el = h("small", { id: uid("limit"), class: "hint limit", "aria-live": "polite" });
      control.setAttribute("aria-describedby", el.id);
      return el;
    };
    const cpusHint = hintFor(cpus);
    const memHint = hintFor(mem);
    const gpusHint = hintFor(gpus);
    const blockedEl = h("div", { id: uid("blocked"), class: "status-slot", role: "status" });

    // One row per ready folder: mount it or not, where, and read-only. A
    // folder shared read-only can only be mounted read-only; the gateway
    // refuses rather than downgrades, so the form never asks otherwise.
    const mountRows = folders
      .filter((f) => f.status === "ready")
      .map((f, i) => {
        const on = h("input", { type: "checkbox", "aria-label": `Mount ${f.name}` });
        const target = h("input", { value: `/home/work/${f.name}`, spellcheck: "false", "aria-label": `Mount point of ${f.name}` });
        const ro = h("input", { type: "checkbox", checked: f.access === "ro", disabled: f.access === "ro", "aria-label": `Mount ${f.name} read-only` });
        const owner = f.owner_kind === "project" ? ` (project ${f.owner})` : f.access === "owner" ? "" : ` (${f.owner}'s, shared ${f.access})`;
        const row = h("div", { class: "mount-row", style: "display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center;margin-top:.4rem" },
          h("label", { class: "radio" }, on, ` ${f.name}${owner}`), target, h("label", { class: "radio" }, ro, " read-only"));
        const name = (k: number | string) => {
          on.name = `mounts[${k}].vfolder`;
          target.name = `mounts[${k}].target`;
          ro.name = `mounts[${k}].read_only`;
        };
        name(`unchosen-${i}`);
        return { f, on, target, ro, row, name };
      });
    const mountsEl = mountRows.length
      ? h("fieldset", null, h("legend", null, "Folders"),
          h("small", { class: "hint" }, "Mounted folders appear under /home/work in container images; writes land in the folder as you."),
          mountRows.map((m) => m.row))
      : null;

    const custom = h("fieldset", { class: "inline" }, h("legend", null, "Resources"), withHint(field("CPUs", cpus), cpusHint), withHint(field("Memory (GiB)", mem), memHint), field("GPU type", gpuType), withHint(field("GPUs", gpus), gpusHint));
    const gpuFields = [gpuType.parentElement!, gpus.parentElement!];

    const syncImage = () => {
      const img = images.find((i) => `${i.name}:${i.tag}` === image.value);
      const apps = img ? imageApps(img) : [];
      appsEl.textContent = apps.length ? `Apps: ${apps.join(", ")} (open them from the session page once it runs).` : "This image declares no apps; use the terminal or a batch command.";
    };
    // GPU types are those the scaling group's partitions offer; none → no GPU fields.
    const syncGroup = () => {
      const g = groups.find((x) => x.name === group.value);
      const types = g?.gpu_types ?? [];
      replace(gpuType, types.length > 1 ? opt("", "any") : null, types.map((t) => opt(t, t)));
      for (const f of gpuFields) f.hidden = types.length === 0;
      if (!types.length) gpus.value = "0";
    };
    // The limits follow the group, the project and the GPU type (and a
    // preset's asks); an exhausted quota disables Launch with the reason.
    const syncLimits = () => {
      const lim = launchLimits({
        group: groups.find((x) => x.name === group.value), nodes, partitions, levels, project: project.value, gpuType: gpuType.value,
      });
      const apply = (input: HTMLInputElement, hint: HTMLElement, b: Bound, toField: (n: number) => number, fmt?: (n: number) => string) => {
        if (b.max === Infinity) input.removeAttribute("max");
        else input.max = String(toField(b.max));
        input.dataset.limit = b.max === Infinity ? "" : String(b.max);
        hint.textContent = describe(b, fmt);
      };
      apply(cpus, cpusHint, lim.cpus, (n) => n);
      apply(mem, memHint, lim.memoryMB, (mb) => Math.floor(mb / 128) / 8, fmtMiB); // the field's step is 1/8 GiB
      apply(gpus, gpusHint, lim.gpus, (n) => n);
      const blocked = [...lim.blocked];
      const p = presets.find((x) => x.name === preset.value);
      if (p) {
        if (p.cpus > lim.cpus.max) blocked.push(`preset ${p.name} asks for ${p.cpus} CPUs; ${describe(lim.cpus)}`);
        if (p.memory_mb > lim.memoryMB.max) blocked.push(`preset ${p.name} asks for ${fmtMiB(p.memory_mb)}; ${describe(lim.memoryMB, fmtMiB)}`);
        if (p.gpus > lim.gpus.max) blocked.push(`preset ${p.name} asks for ${p.gpus} GPUs; ${describe(lim.gpus)}`);
      }
      submit.disabled = blocked.length > 0;
      if (blocked.length) submit.setAttribute("aria-describedby", blockedEl.id);
      else submit.removeAttribute("aria-describedby");
      replace(blockedEl, blocked.length
        ? h("div", { class: "alert error", "data-blocked": "" }, h("strong", null, "No session can start now: "), blocked.join("; "), ". Ask your project's administrator, or end a running session first.")
        : null);
    };
    const syncPreset = () => {
      const p = presets.find((x) => x.name === preset.value);
      custom.disabled = !!p;
      if (p) {
        cpus.value = String(p.cpus);
        mem.value = String(p.memory_mb / 1024);
        gpus.value = String(p.gpus);
        if (p.gpu_type) gpuType.value = p.gpu_type;
        if (p.time_limit_s) {
          hours.value = String(Math.floor(p.time_limit_s / 3600));
          minutes.value = String(Math.floor((p.time_limit_s % 3600) / 60));
        }
      }
    };
    const syncType = () => {
      command.required = typeBatch.checked;
      command.placeholder = typeBatch.checked ? "python train.py --epochs 10" : "optional: runs beside the apps and the terminal";
    };
    image.addEventListener("change", syncImage);
    group.addEventListener("change", syncGroup);
    preset.addEventListener("change", () => {
      syncPreset();
      syncLimits();
    });
    group.addEventListener("change", syncLimits);
    gpuType.addEventListener("change", syncLimits);
    project.addEventListener("change", syncLimits);
    typeBatch.addEventListener("change", syncType);
    typeInter.addEventListener("change", syncType);

    const form = h(
      "form",
      { class: "stack launch", novalidate: false },
      h("fieldset", { class: "inline" }, h("legend", null, "Kind"),
        h("label", { for: "type-batch", class: "radio" }, typeBatch, " Batch — runs a command and ends"),
        h("label", { for: "type-interactive", class: "radio" }, typeInter, " Interactive — apps and a terminal")),
      field("Name", name),
      field("Image", image),
      appsEl,
      field("Scaling group", group),
      field("Preset", preset, "A preset fills in resources and lifetime; choose “Custom resources” to set them yourself."),
      custom,
      field("Project", project, "The Slurm account the session is charged to."),
      mountsEl,
      field("Command", command),
      h("fieldset", { class: "inline" }, h("legend", null, "Lifetime"), field("Hours", hours), field("Minutes", minutes)),
      status,
      blockedEl,
      h("div", { class: "actions" }, submit, h("a", { href: "/", class: "button" }, "Cancel")),
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      replace(status);
      const lifetime = (Number(hours.value) || 0) * 3600 + (Number(minutes.value) || 0) * 60;
      const body: Record<string, unknown> = {
        type: typeBatch.checked ? "batch" : "interactive",
        name: name.value.trim() || undefined,
        image: image.value,
        scaling_group: group.value,
        project: project.value || undefined,
        command: command.value.trim() || undefined,
        time_limit_s: lifetime || undefined,
      };
      const chosen = mountRows.filter((m) => m.on.checked);
      // Named as the gateway names the fields it refuses (mounts[1].target), so a refusal focuses its control.
      mountRows.forEach((m, i) => m.name(`unchosen-${i}`));
      chosen.forEach((m, k) => m.name(k));
      const mounts = chosen.map((m) => ({ vfolder: m.f.id, target: m.target.value.trim(), read_only: m.ro.checked }));
      if (mounts.length) body.mounts = mounts;
      if (preset.value) body.preset = preset.value;
      else {
        body.cpus = Number(cpus.value);
        body.memory_mb = Math.round(Number(mem.value) * 1024);
        body.gpus = Number(gpus.value) || undefined;
        body.gpu_type = Number(gpus.value) ? gpuType.value || undefined : undefined;
      }
      try {
        // One key per attempt: a retried click after a network error is not a second session.
        const key = form.dataset.key ?? (form.dataset.key = crypto.randomUUID());
        const s = await busy(submit, "Launching…", () => request<Session>("POST", "/api/v1/sessions", body, { headers: { "Idempotency-Key": key } }));
        ctx.navigate(`/sessions/${s.id}`);
      } catch (err) {
        if (err instanceof ApiError && err.status < 500) delete form.dataset.key; // a refusal: the next try is a new request
        status.append(errorBox(err));
        const f = err instanceof ApiError ? err.problem.field : undefined;
        const bad = f ? form.querySelector<HTMLElement>(`[name="${CSS.escape(f)}"]`) : null;
        (bad ?? status).setAttribute("tabindex", bad ? "0" : "-1");
        (bad ?? status).focus();
      }
    });

    replace(
      main,
      h("h1", null, "Launch a session"),
      !images.length || !groups.length
        ? errorBox(new Error(`The catalogue has no ${!images.length ? "images" : "scaling groups"} yet; ask an administrator to add one.`))
        : card("New session", form),
      h("p", { class: "muted" }, `Lifetime is the session's Slurm time limit${presets.some((p) => p.time_limit_s) ? "; presets may set one" : ""}. Default when empty: the scaling group's, e.g. ${duration(3600)}.`),
    );
    syncImage();
    syncGroup();
    syncType();
    syncLimits();
  },
};

/** withHint appends a field's limit hint under its control. */
function withHint(f: HTMLElement, hint: HTMLElement): HTMLElement {
  f.append(hint);
  return f;
}

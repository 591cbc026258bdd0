// Virtual folders: the list (with usage against each folder's quota),
// creating one, invitations to answer; and one folder's page — a file
// browser with pagination, new directories, rename, delete, downloads
// (directories as zip), drag-and-drop uploads with progress and resume, and
// sharing for the folder's owner.
import { ApiError, download, listAll, request } from "../api";
import { busy, card, errorBox, notice, type Page, type PageContext } from "../app";
import { field, h, replace } from "../dom";
import { bytes, when } from "../format";
import { bar, myProjects } from "../quota";
import { forget, unfinished, upload, type Progress } from "../upload";
import type { FileEntry, FilePage, VFolder, VFolderHost, VFolderShare } from "../types";

const accessWords: Record<string, string> = { ro: "read only", rw: "read and write", "rw-delete": "read, write and delete", owner: "owner" };

/** usageCell is a folder's usage as a bar against its quota, or in words when it has none. */
function usageCell(v: VFolder): HTMLElement {
  if (v.quota_bytes == null) return h("span", null, `${bytes(v.usage_bytes)} (no quota)`);
  return bar("Used", v.usage_bytes, v.quota_bytes, bytes);
}

export const vfoldersPage: Page = {
  title: "Folders",
  async render(main) {
    const listEl = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading folders…"));
    const invitesEl = h("div");
    const [hosts, projects] = await Promise.all([request<VFolderHost[]>("GET", "/api/v1/vfolder-hosts"), myProjects()]);

    const draw = async () => {
      const vs = await listAll<VFolder>("/api/v1/vfolders");
      replace(listEl, !vs.length ? h("p", { class: "empty" }, "No folders yet: create one above, then upload files to it.")
        : h("div", { class: "table-wrap" }, h("table", { class: "table" },
          h("thead", null, h("tr", null, ["Folder", "Owner", "Your access", "Host", "Usage"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", null, vs.map((v) => h("tr", { "data-vfolder": v.name },
            h("td", null, h("a", { href: `/vfolders/${v.id}` }, v.name), v.status !== "ready" ? h("small", { class: "hint" }, v.status_message || v.status) : null),
            h("td", null, v.owner_kind === "project" ? `project ${v.owner}` : v.owner),
            h("td", null, accessWords[v.access] ?? v.access),
            h("td", null, v.host),
            h("td", { class: "usage-cell" }, usageCell(v))))))));
    };
    const drawInvites = async () => {
      const inv = await request<VFolderShare[]>("GET", "/api/v1/vfolder-invitations");
      if (!inv.length) return replace(invitesEl);
      replace(invitesEl, card("Invitations", h("ul", { class: "invites" }, inv.map((s) => {
        const answer = (accept: boolean) => async (e: Event) => {
          try {
            await busy(e.currentTarget as HTMLButtonElement, accept ? "Accepting…" : "Declining…", () => request("POST", `/api/v1/vfolder-invitations/${s.vfolder_id}`, { accept }));
            await Promise.all([drawInvites(), draw()]);
          } catch (err) {
            invitesEl.append(errorBox(err));
          }
        };
        return h("li", { "data-invitation": s.vfolder },
          h("span", null, `${s.owner} invites you to `, h("strong", null, s.vfolder), ` (${accessWords[s.permission] ?? s.permission})`),
          h("span", { class: "actions" },
            h("button", { type: "button", class: "primary small", onclick: answer(true), "aria-label": `Accept ${s.vfolder}` }, "Accept"),
            h("button", { type: "button", class: "small", onclick: answer(false), "aria-label": `Decline ${s.vfolder}` }, "Decline")));
      }))));
    };

    const name = h("input", { name: "name", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}", spellcheck: "false", autocomplete: "off" });
    const host = h("select", { name: "host", required: true }, hosts.map((x) => h("option", { value: x.name }, x.name)));
    const owner = h("select", { name: "project" }, h("option", { value: "" }, "Me"), projects.map((p) => h("option", { value: `${p.domain}/${p.name}` }, `project ${p.domain}/${p.name}`)));
    const quota = h("input", { name: "quota_mib", type: "number", min: 1, step: 1, inputmode: "numeric", placeholder: "policy default" });
    const status = h("div", { class: "status-slot" });
    const submit = h("button", { type: "submit", class: "primary" }, "Create folder");
    const form = h("form", { class: "inline-form", "aria-label": "New folder" },
      field("Name", name), field("Host", host), field("Owner", owner, "A project folder is shared with the project's members."),
      field("Quota (MiB)", quota), submit, status);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      replace(status);
      try {
        const body: Record<string, unknown> = { name: name.value.trim(), host: host.value };
        if (owner.value) body.project = owner.value;
        if (quota.value) body.quota_bytes = Math.round(Number(quota.value) * 1024 * 1024);
        const v = await busy(submit, "Creating…", () => request<VFolder>("POST", "/api/v1/vfolders", body));
        name.value = quota.value = "";
        replace(status, notice(`Folder ${v.name} created.`, "success"));
        await draw();
      } catch (err) {
        replace(status, errorBox(err));
      }
    });

    replace(main,
      h("h1", null, "Folders"),
      invitesEl,
      hosts.length ? card("New folder", form) : errorBox(new Error("This gateway has no storage hosts configured; an administrator adds them under [[vfolder.hosts]].")),
      card("Your folders", listEl));
    await Promise.all([draw(), drawInvites()]);
  },
};

/** parent is the directory holding a path ("." for top-level entries). */
const parent = (p: string) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : ".");
const join = (dir: string, name: string) => (dir === "." || dir === "" ? name : `${dir}/${name}`);
const canWrite = (v: VFolder) => v.access !== "ro";
const canDelete = (v: VFolder) => v.access === "rw-delete" || v.access === "owner";

/** pageSize is the directory listing's page; the API allows up to 5000. */
const pageSize = 100;

export const vfolderPage: Page = {
  title: "Folder",
  async render(main, ctx) {
    const id = ctx.params.id!;
    const base = `/api/v1/vfolders/${encodeURIComponent(id)}`;
    let v = await request<VFolder>("GET", base);
    document.title = `${v.name} · Folders · Slurmgate`;
    const dir = ctx.query.get("path") || ".";
    const after = ctx.query.get("after") ?? "";
    const here = (p: string, a = "") => `/vfolders/${id}?${new URLSearchParams({ ...(p !== "." ? { path: p } : {}), ...(a ? { after: a } : {}) })}`.replace(/\?$/, "");

    const status = h("div", { class: "status-slot" });
    const filesEl = h("div", { "aria-live": "polite", "aria-busy": "true" });
    const usageEl = h("div");
    const uploadsEl = h("ul", { class: "uploads", "aria-label": "Uploads" });
    const fail = (e: unknown) => replace(status, errorBox(e));

    const drawUsage = () => replace(usageEl, usageCell(v));
    const refreshFolder = async () => {
      v = await request<VFolder>("GET", base);
      drawUsage();
    };

    const drawFiles = async () => {
      const q = new URLSearchParams({ path: dir, limit: String(pageSize) });
      if (after) q.set("after", after);
      const pg = await request<FilePage>("GET", `${base}/files?${q}`);
      filesEl.setAttribute("aria-busy", "false");
      const rows = pg.items.map((e) => fileRow(e));
      replace(filesEl,
        rows.length ? h("div", { class: "table-wrap" }, h("table", { class: "table files" },
          h("thead", null, h("tr", null, ["Name", "Size", "Modified", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", null, rows))) : h("p", { class: "empty" }, after ? "No more entries." : "This directory is empty. Drop files here or choose them to upload."),
        after || pg.next ? h("nav", { class: "pager", "aria-label": "Pages of this directory" },
          after ? h("a", { href: here(dir), class: "button small" }, "First page") : null,
          pg.next ? h("a", { href: here(dir, pg.next), class: "button small", rel: "next" }, "Next page") : null) : null);
    };

    const fileRow = (e: FileEntry): HTMLElement => {
      const nameCell = h("td", null, e.type === "dir" ? h("a", { href: here(e.path), class: "dir" }, `${e.name}/`) : h("span", null, e.name));
      const actions = h("td", { class: "row-actions" });
      const row = h("tr", { "data-file": e.name, "data-type": e.type }, nameCell, h("td", null, e.type === "dir" ? "—" : bytes(e.size)), h("td", null, when(e.mtime)), actions);
      const dl = h("button", { type: "button", class: "small", "aria-label": `Download ${e.name}${e.type === "dir" ? " as zip" : ""}` }, e.type === "dir" ? "Zip" : "Download");
      dl.addEventListener("click", () => void download(`${base}/download?path=${encodeURIComponent(e.path)}`, e.type === "dir" ? `${e.name}.zip` : e.name).catch(fail));
      actions.append(dl);
      if (canDelete(v)) {
        const rn = h("button", { type: "button", class: "small", "aria-label": `Rename ${e.name}` }, "Rename");
        rn.addEventListener("click", () => {
          const input = h("input", { name: "new_name", value: e.name, "aria-label": `New name for ${e.name}`, spellcheck: "false" });
          const f = h("form", { class: "rename" }, input, h("button", { type: "submit", class: "primary small" }, "Save"), h("button", { type: "button", class: "small", onclick: () => void drawFiles() }, "Cancel"));
          f.addEventListener("submit", async (ev) => {
            ev.preventDefault();
            try {
              await request("POST", `${base}/move`, { from: e.path, to: join(parent(e.path), input.value.trim()) });
              replace(status);
              await drawFiles();
            } catch (err) {
              fail(err);
            }
          });
          replace(nameCell, f);
          input.focus();
          input.select();
        });
        const del = h("button", { type: "button", class: "danger small", "aria-label": `Delete ${e.name}` }, "Delete");
        del.addEventListener("click", async () => {
          const what = e.type === "dir" ? `the directory ${e.path} and everything in it` : e.path;
          if (!confirm(`Delete ${what}? This cannot be undone.`)) return;
          const q = new URLSearchParams({ path: e.path });
          if (e.type === "dir") q.set("recursive", "true"), q.set("confirm", e.path);
          try {
            await busy(del, "Deleting…", () => request("DELETE", `${base}/files?${q}`));
            replace(status, notice(`Deleted ${e.path}.`, "success"));
            await Promise.all([drawFiles(), refreshFolder()]);
          } catch (err) {
            fail(err);
          }
        });
        actions.append(rn, del);
      }
      return row;
    };

    // Uploads: each file gets a row with a progress bar; a failed one can be
    // resumed from the bytes the gateway already has.
    const startUpload = (file: File) => {
      const dest = join(dir, file.name);
      const ctl = new AbortController();
      ctx.signal.addEventListener("abort", () => ctl.abort(), { once: true });
      const prog = h("progress", { max: file.size || 1, value: 0, "aria-label": `Uploading ${file.name}` });
      const text = h("span", { class: "upload-text" }, "Starting…");
      const retry = h("button", { type: "button", class: "small", hidden: true, "aria-label": `Resume upload of ${file.name}` }, "Resume");
      const cancel = h("button", { type: "button", class: "small", "aria-label": `Cancel upload of ${file.name}` }, "Cancel");
      const li = h("li", { class: "upload", "data-upload": file.name, "data-state": "running" }, h("strong", null, dest), retry, cancel, prog, text);
      uploadsEl.append(li);
      const run = async (c: AbortController) => {
        li.dataset.state = "running";
        retry.hidden = true;
        let t0 = performance.now();
        let first = -1;
        try {
          await upload(id, dest, file, (p: Progress) => {
            if (first < 0) (first = p.sent), (t0 = performance.now());
            prog.value = p.sent;
            const rate = (p.sent - first) / Math.max(0.001, (performance.now() - t0) / 1000);
            text.textContent = `${bytes(p.sent)} of ${bytes(p.total)} (${Math.floor((p.sent / (p.total || 1)) * 100)}%)` +
              (rate > 0 ? ` · ${bytes(Math.round(rate))}/s` : "") + (p.resumedFrom ? ` · resumed at ${bytes(p.resumedFrom)}` : "");
            if (p.resumedFrom) li.dataset.resumedFrom = String(p.resumedFrom);
          }, c.signal);
          prog.value = file.size || 1;
          li.dataset.state = "done";
          text.textContent = `Uploaded ${bytes(file.size)}${li.dataset.resumedFrom ? ` (resumed at ${bytes(Number(li.dataset.resumedFrom))})` : ""}.`;
          cancel.remove();
          // No longer unfinished: drop it from the list an earlier page left.
          leftoverEl?.querySelector(`[data-unfinished="${CSS.escape(dest)}"]`)?.remove();
          if (leftoverEl && !leftoverEl.querySelector("li")) leftoverEl.remove();
          await Promise.all([drawFiles(), refreshFolder()]);
        } catch (e) {
          if (c.signal.aborted) return;
          li.dataset.state = "failed";
          text.textContent = "";
          text.append(errorBox(e));
          // Only an interrupted transfer can resume; a refusal would be refused again.
          retry.hidden = e instanceof ApiError && e.status < 500 && e.status !== 409;
          if (retry.hidden) {
            cancel.textContent = "Dismiss";
            cancel.setAttribute("aria-label", `Dismiss upload of ${file.name}`);
          }
        }
      };
      let current = ctl;
      retry.addEventListener("click", () => {
        current = new AbortController();
        void run(current);
      });
      cancel.addEventListener("click", async () => {
        current.abort();
        li.remove();
        const s = unfinished(id).find((x) => x.path === dest && x.size === file.size && x.lastModified === file.lastModified);
        if (s) await forget(s);
      });
      void run(ctl);
    };

    // Left behind by an earlier page (a reload, a closed tab): say how to resume.
    const leftover = unfinished(id).filter((s) => parent(s.path) === dir || dir === ".");
    const leftoverEl = leftover.length ? h("div", { class: "alert info", role: "status" },
      h("p", null, "Unfinished uploads from this browser; choose the same file again to resume where it stopped:"),
      h("ul", null, leftover.map((s) => {
        const drop = h("button", { type: "button", class: "small link" }, "Forget");
        const li = h("li", { "data-unfinished": s.path }, `${s.path} (${bytes(s.size)}, started ${when(s.started)}) `, drop);
        drop.addEventListener("click", async () => {
          await forget(s);
          li.remove();
        });
        return li;
      }))) : null;

    const picker = h("input", { type: "file", multiple: true, id: "upload-files", class: "sr-only" });
    picker.addEventListener("change", () => {
      for (const f of picker.files ?? []) startUpload(f);
      picker.value = "";
    });
    const drop = h("div", { class: "dropzone", "data-dropzone": "" },
      h("p", null, "Drop files here, or ", h("label", { for: "upload-files", class: "button small" }, "Choose files…"), picker),
      h("p", { class: "hint" }, "Uploads resume after a broken connection or a reload: choose the same file again."));
    for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      for (const f of (e as DragEvent).dataTransfer?.files ?? []) startUpload(f);
    });

    const mkName = h("input", { name: "dir_name", required: true, spellcheck: "false", autocomplete: "off" });
    const mkBtn = h("button", { type: "submit" }, "Create directory");
    const mk = h("form", { class: "inline-form", "aria-label": "Make a directory" }, field("New directory", mkName), mkBtn);
    mk.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await busy(mkBtn, "Creating…", () => request("POST", `${base}/mkdir`, { path: join(dir, mkName.value.trim()) }));
        mkName.value = "";
        replace(status);
        await drawFiles();
      } catch (err) {
        fail(err);
      }
    });
    const zip = h("button", { type: "button", class: "small" }, dir === "." ? "Download folder as zip" : "Download directory as zip");
    zip.addEventListener("click", () => void download(`${base}/download?path=${encodeURIComponent(dir)}`, `${dir === "." ? v.name : dir.split("/").pop()}.zip`).catch(fail));

    const crumbs = h("nav", { class: "crumbs", "aria-label": "Directory" }, h("ol", null,
      h("li", null, dir === "." ? h("span", { "aria-current": "page" }, v.name) : h("a", { href: here(".") }, v.name)),
      dir === "." ? null : dir.split("/").map((part, i, all) => h("li", null, i === all.length - 1 ? h("span", { "aria-current": "page" }, part) : h("a", { href: here(all.slice(0, i + 1).join("/")) }, part)))));

    replace(main,
      h("div", { class: "page-head" }, h("h1", null, `Folder ${v.name}`), h("a", { href: "/vfolders", class: "button" }, "All folders")),
      h("div", { class: "grid-2" },
        card("Files", crumbs, status, canWrite(v) ? h("div", { class: "upload-area" }, drop, leftoverEl, uploadsEl) : h("p", { class: "muted" }, "You may read this folder but not write to it."),
          h("div", { class: "toolbar" }, zip), filesEl, canWrite(v) ? mk : null),
        h("div", null,
          card("About", h("dl", { class: "facts" },
            h("dt", null, "Owner"), h("dd", null, v.owner_kind === "project" ? `project ${v.owner}` : v.owner),
            h("dt", null, "Your access"), h("dd", null, accessWords[v.access] ?? v.access),
            h("dt", null, "Host"), h("dd", null, v.host),
            h("dt", null, "Usage"), h("dd", null, usageEl),
            h("dt", null, "Created"), h("dd", null, when(v.created_at)))),
          v.access === "owner" && v.owner_kind === "user" ? sharing(base, v) : null,
          v.access === "owner" ? deletion(base, v, ctx) : null)));
    drawUsage();
    await drawFiles();
  },
};

/** sharing lists who a user folder is shared with and invites more people. */
function sharing(base: string, v: VFolder): HTMLElement {
  const list = h("div");
  const status = h("div", { class: "status-slot" });
  const draw = async () => {
    const sh = await request<VFolderShare[]>("GET", `${base}/shares`);
    replace(list, !sh.length ? h("p", { class: "empty" }, "Not shared with anyone.") : h("ul", { class: "shares" }, sh.map((s) => {
      const rm = h("button", { type: "button", class: "danger small", "aria-label": `Revoke ${s.username}'s access` }, "Revoke");
      rm.addEventListener("click", async () => {
        try {
          await busy(rm, "Revoking…", () => request("DELETE", `${base}/shares/${s.user_id}`));
          await draw();
        } catch (e) {
          replace(status, errorBox(e));
        }
      });
      return h("li", { "data-share": s.username, "data-state": s.state }, h("span", null, h("strong", null, s.username), ` · ${accessWords[s.permission] ?? s.permission} · `,
        s.state === "pending" ? "invited, not yet accepted" : `since ${when(s.accepted_at)}`), rm);
    })));
  };
  const user = h("input", { name: "username", required: true, spellcheck: "false", autocomplete: "off" });
  const perm = h("select", { name: "permission" }, ["ro", "rw", "rw-delete"].map((p) => h("option", { value: p }, accessWords[p])));
  const btn = h("button", { type: "submit", class: "primary" }, "Invite");
  const form = h("form", { class: "inline-form", "aria-label": `Share ${v.name}` }, field("User", user), field("Permission", perm), btn);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const s = await busy(btn, "Inviting…", () => request<VFolderShare>("PUT", `${base}/shares/${encodeURIComponent(user.value.trim())}`, { permission: perm.value }));
      user.value = "";
      replace(status, notice(`${s.username} is invited with ${accessWords[s.permission] ?? s.permission} access; the folder appears for them once they accept.`, "success"));
      await draw();
    } catch (err) {
      replace(status, errorBox(err));
    }
  });
  void draw().catch((e) => replace(status, errorBox(e)));
  return card("Sharing", list, form, status);
}

/** deletion removes the whole folder, confirmed by typing its name. */
function deletion(base: string, v: VFolder, ctx: PageContext): HTMLElement {
  const confirmIn = h("input", { name: "confirm", spellcheck: "false", autocomplete: "off" });
  const btn = h("button", { type: "submit", class: "danger" }, "Delete folder");
  const status = h("div", { class: "status-slot" });
  const form = h("form", { class: "stack", "aria-label": `Delete ${v.name}` }, field(`Type ${v.name} to delete the folder and all its files`, confirmIn), btn, status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await busy(btn, "Deleting…", () => request("DELETE", `${base}?confirm=${encodeURIComponent(confirmIn.value)}`));
      ctx.navigate("/vfolders");
    } catch (err) {
      replace(status, errorBox(err));
    }
  });
  return card("Delete", form);
}

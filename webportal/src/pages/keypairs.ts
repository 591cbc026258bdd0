// API keypairs: list, create (the secret is shown once), revoke.
import { listAll, request } from "../api";
import { busy, card, errorBox, notice, type Page } from "../app";
import { field, h, replace } from "../dom";
import { when } from "../format";
import type { CreatedKeypair, Keypair } from "../types";

export const keypairsPage: Page = {
  title: "Keypairs",
  async render(main) {
    const listEl = h("div");
    const status = h("div", { class: "status-slot" });
    const desc = h("input", { name: "description", maxlength: 200, placeholder: "laptop CLI" });
    const create = h("button", { type: "submit", class: "primary" }, "Create keypair");
    const form = h("form", { class: "inline-form" }, field("Description", desc), create);

    const draw = async () => {
      const kps = await listAll<Keypair>("/api/v1/keypairs");
      replace(listEl, kps.length
        ? h("table", { class: "table" },
            h("thead", null, h("tr", null, ["Access key", "Description", "Created", "Last used", ""].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", null, kps.map((k) => {
              const del = h("button", { type: "button", class: "danger small", "aria-label": `Revoke keypair ${k.access_key}` }, "Revoke");
              del.addEventListener("click", async () => {
                if (!confirm(`Revoke ${k.access_key}? Programs using it stop working at once.`)) return;
                try {
                  await busy(del, "Revoking…", () => request("DELETE", `/api/v1/keypairs/${encodeURIComponent(k.access_key)}`));
                  replace(status, notice(`Keypair ${k.access_key} revoked.`));
                  await draw();
                } catch (e) {
                  replace(status, errorBox(e));
                }
              });
              return h("tr", { "data-access-key": k.access_key },
                h("td", null, h("code", null, k.access_key)), h("td", null, k.description), h("td", null, when(k.created_at)),
                h("td", null, k.last_used_at ? when(k.last_used_at) : "never"), h("td", null, del));
            })))
        : h("p", { class: "empty" }, "You have no keypairs."));
    };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      replace(status);
      try {
        const kp = await busy(create, "Creating…", () => request<CreatedKeypair>("POST", "/api/v1/keypairs", { description: desc.value.trim() }));
        desc.value = "";
        const secret = h("div", { class: "alert success secret", role: "status" },
          h("p", null, h("strong", null, "Copy the secret key now: it is shown only this once.")),
          h("dl", { class: "facts" }, h("dt", null, "Access key"), h("dd", null, h("code", { "data-access-key": "" }, kp.access_key)),
            h("dt", null, "Secret key"), h("dd", null, h("code", { "data-secret-key": "" }, kp.secret_key))),
          h("p", null, "Use them with ", h("code", null, "slurmgate login"), " or to sign API requests."));
        replace(status, secret);
        await draw();
      } catch (err) {
        replace(status, errorBox(err));
      }
    });
    replace(main, h("h1", null, "API keypairs"),
      h("p", { class: "muted" }, "Keypairs let programs and the command-line client act as you. Revoke any you no longer use."),
      card("New keypair", form, status), card("Your keypairs", listEl));
    await draw();
  },
};

// Sign-in: the directory (LDAP) or local account form, an OIDC button when
// the gateway offers one, and signing in with an API keypair.
import { ApiError, get, loginKeypair, loginPassword } from "../api";
import { busy, errorBox, notice } from "../app";
import { field, h, replace } from "../dom";

interface Provider {
  name: string;
  label: string;
  kind: string; // "password", "ldap", "local", "oidc"
  url?: string;
}

// GET /api/v1/auth/providers: accept a list, {providers: [...]}, or {password: bool, oidc: [...]}.
function providersFrom(body: unknown): Provider[] {
  const list: unknown[] = Array.isArray(body)
    ? body
    : Array.isArray((body as { providers?: unknown[] })?.providers)
      ? (body as { providers: unknown[] }).providers
      : [];
  const out: Provider[] = list.map((p) => {
    const o = p as Record<string, string>;
    const kind = (o.kind ?? o.type ?? o.name ?? "").toLowerCase();
    return { name: o.name ?? kind, label: o.label ?? o.display_name ?? o.name ?? kind, kind, url: o.login_url ?? o.url };
  });
  const o = body as Record<string, unknown>;
  if (!Array.isArray(body) && o && typeof o === "object") {
    if (o.password || o.ldap || o.local) out.push({ name: "password", label: "Password", kind: "password" });
    if (o.oidc) {
      // The gateway answers {oidc: true, oidc_name: "…"}; a list of providers is taken too.
      const arr = Array.isArray(o.oidc) ? o.oidc : [typeof o.oidc === "object" ? o.oidc : { name: "oidc", label: o.oidc_name }];
      for (const x of arr as Record<string, string>[]) {
        out.push({ name: x.name ?? "oidc", label: x.label ?? x.display_name ?? "single sign-on", kind: "oidc", url: x.login_url ?? x.url });
      }
    }
  }
  return out;
}

export async function loginPage(main: HTMLElement, query: URLSearchParams, done: () => Promise<void>): Promise<void> {
  let providers: Provider[] = [];
  let passwordLogin = false;
  try {
    providers = providersFrom(await get("/api/v1/auth/providers", { quiet: true }));
    passwordLogin = providers.length === 0 || providers.some((p) => p.kind !== "oidc");
  } catch (e) {
    // A gateway without portal sign-in (404) still takes API keypairs.
    if (!(e instanceof ApiError && e.status === 404)) console.warn("auth providers:", e);
  }
  const status = h("div", { class: "status-slot" });
  if (query.get("expired")) status.append(notice("Your session ended. Sign in again to continue.", "warn"));
  if (query.get("signed_out")) status.append(notice("You are signed out."));
  // No ?error= is shown: a link could put any text (a phishing message)
  // under the gateway's name.

  const next = query.get("next") ?? "/";
  const sections: HTMLElement[] = [];

  if (passwordLogin) {
    const user = h("input", { name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" });
    const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
    const btn = h("button", { type: "submit", class: "primary" }, "Sign in");
    const form = h("form", { class: "stack", "aria-label": "Sign in with your account" }, field("Username", user), field("Password", pass), btn);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      replace(status);
      try {
        await busy(btn, "Signing in…", () => loginPassword(user.value.trim(), pass.value));
        await done();
      } catch (err) {
        pass.value = "";
        status.append(errorBox(err));
        pass.focus();
      }
    });
    sections.push(form);
  }
  for (const p of providers.filter((p) => p.kind === "oidc")) {
    const url = p.url ?? `/api/v1/auth/oidc/login?return_to=${encodeURIComponent(next)}`;
    sections.push(h("a", { class: "button wide", href: url, "data-provider": p.name }, `Sign in with ${p.label}`));
  }

  const ak = h("input", { name: "access_key", autocomplete: "username", required: true, spellcheck: "false" });
  // Not a password: a browser must neither offer to save it nor fill it in.
  const sk = h("input", { name: "secret_key", type: "password", autocomplete: "off", required: true });
  const kbtn = h("button", { type: "submit", class: passwordLogin ? "" : "primary" }, "Sign in with keypair");
  const kform = h(
    "form",
    { class: "stack", "aria-label": "Sign in with an API keypair" },
    field("Access key", ak),
    field("Secret key", sk, "Used in this browser to sign one request; it is not sent or stored."),
    kbtn,
  );
  kform.addEventListener("submit", async (e) => {
    e.preventDefault();
    replace(status);
    try {
      await busy(kbtn, "Signing in…", () => loginKeypair(ak.value.trim(), sk.value.trim()));
      await done();
    } catch (err) {
      status.append(errorBox(err));
    }
  });
  if (passwordLogin) {
    sections.push(h("details", { class: "alt-login" }, h("summary", null, "Use an API keypair instead"), kform));
  } else {
    sections.push(kform);
  }

  replace(
    main,
    h(
      "div",
      { class: "login-card" },
      h("h1", null, h("span", { class: "brand" }, "Slurmgate")),
      h("p", { class: "muted" }, "Sign in to run sessions on the cluster."),
      status,
      sections,
    ),
  );
  main.querySelector<HTMLInputElement>("input")?.focus();
}

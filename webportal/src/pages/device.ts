// The device login's approval page (RFC 8628's verification URI): a program
// such as `slurmgate login --browser` shows a user code and this page's
// address; here the signed-in person checks the code and which program asks,
// and allows or denies it. Allowing gives that program a new keypair of the
// approver's, so the page shows exactly what the gateway knows about the
// request and nothing else. The client's description is written by whoever
// started the login, so it is shown as text only (dom.ts never parses HTML).
import { ApiError, get, request } from "../api";
import { busy, card, errorBox, type Page, type PageContext } from "../app";
import { field, h, replace } from "../dom";
import { relative, when } from "../format";

interface PendingDeviceLogin {
  user_code: string;
  client: string;
  created_at: string;
  expires_at: string;
}

// The user code's alphabet (bridge/devicelogin.go): no vowels, nothing that
// reads as another character. Anything else typed (spaces, dashes) is dropped.
const alphabet = "BCDFGHJKLMNPQRSTVWXZ";
const codeLength = 8;

/** normaliseCode turns what a person typed ("bcdf ghjk", "bcdfghjk") into "BCDF-GHJK", or "" if it cannot be a code. */
export function normaliseCode(typed: string): string {
  const c = typed.toUpperCase().replace(/[\s-]/g, "");
  if (c.length !== codeLength || [...c].some((ch) => !alphabet.includes(ch))) return "";
  return `${c.slice(0, 4)}-${c.slice(4)}`;
}

export const devicePage: Page = {
  title: "Approve a device login",
  async render(main, ctx) {
    const typed = ctx.query.get("code") ?? "";
    const code = normaliseCode(typed);
    if (code) {
      await showPending(main, ctx, code);
      return;
    }
    askForCode(main, ctx, typed);
  },
};

// askForCode is the page without a (valid) code in its address: a field to
// type the one the terminal shows.
function askForCode(main: HTMLElement, ctx: PageContext, typed: string): void {
  const status = h("div", { class: "status-slot" });
  const input = h("input", {
    name: "code",
    value: typed,
    required: true,
    autocomplete: "one-time-code",
    autocapitalize: "characters",
    spellcheck: "false",
    placeholder: "BCDF-GHJK",
    maxlength: 20,
  });
  const btn = h("button", { type: "submit", class: "primary" }, "Continue");
  const form = h("form", { class: "inline-form" },
    field("Code", input, "The eight letters your terminal shows; case and the dash do not matter."), btn, status);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const code = normaliseCode(input.value);
    if (!code) {
      replace(status, errorBox(new Error(`"${input.value.trim()}" is not a login code: it is eight letters such as BCDF-GHJK. Check the code in your terminal.`)));
      input.focus();
      return;
    }
    ctx.navigate(`/device?code=${encodeURIComponent(code)}`);
  });
  replace(main, h("div", { class: "device" },
    h("h1", null, "Approve a device login"),
    h("p", { class: "muted" }, "A program (such as ", h("code", null, "slurmgate login --browser"), ") asked to sign in as you. Enter the code it shows."),
    typed ? errorBox(new Error(`"${typed}" is not a login code: it is eight letters such as BCDF-GHJK.`)) : null,
    card("The code from your terminal", form)));
  if (!typed) input.focus();
}

// showPending shows the login the code names and the Allow and Deny buttons.
async function showPending(main: HTMLElement, ctx: PageContext, code: string): Promise<void> {
  let p: PendingDeviceLogin;
  try {
    p = await get<PendingDeviceLogin>(`/api/v1/auth/device/${encodeURIComponent(code)}`, { signal: ctx.signal });
  } catch (e) {
    if (ctx.signal.aborted) return;
    const gone = e instanceof ApiError && (e.status === 404 || e.status === 410);
    replace(main, h("div", { class: "device" },
      h("h1", null, "Approve a device login"),
      gone
        ? h("div", { class: "alert error", role: "alert" }, h("p", null,
            `No login is waiting for code ${code}: it expired, was already used, or was mistyped. Start the login again in your terminal.`))
        : errorBox(e),
      h("p", null, h("a", { href: "/device" }, "Enter another code"))));
    return;
  }
  const status = h("div", { class: "status-slot" });
  const allow = h("button", { type: "button", class: "primary" }, "Allow");
  const deny = h("button", { type: "button", class: "danger" }, "Deny");
  const decide = async (ok: boolean, btn: HTMLButtonElement) => {
    replace(status);
    allow.disabled = deny.disabled = true;
    try {
      await busy(btn, ok ? "Allowing…" : "Denying…", () => request("POST", "/api/v1/auth/device/approve", { user_code: code, allow: ok }));
    } catch (e) {
      allow.disabled = deny.disabled = false;
      replace(status, errorBox(e));
      return;
    }
    const result = ok
      ? h("div", { class: "alert success", role: "status", "data-result": "allowed" },
          h("p", null, h("strong", null, "Login allowed. You can return to your terminal.")),
          h("p", null, `It gets a new keypair of yours, listed under Keypairs, where you can revoke it.`))
      : h("div", { class: "alert info", role: "status", "data-result": "denied" },
          h("p", null, h("strong", null, "Login denied. You can return to your terminal.")),
          h("p", null, "The program gets nothing. If you did not start this login, someone else has your code; nothing more is needed."));
    replace(main, h("div", { class: "device" }, h("h1", null, ok ? "Device login allowed" : "Device login denied"), result,
      h("p", null, h("a", { href: "/keypairs" }, "Your keypairs"), " · ", h("a", { href: "/" }, "Your sessions"))));
  };
  allow.addEventListener("click", () => void decide(true, allow));
  deny.addEventListener("click", () => void decide(false, deny));

  replace(main, h("div", { class: "device" },
    h("h1", null, "Approve a device login"),
    h("p", null, "A program asks to sign in as ", h("strong", null, ctx.me.username),
      ". Allow it only if you started it just now and the code matches the one in your terminal."),
    card("Login request",
      h("dl", { class: "facts" },
        h("dt", null, "Code"), h("dd", null, h("code", { class: "device-code", "data-user-code": "" }, p.user_code)),
        h("dt", null, "Program"), h("dd", { "data-client": "" }, p.client || "(no description)"),
        h("dt", null, "Requested"), h("dd", null, h("time", { datetime: p.created_at, title: when(p.created_at) }, relative(p.created_at))),
        h("dt", null, "Expires"), h("dd", null, h("time", { datetime: p.expires_at }, when(p.expires_at)))),
      h("div", { class: "actions" }, allow, deny),
      status)));
}

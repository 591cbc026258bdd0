// The portal's entry point: restores the sign-in, then routes paths to pages
// with the History API (the Go handler answers index.html for every route).
import "@xterm/xterm/css/xterm.css";
import "./style.css";
import { authKind, get, logout, restoreAuth, setSignedOutHandler } from "./api";
import { errorBox, isAdmin, type Page, type PageContext } from "./app";
import { h, replace } from "./dom";
import type { Me } from "./types";
import { loginPage } from "./pages/login";
import { dashboardPage } from "./pages/dashboard";
import { launchPage } from "./pages/launch";
import { sessionPage } from "./pages/session";
import { keypairsPage } from "./pages/keypairs";
import { adminPage } from "./pages/admin";
import { vfolderPage, vfoldersPage } from "./pages/vfolders";
import { devicePage } from "./pages/device";
import { forgetAll as forgetUploads } from "./upload";

const routes: [RegExp, Page, string[]][] = [
  [/^\/$/, dashboardPage, []],
  [/^\/launch$/, launchPage, []],
  [/^\/sessions\/([^/]+)$/, sessionPage, ["id"]],
  [/^\/vfolders$/, vfoldersPage, []],
  [/^\/vfolders\/([^/]+)$/, vfolderPage, ["id"]],
  [/^\/keypairs$/, keypairsPage, []],
  [/^\/admin(?:\/([a-z-]+))?$/, adminPage, ["section"]],
  [/^\/device$/, devicePage, []],
];

const root = document.getElementById("app")!;
let me: Me | null = null;
let leave: AbortController | null = null;

function navigate(path: string, replaceState = false): void {
  if (replaceState) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  void show();
}

setSignedOutHandler(() => {
  me = null;
  forgetUploads();
  const here = location.pathname + location.search;
  navigate(`/login?next=${encodeURIComponent(here === "/login" ? "/" : here)}&expired=1`, true);
});

// Same-origin links navigate in place; /api/ and /s/ (apps) and new-tab links are left to the browser.
document.addEventListener("click", (e) => {
  const a = (e.target as Element).closest?.("a");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || /^\/(api|s)\//.test(url.pathname)) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", () => void show());

function shell(user: Me): { main: HTMLElement; nav: HTMLElement } {
  const links: [string, string][] = [
    ["/", "Sessions"],
    ["/launch", "Launch"],
    ["/vfolders", "Folders"],
    ["/keypairs", "Keypairs"],
  ];
  if (isAdmin(user)) links.push(["/admin", "Admin"]);
  const nav = h(
    "nav",
    { "aria-label": "Main" },
    h("ul", null, links.map(([href, label]) => h("li", null, h("a", { href }, label)))),
  );
  const signOut = h("button", { type: "button", class: "link", onclick: () => void signOutNow() }, "Sign out");
  const header = h(
    "header",
    { class: "top" },
    h("a", { href: "/", class: "brand" }, "Slurmgate"),
    nav,
    h("div", { class: "who" }, h("span", { title: `${user.role} in ${user.domain}` }, user.full_name || user.username), signOut),
  );
  const main = h("main", { id: "main", tabindex: "-1" });
  replace(root, header, main);
  return { main, nav };
}

async function signOutNow(): Promise<void> {
  let providerLogout: string;
  try {
    providerLogout = await logout();
  } catch (err) {
    // The gateway did not end the login: stay signed in, and say so.
    const box = errorBox(err);
    box.id = "signout-error";
    box.prepend(h("p", null, "Signing out failed: you are still signed in. Try again, or close the browser."));
    document.getElementById("signout-error")?.remove();
    document.getElementById("main")?.prepend(box);
    return;
  }
  leave?.abort();
  forgetUploads();
  me = null;
  if (providerLogout) location.assign(providerLogout);
  else navigate("/login?signed_out=1");
}

async function show(): Promise<void> {
  leave?.abort();
  leave = new AbortController();
  const signal = leave.signal;
  const path = location.pathname;
  const query = new URLSearchParams(location.search);
  if (path === "/login") {
    me = null;
    const main = h("main", { id: "main", tabindex: "-1", class: "login-main" });
    replace(root, main);
    document.title = "Sign in · Slurmgate";
    await loginPage(main, query, async () => {
      me = await get<Me>("/api/v1/me");
      const next = query.get("next");
      navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/", true);
    });
    return;
  }
  if (!me) {
    if (authKind() === "none" && !(await restoreAuth())) {
      forgetUploads(); // left by a login that ended while the portal was closed
      navigate(`/login?next=${encodeURIComponent(path + location.search)}`, true);
      return;
    }
    try {
      me = await get<Me>("/api/v1/me");
    } catch {
      return; // the 401 handler has moved to the login page
    }
  }
  const { main, nav } = shell(me);
  let page: Page | undefined;
  const params: Record<string, string> = {};
  for (const [re, p, names] of routes) {
    const m = re.exec(path);
    if (m) {
      page = p;
      names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1] ?? "")));
      break;
    }
  }
  for (const a of nav.querySelectorAll("a")) {
    const href = a.getAttribute("href")!;
    if (href === "/" ? path === "/" || path.startsWith("/sessions/") : path.startsWith(href)) a.setAttribute("aria-current", "page");
  }
  if (!page) {
    document.title = "Not found · Slurmgate";
    replace(main, h("h1", null, "Page not found"), h("p", null, "There is no portal page at ", h("code", null, path), ". ", h("a", { href: "/" }, "Back to your sessions")));
    return;
  }
  document.title = `${page.title} · Slurmgate`;
  const ctx: PageContext = { me, params, query, signal, navigate: (p) => navigate(p) };
  try {
    await page.render(main, ctx);
  } catch (e) {
    if (!signal.aborted) main.append(errorBox(e));
  }
  // Move focus to the new page's heading so keyboard and screen-reader users land on it.
  const h1 = main.querySelector("h1");
  if (h1) {
    h1.setAttribute("tabindex", "-1");
    h1.focus({ preventScroll: true });
  }
}

void show();

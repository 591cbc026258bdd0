// The shell every page shares: who is signed in, navigation, and the
// page lifecycle (each page gets an AbortSignal that fires when it is left,
// which ends its streams and timers).
import { ApiError } from "./api";
import { h, replace } from "./dom";
import { problemText, quotaFacts } from "./format";
import type { Me } from "./types";

export interface Page {
  title: string;
  render(main: HTMLElement, ctx: PageContext): Promise<void> | void;
}

export interface PageContext {
  me: Me;
  params: Record<string, string>;
  query: URLSearchParams;
  signal: AbortSignal;
  navigate(path: string): void;
}

export function isAdmin(me: Me): boolean {
  return me.role === "superadmin" || me.role === "domain-admin";
}

/** errorBox shows an API refusal (or any error) where it happened, announced to screen readers. */
export function errorBox(err: unknown): HTMLElement {
  const text = err instanceof ApiError ? problemText(err.problem) : err instanceof Error ? err.message : String(err);
  const box = h("div", { class: "alert error", role: "alert" }, h("p", null, text));
  if (err instanceof ApiError && err.problem.quota) {
    box.dataset.limit = err.problem.quota.limit;
    box.append(h("p", { class: "quota-facts" }, quotaFacts(err.problem)));
  }
  return box;
}

/** notice is a status message (polite live region). */
export function notice(text: string, cls = "info"): HTMLElement {
  return h("div", { class: `alert ${cls}`, role: "status" }, text);
}

/** section is a titled card. */
export function card(title: string, ...body: (Node | string | null | false)[]): HTMLElement {
  return h("section", { class: "card", "aria-label": title }, h("h2", null, title), ...body);
}

/** busy replaces a button's label while an action runs and restores it after. */
export async function busy<T>(btn: HTMLButtonElement, label: string, f: () => Promise<T>): Promise<T> {
  const old = btn.textContent;
  btn.disabled = true;
  btn.textContent = label;
  try {
    return await f();
  } finally {
    btn.disabled = false;
    btn.textContent = old;
  }
}

export function loading(main: HTMLElement, what: string): void {
  replace(main, h("p", { class: "muted", role: "status" }, `Loading ${what}…`));
}

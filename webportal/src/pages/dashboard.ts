// The dashboard: the user's sessions with live state (one Server-Sent Events
// stream for all of them, no per-session polling) and their quota use, which
// is re-read from the gateway when one of their sessions changes.
import { events, get, type ServerEvent } from "../api";
import { card, errorBox, type Page } from "../app";
import { h, replace } from "../dom";
import { isLive, pendingText, relative, resources, stateBadge, when } from "../format";
import { renderQuota, usage } from "../quota";
import type { Page as ListPage, Session } from "../types";

export const dashboardPage: Page = {
  title: "Sessions",
  async render(main, ctx) {
    const list = h("div", { class: "sessions", "aria-live": "polite", "aria-busy": "true" }, h("p", { class: "muted" }, "Loading sessions…"));
    const quotaEl = h("div", { class: "quota" }, h("p", { class: "muted" }, "Loading limits…"));
    const onlyLive = h("input", { type: "checkbox", id: "only-live", checked: true });
    replace(
      main,
      h("div", { class: "page-head" }, h("h1", null, "Your sessions"), h("a", { class: "button primary", href: "/launch" }, "Launch a session")),
      h("div", { class: "grid-2" },
        card("Sessions", h("div", { class: "toolbar" }, h("label", { for: "only-live" }, onlyLive, " Only active sessions")), list),
        card("Quota", quotaEl)),
    );

    const sessions = new Map<string, Session>();
    const draw = () => {
      const all = [...sessions.values()].sort((a, b) => b.created_at.localeCompare(a.created_at));
      const shown = onlyLive.checked ? all.filter((s) => isLive(s) || Date.now() - Date.parse(s.ended_at ?? s.created_at) < 3600e3) : all;
      list.setAttribute("aria-busy", "false");
      if (!shown.length) {
        replace(list, h("p", { class: "empty" }, onlyLive.checked ? "No active sessions. " : "No sessions yet. ", h("a", { href: "/launch" }, "Launch one")));
      } else {
        replace(list, h("ul", { class: "session-list" }, shown.map(row)));
      }
    };
    // Quota use changes only when a session starts or ends; re-read it then,
    // coalescing a burst of events into one request.
    let quotaTimer = 0;
    const refreshQuota = (delay = 0) => {
      clearTimeout(quotaTimer);
      quotaTimer = window.setTimeout(async () => {
        try {
          renderQuota(quotaEl, await usage(ctx.signal), ctx.me.username);
        } catch (e) {
          if (!ctx.signal.aborted) replace(quotaEl, errorBox(e));
        }
      }, delay);
    };
    onlyLive.addEventListener("change", draw);

    const reload = async () => {
      const page = await get<ListPage<Session>>("/api/v1/sessions?limit=100");
      sessions.clear();
      for (const s of page.items) sessions.set(s.id, s);
      draw();
    };
    // Subscribe first, then list, so no change falls between the two.
    events("/api/v1/sessions/stream", (e: ServerEvent) => {
      if (e.event === "resync") void reload().catch(() => {});
      if (e.event !== "session") return;
      const s = JSON.parse(e.data) as Session;
      if (s.owner !== ctx.me.username) return;
      const before = sessions.get(s.id);
      sessions.set(s.id, s);
      draw();
      if (before?.state !== s.state) refreshQuota(300);
    }, ctx.signal);
    await reload();
    refreshQuota();
    // Relative times ("in 5 min") age; redraw them once a minute.
    const tick = setInterval(draw, 60_000);
    ctx.signal.addEventListener("abort", () => {
      clearInterval(tick);
      clearTimeout(quotaTimer);
    });
  },
};

function row(s: Session): HTMLElement {
  const detail = s.state === "PENDING" ? pendingText(s) : s.state === "RUNNING" || s.state === "PREPARING" ? `on ${s.node ?? "a node"} since ${when(s.started_at)}` : s.ended_at ? `ended ${relative(s.ended_at)}${s.status_message ? ` — ${s.status_message}` : ""}` : s.status_message ?? "";
  return h(
    "li",
    { class: "session-row", "data-session": s.id, "data-state": s.state },
    h("div", { class: "row-main" }, h("a", { href: `/sessions/${s.id}`, class: "session-name" }, s.name || s.id), stateBadge(s)),
    h("div", { class: "row-meta" }, `${s.type} · ${s.image} · ${resources(s)} · ${s.project}`),
    detail ? h("div", { class: "row-detail" }, detail) : null,
  );
}

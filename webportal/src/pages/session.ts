// One session: live state, apps (new tabs), the terminal, the logs tail,
// CPU/GPU/memory sparklines, the event timeline and terminate.
import { ApiError, events, get, request, stream } from "../api";
import { busy, card, errorBox, notice, type Page } from "../app";
import { h, replace } from "../dom";
import { duration, isLive, mib, pendingText, resources, stateBadge, when } from "../format";
import { Sparkline } from "../sparkline";
import type { Session, SessionEvent } from "../types";
import type { TerminalHandle } from "../terminal";

// GET …/metrics: the agent's latest report against what the session holds.
interface Metrics {
  at?: string;
  allocated: { cpus: number; memory_mb: number; gpus: number };
  cpu_cores?: number;
  memory_bytes?: number;
  gpus?: { index: number; name?: string; utilization_pct: number }[];
  unavailable?: string[];
  gpu_status?: string;
}

// GET …/apps.
interface AppList {
  agent_connected: boolean;
  apps: { name: string; ready: boolean; error?: string; url: string }[];
}

export const sessionPage: Page = {
  title: "Session",
  async render(main, ctx) {
    const id = ctx.params.id!;
    const base = `/api/v1/sessions/${encodeURIComponent(id)}`;
    let s = await get<Session>(base);

    const head = h("div", { class: "page-head" });
    const facts = h("dl", { class: "facts" });
    const status = h("div", { class: "status-slot" });
    const appsEl = h("div", { class: "apps" });
    const termSlot = h("div", { class: "terminal-slot" });
    const logPre = h("pre", { class: "logs", tabindex: "0", "aria-label": "Job output" });
    const logStream = h("select", { "aria-label": "Which output" }, h("option", { value: "stdout" }, "stdout"), h("option", { value: "stderr" }, "stderr"));
    const timeline = h("ol", { class: "timeline" });
    const cpu = new Sparkline("CPU", (v) => `${v.toFixed(0)} %`);
    const memS = new Sparkline("Memory", (v) => mib(Math.round(v)));
    const gpu = new Sparkline("GPU", (v) => `${v.toFixed(0)} %`, 100);
    const metricsNote = h("p", { class: "muted" });
    const terminate = h("button", { type: "button", class: "danger" }, "Terminate");

    replace(
      main,
      head,
      status,
      h("div", { class: "grid-2" },
        card("Details", facts),
        card("Usage", h("div", { class: "sparks" }, cpu.el, memS.el, gpu.el), metricsNote)),
      card("Apps", appsEl),
      s.type === "interactive" ? card("Terminal", termSlot) : null,
      card("Logs", h("div", { class: "toolbar" }, logStream), logPre),
      card("Timeline", timeline),
    );

    const drawHead = () => {
      replace(head, h("h1", null, s.name || s.id, " ", stateBadge(s)), isLive(s) ? terminate : null);
    };
    const drawFacts = () => {
      const rows: [string, string][] = [
        ["State", s.state === "PENDING" ? `Waiting: ${pendingText(s)}` : s.status_message ? `${s.state} — ${s.status_message}` : s.state],
        ["Kind", s.type],
        ["Image", s.image],
        ["Resources", resources(s)],
        ["Project", s.project],
        ["Scaling group", `${s.scaling_group}${s.partition ? ` (partition ${s.partition})` : ""}`],
        ["Time limit", duration(s.time_limit_s)],
        ["Slurm job", s.job_id ? `${s.job_id}${s.slurm_state ? ` (${s.slurm_state})` : ""}` : "not submitted yet"],
        ["Node", s.node ?? "—"],
        ["Created", when(s.created_at)],
        ["Started", when(s.started_at)],
        ["Ended", when(s.ended_at)],
      ];
      if (s.exit_code !== undefined) rows.push(["Exit code", String(s.exit_code)]);
      if (s.command) rows.push(["Command", s.command]);
      replace(facts, rows.map(([k, v]) => [h("dt", null, k), h("dd", { "data-fact": k.toLowerCase() }, v)]));
    };
    const drawTimeline = async () => {
      try {
        const evs = await get<SessionEvent[]>(`${base}/events`);
        replace(timeline, evs.map((e) => h("li", null, h("time", { datetime: e.at }, when(e.at)), " ", h("strong", null, e.to ? `${e.from ? `${e.from} → ` : ""}${e.to}` : e.kind), e.message ? ` — ${e.message}` : "")));
      } catch (e) {
        replace(timeline, errorBox(e));
      }
    };
    const drawApps = async () => {
      if (s.state !== "RUNNING") {
        replace(appsEl, h("p", { class: "muted" }, isLive(s) ? "Apps open here once the session runs." : "The session has ended."));
        return;
      }
      try {
        const list = await get<AppList>(`${base}/apps`, { quiet: true });
        if (!list.agent_connected) {
          replace(appsEl, h("p", { class: "muted" }, "Waiting for the session's agent to connect; apps appear when it does."));
          return;
        }
        replace(appsEl, list.apps.length
          ? h("ul", { class: "app-list" }, list.apps.map((a) => h("li", null, a.ready
            ? h("a", { class: "button", href: a.url || `/s/${encodeURIComponent(id)}/${encodeURIComponent(a.name)}/`, target: "_blank", rel: "noopener" }, `Open ${a.name}`, h("span", { class: "sr-only" }, " (opens in a new tab)"))
            : h("span", { class: "muted" }, `${a.name}: starting${a.error ? ` (${a.error})` : ""}`))))
          : h("p", { class: "muted" }, "This session runs no apps."));
      } catch (e) {
        replace(appsEl, e instanceof ApiError && e.status === 404 ? h("p", { class: "muted" }, "This gateway does not serve apps yet.") : errorBox(e));
      }
    };

    let term: TerminalHandle | null = null;
    const drawTerminal = () => {
      if (s.type !== "interactive" || term) return;
      if (s.state !== "RUNNING") {
        replace(termSlot, h("p", { class: "muted" }, isLive(s) ? "The terminal opens once the session runs." : "The session has ended."));
        return;
      }
      const open = h("button", { type: "button", class: "primary" }, "Open terminal");
      open.addEventListener("click", async () => {
        const { openTerminal } = await import("../terminal");
        const box = h("div", { class: "terminal", role: "application", "aria-label": "Terminal" });
        const close = h("button", { type: "button" }, "Close terminal");
        replace(termSlot, box, h("div", { class: "actions" }, close));
        term = openTerminal(box, id, (reason) => {
          termSlot.dataset.closed = reason;
          close.textContent = "Reopen terminal";
          close.onclick = () => {
            term?.close();
            term = null;
            drawTerminal();
          };
        });
        close.onclick = () => {
          term?.close();
          term = null;
          drawTerminal();
        };
      });
      replace(termSlot, open);
    };
    ctx.signal.addEventListener("abort", () => term?.close());

    // Logs: followed while the session lives; switching stdout/stderr restarts the tail.
    let logAbort: AbortController | null = null;
    const followLogs = () => {
      logAbort?.abort();
      logAbort = new AbortController();
      const signal = AbortSignal.any([ctx.signal, logAbort.signal]);
      logPre.textContent = "";
      const atBottom = () => logPre.scrollTop + logPre.clientHeight >= logPre.scrollHeight - 4;
      stream(`${base}/logs?stream=${logStream.value}&tail=500&follow=${isLive(s)}`, (chunk) => {
        const stick = atBottom();
        logPre.append(chunk);
        if (stick) logPre.scrollTop = logPre.scrollHeight;
      }, signal)
        .then(() => {
          if (!logPre.textContent) logPre.textContent = isLive(s) ? "" : "(no output)";
        })
        .catch((e) => {
          if (!signal.aborted) logPre.append(`\n[${e instanceof ApiError ? e.message : "log stream ended"}]`);
        });
    };
    logStream.addEventListener("change", followLogs);

    // Metrics: one session's usage every 5 s while it runs.
    let metricsOK = true;
    const pollMetrics = async () => {
      if (s.state !== "RUNNING" || !metricsOK) {
        metricsNote.textContent = s.state === "RUNNING" ? metricsNote.textContent : "Usage is shown while the session runs.";
        return;
      }
      try {
        const m = await get<Metrics>(`${base}/metrics`, { quiet: true });
        if (!m.at) {
          metricsNote.textContent = "Waiting for the agent's first report.";
          return;
        }
        // CPU as a share of the allocated cores; GPU as the mean utilisation of the session's GPUs.
        if (m.cpu_cores !== undefined) cpu.push((m.cpu_cores / Math.max(m.allocated.cpus, 1)) * 100);
        if (m.memory_bytes !== undefined) memS.push(m.memory_bytes / 1048576);
        if (m.gpus?.length) gpu.push(m.gpus.reduce((a, g) => a + g.utilization_pct, 0) / m.gpus.length);
        metricsNote.textContent = m.allocated.gpus === 0 ? "No GPUs in this session." : m.gpu_status && m.gpu_status !== "ok" ? m.gpu_status : "";
      } catch (e) {
        metricsOK = !(e instanceof ApiError && (e.status === 404 || e.status === 501));
        metricsNote.textContent = metricsOK ? "Usage is not available right now." : "This gateway does not report session usage yet.";
      }
    };
    const timer = setInterval(() => void pollMetrics(), 5000);
    ctx.signal.addEventListener("abort", () => clearInterval(timer));

    terminate.addEventListener("click", async () => {
      if (!confirm(`Terminate ${s.name || s.id}? Its Slurm job is cancelled and unsaved work in the session is lost.`)) return;
      try {
        s = await busy(terminate, "Terminating…", () => request<Session>("DELETE", base));
        replace(status, notice("Terminating: the job is being cancelled."));
        update();
      } catch (e) {
        replace(status, errorBox(e));
      }
    });

    let lastState = s.state;
    const update = () => {
      drawHead();
      drawFacts();
      void drawTimeline();
      if (s.state !== lastState) {
        if (s.state === "RUNNING") void drawApps();
        if (!isLive(s)) void drawApps();
        drawTerminal();
        void pollMetrics();
        lastState = s.state;
      }
    };
    events(`/api/v1/sessions/stream?id=${encodeURIComponent(id)}`, async (e) => {
      if (e.event === "resync") s = await get<Session>(base);
      else if (e.event === "session") s = JSON.parse(e.data) as Session;
      else return;
      update();
    }, ctx.signal);
    drawHead();
    drawFacts();
    void drawTimeline();
    void drawApps();
    drawTerminal();
    followLogs();
    void pollMetrics();
  },
};

// The portal's REST client. Two ways to be signed in:
//   - a portal session: the gateway's HttpOnly cookie (POST /api/v1/auth/login or
//     the OIDC flow), with the CSRF token it returns sent as X-CSRF-Token on
//     every state change;
//   - an API keypair: the secret signs one POST /api/v1/tokens in the browser
//     (WebCrypto HMAC, never sent), and the short-lived bearer token it mints is
//     kept in this tab's sessionStorage. The secret itself is never stored.
import type { Page, Problem } from "./types";

export class ApiError extends Error {
  constructor(readonly status: number, readonly problem: Problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
  }
}

type Auth = { kind: "cookie"; csrf: string } | { kind: "token"; token: string; expires: string } | { kind: "none" };

const tokenKey = "slurmgate.token";
let auth: Auth = { kind: "none" };
let onSignedOut: () => void = () => {};

/** setSignedOutHandler is called when the API answers 401 to a signed-in client. */
export function setSignedOutHandler(f: () => void): void {
  onSignedOut = f;
}

export function authKind(): Auth["kind"] {
  return auth.kind;
}

/** restoreAuth finds an existing sign-in: a token in this tab, else a cookie session. */
export async function restoreAuth(): Promise<boolean> {
  const saved = sessionStorage.getItem(tokenKey);
  if (saved) {
    const t = JSON.parse(saved) as { token: string; expires: string };
    if (Date.parse(t.expires) > Date.now() + 5000) {
      auth = { kind: "token", ...t };
      return true;
    }
    sessionStorage.removeItem(tokenKey);
  }
  try {
    const s = await request<Record<string, unknown>>("GET", "/api/v1/auth/session", undefined, { quiet: true });
    auth = { kind: "cookie", csrf: csrfFrom(s) };
    return true;
  } catch {
    return false;
  }
}

// The login and session answers carry the CSRF token; accept the usual spellings.
function csrfFrom(body: Record<string, unknown> | undefined): string {
  const v = body?.["csrf_token"] ?? body?.["csrf"] ?? body?.["csrfToken"];
  return typeof v === "string" ? v : "";
}

/** loginPassword signs in with a directory (LDAP) or local account. */
export async function loginPassword(username: string, password: string): Promise<void> {
  const body = await request<Record<string, unknown>>("POST", "/api/v1/auth/login", { username, password }, { quiet: true });
  auth = { kind: "cookie", csrf: csrfFrom(body) };
}

/** loginKeypair mints a bearer token by signing POST /api/v1/tokens with the keypair. */
export async function loginKeypair(accessKey: string, secretKey: string): Promise<void> {
  const body = JSON.stringify({ ttl_seconds: 8 * 3600 });
  const path = "/api/v1/tokens";
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
  const bodyHash = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body))));
  // The string to sign: see api/sign (method, escaped path, canonical query, body hash).
  const sts = ["SG-HMAC-SHA256", date, nonce, "POST", path, "", bodyHash].join("\n");
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secretKey), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = hex(new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(sts))));
  const res = await fetch(path, {
    method: "POST",
    body,
    headers: {
      "Content-Type": "application/json",
      "X-SG-Date": date,
      "X-SG-Nonce": nonce,
      "X-SG-Content-SHA256": bodyHash,
      Authorization: `SG-HMAC-SHA256 Credential=${accessKey}, Signature=${sig}`,
    },
  });
  if (!res.ok) throw await errorFrom(res);
  const t = (await res.json()) as { token: string; expires_at: string };
  auth = { kind: "token", token: t.token, expires: t.expires_at };
  sessionStorage.setItem(tokenKey, JSON.stringify({ token: t.token, expires: t.expires_at }));
}

/**
 * logout ends the portal session (or forgets the token) and clears local
 * state. It returns the identity provider's logout URL when the gateway
 * gives one (RP-initiated logout), for the caller to visit. When the
 * gateway could not end the portal session, it throws and keeps the local
 * state: the login is still valid there (its cookie is HttpOnly, nothing
 * here can drop it), so saying "signed out" would be a lie on a shared
 * computer.
 */
export async function logout(): Promise<string> {
  let providerLogout = "";
  if (auth.kind === "cookie") {
    try {
      const r = await request<{ logout_url?: string } | undefined>("POST", "/api/v1/auth/logout", undefined, { quiet: true });
      providerLogout = r?.logout_url ?? "";
    } catch (e) {
      // 401: the login had already ended; there is nothing left to end.
      if (!(e instanceof ApiError && e.status === 401)) throw e;
    }
  }
  sessionStorage.removeItem(tokenKey);
  auth = { kind: "none" };
  return providerLogout;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function headers(method: string, extra: Record<string, string> = {}): Record<string, string> {
  const hd: Record<string, string> = { Accept: "application/json", ...extra };
  if (auth.kind === "token") hd.Authorization = `Bearer ${auth.token}`;
  if (auth.kind === "cookie" && method !== "GET" && method !== "HEAD" && auth.csrf) hd["X-CSRF-Token"] = auth.csrf;
  return hd;
}

async function errorFrom(res: Response): Promise<ApiError> {
  return errorOf(res.status, res.statusText, await res.text().catch(() => ""));
}

export interface RequestOptions {
  /** quiet: a 401 is only thrown, not treated as "signed out". */
  quiet?: boolean;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** request sends one JSON request and returns the decoded answer (undefined for 204). */
export async function request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  const init: RequestInit = { method, headers: headers(method, opts.headers), credentials: "same-origin", signal: opts.signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  const res = await fetch(path, init);
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && !opts.quiet && auth.kind !== "none") {
      auth = { kind: "none" };
      sessionStorage.removeItem(tokenKey);
      onSignedOut();
    }
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const ctype = res.headers.get("Content-Type") ?? "";
  return (ctype.includes("json") ? await res.json() : await res.text()) as T;
}

/**
 * send makes a request whose body or answer is not JSON (uploads, downloads)
 * with the client's credentials, and returns the response; a refusal is
 * thrown as an ApiError like request's.
 */
export async function send(method: string, path: string, opts: RequestOptions & { body?: BodyInit } = {}): Promise<Response> {
  const res = await fetch(path, { method, headers: headers(method, opts.headers), body: opts.body, credentials: "same-origin", signal: opts.signal });
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && !opts.quiet && auth.kind !== "none") {
      auth = { kind: "none" };
      sessionStorage.removeItem(tokenKey);
      onSignedOut();
    }
    throw err;
  }
  return res;
}

/**
 * download saves what a GET of path answers as a file. With a cookie the
 * browser fetches it itself, streaming to disk (a folder's zip can be
 * large); a bearer token cannot ride on a plain link, so then the answer is
 * read into memory first and saved from there.
 */
export async function download(path: string, name: string): Promise<void> {
  const a = document.createElement("a");
  a.download = name;
  if (auth.kind === "cookie") {
    a.href = path;
    a.click();
    return;
  }
  const blob = await (await send("GET", path)).blob();
  a.href = URL.createObjectURL(blob);
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

/** errorOf turns a failed response into an ApiError (for callers using XMLHttpRequest or send's Response). */
export function errorOf(status: number, statusText: string, text: string): ApiError {
  let p: Problem = { type: "about:blank", title: statusText || `HTTP ${status}`, status };
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object") p = { ...p, ...body };
  } catch {
    if (text) p.detail = text.slice(0, 500);
  }
  return new ApiError(status, p);
}

export const get = <T>(path: string, opts?: RequestOptions) => request<T>("GET", path, undefined, opts);

/** listAll follows a paginated listing's cursors, up to max items. */
export async function listAll<T>(path: string, max = 1000): Promise<T[]> {
  const items: T[] = [];
  let cursor = "";
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await get<Page<T>>(`${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...(page.items ?? []));
    cursor = page.next ?? "";
  } while (cursor && items.length < max);
  return items;
}

/** exists reports whether the API answers a GET with something other than 404/405. */
export async function exists(path: string): Promise<boolean> {
  try {
    await get(path, { quiet: true });
    return true;
  } catch (e) {
    return !(e instanceof ApiError && (e.status === 404 || e.status === 405));
  }
}

/**
 * stream reads a response body as it arrives (logs, Server-Sent Events),
 * calling onText with each decoded chunk. It resolves when the body ends.
 */
export async function stream(path: string, onText: (s: string) => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(path, { headers: headers("GET", { Accept: "text/event-stream, text/plain" }), credentials: "same-origin", signal });
  if (!res.ok) throw await errorFrom(res);
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onText(value);
  }
}

export interface ServerEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * events follows a Server-Sent Events stream with fetch (so a bearer token
 * works, which EventSource cannot send), reconnecting with backoff. After a
 * reconnect it delivers a synthetic "resync" event: changes may have been
 * missed while it was away, so the caller re-lists.
 */
export function events(path: string, onEvent: (e: ServerEvent) => void, signal: AbortSignal): void {
  let delay = 1000;
  const run = async () => {
    let first = true;
    while (!signal.aborted) {
      let buf = "";
      try {
        if (!first) onEvent({ event: "resync", data: "{}" });
        first = false;
        await stream(
          path,
          (chunk) => {
            delay = 1000;
            buf += chunk.replace(/\r\n?/g, "\n");
            let end: number;
            while ((end = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, end);
              buf = buf.slice(end + 2);
              const ev: ServerEvent = { event: "message", data: "" };
              const data: string[] = [];
              for (const line of block.split("\n")) {
                if (line.startsWith(":")) continue;
                const i = line.indexOf(":");
                const name = i < 0 ? line : line.slice(0, i);
                const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
                if (name === "event") ev.event = value;
                else if (name === "data") data.push(value);
                else if (name === "id") ev.id = value;
              }
              if (data.length) {
                ev.data = data.join("\n");
                onEvent(ev);
              }
            }
          },
          signal,
        );
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof ApiError && e.status === 401) {
          onSignedOut();
          return;
        }
      }
      if (signal.aborted) return;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 30000);
    }
  };
  void run();
}

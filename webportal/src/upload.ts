// Resumable uploads into a vfolder over tus 1.0 (see api/vfolders.go):
// POST /api/v1/vfolders/{id}/uploads reserves the file's size against the
// quota and answers with the upload's Location (which carries its own
// capability token), PATCH appends chunks at Upload-Offset, HEAD tells the
// offset to resume from.
//
// The Location is kept in localStorage under the folder, destination path,
// size and modification time of the file, so that choosing the same file
// again — after a failure, a reload or a closed tab — continues where the
// bytes stopped instead of sending them again. The token in it allows
// appending to that one upload and nothing else, for a day; signing out (or
// finding oneself signed out) forgets them all (forgetAll).
import { ApiError, errorOf, send } from "./api";

const tus = "1.0.0";
const storePrefix = "slurmgate.upload:";

/** chunkBytes is one PATCH: big enough to keep the link busy, small enough that a failure loses little. */
export const chunkBytes = 8 << 20;

export interface Progress {
  sent: number; // bytes the gateway has, including those of an earlier attempt
  total: number;
  resumedFrom: number; // 0 for a fresh upload
}

/** Stored is an unfinished upload remembered in this browser. */
export interface Stored {
  url: string;
  vfolder: string;
  path: string;
  name: string;
  size: number;
  lastModified: number;
  started: string;
}

function keyOf(vfolder: string, path: string, f: File): string {
  return `${storePrefix}${vfolder}:${path}:${f.size}:${f.lastModified}`;
}

/** unfinished lists the uploads into a folder that this browser started and did not finish. */
export function unfinished(vfolder: string): Stored[] {
  const out: Stored[] = [];
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i)!;
    if (!k.startsWith(storePrefix)) continue;
    try {
      const s = JSON.parse(localStorage.getItem(k)!) as Stored;
      if (s.vfolder === vfolder) out.push(s);
    } catch {
      localStorage.removeItem(k);
    }
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** forget drops a remembered upload (and tells the gateway to release its reservation). */
export async function forget(s: Stored): Promise<void> {
  localStorage.removeItem(`${storePrefix}${s.vfolder}:${s.path}:${s.size}:${s.lastModified}`);
  await fetch(s.url, { method: "DELETE", headers: { "Tus-Resumable": tus } }).catch(() => {});
}

/**
 * forgetAll drops every upload this browser remembers and releases their
 * reservations. Their URLs are capabilities (anyone holding one may append
 * to the upload for a day): they must not outlive the sign-in that made
 * them, on a shared computer least of all.
 */
export function forgetAll(): void {
  const keys: string[] = [];
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i)!;
    if (k.startsWith(storePrefix)) keys.push(k);
  }
  for (const k of keys) {
    let url = "";
    try {
      url = (JSON.parse(localStorage.getItem(k)!) as Stored).url;
    } catch {
      // unreadable: only dropped
    }
    localStorage.removeItem(k);
    if (url) void fetch(url, { method: "DELETE", headers: { "Tus-Resumable": tus }, keepalive: true }).catch(() => {});
  }
}

function b64(s: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(s)));
}

/** offsetOf asks the gateway how many bytes of an upload it has; null when it no longer knows the upload. */
async function offsetOf(url: string, signal: AbortSignal): Promise<number | null> {
  const res = await fetch(url, { method: "HEAD", headers: { "Tus-Resumable": tus }, cache: "no-store", signal });
  if (res.status === 404 || res.status === 410 || res.status === 403) return null;
  if (!res.ok) throw errorOf(res.status, res.statusText, "");
  return Number(res.headers.get("Upload-Offset"));
}

/** patch sends one chunk, reporting its bytes as they leave; it resolves to the new offset. */
function patch(url: string, offset: number, body: Blob, onSent: (n: number) => void, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("PATCH", url);
    x.setRequestHeader("Tus-Resumable", tus);
    x.setRequestHeader("Upload-Offset", String(offset));
    x.setRequestHeader("Content-Type", "application/offset+octet-stream");
    x.upload.onprogress = (e) => onSent(e.loaded);
    x.onload = () => {
      if (x.status === 204) resolve(Number(x.getResponseHeader("Upload-Offset")));
      else reject(errorOf(x.status, x.statusText, x.responseText));
    };
    x.onerror = () => reject(new TypeError("the connection to the gateway broke"));
    const abort = () => x.abort();
    x.onabort = () => reject(new DOMException("upload stopped", "AbortError"));
    signal.addEventListener("abort", abort, { once: true });
    x.onloadend = () => signal.removeEventListener("abort", abort);
    x.send(body);
  });
}

const retriable = (e: unknown) => e instanceof TypeError || (e instanceof ApiError && (e.status === 409 || e.status >= 500));

/**
 * upload sends file to path in the folder, resuming an earlier attempt of the
 * same file when the gateway still has it. A broken connection is retried a
 * few times from the offset the gateway reports; after that the error is
 * thrown and the upload stays remembered for a later resume. A refusal
 * (quota, permission, bad path) is thrown at once.
 */
export async function upload(vfolder: string, path: string, file: File, onProgress: (p: Progress) => void, signal: AbortSignal): Promise<void> {
  const key = keyOf(vfolder, path, file);
  let url = "";
  let offset = 0;
  let resumedFrom = 0;
  const saved = localStorage.getItem(key);
  if (saved) {
    const s = JSON.parse(saved) as Stored;
    const at = await offsetOf(s.url, signal).catch((e) => {
      if (signal.aborted) throw e;
      return null;
    });
    if (at !== null) [url, offset, resumedFrom] = [s.url, at, at];
    else localStorage.removeItem(key);
  }
  if (!url) {
    const res = await send("POST", `/api/v1/vfolders/${encodeURIComponent(vfolder)}/uploads`, {
      headers: { "Tus-Resumable": tus, "Upload-Length": String(file.size), "Upload-Metadata": `path ${b64(path)}` },
      signal,
    });
    url = res.headers.get("Location") ?? "";
    if (!url) throw new Error("the gateway started the upload but gave no Location to send it to");
    offset = Number(res.headers.get("Upload-Offset") ?? 0);
    if (file.size === 0) return; // complete on creation
    const s: Stored = { url, vfolder, path, name: file.name, size: file.size, lastModified: file.lastModified, started: new Date().toISOString() };
    localStorage.setItem(key, JSON.stringify(s));
  }
  onProgress({ sent: offset, total: file.size, resumedFrom });
  let failures = 0;
  while (offset < file.size) {
    try {
      const base = offset;
      offset = await patch(url, offset, file.slice(offset, offset + chunkBytes), (n) => onProgress({ sent: base + n, total: file.size, resumedFrom }), signal);
      failures = 0;
      onProgress({ sent: offset, total: file.size, resumedFrom });
    } catch (e) {
      if (signal.aborted || !retriable(e) || ++failures > 3) throw e;
      // Back off, then ask where the gateway's copy ends: the chunk may have
      // arrived in part, or whole with the answer lost.
      await new Promise((r) => setTimeout(r, 500 * 2 ** failures));
      const at = await offsetOf(url, signal).catch(() => null);
      if (at !== null) offset = at;
    }
  }
  localStorage.removeItem(key);
}

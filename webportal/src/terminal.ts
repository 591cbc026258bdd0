// The embedded terminal: xterm.js over the session's terminal WebSocket
// (binary messages carry bytes both ways; a text message {"resize":[rows,cols]}
// tells the PTY its size; the server's last text message is {"exit_code":N}). Loaded on demand: xterm is most of the portal's
// weight and only this page needs it. (Its small stylesheet is in the main
// bundle: esbuild does not load a lazy chunk's CSS.)
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";

export interface TerminalHandle {
  close(): void;
}

/** openTerminal attaches a terminal to el; onClose gets a reason when the socket ends. */
export function openTerminal(el: HTMLElement, sessionID: string, onClose: (reason: string) => void): TerminalHandle {
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
    fontSize: 14,
    scrollback: 5000,
    screenReaderMode: false,
    theme: { background: "#0f1720", foreground: "#e6edf3" },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(el);
  fit.fit();

  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/v1/sessions/${encodeURIComponent(sessionID)}/terminal?rows=${term.rows}&cols=${term.cols}`);
  ws.binaryType = "arraybuffer";
  const enc = new TextEncoder();
  const sendSize = () => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: [term.rows, term.cols] }));
  };
  // Keys typed while the socket is still connecting are kept and sent once
  // it opens: someone who types straight after opening the terminal would
  // otherwise lose the first characters of the command.
  let early: Uint8Array[] = [];
  let opened = false;
  ws.onopen = () => {
    opened = true;
    sendSize();
    for (const b of early) ws.send(b);
    early = [];
    term.focus();
  };
  let exitCode: number | undefined;
  ws.onmessage = (e) => {
    if (e.data instanceof ArrayBuffer) {
      term.write(new Uint8Array(e.data));
      return;
    }
    try {
      const msg = JSON.parse(String(e.data)) as { exit_code?: number };
      if (typeof msg.exit_code === "number") exitCode = msg.exit_code;
    } catch {
      // Not a control message: nothing else is sent as text.
    }
  };
  let closedByUs = false;
  ws.onclose = (e) => {
    early = [];
    term.options.disableStdin = true;
    const reason = closedByUs
      ? "closed"
      : exitCode !== undefined
        ? `the shell exited with code ${exitCode}`
        : !opened
          ? "could not connect: the session's agent may still be starting; reopen in a few seconds"
          : e.reason || (e.code === 1000 ? "the shell ended" : `connection closed (code ${e.code})`);
    term.write(`\r\n\x1b[2m[terminal ${reason}]\x1b[0m\r\n`);
    el.dataset.closed = "true";
    onClose(reason);
  };
  const input = term.onData((d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
    else if (ws.readyState === WebSocket.CONNECTING) early.push(enc.encode(d));
  });
  const resize = term.onResize(sendSize);
  const ro = new ResizeObserver(() => fit.fit());
  ro.observe(el);
  return {
    close() {
      closedByUs = true;
      ro.disconnect();
      input.dispose();
      resize.dispose();
      ws.close(1000, "closed by the user");
      term.dispose();
    },
  };
}

/**
 * Live status page: every 5 s (while the tab is visible) fetch the same page
 * again and swap the `#live` section for the fresh one. Re-using the server's
 * own rendering keeps one renderer (and one escaping path) instead of a
 * second copy of every table in the browser. Failures back off up to a
 * minute and show in the "updated" note; nothing else changes.
 *
 * Why no `/// <reference lib="dom" />`: a lib reference is global to the
 * whole tsc program, and the DOM's `fetch`/`BodyInit` types then replace
 * Node's for the coordinator, agent and CLI too (which stop compiling:
 * `Uint8Array` bodies are not DOM `BodyInit`). So this script declares the
 * little of the DOM it uses as local interfaces inside its IIFE. (tsc emits
 * it as an ES module, so the page loads it with `type="module"`.)
 */
(() => {
  interface El {
    id: string;
    textContent: string | null;
    contains(other: unknown): boolean;
    replaceWith(node: unknown): void;
    tagName: string;
  }
  interface Doc {
    hidden: boolean;
    activeElement: El | null;
    getElementById(id: string): El | null;
    importNode(node: El, deep: boolean): unknown;
    addEventListener(type: string, f: () => void): void;
  }
  interface Browser {
    document: Doc;
    location: { href: string; reload(): void };
    DOMParser: new () => { parseFromString(text: string, type: string): Doc };
    setTimeout(f: () => void, ms: number): number;
    clearTimeout(id: number | undefined): void;
  }
  const w = globalThis as unknown as Browser;
  const doc = w.document;

  const PERIOD_MS = 5_000;
  const MAX_BACKOFF_MS = 60_000;

  let failures = 0;
  let timer: number | undefined;
  let lastOk = Date.now();

  function note(text: string): void {
    const el = doc.getElementById('updated');
    if (el) el.textContent = text;
  }

  function schedule(): void {
    w.clearTimeout(timer);
    const delay = Math.min(MAX_BACKOFF_MS, PERIOD_MS * 2 ** failures);
    timer = w.setTimeout(() => void refresh(), delay);
  }

  async function refresh(): Promise<void> {
    if (doc.hidden) return schedule();
    try {
      const res = await fetch(w.location.href, { headers: { accept: 'text/html' }, credentials: 'same-origin' });
      // A redirect to the sign-in page means the session ended: reload to show it.
      if (res.redirected && new URL(res.url).pathname === '/login') {
        w.location.reload();
        return;
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const fresh = new w.DOMParser().parseFromString(await res.text(), 'text/html').getElementById('live');
      const live = doc.getElementById('live');
      if (!fresh || !live) throw new Error('the page has no live section');
      // Keep the section while the reader is pressing one of its buttons.
      const active = doc.activeElement;
      if (!(active && active.tagName === 'BUTTON' && live.contains(active))) live.replaceWith(doc.importNode(fresh, true));
      failures = 0;
      lastOk = Date.now();
      note(`updated ${new Date(lastOk).toLocaleTimeString()}`);
    } catch (err) {
      failures = Math.min(failures + 1, 8);
      note(`not updated since ${new Date(lastOk).toLocaleTimeString()} (${(err as Error).message ?? String(err)}); retrying`);
    }
    schedule();
  }

  doc.addEventListener('visibilitychange', () => {
    if (!doc.hidden) void refresh();
  });
  note(`updated ${new Date(lastOk).toLocaleTimeString()}`);
  schedule();
})();

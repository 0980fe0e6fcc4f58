// Shared helpers of the dashboard's pages: fetching the JSON API, formatting, the navigation bar,
// sortable tables, polling. No framework and no build step: each page script uses `EM`.
"use strict";

const EM = (() => {
  const esc = (value) => String(value ?? "").replace(/[&<>"']/g,
    (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const $ = (selector, root = document) => root.querySelector(selector);
  const params = new URLSearchParams(location.search);

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  // The browser revalidates with the ETag it holds (If-None-Match): an unchanged answer is a 304.
  async function get(path) {
    const response = await fetch(path, {cache: "no-cache", headers: {Accept: "application/json"}});
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
    }
    return response.json();
  }

  const isNum = (x) => typeof x === "number" && Number.isFinite(x);
  const num = (x, digits = 3) => (isNum(x) ? x.toFixed(digits) : "—");
  const pct = (x, digits = 1) => (isNum(x) ? (100 * x).toFixed(digits) + " %" : "—");
  function bytes(x) {
    if (!isNum(x)) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(x) >= 1024 && i < units.length - 1) { x /= 1024; i += 1; }
    return (i ? x.toFixed(x < 10 ? 2 : 1) : String(x)) + " " + units[i];
  }
  const secs = (x, digits = 3) => (isNum(x) ? x.toFixed(digits) + " s" : "—");
  function duration(s) {
    if (!isNum(s)) return "—";
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
  }
  function when(ts) {
    if (!isNum(ts)) return "—";
    const d = new Date(ts * 1000);
    return d.toLocaleString(undefined, {month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"});
  }
  function ago(ts) {
    if (!isNum(ts)) return "—";
    const s = Date.now() / 1000 - ts;
    return s >= 0 ? duration(s) + " ago" : "in " + duration(-s);
  }
  const short = (hotkey) => (hotkey && hotkey.length > 16 ? hotkey.slice(0, 8) + "…" + hotkey.slice(-4) : hotkey ?? "");
  const badge = (state) => `<span class="badge ${esc(state)}">${esc(state)}</span>`;

  // baseline / submission: above 1 is better (faster, smaller) than the baseline.
  function ratio(base, mine) {
    if (!isNum(base) || !isNum(mine) || mine <= 0) return null;
    return base / mine;
  }
  function ratioTag(r) {
    if (!isNum(r)) return "";
    const cls = r > 1.0005 ? "up" : r < 0.9995 ? "down" : "";
    return `<span class="ratio ${cls}" title="baseline / this">×${r.toFixed(2)}</span>`;
  }

  function repoLink(repository, revision) {
    if (!repository) return "—";
    const text = esc(repository.replace(/^https:\/\//, "")) + (revision ? "@" + esc(revision.slice(0, 10)) : "");
    if (!/^https:\/\//.test(repository)) return `<span class="mono">${text}</span>`;
    const href = revision ? `${repository.replace(/\/$/, "")}/tree/${encodeURIComponent(revision)}` : repository;
    return `<a class="mono" href="${esc(href)}" rel="noopener noreferrer">${text}</a>`;
  }

  const PAGES = [["/", "Leaderboard"], ["/demo", "Model demo"], ["/validator", "Validator"],
                 ["/weights", "Subnet weights"]];
  function nav(active) {
    const links = PAGES.map(([href, label]) =>
      `<a href="${href}"${href === active ? ' class="here" aria-current="page"' : ""}>${label}</a>`).join("");
    const header = $("#nav");
    header.className = "nav";
    header.innerHTML = `<a class="brand" href="/">edgemaxx</a>${links}<span class="spacer"></span>` +
      `<a class="dim" href="/docs">API</a>`;
  }

  function showError(element, error) {
    element.hidden = false;
    element.textContent = error instanceof ApiError ? `${error.message} (HTTP ${error.status})` : String(error);
  }

  // Click a header with data-key to sort by the cells' data-v (numbers when they parse), again to reverse.
  function sortable(table, onSort) {
    table.querySelectorAll("th[data-key]").forEach((th) => {
      th.addEventListener("click", () => {
        const desc = !th.classList.contains("desc");
        table.querySelectorAll("th").forEach((other) => other.classList.remove("asc", "desc"));
        th.classList.add(desc ? "desc" : "asc");
        if (onSort) onSort(th.dataset.key, desc);
        sortRows(table, th.dataset.key, desc);
      });
    });
  }
  function sortRows(table, key, desc) {
    const body = table.tBodies[0];
    const index = [...table.querySelectorAll("thead th")].findIndex((th) => th.dataset.key === key);
    if (index < 0) return;
    const value = (row) => {
      const raw = row.cells[index]?.dataset.v;
      if (raw === undefined || raw === "") return null;
      const n = Number(raw);
      return Number.isNaN(n) ? raw : n;
    };
    const rows = [...body.rows];
    rows.sort((a, b) => {
      const x = value(a), y = value(b);
      if (x === null && y === null) return 0;
      if (x === null) return 1;  // empty cells last, whichever the direction
      if (y === null) return -1;
      const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return desc ? -order : order;
    });
    rows.forEach((row) => body.appendChild(row));
  }

  // Run `fn` (now, or after `ms` when `immediate` is false) and every `ms` while the page is visible;
  // a failed poll is retried at the next tick.
  function poll(fn, ms, immediate = true) {
    let timer = null;
    const tick = async () => {
      timer = null;
      if (!document.hidden) {
        try { await fn(); } catch (error) { console.warn("poll failed:", error); }
      }
      timer = setTimeout(tick, ms);
    };
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer !== null) { clearTimeout(timer); tick(); }
    });
    if (immediate) return tick();
    timer = setTimeout(tick, ms);
    return Promise.resolve();
  }

  function image(src, alt, caption) {
    return `<figure><img src="${esc(src)}" alt="${esc(alt)}" loading="lazy" decoding="async">` +
      (caption ? `<figcaption>${caption}</figcaption>` : "") + `</figure>`;
  }
  const missing = (text, caption) =>
    `<figure><div class="missing">${esc(text)}</div>${caption ? `<figcaption>${caption}</figcaption>` : ""}</figure>`;
  const outputUrl = (runId, name, index) =>
    `/v1/runs/${encodeURIComponent(runId)}/outputs/${encodeURIComponent(name)}/${index}`;

  // The runs a selector offers: each contest's current run first, then the history.
  async function runChoices() {
    const [status, page] = await Promise.all([get("/v1/status"), get("/v1/runs?limit=50")]);
    const current = new Set(status.contests.map((c) => c.run_id));
    const runs = page.runs.slice().sort((a, b) => (current.has(b.id) - current.has(a.id)) || (b.started_at - a.started_at));
    return {runs, current, status};
  }
  function runOption(run, current, selected) {
    const label = `${run.contest} · ${when(run.started_at)} · ${run.state}${current.has(run.id) ? " (current)" : ""}`;
    return `<option value="${esc(run.id)}"${run.id === selected ? " selected" : ""}>${esc(label)}</option>`;
  }

  return {esc, $, params, get, ApiError, isNum, num, pct, bytes, secs, duration, when, ago, short, badge, ratio,
          ratioTag, repoLink, nav, showError, sortable, sortRows, poll, image, missing, outputUrl, runChoices,
          runOption};
})();

"""GET /: a small dashboard over the JSON API (status, current runs, leaderboards). No build step."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["dashboard"])

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgemaxx validator</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px system-ui,sans-serif;margin:2em;color:#222} h1{font-size:1.4em} h2{font-size:1.1em;margin-top:2em}
 table{border-collapse:collapse;margin:.5em 0} td,th{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:left}
 .ok{color:#080} .bad{color:#b00} .dim{color:#888} code{font-size:.9em}
</style></head><body>
<h1>edgemaxx validator</h1><div id="status" class="dim">loading…</div><div id="contests"></div>
<script>
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
const num = (x, d=3) => x == null ? "—" : Number(x).toFixed(d);
async function refresh() {
  const status = await (await fetch("/v1/status")).json();
  const workers = status.workers.map(w => `<tr><td>${esc(w.name)}</td><td>${w.gpu ?? "cpu"} ${esc(w.gpu_name)}</td>
    <td class="${w.alive ? "ok" : "bad"}">${w.alive ? (w.busy ? "busy" : "idle") : "gone"}</td>
    <td>${esc(w.progress.phase)} ${w.progress.current ? w.progress.current + "/" + w.progress.total : ""}
    ${esc(w.progress.hotkey)}</td>
    <td>${w.busy_fraction == null ? "" : num(100 * w.busy_fraction, 0) + "%"}</td></tr>`).join("");
  const queues = Object.entries(status.queues).map(([q, n]) => `${esc(q)}: ${n}`).join(" · ");
  const checks = (status.preflight ?? []).flatMap(p => [...p.problems.map(m => [p.service, m, "bad"]),
    ...p.warnings.map(m => [p.service, m, "dim"])])
    .map(([s, m, c]) => `<li class="${c}">${esc(s)}: ${esc(m)}</li>`).join("");
  document.getElementById("status").innerHTML = `<p class="${status.healthy ? "ok" : "bad"}">
    ${status.healthy ? "healthy" : "no live worker"} · Redis ${status.redis ? "up" : "down"} · ${queues}</p>
    ${checks ? `<ul>${checks}</ul>` : ""}
    ${status.warnings.map(w => `<p class="bad">${esc(w)}</p>`).join("")}
    <table><tr><th>worker</th><th>GPU</th><th>state</th><th>doing</th><th>busy</th></tr>${workers}</table>`;
  let html = "";
  for (const c of status.contests) {
    const r = await fetch(`/v1/contests/${c.contest}`);
    if (!r.ok) continue;
    const board = await r.json();
    const rows = board.leaderboard.map(x => `<tr><td>${x.rank ?? "—"}</td><td>${esc(x.hotkey)}</td>
      <td class="${x.state === "scored" ? "ok" : x.state === "invalid" ? "bad" : "dim"}">${esc(x.state)}</td>
      <td>${num(x.score)}</td><td>${num(x.summary?.median_generation_time_s)}</td>
      <td>${num(x.similarity_mean)} / ${num(x.similarity_min)}</td><td>${num(x.weight)}</td>
      <td>${esc(x.gpu ?? (x.summary ? "cpu" : ""))}</td><td>${esc(x.reason || x.flagged)}</td></tr>`).join("");
    html += `<h2>${esc(board.id)} <span class="dim">run ${esc(board.run_id)} · ${esc(c.state)}
      · seed <code>${esc(board.seed.slice(0, 18))}</code> · ${board.inputs} inputs</span></h2>
      <table><tr><th>#</th><th>hotkey</th><th>state</th><th>score</th><th>gen median (s)</th>
      <th>similarity mean/min</th><th>weight</th><th>measured on</th><th>reason</th></tr>${rows}</table>`;
  }
  document.getElementById("contests").innerHTML = html;
}
refresh(); setInterval(refresh, 5000);
</script></body></html>"""


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def dashboard() -> str:
    return _PAGE

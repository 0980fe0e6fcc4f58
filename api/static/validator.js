// The validator's own state: GET /v1/status (workers, runs, queues, weights) and GET /v1/weights.
"use strict";

(() => {
  const {esc, $, get, badge, duration, when, ago, pct, short, isNum} = EM;

  function workerState(w) {
    if (!w.alive) return "gone";
    if (w.sandbox_problem || Object.keys(w.refused || {}).length) return w.busy ? "busy" : "refusing";
    return w.busy ? "busy" : "idle";
  }

  function doing(w) {
    const p = w.progress || {};
    if (!w.busy || p.phase === "idle") return `<span class="dim">nothing</span>`;
    const who = p.hotkey
      ? (p.hotkey.startsWith("baseline")
        ? "baseline"
        : `<a href="/submission?run=${encodeURIComponent(p.run_id || "")}&hotkey=${encodeURIComponent(p.hotkey)}"
             title="${esc(p.hotkey)}">${esc(short(p.hotkey))}</a>`)
      : "";
    return `${esc(p.phase)}${who ? " · " + who : ""}`;
  }

  function progressBar(w) {
    const p = w.progress || {};
    if (!w.busy || !isNum(p.total) || p.total <= 0) return "";
    const current = isNum(p.current) ? p.current : 0;
    return `<div class="bar-line"><progress max="${p.total}" value="${current}"
      aria-label="${esc(w.name)} progress"></progress><span class="mono">${current}/${p.total}</span></div>`;
  }

  function renderWorkers(status) {
    const rows = status.workers.map((w) => `<tr data-worker="${esc(w.name)}">
      <td class="mono">${esc(w.name)}</td>
      <td>${esc(w.gpu_name || (w.kind === "gpu" ? "GPU " + (w.gpu ?? "") : w.kind))}</td>
      <td>${badge(workerState(w))}${w.sandbox_problem ? `<div class="reason">${esc(w.sandbox_problem)}</div>` : ""}</td>
      <td class="doing">${doing(w)}</td>
      <td class="wide">${progressBar(w)}</td>
      <td class="num">${isNum(w.elapsed_s) ? duration(w.elapsed_s) : "—"}</td>
      <td class="num">${isNum(w.eta_s) ? duration(w.eta_s) : "—"}</td>
      <td class="num">${pct(w.busy_fraction, 0)}</td></tr>`);
    $("#workers tbody").innerHTML = rows.join("") || `<tr><td colspan="8" class="dim">no worker has registered</td></tr>`;
  }

  function renderContests(status) {
    const cards = status.contests.map((c) => {
      const states = Object.entries(c.states).filter(([, n]) => n > 0)
        .map(([s, n]) => `${badge(s)} ${n}`).join(" ") || `<span class="dim">no submission yet</span>`;
      const done = (c.states.scored || 0) + (c.states.invalid || 0) + (c.states.error || 0);
      const total = Object.values(c.states).reduce((a, b) => a + b, 0);
      const eta = c.state === "running"
        ? (isNum(c.eta_s) ? `${duration(c.eta_s)} (${c.waiting} waiting)` : `${c.waiting} waiting, no estimate yet`)
        : (c.end_reason ? esc(c.end_reason) : "—");
      return `<div class="card"><h3><a href="/?run=${encodeURIComponent(c.run_id)}">${esc(c.contest)}</a>
          ${badge(c.state)}</h3>
        <dl class="kv">
          <dt>run</dt><dd class="mono">${esc(c.run_id)}</dd>
          <dt>started</dt><dd>${when(c.started_at)} (${ago(c.started_at)})</dd>
          <dt>deadline</dt><dd>${when(c.deadline_at)}</dd>
          <dt>baseline</dt><dd>${c.baseline_ready ? "measured" : (c.baseline_error ? `<span class="bad">${esc(c.baseline_error)}</span>` : "not yet")}</dd>
          <dt>submissions</dt><dd>${states}</dd>
          <dt>benchmarked</dt><dd><div class="bar-line"><progress max="${Math.max(total, 1)}" value="${done}"
            aria-label="${esc(c.contest)} benchmarked"></progress><span class="mono">${done}/${total}</span></div></dd>
          <dt>${c.state === "running" ? "done in (est.)" : "ended"}</dt><dd>${eta}</dd>
          <dt>typical benchmark</dt><dd>${isNum(c.typical_benchmark_s) ? duration(c.typical_benchmark_s) : "—"}</dd>
        </dl></div>`;
    });
    $("#contests").innerHTML = cards.join("") || `<p class="dim">no contest run yet</p>`;
  }

  function vector(weights) {
    const entries = Object.entries(weights || {}).sort((a, b) => b[1] - a[1]);
    if (!entries.length) return `<span class="dim">—</span>`;
    return `<span class="mono">${entries.map(([uid, w]) => `${esc(uid)}: ${w.toFixed(4)}`).join(", ")}</span>`;
  }

  function renderWeights(own) {
    const s = own.status;
    if (!s) {
      $("#weights").innerHTML = `<p class="dim">the chain service has not reported yet (is <code>edgemaxx chain</code> running?)</p>`;
    } else {
      const attempt = s.last_attempt_at
        ? `${when(s.last_attempt_at)}: ${s.last_attempt_ok ? '<span class="ok">ok</span>' : `<span class="bad">${esc(s.last_attempt_message)}</span>`}`
        : "—";
      $("#weights").innerHTML = `<div class="card"><h3>Last set</h3><dl class="kv">
        <dt>when</dt><dd>${s.last_set_at ? `${when(s.last_set_at)} (${ago(s.last_set_at)})` : "never"}</dd>
        <dt>block</dt><dd>${s.last_set_block ?? "—"}</dd>
        <dt>from runs</dt><dd>${s.last_set_runs.map((r) => `<a class="mono" href="/?run=${encodeURIComponent(r)}">${esc(r)}</a>`).join(", ") || "—"}</dd>
        <dt>vector</dt><dd>${vector(s.last_set_weights)}</dd>
        <dt>last attempt</dt><dd>${attempt}</dd>
        <dt>next attempt</dt><dd>${s.next_attempt_block ? `block ${s.next_attempt_block} (${ago(s.next_attempt_at)})` : "—"}</dd>
        </dl></div>`;
    }
    const rows = own.history.slice().reverse().map((h) => `<tr><td>${when(h.at)}</td><td class="num">${h.block ?? "—"}</td>
      <td class="mono">${esc((h.run_id || "").split(",").join(", "))}</td><td class="wrap">${vector(h.weights)}</td></tr>`);
    $("#weights-history tbody").innerHTML = rows.join("") || `<tr><td colspan="4" class="dim">none yet</td></tr>`;
  }

  async function refresh() {
    const [status, own] = await Promise.all([get("/v1/status"), get("/v1/weights")]);
    $("#health").innerHTML = `<span>service <b class="${status.healthy ? "ok" : "bad"}">${status.healthy ? "healthy" : "unhealthy"}</b></span>
      <span>Redis <b>${status.redis ? "up" : "down"}</b></span>
      <span>disks <b class="${status.disk_low ? "bad" : "ok"}">${status.disk_low ? "low" : "ok"}</b></span>
      <span>as of <b>${when(status.generated_at)}</b></span>`;
    // Start-up checks (worker/preflight.py): why a worker waits, or what it cannot do.
    const checks = (status.preflight || []).flatMap((p) => [...p.problems.map((m) => `${p.service} cannot start: ${m}`),
      ...p.warnings.map((m) => `${p.service}: ${m}`)]);
    $("#warnings").innerHTML = [...checks, ...(status.warnings || [])].map((w) => `<div class="note">${esc(w)}</div>`).join("");
    renderWorkers(status);
    renderContests(status);
    const queues = Object.entries(status.queues).map(([q, n]) => `<tr><td class="mono">${esc(q)}</td><td class="num">${n}</td></tr>`);
    $("#queues tbody").innerHTML = queues.join("");
    renderWeights(own);
    $("#error").hidden = true;
  }

  EM.nav("/validator");
  EM.poll(async () => {
    try { await refresh(); } catch (e) { EM.showError($("#error"), e); }
  }, 1000);
})();

// One submission of a run: GET /v1/runs/{run}/submissions/{hotkey}, and its images beside the baseline's.
"use strict";

(() => {
  const {esc, $, get, num, secs, bytes, badge, ratio, short, when, isNum} = EM;
  const ROWS = [  // [label, summary key, score term, formatter]
    ["generation time (median)", "median_generation_time_s", "generation_time", (x) => secs(x)],
    ["generation time (mean)", "mean_generation_time_s", null, (x) => secs(x)],
    ["load time", "load_time_s", "load_time", (x) => secs(x, 2)],
    ["peak VRAM", "peak_vram_bytes", "vram", bytes],
    ["energy per image", "energy_per_image_j", "energy", (x) => (isNum(x) ? x.toFixed(1) + " J" : "—")],
    ["peak RAM", "peak_ram_bytes", "ram", bytes],
    ["size (code + models)", "size_bytes", "size", bytes],
  ];

  function metricsTable(s) {
    const weights = s.rules ? s.rules.weights : {};
    const base = s.baseline ? s.baseline.summary : {};
    const mine = s.summary || {};
    const rows = ROWS.map(([label, key, term, fmt]) => {
      const r = ratio(base[key], mine[key]);
      const t = term && s.score_terms ? s.score_terms[term] : undefined;
      return `<tr><td>${esc(label)}</td><td class="num">${fmt(base[key])}</td><td class="num">${fmt(mine[key])}</td>
        <td class="num">${isNum(r) ? "×" + r.toFixed(3) : "—"}</td><td class="num">${isNum(t) ? t.toFixed(4) : ""}</td>
        <td class="num">${term && weights[term] ? weights[term] : ""}</td></tr>`;
    });
    const simTerm = s.score_terms ? s.score_terms.similarity : undefined;
    rows.push(`<tr><td>similarity (mean / worst input)</td><td class="num">1.000</td>
      <td class="num">${num(s.similarity_mean)} / ${num(s.similarity_min)}</td>
      <td class="num dim">${s.rules ? "floor " + s.rules.similarity_floor : ""}</td>
      <td class="num">${isNum(simTerm) ? simTerm.toFixed(4) : ""}</td>
      <td class="num">${weights.similarity || ""}</td></tr>`);
    rows.push(`<tr><td><b>score</b></td><td class="num">1.000</td><td class="num"><b>${num(s.score)}</b></td>
      <td></td><td></td><td></td></tr>`);
    $("#metrics tbody").innerHTML = rows.join("");
    $("#against").hidden = false;
  }

  // Bars per request: this submission's beside the baseline's, on one scale.
  function chart(mine, base) {
    const n = Math.max(mine.length, base.length);
    if (!n) return "";
    const W = 640, H = 190, left = 44, bottom = 22, top = 8;
    const max = Math.max(...mine, ...base, 1e-9) * 1.1;
    const group = (W - left) / n;
    const bar = Math.max(2, Math.min(28, group * 0.38));
    const y = (v) => top + (H - top - bottom) * (1 - v / max);
    const parts = [`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="generation time per request">`];
    for (let k = 0; k <= 4; k += 1) {
      const v = (max * k) / 4;
      parts.push(`<line class="axis" x1="${left}" x2="${W}" y1="${y(v)}" y2="${y(v)}"/>`,
                 `<text x="${left - 4}" y="${y(v) + 3}" text-anchor="end">${v.toFixed(v < 1 ? 2 : 1)}s</text>`);
    }
    for (let i = 0; i < n; i += 1) {
      const x0 = left + i * group + group / 2;
      if (i < mine.length) {
        parts.push(`<rect class="bar-sub" x="${x0 - bar}" y="${y(mine[i])}" width="${bar}" height="${y(0) - y(mine[i])}">` +
                   `<title>request ${i + 1}: ${mine[i].toFixed(4)} s</title></rect>`);
      }
      if (i < base.length) {
        parts.push(`<rect class="bar-base" x="${x0}" y="${y(base[i])}" width="${bar}" height="${y(0) - y(base[i])}">` +
                   `<title>baseline, request ${i + 1}: ${base[i].toFixed(4)} s</title></rect>`);
      }
      if (n <= 40 || i % Math.ceil(n / 20) === 0) {
        parts.push(`<text x="${x0}" y="${H - 6}" text-anchor="middle">${i + 1}</text>`);
      }
    }
    parts.push("</svg>");
    return parts.join("");
  }

  function telemetry(samples) {
    if (!samples || !samples.length) return "";
    const rows = samples.map((t, i) => `<tr><td class="num">${i + 1}</td><td class="num">${t.sm_clock_mhz.toFixed(0)}
      (min ${t.sm_clock_min_mhz})</td><td class="num">${t.mem_clock_mhz.toFixed(0)}</td>
      <td class="num">${t.power_w.toFixed(0)} W</td><td class="num">${t.temperature_c} °C</td>
      <td>${esc(t.clock_events.filter((e) => e !== "gpu_idle").join(", "))}</td></tr>`).join("");
    return `<h3>GPU during each request</h3><div class="table-wrap"><table><thead><tr><th class="num">#</th>
      <th class="num">SM clock MHz</th><th class="num">memory clock MHz</th><th class="num">power</th>
      <th class="num">temperature</th><th>clock events</th></tr></thead><tbody>${rows}</tbody></table></div>`;
  }

  function inputs(s) {
    const kept = new Set(s.outputs);
    const whyMissing = s.state === "scored"
      ? "not kept: an ended run keeps only the best submissions' images"
      : "no image kept: only scored submissions' images are stored";
    return s.inputs.map((input) => {
      const sim = s.similarities[input.index];
      const baseline = s.baseline_outputs
        ? EM.image(EM.outputUrl(s.run_id, s.baseline_outputs, input.index), `baseline, input ${input.index + 1}`, "baseline")
        : EM.missing("baseline image not kept", "baseline");
      const mine = kept.has(input.index)
        ? EM.image(EM.outputUrl(s.run_id, s.hotkey, input.index), `submission, input ${input.index + 1}`, "this submission")
        : EM.missing(whyMissing, "this submission");
      const simLine = isNum(sim)
        ? `<div class="similarity"><span>similarity <b class="sim-value">${sim.toFixed(4)}</b></span>
            <meter min="0" max="1" low="${s.rules ? s.rules.similarity_floor : 0.75}" optimum="1" value="${sim}"></meter></div>`
        : `<div class="similarity dim">no similarity measured</div>`;
      return `<article class="card input" data-index="${input.index}">
        <p class="prompt"><span class="dim">#${input.index + 1}</span> ${esc(input.prompt)}
          <span class="dim">(${input.width}×${input.height}, seed ${input.seed})</span></p>
        <div class="pair">${baseline}${mine}</div>${simLine}</article>`;
    }).join("");
  }

  // The benchmark job's time: the submission's own work, and what measuring it cost the validator.
  function jobTime(t, onGpu) {
    if (!t) return "";
    const other = t.validator_s - t.sandbox_start_s - t.teardown_s - t.similarity_s;
    const share = isNum(t.validator_share) ? ` (${(100 * t.validator_share).toFixed(1)} %)` : "";
    return `<p class="dim" id="job-time">Its benchmark job held ${onGpu ? "the GPU" : "its worker"} ${secs(t.held_s, 1)}: its own load, warm-up
      and requests ${secs(t.own_s, 1)}; the validator's ${secs(t.validator_s, 1)}${share}: sandbox start
      ${secs(t.sandbox_start_s, 2)}, stop ${secs(t.teardown_s, 2)}, similarity ${secs(t.similarity_s, 2)},
      the rest ${secs(Math.max(other, 0), 2)}${t.baseline_s >= 0.5 ? `; the baseline measured first ${secs(t.baseline_s, 1)}` : ""}.</p>`;
  }

  async function main() {
    EM.nav("");
    const runId = EM.params.get("run");
    const hotkey = EM.params.get("hotkey");
    const error = $("#error");
    if (!runId || !hotkey) {
      EM.showError(error, "this page needs ?run=RUN_ID&hotkey=HOTKEY (follow a link from the leaderboard)");
      return;
    }
    try {
      const s = await get(`/v1/runs/${encodeURIComponent(runId)}/submissions/${encodeURIComponent(hotkey)}`);
      document.title = `${short(s.hotkey)} · edgemaxx`;
      $("#title").innerHTML = `<span title="${esc(s.hotkey)}">${esc(short(s.hotkey))}</span> ${badge(s.state)}`;
      $("#meta").innerHTML = `<span>score <b>${num(s.score)}</b></span>
        <span>rank <b>${s.rank ?? "—"}</b></span><span>weight <b>${isNum(s.weight) ? s.weight.toFixed(3) : "—"}</b></span>
        <span>${EM.repoLink(s.repository, s.revision)}</span>
        ${s.uid !== null && s.uid >= 0 ? `<span>uid <b>${s.uid}</b></span>` : ""}
        ${s.block !== null ? `<span>committed at block <b>${s.block}</b></span>` : ""}
        <span>run <a href="/?run=${encodeURIComponent(s.run_id)}">${esc(s.run_id)}</a> (${esc(s.run_state)})</span>
        <span>measured on <b>${esc(s.gpu || (s.metrics ? "CPU" : "—"))}</b>${s.worker ? " by " + esc(s.worker) : ""}</span>
        <span>updated ${esc(when(s.updated_at))}</span>`;
      const notes = [];
      if (s.reason) notes.push(`<div class="error reason">${esc(s.state)}: ${esc(s.reason)}</div>`);
      if (s.flagged) notes.push(`<div class="note flag">${esc(s.flagged)}</div>`);
      if (s.remeasure_note) notes.push(`<div class="note remeasure">${esc(s.remeasure_note)}</div>`);
      $("#notes").innerHTML = notes.join("");
      if (s.metrics) metricsTable(s);
      const mine = s.metrics ? s.metrics.generation_times_s : [];
      const base = s.baseline ? s.baseline.metrics.generation_times_s : [];
      if (mine.length || base.length) {
        $("#chart").innerHTML = chart(mine, base);
        $("#telemetry").innerHTML = telemetry(s.metrics ? s.metrics.gpu_telemetry : []) + jobTime(s.timings, Boolean(s.gpu));
        $("#timing").hidden = false;
      }
      $("#outputs-note").textContent = s.outputs.length
        ? "The baseline's output (left) and this submission's (right) for the same request, with their similarity."
        : "";
      $("#inputs").innerHTML = inputs(s);
      if (s.log_tail && s.log_tail.trim()) {
        $("#log-tail").textContent = s.log_tail;
        $("#log").hidden = false;
        $("#log-details").open = s.state === "invalid" || s.state === "error";  // why it failed, up front
      }
    } catch (e) {
      EM.showError(error, e);
    }
  }
  main();
})();

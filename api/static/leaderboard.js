// The leaderboard of a run (the current one of a contest, or any past one): GET /v1/runs/{id}.
"use strict";

(() => {
  const {esc, $, get, num, secs, bytes, badge, ratio, ratioTag, short, when, ago, isNum} = EM;
  const TERM_LABELS = {generation_time: "time", similarity: "similarity", vram: "VRAM", energy: "energy",
                       ram: "RAM", size: "size", load_time: "load"};
  // [summary key, column label, formatter]: each shown with its ratio to the baseline.
  const METRICS = [
    ["median_generation_time_s", "gen median", (x) => secs(x)],
    ["load_time_s", "load", (x) => secs(x, 2)],
    ["peak_vram_bytes", "VRAM", bytes],
    ["energy_per_image_j", "energy/img", (x) => (isNum(x) ? x.toFixed(1) + " J" : "—")],
    ["peak_ram_bytes", "RAM", bytes],
    ["size_bytes", "size", bytes],
  ];
  let sortState = null;  // [key, desc]: kept across refreshes

  function terms(rules) {
    if (!rules) return [];
    return Object.entries(rules.weights).filter(([, w]) => w > 0).map(([name, w]) => [name, w]);
  }

  function header(termList) {
    const cells = [["rank", "#", "num"], ["hotkey", "hotkey", ""], ["state", "state", ""], ["score", "score", "num"],
      ...termList.map(([name, w]) => [`term-${name}`, `${TERM_LABELS[name] || name} term (w ${w})`, "num"]),
      ["sim-mean", "similarity mean / min", "num"],
      ...METRICS.map(([key, label]) => [key, label, "num"]),
      ["weight", "weight", "num"], ["gpu", "GPU · host", ""], ["reason", "flags / reason", ""]];
    return cells.map(([key, label, cls]) => `<th data-key="${key}" class="${cls}">${esc(label)}</th>`).join("");
  }

  function metricCells(summary, baseSummary) {
    return METRICS.map(([key, , fmt]) => {
      const value = summary ? summary[key] : null;
      const r = baseSummary ? ratio(baseSummary[key], value) : null;
      return `<td class="num" data-v="${isNum(value) ? value : ""}">${fmt(value)}${ratioTag(r)}</td>`;
    }).join("");
  }

  function baselineRow(b, termList) {
    const termCells = termList.map(() => `<td class="num" data-v="1">1.0000</td>`).join("");
    return `<tr class="baseline" data-hotkey="baseline@${esc(b.worker)}">
      <td class="num" data-v="">—</td><td data-v="baseline"><b>baseline</b> <span class="dim">on ${esc(b.worker)}</span></td>
      <td data-v="baseline">${badge("baseline")}</td><td class="num" data-v="1">1.000</td>${termCells}
      <td class="num" data-v="1">1.000 / 1.000</td>${metricCells(b.summary, b.summary)}
      <td class="num" data-v="">—</td><td data-v="${esc(b.gpu || "cpu")}">${esc(b.gpu || "CPU")}</td><td></td></tr>`;
  }

  function row(r, run, termList, baselineOf) {
    const base = baselineOf(r.worker);
    const href = `/submission?run=${encodeURIComponent(run.id)}&hotkey=${encodeURIComponent(r.hotkey)}`;
    const termCells = termList.map(([name]) => {
      const v = r.score_terms ? r.score_terms[name] : undefined;
      return `<td class="num" data-v="${isNum(v) ? v : ""}">${isNum(v) ? v.toFixed(4) : "—"}</td>`;
    }).join("");
    const similarity = isNum(r.similarity_mean) ? `${num(r.similarity_mean)} / ${num(r.similarity_min)}` : "—";
    const notes = [r.reason ? `<span class="reason">${esc(r.reason)}</span>` : "",
                   r.flagged ? `<span class="flag">${esc(r.flagged)}</span>` : ""].filter(Boolean).join("<br>");
    return `<tr data-hotkey="${esc(r.hotkey)}" data-state="${esc(r.state)}">
      <td class="num" data-v="${r.rank ?? ""}">${r.rank ?? "—"}</td>
      <td data-v="${esc(r.hotkey)}"><a href="${href}" title="${esc(r.hotkey)}">${esc(short(r.hotkey))}</a>
        ${r.uid !== null && r.uid >= 0 ? `<span class="dim">uid ${r.uid}</span>` : ""}</td>
      <td data-v="${esc(r.state)}">${badge(r.state)}</td>
      <td class="num" data-v="${isNum(r.score) ? r.score : ""}"><b>${num(r.score)}</b></td>${termCells}
      <td class="num" data-v="${isNum(r.similarity_mean) ? r.similarity_mean : ""}">${similarity}</td>
      ${metricCells(r.summary, base ? base.summary : null)}
      <td class="num" data-v="${isNum(r.weight) ? r.weight : ""}">${isNum(r.weight) ? r.weight.toFixed(3) : "—"}</td>
      <td data-v="${esc(r.gpu || "")}">${r.summary ? esc(r.gpu || "CPU") : "—"}${r.host ? ` <span class="dim">on ${esc(r.host)}</span>` : ""}</td>
      <td class="wrap" data-v="${esc(r.reason || r.flagged)}">${notes}</td></tr>`;
  }

  async function render(runId) {
    const run = await get(`/v1/runs/${encodeURIComponent(runId)}`);
    const termList = terms(run.rules);
    const baselineOf = (worker) => run.baselines.find((b) => b.worker === worker) || run.baselines[0] || null;
    $("#board-head").innerHTML = header(termList);
    const rows = run.baselines.map((b) => baselineRow(b, termList)).join("") +
      run.leaderboard.map((r) => row(r, run, termList, baselineOf)).join("");
    const body = $("#board tbody");
    body.innerHTML = rows || `<tr><td colspan="20" class="dim">no submissions in this run yet</td></tr>`;
    EM.sortable($("#board"), (key, desc) => { sortState = [key, desc]; });
    if (sortState) {
      const th = $(`#board th[data-key="${sortState[0]}"]`);
      if (th) { th.classList.add(sortState[1] ? "desc" : "asc"); EM.sortRows($("#board"), ...sortState); }
    }
    const counts = Object.entries(run.states).map(([s, n]) => `${n} ${esc(s)}`).join(", ") || "none";
    const ended = run.finished_at ? ` · ended ${esc(when(run.finished_at))}: ${esc(run.end_reason)}` : "";
    $("#run-meta").innerHTML = `<span>${badge(run.state)}</span><span>contest <b>${esc(run.contest)}</b></span>
      <span>started <b>${esc(when(run.started_at))}</b> (${esc(ago(run.started_at))})${ended}</span>
      <span>${run.inputs} inputs · seed <code title="${esc(run.seed)}">${esc(run.seed.slice(0, 18))}</code></span>
      <span>submissions: ${counts}</span>
      ${run.winner ? `<span>winner <b>${esc(short(run.winner))}</b></span>` : ""}
      ${run.rules ? `<span>similarity floor ${run.rules.similarity_floor} · noise margin ${run.rules.noise_margin}</span>` : ""}`;
    $("#demo-link").href = `/demo?run=${encodeURIComponent(run.id)}`;
    document.title = `Leaderboard ${run.contest} · edgemaxx`;
    return run;
  }

  async function main() {
    EM.nav("/");
    const error = $("#error");
    try {
      const {runs, current} = await EM.runChoices();
      const selected = EM.params.get("run") || runs[0]?.id;
      const select = $("#run");
      select.innerHTML = runs.map((r) => EM.runOption(r, current, selected)).join("");
      if (selected && !runs.some((r) => r.id === selected)) {
        select.insertAdjacentHTML("afterbegin", `<option value="${esc(selected)}" selected>${esc(selected)}</option>`);
      }
      select.addEventListener("change", () => { location.search = `?run=${encodeURIComponent(select.value)}`; });
      if (!selected) {
        $("#board tbody").innerHTML = `<tr><td class="dim">no contest run yet</td></tr>`;
        return;
      }
      const run = await render(selected);
      if (run.state === "running") EM.poll(() => render(selected), 5000, false);
    } catch (e) {
      EM.showError(error, e);
    }
  }
  main();
})();

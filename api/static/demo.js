// The best submissions of a run and the baseline on the same prompts, in a grid (one row per input).
"use strict";

(() => {
  const {esc, $, get, num, short} = EM;

  async function render(runId, top) {
    const [run, outputs, inputs] = await Promise.all([
      get(`/v1/runs/${encodeURIComponent(runId)}`), get(`/v1/runs/${encodeURIComponent(runId)}/outputs`),
      get(`/v1/runs/${encodeURIComponent(runId)}/inputs`)]);
    const kept = outputs.outputs;
    const baseline = Object.keys(kept).find((name) => name.startsWith("baseline@"));
    const best = run.leaderboard.filter((r) => r.state === "scored" && kept[r.hotkey]).slice(0, top);
    const columns = [
      ...(baseline ? [{name: baseline, head: `<b>baseline</b><br><span class="dim">score 1.000</span>`}] : []),
      ...best.map((r) => ({name: r.hotkey, head: `<a href="/submission?run=${encodeURIComponent(run.id)}&hotkey=${
        encodeURIComponent(r.hotkey)}" title="${esc(r.hotkey)}">#${r.rank} ${esc(short(r.hotkey))}</a><br>
        <span class="dim">score ${num(r.score)}</span>`, similarities: r.similarities})),
    ];
    const grid = $("#grid");
    if (!columns.length) {
      grid.innerHTML = `<p class="dim">No images kept for this run yet (scored submissions' images appear as they land).</p>`;
      return;
    }
    grid.style.gridTemplateColumns = `minmax(8rem, 14rem) repeat(${columns.length}, minmax(110px, 1fr))`;
    const cells = [`<div class="head">prompt</div>`, ...columns.map((c) => `<div class="head">${c.head}</div>`)];
    for (const input of inputs.inputs) {
      cells.push(`<div class="prompt"><span class="dim">#${input.index + 1}</span> ${esc(input.prompt)}</div>`);
      for (const c of columns) {
        const has = (kept[c.name] || []).includes(input.index);
        const sim = c.similarities ? c.similarities[input.index] : undefined;
        const caption = sim !== undefined ? `similarity ${sim.toFixed(3)}` : "";
        cells.push(has ? EM.image(EM.outputUrl(run.id, c.name, input.index), `${c.name}, input ${input.index + 1}`, caption)
                       : EM.missing("no image", caption));
      }
    }
    grid.innerHTML = cells.join("");
    document.title = `Model demo ${run.contest} · edgemaxx`;
  }

  async function main() {
    EM.nav("/demo");
    try {
      const {runs, current} = await EM.runChoices();
      const selected = EM.params.get("run") || (runs.find((r) => (r.states.scored || 0) > 0) || runs[0])?.id;
      const top = Math.max(1, Math.min(5, Number(EM.params.get("top")) || 4));
      $("#run").innerHTML = runs.map((r) => EM.runOption(r, current, selected)).join("");
      $("#top").value = String(top);
      const go = () => { location.search = `?run=${encodeURIComponent($("#run").value)}&top=${$("#top").value}`; };
      $("#run").addEventListener("change", go);
      $("#top").addEventListener("change", go);
      if (selected) await render(selected, top);
      else $("#grid").innerHTML = `<p class="dim">no contest run yet</p>`;
    } catch (e) {
      EM.showError($("#error"), e);
    }
  }
  main();
})();

// Every validator's weights as the chain holds them: GET /v1/subnet/weights.
"use strict";

(() => {
  const {esc, $, get, num, pct, short, when, ago, ApiError} = EM;
  const DISAGREE = 0.25;  // a spread (highest − lowest weight) above this is where validators part
  const MATRIX_MINERS = 12;

  const heat = (w) => `heat h${Math.min(9, Math.round(w * 9))}`;

  function render(view) {
    $("#meta").innerHTML = `<span>netuid <b>${view.netuid}</b></span><span>block <b>${view.block}</b></span>
      <span>read <b>${when(view.read_at)}</b> (${ago(view.read_at)})</span>
      <span>validators <b>${view.validators.length}</b></span>` +
      (view.error ? `<span class="bad">last read failed: ${esc(view.error)}</span>` : "");
    const validators = view.validators.map((v) => `<tr${v.this_validator ? ' class="mine"' : ""}>
      <td class="num" data-v="${v.uid}">${v.uid}</td>
      <td class="mono" data-v="${esc(v.hotkey)}" title="${esc(v.hotkey)}">${esc(short(v.hotkey))}${v.this_validator ? " (this validator)" : ""}</td>
      <td class="num" data-v="${v.stake}">${v.stake.toFixed(1)}</td>
      <td class="num" data-v="${v.stake_share}">${pct(v.stake_share)}</td>
      <td class="num" data-v="${v.blocks_since_update ?? ""}">${v.blocks_since_update ?? "never"}</td>
      <td class="num" data-v="${v.agreement ?? ""}">${num(v.agreement)}</td>
      <td class="mono wrap">${v.top.map((m) => `${m.uid}: ${m.weight.toFixed(3)}`).join(", ") || '<span class="dim">no weights</span>'}</td></tr>`);
    $("#validators tbody").innerHTML = validators.join("") || `<tr><td colspan="7" class="dim">no validator</td></tr>`;
    const miners = view.miners.map((m) => {
      const spread = m.max - m.min;
      return `<tr><td class="num" data-v="${m.uid}">${m.uid}</td>
        <td class="mono" data-v="${esc(m.hotkey || "")}" title="${esc(m.hotkey || "")}">${esc(short(m.hotkey || "—"))}</td>
        <td class="num" data-v="${m.consensus}">${m.consensus.toFixed(4)}</td>
        <td class="num" data-v="${m.min}">${m.min.toFixed(4)}</td><td class="num" data-v="${m.max}">${m.max.toFixed(4)}</td>
        <td class="num${spread > DISAGREE ? " disagree" : ""}" data-v="${spread}">${spread.toFixed(4)}</td>
        <td class="num" data-v="${m.weighted_by}">${m.weighted_by}</td></tr>`;
    });
    $("#miners tbody").innerHTML = miners.join("") || `<tr><td colspan="7" class="dim">no weights set yet</td></tr>`;
    const columns = view.miners.slice(0, MATRIX_MINERS);
    const setting = view.validators.filter((v) => Object.keys(v.weights).length);
    $("#matrix thead").innerHTML = `<tr><th>validator \\ miner</th>${columns.map((m) => `<th class="num">${m.uid}</th>`).join("")}</tr>`;
    $("#matrix tbody").innerHTML = setting.map((v) => `<tr${v.this_validator ? ' class="mine"' : ""}>
      <td class="mono">${v.uid} · ${esc(short(v.hotkey))}</td>${columns.map((m) => {
        const w = v.weights[m.uid] ?? 0;
        return `<td class="${heat(w)}" title="validator ${v.uid} → miner ${m.uid}">${w ? w.toFixed(2) : "·"}</td>`;
      }).join("")}</tr>`).join("");
  }

  async function main() {
    EM.nav("/weights");
    EM.sortable($("#validators"));
    EM.sortable($("#miners"));
    await EM.poll(async () => {
      try {
        render(await get("/v1/subnet/weights"));
        $("#error").hidden = true;
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          $("#meta").innerHTML = `<span class="dim">${esc(e.message)}</span>`;
        } else {
          EM.showError($("#error"), e);
        }
      }
    }, 15000);
  }
  main();
})();

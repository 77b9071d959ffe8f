"use strict";
// The overview polls the JSON API; the live websocket feed replaces the
// polling when it lands (issue: web dashboard).
const $ = (id) => document.getElementById(id);

function fmtHashrate(hs) {
  if (!isFinite(hs) || hs <= 0) return "0 H/s";
  const units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];
  let i = 0;
  while (hs >= 1000 && i < units.length - 1) { hs /= 1000; i++; }
  return hs.toFixed(hs < 10 ? 2 : 1) + " " + units[i];
}
function fmtBTC(sat) { return (sat / 1e8).toFixed(8) + " BTC"; }
function text(el, v) { el.textContent = v; }

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

async function refresh() {
  try {
    const [s, b] = await Promise.all([getJSON("/api/v1/stats"), getJSON("/api/v1/blocks?limit=20")]);
    text($("stratum-url"), s.stratum_url);
    text($("hr10m"), fmtHashrate(s.hashrate["10m"]));
    text($("hr1h"), fmtHashrate(s.hashrate["1h"]));
    text($("workers"), s.workers_online);
    text($("height"), s.network_height || "–");
    text($("accepted"), s.shares_accepted);
    text($("rejected"), Object.values(s.shares_rejected || {}).reduce((a, n) => a + n, 0));
    const tbody = $("blocks");
    tbody.replaceChildren();
    if (b.blocks.length === 0) {
      const tr = tbody.insertRow(); const td = tr.insertCell(); td.colSpan = 6; td.textContent = "none yet";
    }
    for (const blk of b.blocks) {
      const tr = tbody.insertRow();
      tr.insertCell().textContent = blk.height;
      const h = tr.insertCell(); h.className = "hash"; h.textContent = blk.hash; h.title = blk.hash;
      tr.insertCell().textContent = fmtBTC(blk.reward_sat);
      tr.insertCell().textContent = blk.worker ? blk.finder + "." + blk.worker : blk.finder;
      const st = tr.insertCell();
      st.textContent = blk.accepted ? (blk.status || "accepted") : "rejected: " + blk.verdict;
      st.className = blk.accepted ? "ok" : "bad";
      tr.insertCell().textContent = new Date(blk.found_at).toLocaleString();
    }
    const status = $("status"); status.textContent = "live"; status.className = "status live";
  } catch (e) {
    const status = $("status"); status.textContent = "pool unreachable"; status.className = "status down";
  }
}
refresh();
setInterval(refresh, 5000);

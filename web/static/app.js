"use strict";
// hashforge dashboard. Every page loads its state from the JSON API once,
// then keeps it current from the websocket feed (/api/v1/ws), without a
// reload. If the feed drops, the page reconnects with backoff and reloads
// its state, since messages sent meanwhile are gone. If the server refuses
// the feed (full, or too many from this address), the page polls the API
// instead, says so, and tries the feed again now and then.

const $ = (id) => document.getElementById(id);
const page = document.body.dataset.page;
// The server's settings (web.pageData): the polling interval when the
// feed is refused, and the characters shown() escapes.
const POLL_MS = Number(document.body.dataset.pollMs) || 10000;
const FEED_RETRY_MS = Math.max(3 * POLL_MS, 3000);
const HIDDEN = new RegExp("[" + document.body.dataset.hidden + "]", "gu");

// shown is text from outside (a worker name a miner chose, a verdict, an
// address from the URL) as the page may display it: bidi controls and
// every other invisible control or format character escaped (\u202E), so
// no name can pass for another. Same rule as web.Shown on the server. Use
// it on every such string, and only on those (the browser's own number
// and date formatting may carry direction marks on purpose).
function shown(s) {
  if (s == null) return "";
  return String(s).replace(HIDDEN, (c) => {
    const cp = c.codePointAt(0);
    return cp <= 0xFFFF ? "\\u" + cp.toString(16).toUpperCase().padStart(4, "0")
      : "\\U" + cp.toString(16).toUpperCase().padStart(8, "0");
  });
}

// ---- formatting -----------------------------------------------------------

const HR_UNITS = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s", "ZH/s"];
function fmtHashrate(hs) {
  if (!Number.isFinite(hs) || hs <= 0) return "0 H/s";
  let i = 0;
  while (hs >= 999.5 && i < HR_UNITS.length - 1) { hs /= 1000; i++; }
  // Below 1 H/s (a regtest pool, whose shares are worth almost nothing)
  // two significant digits, so a small hashrate never reads as 0.00.
  if (i === 0 && hs < 1) return Number(hs.toPrecision(2)) + " H/s";
  return hs.toFixed(hs < 10 ? 2 : hs < 100 ? 1 : 0) + " " + HR_UNITS[i];
}
function fmtNum(n, digits) {
  if (!Number.isFinite(n)) return "–";
  return n.toLocaleString(undefined, { maximumFractionDigits: digits ?? 0 });
}
function fmtDifficulty(d) {
  if (!Number.isFinite(d) || d <= 0) return "–";
  if (d < 0.01) return d.toExponential(2);
  const units = ["", " k", " M", " G", " T", " P", " E"];
  let i = 0;
  while (d >= 1000 && i < units.length - 1) { d /= 1000; i++; }
  return (i ? d.toFixed(d < 10 ? 2 : 1) : fmtNum(d, d < 10 ? 4 : 2)) + units[i];
}
// Axis ticks share one unit, with as many decimals as the step between
// them needs: "0.01, 0.01, 0.01" would say nothing.
function fmtHashrateTicks(vals) {
  const top = Math.max(...vals.map(Math.abs), 0);
  let i = 0, div = 1;
  while (top / div >= 1000 && i < HR_UNITS.length - 1) { div *= 1000; i++; }
  const step = vals.length > 1 ? Math.abs(vals[1] - vals[0]) / div : 1;
  const dec = step > 0 ? Math.min(8, Math.max(0, -Math.floor(Math.log10(step)))) : 0;
  return vals.map((v) => v == null ? "" : (v / div).toFixed(dec) + " " + HR_UNITS[i]);
}
// Satoshis to BTC with string arithmetic: amounts are integers and stay exact.
function fmtBTC(sat, noUnit) {
  if (!Number.isInteger(sat)) return "–";
  const neg = sat < 0; sat = Math.abs(sat);
  const whole = Math.floor(sat / 1e8), frac = String(sat % 1e8).padStart(8, "0");
  return (neg ? "-" : "") + whole.toLocaleString() + "." + frac + (noUnit ? "" : " BTC");
}
function ago(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return "–";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}
function short(hash) { return hash && hash.length > 20 ? hash.slice(0, 10) + "…" + hash.slice(-8) : hash || ""; }
function text(id, v) { const el = $(id); if (el) el.textContent = v; }
function cell(tr, content, cls, title) {
  const td = tr.insertCell();
  if (content instanceof Node) td.append(content); else td.textContent = content;
  if (cls) td.className = cls;
  if (title) td.title = title;
  return td;
}
function link(href, label) { const a = document.createElement("a"); a.href = href; a.textContent = label; return a; }
function timeCell(tr, iso) {
  const td = cell(tr, ago(iso), "time", iso ? new Date(iso).toLocaleString() : "");
  td.dataset.time = iso || "";
}
function emptyRow(tbody, cols, msg) {
  tbody.replaceChildren();
  const tr = tbody.insertRow(); tr.className = "empty";
  const td = tr.insertCell(); td.colSpan = cols; td.textContent = msg;
}
// Relative times age in place; every 10 s is plenty for minutes and hours.
setInterval(() => {
  for (const td of document.querySelectorAll("td.time[data-time]")) td.textContent = ago(td.dataset.time);
}, 10000);

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON: reported below */ }
  if (!r.ok) throw new Error((body && body.error) || path + ": HTTP " + r.status);
  return body;
}

function setStatus(cls, label) {
  const el = $("status");
  el.className = "status " + cls;
  el.textContent = label;
}

// ---- live feed ------------------------------------------------------------

// openFeed connects to the websocket and calls onMessage for every
// message; onOpen runs on every (re)connection so the page can reload
// what it may have missed. While the server refuses the feed, poll runs
// every POLL_MS instead and a notice says so.
function openFeed(query, onMessage, onOpen, poll) {
  const path = "/api/v1/ws" + query;
  const notice = $("feed-notice");
  let delay = 1000;
  let pollTimer = null;
  const pollNow = () => poll().then(() => setStatus("polling", "polling"), (e) => setStatus("down", e.message));
  const startPolling = () => {
    notice.textContent = "live feed full — updating every " + fmtNum(POLL_MS / 1000, 1) + " s";
    notice.hidden = false;
    if (pollTimer === null) { pollNow(); pollTimer = setInterval(pollNow, POLL_MS); }
  };
  const stopPolling = () => {
    clearInterval(pollTimer); pollTimer = null;
    notice.hidden = true;
  };
  // A browser's WebSocket hides why a handshake failed; the server
  // answers a plain GET of the feed's URL with the same refusal (503 full,
  // 429 too many from this address) when there is no room.
  const refused = async () => {
    try {
      const r = await fetch(path, { cache: "no-store" });
      return r.status === 503 || r.status === 429;
    } catch (_) { return false; }
  };
  const connect = () => {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + path);
    let opened = false;
    ws.onopen = () => { opened = true; delay = 1000; stopPolling(); setStatus("live", "live"); onOpen(); };
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch (_) { return; }
      onMessage(m);
    };
    ws.onclose = async () => {
      if (!opened && await refused()) {
        startPolling();
        setTimeout(connect, FEED_RETRY_MS);
        return;
      }
      if (pollTimer === null) setStatus("down", "reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  };
  connect();
}

// ---- charts ---------------------------------------------------------------

const css = getComputedStyle(document.documentElement);
const C = {
  accent: css.getPropertyValue("--accent").trim() || "#f7931a",
  muted: css.getPropertyValue("--muted").trim() || "#8b98a5",
  grid: css.getPropertyValue("--grid").trim() || "#263241",
};
const PALETTE = [C.accent, "#58a6ff", "#3fb950", "#d2a8ff", "#ffa657", "#79c0ff", "#f778ba", "#a5d6ff"];

function hashrateChart(el, label, color, height) {
  // The plot fills the content box; clientWidth includes the padding.
  const width = () => {
    const cs = getComputedStyle(el);
    return Math.max(el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight), 240);
  };
  const axis = { stroke: C.muted, grid: { stroke: C.grid, width: 1 }, ticks: { stroke: C.grid, width: 1 } };
  const u = new uPlot({
    width: width(), height: height || 220,
    cursor: { drag: { x: false, y: false } },
    legend: { show: true },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    series: [
      { value: (u, v) => v == null ? "–" : new Date(v * 1000).toLocaleString() },
      { label, stroke: color, width: 2, fill: color + "26", points: { show: false },
        value: (u, v) => v == null ? "–" : fmtHashrate(v) },
    ],
    axes: [axis, { ...axis, size: 78, values: (u, vals) => fmtHashrateTicks(vals) }],
  }, [[], []], el);
  new ResizeObserver(() => u.setSize({ width: width(), height: height || 220 })).observe(el);
  return u;
}

// ---- blocks table (overview and blocks page) ------------------------------

// blockRow adds b's row at the end, or with live set where it belongs
// among rows newest first (the API's order): events from concurrent block
// submissions may arrive in any order.
function blockRow(tbody, b, live) {
  let at = -1;
  if (live) {
    const t = Date.parse(b.found_at);
    at = 0;
    for (const row of tbody.rows) {
      if (!(Date.parse(row.querySelector("td.time")?.dataset.time) > t)) break;
      at++;
    }
  }
  const tr = tbody.insertRow(at);
  tr.dataset.hash = b.hash;
  cell(tr, fmtNum(b.height));
  cell(tr, short(b.hash), "hash mono", b.hash);
  cell(tr, fmtBTC(b.reward_sat), "num");
  cell(tr, b.finder ? link("/miner/" + encodeURIComponent(b.finder), shown(short(b.finder) + (b.worker ? "." + b.worker : ""))) : "–");
  // An unknown block (no clear answer from the node) waits for the chain.
  const st = b.accepted || b.status !== "rejected" ? b.status : "rejected: " + b.verdict;
  const cls = b.status === "unknown" ? "" : b.accepted && b.status !== "orphaned" ? "ok" : "bad";
  cell(tr, shown(st), cls, shown(b.verdict));
  timeCell(tr, b.found_at);
  return tr;
}

// ---- overview -------------------------------------------------------------

function plural(n, one, many) { return fmtNum(n) + " " + (n === 1 ? one : many); }
function fmtMillis(ms) {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  return ms < 0.01 ? "< 0.01 ms" : fmtNum(ms, 2) + " ms";
}

function overview() {
  const chartEl = $("pool-chart");
  const chart = hashrateChart(chartEl, "pool hashrate", C.accent);
  let series = [[], []];
  let historyLoaded = false;
  let chartWindow = "24h";
  let historySeq = 0; // the newest history request; older answers are dropped

  async function loadHistory() {
    const seq = ++historySeq;
    const h = await getJSON("/api/v1/hashrate?window=" + chartWindow);
    if (seq !== historySeq) return;
    series = [h.time, h.hashrate];
    historyLoaded = true;
    chart.setData(series);
  }
  for (const btn of document.querySelectorAll("#chart-range button")) {
    btn.addEventListener("click", () => {
      chartWindow = btn.dataset.window;
      for (const b of document.querySelectorAll("#chart-range button")) b.classList.toggle("active", b === btn);
      loadHistory().catch((e) => setStatus("down", e.message));
    });
  }
  let lastBlockAt = null;
  function showLastBlock(height, at) {
    text("lastblock", height == null ? "none yet" : fmtNum(height));
    lastBlockAt = at;
    text("lastblock-ago", at ? ago(at) : "");
  }
  setInterval(() => { if (lastBlockAt) text("lastblock-ago", ago(lastBlockAt)); }, 10000);

  function showStats(s) {
    const url = shown(s.stratum_url);
    text("stratum-url", url);
    text("connect-example", "hashforge mine --url " + url + " --user YOUR_ADDRESS.rig1\n" +
      "cpuminer -a sha256d -o " + url + " -u YOUR_ADDRESS.rig1 -p x");
    text("hr10m", fmtHashrate(s.hashrate["10m"]));
    text("hr1h", fmtHashrate(s.hashrate["1h"]));
    text("hr24h", fmtHashrate(s.hashrate["24h"]));
    text("miners", fmtNum(s.miners_online));
    text("workers", fmtNum(s.workers_online));
    text("sps", fmtNum(s.shares_per_second, 2));
    text("shares", fmtNum(s.shares_accepted) + " / " + fmtNum(s.shares_rejected_total));
    text("height", s.network_height ? fmtNum(s.network_height) : "–");
    text("netdiff", fmtDifficulty(s.network_difficulty));
    showNodes(s.nodes || []);
    if (s.last_block) showLastBlock(s.last_block.height, s.last_block.found_at);
    else showLastBlock(null, null);
    $("lastblock").title = s.last_block ? s.last_block.hash : "";
    // The 10-minute figure at "now" is the same kind of number as each
    // history point (a 10-minute average ending at its time): append it.
    if (historyLoaded) {
      const t = Math.floor(Date.parse(s.updated_at) / 1000);
      if (series[0].length === 0 || t > series[0][series[0].length - 1]) {
        series[0].push(t); series[1].push(s.hashrate["10m"]);
        chart.setData(series);
      }
    }
  }

  // showNodes lists the pool nodes when there is more than one: the
  // figures above are the whole pool's, these each node's.
  function showNodes(nodes) {
    const section = $("nodes-section");
    if (!section) return;
    section.hidden = nodes.length < 2;
    const tbody = $("nodes");
    tbody.replaceChildren();
    for (const n of nodes) {
      const tr = tbody.insertRow();
      if (n.this) tr.className = "this";
      cell(tr, n.node_id + (n.this ? " (this one)" : ""));
      cell(tr, fmtNum(n.sessions), "num");
      cell(tr, fmtNum(n.workers_online), "num");
      cell(tr, fmtNum(n.miners_online), "num");
      cell(tr, fmtNum(n.shares_accepted), "num");
      cell(tr, fmtNum(n.blocks_found), "num");
      timeCell(tr, n.started_at);
      cell(tr, n.this ? "live" : fmtNum(n.heartbeat_age_seconds, 0) + " s", "num");
    }
  }

  // refresh reloads the stats and the blocks table: what polling needs
  // (the chart's history only grows by the stats' newest point).
  async function refresh() {
    const [s, b] = await Promise.all([getJSON("/api/v1/stats"), getJSON("/api/v1/blocks?limit=10")]);
    showStats(s);
    const tbody = $("blocks");
    if (b.blocks.length === 0) emptyRow(tbody, 6, "none yet");
    else { tbody.replaceChildren(); for (const blk of b.blocks) blockRow(tbody, blk, false); }
  }
  async function load() {
    try {
      await Promise.all([refresh(), loadHistory()]);
    } catch (e) {
      setStatus("down", e.message);
    }
  }

  openFeed("", (m) => {
    switch (m.type) {
      case "stats": showStats(m.data); break;
      case "block": {
        const tbody = $("blocks");
        const old = tbody.querySelector('tr[data-hash="' + CSS.escape(m.data.hash) + '"]');
        if (old) old.remove();
        const empty = tbody.querySelector("tr.empty");
        if (empty) empty.remove();
        blockRow(tbody, m.data, true).classList.add("fresh");
        while (tbody.rows.length > 10) tbody.deleteRow(-1);
        showLastBlock(m.data.height, m.data.found_at);
        $("lastblock").title = m.data.hash;
        break;
      }
      case "job":
        // A job builds the block after the tip: the network is at height - 1.
        if (m.data.height > 0) text("height", fmtNum(m.data.height - 1));
        text("netdiff", fmtDifficulty(m.data.network_difficulty));
        text("job-line", "Latest job: block " + fmtNum(m.data.height) + ", " + plural(m.data.transactions, "transaction", "transactions") +
          ", sent to " + plural(m.data.sessions, "connection", "connections") + " in " + fmtMillis(m.data.fanout_ms) +
          (m.data.clean ? " (new block)" : ""));
        break;
    }
  }, load, async () => {
    if (!historyLoaded) await loadHistory();
    await refresh();
  });
}

// ---- paged tables ---------------------------------------------------------

function paged(path, key, tbodyId, cols, render) {
  const limit = 50;
  let offset = Math.max(0, parseInt(new URLSearchParams(location.search).get("offset") || "0", 10) || 0);
  async function load() {
    const tbody = $(tbodyId);
    try {
      const r = await getJSON(path + "?limit=" + limit + "&offset=" + offset);
      if (r[key].length === 0) emptyRow(tbody, cols, offset ? "no more" : "none yet");
      else { tbody.replaceChildren(); for (const row of r[key]) render(tbody, row); }
      $("prev").disabled = offset === 0;
      $("next").disabled = !r.has_more;
      text("page-info", r[key].length ? (offset + 1) + "–" + (offset + r[key].length) : "");
      setStatus("live", "up to date");
    } catch (e) {
      emptyRow(tbody, cols, e.message);
      setStatus("down", "error");
      throw e;
    }
  }
  const go = (o) => { offset = Math.max(0, o); history.replaceState(null, "", "?offset=" + offset); load(); };
  $("prev").onclick = () => go(offset - limit);
  $("next").onclick = () => go(offset + limit);
  return load;
}

function blocksPage() {
  const load = paged("/api/v1/blocks", "blocks", "blocks", 6, (tb, b) => blockRow(tb, b, false));
  // New blocks arrive at the top: reload the first page when one does.
  const quiet = () => load().catch(() => {}); // load shows its errors
  openFeed("", (m) => { if (m.type === "block") quiet(); }, quiet, load);
}

function paymentsPage() {
  paged("/api/v1/payments", "payments", "payments", 6, (tb, p) => {
    const tr = tb.insertRow();
    timeCell(tr, p.created_at);
    cell(tr, p.state, p.state === "failed" ? "bad" : p.state === "confirmed" ? "ok" : "", shown(p.reason));
    cell(tr, fmtBTC(p.total_sat), "num");
    cell(tr, fmtBTC(p.fee_sat), "num");
    cell(tr, fmtNum(p.items), "num");
    cell(tr, p.txid ? short(p.txid) : "–", "hash mono", p.txid);
  })().catch(() => {});
}

// ---- miner page -----------------------------------------------------------

function minerPage() {
  const address = decodeURIComponent(location.pathname.slice("/miner/".length));
  text("address", shown(address));
  document.title = shown(short(address)) + " · hashforge pool";
  const charts = new Map(); // worker name → uPlot
  let reloadTimer = null;

  function render(m) {
    text("m-hashrate", fmtHashrate(m.hashrate));
    text("m-online", fmtNum(m.workers_online) + " / " + fmtNum(m.workers.length));
    if (m.balance) {
      text("m-immature", fmtBTC(m.balance.immature_sat, true));
      text("m-mature", fmtBTC(m.balance.mature_sat, true));
      text("m-paid", fmtBTC(m.balance.paid_sat, true));
    }
    const tbody = $("workers");
    if (m.workers.length === 0) emptyRow(tbody, 6, "no workers yet: connect one with this address as the username");
    else tbody.replaceChildren();
    for (const w of m.workers) {
      const tr = tbody.insertRow();
      tr.dataset.worker = w.name;
      cell(tr, shown(w.name) || "(unnamed)", "worker-name");
      cell(tr, w.online ? "online" + (w.connections > 1 ? " ×" + w.connections : "") : "offline", w.online ? "ok" : "muted");
      cell(tr, fmtHashrate(w.hashrate), "num");
      cell(tr, w.online ? fmtDifficulty(w.difficulty) : "–", "num");
      cell(tr, fmtNum(w.shares_10m), "num");
      if (w.last_seen) timeCell(tr, w.last_seen); else cell(tr, "–");
    }
    // One chart per worker with shares in the window, colours stable by order.
    const box = $("worker-charts");
    const withData = m.workers.filter((w) => w.hashrate_series.some((v) => v > 0) || w.online);
    for (const [name, u] of charts) {
      if (!withData.some((w) => w.name === name)) { u.root.parentElement.remove(); charts.delete(name); }
    }
    const now = Math.floor(Date.now() / 1000);
    const live = m.series_time.length === 0 || now > m.series_time[m.series_time.length - 1];
    withData.forEach((w, i) => {
      let u = charts.get(w.name);
      if (!u) {
        const wrap = document.createElement("div");
        wrap.className = "worker-chart";
        const h = document.createElement("h3"); h.textContent = shown(w.name) || "(unnamed)";
        const el = document.createElement("div"); el.className = "chart";
        wrap.append(h, el); box.append(wrap);
        u = hashrateChart(el, shown(w.name) || "(unnamed)", PALETTE[i % PALETTE.length], 160);
        charts.set(w.name, u);
      }
      // As on the overview, the current 10-minute figure is the
      // newest point: a young worker's line does not sit at zero until
      // its first bucket completes.
      if (live) u.setData([[...m.series_time, now], [...w.hashrate_series, w.hashrate]]);
      else u.setData([m.series_time, w.hashrate_series]);
    });
    if (withData.length === 0 && !box.querySelector(".empty")) {
      const p = document.createElement("p"); p.className = "muted empty"; p.textContent = "no shares in the last 24 hours";
      box.append(p);
    } else if (withData.length) box.querySelector(".empty")?.remove();

    const pt = $("payments");
    if (!m.balance) emptyRow(pt, 4, "payouts are not enabled on this pool");
    else if (m.payments.length === 0) emptyRow(pt, 4, "no payments yet");
    else {
      pt.replaceChildren();
      for (const p of m.payments) {
        const tr = pt.insertRow();
        timeCell(tr, p.created_at);
        cell(tr, p.state, p.state === "failed" ? "bad" : p.state === "confirmed" ? "ok" : "");
        cell(tr, fmtBTC(p.amount_sat), "num");
        cell(tr, p.txid ? short(p.txid) : "–", "hash mono", p.txid);
      }
    }
  }

  async function fetchAndRender() {
    render(await getJSON("/api/v1/miners/" + encodeURIComponent(address)));
  }
  async function load() {
    try {
      await fetchAndRender();
    } catch (e) {
      emptyRow($("workers"), 6, e.message);
      setStatus("down", e.message);
    }
  }
  // Several worker events in a burst (a rig with many boards) cost one
  // reload.
  const soon = () => { clearTimeout(reloadTimer); reloadTimer = setTimeout(load, 500); };
  let ticks = 0;
  openFeed("?address=" + encodeURIComponent(address), (m) => {
    if (m.type === "worker") soon();
    // Hashrates move slowly; a refresh every sixth stats tick (30 s) is enough.
    if (m.type === "stats" && ++ticks % 6 === 0) load();
    if (m.type === "block" && m.data.finder === address) soon();
  }, load, fetchAndRender);
}

// ---- shared header --------------------------------------------------------

for (const a of document.querySelectorAll("nav a")) {
  if (a.dataset.nav === page) a.classList.add("active");
}
$("lookup").addEventListener("submit", (e) => {
  e.preventDefault();
  const addr = $("lookup-addr").value.trim().split(".")[0];
  if (addr) location.href = "/miner/" + encodeURIComponent(addr);
});

({ overview, blocks: blocksPage, payments: paymentsPage, miner: minerPage })[page]();

// ryu-snat status page: polls the read-only REST API every POLL_MS and draws
// the tables.  Rates are computed here from successive polls (a ring of the
// last RING_MS of samples); nothing is kept on the server for the page.
// Every value is written with textContent, never as HTML.
"use strict";

const POLL_MS = 5000;
const RING_MS = 11 * 60 * 1000;
const ring = [];                    // {t: ms, v: {counter: total}}
const view = {after: 0, back: [], next: null};
const COUNTERS = [                  // [key, label, is a counter (else a gauge)]
  ["active", "live sessions", false],
  ["created", "sessions created", true],
  ["expired", "sessions expired", true],
  ["removed", "sessions removed", true],
  ["packet_ins", "packet-ins", true],
  ["drops", "drops (all reasons)", true],
  ["refused", "sessions refused", true],
  ["switch_drops", "switch drops", true],
];

function $(sel) { return document.querySelector(sel); }

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = el("tr");
  for (const c of cells) tr.append(c instanceof Node ? c : el("td", c));
  return tr;
}

function num(v) { return el("td", v, "num"); }

async function getJSON(path) {
  const resp = await fetch(path, {headers: {Accept: "application/json"}, cache: "no-store"});
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.error || resp.status + " " + resp.statusText);
  return {body: body, headers: resp.headers};
}

function total(obj) {
  return Object.values(obj || {}).reduce((a, b) => a + b, 0);
}

function remember(stats) {
  const v = {};
  for (const [key] of COUNTERS) {
    const raw = stats[key];
    v[key] = typeof raw === "object" ? total(raw) : (raw || 0);
  }
  const now = Date.now();
  ring.push({t: now, v: v});
  while (ring.length > 2 && now - ring[0].t > RING_MS) ring.shift();
}

// Per second over the last `ms` (the oldest sample inside it, else the oldest kept).
function rate(key, ms) {
  if (ring.length < 2) return "…";
  const last = ring[ring.length - 1];
  const first = ring.find(s => last.t - s.t <= ms) || ring[0];
  if (first === last) return "…";
  return ((last.v[key] - first.v[key]) * 1000 / (last.t - first.t)).toFixed(2);
}

// A sparkline of the last 10 minutes: per-poll rates (counters) or values.
function spark(key, isCounter) {
  const now = Date.now();
  const pts = ring.filter(s => now - s.t <= 10 * 60 * 1000);
  const ys = [];
  for (let i = isCounter ? 1 : 0; i < pts.length; i++) {
    ys.push(isCounter ? (pts[i].v[key] - pts[i - 1].v[key]) * 1000 / (pts[i].t - pts[i - 1].t)
                      : pts[i].v[key]);
  }
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 20");
  const line = document.createElementNS(ns, "polyline");
  const top = Math.max(1, ...ys);
  line.setAttribute("points", ys.map((y, i) =>
    (ys.length > 1 ? i * 120 / (ys.length - 1) : 0).toFixed(1) + "," +
    (19 - y * 18 / top).toFixed(1)).join(" "));
  svg.append(line);
  const td = el("td");
  td.append(svg);
  return td;
}

function drawCounters(stats) {
  const body = $("#counters tbody");
  body.replaceChildren();
  const last = ring[ring.length - 1].v;
  for (const [key, label, isCounter] of COUNTERS) {
    const tr = row([label, num(last[key]),
                    num(isCounter ? rate(key, 60000) : "—"),
                    num(isCounter ? rate(key, 300000) : "—"), spark(key, isCounter)]);
    tr.dataset.counter = key;
    body.append(tr);
  }
  const drops = Object.entries(stats.drops || {}).filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1]);
  $("#drops").textContent = drops.length
    ? drops.map(([reason, n]) => reason + ": " + n).join(", ") : "none";
}

function drawHA(ha) {
  const badge = $("#ha");
  if (!ha.enabled) {
    badge.textContent = "HA: single controller (leads)";
    badge.className = "badge leader";
  } else {
    badge.textContent = "HA: " + (ha.leader ? "leader" : "standby") + " (" + ha.member +
      ", group " + ha.group + (ha.engine_reachable ? "" : ", coordination unreachable") + ")";
    badge.className = "badge " + (ha.leader ? "leader" : "standby");
  }
}

function drawBridges(bridges, ha) {
  const body = $("#bridges tbody");
  body.replaceChildren();
  for (const b of bridges) {
    const switches = b.switches.length ? b.switches : [null];
    for (const s of switches) {
      const role = s ? ((ha.switches[s.dpid] || {}).role || (ha.enabled ? "?" : "MASTER (alone)"))
                     : "";
      body.append(row([b.bridge, b.dpid || "first to connect", b.external_ip,
                       s ? s.dpid : "not connected", role, num(s ? s.active : ""),
                       num(s ? s.created : "")]));
    }
  }
}

function query() {
  const form = new FormData($("#filter"));
  const q = new URLSearchParams();
  for (const [k, v] of form) if (v) q.set(k, v);
  return q;
}

async function drawSessions() {
  const q = query();
  if (view.after) q.set("after", view.after);
  const err = $("#filter-error");
  let page;
  try {
    page = await getJSON("/nat/connections?" + q.toString());
    err.hidden = true;
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
    return;
  }
  const body = $("#sessions tbody");
  body.replaceChildren();
  for (const s of page.body) {
    const tr = row([num(s.id), s.dpid.toString(16).padStart(16, "0"), s.protocol, s.state,
                    s.internal_ip + ":" + s.internal_port,
                    s.external_ip + ":" + s.external_port,
                    s.remote_ip + ":" + s.remote_port,
                    num(s.packets_out + " / " + s.packets_in), s.path, num(s.expires_in + " s")]);
    tr.dataset.internalIp = s.internal_ip;
    body.append(tr);
  }
  const next = page.headers.get("X-Next-After");
  view.next = next ? Number(next) : null;
  $("#next").disabled = view.next === null;
  $("#prev").disabled = view.back.length === 0;
  $("#page").textContent = "page " + (view.back.length + 1) + ", " + page.body.length +
    " session" + (page.body.length === 1 ? "" : "s");
}

async function poll() {
  try {
    const [stats, ha, bridges] = await Promise.all(
      [getJSON("/nat/stats"), getJSON("/nat/ha"), getJSON("/nat/bridges")]);
    remember(stats.body);
    drawHA(ha.body);
    drawBridges(bridges.body, ha.body);
    drawCounters(stats.body);
    await drawSessions();
    $("#error").hidden = true;
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (e) {
    $("#error").textContent = "controller unreachable: " + e.message;
    $("#error").hidden = false;
  }
}

function start() {
  const form = $("#filter");
  const params = new URLSearchParams(location.search);
  for (const name of ["internal_ip", "protocol", "limit"]) {
    if (params.get(name)) form.elements[name].value = params.get(name);
  }
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    view.after = 0;
    view.back = [];
    history.replaceState(null, "", "?" + query().toString());
    drawSessions();
  });
  $("#next").addEventListener("click", () => {
    if (view.next === null) return;
    view.back.push(view.after);
    view.after = view.next;
    drawSessions();
  });
  $("#prev").addEventListener("click", () => {
    view.after = view.back.pop() || 0;
    drawSessions();
  });
  poll();
  setInterval(poll, POLL_MS);
}

start();

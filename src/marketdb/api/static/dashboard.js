/* marketdb dashboard: log in, pick a symbol and interval, draw candles + volume, stream live bars.
 * Talks only to the public HTTP API (/v1/...) and the WebSocket (/ws); keeps the session token
 * in sessionStorage. State for tests and curious users: window.marketdbDashboard. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const state = { token: sessionStorage.getItem("marketdb.token"), ws: null, chart: null, candles: null,
                  volume: null, symbol: null, interval: null, lastBar: null, bars: 0, updates: 0,
                  markers: [], markerMap: null, channels: [], acks: new Map(), gen: 0,
                  ready: null, onWelcome: null, welcomed: false };
  window.marketdbDashboard = state;

  function status(text, isError) {
    $("status").textContent = text;
    $("status").className = isError ? "error" : "";
  }

  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    if (state.token) opts.headers.Authorization = "Bearer " + state.token;
    const res = await fetch(path, opts);
    const body = res.headers.get("content-type") && res.headers.get("content-type").includes("json")
      ? await res.json() : await res.text();
    if (res.status === 401 && path !== "/v1/auth/login") { logout(); }
    if (!res.ok) {
      const detail = (body && (body.detail || body.title)) || res.statusText;
      throw new Error(detail + (body && body.hint ? " (" + body.hint + ")" : ""));
    }
    return body;
  }

  function secs(ts) { return Math.floor(Date.parse(ts) / 1000); }
  const SPAN = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400 };
  function barTime(ts) { const s = SPAN[state.interval] || 60; return Math.floor(secs(ts) / s) * s; }

  function toCandle(b) {
    return { time: secs(b.ts), open: b.open, high: b.high, low: b.low, close: b.close };
  }
  function toVolume(b) {
    return { time: secs(b.ts), value: b.volume || 0, color: b.close >= b.open ? "#26a69a88" : "#ef535088" };
  }

  function ensureChart() {
    if (state.chart) return;
    const el = $("chart");
    state.chart = LightweightCharts.createChart(el, {
      autoSize: true, layout: { background: { color: "#ffffff" }, textColor: "#333" },
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    state.candles = state.chart.addCandlestickSeries({ upColor: "#26a69a", downColor: "#ef5350",
      borderVisible: false, wickUpColor: "#26a69a", wickDownColor: "#ef5350" });
    state.volume = state.chart.addHistogramSeries({ priceFormat: { type: "volume" }, priceScaleId: "" });
    state.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  }

  async function loadBars() {
    const symbol = $("symbol").value.trim().toUpperCase();
    if (!symbol) { status("pick a symbol", true); return; }
    const interval = $("interval").value;
    const adjusted = $("adjusted").checked;
    const gen = ++state.gen;  // a newer load makes this one stale
    status("loading " + symbol + " " + interval + "…");
    state.symbol = symbol; state.interval = interval;
    // Subscribe first, then read: nothing committed in between is missed (updates are idempotent).
    const want = ["bars:" + symbol + ":" + interval];
    const strategy = $("strategy").value;
    if (strategy) { want.push("orders:" + strategy); want.push("fills:" + strategy); }
    await subscribe(want);
    const q = new URLSearchParams({ interval: interval, adjusted: String(adjusted) });
    const body = await api("/v1/bars/" + encodeURIComponent(symbol) + "?" + q.toString());
    if (gen !== state.gen) return;
    const rows = body.rows || [];
    ensureChart();
    state.candles.setData(rows.map(toCandle));
    state.volume.setData(rows.map(toVolume));
    state.chart.timeScale().fitContent();
    state.bars = rows.length;
    state.lastBar = rows.length ? rows[rows.length - 1] : null;
    await loadMarkers(gen);
    if (gen !== state.gen) return;
    status(symbol + " " + interval + (adjusted ? " adjusted" : " raw") + ": " + rows.length + " bars, live");
  }

  function marker(fill) {
    const buy = String(fill.side).toLowerCase() === "buy";
    return { time: barTime(fill.ts), position: buy ? "belowBar" : "aboveBar", color: buy ? "#2962ff" : "#e91e63",
             shape: buy ? "arrowUp" : "arrowDown", text: (buy ? "B " : "S ") + fill.quantity + " @ " + fill.price };
  }
  function orderMarker(order) {
    return { time: barTime(order.created_at), position: "aboveBar", color: "#ff9800", shape: "circle",
             text: order.side + " " + order.quantity + " " + order.status };
  }

  async function loadMarkers(gen) {
    const found = new Map();  // "order:<id>" / "fill:<id>" -> marker: one marker per order and per fill
    const strategy = $("strategy").value;
    if (strategy && state.symbol) {
      const q = "?strategy_id=" + encodeURIComponent(strategy) + "&limit=1000";
      const [fills, orders] = await Promise.all([api("/v1/fills" + q), api("/v1/orders" + q)]);
      for (const f of fills.items || []) if (mine(f)) found.set("fill:" + f.id, marker(f));
      for (const o of orders.items || []) if (mine(o)) found.set("order:" + o.id, orderMarker(o));
    }
    if (gen !== state.gen) return;
    state.markerMap = found;
    drawMarkers();
  }
  function mine(row) { return row.symbol === undefined || row.symbol === state.symbol; }
  function drawMarkers() {
    state.markers = [...(state.markerMap || new Map()).values()].sort((a, b) => a.time - b.time);
    if (state.candles) state.candles.setMarkers(state.markers);
  }

  function connect() {
    if (state.ws && state.ws.readyState <= 1) return state.ready;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    const ws = new WebSocket(url);
    state.ws = ws; state.welcomed = false;
    state.ready = new Promise((resolve) => { state.onWelcome = resolve; });
    ws.onopen = () => ws.send(JSON.stringify({ op: "auth", token: state.token }));
    ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
    ws.onclose = (ev) => {
      state.ws = null;
      const had = state.channels; state.channels = [];
      if (ev.code === 4401) { logout(); return; }
      if (state.token) setTimeout(() => { subscribe(had); }, 1000);  // reconnect, resubscribe
    };
    return state.ready;
  }

  // Make the subscribed set equal to `want`; resolves when the server has answered each new channel.
  async function subscribe(want) {
    await connect();
    const ws = state.ws;
    const gone = state.channels.filter((c) => !want.includes(c));
    const fresh = want.filter((c) => !state.channels.includes(c));
    state.channels = want.slice();
    if (gone.length) ws.send(JSON.stringify({ op: "unsubscribe", channels: gone }));
    if (!fresh.length) return;
    const acks = fresh.map((c) => new Promise((resolve) => { state.acks.set(c, resolve); }));
    ws.send(JSON.stringify({ op: "subscribe", channels: fresh }));
    await Promise.all(acks);
  }

  function ack(channel) {
    const resolve = state.acks.get(channel);
    if (resolve) { state.acks.delete(channel); resolve(); }
  }

  function onMessage(m) {
    if (m.type === "welcome") { state.welcomed = true; state.onWelcome(); return; }
    if (m.type === "ping") { state.ws.send('{"op":"pong"}'); return; }
    if (m.type === "subscribed") { ack(m.channel); return; }
    if (m.type === "unsubscribed") return;
    if (m.type === "error") {
      if (m.channel) { ack(m.channel); state.channels = state.channels.filter((c) => c !== m.channel); }
      status((m.channel ? m.channel + ": " : "") + m.title + (m.detail ? " — " + m.detail : ""), true);
      return;
    }
    if (m.type === "bar" && m.symbol === state.symbol && m.interval === state.interval) {
      if (!state.candles) return;
      const b = m.bar;
      try {
        state.candles.update(toCandle(b));
        state.volume.update(toVolume(b));
      } catch (e) { loadBars(); return; }  // a late bar older than the last one: reload
      if (!state.lastBar || secs(b.ts) >= secs(state.lastBar.ts)) state.lastBar = b;
      state.updates += 1;
      if (m.dropped) status("live (" + m.dropped + " updates coalesced)");
    } else if (m.type === "fill" && mine(m.fill) && state.markerMap) {
      state.markerMap.set("fill:" + m.fill.id, marker(m.fill)); drawMarkers();
    } else if (m.type === "order" && mine(m.order) && state.markerMap) {
      state.markerMap.set("order:" + m.order.id, orderMarker(m.order)); drawMarkers();
    }
  }

  async function afterLogin() {
    $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
    try {
      const me = await api("/v1/auth/me");
      $("who").textContent = me.username || (me.user && me.user.username) || "";
    } catch (e) { /* shown by the next call */ }
    try {
      const strategies = await api("/v1/strategies?limit=1000");
      for (const s of strategies.items || strategies || []) {
        const o = document.createElement("option"); o.value = s.id; o.textContent = s.name || s.id;
        $("strategy").appendChild(o);
      }
    } catch (e) { /* no permission to read strategies: markers unavailable */ }
    connect();
  }

  function logout() {
    if (state.token) fetch("/v1/auth/logout", { method: "POST", headers: { Authorization: "Bearer " + state.token } });
    state.token = null; sessionStorage.removeItem("marketdb.token");
    if (state.ws) state.ws.close();
    $("login").hidden = false; $("app").hidden = true; $("logout").hidden = true; $("who").textContent = "";
  }

  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      const body = await api("/v1/auth/login", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: $("username").value, password: $("password").value }) });
      state.token = body.token; sessionStorage.setItem("marketdb.token", body.token);
      await afterLogin();
    } catch (e) { $("login-error").textContent = e.message; }
  });
  $("logout").addEventListener("click", logout);
  $("controls").addEventListener("submit", (ev) => { ev.preventDefault(); loadBars().catch((e) => status(e.message, true)); });
  let searchTimer = null;
  $("symbol").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(async () => {
      const text = $("symbol").value.trim();
      if (!text) return;
      try {
        const body = await api("/v1/instruments?search=" + encodeURIComponent(text) + "&limit=20");
        $("symbols").innerHTML = "";
        for (const i of body.items || []) {
          const o = document.createElement("option"); o.value = i.symbol; o.textContent = i.name || i.symbol;
          $("symbols").appendChild(o);
        }
      } catch (e) { status(e.message, true); }
    }, 200);
  });
  for (const id of ["interval", "adjusted", "strategy"]) {
    $(id).addEventListener("change", () => { if ($("symbol").value) loadBars().catch((e) => status(e.message, true)); });
  }
  if (state.token) afterLogin();
})();

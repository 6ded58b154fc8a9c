/* The ilp-farm dashboard: plain browser JavaScript, no build step (docs/METRICS.md).
 * Logs in with the admin token (POST /dashboard/login sets an HttpOnly session cookie),
 * then follows /dashboard/events: one snapshot of the farm a second, rendered in place. */
/* global document, fetch, EventSource, setTimeout, CSS, Chart, cytoscape */
'use strict'

;(function dashboard() {
  const $ = (id) => document.getElementById(id)
  /** How many points the live charts keep (one a second). */
  const CHART_POINTS = 90
  /** Rates are taken over this many seconds: every worker adds its counts once a second, not in step with us. */
  const RATE_WINDOW_MS = 3000
  const PALETTE = ['#b42318', '#d97706', '#7c3aed', '#0891b2', '#be185d', '#4d7c0f', '#1d4ed8', '#92400e', '#0f766e', '#6b7280']

  let source
  let charts
  let graph
  /** Recent snapshots' totals, oldest first: the rates are computed from them. */
  const history = []

  // ---- login and the event stream ----

  function show(loggedIn, message) {
    $('login').hidden = loggedIn
    $('board').hidden = !loggedIn
    $('logout').hidden = !loggedIn
    $('login-error').textContent = message || ''
    if (!loggedIn) $('token').focus()
  }

  function setStatus(state, text) {
    const el = $('status')
    el.dataset.state = state
    el.textContent = text
  }

  async function logIn(event) {
    event.preventDefault()
    const input = $('token')
    const token = input.value
    input.value = ''
    const res = await fetch('/dashboard/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
      credentials: 'same-origin',
    })
    if (res.status === 204) start()
    else show(false, res.status === 401 ? 'Wrong admin token.' : `Login failed (HTTP ${res.status}).`)
  }

  async function logOut() {
    stop()
    await fetch('/dashboard/logout', { method: 'POST', credentials: 'same-origin' })
    show(false, 'Logged out.')
  }

  function stop() {
    if (source) source.close()
    source = undefined
    setStatus('idle', 'not connected')
  }

  /** The stream gave up (the server refused it): still logged in? Then try again, else back to the login form. */
  async function streamClosed() {
    stop()
    if ((await loggedIn()) === false) show(false, 'Your session has ended; log in again.')
    else setTimeout(start, 2000)
  }

  /** true or false; undefined when the farm cannot be asked. */
  async function loggedIn() {
    try {
      const res = await fetch('/dashboard/session', { credentials: 'same-origin' })
      return (await res.json()).loggedIn === true
    } catch {
      return undefined
    }
  }

  function start() {
    show(true)
    if (!charts) charts = makeCharts()
    if (!graph) graph = makeGraph()
    stop()
    setStatus('reconnecting', 'connecting…')
    source = new EventSource('/dashboard/events')
    source.addEventListener('snapshot', (e) => {
      setStatus('live', 'live')
      render(JSON.parse(e.data))
    })
    source.addEventListener('problem', (e) => setStatus('problem', JSON.parse(e.data).error))
    source.addEventListener('logout', () => {
      stop()
      show(false, 'Your session has ended; log in again.')
    })
    source.onerror = () => {
      if (source && source.readyState === EventSource.CLOSED) void streamClosed()
      else setStatus('reconnecting', 'reconnecting…')
    }
  }

  // ---- formatting ----

  /** A base-unit decimal string shown in the asset's units: exact, no floating point. */
  function units(raw, scale) {
    if (raw === null || raw === undefined) return '—'
    const negative = raw.startsWith('-')
    let digits = negative ? raw.slice(1) : raw
    if (scale > 0) {
      digits = digits.padStart(scale + 1, '0')
      digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`
    }
    return (negative ? '-' : '') + digits
  }

  function cell(row, field, text, opts) {
    let td = row.querySelector(`[data-field="${field}"]`)
    if (!td) {
      td = document.createElement('td')
      td.dataset.field = field
      if (opts && opts.num) td.className = 'num'
      row.appendChild(td)
    }
    if (td.textContent !== text) {
      const first = td.textContent === ''
      td.textContent = text
      if (!first) flash(td, 'changed')
    }
    return td
  }

  function flash(el, cls) {
    el.classList.remove(cls)
    void el.offsetWidth // restarts the CSS animation
    el.classList.add(cls)
  }

  // ---- rendering a snapshot ----

  function render(s) {
    $('farm-address').textContent = s.ilpAddress
    renderAccounts(s.accounts)
    renderGraph(s)
    renderPackets(s)
    renderWorkers(s)
  }

  function renderAccounts(accounts) {
    const body = $('accounts').tBodies[0]
    const first = body.rows.length === 0
    const seen = new Set()
    const sorted = [...accounts].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0))
    sorted.forEach((a, i) => {
      seen.add(a.id)
      let row = body.querySelector(`tr[data-account="${CSS.escape(a.id)}"]`)
      if (!row) {
        row = document.createElement('tr')
        row.dataset.account = a.id
        if (!first) flash(row, 'fresh') // an account added while watching
      }
      // rows in id order; moved only when out of place (moving a row restarts its animations)
      if (body.rows[i] !== row) body.insertBefore(row, body.rows[i] || null)
      cell(row, 'id', a.id)
      cell(row, 'relation', a.relation)
      cell(row, 'asset', `${a.assetCode} (scale ${a.assetScale})`)
      const balance = cell(row, 'balance', `${units(a.balance, a.assetScale)} ${a.assetCode}`, { num: true })
      balance.dataset.value = a.balance
      balance.classList.toggle('negative', a.balance.startsWith('-'))
      cell(row, 'min', units(a.minBalance, a.assetScale), { num: true })
      cell(row, 'max', a.maxBalance === null ? 'no limit' : units(a.maxBalance, a.assetScale), { num: true })
      cell(row, 'credits', units(a.creditsInFlight, a.assetScale), { num: true })
    })
    for (const row of [...body.rows]) if (!seen.has(row.dataset.account)) row.remove()
  }

  function renderWorkers(s) {
    const body = $('workers').tBodies[0]
    body.replaceChildren(
      ...s.workers.map((w) => {
        const row = document.createElement('tr')
        row.dataset.shard = String(w.shard)
        if (!w.up) row.className = 'down'
        const age = w.heartbeatAgeMs === null ? '—' : `${(w.heartbeatAgeMs / 1000).toFixed(1)} s`
        const values = [w.shard, w.up ? 'up' : 'down', w.bootId || '—', w.host || '—', w.pid === null ? '—' : w.pid, age, w.leader ? '★ leader' : '']
        values.forEach((v, i) => {
          const td = document.createElement('td')
          td.textContent = String(v)
          if (i === 4 || i === 5) td.className = 'num'
          row.appendChild(td)
        })
        return row
      }),
    )
    $('leader').textContent = s.leader || 'none'
    $('served-by').textContent = `${s.servedBy.shard} (${s.servedBy.bootId})`
  }

  // ---- live charts ----

  function lineChart(canvas, datasets) {
    return new Chart(canvas, {
      type: 'line',
      data: { labels: [], datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'index', intersect: false },
        elements: { point: { radius: 0 }, line: { tension: 0.25, borderWidth: 2 } },
        scales: { y: { beginAtZero: true, title: { display: true, text: 'per second' } } },
        plugins: { legend: { position: 'bottom' } },
      },
    })
  }

  function makeCharts() {
    return {
      pps: lineChart($('pps-chart'), [
        { label: 'fulfilled', data: [], borderColor: '#1a7f37', backgroundColor: '#1a7f37' },
        { label: 'rejected', data: [], borderColor: '#b42318', backgroundColor: '#b42318' },
      ]),
      rejects: lineChart($('rejects-chart'), []),
    }
  }

  /** Per-second rate between the oldest kept sample inside the window and now; never negative (a reset Redis). */
  function rate(now, then, pick) {
    const dt = (now.at - then.at) / 1000
    if (dt <= 0) return 0
    return Math.max(0, (pick(now) - pick(then)) / dt)
  }

  function push(chart, label, values) {
    chart.data.labels.push(label)
    chart.data.datasets.forEach((d, i) => d.data.push(values[i]))
    if (chart.data.labels.length > CHART_POINTS) {
      chart.data.labels.shift()
      for (const d of chart.data.datasets) d.data.shift()
    }
    chart.update('none')
  }

  function renderPackets(s) {
    const sample = { at: s.at, fulfilled: s.packets.fulfilled, rejected: s.packets.rejected, byCode: s.packets.rejectedByCode }
    history.push(sample)
    while (history.length > 2 && sample.at - history[1].at >= RATE_WINDOW_MS) history.shift()
    const then = history[0]
    const label = new Date(s.at).toLocaleTimeString()
    push(charts.pps, label, [rate(sample, then, (x) => x.fulfilled), rate(sample, then, (x) => x.rejected)])

    const rejects = charts.rejects
    for (const code of Object.keys(sample.byCode).sort()) {
      if (rejects.data.datasets.some((d) => d.label === code)) continue
      const color = PALETTE[rejects.data.datasets.length % PALETTE.length]
      // a code seen for the first time: its earlier points are zeros
      rejects.data.datasets.push({ label: code, data: rejects.data.labels.map(() => 0), borderColor: color, backgroundColor: color })
    }
    push(rejects, label, rejects.data.datasets.map((d) => rate(sample, then, (x) => x.byCode[d.label] || 0)))

    $('total-fulfilled').textContent = String(s.packets.fulfilled)
    $('total-rejected').textContent = String(s.packets.rejected)
    $('in-flight').textContent = String(s.inFlight)
    $('reject-totals').textContent = Object.entries(sample.byCode)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([code, n]) => `${code}: ${n}`)
      .join(' · ')
  }

  // ---- the network graph: the farm in the middle, accounts around it, route prefixes off their next hops ----

  function makeGraph() {
    return cytoscape({
      container: $('graph'),
      wheelSensitivity: 0.3,
      style: [
        { selector: 'node', style: { label: 'data(label)', 'text-wrap': 'wrap', 'font-size': 11, 'text-valign': 'bottom', 'text-margin-y': 4, color: '#1d2330' } },
        { selector: 'node.farm', style: { 'background-color': '#1d2330', width: 46, height: 46, 'font-weight': 'bold' } },
        { selector: 'node.account', style: { 'background-color': '#2f5bd3', width: 30, height: 30 } },
        { selector: 'node.peer', style: { 'background-color': '#7c3aed', shape: 'diamond' } },
        { selector: 'node.parent', style: { 'background-color': '#d97706', shape: 'triangle' } },
        { selector: 'node.prefix', style: { 'background-color': '#9ca3af', width: 12, height: 12, shape: 'round-rectangle', color: '#6b7280', 'font-size': 10 } },
        { selector: 'edge', style: { width: 2, 'line-color': '#c7ccd4', 'curve-style': 'bezier' } },
        { selector: 'edge.route', style: { width: 1, 'line-style': 'dashed', 'target-arrow-shape': 'triangle', 'target-arrow-color': '#c7ccd4', 'arrow-scale': 0.8 } },
        { selector: 'edge.learned', style: { 'line-color': '#a78bfa', 'target-arrow-color': '#a78bfa' } },
        { selector: 'edge.dead', style: { 'line-color': '#b42318', 'target-arrow-color': '#b42318' } },
      ],
      layout: { name: 'preset' },
    })
  }

  /** The elements the snapshot calls for, by id. */
  function graphElements(s) {
    const byId = new Map()
    byId.set('farm', { group: 'nodes', data: { id: 'farm', label: s.ilpAddress, ring: 3 }, classes: 'farm' })
    for (const a of s.accounts) {
      const id = `a:${a.id}`
      byId.set(id, { group: 'nodes', data: { id, label: `${a.id}\n${units(a.balance, a.assetScale)} ${a.assetCode}`, ring: 2 }, classes: `account ${a.relation}` })
      byId.set(`e:${a.id}`, { group: 'edges', data: { id: `e:${a.id}`, source: 'farm', target: id } })
    }
    for (const r of s.routes) {
      const pid = `p:${r.prefix}`
      const hops = r.candidates.filter((c) => byId.has(`a:${c.account}`))
      if (hops.length === 0) continue
      byId.set(pid, { group: 'nodes', data: { id: pid, label: r.prefix, ring: 1 }, classes: 'prefix' })
      for (const c of hops) {
        const eid = `r:${r.prefix}:${c.account}`
        const classes = ['route', c.source === 'learned' ? 'learned' : '', c.dead ? 'dead' : ''].join(' ')
        byId.set(eid, { group: 'edges', data: { id: eid, source: `a:${c.account}`, target: pid }, classes })
      }
    }
    return byId
  }

  function renderGraph(s) {
    const wanted = graphElements(s)
    let changed = false
    graph.batch(() => {
      graph.elements().forEach((el) => {
        if (!wanted.has(el.id())) {
          el.remove()
          changed = true
        }
      })
      for (const [id, def] of wanted) {
        const el = graph.getElementById(id)
        if (el.empty()) {
          graph.add(def)
          changed = true
        } else {
          if (el.data('label') !== def.data.label) el.data('label', def.data.label)
          if (def.classes !== undefined) el.classes(def.classes)
        }
      }
    })
    if (changed) {
      graph.layout({ name: 'concentric', concentric: (n) => n.data('ring'), levelWidth: () => 1, minNodeSpacing: 30, animate: false, padding: 20 }).run()
    }
  }

  // ---- start ----

  $('login-form').addEventListener('submit', (e) => void logIn(e))
  $('logout').addEventListener('click', () => void logOut())
  void loggedIn().then((yes) => (yes ? start() : show(false, yes === undefined ? 'The farm cannot be reached.' : '')))
})()

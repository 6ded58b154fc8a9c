/* The ilp-farm dashboard: plain browser JavaScript, no build step (docs/METRICS.md).
 * Logs in with the admin token (POST /dashboard/login sets an HttpOnly session cookie),
 * then follows /dashboard/events: one snapshot of the farm a second, rendered in place.
 * A snapshot holds the pinned accounts and the most recently active ones, never all of
 * them; any other account is looked up by id (GET /dashboard/accounts/:id). */
/* global document, fetch, EventSource, setTimeout, CSS, Chart, cytoscape */
'use strict'

;(function dashboard() {
  const $ = (id) => document.getElementById(id)
  /** How many points the live charts keep (one a second). */
  const CHART_POINTS = 90
  /** Rates are taken over this many seconds: every worker adds its counts once a second, not in step with us. */
  const RATE_WINDOW_MS = 3000
  const PALETTE = ['#b42318', '#d97706', '#7c3aed', '#0891b2', '#be185d', '#4d7c0f', '#1d4ed8', '#92400e', '#0f766e', '#6b7280']
  /** Route prefixes the graph draws at most: a peer may announce many, and a crowded graph says nothing. */
  const GRAPH_PREFIXES = 60

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
    if (!loggedIn) {
      // what was looked up is not left on the page for the next person at the screen
      $('search-result').hidden = true
      $('search-result').replaceChildren()
      $('token').focus()
    }
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
    else if (res.status === 403) show(false, 'This token lacks the scope read: the dashboard needs it.')
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

  /** A row's cell for `field`, made on first use; a changed value flashes unless `opts.quiet` (a value that changes every second). */
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
      if (!first && !(opts && opts.quiet)) flash(td, 'changed')
    }
    return td
  }

  /** "3 s ago", "4 min ago": how long before the snapshot the account last sent a packet. */
  function ago(at, now) {
    const seconds = Math.max(0, Math.round((now - at) / 1000))
    if (seconds < 120) return `${seconds} s ago`
    if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`
    return new Date(at).toLocaleString()
  }

  function flash(el, cls) {
    el.classList.remove(cls)
    void el.offsetWidth // restarts the CSS animation
    el.classList.add(cls)
  }

  // ---- rendering a snapshot ----

  function render(s) {
    $('farm-address').textContent = s.ilpAddress
    $('account-count').textContent = String(s.accountCount)
    renderAccounts($('accounts'), [...s.accounts].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)))
    // newest first, as the snapshot has them
    renderAccounts($('recent'), s.recent, (row, a) => cell(row, 'active', ago(a.activeAt, s.at), { num: true, quiet: true }))
    $('recent-none').hidden = s.recent.length > 0
    renderGraph(s)
    renderRoutes(s)
    renderPackets(s)
    renderWorkers(s)
  }

  /** Rows of `table`, one per account in the order given, updated in place; `extra` adds a table's own cells. */
  function renderAccounts(table, accounts, extra) {
    const body = table.tBodies[0]
    const first = body.rows.length === 0
    const seen = new Set()
    accounts.forEach((a, i) => {
      seen.add(a.id)
      let row = body.querySelector(`tr[data-account="${CSS.escape(a.id)}"]`)
      if (!row) {
        row = document.createElement('tr')
        row.dataset.account = a.id
        if (!first) flash(row, 'fresh') // an account added while watching
      }
      // rows in the order given; moved only when out of place (moving a row restarts its animations)
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
      if (extra) extra(row, a)
    })
    for (const row of [...body.rows]) if (!seen.has(row.dataset.account)) row.remove()
  }

  // ---- the search box: one account by its id, read from Redis when asked ----

  async function search(event) {
    event.preventDefault()
    const id = $('search-id').value.trim()
    if (id === '') return
    const out = $('search-result')
    out.hidden = false
    out.dataset.state = 'loading'
    out.replaceChildren(text('p', `Looking up ${id}…`, 'muted'))
    let res
    try {
      res = await fetch(`/dashboard/accounts/${encodeURIComponent(id)}`, { credentials: 'same-origin' })
    } catch {
      out.dataset.state = 'error'
      out.replaceChildren(text('p', 'The farm cannot be reached.', 'error'))
      return
    }
    if (res.status === 401) {
      stop()
      show(false, 'Your session has ended; log in again.')
      return
    }
    if (res.status === 404) {
      out.dataset.state = 'missing'
      out.replaceChildren(text('p', `No account ${id}.`, 'error'))
      return
    }
    if (!res.ok) {
      out.dataset.state = 'error'
      out.replaceChildren(text('p', `The lookup failed (HTTP ${res.status}).`, 'error'))
      return
    }
    showAccount(out, await res.json())
  }

  function text(tag, content, cls) {
    const el = document.createElement(tag)
    el.textContent = content
    if (cls) el.className = cls
    return el
  }

  /** The account found, as a list of its fields; the balance carries its exact base-unit value (data-value). */
  function showAccount(out, a) {
    out.dataset.state = 'found'
    out.dataset.account = a.id
    const asset = (raw) => `${units(raw, a.assetScale)} ${a.assetCode}`
    const fields = [
      ['id', 'Account', a.id],
      ['relation', 'Relation', a.relation],
      ['origin', 'Made by', a.origin],
      ['balance', 'Balance', asset(a.balance)],
      ['min', 'Min balance', asset(a.minBalance)],
      ['max', 'Max balance', a.maxBalance === null ? 'no limit' : asset(a.maxBalance)],
      ['max-packet', 'Max packet', a.maxPacketAmount === null ? 'no limit' : asset(a.maxPacketAmount)],
      ['credits', 'Credits in flight', asset(a.creditsInFlight)],
      ['receives', 'Receives over', [a.hasOutgoingUrl ? 'outgoing URL' : '', a.rpcUrlSet ? 'its JSON-RPC URL' : ''].filter(Boolean).join(', ') || 'nothing set'],
      ['pinned', 'Shown above', a.pinned ? 'yes (pinned)' : 'when recently active'],
    ]
    const list = document.createElement('dl')
    for (const [field, label, value] of fields) {
      const dd = text('dd', value)
      dd.dataset.field = field
      if (field === 'balance') {
        dd.dataset.value = a.balance
        dd.classList.toggle('negative', a.balance.startsWith('-'))
      }
      list.append(text('dt', label), dd)
    }
    out.replaceChildren(list)
  }

  /**
   * One row per next hop of the first prefixes (as many as the graph draws): its
   * counts as "fulfilled of counted", the policy's score apart and named so.
   */
  function renderRoutes(s) {
    const shown = s.routes.slice(0, GRAPH_PREFIXES)
    $('routes').tBodies[0].replaceChildren(
      ...shown.flatMap((r) =>
        r.candidates.map((c, i) => {
          const row = document.createElement('tr')
          row.dataset.prefix = r.prefix
          row.dataset.account = c.account
          if (c.dead) row.classList.add('down')
          const counted = c.successes + c.failures
          const cells = [
            ['prefix', i === 0 ? r.prefix : ''],
            ['hop', c.account],
            ['source', c.source],
            ['fulfilled', `${c.successes} of ${counted}`, true],
            ['score', c.score.toFixed(2), true],
            ['state', c.dead ? 'dead' : 'ok'],
          ]
          for (const [field, value, num] of cells) {
            const td = text('td', value, num ? 'num' : '')
            td.dataset.field = field
            row.appendChild(td)
          }
          return row
        }),
      ),
    )
    const more = s.routes.length - shown.length
    $('routes-more').hidden = more <= 0
    $('routes-more').textContent = more > 0 ? `and ${more} more prefixes (ilp-farm routes lists them all)` : ''
  }

  function renderWorkers(s) {
    const body = $('workers').tBodies[0]
    // the workers come by host id, then shard: each host's first row opens its group
    body.replaceChildren(
      ...s.workers.map((w, n) => {
        const row = document.createElement('tr')
        row.dataset.hostId = w.hostId
        row.dataset.shard = String(w.shard)
        if (!w.up) row.classList.add('down')
        if (n > 0 && s.workers[n - 1].hostId !== w.hostId) row.classList.add('host-start')
        const age = w.heartbeatAgeMs === null ? '—' : `${(w.heartbeatAgeMs / 1000).toFixed(1)} s`
        const values = [w.hostId, w.shard, w.up ? 'up' : 'down', w.bootId || '—', w.host || '—', w.pid === null ? '—' : w.pid, age, w.leader ? '★ leader' : '']
        values.forEach((v, i) => {
          const td = document.createElement('td')
          td.textContent = String(v)
          if (i === 5 || i === 6) td.className = 'num'
          row.appendChild(td)
        })
        return row
      }),
    )
    const hosts = new Map()
    for (const w of s.workers) {
      if (!w.up) continue
      const h = hosts.get(w.hostId) ?? { workers: 0, leader: false }
      h.workers++
      h.leader ||= w.leader
      hosts.set(w.hostId, h)
    }
    $('hosts').textContent =
      [...hosts].map(([id, h]) => `${id} (${h.workers} worker${h.workers === 1 ? '' : 's'}${h.leader ? ', leader' : ''})`).join(' · ') || 'none'
    const leader = s.workers.find((w) => w.leader)
    $('leader').textContent = s.leader ? (leader ? `${s.leader} on ${leader.hostId}` : s.leader) : 'none'
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
    // A STREAM receiver answers its sender's rate probes and other unfulfillable packets with F99: most
    // rejects of a working payment are these, so they are counted apart from the rest.
    const f99 = sample.byCode.F99 || 0
    $('rejected-f99').textContent = f99 === 0 ? '' : ` (${f99} of them F99: mostly STREAM receivers answering probes, not failed payments)`
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
        { selector: 'node.recent', style: { 'background-color': '#93a9e8', width: 20, height: 20, 'font-size': 9, color: '#6b7280' } },
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

  /**
   * The elements the snapshot calls for, by id: the farm, the pinned accounts, the recently
   * active ones (at most the snapshot's few, never every child) and route prefixes.
   */
  function graphElements(s) {
    const byId = new Map()
    byId.set('farm', { group: 'nodes', data: { id: 'farm', label: s.ilpAddress, ring: 3 }, classes: 'farm' })
    const drawn = [...s.accounts.map((a) => [a, '']), ...s.recent.map((a) => [a, ' recent'])]
    for (const [a, extra] of drawn) {
      const id = `a:${a.id}`
      byId.set(id, { group: 'nodes', data: { id, label: `${a.id}\n${units(a.balance, a.assetScale)} ${a.assetCode}`, ring: 2 }, classes: `account ${a.relation}${extra}` })
      byId.set(`e:${a.id}`, { group: 'edges', data: { id: `e:${a.id}`, source: 'farm', target: id } })
    }
    let prefixes = 0
    for (const r of s.routes) {
      const pid = `p:${r.prefix}`
      const hops = r.candidates.filter((c) => byId.has(`a:${c.account}`))
      if (hops.length === 0) continue
      if (++prefixes > GRAPH_PREFIXES) break
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
    // the canvas cannot be read back: the drawn nodes are named on the element too (for tests and tools)
    $('graph').dataset.nodes = [...wanted.values()].filter((el) => el.group === 'nodes').map((el) => el.data.id).join(' ')
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
  $('search-form').addEventListener('submit', (e) => void search(e))
  $('logout').addEventListener('click', () => void logOut())
  void loggedIn().then((yes) => (yes ? start() : show(false, yes === undefined ? 'The farm cannot be reached.' : '')))
})()

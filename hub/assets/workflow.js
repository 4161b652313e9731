// One workflow, live: tasks by cycle point, updated from the owner's server over the
// hub's WebSocket relay; workflow and task actions; "Why can't I?"; job logs.
//
// A button is usable only when the hub says the operation is permitted now (policy ∩
// elevation, GET /hub/api/permitted). Otherwise it is marked aria-disabled (so it stays
// focusable and its reason can be read), its title says why, and activating it shows
// the full explanation instead of acting. The hub decides every operation again on
// arrival, so nothing sent from a console gets further than the buttons do.

import { h, replace, stateBadge, collator, uid, announce, OPERATIONS, opClass } from './dom.js';
import { api, query } from './api.js';
import * as session from './session.js';
import { createLogPanel } from './logs.js';

const WORKFLOW_OPS = [['play', 'Play'], ['pause', 'Pause'], ['resume', 'Resume'], ['stop', 'Stop'], ['reload', 'Reload'], ['clean', 'Clean']];
const TASK_OPS = [['trigger', 'Trigger'], ['hold', 'Hold'], ['release', 'Release'], ['kill', 'Kill'], ['poll', 'Poll']];
const PING_MS = 30000;
const MAX_ACTIVITY = 40;

function jobText(job) {
  return job ? String(job).padStart(2, '0') : '–';
}

export function workflowView(main, owner, name) {
  const tasks = new Map(); // "cycle/task" -> {cycle, task, state, job}
  const rows = new Map(); // "cycle/task" -> {tr, stateCell, jobCell}
  const pending = new Map(); // op id -> {op, tgt, li}
  let permitted = null; // {ops: Set, denied: {op: reason}}
  let permError = null;
  let ws = null;
  let pingTimer = null;
  let reconnectTimer = null;
  let backoff = 1000;
  let gone = false;
  let opSeq = 0;
  let permVersion = 0;

  const stateEl = h('span', { id: 'wf-state' });
  const conn = h('p', { id: 'wf-conn', class: 'conn', role: 'status' }, 'Connecting…');
  const counts = h('p', { id: 'wf-counts', class: 'muted' });
  const tasksEl = h('div', { id: 'tasks', 'aria-busy': 'true' }, h('p', { class: 'loading' }, `Waiting for ${owner}'s server…`));
  const activity = h('ol', { id: 'activity', class: 'activity' });
  const whyId = uid('why-op');
  const whySelect = h('select', { id: whyId, name: 'op' },
    OPERATIONS.map((op) => h('option', { value: op }, `${op} (${opClass(op)})`)));
  const whyOut = h('div', { id: 'why-output', tabindex: '-1' });

  const root = h('div', { class: 'workflow-view', dataset: { owner, workflow: name, live: 'false', permitted: '0' } });

  // --- actions -------------------------------------------------------------------
  function applyPermission(b) {
    const op = b.dataset.op;
    if (!permitted) {
      b.setAttribute('aria-disabled', 'true');
      b.title = permError || 'checking whether you may do this…';
    } else if (permitted.ops.has(op)) {
      b.setAttribute('aria-disabled', 'false');
      b.title = `${op} ${b.dataset.target}`;
    } else {
      b.setAttribute('aria-disabled', 'true');
      b.title = permitted.denied[op] || `${op} is not permitted for you on ${name}`;
    }
  }

  function opButton(op, label, tgt, what) {
    const b = h('button', {
      type: 'button',
      class: 'op',
      dataset: { op, target: tgt },
      'aria-label': what ? `${label} ${what}` : `${label} workflow`,
    }, label);
    b.addEventListener('click', () => {
      if (b.getAttribute('aria-disabled') === 'true') {
        explain(op);
        return;
      }
      sendOp(op, tgt);
    });
    applyPermission(b);
    return b;
  }

  async function refreshPermitted() {
    try {
      const r = await api.get(`/hub/api/permitted${query({ owner, workflow: name })}`);
      permitted = { ops: new Set(r.ops || []), denied: r.denied || {} };
      permError = null;
    } catch (e) {
      if (gone) return;
      permitted = null;
      permError = `cannot check your permissions: ${e.message}`;
    }
    if (gone) return;
    for (const b of root.querySelectorAll('button.op')) applyPermission(b);
    permVersion += 1;
    root.dataset.permitted = String(permVersion);
  }

  function addActivity(kind, text) {
    const li = h('li', { class: `act act-${kind}`, dataset: { kind } },
      h('time', {}, new Date().toLocaleTimeString()), ' ', h('span', { class: 'msg' }, text));
    activity.insertBefore(li, activity.firstChild);
    while (activity.children.length > MAX_ACTIVITY) activity.removeChild(activity.lastChild);
    return li;
  }

  function settle(li, kind, text) {
    li.className = `act act-${kind}`;
    li.dataset.kind = kind;
    li.querySelector('.msg').textContent = text;
    announce(text);
  }

  function sendOp(op, tgt, args = {}) {
    if (op === 'clean' && !window.confirm(`Clean ${name}? This deletes its run directory and logs.`)) return;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      announce(addActivity('error', `${op} ${tgt}: not connected; try again in a moment`).textContent);
      return;
    }
    opSeq += 1;
    const id = `op-${Date.now().toString(36)}-${opSeq}`;
    const li = addActivity('pending', `${op} ${tgt}: sent, waiting for the answer…`);
    pending.set(id, { op, tgt, li });
    ws.send(JSON.stringify({ type: 'op', id, op, target: tgt, args }));
  }

  // --- "Why can't I?" -------------------------------------------------------------
  async function explain(op) {
    whySelect.value = op;
    const now = permitted && !permitted.ops.has(op) ? permitted.denied[op] : null;
    replace(whyOut, h('p', { class: 'muted' }, `Asking the hub about ${op}…`));
    whyOut.focus();
    try {
      const r = await api.get(`/hub/api/explain${query({ owner, workflow: name, op })}`);
      if (gone) return;
      const policyOk = r.policy_allows === undefined ? r.allowed : r.policy_allows;
      let verdict;
      if (r.allowed) verdict = `You may ${op} ${name} now.`;
      else if (policyOk) verdict = `The policy allows you to ${op} ${name}, but not with your current privileges.`;
      else verdict = `The policy does not allow you to ${op} ${name}.`;
      replace(whyOut,
        h('p', { class: `verdict ${r.allowed ? 'allowed' : 'denied'}`, dataset: { allowed: String(!!r.allowed), op } }, verdict),
        r.class_needed && r.class_now
          ? h('p', { class: 'now' }, `${op} needs ${r.class_needed} privileges; your session has ${r.class_now}.`)
          : null,
        h('p', { class: 'muted' }, 'Because:'),
        h('ul', { class: 'reasons' }, (r.reasons || []).map((x) => h('li', {}, x))));
    } catch (e) {
      if (gone) return;
      replace(whyOut,
        now ? h('p', { class: 'verdict denied', dataset: { allowed: 'false', op } }, `Right now: ${now}`) : null,
        h('p', { class: 'error' }, `The full explanation is not available: ${e.message}`));
    }
  }

  // --- tasks ----------------------------------------------------------------------
  function taskRow(t) {
    const key = `${t.cycle}/${t.task}`;
    const tgt = `${name}//${t.cycle}/${t.task}`;
    const stateCell = h('td', { class: 'state-cell' }, stateBadge(t.state));
    const jobCell = h('td', { class: 'job-cell' }, jobText(t.job));
    const tr = h('tr', { dataset: { task: key, state: t.state } },
      h('th', { scope: 'row' }, t.task),
      stateCell,
      jobCell,
      h('td', {}, h('div', { class: 'actions' }, TASK_OPS.map(([op, label]) => opButton(op, label, tgt, key)))),
      h('td', {}, h('button', {
        type: 'button',
        class: 'log-open',
        'aria-label': `Log of ${key}`,
        onclick: () => {
          const cur = tasks.get(key) || t;
          logs.open({ cycle: cur.cycle, task: cur.task, job: cur.job, file: 'out' });
        },
      }, 'Log')));
    rows.set(key, { tr, stateCell, jobCell });
    return tr;
  }

  function renderTasks() {
    const byCycle = new Map();
    for (const t of tasks.values()) {
      if (!byCycle.has(t.cycle)) byCycle.set(t.cycle, []);
      byCycle.get(t.cycle).push(t);
    }
    const cycles = [...byCycle.keys()].sort(collator.compare);
    rows.clear();
    tasksEl.setAttribute('aria-busy', 'false');
    if (!cycles.length) {
      replace(tasksEl, h('p', {}, 'This workflow has no tasks.'));
      return;
    }
    replace(tasksEl, cycles.map((c) => {
      const hid = uid('cycle');
      return h('section', { class: 'cycle', 'aria-labelledby': hid, dataset: { cycle: c } },
        h('h3', { id: hid }, `Cycle point ${c}`),
        h('div', { class: 'table-wrap' }, h('table', { class: 'tasks' },
          h('caption', { class: 'visually-hidden' }, `Tasks of cycle point ${c}`),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, 'Task'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Job'),
            h('th', { scope: 'col' }, 'Actions'), h('th', { scope: 'col' }, 'Log'))),
          h('tbody', {}, byCycle.get(c).map(taskRow)))));
    }));
  }

  function renderCounts() {
    const c = {};
    for (const t of tasks.values()) c[t.state] = (c[t.state] || 0) + 1;
    const parts = Object.entries(c).sort(([a], [b]) => collator.compare(a, b)).map(([s, n]) => `${s} ${n}`);
    counts.textContent = parts.length ? `Tasks: ${parts.join(', ')}` : '';
  }

  function setState(s) {
    root.dataset.state = s || '';
    replace(stateEl, stateBadge(s));
  }

  function upsert(t) {
    const key = `${t.cycle}/${t.task}`;
    const known = tasks.get(key);
    const next = { cycle: t.cycle, task: t.task, state: t.state, job: t.job ?? (known ? known.job : null) };
    tasks.set(key, next);
    const r = rows.get(key);
    if (!r) return true;
    if (!known || known.state !== next.state) {
      replace(r.stateCell, stateBadge(next.state));
      r.tr.dataset.state = next.state;
    }
    r.jobCell.textContent = jobText(next.job);
    logs.taskChanged(next);
    return false;
  }

  // --- the WebSocket --------------------------------------------------------------
  function setConn(kind, text) {
    conn.className = `conn conn-${kind}`;
    conn.textContent = text;
  }

  function onMessage(m) {
    switch (m.type) {
      case 'snapshot': {
        const w = (m.workflows || []).find((x) => x.name === name);
        if (!w) {
          tasks.clear();
          setState(null);
          tasksEl.setAttribute('aria-busy', 'false');
          replace(tasksEl, h('p', { class: 'error', role: 'alert' },
            `${owner} has no workflow named ${name}, or you may not read it.`));
          setConn('open', 'Connected');
          break;
        }
        tasks.clear();
        for (const t of w.tasks || []) tasks.set(`${t.cycle}/${t.task}`, { cycle: t.cycle, task: t.task, state: t.state, job: t.job ?? null });
        setState(w.state);
        renderTasks();
        renderCounts();
        root.dataset.live = 'true';
        setConn('open', 'Live: updates appear as they happen.');
        break;
      }
      case 'delta': {
        if (m.workflow !== name) break;
        if (m.state) setState(m.state);
        let fresh = false;
        for (const t of m.tasks || []) fresh = upsert(t) || fresh;
        if (fresh) renderTasks();
        renderCounts();
        break;
      }
      case 'result': {
        const p = pending.get(m.id);
        if (!p) break;
        pending.delete(m.id);
        settle(p.li, m.ok ? 'ok' : 'failed', `${p.op} ${p.tgt}: ${m.ok ? 'done' : 'failed'}: ${m.message}`);
        break;
      }
      case 'denied': {
        const p = pending.get(m.id);
        const text = `${m.op} refused by the hub: ${m.reason}`;
        if (p) {
          pending.delete(m.id);
          settle(p.li, 'denied', text);
        } else {
          addActivity('denied', text);
        }
        refreshPermitted();
        break;
      }
      case 'error': {
        if (m.id && pending.has(m.id)) {
          const p = pending.get(m.id);
          pending.delete(m.id);
          settle(p.li, 'failed', `${p.op} ${p.tgt}: ${m.message}`);
        } else if (!logs.onMessage(m)) {
          addActivity('error', m.message);
        }
        break;
      }
      case 'log':
      case 'log_end':
        logs.onMessage(m);
        break;
      default:
        break;
    }
  }

  function dropSocket(reason) {
    clearInterval(pingTimer);
    clearTimeout(reconnectTimer);
    const old = ws;
    ws = null;
    if (old) {
      old.onclose = null;
      old.onmessage = null;
      try { old.close(1000); } catch (_) { /* already closed */ }
    }
    for (const [, p] of pending) settle(p.li, 'unknown', `${p.op} ${p.tgt}: ${reason}; check the audit log for its outcome`);
    pending.clear();
    logs.onDisconnect();
  }

  function connect() {
    if (gone) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const sock = new WebSocket(`${scheme}://${location.host}/user/${encodeURIComponent(owner)}/ws`);
    ws = sock;
    let opened = false;
    setConn('connecting', `Connecting to ${owner}'s server (it is started if needed)…`);
    sock.onopen = () => {
      opened = true;
      backoff = 1000;
      setConn('connecting', 'Connected; waiting for the workflow state…');
      pingTimer = setInterval(() => {
        if (sock.readyState === WebSocket.OPEN) sock.send('{"type":"ping"}');
      }, PING_MS);
    };
    sock.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      onMessage(m);
    };
    sock.onclose = () => {
      if (ws !== sock) return;
      dropSocket('the connection closed before an answer came');
      root.dataset.live = 'false';
      if (gone) return;
      const secs = Math.round(backoff / 1000);
      setConn('closed', opened
        ? `Connection lost; reconnecting in ${secs} s…`
        : `Cannot connect to ${owner}'s server; retrying in ${secs} s…`);
      reconnectTimer = setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
      // A lapsed session shows up here first: let the session check redirect to sign-in.
      session.refresh().catch(() => {});
    };
  }

  const logs = createLogPanel({
    owner,
    workflow: name,
    send: (msg) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) return false;
      ws.send(JSON.stringify(msg));
      return true;
    },
    task: (cycle, task) => tasks.get(`${cycle}/${task}`),
  });

  // --- page -----------------------------------------------------------------------
  const actionsId = uid('h');
  const tasksId = uid('h');
  const whyHeadId = uid('h');
  const actId = uid('h');
  replace(main, root);
  root.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '#/' }, 'Workflows'), ' › ', h('span', {}, owner)),
    h('h1', {}, h('span', { class: 'owner-prefix' }, `${owner} / `), name, ' ', stateEl),
    conn,
    counts,
    h('div', { class: 'layout' },
      h('div', { class: 'primary-col' },
        h('section', { 'aria-labelledby': actionsId, class: 'card' },
          h('h2', { id: actionsId }, 'Workflow actions'),
          h('div', { class: 'actions', id: 'workflow-actions' }, WORKFLOW_OPS.map(([op, label]) => opButton(op, label, name, null))),
          h('p', { class: 'hint' }, 'Dimmed buttons are not permitted for you now: hover or focus one to see why, activate it for the full explanation.')),
        h('section', { 'aria-labelledby': tasksId, class: 'card' },
          h('h2', { id: tasksId }, 'Tasks'),
          tasksEl)),
      h('div', { class: 'side-col' },
        h('section', { 'aria-labelledby': whyHeadId, class: 'card', id: 'why' },
          h('h2', { id: whyHeadId }, 'Why can\'t I?'),
          h('form', {
            class: 'inline-form',
            onsubmit: (e) => { e.preventDefault(); explain(whySelect.value); },
          },
          h('label', { for: whyId }, 'Operation'), whySelect,
          h('button', { type: 'submit', id: 'why-submit' }, 'Explain')),
          whyOut),
        h('section', { 'aria-labelledby': actId, class: 'card' },
          h('h2', { id: actId }, 'Activity'),
          h('p', { class: 'hint' }, 'What you asked for on this page and what the server answered. ',
            h('a', { href: `#/audit${query({ owner, workflow: name })}` }, 'Audit log of this workflow')),
          activity))),
    logs.el);

  const offSession = session.onChange((me, prev) => {
    if (!me || gone) return;
    if (prev && prev.csrf !== me.csrf) {
      // New session id (raised or dropped privileges): the relay is bound to the old one.
      dropSocket('privileges changed while waiting');
      root.dataset.live = 'false';
      connect();
    }
    refreshPermitted();
  });

  setState(null);
  refreshPermitted();
  connect();

  return () => {
    gone = true;
    offSession();
    dropSocket('left the page');
    logs.close();
  };
}

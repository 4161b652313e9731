// The audit log, filtered: owners see what was done (or refused) on their workflows,
// administrators see everything. Filters live in the address (#/audit?actor=…), so a
// filtered view can be bookmarked or sent to a colleague.

import { h, replace, uid, OPERATIONS } from './dom.js';
import { api, query } from './api.js';
import * as session from './session.js';

const FIELDS = ['actor', 'owner', 'workflow', 'op', 'decision', 'since', 'until', 'limit'];

/** `datetime-local` value (local time) → RFC 3339 UTC, and back. */
function toRfc3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
function toLocal(rfc) {
  if (!rfc) return '';
  const d = new Date(rfc);
  if (Number.isNaN(d.getTime())) return '';
  const two = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}`;
}

function target(r) {
  if (!r.owner && !r.workflow) return '';
  let t = r.owner ? `${r.owner}/` : '';
  t += r.workflow || '';
  if (r.task) t += `//${r.task}`;
  return t;
}

export function auditView(main, params) {
  const me = session.current();
  const inputs = {};
  const field = (name, label, el) => {
    const id = uid(`audit-${name}`);
    el.id = id;
    el.name = name;
    inputs[name] = el;
    return h('div', { class: 'field' }, h('label', { for: id }, label), el);
  };
  const text = (name, label) => field(name, label, h('input', { type: 'text', autocomplete: 'off', value: params.get(name) || '' }));
  const opList = uid('ops');
  const opInput = h('input', { type: 'text', list: opList, autocomplete: 'off', value: params.get('op') || '' });
  const decision = h('select', {}, h('option', { value: '' }, 'any'), h('option', { value: 'allow' }, 'allowed'), h('option', { value: 'deny' }, 'refused'));
  decision.value = params.get('decision') || '';
  const since = h('input', { type: 'datetime-local', value: toLocal(params.get('since')) });
  const until = h('input', { type: 'datetime-local', value: toLocal(params.get('until')) });
  const limit = h('input', { type: 'number', min: '1', max: '5000', value: params.get('limit') || '200', inputmode: 'numeric' });
  const summary = h('p', { id: 'audit-summary', 'aria-live': 'polite' });
  const error = h('p', { id: 'audit-error', class: 'error', role: 'alert', hidden: true });
  const tableWrap = h('div', { class: 'table-wrap', id: 'audit-results' });
  const human = h('pre', { class: 'log human', id: 'audit-human', tabindex: '0', 'aria-label': 'Audit log, one line per action' });
  let ctrl = null;

  const form = h('form', {
    class: 'card filters',
    id: 'audit-form',
    'aria-label': 'Audit filters',
    onsubmit: (e) => {
      e.preventDefault();
      const p = {};
      for (const k of FIELDS) {
        let v = inputs[k].value.trim();
        if (k === 'since' || k === 'until') v = toRfc3339(v);
        if (v) p[k] = v;
      }
      const next = `#/audit${query(p)}`;
      if (location.hash === next) load(p);
      else location.hash = next;
    },
  },
  h('div', { class: 'fields' },
    text('actor', 'Who'),
    text('owner', 'Owner'),
    text('workflow', 'Workflow'),
    field('op', 'Operation', opInput),
    field('decision', 'Decision', decision),
    field('since', 'From', since),
    field('until', 'Until', until),
    field('limit', 'At most', limit)),
  h('datalist', { id: opList }, OPERATIONS.map((op) => h('option', { value: op }))),
  h('div', { class: 'buttons' },
    h('button', { type: 'submit', class: 'primary', id: 'audit-submit' }, 'Show'),
    h('a', { href: '#/audit', class: 'button-link' }, 'Clear filters')));

  replace(main,
    h('h1', {}, 'Audit log'),
    h('p', { class: 'hint' }, me && me.admin
      ? 'As an administrator you see every recorded action.'
      : 'You see what was done, or refused, on your own workflows.'),
    form,
    error,
    summary,
    tableWrap,
    h('details', { class: 'card' }, h('summary', {}, 'As plain lines'), human));

  async function load(p) {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    summary.textContent = 'Loading…';
    error.hidden = true;
    try {
      const r = await api.get(`/hub/api/audit${query(p)}`, { signal: ctrl.signal });
      const recs = (r.records || []).slice();
      recs.sort((a, b) => (b.seq || 0) - (a.seq || 0));
      summary.textContent = recs.length ? `${recs.length} record${recs.length === 1 ? '' : 's'}, newest first.` : 'No records match.';
      replace(tableWrap, recs.length ? h('table', { class: 'audit' },
        h('caption', { class: 'visually-hidden' }, 'Audit records'),
        h('thead', {}, h('tr', {}, ['Time', 'Who', 'What', 'Target', 'Decision', 'Privileges', 'Outcome', 'Reason or message']
          .map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, recs.map((rec) => h('tr', {
          dataset: { actor: rec.actor || '', op: rec.op || '', decision: rec.decision || '', kind: rec.kind || '', event: rec.event || '' },
        },
        h('td', {}, h('time', { datetime: rec.time || '' }, (rec.time || '').replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC'))),
        h('td', {}, rec.actor || ''),
        h('td', {}, rec.op || rec.event || '', rec.kind && rec.kind !== 'event' ? h('span', { class: 'muted' }, ` (${rec.kind})`) : null),
        h('td', {}, target(rec)),
        h('td', {}, rec.decision ? h('span', { class: `decision decision-${rec.decision}` }, rec.decision === 'deny' ? 'refused' : 'allowed') : ''),
        h('td', {}, rec.elevation || ''),
        h('td', {}, rec.outcome || ''),
        h('td', { class: 'reason' }, rec.reason || rec.message || ''))))) : null);
      human.textContent = (r.human || []).join('\n');
    } catch (e) {
      if (e.name === 'AbortError') return;
      summary.textContent = '';
      error.textContent = `Could not read the audit log: ${e.message}`;
      error.hidden = false;
    }
  }

  const p = {};
  for (const k of FIELDS) if (params.get(k)) p[k] = params.get(k);
  if (!p.limit) p.limit = '200';
  load(p);
  return () => { if (ctrl) ctrl.abort(); };
}

// Overview: every workflow you may read, grouped by owner, with state and task counts.
// Refreshed every few seconds (only re-drawn when something changed, so keyboard focus
// stays put); owners whose server did not answer are marked stale.

import { h, replace, stateBadge, collator, uid } from './dom.js';
import { api } from './api.js';

const REFRESH_MS = 4000;
const STATE_ORDER = ['running', 'submitted', 'waiting', 'held', 'failed', 'submit-failed', 'succeeded', 'removed'];

function countsList(counts) {
  const entries = Object.entries(counts || {}).filter(([, n]) => n > 0);
  if (!entries.length) return h('span', { class: 'muted' }, 'no tasks');
  entries.sort(([a], [b]) => {
    const ia = STATE_ORDER.indexOf(a); const ib = STATE_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || collator.compare(a, b);
  });
  return h('ul', { class: 'counts' }, entries.map(([s, n]) =>
    h('li', { class: `count state-${s.replace(/[^a-z-]/g, '')}` }, `${s} ${n}`)));
}

export function overviewView(main) {
  const filterId = uid('filter');
  const filter = h('input', { id: filterId, type: 'search', placeholder: 'owner, workflow or state', autocomplete: 'off' });
  const shown = h('span', { id: 'overview-shown', class: 'muted', 'aria-live': 'polite' });
  const updated = h('span', { id: 'overview-updated', class: 'muted' });
  const error = h('p', { id: 'overview-error', class: 'error', role: 'alert', hidden: true });
  const owners = h('div', { id: 'owners', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading workflows…'));
  let lastJson = null;
  let timer = null;
  let gone = false;
  let ctrl = null;

  replace(main,
    h('h1', {}, 'Workflows'),
    h('div', { class: 'toolbar', role: 'search' },
      h('label', { for: filterId }, 'Filter'), filter, shown),
    error,
    owners,
    h('p', { class: 'footnote' }, updated));

  const applyFilter = () => {
    const terms = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let total = 0; let visible = 0;
    for (const sec of owners.querySelectorAll('section.owner')) {
      let any = false;
      for (const row of sec.querySelectorAll('tbody tr')) {
        total++;
        const hay = row.dataset.search;
        const ok = terms.every((t) => hay.includes(t));
        row.hidden = !ok;
        if (ok) { any = true; visible++; }
      }
      sec.hidden = !any;
    }
    shown.textContent = total ? `${visible} of ${total} workflows shown` : '';
  };
  filter.addEventListener('input', applyFilter);

  // A server waiting in a batch queue (Slurm): marked with the scheduler's reason.
  const queuedBadge = (o, server) => (server
    ? h('span', { class: `badge queued-badge ${server.state}`, title: `${o}'s server is ${server.state} in the batch queue: ${server.reason}` },
      `server ${server.state}: ${server.reason}`)
    : null);

  const render = (data) => {
    const list = (data.owners || []).slice()
      .concat((data.queued || []).map((q) => ({ owner: q.owner, workflows: [], server: q })))
      .sort((a, b) => collator.compare(a.owner, b.owner));
    if (!list.length) {
      replace(owners, h('p', {}, 'There are no workflows you may read.'));
      return;
    }
    replace(owners, list.map((o) => {
      const hid = uid('owner');
      const wfs = (o.workflows || []).slice().sort((a, b) => collator.compare(a.name, b.name));
      return h('section', { class: `owner${o.stale ? ' stale' : ''}`, 'aria-labelledby': hid, dataset: { owner: o.owner } },
        h('h2', { id: hid }, o.owner,
          o.stale ? h('span', { class: 'badge stale-badge', title: `${o.owner}'s server did not answer; this is the last known state` }, 'stale') : null,
          queuedBadge(o.owner, o.server)),
        wfs.length
          ? h('div', { class: 'table-wrap' }, h('table', { class: 'workflows' },
            h('caption', { class: 'visually-hidden' }, `Workflows of ${o.owner}`),
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Workflow'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Tasks'))),
            h('tbody', {}, wfs.map((w) => h('tr', {
              dataset: { workflow: w.name, state: w.state || '', search: `${o.owner} ${w.name} ${w.state || ''} ${o.stale ? 'stale' : ''}`.toLowerCase() },
            },
            h('th', { scope: 'row' }, h('a', { href: `#/w/${encodeURIComponent(o.owner)}/${encodeURIComponent(w.name)}` }, w.name)),
            h('td', {}, stateBadge(w.state)),
            h('td', {}, countsList(w.counts)))))))
          : h('p', { class: 'muted' }, 'No workflows.'));
    }));
    applyFilter();
  };

  const load = async () => {
    if (gone) return;
    ctrl = new AbortController();
    try {
      const data = await api.get('/hub/api/overview', { signal: ctrl.signal });
      if (gone) return;
      error.hidden = true;
      const json = JSON.stringify(data);
      if (json !== lastJson) {
        lastJson = json;
        render(data);
      }
      owners.setAttribute('aria-busy', 'false');
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (e) {
      if (gone || e.name === 'AbortError') return;
      error.textContent = `Could not load the workflows: ${e.message}`;
      error.hidden = false;
      if (lastJson === null) replace(owners);
    }
    if (!gone) timer = setTimeout(load, REFRESH_MS);
  };
  load();

  return () => {
    gone = true;
    clearTimeout(timer);
    if (ctrl) ctrl.abort();
  };
}
